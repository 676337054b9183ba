"""``keel features``: record definitions, materialize, look features up, check for skew."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, local_time, print_json, table
from keel.errors import KeelError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
When = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="A time, e.g. 2026-01-31T00:00:00+00:00 (naive values follow "
        "[features] naive_timestamps).",
        show_default=False,
    ),
]


def build() -> typer.Typer:
    group = typer.Typer(
        no_args_is_help=True,
        help="The feature store: definitions, materialization, online lookups, skew.",
    )
    group.command("apply")(apply)
    group.command("list")(list_views)
    group.command("materialize")(materialize)
    group.command("get")(get)
    group.command("skew")(skew)
    return group


def apply(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Record the project's feature definitions; changed views get a new version."""
    applied = open_workspace(ctx).features.apply()
    if as_json:
        print_json([dataclasses.asdict(a) for a in applied])
        return
    out = console(ctx)
    for view in applied:
        state = "new version" if view.created else "unchanged"
        out.print(f"{view.name}: version {view.version} ({state})", markup=False)
    if not applied:
        out.print("no feature views defined")


def list_views(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The newest applied version of every feature view."""
    versions = open_workspace(ctx).features.registry.latest()
    if as_json:
        print_json([dataclasses.asdict(v) for v in versions])
        return
    listing = table("view", "version", "keys", "features", "ttl", "applied", "by")
    for view in versions:
        definition = view.definition
        add_row(
            listing,
            view.name,
            view.version,
            ", ".join(k for e in definition["entities"] for k in e["join_keys"]),
            ", ".join(f["name"] for f in definition["features"]),
            f"{definition['ttl_seconds'] / 86400:g} d",
            local_time(view.created_at),
            view.created_by,
        )
    console(ctx).print(listing)


def materialize(
    ctx: typer.Context,
    views: Annotated[list[str], typer.Argument(metavar="VIEW...", help="Views to materialize.")],
    start: When = None,
    end: When = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the latest row per entity into the online store (from the watermark unless
    --start is given)."""
    features = open_workspace(ctx).features
    results = [features.materialize(view, start=start, end=end) for view in views]
    if as_json:
        print_json([dataclasses.asdict(r) for r in results])
        return
    out = console(ctx)
    for result in results:
        out.print(
            f"{result.view} v{result.version}: {result.rows_written} entities written "
            f"({result.rows_read} rows read) for [{result.start}, {result.end}) "
            f"in {result.seconds:.2f}s",
            markup=False,
        )


def get(
    ctx: typer.Context,
    features: Annotated[
        list[str],
        typer.Option("--feature", "-f", help="VIEW:FEATURE, VIEW:* or an on-demand name."),
    ],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity",
            "-e",
            help="An entity row as JSON, e.g. '{\"customer_id\": 7}' (repeatable).",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Look features up in the online store, as the serving path does."""
    rows: list[dict[str, Any]] = []
    for text in entity:
        try:
            row = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise KeelError(f"--entity {text!r} is not JSON: {error}") from None
        if not isinstance(row, dict):
            raise KeelError(f"--entity {text!r} must be a JSON object of join keys")
        rows.append(row)
    result = open_workspace(ctx).features.get_online_features(rows, features)
    frame = result.frame
    if as_json:
        print_json(
            {
                "at": result.at.isoformat(),
                "rows": [
                    {**rows[i], **{k: _plain(v) for k, v in frame.iloc[i].items()}}
                    for i in range(len(frame))
                ],
            }
        )
        return
    listing = table(*(str(c) for c in frame.columns))
    for i in range(len(frame)):
        add_row(listing, *(_plain(v) for v in frame.iloc[i].tolist()))
    console(ctx).print(listing)


def skew(
    ctx: typer.Context,
    sample: Annotated[int, typer.Option(help="How many logged lookup rows to check.")] = 1000,
    tolerance: Annotated[float, typer.Option(help="Relative and absolute tolerance.")] = 1e-9,
    as_json: JsonFlag = False,
) -> None:
    """Recompute sampled online lookups offline and report mismatches per feature; exits 1
    when any feature is skewed."""
    report = open_workspace(ctx).features.skew(sample=sample, tolerance=tolerance)
    if as_json:
        print_json(report.to_dict())
    else:
        listing = table("feature", "checked", "mismatches", "rate", "missing offline", "example")
        for item in report.features:
            example = item.examples[0] if item.examples else ""
            add_row(
                listing,
                item.feature,
                item.checked,
                item.mismatches,
                f"{item.mismatch_rate:.2%}",
                item.missing_offline,
                example,
            )
        out = console(ctx)
        out.print(f"{report.lookup_rows} logged lookup rows checked", markup=False)
        out.print(listing)
    if not report.ok:
        raise typer.Exit(1)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    try:
        if value != value:  # NaN, NA
            return None
    except (TypeError, ValueError):
        return None
    return value.item() if hasattr(value, "item") else value
