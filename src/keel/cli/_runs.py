"""``keel runs``: list, show, compare, search and read the metric history of tracked runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from keel.cli._context import console, open_workspace
from keel.cli._output import (
    KEY_METRICS,
    add_row,
    duration,
    local_time,
    mapping_table,
    metric_summary,
    number,
    print_fields,
    print_json,
    print_tables,
    table,
)
from keel.errors import KeelError
from keel.tracking import RunRecord

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Experiment = Annotated[str | None, typer.Option("--experiment", "-e", help="Only this experiment.")]
Limit = Annotated[int, typer.Option(min=1, help="At most this many runs.")]


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="Tracked runs: what was trained, how, on what.")
    group.command("list")(list_runs)
    group.command("show")(show)
    group.command("compare")(compare)
    group.command("search")(search)
    group.command("history")(history)
    return group


def list_runs(
    ctx: typer.Context, experiment: Experiment = None, limit: Limit = 50, as_json: JsonFlag = False
) -> None:
    """The newest runs, newest first."""
    records = open_workspace(ctx).runs.list_runs(experiment=experiment, limit=limit)
    _print_runs(console(ctx), records, as_json)


def search(
    ctx: typer.Context,
    experiment: Experiment = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE a run must be tagged with (repeatable).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Threshold on a metric's last value, e.g. 'acc>=0.9' (repeatable)."),
    ] = None,
    status: Annotated[str | None, typer.Option(help="running, finished, failed or killed.")] = None,
    order_by: Annotated[
        str | None, typer.Option(help="Sort by this metric's last value (highest first).")
    ] = None,
    ascending: Annotated[bool, typer.Option(help="Sort lowest first.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many runs.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Runs matching every condition given."""
    records = open_workspace(ctx).runs.search(
        experiment=experiment,
        tags=_parse_tags(tag or []),
        metrics=metric or [],
        status=status,
        order_by=order_by,
        ascending=ascending,
        limit=limit,
    )
    _print_runs(console(ctx), records, as_json, first=[order_by] if order_by else [])


def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    as_json: JsonFlag = False,
) -> None:
    """Everything recorded about one run."""
    record = open_workspace(ctx).runs.get(run_id)
    if as_json:
        print_json(record.to_dict())
        return
    out = console(ctx)
    code = record.code_commit or "not in a git tree"
    if record.code_dirty_hash:
        code += f" + uncommitted changes {record.code_dirty_hash[:12]}"
    environment = record.environment
    print_fields(
        out,
        [
            ("run", record.id),
            ("name", record.name),
            ("experiment", record.experiment),
            ("status", record.status),
            ("actor", record.actor),
            ("started", local_time(record.started_at)),
            ("ended", local_time(record.ended_at)),
            ("duration", duration(record.started_at, record.ended_at)),
            ("code", code),
            ("python", _python(environment)),
            ("packages", f"{len(environment.get('packages') or {})} recorded"),
            ("seeds", " ".join(f"{k}={v}" for k, v in record.seeds.items() if v is not None)),
        ],
    )
    inputs = table("input", "fingerprint", "source", "rows", "columns", title="Inputs")
    for name, data in sorted(record.inputs.items()):
        columns = data.get("columns")
        add_row(
            inputs,
            name,
            data.get("fingerprint"),
            data.get("source"),
            data.get("num_rows"),
            len(columns) if columns else "",
        )
    artifacts = table("artifact", "kind", "digest", "flavor", title="Artifacts")
    for name, data in sorted(record.artifacts.items()):
        add_row(artifacts, name, data.get("kind"), data.get("digest"), data.get("flavor", ""))
    print_tables(
        out,
        mapping_table("Params", record.params),
        mapping_table("Metrics (last value)", record.metrics),
        mapping_table("Tags", record.tags),
        inputs,
        artifacts,
        mapping_table("Resources", record.resources),
    )
    if record.error:
        out.print()
        out.print("[bold red]Error[/bold red]")
        out.print(escape(record.error))


def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN_ID...", help="Two or more run ids.")],
    as_json: JsonFlag = False,
) -> None:
    """Params and last metric values of runs side by side; differing params are marked."""
    if len(run_ids) < 2:
        raise typer.BadParameter("give at least two run ids", param_hint="RUN_IDS")
    workspace = open_workspace(ctx)
    comparison = workspace.runs.compare(run_ids)
    differing = comparison.differing_params()
    if as_json:
        print_json(
            {
                "run_ids": comparison.run_ids,
                "params": comparison.params,
                "metrics": comparison.metrics,
                "differing_params": sorted(differing),
            }
        )
        return
    headers = [f"{workspace.runs.get(i).name}\n{i[:12]}" for i in comparison.run_ids]
    side_by_side = table("", "", *headers)
    for key, values in comparison.params.items():
        mark = "≠" if key in differing else ""
        add_row(side_by_side, mark, f"param {key}", *values)
    for key, numbers in comparison.metrics.items():
        add_row(side_by_side, "", f"metric {key}", *(number(v) for v in numbers))
    out = console(ctx)
    out.print(side_by_side)
    if differing:
        out.print(f"≠ marks the {len(differing)} param(s) that differ")


def history(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    metric: Annotated[str, typer.Argument(metavar="METRIC", help="The metric's name.")],
    as_json: JsonFlag = False,
) -> None:
    """Every value logged for one metric of a run, in step order."""
    runs = open_workspace(ctx).runs
    points = runs.metric_history(run_id, metric)
    if not points:
        logged = ", ".join(sorted(runs.get(run_id).metrics)) or "none"
        raise KeelError(f"run '{run_id}' has no metric '{metric}' (its metrics: {logged})")
    if as_json:
        print_json([{"step": p.step, "value": p.value, "timestamp": p.timestamp} for p in points])
        return
    values = table("step", "value", "time", title=f"{metric} of run {run_id}")
    for point in points:
        add_row(values, point.step, number(point.value), local_time(point.timestamp))
    console(ctx).print(values)


# -- helpers -----------------------------------------------------------------------------------


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--tag")
        tags[key] = value
    return tags


def _python(environment: dict[str, object]) -> str:
    python = environment.get("python")
    return f"{python} on {environment.get('platform')}" if python else ""


def _print_runs(
    out: Console, records: list[RunRecord], as_json: bool, first: list[str] | None = None
) -> None:
    if as_json:
        print_json([record.to_dict() for record in records])
        return
    if not records:
        out.print("no runs")
        return
    runs = table("run", "experiment", "name", "status", "started", "duration", "metrics")
    for record in records:
        add_row(
            runs,
            record.id,
            record.experiment,
            record.name,
            record.status,
            local_time(record.started_at),
            duration(record.started_at, record.ended_at),
            metric_summary(record.metrics, [*(first or []), *KEY_METRICS]),
        )
    out.print(runs)
