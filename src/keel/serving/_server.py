"""Building the server from a workspace, and running it with uvicorn in one process or several.

    app = serving_app(workspace)                     # every endpoint in the metadata store
    app = serving_app(workspace, endpoints=["churn"])
    run_server(app, host="127.0.0.1", port=8080)     # blocks; Ctrl-C / SIGTERM shut it down
    run_workers(settings, endpoints=["churn"], host="0.0.0.0", port=8080, workers=4)
    run_server(app, host="0.0.0.0", port=8443, tls=server_tls(settings))   # HTTPS (see _tls)

The workspace stays the composition root: the deployment store says what to serve, the registry
loads it, the settings' ``[serving]`` section places the prediction log and bounds request size.
Models are loaded when the server starts (ASGI lifespan), not here, so building an app is cheap.

Several workers
---------------
:func:`run_workers` runs uvicorn's multiprocess supervisor: the parent binds the socket once
and spawns ``workers`` fresh interpreters that accept on it. The parent writes what it resolved
(settings, endpoint names) to a private directory made for this run; each worker's app factory,
:func:`worker_app`, reads it back, so every worker serves exactly what the parent checked, with
no second reading of ``keel.toml`` or the environment. The factory is named by an import string,
as uvicorn expects: a worker then answers the supervisor's health checks while it imports keel.

Each worker loads its own models, writes prediction-log segments of its own (named by pid) and
runs a compactor; segments are claimed with ``flock``, so the compactors share the directory
safely. The supervisor replaces a worker that dies, stops everything when one fails to start,
and on SIGINT / SIGTERM sends SIGTERM to every worker, which finishes its requests in flight and
runs the lifespan shutdown (batchers drained, log closed).

Metrics across workers use prometheus-client's multiprocess mode (see ``_metrics``): the run's
directory holds ``metrics/``, and the parent points ``PROMETHEUS_MULTIPROC_DIR`` at it before the
workers start (that variable is the library's interface, read when a worker imports it; it also
tells a worker where its run's directory is). The directory is removed when the server stops.

TLS is uvicorn's: its options travel with the configuration uvicorn hands each worker, and
every worker loads the certificate files itself (checked once by the parent before).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from keel.errors import ServingError
from keel.serving._app import ServingApp
from keel.serving._auth import Guard
from keel.serving._cache import open_cache
from keel.serving._dataplane import Dataplane
from keel.serving._live import RevisionWatcher
from keel.serving._metrics import ServingMetrics
from keel.serving._predlog import Compactor, PredictionLog
from keel.serving._ratelimit import MemoryLimiter, RateLimiter, RedisLimiter
from keel.serving._runtime import EndpointRuntime
from keel.serving._tls import ServerTLS

if TYPE_CHECKING:
    from keel._workspace import Workspace
    from keel.config import Settings
    from keel.serving._deployments import Endpoint

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's switch to multiprocess mode (read by that library when it is imported)."""


def served_endpoints(
    workspace: Workspace, endpoints: Sequence[str] | None = None
) -> list[Endpoint]:
    """The endpoints a server of ``workspace`` serves: ``endpoints`` by name (each once), or
    every endpoint. Raises :class:`~keel.errors.EndpointNotFound` for an unknown name."""
    deployments = workspace.deployments
    if endpoints is None:
        return deployments.list()
    return [deployments.get(name) for name in dict.fromkeys(endpoints)]


def serving_app(
    workspace: Workspace,
    *,
    endpoints: Sequence[str] | None = None,
    log: PredictionLog | None = None,
    max_queue: int = 1024,
    metrics_dir: str | Path | None = None,
    auth: bool = False,
) -> ServingApp:
    """The ASGI app serving ``endpoints`` (default: all of them) of ``workspace``.

    Raises :class:`~keel.errors.EndpointNotFound` for a name the metadata store does not know.
    ``log`` replaces the prediction log the settings describe (tests use it to inject failures).
    ``metrics_dir`` puts the metrics in multiprocess mode (a worker of :func:`run_workers`).
    ``auth`` requires API keys (see :func:`keel.serving._auth.auth_needed`).
    """
    chosen = served_endpoints(workspace, endpoints)
    settings = workspace.settings
    if log is None:
        log = PredictionLog.from_settings(settings)
    compactor = Compactor(log.directory)
    metrics = ServingMetrics(log, compactor=compactor, multiprocess_dir=metrics_dir)

    def make_runtime(endpoint: Endpoint) -> EndpointRuntime:
        return EndpointRuntime(
            endpoint,
            workspace.registry,
            max_queue=max_queue,
            observer=metrics.batch_observer(endpoint.name),
            inline_below_ms=settings.serving.inline_below_ms,
            features=workspace.features if endpoint.policy.features else None,
            breaker_options=breaker_options,
            on_breaker_transition=metrics.breaker_observer(endpoint.name),
            pii_mode=serving.pii_mode,
            pii_key=serving.pii_key,
        )

    serving = settings.serving
    breaker_options = {
        "window_seconds": serving.breaker_window_seconds,
        "min_requests": serving.breaker_min_requests,
        "error_rate": serving.breaker_error_rate,
        "open_seconds": serving.breaker_open_seconds,
    }
    dataplane = Dataplane(
        {e.name: make_runtime(e) for e in chosen},
        log,
        metrics,
        max_request_rows=serving.max_request_rows,
    )
    for name in dataplane.runtimes:
        metrics.watch_queue(name, functools.partial(_queued, dataplane, name))
    watcher = RevisionWatcher(
        dataplane,
        workspace.deployments,
        make_runtime,
        interval_seconds=settings.serving.revision_poll_seconds,
        keep_previous_seconds=settings.serving.keep_previous_seconds,
    )
    guard = _guard(workspace) if auth else None
    _watch_dependencies(metrics, dataplane, watcher, guard)
    return ServingApp(
        dataplane,
        max_request_bytes=settings.serving.max_request_bytes,
        compactor=compactor,
        watcher=watcher,
        guard=guard,
        deployments=workspace.deployments,
        open_cache=functools.partial(
            open_cache,
            serving.cache_url,
            ttl_seconds=serving.cache_ttl_seconds,
            max_entries=serving.cache_max_entries,
        ),
    )


def _watch_dependencies(
    metrics: ServingMetrics, dataplane: Dataplane, watcher: RevisionWatcher, guard: Guard | None
) -> None:
    """``keel_dependency_up``: what each degradation ``/readyz`` details shows, as a gauge."""
    metrics.watch_dependency("metadata", lambda: watcher.metadata_reachable)
    metrics.watch_dependency(
        "cache",  # opened at startup: reachable until then
        lambda: dataplane.cache is None or bool(dataplane.cache.status()["reachable"]),
    )
    if guard is not None:
        keys, limiter = guard.keys, guard.limiter
        metrics.watch_dependency("api_keys", lambda: bool(keys.status()["database_reachable"]))
        metrics.watch_dependency("ratelimit", lambda: bool(limiter.status().get("reachable", True)))


def _guard(workspace: Workspace) -> Guard:
    url = workspace.settings.serving.ratelimit_url
    limiter: RateLimiter = MemoryLimiter() if url is None else RedisLimiter(url)
    return Guard(workspace.keys, limiter)


def _queued(dataplane: Dataplane, endpoint: str) -> int:
    """Requests waiting in the queue of the runtime serving ``endpoint`` now."""
    stats = dataplane.runtimes[endpoint].batcher_stats
    return 0 if stats is None else stats.queued


def _options(
    *, host: str, port: int, log_level: str, tls: ServerTLS | None = None
) -> dict[str, Any]:
    """uvicorn's options for keel: uvloop, httptools, no access log (requests are counted in
    metrics), 30 s for the requests in flight to finish when stopping, keel's own loggers
    printed like uvicorn's (level prefix, stderr) at the same level, and TLS if given (then
    uvicorn's "running on" line says https://)."""
    return {
        **({} if tls is None else tls.uvicorn_options()),
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "log_config": _log_config(log_level),
        "timeout_graceful_shutdown": 30,
    }


def _log_config(log_level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["keel"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return config


def run_server(
    app: ServingApp,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    tls: ServerTLS | None = None,
) -> None:
    """Serve ``app`` with uvicorn (uvloop, httptools) until interrupted; one process, over
    HTTPS when ``tls`` is given.

    uvicorn handles SIGINT and SIGTERM: it stops accepting, finishes the requests in flight and
    runs the lifespan shutdown (batchers drained, prediction log closed). It then raises the
    signal again for the handler it found; SIGTERM's is set to exit 0 here, so a graceful stop
    is a success to whatever supervises the process (systemd, Kubernetes), not "killed".
    """
    import uvicorn

    config = uvicorn.Config(app, **_options(host=host, port=port, log_level=log_level, tls=tls))
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


HEALTHCHECK_TIMEOUT_SECONDS = 30
"""How long uvicorn's supervisor waits for a worker to answer a health check."""

_WORKER_FILE = "worker.json"
_FAILED_FILE = "failed"
_METRICS_DIR = "metrics"


def worker_app() -> ServingApp:
    """The app factory uvicorn calls in each worker of :func:`run_workers`
    (``keel.serving._server:worker_app``): the app of the settings and endpoints the parent
    wrote in this run's directory, with its metrics in multiprocess mode."""
    from keel._workspace import Workspace
    from keel.config import Settings

    metrics_dir = Path(os.environ[MULTIPROC_ENV])  # set by run_workers, which made the directory
    run_dir = metrics_dir.parent
    try:
        spec = orjson.loads((run_dir / _WORKER_FILE).read_bytes())
        # The workspace lives as long as the worker: its registry loads the models at startup.
        workspace = Workspace(Settings.model_validate(spec["settings"]))
    except Exception as error:
        _startup_failed(run_dir, error)
    try:
        return serving_app(
            workspace,
            endpoints=spec["endpoints"],
            max_queue=spec["max_queue"],
            metrics_dir=metrics_dir,
            auth=spec["auth"],
        )
    except Exception as error:
        workspace.close()
        _startup_failed(run_dir, error)


def _startup_failed(run_dir: Path, error: Exception) -> NoReturn:
    """Exit a worker that cannot build its app, leaving the reason for the parent. uvicorn
    restarts a worker that exits with any code but STARTUP_FAILURE, and this one would fail the
    same way forever."""
    from uvicorn.config import STARTUP_FAILURE

    logger.error("worker %d could not build the app", os.getpid(), exc_info=error)
    with contextlib.suppress(OSError):
        (run_dir / _FAILED_FILE).write_text(f"{type(error).__name__}: {error}")
    sys.exit(STARTUP_FAILURE)


def run_workers(
    settings: Settings,
    *,
    endpoints: Sequence[str],
    host: str,
    port: int,
    workers: int,
    max_queue: int = 1024,
    log_level: str = "info",
    auth: bool = False,
    tls: ServerTLS | None = None,
) -> None:
    """Serve ``endpoints`` from ``workers`` processes sharing one socket, until SIGINT or
    SIGTERM stops them all (each finishes its requests in flight and closes its log); over
    HTTPS when ``tls`` is given.

    A worker that dies is replaced. When one cannot build its app (the metadata store is
    unreachable, an endpoint was deleted meanwhile), the server stops and this raises
    :class:`~keel.errors.ServingError` with the reason.
    """
    import uvicorn

    if workers < 2:
        raise ValueError(f"run_workers needs at least 2 workers, not {workers}; use run_server")
    if not endpoints:
        raise ServingError("there are no endpoints to serve")
    run_dir = Path(tempfile.mkdtemp(prefix="keel-serve-"))  # new, empty, private (mode 0700)
    metrics_dir = run_dir / _METRICS_DIR
    metrics_dir.mkdir()
    spec = {
        "settings": settings.model_dump(mode="json"),
        "endpoints": list(endpoints),
        "max_queue": max_queue,
        "auth": auth,
    }
    (run_dir / _WORKER_FILE).write_bytes(orjson.dumps(spec))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)  # inherited by the workers uvicorn spawns
    try:
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            # A spawned worker answers health checks only once it has re-imported the parent's
            # main module (the `keel` command: seconds, more on a busy machine); uvicorn's 5 s
            # default killed workers that were merely starting. A hung worker still goes.
            timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT_SECONDS,
            **_options(host=host, port=port, log_level=log_level, tls=tls),
        )
        failed = run_dir / _FAILED_FILE
        if failed.exists():
            raise ServingError(f"a worker could not start: {failed.read_text()}")
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(run_dir, ignore_errors=True)
