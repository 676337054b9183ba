"""``keel init`` and ``keel demo``: creating a project and trying keel out in it."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer
from rich.markup import escape

from keel._demo_data import SNAPSHOT_NAME, VIEW
from keel.cli._context import console, open_workspace, state
from keel.config import CONFIG_FILE_NAME, write_config_template


def init(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing keel.toml.")
    ] = False,
) -> None:
    """Write a commented keel.toml (every setting with its default) into the project directory."""
    path = write_config_template(state(ctx).target_dir, force=force)
    out = console(ctx)
    out.print(f"wrote {escape(str(path))}")
    out.print("edit it to point keel at a shared database or object store, or keep the defaults")


def demo(ctx: typer.Context) -> None:
    """Train, track, register and promote two models on a small built-in data set."""
    from keel._demo import run_demo

    options = state(ctx)
    out = console(ctx)
    directory = options.target_dir
    if not (directory / CONFIG_FILE_NAME).exists():
        path = write_config_template(directory)
        out.print(f"wrote {escape(str(path))}")
    workspace = open_workspace(ctx)
    result = run_demo(workspace, lambda step: out.print(f"• {escape(step)}"))

    prefix = "keel"
    if options.project_dir is not None:
        prefix += f" --dir {shlex.quote(str(options.project_dir))}"
    model, champion_uri = result.model_name, f"models:/{result.model_name}@champion"
    commands = [
        (f"{prefix} runs list --experiment {result.experiment}", "the runs just tracked"),
        (f"{prefix} runs compare {' '.join(result.run_ids)}", "their params and metrics"),
        (
            f"{prefix} runs history {result.run_ids[-1]} iteration_log_loss",
            "a metric curve",
        ),
        (f"{prefix} models show {model}", "every version, its status and aliases"),
        (f"{prefix} models card {champion_uri}", "the champion's model card"),
        (f"{prefix} models audit {model}", "who changed what, when and why"),
        (f"{prefix} models export {champion_uri} ./{model}", "a self-contained copy"),
        (f"{prefix} data show {SNAPSHOT_NAME}", "the snapshot's schema, profile and lineage"),
        (f"{prefix} features list", "the feature view and its version"),
        (
            f"{prefix} features get -f {VIEW}:mean_radius -f radius_ratio --entity "
            + shlex.quote('{"patient_id": 1}'),
            "a patient's features from the online store",
        ),
        (f"{prefix} features skew", "online lookups recomputed offline, compared per feature"),
    ]
    out.print()
    out.print(
        f"[bold]done in {result.wall_time_seconds:.1f}s[/bold]: champion is "
        f"{escape(result.champion_uri)} ({result.metric} {result.scores[result.champion]:.4f})"
    )
    out.print()
    out.print("[bold]What to look at next[/bold]")
    for command, what in commands:
        out.print(f"  {escape(command)}")
        out.print(f"      {escape(what)}")
    out.print()
    out.print(f"metadata database: {escape(result.database)}")
    out.print(f"artifact store:    {escape(result.artifacts)}")
