"""``keel data``: snapshot a data set, show snapshots, and compare two of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, local_time, number, print_fields, print_json, table
from keel.data._profile import ColumnProfile
from keel.data._profile_diff import ColumnChange
from keel.data._snapshot import Snapshot, SnapshotDiff

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
# Leading characters of a fingerprint shown in tables (any 8 or more are accepted as a ref).
SHORT = 16
# Top values shown per column in `keel data show`.
SHOWN_VALUES = 3


def build() -> typer.Typer:
    group = typer.Typer(
        no_args_is_help=True, help="Data snapshots: immutable data sets, profiles, lineage."
    )
    group.command("snapshot")(snapshot)
    group.command("show")(show)
    group.command("diff")(diff)
    return group


def snapshot(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH", help="A Parquet file, a CSV file or a directory of Parquet files."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="The snapshot's name.")],
    parent: Annotated[
        list[str] | None,
        typer.Option(help="A snapshot this data was derived from (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store the data at PATH as an immutable snapshot with its schema, profile and lineage."""
    created = open_workspace(ctx).snapshots.create(path, name, parents=parent or [])
    if as_json:
        print_json(created.to_dict())
        return
    console(ctx).print(
        f"snapshot {created.fingerprint} '{created.name}': "
        f"{created.num_rows} rows x {len(created.columns)} columns",
        markup=False,
    )


def show(
    ctx: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[REF]",
            help="A fingerprint (or 8+ leading characters) or a name; none lists snapshots.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List snapshots, or show one: its schema, column profile and lineage."""
    snapshots = open_workspace(ctx).snapshots
    out = console(ctx)
    if ref is None:
        listed = snapshots.list()
        if as_json:
            print_json([_summary(s) for s in listed])
        elif not listed:
            out.print("no snapshots")
        else:
            out.print(_list_table(listed))
        return
    found = snapshots.get(ref)
    if as_json:
        print_json(found.to_dict())
        return
    _print_snapshot(out, found)


def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="The reference snapshot.")],
    b: Annotated[str, typer.Argument(metavar="B", help="The snapshot compared with it.")],
    as_json: JsonFlag = False,
) -> None:
    """What changed from snapshot A to snapshot B: columns, types and column profiles."""
    result = open_workspace(ctx).snapshots.diff(a, b)
    if as_json:
        print_json(result.to_dict())
        return
    _print_diff(console(ctx), result)


# -- formatting ------------------------------------------------------------------------------------


def _summary(item: Snapshot) -> dict[str, Any]:
    return {
        "fingerprint": item.fingerprint,
        "name": item.name,
        "num_rows": item.num_rows,
        "columns": item.columns,
        "artifact": {"digest": item.artifact.digest, "size": item.artifact.size},
        "created_at": item.created_at,
        "created_by": item.created_by,
    }


def _list_table(listed: list[Snapshot]) -> Any:
    result = table("fingerprint", "name", "rows", "columns", "created", "by")
    for item in listed:
        add_row(
            result,
            item.fingerprint[:SHORT],
            item.name,
            item.num_rows,
            len(item.columns),
            local_time(item.created_at),
            item.created_by,
        )
    return result


def _print_snapshot(out: Console, item: Snapshot) -> None:
    lineage = item.lineage
    code = lineage.get("code") or {}
    code_text = code.get("commit") or "not in a git tree"
    if code.get("dirty_hash"):
        code_text += f" + uncommitted changes {code['dirty_hash'][:12]}"
    print_fields(
        out,
        [
            ("snapshot", item.fingerprint),
            ("name", item.name),
            ("rows", item.num_rows),
            ("created", local_time(item.created_at)),
            ("by", item.created_by),
            ("artifact", f"sha256:{item.artifact.digest} ({item.artifact.size} bytes)"),
            ("code", code_text),
            ("parents", ", ".join(lineage.get("parents") or [])),
            ("sources", ", ".join(lineage.get("sources") or [])),
        ],
    )
    headers = ("column", "type", "nulls", "count", "min", "max", "mean", "std", "p50", "values")
    columns = table(*headers, title="Columns")
    for field in item.schema.fields:
        column = item.profile.get(field.name)
        add_row(columns, field.name, _type(field.dtype, field.nullable), *_stats(column))
    out.print()
    out.print(columns)


def _type(dtype: str, nullable: bool) -> str:
    return f"{dtype}?" if nullable else dtype


def _stats(column: ColumnProfile | None) -> list[object]:
    if column is None:
        return [""] * 8
    values = ""
    if column.frequencies is not None:
        shown = [f"{v}={n}" for v, n in column.frequencies.top[:SHOWN_VALUES]]
        rest = column.frequencies.distinct - len(shown)
        values = " ".join(shown) + (f" (+{rest} more)" if rest > 0 else "")
    median = (column.quantiles or {}).get("p50")
    return [
        column.nulls,
        column.count,
        _value(column.min),
        _value(column.max),
        number(column.mean),
        number(column.std),
        number(median),
        values,
    ]


def _value(value: object) -> object:
    return number(value) if isinstance(value, float) else value


def _print_diff(out: Console, result: SnapshotDiff) -> None:
    rows_a, rows_b = result.profile.num_rows
    out.print(
        f"{result.a.name} {result.a.fingerprint[:SHORT]} ({rows_a} rows) -> "
        f"{result.b.name} {result.b.fingerprint[:SHORT]} ({rows_b} rows)",
        markup=False,
    )
    changes = result.schema.describe()
    out.print()
    if changes:
        out.print("Schema changes:")
        for line in changes:
            out.print(f"  {line}", markup=False)
    else:
        out.print("Schema: unchanged")
    columns = table(
        "column", "count", "null rate", "mean", "std", "psi", "distribution", title="Columns"
    )
    for change in result.profile.columns:
        add_row(
            columns,
            change.name,
            _pair(*change.count),
            _pair(*(_percent(r) for r in change.null_rate)),
            _pair(*(number(m) for m in change.mean)) if change.mean else "",
            _pair(*(number(s) for s in change.std)) if change.std else "",
            number(change.psi),
            _distribution(change),
        )
    if columns.row_count:
        out.print()
        out.print(columns)


def _pair(old: object, new: object) -> str:
    return f"{old}" if old == new else f"{old} -> {new}"


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.1%}"


def _distribution(change: ColumnChange) -> str:
    parts: list[str] = []
    if change.psi is None and change.quantile_shift:
        median = change.quantile_shift.get("p50")
        if median is not None:
            parts.append(f"median shift {number(median)}")
    if change.new_values:
        parts.append("new: " + ", ".join(str(v) for v in change.new_values[:SHOWN_VALUES]))
    if change.gone_values:
        parts.append("gone: " + ", ".join(str(v) for v in change.gone_values[:SHOWN_VALUES]))
    return "; ".join(parts)
