"""``keel alerts``: list alerts, take them in hand (ack), close them (resolve), evaluate rules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from keel.cli._context import console, open_workspace
from keel.cli._output import add_row, local_time, number, print_fields, print_json, table
from keel.errors import AlertError
from keel.monitoring._alert_store import STATES, Alert, AlertStore
from keel.monitoring._alerting import alert_evaluator

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
AlertId = Annotated[str, typer.Argument(metavar="ID", help="The alert's id (al_...).")]
_STATE_NAMES = ", ".join((*STATES, "open"))


def build() -> typer.Typer:
    group = typer.Typer(no_args_is_help=True, help="Alerts raised by the monitoring rules.")
    group.command("list")(list_alerts)
    group.command("show")(show)
    group.command("ack")(ack)
    group.command("resolve")(resolve)
    group.command("evaluate")(evaluate)
    return group


def _alerts(ctx: typer.Context) -> AlertStore:
    workspace = open_workspace(ctx)
    return AlertStore(workspace.store, workspace.settings.actor)


def list_alerts(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(metavar="STATE", help=f"Only alerts in it ({_STATE_NAMES}).")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(metavar="NAME", help="Only this one's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Alerts, newest first."""
    if state is not None and state not in (*STATES, "open"):
        raise AlertError(f"unknown alert state '{state}'", fix=f"use one of {_STATE_NAMES}")
    found = _alerts(ctx).list(state=state, endpoint=endpoint)
    if as_json:
        print_json([alert.to_dict() for alert in found])
        return
    out = console(ctx)
    if not found:
        out.print("no alerts")
        return
    listing = table("id", "state", "severity", "rule", "endpoint", "subject", "value", "started",
                    "summary")  # fmt: skip
    for alert in found:
        add_row(listing, alert.id, alert.state, alert.severity, alert.rule, alert.endpoint,
                alert.subject, number(alert.value), local_time(alert.started_at),
                alert.summary)  # fmt: skip
    out.print(listing)


def show(ctx: typer.Context, alert_id: AlertId, as_json: JsonFlag = False) -> None:
    """One alert, its evidence and what happened to it."""
    store = _alerts(ctx)
    alert, events = store.get(alert_id), store.events(alert_id)
    if as_json:
        print_json({**alert.to_dict(), "events": [event.to_dict() for event in events]})
        return
    out = console(ctx)
    _print_alert(ctx, alert)
    evidence = alert.evidence
    columns = ", ".join(c["column"] for c in evidence.get("top_drifting_columns", []))
    print_fields(
        out,
        [
            ("statistic", evidence.get("statistic")),
            ("p-value", number(evidence.get("p_value"))),
            ("rows", evidence.get("rows")),
            ("top drifting columns", columns),
        ],
    )
    history = table("at", "event", "sink", "attempt", "detail")
    for event in events:
        add_row(history, local_time(event.at), event.kind, event.sink, event.attempt, event.detail)
    out.print(history)


def ack(
    ctx: typer.Context,
    alert_id: AlertId,
    note: Annotated[str | None, typer.Option(metavar="TEXT", help="Why, or what next.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Take a firing alert in hand."""
    alert = _alerts(ctx).ack(alert_id, note=note)
    _done(ctx, alert, as_json, "acknowledged")


def resolve(
    ctx: typer.Context,
    alert_id: AlertId,
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="What fixed it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Close an alert (firing or acknowledged)."""
    alert = _alerts(ctx).resolve(alert_id, reason=reason)
    _done(ctx, alert, as_json, "resolved")


def evaluate(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(metavar="NAME", help="Only this one's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate the alert rules over the stored monitor results once."""
    workspace = open_workspace(ctx)
    settings = workspace.settings
    outcome = alert_evaluator(workspace.store, settings.monitoring, settings.actor).evaluate(
        endpoint=endpoint
    )
    if as_json:
        print_json(outcome.to_dict())
        return
    out = console(ctx)
    out.print(f"{len(outcome.fired)} fired, {len(outcome.resolved)} resolved, "
              f"{len(outcome.pending)} pending")  # fmt: skip
    for alert in (*outcome.fired, *outcome.resolved):
        out.print(f"{alert.id} {alert.state}: {escape(alert.summary)}")


def _done(ctx: typer.Context, alert: Alert, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(alert.to_dict())
    else:
        console(ctx).print(f"alert {alert.id} {verb}: {escape(alert.summary)}")


def _print_alert(ctx: typer.Context, alert: Alert) -> None:
    print_fields(console(ctx), [
        ("id", alert.id), ("state", alert.state), ("severity", alert.severity),
        ("rule", alert.rule), ("endpoint", alert.endpoint), ("subject", alert.subject),
        ("summary", alert.summary), ("value", number(alert.value)),
        ("threshold", number(alert.threshold)),
        ("window", f"{local_time(alert.window_start)} .. {local_time(alert.window_end)}"),
        ("started", local_time(alert.started_at)),
        ("acknowledged", f"{local_time(alert.acknowledged_at)} {alert.acknowledged_by or ''}"),
        ("resolved", f"{local_time(alert.resolved_at)} {alert.resolved_by or ''}"),
        ("reason", alert.resolve_reason),
    ])  # fmt: skip
