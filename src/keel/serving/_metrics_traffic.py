"""The metrics of a traffic split and of shadow versions, part of :class:`ServingMetrics`.

metrics.traffic.arm(endpoint, arm, seconds)                 # each request an arm answered
metrics.traffic.shadow(endpoint, model, outcome, seconds, compared, disagreed)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel.serving._metrics_sources import Tally


class TrafficMetrics:
    """Counts and times per arm, and what shadow versions did with the copies they got.

    ``owner`` is the registry the metrics join (None in multiprocess mode, where values live
    in files; see :mod:`keel.serving._metrics`)."""

    def __init__(self, owner: CollectorRegistry | None, buckets: tuple[float, ...]) -> None:
        self._arm_requests = Counter(
            "keel_arm_requests",
            "Requests answered by each arm of an endpoint's traffic split.",
            ["endpoint", "arm"],
            registry=owner,
        )
        self._arm_seconds = Histogram(
            "keel_arm_duration_seconds",
            "Time to answer a request (model, cache, fallback; not the transport), by arm.",
            ["endpoint", "arm"],
            buckets=buckets,
            registry=owner,
        )
        self._shadow_requests = Counter(
            "keel_shadow_requests",
            "Requests mirrored to each shadow version, by outcome (ok, error, timeout, "
            "invalid_input: not valid for the shadow's signature, dropped: too many in flight).",
            ["endpoint", "model", "outcome"],
            registry=owner,
        )
        self._shadow_seconds = Histogram(
            "keel_shadow_duration_seconds",
            "Time a shadow version took to answer a mirrored request.",
            ["endpoint", "model"],
            buckets=buckets,
            registry=owner,
        )
        self._shadow_compared = Counter(
            "keel_shadow_compared_rows",
            "Rows whose shadow prediction was compared with the primary's answer.",
            ["endpoint", "model"],
            registry=owner,
        )
        self._shadow_disagreements = Counter(
            "keel_shadow_disagreements",
            "Compared rows where the shadow's prediction differed from the primary's.",
            ["endpoint", "model"],
            registry=owner,
        )
        self._arm_tally = Tally(self._arm_requests)
        self._arm_children: dict[tuple[str, str], Any] = {}  # histogram children, per request

    def arm(self, endpoint: str, arm: str, seconds: float) -> None:
        self._arm_tally.counts[endpoint, arm] += 1
        child = self._arm_children.get((endpoint, arm))
        if child is None:
            child = self._arm_children[endpoint, arm] = self._arm_seconds.labels(endpoint, arm)
        child.observe(seconds)

    def publish(self) -> None:
        """Publish the per-arm request counts (see :class:`~._metrics_sources.Tally`)."""
        self._arm_tally.publish()

    def shadow(
        self,
        endpoint: str,
        model: str,
        outcome: str,
        seconds: float | None,
        compared: int = 0,
        disagreed: int = 0,
    ) -> None:
        """One request mirrored to shadow ``model``: its outcome, how long the shadow took
        (None when it was not asked) and, when it answered, the rows compared and differing."""
        self._shadow_requests.labels(endpoint, model, outcome).inc()
        if seconds is not None:
            self._shadow_seconds.labels(endpoint, model).observe(seconds)
        if compared:
            self._shadow_compared.labels(endpoint, model).inc(compared)
        if disagreed:
            self._shadow_disagreements.labels(endpoint, model).inc(disagreed)
