"""``keel monitor``: the monitoring command group, and its rules / dashboard / slo commands.

The group is built here (:func:`build`); the commands that compute monitors (``run``,
``watch``, ...) live in ``_monitor_run`` and are added to the same group by
``_monitor_run.add_commands(group)`` where ``_app`` registers it.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from keel.cli._context import console, open_workspace, state
from keel.cli._output import add_row, number, print_json, table, write_text
from keel.config import Settings
from keel.monitoring._alerting import slo_tracker
from keel.monitoring._grafana import grafana_dashboard_json
from keel.monitoring._promrules import prometheus_rules_yaml

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
OutOption = Annotated[
    str | None, typer.Option("--out", metavar="FILE", help="Write here (default: stdout).")
]


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="Monitoring: drift, performance, SLOs.")
    group.command("rules")(rules)
    group.command("dashboard")(dashboard)
    group.command("slo")(slo)
    return group


def _settings(ctx: typer.Context) -> Settings:
    # The generated files need the configuration only, not the metadata database.
    return Settings.load(state(ctx).project_dir)


def _emit(ctx: typer.Context, text: str, out: str | None, what: str) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text(out, text)
    console(ctx).print(f"{what} written to {escape(out)}")


def rules(ctx: typer.Context, out: OutOption = None) -> None:
    """The Prometheus alerting-rules file equivalent to keel's alert rules and SLOs."""
    _emit(ctx, prometheus_rules_yaml(_settings(ctx).monitoring), out, "Prometheus rules")


def dashboard(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint to show.")],
    out: OutOption = None,
) -> None:
    """A Grafana dashboard (JSON) of one endpoint: traffic, latency, errors, SLOs, drift."""
    text = grafana_dashboard_json(endpoint, _settings(ctx).monitoring) + "\n"
    _emit(ctx, text, out, "Grafana dashboard")


def slo(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(metavar="[ENDPOINT]", help="One endpoint (default: all).")
    ] = None,
    scrape: Annotated[
        bool,
        typer.Option("--scrape", help="Scrape the scrape_targets first and record the results."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Error budget remaining and burn rates of the endpoints' SLOs."""
    workspace = open_workspace(ctx)
    tracker = slo_tracker(workspace.store, workspace.settings.monitoring)
    failures = {}
    if scrape:
        failures = {url: why for url, why in tracker.scrape().items() if why is not None}
        tracker.record_results()
    found = tracker.status(endpoint)
    if as_json:
        print_json({"slos": [s.to_dict() for s in found], "scrape_failures": failures})
        return
    out = console(ctx)
    for url, why in failures.items():
        out.print(f"scrape of {escape(url)} failed: {escape(why)}")
    if not found:
        out.print("no SLOs (declare them under [[monitoring.slos]] in keel.toml)")
        return
    listing = table("endpoint", "slo", "objective", "requests", "budget left", "burn rates")
    for status in found:
        rates = "  ".join(
            f"{r.name} {number(r.long_burn)}/{number(r.short_burn)}" + (" BURNING" * r.burning)
            for r in status.burn_rates
        )
        budget = "n/a" if status.budget_remaining is None else f"{status.budget_remaining:.1%}"
        add_row(listing, status.endpoint, status.objective, f"{status.target:g}",
                f"{status.requests:g}", budget, rates)  # fmt: skip
    out.print(listing)
