"""``keel serve``: run the prediction server for the project's endpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from keel.cli._context import open_workspace
from keel.errors import ServingError

logger = logging.getLogger(__name__)


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
    tls_certfile: Annotated[
        Path | None,
        typer.Option(
            metavar="PEM",
            help="Serve HTTPS with this certificate (chain); needs --tls-keyfile "
            "(default: serving.tls_certfile).",
            show_default=False,
        ),
    ] = None,
    tls_keyfile: Annotated[
        Path | None,
        typer.Option(
            metavar="PEM",
            help="The certificate's private key (default: serving.tls_keyfile; an encrypted "
            "key's password: serving.tls_keyfile_password).",
            show_default=False,
        ),
    ] = None,
    tls_ca_certs: Annotated[
        Path | None,
        typer.Option(
            metavar="PEM",
            help="Require client certificates signed by these CAs: mutual TLS "
            "(default: serving.tls_ca_certs).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP: keel's JSON API and the Open Inference Protocol (V2).

    With several workers, the processes share the port; SIGTERM or Ctrl-C stops them all.
    With a certificate and its key, the server speaks HTTPS only.
    """
    from keel.serving._auth import auth_needed
    from keel.serving._server import run_server, run_workers, served_endpoints, serving_app
    from keel.serving._tls import server_tls

    workspace = open_workspace(ctx)
    serving = workspace.settings.serving
    tls = server_tls(
        workspace.settings, certfile=tls_certfile, keyfile=tls_keyfile, ca_certs=tls_ca_certs
    )
    count = workers if workers is not None else serving.workers
    chosen = served_endpoints(workspace, endpoint or None)
    if not chosen:
        raise ServingError(
            "there are no endpoints to serve: create one with `keel endpoints create`"
        )
    names = [item.name for item in chosen]
    host = host if host is not None else serving.host
    port = port if port is not None else serving.port
    auth = auth_needed(serving.auth, host)
    if not auth and serving.auth == "off" and auth_needed("auto", host):
        logger.warning("API keys are off ([serving] auth) on %s, reachable from elsewhere", host)
    if count == 1:
        app = serving_app(workspace, endpoints=names, auth=auth)
        run_server(app, host=host, port=port, tls=tls)
    else:
        run_workers(
            workspace.settings,
            endpoints=names,
            workers=count,
            host=host,
            port=port,
            auth=auth,
            tls=tls,
        )
