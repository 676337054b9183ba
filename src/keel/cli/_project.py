"""``keel init`` and ``keel demo``: creating a project and trying keel out in it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from keel._config_template import write_config_template
from keel._demo_data import SNAPSHOT_NAME, VIEW
from keel.cli._context import console, open_workspace, state
from keel.cli._output import add_row, table
from keel.config import CONFIG_FILE_NAME

if TYPE_CHECKING:
    from rich.table import Table

    from keel._demo_serving import Call


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


def demo(
    ctx: typer.Context,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Leave the champion's server running in the foreground until Ctrl-C.",
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the demo's server on 127.0.0.1 (default: a free one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train, track, register and promote two models on a small built-in data set, then serve
    the champion and call it over HTTP."""
    from keel._demo import run_demo
    from keel._demo_serving import ENDPOINT, configured_url, curl_commands, serve_demo

    options = state(ctx)
    out = console(ctx)
    directory = options.target_dir
    if not (directory / CONFIG_FILE_NAME).exists():
        path = write_config_template(directory)
        out.print(f"wrote {escape(str(path))}")
    workspace = open_workspace(ctx)

    def report(step: str) -> None:
        out.print(f"• {escape(step)}")

    result = run_demo(workspace, report)
    with serve_demo(workspace, report, port=port, keep_running=serve) as served:
        prefix = "keel"
        if options.project_dir is not None:
            prefix += f" --dir {shlex.quote(str(options.project_dir))}"
        model, champion_uri = result.model_name, f"models:/{result.model_name}@champion"
        first = served.calls[0].prediction_id
        joined = (
            "SELECT p.prediction_id, p.prediction, f.value AS malignant FROM predictions p "
            "JOIN feedback f USING (prediction_id) ORDER BY p.time DESC LIMIT 10"
        )
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
            (f"{prefix} endpoints history {ENDPOINT}", "the endpoint's revisions"),
            (f"{prefix} log show {first}", "a logged prediction, its inputs and feedback"),
            (f"{prefix} log query {shlex.quote(joined)}", "SQL over the prediction log"),
        ]
        out.print()
        out.print(_logged_table(served.rows, {call.prediction_id: call for call in served.calls}))
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
        if serve:
            url = served.server.url
            out.print(f"[bold]Call the endpoint at {escape(url)}[/bold]")
        else:
            url = configured_url(workspace.settings)
            out.print("[bold]Serve the champion and call it[/bold] (or run `keel demo --serve`)")
            out.print(f"  {escape(f'{prefix} serve --endpoint {ENDPOINT}')}")
        for command, what in curl_commands(url, served):
            out.print(f"  {escape(command)}")
            out.print(f"      {escape(what)}")
        out.print()
        out.print(f"metadata database: {escape(result.database)}")
        out.print(f"artifact store:    {escape(result.artifacts)}")
        if serve:
            out.print()
            out.print(
                f"serving {escape(served.revision.policy.primary.pinned_uri)} at "
                f"{escape(served.server.url)} (pid {served.server.pid}, log "
                f"{escape(str(served.server.log_path))}); press Ctrl-C to stop"
            )
            out.file.flush()  # piped output is block-buffered: show it before blocking
            served.server.wait()
    if serve:
        out.print("stopped the server")


def _logged_table(rows: list[dict[str, Any]], calls: Mapping[str, Call]) -> Table:
    """The demo's predictions as the log holds them, with the request and patient they were for."""
    logged = table(
        "prediction id",
        "request",
        "patient",
        "model",
        "mean radius",
        "p(malignant)",
        "predicted",
        "feedback",
        title="Logged predictions and their feedback",
    )
    for row in rows:
        call = calls[row["prediction_id"]]
        feedback = row["feedback"]
        add_row(
            logged,
            row["prediction_id"],
            call.api,
            call.patient,
            f"{row['model']} v{row['model_version']}",
            f"{row['mean_radius']:.2f}",
            f"{row['p_malignant']:.3f}",
            row["prediction"],
            "—" if feedback is None else f"{row['feedback_name']} = {feedback}",
        )
    return logged
