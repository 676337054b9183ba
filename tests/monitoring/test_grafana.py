"""The generated Grafana dashboard: the dashboard model, and queries over metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from keel._monitoring_settings import MonitoringSettings, SLOSettings
from keel.monitoring._grafana import SCHEMA_VERSION, grafana_dashboard, grafana_dashboard_json
from keel.monitoring._promrules import MONITORING_GAUGES
from keel.serving._metrics import ServingMetrics

from .test_promrules import run

SETTINGS = MonitoringSettings(
    slos=(SLOSettings(endpoint="churn", availability=0.999, latency=0.95),)
)
_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")


def known_metrics() -> set[str]:
    """Every series name a keel server exports, and the monitoring gauges."""
    families = [family.name for family in ServingMetrics().registry.collect()]
    return {name + suffix for name in families for suffix in _SUFFIXES} | set(MONITORING_GAUGES)


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_follows_grafanas_model() -> None:
    dashboard = json.loads(grafana_dashboard_json("churn", SETTINGS))

    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["uid"] == "keel-churn"
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] != "row":
            assert panel["targets"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_shows_traffic_latency_errors_slos_drift_and_performance() -> None:
    titles = " | ".join(panel["title"] for panel in grafana_dashboard("churn", SETTINGS)["panels"])

    for wanted in ("Traffic", "Latency", "Errors", "availability SLO 0.999: error budget",
                   "latency SLO burn rate", "Drift score per column",
                   "Performance: realised vs estimated"):  # fmt: skip
        assert wanted in titles
    latency = next(p for p in grafana_dashboard("churn", SETTINGS)["panels"]
                   if p["title"] == "Latency")  # fmt: skip
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]


def test_an_endpoint_without_slo_gets_no_slo_panels() -> None:
    titles = [panel["title"] for panel in grafana_dashboard("other", SETTINGS)["panels"]]
    assert not [title for title in titles if "SLO" in title]


def test_every_query_reads_only_metrics_keel_exports() -> None:
    exported = known_metrics()
    for expr in queries(grafana_dashboard("churn", SETTINGS)):
        names = set(re.findall(r"\bkeel_[a-z_]+", expr))
        assert names, expr
        assert names <= exported, f"{expr}: {names - exported} not exported"
        assert 'endpoint="churn"' in expr


def test_every_query_is_promql_that_promtool_parses(tmp_path: Path) -> None:
    exprs = queries(grafana_dashboard("churn", SETTINGS))
    rules = [{"record": f"keel:grafana_query_{n}", "expr": expr} for n, expr in enumerate(exprs)]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]})
    )

    checked = run("check", "rules", "queries.yml", cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
