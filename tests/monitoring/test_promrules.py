"""The generated Prometheus rules: promtool accepts them, and a fast burn fires in promtool's
own rule unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keel._monitoring_settings import AlertRule, MonitoringSettings, SLOSettings
from keel.errors import ConfigError
from keel.monitoring._promrules import (
    MONITORING_GAUGES,
    duration,
    glob_regex,
    prometheus_rules,
    prometheus_rules_yaml,
)

SETTINGS = MonitoringSettings(
    slos=(
        SLOSettings(endpoint="churn", availability=0.999, latency=0.95, latency_threshold_ms=100),
        SLOSettings(endpoint="calm", availability=0.999),
    ),
    rules=(
        AlertRule(
            name="psi-high",
            monitor="drift",
            statistic="psi",
            subject="age|inc*",
            comparison="above",
            threshold=0.25,
            for_seconds=3600,
        ),
    ),
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("KEEL_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian's prometheus package ships it)")
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_generated_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(prometheus_rules_yaml(SETTINGS))

    checked = run("check", "rules", "rules.yml", cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def series(name: str, labels: dict[str, str], per_minute: int) -> dict[str, str]:
    text = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{text}}}", "values": f"0+{per_minute}x120"}


def test_a_fast_burn_pages_in_promtool_and_a_healthy_endpoint_stays_quiet(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(prometheus_rules_yaml(SETTINGS))
    churn = {"endpoint": "churn", "model_version": "1", "api": "v1"}
    calm = {**churn, "endpoint": "calm"}
    inputs = [
        # churn: 60 of 660 requests a minute fail (9 %, 91x a 0.1 % budget), 66 are slower
        # than 100 ms (10 %, 2x a 5 % budget); calm: no errors at all
        series("keel_requests_total", {**churn, "code": "200"}, 600),
        series("keel_requests_total", {**churn, "code": "500"}, 60),
        series("keel_request_duration_seconds_bucket", {**churn, "le": "0.1"}, 594),
        series("keel_request_duration_seconds_count", churn, 660),
        series("keel_requests_total", {**calm, "code": "200"}, 600),
    ]
    burn_rules = _group(prometheus_rules(SETTINGS)[0], "keel-slo-burn")
    # availability burns 91x: every pair (14.4, 6, 3, 1) fires; latency 2x: only the 1x pair
    firing = [
        rule for rule in burn_rules
        if rule["labels"]["endpoint"] == "churn"
        and (rule["labels"]["slo"] == "availability" or rule["labels"]["window"] == "ticket_3d")
    ]  # fmt: skip
    assert len(firing) == 5
    expected = [
        {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]} for rule in firing
    ]
    unit = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": "60m", "alertname": "KeelSLOBurnRate", "exp_alerts": expected}
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit, sort_keys=False))

    tested = run("test", "rules", "test.yml", cwd=tmp_path)

    assert tested.returncode == 0, tested.stdout + tested.stderr


def _group(rules: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return next(group["rules"] for group in rules["groups"] if group["name"] == name)


def test_drift_and_performance_rules_read_only_the_monitoring_gauges() -> None:
    rules, skipped = prometheus_rules(SETTINGS)
    monitoring = _group(rules, "keel-monitoring")

    by_rule = {rule["labels"]["keel_rule"]: rule for rule in monitoring}
    assert by_rule["drift"]["expr"] == (
        "(keel_monitor_drifted == 1) and on(endpoint) keel_monitor_window_rows >= 100"
    )
    assert by_rule["psi-high"]["expr"] == (
        'keel_monitor_drift_score{column=~"age|inc.*",statistic="psi"} > 0.25'
    )
    assert by_rule["psi-high"]["for"] == "1h"
    assert "ignoring(kind)" in by_rule["performance_below_validation"]["expr"]
    assert all(rule["expr"].lstrip("(").startswith(MONITORING_GAUGES) for rule in monitoring)
    assert skipped == ["prediction_drift", "concept_drift"]


def test_durations_and_globs_translate_to_promql() -> None:
    assert [duration(s) for s in (300, 3600, 7200, 86400, 259200, 90)] == [
        "5m", "1h", "2h", "1d", "3d", "90s",
    ]  # fmt: skip
    assert glob_regex("page_*|a.b") == r"page_.*|a\.b"


def test_a_latency_threshold_off_the_histogram_is_a_config_error() -> None:
    settings = MonitoringSettings(
        slos=(SLOSettings(endpoint="churn", latency=0.9, latency_threshold_ms=150),)
    )
    with pytest.raises(ConfigError, match="100 and 200 ms"):
        prometheus_rules(settings)


def test_a_drifted_column_alerts_in_promtool_only_in_a_window_with_enough_rows(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yml").write_text(prometheus_rules_yaml(SETTINGS))
    [drift] = [r for r in _group(prometheus_rules(SETTINGS)[0], "keel-monitoring")
               if r["labels"]["keel_rule"] == "drift"]  # fmt: skip
    inputs = [
        {"series": 'keel_monitor_drifted{endpoint="churn",column="age"}', "values": "1x30"},
        {"series": 'keel_monitor_window_rows{endpoint="churn"}', "values": "500x30"},
        {"series": 'keel_monitor_drifted{endpoint="tiny",column="age"}', "values": "1x30"},
        {"series": 'keel_monitor_window_rows{endpoint="tiny"}', "values": "50x30"},
    ]
    expected = {"exp_labels": {**drift["labels"], "endpoint": "churn", "column": "age"},
                "exp_annotations": drift["annotations"]}  # fmt: skip
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs,
        "alert_rule_test": [{"eval_time": "10m", "alertname": "KeelDrift",
                             "exp_alerts": [expected]}],
    }]}  # fmt: skip
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit, sort_keys=False))

    tested = run("test", "rules", "test.yml", cwd=tmp_path)

    assert tested.returncode == 0, tested.stdout + tested.stderr
