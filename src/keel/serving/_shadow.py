"""Shadow versions: a copy of every request, answered in the background, logged, never returned.

    mirror = ShadowMirror("churn", [shadow_runtime], max_pending=256, timeout_ms=1000)
    mirror.submit(MirroredRequest(records, ids, primary_results, revision=7), log, metrics)
    await mirror.aclose()          # waits (boundedly) for what is in flight

The dataplane hands each answered request to :meth:`ShadowMirror.submit` *after* the primary's
rows are logged and before the response is sent; ``submit`` only schedules a task and returns,
so nothing a shadow does can reach the caller: its latency runs on its own batcher thread (a
shadow never runs inline on the event loop), its failures are counted and logged as warnings,
and when ``max_pending`` requests are already being mirrored a new one is dropped (counted as
``dropped``) instead of queueing without bound behind a slow shadow.

A shadow's answer is logged with the *primary's* prediction id and ``shadow=True``: one id then
names one request row, the feedback later attached to it scores the primary and every shadow
alike, and comparing them is a join on the id (``keel log show ID`` lists them together). The
disagreement rate compares the shadow's prediction with the answer the caller got (rows a
fallback answered are not compared: they say nothing about the primary).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.serving._predlog import PredictionEntry
from keel.serving._rows import logged_inputs

if TYPE_CHECKING:
    from keel.serving._metrics import ServingMetrics
    from keel.serving._pii import InputRedactor
    from keel.serving._predlog import PredictionLog
    from keel.serving._runtime import EndpointRuntime, Record, RowResult

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 5.0
"""How long closing waits for requests still being mirrored before cancelling them."""

OK, FAILED, TIMEOUT, INVALID, DROPPED = "ok", "error", "timeout", "invalid_input", "dropped"
"""The outcomes of one mirrored request on one shadow (the ``outcome`` metric label)."""


@dataclass(frozen=True, slots=True)
class MirroredRequest:
    """What the primary was asked and answered: the records, each row's prediction id and
    result, and the revision that served them."""

    records: Sequence[Record]
    prediction_ids: Sequence[str]
    results: Sequence[RowResult]
    revision: int | None
    redactor: InputRedactor | None = None
    """The endpoint's: what the log may hold of the inputs (see :mod:`keel.serving._pii`)."""


class ShadowMirror:
    """The shadow versions of one endpoint revision and the requests being mirrored to them.

    Args:
        endpoint: the endpoint's name (logged, and the metrics' label).
        shadows: a loaded runtime per shadow version (see ``EndpointRuntime``).
        max_pending: requests mirrored at once at most; more are dropped, not queued.
        timeout_ms: a shadow that takes longer for one request gives up on it (``timeout``).
    """

    def __init__(
        self,
        endpoint: str,
        shadows: Sequence[EndpointRuntime],
        *,
        max_pending: int = 256,
        timeout_ms: float = 1000.0,
    ) -> None:
        self.endpoint = endpoint
        self.shadows = tuple(shadows)
        self.max_pending = max_pending
        self.timeout_seconds = timeout_ms / 1000
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Requests being mirrored now."""
        return len(self._pending)

    def submit(self, request: MirroredRequest, log: PredictionLog, metrics: ServingMetrics) -> bool:
        """Mirror ``request`` to every shadow in the background; False when it was dropped
        because ``max_pending`` requests are already in flight. Never raises for a shadow."""
        if len(self._pending) >= self.max_pending:
            for shadow in self.shadows:
                metrics.traffic.shadow(self.endpoint, _label(shadow), DROPPED, None)
            return False
        task = asyncio.get_running_loop().create_task(self._mirror(request, log, metrics))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _mirror(
        self, request: MirroredRequest, log: PredictionLog, metrics: ServingMetrics
    ) -> None:
        await asyncio.gather(*(self._ask(shadow, request, log, metrics) for shadow in self.shadows))

    async def _ask(
        self,
        shadow: EndpointRuntime,
        request: MirroredRequest,
        log: PredictionLog,
        metrics: ServingMetrics,
    ) -> None:
        label = _label(shadow)
        records = list(request.records)
        started = time.perf_counter()
        try:
            if shadow.validate(records):  # another signature than the primary's
                metrics.traffic.shadow(self.endpoint, label, INVALID, None)
                return
            async with asyncio.timeout(self.timeout_seconds):
                results = await shadow.predict(records)
        except TimeoutError:
            metrics.traffic.shadow(self.endpoint, label, TIMEOUT, time.perf_counter() - started)
            return
        except Exception as error:
            metrics.traffic.shadow(self.endpoint, label, FAILED, time.perf_counter() - started)
            logger.warning(
                "endpoint '%s': shadow %s failed: %s: %s",
                self.endpoint,
                label,
                type(error).__name__,
                error,
            )
            return
        seconds = time.perf_counter() - started
        compared = disagreed = 0
        for primary, mine in zip(request.results, results, strict=True):
            if primary.fallback is None:
                compared += 1
                disagreed += not same_prediction(primary.prediction, mine.prediction)
        metrics.traffic.shadow(self.endpoint, label, OK, seconds, compared, disagreed)
        model = shadow.policy.primary
        try:
            await log.append(
                [
                    PredictionEntry(
                        prediction_id=prediction_id,
                        endpoint=self.endpoint,
                        model=model.name,
                        model_version=model.version,
                        inputs=logged_inputs(record, result, request.redactor),
                        prediction=result.prediction,
                        probabilities=result.probabilities,
                        latency_ms=seconds * 1000,
                        revision=request.revision,
                        shadow=True,
                    )
                    for prediction_id, record, result in zip(
                        request.prediction_ids, records, results, strict=True
                    )
                ]
            )
        except Exception:  # the log keeps its own health; a shadow must never raise
            logger.exception("endpoint '%s': logging shadow %s failed", self.endpoint, label)

    async def aclose(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Wait up to ``drain_seconds`` for the requests being mirrored (their answers are
        logged), cancel what is left, then stop the shadows' batchers."""
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=drain_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
                logger.warning(
                    "endpoint '%s': %d mirrored requests were cut short at shutdown",
                    self.endpoint,
                    len(late),
                )
        for shadow in self.shadows:
            await shadow.aclose()


def same_prediction(primary: Any, shadow: Any) -> bool:
    """Whether a shadow's prediction agrees with the primary's: equal labels, or numbers equal
    to 1e-9 relative (two builds of one regressor differ in the last bits)."""
    if isinstance(primary, bool) or isinstance(shadow, bool):
        return type(primary) is type(shadow) and primary == shadow
    if isinstance(primary, int | float) and isinstance(shadow, int | float):
        return math.isclose(primary, shadow, rel_tol=1e-9, abs_tol=1e-12)
    return bool(primary == shadow)


def _label(shadow: EndpointRuntime) -> str:
    return shadow.policy.primary.pinned_uri
