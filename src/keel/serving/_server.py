"""Building the server from a workspace, and running it with uvicorn.

    app = serving_app(workspace)                     # every endpoint in the metadata store
    app = serving_app(workspace, endpoints=["churn"])
    run_server(app, host="127.0.0.1", port=8080)     # blocks; Ctrl-C / SIGTERM shut it down

The workspace stays the composition root: the deployment store says what to serve, the registry
loads it, the settings' ``[serving]`` section places the prediction log and bounds request size.
Models are loaded when the server starts (ASGI lifespan), not here, so building an app is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from keel.serving._app import ServingApp
from keel.serving._dataplane import Dataplane
from keel.serving._metrics import ServingMetrics
from keel.serving._predlog import Compactor, PredictionLog
from keel.serving._runtime import EndpointRuntime

if TYPE_CHECKING:
    from keel._workspace import Workspace


def serving_app(
    workspace: Workspace,
    *,
    endpoints: Sequence[str] | None = None,
    log: PredictionLog | None = None,
    max_queue: int = 1024,
) -> ServingApp:
    """The ASGI app serving ``endpoints`` (default: all of them) of ``workspace``.

    Raises :class:`~keel.errors.EndpointNotFound` for a name the metadata store does not know.
    ``log`` replaces the prediction log the settings describe (tests use it to inject failures).
    """
    deployments = workspace.deployments
    if endpoints is None:
        chosen = deployments.list()
    else:
        chosen = [deployments.get(name) for name in dict.fromkeys(endpoints)]
    settings = workspace.settings
    if log is None:
        log = PredictionLog.from_settings(settings)
    metrics = ServingMetrics(log)
    runtimes = {
        endpoint.name: EndpointRuntime(
            endpoint,
            workspace.registry,
            max_queue=max_queue,
            observer=metrics.batch_observer(endpoint.name),
        )
        for endpoint in chosen
    }
    return ServingApp(
        Dataplane(runtimes, log, metrics),
        max_request_bytes=settings.serving.max_request_bytes,
        compactor=Compactor(log.directory),
    )


def run_server(app: ServingApp, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn (uvloop, httptools) until interrupted; one process.

    uvicorn handles SIGINT and SIGTERM: it stops accepting, finishes the requests in flight and
    runs the lifespan shutdown (batchers drained, prediction log closed).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()
