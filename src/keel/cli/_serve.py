"""``keel serve``: run the prediction server for the project's endpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._context import open_workspace
from keel.errors import ServingError


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default: serving.host).", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on; 0 picks a free one (default: serving.port).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes (default: serving.workers).", show_default=False
        ),
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            metavar="NAME",
            help="Serve this endpoint (repeat for several; default: every endpoint).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP: keel's JSON API and the Open Inference Protocol (V2)."""
    from keel.serving._server import run_server, serving_app

    workspace = open_workspace(ctx)
    serving = workspace.settings.serving
    count = workers if workers is not None else serving.workers
    if count != 1:
        raise ServingError(
            f"--workers {count}: several worker processes are not supported yet; "
            "run one worker per port behind a load balancer, or use --workers 1"
        )
    app = serving_app(workspace, endpoints=endpoint or None)
    if not app.dataplane.runtimes:
        raise ServingError(
            "there are no endpoints to serve: create one with `keel endpoints create`"
        )
    run_server(
        app,
        host=host if host is not None else serving.host,
        port=port if port is not None else serving.port,
    )
