"""The root ``keel`` command: global options, error reporting, and the command groups."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from keel.cli import (
    _alerts,
    _data,
    _endpoints,
    _features,
    _keys,
    _log,
    _models,
    _monitor,
    _monitor_report,
    _monitor_run,
    _project,
    _runs,
    _serve,
)
from keel.cli._context import CliState
from keel.cli._output import error_line
from keel.errors import KeelError


class _KeelGroup(TyperGroup):
    """Turns a :class:`KeelError` raised anywhere below into one line on stderr and exit code
    1 (with the traceback first under ``--debug``). Usage errors stay click's (exit code 2);
    anything else is a bug and propagates with its traceback."""

    # ``ctx`` is typer's vendored click context, which typer does not export by name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeelError as error:
            options = ctx.obj if isinstance(ctx.obj, CliState) else None
            if options is not None and options.debug:
                typer.echo(traceback.format_exc(), err=True, nl=False)
            typer.echo(error_line(error), err=True)
            raise typer.Exit(1) from None


def _root(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="PATH",
            help="Project directory holding keel.toml (default: the current directory).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="Who is acting, recorded in audit entries (overrides `actor`)."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback when a command fails.")
    ] = False,
) -> None:
    """keel: track runs, register models and move them through their lifecycle."""
    ctx.obj = CliState(project_dir=directory, actor=actor, debug=debug)


def build_app() -> typer.Typer:
    """The ``keel`` application; every command is registered here, explicitly."""
    app = typer.Typer(
        name="keel",
        cls=_KeelGroup,
        no_args_is_help=True,
        add_completion=False,
        # typer's rich traceback handler would dress every failure up as a full-screen panel
        # (with local variables, URLs and their passwords among them, when show_locals is on):
        # keel errors are one line, and bugs get Python's plain traceback.
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    app.command("init")(_project.init)
    app.command("demo")(_project.demo)
    app.add_typer(_runs.build(), name="runs")
    app.add_typer(_models.build(), name="models")
    app.add_typer(_data.build(), name="data")
    app.add_typer(_features.build(), name="features")
    app.add_typer(_log.build(), name="log")
    app.add_typer(_endpoints.build(), name="endpoints")
    app.add_typer(_keys.build(), name="keys")
    app.add_typer(_alerts.build(), name="alerts")
    monitor = _monitor.build()
    _monitor_run.add_commands(monitor)
    _monitor_report.add_commands(monitor)
    app.add_typer(monitor, name="monitor")
    app.command("serve")(_serve.serve)
    return app


app = build_app()


def main() -> None:
    """Entry point of the ``keel`` console script."""
    app(prog_name="keel")
