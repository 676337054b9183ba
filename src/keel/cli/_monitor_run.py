"""``keel monitor run | watch | drift | results``: computing monitors and reading them back."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import start_http_server
from rich.markup import escape

from keel._monitoring_settings import MonitoringSettings, parse_duration
from keel.cli._context import console, open_workspace, state
from keel.cli._output import add_row, local_time, number, print_json, table
from keel.config import Settings
from keel.data import read_data
from keel.errors import MonitoringError
from keel.monitoring import MonitorRunner, ResultStore, Windows, drift
from keel.monitoring._alerting import alert_evaluator, slo_tracker
from keel.monitoring._alerts import Evaluation
from keel.monitoring._gauges import MonitorGauges
from keel.monitoring._report import Correction, DriftReport
from keel.monitoring._runner import WindowOutcome

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
EndpointArgument = Annotated[
    str | None, typer.Argument(metavar="[ENDPOINT]", help="One endpoint (default: every one).")
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window", metavar="DURATION", help="Tumbling windows of this duration (90s, 30m, 1h, 1d)."
    ),
]
RowsOption = Annotated[
    int | None, typer.Option("--rows", metavar="N", help="Windows of N rows instead of a duration.")
]
ReferenceOption = Annotated[
    str | None,
    typer.Option(
        "--reference",
        metavar="SNAPSHOT",
        help="Compare with this snapshot (default: the model's training snapshot).",
    ),
]
MinRowsOption = Annotated[
    int | None,
    typer.Option("--min-rows", metavar="N", help="Smaller windows are 'not enough data'."),
]
CorrectionOption = Annotated[
    str | None,
    typer.Option("--correction", metavar="bh|bonferroni|none", help="Multiple testing."),
]
AlphaOption = Annotated[
    float | None, typer.Option("--alpha", metavar="P", help="Significance level.")
]
LatenessOption = Annotated[
    float | None, typer.Option(metavar="SECONDS", help="Wait this long past a window's end.")
]
AlertsFlag = Annotated[
    bool, typer.Option("--alerts/--no-alerts", help="Evaluate the alert rules after the run.")
]


def add_commands(group: typer.Typer) -> None:
    """Register these commands on the ``keel monitor`` group."""
    group.command("run")(run)
    group.command("watch")(watch)
    group.command("drift")(drift_command)
    group.command("results")(results)


def run(
    ctx: typer.Context,
    endpoint: EndpointArgument = None,
    window: WindowOption = None,
    rows: RowsOption = None,
    lateness: LatenessOption = None,
    reference: ReferenceOption = None,
    min_rows: MinRowsOption = None,
    correction: CorrectionOption = None,
    alpha: AlphaOption = None,
    force: Annotated[bool, typer.Option(help="Recompute windows already computed.")] = False,
    alerts: AlertsFlag = True,
    as_json: JsonFlag = False,
) -> None:
    """Compute every complete window not computed yet, then evaluate the alert rules.

    Defaults come from the monitoring section of keel.toml."""
    runner = _runner(ctx, window, rows, lateness, reference, min_rows, correction, alpha)
    outcomes = runner.run(endpoint, force=force)
    evaluation = _evaluate_alerts(ctx, endpoint) if alerts else None
    if as_json:
        print_json(
            {
                "windows": [outcome.to_dict() for outcome in outcomes],
                "alerts": None if evaluation is None else evaluation.to_dict(),
            }
        )
        return
    _print_outcomes(ctx, outcomes)
    if evaluation is not None:
        _print_evaluation(ctx, evaluation)


def watch(
    ctx: typer.Context,
    endpoint: EndpointArgument = None,
    interval: Annotated[
        float, typer.Option(metavar="SECONDS", help="Time between two runs.")
    ] = 60.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help="Serve the monitoring gauges on this port (/metrics)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(metavar="HOST")] = "127.0.0.1",
    window: WindowOption = None,
    rows: RowsOption = None,
    lateness: LatenessOption = None,
    reference: ReferenceOption = None,
    min_rows: MinRowsOption = None,
    correction: CorrectionOption = None,
    alpha: AlphaOption = None,
    alerts: AlertsFlag = True,
) -> None:
    """Run the monitors and alert rules every INTERVAL seconds until stopped.

    Ctrl-C or SIGTERM stops it; the latest windows' gauges are served on --metrics-port."""
    if not interval > 0:
        raise MonitoringError(f"an interval of {interval} s", fix="give a positive --interval")
    runner = _runner(ctx, window, rows, lateness, reference, min_rows, correction, alpha)
    gauges = MonitorGauges()
    out = console(ctx)
    if metrics_port is not None:
        server, _ = start_http_server(metrics_port, metrics_host, registry=gauges.registry)
        out.print(f"gauges on http://{metrics_host}:{server.server_port}/metrics")
    # The latest stored window of each endpoint sets the gauges before the first new one.
    gauges.update(runner.results.query(endpoint))
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            for outcome in runner.run(endpoint):
                gauges.update(outcome.results)
                _print_outcomes(ctx, [outcome])
            if alerts:
                _print_evaluation(ctx, _evaluate_alerts(ctx, endpoint), quiet=True)
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    out.print("stopped")


def drift_command(
    reference: Annotated[
        str, typer.Argument(metavar="REFERENCE", help="A snapshot, or a Parquet/CSV file.")
    ],
    current: Annotated[
        str, typer.Argument(metavar="CURRENT", help="A snapshot, or a Parquet/CSV file.")
    ],
    ctx: typer.Context,
    column: Annotated[
        list[str] | None, typer.Option("--column", metavar="NAME", help="Repeatable.")
    ] = None,
    statistic: Annotated[
        list[str] | None,
        typer.Option("--statistic", metavar="NAME", help="ks, chi2, psi, js, wasserstein."),
    ] = None,
    min_rows: MinRowsOption = None,
    correction: CorrectionOption = None,
    alpha: AlphaOption = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help="Exit with status 1 when a column drifted.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare any two data sets column by column (snapshots or files)."""
    defaults = _settings(ctx)
    report = drift(
        _data(ctx, reference, whole=False),
        _data(ctx, current, whole=True),
        columns=column or None,
        statistics=statistic or None,
        correction=_correction(correction or defaults.correction),
        alpha=defaults.alpha if alpha is None else alpha,
        min_rows=defaults.min_rows if min_rows is None else min_rows,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(ctx, report)
    if fail_on_drift and report.verdict == "drift":
        raise typer.Exit(1)


def results(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT")],
    monitor: Annotated[
        str | None, typer.Option(metavar="NAME", help="drift, data_quality, performance, ...")
    ] = None,
    subject: Annotated[str | None, typer.Option(metavar="COLUMN|METRIC")] = None,
    since_hours: Annotated[
        float | None, typer.Option("--since-hours", metavar="H", help="Windows ended since.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Stored results of an endpoint's windows, oldest first."""
    since = None if since_hours is None else time.time() - since_hours * 3600
    found = ResultStore(open_workspace(ctx).store).query(
        endpoint, monitor=monitor, subject=subject, since=since
    )
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    grid = table("window end", "monitor", "subject", "statistic", "value", "p-value", "status")
    for r in found:
        add_row(
            grid,
            local_time(r.window_end),
            r.monitor,
            r.subject or "-",
            r.statistic,
            number(r.value),
            number(r.p_value),
            r.status,
        )
    console(ctx).print(grid)


def _settings(ctx: typer.Context) -> MonitoringSettings:
    return Settings.load(state(ctx).project_dir).monitoring


def _runner(
    ctx: typer.Context,
    window: str | None,
    rows: int | None,
    lateness: float | None,
    reference: str | None,
    min_rows: int | None,
    correction: str | None,
    alpha: float | None,
) -> MonitorRunner:
    if window is not None and rows is not None:
        raise MonitoringError("both --window and --rows", fix="give one of them")
    workspace = open_workspace(ctx)
    defaults = workspace.settings.monitoring
    if window is None and rows is None:
        window, rows = (
            (None, defaults.window_rows) if defaults.window_rows else (defaults.window, None)
        )
    windows = Windows(
        seconds=None if rows is not None else _duration(window or defaults.window),
        rows=rows,
        lateness_seconds=defaults.lateness_seconds if lateness is None else lateness,
    )
    return MonitorRunner(
        workspace,
        windows=windows,
        reference=reference,
        min_rows=defaults.min_rows if min_rows is None else min_rows,
        correction=_correction(correction or defaults.correction),
        alpha=defaults.alpha if alpha is None else alpha,
        label_name=defaults.label_name,
        min_labels=defaults.min_labels,
        label_horizon_seconds=defaults.label_horizon_days * 86_400,
    )


def _evaluate_alerts(ctx: typer.Context, endpoint: str | None) -> Evaluation:
    """SLO counters scraped (when SLOs and targets are configured), then every rule."""
    workspace = open_workspace(ctx)
    settings = workspace.settings
    if settings.monitoring.slos and settings.monitoring.scrape_targets:
        tracker = slo_tracker(workspace.store, settings.monitoring)
        tracker.scrape()
        tracker.record_results()
    evaluator = alert_evaluator(workspace.store, settings.monitoring, settings.actor)
    return evaluator.evaluate(endpoint=endpoint)


def _print_evaluation(ctx: typer.Context, evaluation: Evaluation, *, quiet: bool = False) -> None:
    out = console(ctx)
    for alert in evaluation.fired:
        out.print(
            f"[bold red]alert {alert.id}[/bold red] firing ({alert.severity}): "
            f"{escape(alert.summary)}"
        )
    for alert in evaluation.resolved:
        out.print(f"alert {alert.id} resolved: {escape(alert.summary)}")
    if not quiet and not evaluation.fired and not evaluation.resolved:
        pending = f" ({len(evaluation.pending)} pending)" if evaluation.pending else ""
        out.print(f"no alert fired or resolved{pending}")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise MonitoringError(f"a window of '{text}'", fix=str(error).split(": ", 1)[1]) from None


def _correction(text: str) -> Correction:
    if text not in ("bh", "bonferroni", "none"):
        raise MonitoringError(f"unknown correction '{text}'", fix="use bh, bonferroni or none")
    return text  # type: ignore[return-value]


def _data(ctx: typer.Context, ref: str, *, whole: bool) -> Any:
    """A file's data, or a snapshot's: its rows (``whole``) or its stored profile, which is
    all a reference needs and far cheaper to read."""
    if os.path.exists(ref):
        return read_data(Path(ref))
    snapshots = open_workspace(ctx).snapshots
    return snapshots.load(ref) if whole else snapshots.get(ref).profile


def _print_outcomes(ctx: typer.Context, outcomes: list[WindowOutcome]) -> None:
    out = console(ctx)
    if not outcomes:
        out.print("no complete window to compute")
        return
    for o in outcomes:
        drifted = f": {', '.join(o.drifted_columns)}" if o.drifted_columns else ""
        out.print(
            f"{escape(o.endpoint)} {local_time(o.start)} → {local_time(o.end)}  "
            f"{o.rows} rows  {o.verdict}{escape(drifted)}"
        )


def _print_report(ctx: typer.Context, report: DriftReport) -> None:
    grid = table("column", "status", "statistic", "value", "p-value", "drifted")
    for column in report.columns:
        default = column.default_statistic
        shown = next((s for s in column.statistics if s.name == default), None)
        add_row(
            grid,
            column.name,
            column.status,
            default or "-",
            number(shown.value if shown else None),
            number(shown.adjusted_p_value if shown else None),
            "yes" if column.drifted else "no" if column.drifted is False else "-",
        )
    out = console(ctx)
    out.print(grid)
    out.print(
        f"{report.verdict}: {len(report.drifted_columns)} of {len(report.columns)} columns "
        f"drifted ({report.correction} correction over {report.tests} tests, alpha {report.alpha})"
    )
