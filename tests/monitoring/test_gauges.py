"""Monitor results become Prometheus gauges holding the latest window's values."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keel.monitoring._gauges import MonitorGauges
from keel.monitoring._results import MonitorResult


def result(monitor: str, subject: str, statistic: str, status: str, **rest: Any) -> MonitorResult:
    return MonitorResult(
        endpoint="churn",
        window_start=rest.pop("start", 0.0),
        window_end=rest.pop("end", 3600.0),
        monitor=monitor,
        subject=subject,
        statistic=statistic,
        status=status,
        rows=rest.pop("rows", 2_000),
        **rest,
    )


def samples(gauges: MonitorGauges) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(gauges.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_columns_drift_score_p_value_and_verdict_are_exported() -> None:
    gauges = MonitorGauges()
    gauges.update(
        [
            result("drift", "", "verdict", "drift", value=1.0),
            result(
                "drift", "age", "ks", "drift", value=0.2, p_value=1e-9, details={"default": True}
            ),
            result("drift", "age", "psi", "drift", value=0.4, threshold=0.2),
        ]
    )
    found = samples(gauges)
    age = (("column", "age"), ("endpoint", "churn"))
    assert found[("keel_monitor_drift_score", (*age, ("statistic", "ks")))] == 0.2
    assert found[("keel_monitor_drift_score", (*age, ("statistic", "psi")))] == 0.4
    assert found[("keel_monitor_drift_p_value", (*age, ("statistic", "ks")))] == 1e-9
    assert found[("keel_monitor_drifted", age)] == 1
    assert found[("keel_monitor_window_rows", (("endpoint", "churn"),))] == 2_000
    assert found[("keel_monitor_window_end_timestamp_seconds", (("endpoint", "churn"),))] == 3600


def test_a_later_window_replaces_the_earlier_values() -> None:
    gauges = MonitorGauges()
    gauges.update(
        [
            result(
                "drift", "age", "ks", "drift", value=0.2, p_value=0.0, details={"default": True}
            ),
            result("drift", "age", "ks", "ok", value=0.01, p_value=0.8, details={"default": True}),
        ]
    )
    assert (
        samples(gauges)[("keel_monitor_drifted", (("column", "age"), ("endpoint", "churn")))] == 0
    )


def test_data_quality_and_performance_results_are_exported_with_their_kind() -> None:
    gauges = MonitorGauges()
    gauges.update(
        [
            result("data_quality", "income", "null_rate", "alert", value=0.3, threshold=0.06),
            result(
                "performance",
                "accuracy",
                "accuracy",
                "ok",
                value=0.91,
                threshold=0.95,
                model_version=3,
            ),
            result(
                "estimated_performance", "accuracy", "accuracy", "ok", value=0.9, model_version=3
            ),
        ]
    )
    found = samples(gauges)
    quality = (("check", "null_rate"), ("column", "income"), ("endpoint", "churn"))
    assert found[("keel_monitor_data_quality", quality)] == 0.3
    assert found[("keel_monitor_data_quality_alert", quality)] == 1
    version = (("endpoint", "churn"), ("metric", "accuracy"), ("model_version", "3"))
    realised = ("keel_monitor_performance", (version[0], ("kind", "realised"), *version[1:]))
    estimated = ("keel_monitor_performance", (version[0], ("kind", "estimated"), *version[1:]))
    validation = ("keel_monitor_performance", (version[0], ("kind", "validation"), *version[1:]))
    assert (found[realised], found[estimated], found[validation]) == (0.91, 0.9, 0.95)
