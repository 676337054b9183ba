"""Per-invocation state of the ``keel`` command and the one place it opens a workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from keel._workspace import Workspace
from keel.config import Settings, project_directory


def _console() -> Console:
    # Messages are never wrapped (ids, paths and commands stay copyable); tables still fit the
    # width because every column keel prints folds its cells (see _output.table).
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Piped or captured: tables are read by grep and scripts, not squeezed into 80 columns.
        console.width = 160
    return console


@dataclass
class CliState:
    """The root options, kept in ``ctx.obj`` for every subcommand."""

    project_dir: Path | None = None
    """``--dir``; None means the current directory (as Settings.load decides it)."""
    actor: str | None = None
    debug: bool = False
    console: Console = field(default_factory=_console)

    @property
    def target_dir(self) -> Path:
        """The project directory, without opening it: where ``init`` and ``demo`` create a
        project, and under which ``data validate`` quarantines rows by default."""
        return project_directory(self.project_dir)


def state(ctx: typer.Context) -> CliState:
    found = ctx.find_object(CliState)
    if found is None:  # a subcommand invoked without the root app (never from `keel`)
        found = ctx.ensure_object(CliState)
    return found


def console(ctx: typer.Context) -> Console:
    return state(ctx).console


def open_workspace(ctx: typer.Context) -> Workspace:
    """The project's workspace, built from ``--dir`` / ``--actor`` (the only place the CLI
    builds keel objects). It is closed when the command's context ends."""
    options = state(ctx)
    overrides: dict[str, Any] = {}
    if options.actor is not None:
        overrides["actor"] = options.actor
    workspace = Workspace(Settings.load(options.project_dir, **overrides))
    return ctx.with_resource(workspace)
