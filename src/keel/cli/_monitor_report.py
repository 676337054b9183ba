"""``keel monitor report ENDPOINT --out report.html``: the monitoring report as one HTML file."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from keel._monitoring_settings import parse_duration
from keel.cli._context import console, open_workspace
from keel.cli._output import write_text
from keel.errors import MonitoringError
from keel.monitoring._report_data import gather_report
from keel.monitoring._report_html import render_report


def add_commands(group: typer.Typer) -> None:
    """Add ``report`` to the ``keel monitor`` group."""
    group.command("report")(report)


def report(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint to report on.")],
    out: Annotated[
        str, typer.Option("--out", metavar="FILE", help="Where to write the HTML file.")
    ] = "report.html",
    last: Annotated[
        str,
        typer.Option(
            "--last",
            metavar="DURATION",
            help="How far back from the endpoint's latest window (90m, 12h, 7d).",
        ),
    ] = "7d",
) -> None:
    """One self-contained HTML page: drift per column, distributions, performance, alerts."""
    try:
        span = parse_duration(last)
    except ValueError as error:
        raise MonitoringError(str(error), fix="e.g. --last 7d") from None
    workspace = open_workspace(ctx)
    data = gather_report(workspace, endpoint, span_seconds=span, now=time.time())
    write_text(out, render_report(data))
    verdict = data.latest.status if data.latest else "no windows yet"
    console(ctx).print(
        f"report of {escape(endpoint)} written to {escape(out)} "
        f"({len(data.windows)} windows, latest: {escape(verdict)}, {data.firing} alerts firing)"
    )
