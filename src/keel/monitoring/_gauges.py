"""Monitor results as Prometheus gauges: what `keel monitor watch` serves on ``/metrics``.

The names are a contract with the generated alerting rules and Grafana dashboard
(:mod:`keel.monitoring._promrules`, :mod:`keel.monitoring._grafana`)::

    keel_monitor_drift_score{endpoint, column, statistic}       the statistic's value
    keel_monitor_drift_p_value{endpoint, column, statistic}     corrected p-value (p-value tests)
    keel_monitor_drifted{endpoint, column}                      1 when the column's verdict is drift
    keel_monitor_data_quality{endpoint, column, check}          null_rate, invalid, unseen, volume
    keel_monitor_data_quality_alert{endpoint, column, check}    1 when the check is an alert
    keel_monitor_performance{endpoint, model_version, metric, kind}   realised, estimated or
                                                                      validation
    keel_monitor_window_rows{endpoint}                          rows of the latest window
    keel_monitor_window_end_timestamp_seconds{endpoint}         end of the latest window

Each gauge holds the latest window's value: a window computed later replaces what an earlier
one set (a column absent from the new window keeps its last value until the process restarts,
since Prometheus has no "unknown"; the window timestamp says how fresh it is).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from keel.monitoring._results import MonitorResult

_PERFORMANCE_MONITORS = {"performance": "realised", "estimated_performance": "estimated"}


class MonitorGauges:
    """The monitoring gauges in ``registry`` (its own by default), fed with results."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

        def gauge(name: str, documentation: str, labels: list[str]) -> Gauge:
            return Gauge(name, documentation, labels, registry=self.registry)

        column = ["endpoint", "column"]
        self.drift_score = gauge(
            "keel_monitor_drift_score",
            "Drift statistic of a column in the latest window.",
            [*column, "statistic"],
        )
        self.drift_p_value = gauge(
            "keel_monitor_drift_p_value",
            "Corrected p-value of a column's drift test in the latest window.",
            [*column, "statistic"],
        )
        self.drifted = gauge(
            "keel_monitor_drifted", "1 when the column drifted in the latest window.", column
        )
        self.quality = gauge(
            "keel_monitor_data_quality",
            "Data-quality measure of the latest window (rate, count or rows).",
            [*column, "check"],
        )
        self.quality_alert = gauge(
            "keel_monitor_data_quality_alert",
            "1 when the data-quality check is an alert in the latest window.",
            [*column, "check"],
        )
        self.performance = gauge(
            "keel_monitor_performance",
            "Model performance in the latest window, realised (labels) or estimated.",
            ["endpoint", "model_version", "metric", "kind"],
        )
        self.window_rows = gauge(
            "keel_monitor_window_rows", "Rows of the latest window computed.", ["endpoint"]
        )
        self.window_end = gauge(
            "keel_monitor_window_end_timestamp_seconds",
            "End of the latest window computed (epoch seconds).",
            ["endpoint"],
        )

    def update(self, results: Iterable[MonitorResult]) -> None:
        """Set the gauges from ``results`` (in window order: later windows win)."""
        for result in results:
            self._one(result)

    def _one(self, r: MonitorResult) -> None:
        if r.monitor == "drift" and r.statistic == "verdict":
            self.window_rows.labels(r.endpoint).set(r.rows)
            self.window_end.labels(r.endpoint).set(r.window_end)
            return
        if r.monitor == "drift" and r.subject:
            if r.value is not None:
                self.drift_score.labels(r.endpoint, r.subject, r.statistic).set(r.value)
            if r.p_value is not None:
                self.drift_p_value.labels(r.endpoint, r.subject, r.statistic).set(r.p_value)
            if r.details.get("default") and r.status in ("ok", "drift"):
                self.drifted.labels(r.endpoint, r.subject).set(1 if r.status == "drift" else 0)
            return
        if r.monitor == "data_quality" and r.value is not None:
            self.quality.labels(r.endpoint, r.subject, r.statistic).set(r.value)
            alert = 1 if r.status == "alert" else 0
            self.quality_alert.labels(r.endpoint, r.subject, r.statistic).set(alert)
            return
        kind = _PERFORMANCE_MONITORS.get(r.monitor)
        if kind is None:
            return
        version = str(r.model_version)
        if r.value is not None:
            self.performance.labels(r.endpoint, version, r.statistic, kind).set(r.value)
        if r.threshold is not None:  # the version's validation value, what rules compare with
            self.performance.labels(r.endpoint, version, r.statistic, "validation").set(r.threshold)
