"""The server's Prometheus metrics, in a registry of its own (no module-level collectors).

    metrics = ServingMetrics(log)
    metrics.requests(endpoint, version).inc()     # children are cached: label lookups are dicts
    body = metrics.exposition()                   # text format, for GET /metrics

One process for now: each worker process would export its own counters. Several workers need
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which this does not set up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keel.serving._batching import BatchRecord

if TYPE_CHECKING:
    from keel.serving._predlog import PredictionLog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
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


class _LogCollector(Collector):
    """Reads the prediction log's counters at scrape time (nothing to update per request)."""

    def __init__(self, log: PredictionLog) -> None:
        self._log = log

    def collect(self) -> Iterator[Metric]:
        status = self._log.status()
        for key, help_text in (
            ("entries_written", "Prediction log entries handed to the OS."),
            ("write_errors", "Prediction log writes that failed."),
            ("dropped_entries", "Prediction log entries lost (memory cap, unencodable, closed)."),
            ("fsync_errors", "Prediction log fsync rounds that failed."),
        ):
            counter = CounterMetricFamily(f"keel_prediction_log_{key}", help_text)
            counter.add_metric([], status[f"{key}_total"])
            yield counter
        lag = GaugeMetricFamily(
            "keel_prediction_log_lag_seconds",
            "Age of the oldest log entry not yet compacted to Parquet (NaN: unreadable).",
        )
        lag.add_metric([], float("nan") if status["lag_seconds"] is None else status["lag_seconds"])
        yield lag
        degraded = GaugeMetricFamily(
            "keel_prediction_log_degraded", "1 while the prediction log cannot write."
        )
        degraded.add_metric([], 1.0 if status["degraded"] else 0.0)
        yield degraded
        pending = GaugeMetricFamily(
            "keel_prediction_log_pending_entries", "Entries kept in memory while writing fails."
        )
        pending.add_metric([], status["pending_entries"])
        yield pending


class ServingMetrics:
    """Every metric of one server process, and cached label children for the request path."""

    def __init__(self, log: PredictionLog | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Counter(
            "keel_requests",
            "Requests answered, by endpoint, model version, API and status code.",
            ["endpoint", "model_version", "api", "code"],
            registry=registry,
        )
        self._latency = Histogram(
            "keel_request_duration_seconds",
            "Time from request to response, by endpoint and model version.",
            ["endpoint", "model_version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._errors = Counter(
            "keel_request_errors",
            "Requests refused or failed, by endpoint and error type.",
            ["endpoint", "type"],
            registry=registry,
        )
        self._batch_rows = Histogram(
            "keel_batch_rows",
            "Rows per model call (micro-batch size), by endpoint.",
            ["endpoint"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self._batch_seconds = Histogram(
            "keel_batch_duration_seconds",
            "Time inside one model call, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "keel_requests_in_flight", "Requests being handled now.", registry=registry
        )
        self._load_seconds = Gauge(
            "keel_model_load_seconds",
            "Time it took to load each endpoint's model.",
            ["endpoint", "model", "model_version"],
            registry=registry,
        )
        ProcessCollector(registry=registry)  # process CPU seconds, resident memory, open fds
        if log is not None:
            registry.register(_LogCollector(log))
        self._children: dict[tuple[str, ...], Any] = {}

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

    def batch_observer(self, endpoint: str) -> Any:
        """The callback a :class:`MicroBatcher` calls after each batch of ``endpoint``."""
        rows = self._batch_rows.labels(endpoint)
        seconds = self._batch_seconds.labels(endpoint)

        def observe(record: BatchRecord) -> None:
            rows.observe(record.rows)
            seconds.observe(record.run_seconds)

        return observe

    def model_loaded(self, endpoint: str, model: str, version: int, seconds: float) -> None:
        self._load_seconds.labels(endpoint, model, str(version)).set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
