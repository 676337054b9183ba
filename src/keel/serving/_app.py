"""The ASGI application: a small router over a dict of routes, with no framework in the way.

    app = ServingApp(dataplane, max_request_bytes=8 << 20, compactor=Compactor(log_dir))
    uvicorn.run(app, loop="uvloop", http="httptools")     # or any ASGI server

Routes (``{name}`` is an endpoint, ``{v}`` its model version)::

    GET  /healthz  /readyz  /metrics  /openapi.json  /docs                 (_openapi)
    POST /v1/endpoints/{name}/predict   /v1/endpoints/{name}/feedback        (_native)
    GET  /v1/endpoints  /v1/endpoints/{name}                                  (_admin)
    POST /v1/endpoints/{name}/rollback   PUT /v1/endpoints/{name}/arms
    GET  /v2/health/live  /v2/health/ready                                    (_v2)
    GET  /v2/models/{name}[/versions/{v}]   .../ready
    POST /v2/models/{name}[/versions/{v}]/infer

A route is found by one dict lookup on the path's segments, with the endpoint name (and
version) segments replaced by ``*``. Every failure is a JSON body ``{"error": ..., "code": ...}``
with a 4xx for the client's mistakes (400 malformed JSON, 404 unknown route / endpoint, 405
wrong method, with ``Allow``, 413 body over ``max_request_bytes``, 422 invalid inputs), 503 when
overloaded or not ready, and 500 (logged) only when the model itself fails. ``/openapi.json``
describes exactly this, per endpoint, from the models' signatures (``/docs`` as a web page).

The ASGI lifespan protocol runs :meth:`ServingApp.startup` and :meth:`ServingApp.shutdown`;
in-process tests whose client does not speak lifespan call them directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from keel.serving import _admin, _native, _openapi, _v2
from keel.serving._auth import Guard
from keel.serving._cache import PredictionCache
from keel.serving._dataplane import Dataplane, Problem
from keel.serving._docs_page import docs_page
from keel.serving._http import (
    JSON,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    ok,
    read_body,
)
from keel.serving._live import RevisionWatcher
from keel.serving._metrics import CONTENT_TYPE
from keel.serving._predlog import Compactor
from keel.serving._routing import routing_header
from keel.serving._runtime import EndpointRuntime

if TYPE_CHECKING:
    from keel.serving._deployments import DeploymentStore

logger = logging.getLogger(__name__)

Handler = Callable[["ServingApp", Request], Awaitable[Response]]


class ServingApp:
    """The ASGI callable of ``keel serve``; every object it uses is built by ``serving_app``."""

    def __init__(
        self,
        dataplane: Dataplane,
        *,
        max_request_bytes: int = 8 * 1024 * 1024,
        compactor: Compactor | None = None,
        compaction_interval_seconds: float = 30.0,
        watcher: RevisionWatcher | None = None,
        open_cache: Callable[[], PredictionCache] | None = None,
        guard: Guard | None = None,
        deployments: DeploymentStore | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.guard = guard
        """Checks API keys, scopes and rate limits; None when auth is off."""
        self.deployments = deployments
        """Where the admin routes read and change endpoints (see ``_admin``)."""
        self._open_cache = open_cache
        self.watcher = watcher
        if watcher is not None:
            watcher.on_switch = self._switched
        self.metrics = dataplane.metrics
        self.max_request_bytes = max_request_bytes
        self.compactor = compactor
        self.compaction_interval_seconds = compaction_interval_seconds
        self._started = False
        self._closed = False
        self._openapi: tuple[bytes, bytes] | None = None  # (JSON, HTML), once models settled

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        """Replay what a crash left in the log, load every endpoint's model (off the loop),
        start background compaction. An endpoint whose model fails to load stays not ready
        (``/readyz`` says why); the others serve."""
        if self._started:
            return
        self._started = True
        if self.compactor is not None:
            result = await asyncio.to_thread(self.compactor.run_once)
            if result.segments:
                logger.info("replayed %d log segments into Parquet at startup", result.segments)
        for runtime in self.dataplane.runtimes.values():
            try:
                await asyncio.to_thread(runtime.load)
            except Exception:
                logger.exception("endpoint '%s': the model failed to load", runtime.name)
                continue
            assert runtime.load_seconds is not None
            primary = runtime.policy.primary
            self.metrics.model_loaded(
                runtime.name, primary.name, primary.version, runtime.load_seconds
            )
            logger.info(
                "endpoint '%s' (revision %d): %s loaded in %.2f s%s",
                runtime.name,
                runtime.revision,
                primary.pinned_uri,
                runtime.load_seconds,
                ", features from the online store" if runtime.feature_step else "",
            )
        if self.compactor is not None:
            self.compactor.start(self.compaction_interval_seconds)
        if self.watcher is not None:
            self.watcher.start()
        if self._open_cache is not None:
            # Opened here, on the serving loop: Redis's asyncio connections belong to it.
            self.dataplane.cache = self._open_cache()
        self.metrics.start()  # a worker of several publishes its sampled values from now on

    def _switched(self, runtime: EndpointRuntime) -> None:
        """A live revision change: record the new model's load, rebuild the OpenAPI document
        (the signature may have changed)."""
        if runtime.load_seconds is not None:
            primary = runtime.policy.primary
            self.metrics.model_loaded(
                runtime.name, primary.name, primary.version, runtime.load_seconds
            )
        self._openapi = None

    async def shutdown(self) -> None:
        """Drain the batchers, then close the prediction log (its last group is written)."""
        if self._closed:
            return
        self._closed = True
        if self.watcher is not None:
            await self.watcher.stop()  # closes the runtimes kept for rollback
        if self.dataplane.cache is not None:
            await self.dataplane.cache.close()
        if self.guard is not None:
            self.guard.close()
        for runtime in self.dataplane.runtimes.values():
            await runtime.aclose()
        self.dataplane.log.close()
        if self.compactor is not None:
            self.compactor.stop()
        self.metrics.close()  # after the log and compactor: their last counts are published

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as error:
                    logger.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        metrics.in_flight.inc()
        request: Request | None = None
        allow: list[tuple[bytes, bytes]] = []
        try:
            try:
                handler, params = self._route(scope["path"], scope["method"])
                needed = _SCOPES.get(handler)
                # One dictionary for every lookup below (ASGI names are lower-case; a
                # repeated header counts by its last value).
                headers: dict[bytes, bytes] = dict(scope["headers"])
                key = None
                if self.guard is not None and needed is not None:  # before reading the body
                    key = await self.guard.check(headers, needed)
                body = await read_body(headers, receive, self.max_request_bytes)
                request = Request(params, body, headers, key)
                status, payload, content_type = await handler(self, request)
            except Problem as problem:
                status, payload, content_type = problem.status, orjson.dumps(problem.body()), JSON
                metrics.error(request.endpoint if request else "", problem.code)
                if isinstance(problem, _NotAllowed):
                    allow.append((b"allow", problem.allow.encode()))
                allow += problem.headers
            except Exception as error:  # a bug: answer, log, and keep the worker serving
                logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
                body_ = {"error": f"internal error: {type(error).__name__}", "code": "internal"}
                status, payload, content_type = 500, orjson.dumps(body_), JSON
                metrics.error(request.endpoint if request else "", "internal")
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(payload)).encode()),
                        *allow,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
        finally:
            metrics.in_flight.dec()
        if request is not None and request.endpoint:
            metrics.request(
                request.endpoint,
                request.version,
                request.api,
                status,
                time.perf_counter() - started,
            )

    def _route(self, path: str, method: str) -> tuple[Handler, list[str]]:
        parts = path.strip("/").split("/")
        methods = None if "*" in parts else ROUTES.get(tuple(parts))
        params: list[str] = []
        if methods is None and len(parts) >= 3 and "*" not in parts:
            key = list(parts)
            params.append(key[2])
            key[2] = "*"
            methods = ROUTES.get(tuple(key))
            if methods is None and len(parts) >= 5 and parts[3] == "versions":
                params.append(key[4])
                key[4] = "*"
                methods = ROUTES.get(tuple(key))
        if methods is None:
            raise Problem(404, "not_found", f"no route for {path}")
        handler = methods.get(method)
        if handler is None:
            raise _NotAllowed(method, path, sorted(methods))
        return handler, params


class _NotAllowed(Problem):
    """405, naming the methods the path takes (also its ``Allow`` header, as RFC 9110 asks)."""

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        self.allow = ", ".join(allowed)
        super().__init__(
            405, "method_not_allowed", f"{method} is not allowed on {path} (use {self.allow})"
        )


# -- handlers -------------------------------------------------------------------------------------


async def _healthz(app: ServingApp, request: Request) -> Response:
    return ok({"status": "alive"})


async def _readyz(app: ServingApp, request: Request) -> Response:
    ready, detail = app.dataplane.readiness()
    if app.watcher is not None:
        detail["revisions"] = app.watcher.status()
    if app.guard is not None:  # keys answered from memory, or limits kept per process
        detail["api_keys"] = app.guard.keys.status()
        detail["ratelimit"] = app.guard.limiter.status()
    return ok(detail, 200 if ready else 503)


async def _metrics(app: ServingApp, request: Request) -> Response:
    # Off the event loop: merging every worker's metric files takes milliseconds (measured:
    # ~4 ms a worker), the request path's budget for a whole prediction.
    body = await asyncio.to_thread(app.metrics.exposition)
    return 200, body, CONTENT_TYPE.encode()


async def _predict(app: ServingApp, request: Request) -> Response:
    runtime = _runtime(app, request, "v1")
    key = routing_header(request.headers) if runtime.router is not None else None
    return ok(await _native.predict(app.dataplane, runtime, request.json(), key))


async def _feedback(app: ServingApp, request: Request) -> Response:
    runtime = _runtime(app, request, "v1")
    return ok(await _native.feedback(app.dataplane, runtime, request.json()))


async def _v2_live(app: ServingApp, request: Request) -> Response:
    return ok({"live": True})


async def _v2_ready(app: ServingApp, request: Request) -> Response:
    ready, _ = app.dataplane.readiness()
    return ok({"ready": ready}, 200 if ready else 400)


async def _v2_metadata(app: ServingApp, request: Request) -> Response:
    runtime = _runtime(app, request, "v2")
    _v2.check_version(runtime, _version(request))
    return ok(_v2.metadata(runtime))


async def _v2_model_ready(app: ServingApp, request: Request) -> Response:
    runtime = _runtime(app, request, "v2")
    _v2.check_version(runtime, _version(request))
    return ok({"name": runtime.name, "ready": runtime.ready}, 200 if runtime.ready else 400)


async def _v2_infer(app: ServingApp, request: Request) -> Response:
    runtime = _runtime(app, request, "v2")
    try:
        payload = request.json()
    except Problem as problem:
        problem.status = 400
        raise
    key = routing_header(request.headers) if runtime.router is not None else None
    return ok(await _v2.infer(app.dataplane, runtime, payload, _version(request), key))


async def _openapi_json(app: ServingApp, request: Request) -> Response:
    return 200, _documents(app)[0], JSON


async def _docs(app: ServingApp, request: Request) -> Response:
    return 200, _documents(app)[1], b"text/html; charset=utf-8"


def _documents(app: ServingApp) -> tuple[bytes, bytes]:
    """The OpenAPI document and its page, kept once every model has loaded or failed to: until
    then an endpoint is documented generically, so the answer is not cached."""
    if app._openapi is not None:
        return app._openapi
    document = _openapi.openapi_document(
        app.dataplane,
        max_request_bytes=app.max_request_bytes,
        scope_of=lambda method, path: _SCOPES.get(app._route(path, method)[0]),
        auth=app.guard is not None,
    )
    built = orjson.dumps(document), docs_page(document).encode()
    runtimes = app.dataplane.runtimes.values()
    if all(runtime.ready or runtime.error is not None for runtime in runtimes):
        app._openapi = built
    return built


def _runtime(app: ServingApp, request: Request, api: str) -> Any:
    request.api = api
    if api == "v2":
        runtime = app.dataplane.runtimes.get(request.params[0])
        if runtime is None:
            raise Problem(404, "not_found", f"model '{request.params[0]}' not found")
    else:
        runtime = app.dataplane.runtime(request.params[0])
    request.endpoint = runtime.name
    request.version = str(runtime.policy.primary.version)
    return runtime


def _version(request: Request) -> str | None:
    return request.params[1] if len(request.params) > 1 else None


ROUTES: dict[tuple[str, ...], dict[str, Handler]] = {
    ("healthz",): {"GET": _healthz},
    ("readyz",): {"GET": _readyz},
    ("metrics",): {"GET": _metrics},
    ("openapi.json",): {"GET": _openapi_json},
    ("docs",): {"GET": _docs},
    ("v1", "endpoints", "*", "predict"): {"POST": _predict},
    ("v1", "endpoints", "*", "feedback"): {"POST": _feedback},
    ("v1", "endpoints"): {"GET": _admin.list_endpoints},
    ("v1", "endpoints", "*"): {"GET": _admin.show_endpoint},
    ("v1", "endpoints", "*", "rollback"): {"POST": _admin.rollback},
    ("v1", "endpoints", "*", "arms"): {"PUT": _admin.set_arms},
    ("v2", "health", "live"): {"GET": _v2_live},
    ("v2", "health", "ready"): {"GET": _v2_ready},
    ("v2", "models", "*"): {"GET": _v2_metadata},
    ("v2", "models", "*", "ready"): {"GET": _v2_model_ready},
    ("v2", "models", "*", "infer"): {"POST": _v2_infer},
    ("v2", "models", "*", "versions", "*"): {"GET": _v2_metadata},
    ("v2", "models", "*", "versions", "*", "ready"): {"GET": _v2_model_ready},
    ("v2", "models", "*", "versions", "*", "infer"): {"POST": _v2_infer},
}
"""Path segments (``*`` for the endpoint name and version) -> method -> handler; a constant
table of functions, built once at import without side effects."""

_SCOPES: dict[Handler, str] = {
    _predict: "predict",
    _v2_infer: "predict",
    _v2_metadata: "predict",
    _v2_model_ready: "predict",
    _feedback: "feedback",
    _admin.list_endpoints: "admin",
    _admin.show_endpoint: "admin",
    _admin.rollback: "admin",
    _admin.set_arms: "admin",
}
"""The API-key scope each endpoint route needs when auth is on; the others stay open (and
the admin routes refuse every request while auth is off, see ``_admin``)."""
