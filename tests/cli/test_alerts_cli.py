"""``keel alerts`` and ``keel monitor rules | dashboard | slo`` through the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from keel import Workspace
from monitoring.alert_helpers import put_result
from monitoring.test_promrules import run

from .conftest import Keel, assert_one_line_error, sqlite_only

SLO_CONFIG = """
[[monitoring.slos]]
endpoint = "churn"
availability = 0.999
latency = 0.95
latency_threshold_ms = 100
"""


def fire(keel: Keel, workspace: Workspace) -> str:
    put_result(workspace.store, start=time.time() - 3600)
    evaluated = keel.json("alerts", "evaluate")
    [fired] = evaluated["fired"]
    return str(fired["id"])


def test_evaluate_list_ack_resolve(keel: Keel, workspace: Workspace) -> None:
    alert_id = fire(keel, workspace)

    listed = keel.json("alerts", "list", "--state", "firing", "--endpoint", "churn")
    acked = keel.json("alerts", "ack", alert_id, "--note", "on it")
    resolved = keel.json("alerts", "resolve", alert_id, "--reason", "retrained")

    assert [a["id"] for a in listed] == [alert_id]
    assert listed[0]["evidence"]["top_drifting_columns"][0]["column"] == "age"
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "tester")
    assert (resolved["state"], resolved["resolve_reason"]) == ("resolved", "retrained")
    assert keel.json("alerts", "list", "--state", "open") == []
    shown = keel.json("alerts", "show", alert_id)
    assert [e["kind"] for e in shown["events"]][-2:] == ["acknowledged", "resolved"]


def test_the_text_listing_shows_the_alert(keel: Keel, workspace: Workspace) -> None:
    alert_id = fire(keel, workspace)
    assert alert_id in keel.ok("alerts", "list").stdout
    assert "column age drifted" in keel.ok("alerts", "show", alert_id).stdout


def test_resolving_a_resolved_alert_is_one_line_error(keel: Keel, workspace: Workspace) -> None:
    alert_id = fire(keel, workspace)
    keel.ok("alerts", "resolve", alert_id)

    assert_one_line_error(keel("alerts", "resolve", alert_id), "is resolved", "cannot be resolved")
    assert_one_line_error(keel("alerts", "ack", alert_id), "cannot be acknowledged")


@sqlite_only
def test_an_unknown_alert_or_state_is_one_line_error(keel: Keel) -> None:
    assert_one_line_error(keel("alerts", "ack", "al_nope"), "no alert with id 'al_nope'")
    assert_one_line_error(keel("alerts", "list", "--state", "burning"), "unknown alert state")


@sqlite_only
def test_a_bad_rule_in_keel_toml_is_one_line_error(keel: Keel, project: Path) -> None:
    config = project / "keel.toml"
    config.write_text(
        config.read_text() + '[[monitoring.rules]]\nname = "x"\nmonitor = "drift"\n'
        'comparison = "sideways"\n'
    )
    assert_one_line_error(keel("alerts", "evaluate"), "monitoring.rules.0.comparison")


@sqlite_only
def test_monitor_rules_writes_a_file_promtool_accepts(keel: Keel, project: Path) -> None:
    config = project / "keel.toml"
    config.write_text(config.read_text() + SLO_CONFIG)
    out = project / "rules.yml"

    keel.ok("monitor", "rules", "--out", str(out))

    assert 'endpoint="churn"' in out.read_text()
    checked = run("check", "rules", "rules.yml", cwd=project)
    assert checked.returncode == 0, checked.stdout


@sqlite_only
def test_a_latency_threshold_off_the_histogram_is_one_line_error(keel: Keel, project: Path) -> None:
    config = project / "keel.toml"
    config.write_text(config.read_text() + SLO_CONFIG.replace("= 100", "= 75"))
    assert_one_line_error(keel("monitor", "rules"), "latency_threshold_ms", "50 and 100 ms")


@sqlite_only
def test_monitor_dashboard_writes_grafana_json(keel: Keel, project: Path) -> None:
    out = project / "churn.json"
    keel.ok("monitor", "dashboard", "churn", "--out", str(out))
    dashboard = json.loads(out.read_text())
    assert (dashboard["title"], dashboard["uid"]) == ("keel: churn", "keel-churn")


def test_monitor_slo_reports_budget_and_burn_rates(
    keel: Keel, project: Path, workspace: Workspace
) -> None:
    config = project / "keel.toml"
    config.write_text(config.read_text() + SLO_CONFIG)

    report = keel.json("monitor", "slo", "churn")

    assert [(s["endpoint"], s["objective"]) for s in report["slos"]] == [
        ("churn", "availability"), ("churn", "latency"),
    ]  # fmt: skip
    assert report["slos"][0]["budget_remaining"] is None  # no traffic recorded yet
    assert "page_1h" in keel.ok("monitor", "slo").stdout
    assert_one_line_error(keel("monitor", "slo", "other"), "'other' has no SLO")
