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
from keel.serving._features import MissingFeatures, OnDemandFailed
from keel.serving._metrics import ServingMetrics
from keel.serving._predlog import (
    FeedbackEntry,
    PredictionEntry,
    PredictionLog,
    new_prediction_ids,
)
from keel.serving._runtime import EndpointRuntime, ModelNotReady, Record, RowResult

logger = logging.getLogger(__name__)


class Problem(Exception):
    """A request that cannot be answered normally: its status, a machine-readable ``code``,
    a message saying what was wrong and, for invalid inputs, one entry per bad field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.problems is not None:
            body["problems"] = self.problems
        return body


@dataclass(frozen=True, slots=True)
class Scored:
    """One answered row: its prediction id and the model's result."""

    prediction_id: str
    result: RowResult


class Dataplane:
    """Endpoints by name, the prediction log, and the metrics, shared by every transport."""

    def __init__(
        self,
        runtimes: Mapping[str, EndpointRuntime],
        log: PredictionLog,
        metrics: ServingMetrics,
    ) -> None:
        self.runtimes = dict(runtimes)
        self.log = log
        self.metrics = metrics

    def runtime(self, name: str) -> EndpointRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise Problem(404, "not_found", str(EndpointNotFound(name)))
        return runtime

    async def predict(self, runtime: EndpointRuntime, records: list[Record]) -> list[Scored]:
        """Validate ``records``, predict, log every row; the rows' results with their ids."""
        if not records:
            raise Problem(422, "empty_batch", "inputs hold no records: send at least one")
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
        results = await self._run(runtime, records)
        latency_ms = (time.perf_counter() - started) * 1000
        ids = new_prediction_ids(len(records))
        primary = runtime.policy.primary
        await self.log.append(
            [
                PredictionEntry(
                    prediction_id=prediction_id,
                    endpoint=runtime.name,
                    model=primary.name,
                    model_version=primary.version,
                    inputs=record if result.inputs is None else {**record, **result.inputs},
                    prediction=result.prediction,
                    probabilities=result.probabilities,
                    latency_ms=latency_ms,
                    revision=runtime.revision,
                )
                for prediction_id, record, result in zip(ids, records, results, strict=True)
            ]
        )
        return [Scored(i, r) for i, r in zip(ids, results, strict=True)]

    async def _run(self, runtime: EndpointRuntime, records: list[Record]) -> list[RowResult]:
        timeout_ms = runtime.policy.timeout_ms
        try:
            if timeout_ms is None:
                return await runtime.predict(records)
            async with asyncio.timeout(timeout_ms / 1000):
                return await runtime.predict(records)
        except TimeoutError:
            raise Problem(
                504, "timeout", f"the model took longer than the endpoint's {timeout_ms} ms"
            ) from None
        except Overloaded as error:
            raise Problem(503, "overloaded", str(error)) from None
        except MissingFeatures as error:
            raise Problem(
                422,
                "missing_features",
                str(error),
                [
                    {"row": row, "field": feature, "rule": "feature_store", "message": why}
                    for row, feature, why in error.problems
                ],
            ) from None
        except OnDemandFailed as error:
            raise Problem(422, "invalid_input", str(error)) from None
        except FeatureStoreError as error:
            logger.warning("endpoint '%s': feature lookup failed: %s", runtime.name, error)
            raise Problem(503, "features_unavailable", f"feature lookup failed: {error}") from None
        except (BatcherClosed, ModelNotReady) as error:
            raise Problem(503, "not_ready", str(error)) from None
        except Exception as error:
            logger.exception("model of endpoint '%s' failed", runtime.name)
            raise Problem(
                500, "model_error", f"the model failed: {type(error).__name__}: {error}"
            ) from None

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
            }
            for name, runtime in sorted(self.runtimes.items())
        }
        ready = all(runtime.ready for runtime in self.runtimes.values())
        compactor = self.metrics.compactor  # the one the metrics export: this server's
        return ready, {
            "ready": ready,
            "endpoints": endpoints,
            "prediction_log": self.log.status(),
            "compaction": None if compactor is None else compactor.status(),
        }
