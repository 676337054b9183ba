"""The transport-agnostic core of the server: score records, record feedback, report readiness.

The native JSON API (``_native``) and the Open Inference Protocol (``_v2``) parse their payloads
into records and call :class:`Dataplane`; it validates, predicts through the endpoint's
micro-batcher and appends every row to the prediction log before returning, so a response is
only ever sent for predictions already handed to the OS. Errors a client can act on are a
:class:`Problem` carrying its HTTP status; the adapters format it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.errors import EndpointNotFound, FeatureStoreError
from keel.serving._batching import BatcherClosed, Overloaded
from keel.serving._cache import CachedAnswer, MemoryCache, PredictionCache
from keel.serving._cache_keys import CacheKeys
from keel.serving._features import MissingFeatures, OnDemandFailed
from keel.serving._metrics import ServingMetrics
from keel.serving._policy import DefaultPrediction
from keel.serving._predlog import (
    FeedbackEntry,
    PredictionEntry,
    PredictionLog,
    new_prediction_ids,
)
from keel.serving._routing import key_of_field
from keel.serving._rows import logged_inputs
from keel.serving._runtime import EndpointRuntime, ModelNotReady, Record, RowResult
from keel.serving._shadow import MirroredRequest

logger = logging.getLogger(__name__)

MAX_REQUEST_ROWS = 10_000
"""Default of ``[serving] max_request_rows``: a request's records are validated and held in
memory together, so one huge request must not stall every other one."""


class Problem(Exception):
    """A request that cannot be answered normally: its status, a machine-readable ``code``,
    a message saying what was wrong and, for invalid inputs, one entry per bad field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[dict[str, Any]] | None = None,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = headers or []
        """Response headers the answer needs (``Retry-After``, ``WWW-Authenticate``...)."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.problems is not None:
            body["problems"] = self.problems
        return body


def answering_model(runtime: EndpointRuntime, result: RowResult) -> tuple[str, int | None]:
    """The model name and version that answered ``result``: the primary's, the fallback
    model's, or (a default prediction) the primary's name without a version."""
    primary = runtime.policy.primary
    if result.fallback is None:
        return primary.name, primary.version
    fallback = runtime.fallback
    if isinstance(fallback, EndpointRuntime):
        model = fallback.policy.primary
        return model.name, model.version
    return primary.name, None


@dataclass(frozen=True, slots=True)
class Scored:
    """One answered row: its prediction id, the model's result, the model (name, version)
    that answered and the traffic-split arm that chose it (None without arms)."""

    prediction_id: str
    result: RowResult
    model: tuple[str, int | None]
    arm: str | None = None


class Dataplane:
    """Endpoints by name, the prediction log, and the metrics, shared by every transport."""

    def __init__(
        self,
        runtimes: Mapping[str, EndpointRuntime],
        log: PredictionLog,
        metrics: ServingMetrics,
        *,
        max_request_rows: int = MAX_REQUEST_ROWS,
    ) -> None:
        self.runtimes = dict(runtimes)
        self.max_request_rows = max_request_rows
        """Records one request may carry at most (more: 413, before any work is done)."""
        self.log = log
        self.metrics = metrics
        self.cache: PredictionCache | None = None
        """The prediction cache of endpoints with ``cache`` on (opened by the app on its loop)."""

    def runtime(self, name: str) -> EndpointRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise Problem(404, "not_found", str(EndpointNotFound(name)))
        return runtime

    async def predict(
        self, runtime: EndpointRuntime, records: list[Record], routing_key: str | None = None
    ) -> list[Scored]:
        """Validate ``records``, predict, log every row; the rows' results with their ids.
        With weighted arms, ``routing_key`` (the request's header; else the endpoint's
        ``routing_field`` of the first record; else a random draw) picks the arm that answers
        the whole request: the same key always gets the same arm. With shadow versions, the
        request is mirrored to them once answered (see :mod:`keel.serving._shadow`)."""
        if not records:
            raise Problem(422, "empty_batch", "inputs hold no records: send at least one")
        if len(records) > self.max_request_rows:
            raise Problem(
                413,
                "too_many_rows",
                f"the request holds {len(records)} records, more than the server's limit of "
                f"{self.max_request_rows} a request: split it, or raise [serving] "
                "max_request_rows",
            )
        endpoint, arm, router = runtime, None, runtime.router
        if router is not None:
            field = runtime.policy.routing_field
            if routing_key is None and field is not None and isinstance(records[0], Mapping):
                routing_key = key_of_field(records[0], field)
            index = router.choose(routing_key)
            runtime, arm = runtime.arm_runtimes[index], router.ids[index]
        try:
            problems = runtime.validate(records)
        except ModelNotReady as error:
            raise Problem(503, "not_ready", str(error)) from None
        if problems:
            raise Problem(
                422,
                "invalid_input",
                "inputs do not match the signature of model "
                f"'{runtime.policy.primary.name}' version {runtime.policy.primary.version}: "
                + "; ".join(
                    f"row {p.row}: {p.problem.field}: {p.problem.message}" for p in problems[:20]
                ),
                [
                    {
                        "row": p.row,
                        "field": p.problem.field,
                        "rule": p.problem.rule,
                        "message": p.problem.message,
                    }
                    for p in problems
                ],
            )
        started = time.perf_counter()
        hits: list[bool] | None = None
        cache = self.cache
        if runtime.policy.cache and cache is not None and runtime.cache_keys is not None:
            if len(records) == 1 and isinstance(cache, MemoryCache):
                results, hits = await self._cached_one(runtime, records, cache, runtime.cache_keys)
            else:
                results, hits = await self._cached(runtime, records, cache, runtime.cache_keys)
        else:
            results = await self._run(runtime, records)
        latency_ms = (time.perf_counter() - started) * 1000
        ids = new_prediction_ids(len(records))
        model, version = answering_model(runtime, results[0])
        redact = endpoint.redactor
        await self.log.append(
            [
                PredictionEntry(
                    prediction_id=prediction_id,
                    endpoint=runtime.name,
                    model=model,
                    model_version=version,
                    arm=arm,
                    inputs=logged_inputs(record, result, redact),
                    prediction=result.prediction,
                    probabilities=result.probabilities,
                    latency_ms=latency_ms,
                    revision=endpoint.revision,
                    fallback=result.fallback,
                    cache_hit=None if hits is None else hits[row],
                )
                for row, (prediction_id, record, result) in enumerate(
                    zip(ids, records, results, strict=True)
                )
            ]
        )
        if arm is not None:
            self.metrics.traffic.arm(endpoint.name, arm, latency_ms / 1000)
        if endpoint.shadows is not None:
            endpoint.shadows.submit(
                MirroredRequest(records, ids, results, endpoint.revision, redact),
                self.log,
                self.metrics,
            )
        return [Scored(i, r, (model, version), arm) for i, r in zip(ids, results, strict=True)]

    async def _cached(
        self,
        runtime: EndpointRuntime,
        records: list[Record],
        cache: PredictionCache,
        keys_of: CacheKeys,
    ) -> tuple[list[RowResult], list[bool]]:
        """Answers from the cache (one lookup for the request), the model for the misses;
        the model's answers are stored (never a fallback's). Returns the rows' hit flags."""
        keys = keys_of.keys(records)
        found = await cache.get_many(keys)
        hits = [answer is not None for answer in found]
        self.metrics.cache_lookups(runtime.name, hits)
        results: list[RowResult | None] = [
            None if a is None else RowResult(a.prediction, a.probabilities, a.inputs) for a in found
        ]
        misses = [row for row, hit in enumerate(hits) if not hit]
        if misses:
            fresh = await self._run(runtime, [records[row] for row in misses])
            for row, result in zip(misses, fresh, strict=True):
                results[row] = result
            if fresh[0].fallback is None:
                await cache.set_many(
                    [
                        (keys[row], CachedAnswer(r.prediction, r.probabilities, r.inputs))
                        for row, r in zip(misses, fresh, strict=True)
                    ]
                )
        return [r for r in results if r is not None], hits

    async def _cached_one(
        self,
        runtime: EndpointRuntime,
        records: list[Record],
        cache: MemoryCache,
        keys_of: CacheKeys,
    ) -> tuple[list[RowResult], list[bool]]:
        """:meth:`_cached` for the usual online request, one record and the in-process cache:
        the same steps without a coroutine or a list per step (a miss is the request path's
        worst case for the cache, paid on every request that brings a record never seen)."""
        key = keys_of.key(records[0])
        found = cache.lookup(key)
        self.metrics.cache_lookup(runtime.name, found is not None)
        if found is not None:
            return [RowResult(found.prediction, found.probabilities, found.inputs)], [True]
        results = await self._run(runtime, records)
        result = results[0]
        if result.fallback is None:
            cache.store(key, result.prediction, result.probabilities, result.inputs)
        return results, [False]

    async def _run(self, runtime: EndpointRuntime, records: list[Record]) -> list[RowResult]:
        """The primary's answers, or the fallback's when the primary raises, times out or its
        breaker is open (and the endpoint has a fallback); the breaker hears each outcome."""
        breaker = runtime.breaker
        if breaker is None:
            raise Problem(503, "not_ready", str(ModelNotReady(runtime.name, "not loaded yet")))
        permit = breaker.allow()
        if not permit.allowed:
            return await self._fallback(
                runtime,
                records,
                "breaker_open",
                Problem(
                    503,
                    "breaker_open",
                    f"the model of endpoint '{runtime.name}' is failing (its circuit breaker "
                    "is open) and the endpoint has no fallback",
                ),
            )
        timeout_ms = runtime.policy.timeout_ms
        started = time.perf_counter()
        try:
            if timeout_ms is None:
                results = await runtime.predict(records)
            else:
                async with asyncio.timeout(timeout_ms / 1000):
                    results = await runtime.predict(records)
        except asyncio.CancelledError:
            breaker.release(permit)
            raise
        except TimeoutError:
            breaker.record(permit, False, time.perf_counter() - started)
            return await self._fallback(
                runtime,
                records,
                "timeout",
                Problem(
                    504, "timeout", f"the model took longer than the endpoint's {timeout_ms} ms"
                ),
            )
        except (
            Overloaded,
            MissingFeatures,
            OnDemandFailed,
            FeatureStoreError,
            BatcherClosed,
            ModelNotReady,
        ) as error:
            breaker.release(permit)  # the request's or the server's state, not the model's
            raise self._problem(runtime, error) from None
        except Exception as error:
            breaker.record(permit, False, time.perf_counter() - started)
            logger.exception("model of endpoint '%s' failed", runtime.name)
            return await self._fallback(
                runtime,
                records,
                "model_error",
                Problem(500, "model_error", f"the model failed: {type(error).__name__}: {error}"),
            )
        breaker.record(permit, True, time.perf_counter() - started)
        return results

    async def _fallback(
        self, runtime: EndpointRuntime, records: list[Record], why: str, problem: Problem
    ) -> list[RowResult]:
        """The fallback's answers, marked with ``why``; ``problem`` when there is no fallback
        or it fails too."""
        fallback = runtime.fallback
        if fallback is None:
            raise problem
        self.metrics.fallback(runtime.name, why)
        if isinstance(fallback, DefaultPrediction):
            return [RowResult(fallback.value, None, fallback=why) for _ in records]
        try:
            answers = await fallback.predict(records)
        except Exception as error:
            logger.error(
                "endpoint '%s': the fallback failed too: %s: %s",
                runtime.name,
                type(error).__name__,
                error,
            )
            raise problem from None
        return [RowResult(a.prediction, a.probabilities, a.inputs, fallback=why) for a in answers]

    @staticmethod
    def _problem(runtime: EndpointRuntime, error: Exception) -> Problem:
        """The answer to a request the model was not asked for (or not fully)."""
        if isinstance(error, Overloaded):
            return Problem(503, "overloaded", str(error))
        if isinstance(error, MissingFeatures):
            return Problem(
                422,
                "missing_features",
                str(error),
                [
                    {"row": row, "field": feature, "rule": "feature_store", "message": why}
                    for row, feature, why in error.problems
                ],
            )
        if isinstance(error, OnDemandFailed):
            return Problem(422, "invalid_input", str(error))
        if isinstance(error, FeatureStoreError):
            logger.warning("endpoint '%s': feature lookup failed: %s", runtime.name, error)
            return Problem(503, "features_unavailable", f"feature lookup failed: {error}")
        return Problem(503, "not_ready", str(error))

    async def feedback(self, items: list[FeedbackEntry]) -> None:
        """Record feedback entries (validated by the adapter) before the response is sent."""
        await self.log.append(items)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether every endpoint's model is loaded, with the detail ``/readyz`` shows."""
        endpoints = {
            name: {
                "ready": runtime.ready,
                "model": runtime.policy.primary.name,
                "model_version": runtime.policy.primary.version,
                "revision": runtime.revision,
                "load_seconds": runtime.load_seconds,
                "error": runtime.error,
                "breaker": None if runtime.breaker is None else runtime.breaker.state.value,
                "fallback_error": runtime.fallback_error,
                "shadows": None
                if runtime.shadows is None
                else {
                    "models": [s.policy.primary.pinned_uri for s in runtime.shadows.shadows],
                    "pending": runtime.shadows.pending,
                },
                "shadow_errors": runtime.shadow_errors or None,
            }
            for name, runtime in sorted(self.runtimes.items())
        }
        ready = all(runtime.ready for runtime in self.runtimes.values())
        compactor = self.metrics.compactor  # the one the metrics export: this server's
        return ready, {
            "ready": ready,
            "endpoints": endpoints,
            "prediction_log": self.log.status(),
            "cache": None if self.cache is None else self.cache.status(),
            "compaction": None if compactor is None else compactor.status(),
        }
