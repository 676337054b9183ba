"""Where a keel request's time goes, without HTTP: the ASGI apps called directly, pieces removed.

    taskset -c 1 .venv/bin/python bench/serving_inprocess.py [--model logistic] [--calls 5000]

Builds the same keel project as bench/serving.py (a registered model, endpoint ``bench``, the
prediction log on), starts the app (models loaded), then times ``await app(scope, receive,
send)`` in a uvloop loop for: the thin app of bench/thin_server.py; keel with everything on;
keel with one piece removed (the log append, validation, metrics, or the model replaced by a
constant answer); and the model call alone. Variants are interleaved over ``--rounds`` rounds
and the medians printed, in µs per request: the difference between "keel" and a variant is
what that piece costs inside the request path (which can exceed its cost measured alone).

Issue 6's pieces are measured the same way, each on an endpoint of its own serving the same
model version: API keys on (the key checked and rate-limited on every request); the prediction
cache on, answering every request from it (the hit path) or missing every time (each request
another record: lookup, model, store); a 90/10 split of two arms chosen by routing key; one
shadow version mirrored every request (its model call runs on its own thread of the same
process, so its CPU is part of the cost); and everything but the shadow at once. The circuit
breaker is always on. The "keel" line there posts the same varied records as the cache-miss
line, so the two compare like for like.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from _common import machine
from serving import keel
from serving_models import FEATURES, MODELS, fit, request_body, training_data
from thin_server import make_app

App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


async def per_request(
    app: App,
    path: str,
    body: bytes | list[bytes],
    calls: int,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> float:
    """µs per request of ``calls`` sequential requests posting ``body`` to ``path`` (a list of
    bodies: one after the other, in turn)."""
    bodies = body if isinstance(body, list) else [body]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json"), *(headers or [])],
        "query_string": b"",
    }
    messages = [{"type": "http.request", "body": each, "more_body": False} for each in bodies]
    message = messages[0]

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: Any) -> None:
        return None

    started = time.perf_counter()
    for call in range(calls):
        message = messages[call % len(messages)]
        await app(scope, receive, send)
    return (time.perf_counter() - started) / calls * 1e6


class _NoMetrics:
    """Accepts every metrics call and does nothing."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


async def measure(
    model: str, calls: int, rounds: int, only: list[str] | None = None
) -> dict[str, list[float]]:
    from keel import Settings, Workspace
    from keel.serving._server import serving_app

    work = Path(tempfile.mkdtemp(prefix="keel-bench-inprocess-"))
    command, path = keel(model, work / "unused", work)
    project = command[command.index("--dir") + 1]
    workspace = Workspace(Settings.load(project))
    served = workspace.deployments.get("bench").policy
    primary = served.primary.pinned_uri
    batching = {"max_batch_size": served.max_batch_size}
    batching["max_batch_wait_ms"] = served.max_batch_wait_ms  # type: ignore[assignment]
    x, _ = training_data()
    example = pd.DataFrame(x[:100], columns=FEATURES)
    other = workspace.registry.register(
        served.primary.name, fit(model, feature_names=True), input_example=example
    ).uri
    arms = [(primary, 90.0), (other, 10.0)]
    create = workspace.deployments.create_endpoint
    create("bench-cached", primary, cache=True, **batching)
    create("bench-arms", primary, arms=arms, **batching)
    create("bench-shadow", primary, shadows=[other], **batching)
    create("bench-all", primary, cache=True, arms=arms, **batching)
    names = ["bench", "bench-cached", "bench-arms", "bench-shadow", "bench-all"]
    _, secret = workspace.keys.create("bench", ["predict"], rate_per_second=1e9, burst=10**9)
    key = [(b"authorization", f"Bearer {secret}".encode())]
    app = serving_app(workspace, endpoints=names)
    await app.startup()
    auth_app = serving_app(workspace, endpoints=names, auth=True)
    await auth_app.startup()
    cached_path = path.replace("/bench/", "/bench-cached/")
    thin = make_app(fit(model))
    body = request_body()
    record = orjson.loads(body)["inputs"]
    # Records never sent before, for each varied line of each round: a cache (keyed by model
    # version and record, whatever the endpoint) never answers one of them.
    fresh = iter(range(10**9))

    def varied() -> list[bytes]:
        return [
            orjson.dumps({"inputs": {**record, "f0": record["f0"] + next(fresh) * 1e-9}})
            for _ in range(calls)
        ]

    routed = [(b"x-keel-routing-key", b"user-42")]
    dataplane = app.dataplane
    runtime = dataplane.runtimes["bench"]
    batcher = runtime._batcher  # the bench reaches inside to replace single pieces
    assert batcher is not None
    constant = runtime._run_batch([[record]])
    real = (dataplane.log.append, app.metrics, batcher._run_batch)

    async def no_log(entries: Any) -> None:
        return None

    def restore() -> None:
        dataplane.log.append, app.metrics, batcher._run_batch = real  # type: ignore[method-assign]
        dataplane.metrics = real[1]
        runtime.__dict__.pop("validate", None)

    def without_log() -> None:
        dataplane.log.append = no_log  # type: ignore[method-assign]

    def without_validation() -> None:
        runtime.validate = lambda records: []  # type: ignore[method-assign]

    def without_metrics() -> None:
        app.metrics = dataplane.metrics = _NoMetrics()  # type: ignore[assignment]

    def constant_model() -> None:
        batcher._run_batch = lambda items: constant  # type: ignore[method-assign]

    variants: dict[str, Callable[[], None] | None] = {
        "keel": lambda: None,
        "keel without the log append": without_log,
        "keel without validation": without_validation,
        "keel without metrics": without_metrics,
        "keel with a constant model": constant_model,
    }
    extra = {
        "keel with API keys on": (auth_app, path, body, key),
        "keel, cache hit": (app, cached_path, body, []),
        "keel, varied records": (app, path, varied, []),
        "keel, cache miss (varied)": (app, cached_path, varied, []),
        "keel, 90/10 arms": (app, path.replace("/bench/", "/bench-arms/"), body, routed),
        "keel, one shadow": (app, path.replace("/bench/", "/bench-shadow/"), body, []),
        "keel, all on (varied)": (
            auth_app, path.replace("/bench/", "/bench-all/"), varied, [*key, *routed]
        ),
    }  # fmt: skip
    if only:  # one line alone, e.g. under a profiler
        variants = {k: v for k, v in variants.items() if any(part in k for part in only)}
        extra = {k: v for k, v in extra.items() if any(part in k for part in only)}
    results: dict[str, list[float]] = {
        name: [] for name in ["thin", *variants, *extra, "model alone"]
    }
    for _ in range(rounds):
        results["thin"].append(await per_request(thin, "/", body, calls))
        for name, change in variants.items():
            assert change is not None
            change()
            results[name].append(await per_request(app, path, body, calls))
            restore()
        for name, (target, target_path, payload, headers) in extra.items():
            bodies = payload() if callable(payload) else payload
            results[name].append(await per_request(target, target_path, bodies, calls, headers))
            await asyncio.sleep(0.05)  # mirrored requests still in flight finish outside
        started = time.perf_counter()
        for _ in range(calls):
            runtime._run_batch([[record]])
        results["model alone"].append((time.perf_counter() - started) / calls * 1e6)
    await auth_app.shutdown()
    await app.shutdown()
    outcomes = [
        f"{sample.labels['outcome']} {sample.value:.0f}"
        for family in text_string_to_metric_families(app.metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "keel_shadow_requests_total"
    ]
    print("shadow outcomes (mirrored requests beyond 256 in flight are dropped):", outcomes)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="logistic")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", nargs="*", default=[], help="measure only the lines containing one of these"
    )
    args = parser.parse_args()
    print(machine())
    results = uvloop.run(measure(args.model, args.calls, args.rounds, args.only))
    print(f"{args.model}: µs per request, median of {args.rounds} rounds of {args.calls} calls")
    for name, values in results.items():
        print(f"  {name:<30}{statistics.median(values):>8.1f}")


if __name__ == "__main__":
    main()
