"""The server's Prometheus metrics, for one process or several (no module-level collectors).

    metrics = ServingMetrics(log, compactor=compactor)          # one process
    metrics = ServingMetrics(log, compactor=compactor, multiprocess_dir=path)   # one per worker
    metrics.request(endpoint, version, api, code, seconds)      # children are cached: dict lookups
    metrics.watch_queue(endpoint, queued)                       # read when values are sampled
    metrics.start()  ...  metrics.close()                       # the server's lifespan
    body = metrics.exposition()                                 # text format, for GET /metrics

What is exported (``*``: sampled from other objects rather than updated in place; last column:
how a gauge merges across worker processes)::

    keel_requests_total{endpoint, model_version, api, code}        counter
    keel_request_duration_seconds{endpoint, model_version}         histogram
    keel_request_errors_total{endpoint, type}                      counter  (type="overloaded":
                                                                   refused, the queue was full)
    keel_requests_in_flight                                        gauge    livesum
    keel_requests_queued{endpoint}                               * gauge    livesum
    keel_queue_wait_seconds{endpoint}                              histogram
    keel_batch_rows{endpoint}, keel_batch_duration_seconds{endpoint}   histograms
    keel_model_load_seconds{endpoint, model, model_version}        gauge    liveall (+ pid)
    keel_cache_lookups_total{endpoint, result}                   * counter  (tallied per request,
                                                                   published when sampled)
    keel_dependency_up{dependency}                               * gauge    livemin (1 reachable,
                                                                   0 serving degraded:
                                                                   cache, ratelimit,
                                                                   api_keys, metadata)
    keel_arm_requests_total{endpoint, arm}                       * counter  (tallied per request,
                                                                   published when sampled)
    keel_arm_duration_seconds{endpoint, arm}                       histogram (model time per
                                                                   traffic-split arm)
    keel_shadow_requests_total{endpoint, model, outcome}           counter  (outcome: ok, error,
                                                                   timeout, invalid_input,
                                                                   dropped)
    keel_shadow_duration_seconds{endpoint, model}                  histogram
    keel_shadow_compared_rows_total{endpoint, model},
    keel_shadow_disagreements_total{endpoint, model}               counters (their ratio is the
                                                                   shadow's disagreement rate)
    keel_prediction_log_entries_written_total, ..._write_errors_total,
    ..._dropped_entries_total, ..._fsync_errors_total            * counters
    keel_prediction_log_degraded                                 * gauge    livemax
    keel_prediction_log_pending_entries                          * gauge    livesum
    keel_prediction_log_lag_seconds                                gauge, read at scrape time
    keel_prediction_log_compaction_{runs,errors}_total,
    keel_prediction_log_compacted_entries_total                  * counters
    process_*                                                    * the standard process metrics

**One process**: every metric lives in this object's registry, and the sampled values are read
when ``/metrics`` is scraped.

**Several worker processes** (``multiprocess_dir``): prometheus-client's multiprocess mode. The
parent creates an empty directory and sets ``PROMETHEUS_MULTIPROC_DIR`` to it before the
workers start (prometheus-client picks its value store at import time); each worker's values
live in memory-mapped files there, and a scrape answered by any worker merges every file:
counters and histograms are summed over all workers, dead ones included (what they counted
happened). A gauge says how it merges (the last column above): ``livesum`` for quantities
shared out between workers (requests in flight or queued, entries held in memory), ``livemax``
for "degraded" (one degraded worker is enough), ``liveall`` (one series per worker, ``pid``
label) for what each worker has of its own (its model's load time, its memory). "live" gauges
leave with their worker: a scrape calls ``mark_process_dead`` for every process that left such
files and no longer runs (uvicorn's supervisor has no hook on a worker's exit, and a scrape is
when stale values would be seen). The process metrics become per-worker too:
``process_cpu_seconds_total{pid}`` and ``liveall`` gauges for memory, descriptors and start time.
Sampled values are published by each worker every ``sample_seconds`` (and by the scraping
worker just before it reads), so another worker's are at most that old. The prediction log's
lag belongs to the directory, not to a worker: whichever worker answers computes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from keel.serving._batching import BatchRecord
from keel.serving._breaker import State, Transition
from keel.serving._metrics_sources import (
    LagCollector,
    Mirror,
    ProcessSampler,
    Tally,
    forget_dead_processes,
)
from keel.serving._metrics_traffic import TrafficMetrics

if TYPE_CHECKING:
    from keel.serving._predlog import Compactor, PredictionLog

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

_LOG_COUNTERS = (
    ("entries_written", "Prediction log entries handed to the OS."),
    ("write_errors", "Prediction log writes that failed."),
    ("dropped_entries", "Prediction log entries lost (memory cap, unencodable, closed)."),
    ("fsync_errors", "Prediction log fsync rounds that failed."),
)
_COMPACTION_COUNTERS = (
    ("compaction_runs", "runs_total", "Compaction runs (closed segments moved to Parquet)."),
    ("compaction_errors", "errors_total", "Segments whose compaction failed (retried later)."),
    ("compacted_entries", "entries_total", "Prediction log entries moved to Parquet."),
)


class ServingMetrics:
    """Every metric of one server process, and cached label children for the request path.

    Args:
        log: the prediction log whose counters, health and lag are exported.
        compactor: the compactor whose runs and failures are exported.
        multiprocess_dir: the ``PROMETHEUS_MULTIPROC_DIR`` of a server with several workers
            (see the module doc); None for a server of one process.
        sample_seconds: how often a worker publishes its sampled values (multiprocess mode).
    """

    def __init__(
        self,
        log: PredictionLog | None = None,
        *,
        compactor: Compactor | None = None,
        multiprocess_dir: str | Path | None = None,
        sample_seconds: float = 1.0,
    ) -> None:
        self.log = log
        self.compactor = compactor
        """The compactor whose status is exported (``/readyz`` shows it too)."""
        self.multiprocess_dir = None if multiprocess_dir is None else Path(multiprocess_dir)
        self.sample_seconds = sample_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in files, read back by MultiProcessCollector:
        # registering the metrics too would export this worker's values a second time.
        owner = self.registry if self.multiprocess_dir is None else None
        self._requests = Counter(
            "keel_requests",
            "Requests answered, by endpoint, model version, API and status code.",
            ["endpoint", "model_version", "api", "code"],
            registry=owner,
        )
        self._latency = Histogram(
            "keel_request_duration_seconds",
            "Time from request to response, by endpoint and model version.",
            ["endpoint", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=owner,
        )
        self._errors = Counter(
            "keel_request_errors",
            "Requests refused or failed, by endpoint and error type "
            "(overloaded: refused because the endpoint's queue was full).",
            ["endpoint", "type"],
            registry=owner,
        )
        self._batch_rows = Histogram(
            "keel_batch_rows",
            "Rows per model call (micro-batch size), by endpoint.",
            ["endpoint"],
            buckets=_BATCH_BUCKETS,
            registry=owner,
        )
        self._batch_seconds = Histogram(
            "keel_batch_duration_seconds",
            "Time inside one model call, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=owner,
        )
        self._inline_batches = Counter(
            "keel_batches_inline_total",
            "Model calls run on the event loop's thread, measured cheaper than a hand-off to "
            "the batch thread, by endpoint.",
            ["endpoint"],
            registry=owner,
        )
        self._queue_wait = Histogram(
            "keel_queue_wait_seconds",
            "Time a request waited in its endpoint's queue before its model call started.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=owner,
        )
        self.in_flight = Gauge(
            "keel_requests_in_flight",
            "Requests being handled now.",
            registry=owner,
            multiprocess_mode="livesum",
        )
        self._queued = Gauge(
            "keel_requests_queued",
            "Requests waiting in an endpoint's queue for a model call.",
            ["endpoint"],
            registry=owner,
            multiprocess_mode="livesum",
        )
        self._load_seconds = Gauge(
            "keel_model_load_seconds",
            "Time it took to load each endpoint's model.",
            ["endpoint", "model", "model_version"],
            registry=owner,
            multiprocess_mode="liveall",
        )
        self._fallbacks = Counter(
            "keel_fallbacks",
            "Requests answered by the endpoint's fallback, by why the primary did not answer "
            "(model_error, timeout, breaker_open).",
            ["endpoint", "reason"],
            registry=owner,
        )
        self._cache_lookups = Counter(
            "keel_cache_lookups",
            "Rows looked up in the prediction cache, by endpoint and result (hit, miss).",
            ["endpoint", "result"],
            registry=owner,
        )
        self._breaker_state = Gauge(
            "keel_breaker_state",
            "1 for the state each endpoint's circuit breaker is in (closed, open, half_open), "
            "0 for the others; summed over worker processes.",
            ["endpoint", "state"],
            registry=owner,
            multiprocess_mode="livesum",
        )
        self._breaker_transitions = Counter(
            "keel_breaker_transitions",
            "Changes of state of each endpoint's circuit breaker, by the state entered.",
            ["endpoint", "state"],
            registry=owner,
        )
        self.traffic = TrafficMetrics(owner, LATENCY_BUCKETS)
        """Per-arm and shadow metrics (see :class:`TrafficMetrics`)."""
        self._dependency_up = Gauge(
            "keel_dependency_up",
            "1 while a dependency the server uses is reachable, 0 while it serves without it "
            "(cache bypassed, rate limits per process, keys from memory, last known revisions).",
            ["dependency"],
            registry=owner,
            multiprocess_mode="livemin",
        )
        self._dependencies: dict[str, tuple[Callable[[], bool], Any]] = {}
        self._children: dict[tuple[str, ...], Any] = {}
        self._cache_tally = Tally(self._cache_lookups)
        self._queues: dict[str, tuple[Callable[[], int], Any]] = {}
        self._log_counters: list[tuple[str, Mirror]] = []
        self._log_gauges: list[tuple[str, Any]] = []
        self._compaction_counters: list[tuple[str, Mirror]] = []
        if log is not None:
            self._watch_log(owner)
            self.registry.register(LagCollector(log))
        if compactor is not None:
            for name, attribute, help_text in _COMPACTION_COUNTERS:
                counter = Counter(f"keel_prediction_log_{name}", help_text, registry=owner)
                self._compaction_counters.append((attribute, Mirror(counter)))
        self._process: ProcessSampler | None = None
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)  # CPU seconds, resident memory, open fds
        else:
            path = str(self.multiprocess_dir)
            MultiProcessCollector(self.registry, path=path)  # type: ignore[no-untyped-call]
            self._process = ProcessSampler()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _watch_log(self, owner: CollectorRegistry | None) -> None:
        for key, help_text in _LOG_COUNTERS:
            counter = Counter(f"keel_prediction_log_{key}", help_text, registry=owner)
            self._log_counters.append((f"{key}_total", Mirror(counter)))
        degraded = Gauge(
            "keel_prediction_log_degraded",
            "1 while the prediction log cannot write.",
            registry=owner,
            multiprocess_mode="livemax",
        )
        pending = Gauge(
            "keel_prediction_log_pending_entries",
            "Entries kept in memory while writing fails.",
            registry=owner,
            multiprocess_mode="livesum",
        )
        self._log_gauges = [("degraded", degraded), ("pending_entries", pending)]

    # -- the request path --------------------------------------------------------------------

    def request(self, endpoint: str, version: str, api: str, code: int, seconds: float) -> None:
        key = ("r", endpoint, version, api, str(code))
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self._requests.labels(endpoint, version, api, str(code)),
                self._latency.labels(endpoint, version),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def error(self, endpoint: str, kind: str) -> None:
        key = ("e", endpoint, kind)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._errors.labels(endpoint, kind)
        child.inc()

    def batch_observer(self, endpoint: str) -> Callable[[BatchRecord], None]:
        """The callback a :class:`MicroBatcher` calls after each batch of ``endpoint``."""
        rows = self._batch_rows.labels(endpoint)
        seconds = self._batch_seconds.labels(endpoint)
        waits = self._queue_wait.labels(endpoint)
        inline = self._inline_batches.labels(endpoint)

        def observe(record: BatchRecord) -> None:
            rows.observe(record.rows)
            seconds.observe(record.run_seconds)
            if record.inline:
                inline.inc()
            for wait in record.queue_waits:
                waits.observe(wait)

        return observe

    def fallback(self, endpoint: str, reason: str) -> None:
        key = ("f", endpoint, reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._fallbacks.labels(endpoint, reason)
        child.inc()

    def cache_lookup(self, endpoint: str, hit: bool) -> None:
        """One row looked up in the prediction cache: tallied in a plain dictionary (one
        addition on the request path, where a counter takes a lock and, with several workers,
        writes a memory-mapped file) and published into ``keel_cache_lookups_total`` by
        :meth:`refresh`, before every scrape and by a worker's sampler thread."""
        self._cache_tally.counts[endpoint, "hit" if hit else "miss"] += 1

    def cache_lookups(self, endpoint: str, hits: list[bool]) -> None:
        found = sum(hits)
        counts = self._cache_tally.counts
        if found:
            counts[endpoint, "hit"] += found
        if len(hits) > found:
            counts[endpoint, "miss"] += len(hits) - found

    def breaker_observer(self, endpoint: str) -> Callable[[Transition], None]:
        """The ``on_transition`` of ``endpoint``'s breakers: the state gauge and the count."""
        states = {state: self._breaker_state.labels(endpoint, state.value) for state in State}
        states[State.CLOSED].set(1)

        def observe(transition: Transition) -> None:
            for state, gauge in states.items():
                gauge.set(1 if state is transition.to_state else 0)
            self._breaker_transitions.labels(endpoint, transition.to_state.value).inc()

        return observe

    def model_loaded(self, endpoint: str, model: str, version: int, seconds: float) -> None:
        self._load_seconds.labels(endpoint, model, str(version)).set(seconds)

    # -- sampled values ----------------------------------------------------------------------

    def watch_queue(self, endpoint: str, queued: Callable[[], int]) -> None:
        """Export ``queued()`` (requests waiting in ``endpoint``'s queue) as sampled."""
        self._queues[endpoint] = (queued, self._queued.labels(endpoint))

    def watch_dependency(self, name: str, reachable: Callable[[], bool]) -> None:
        """Export ``reachable()`` (no I/O: a status already known) as ``keel_dependency_up``."""
        self._dependencies[name] = (reachable, self._dependency_up.labels(name))

    def refresh(self) -> None:
        """Read the sampled values (log and compactor counters, queues, process) into the
        metrics. Called before every scrape, and by the sampler thread of a worker."""
        with self._refresh_lock:
            if self.log is not None:
                status = self.log.status()
                for key, mirror in self._log_counters:
                    mirror.update(status[key])
                for key, gauge in self._log_gauges:
                    gauge.set(float(status[key]))
            compactor = self.compactor
            for attribute, mirror in self._compaction_counters:
                mirror.update(getattr(compactor, attribute))
            for queued, gauge in self._queues.values():
                gauge.set(queued())
            for reachable, gauge in self._dependencies.values():
                gauge.set(1 if reachable() else 0)
            self._cache_tally.publish()
            self.traffic.publish()
            if self._process is not None:
                self._process.refresh()

    def start(self) -> None:
        """In multiprocess mode, publish the sampled values every ``sample_seconds`` from a
        daemon thread (other workers answer scrapes); one process needs no thread."""
        if self.multiprocess_dir is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="keel-metrics", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # never let a metrics bug end the thread silently
                logger.exception("sampling the server's metrics failed")
            if self._stop.wait(self.sample_seconds):
                return

    def close(self) -> None:
        """Stop the sampler thread and publish the final values (call it after the log and
        the compactor are closed, so what they counted last is in)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.multiprocess_dir is not None:
            self.refresh()

    # -- exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format of every metric; in multiprocess mode, of every worker."""
        self.refresh()
        if self.multiprocess_dir is not None:
            forget_dead_processes(self.multiprocess_dir)
        return generate_latest(self.registry)
