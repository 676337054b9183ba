"""A Grafana dashboard for one endpoint, generated from keel's metric names.

    text = grafana_dashboard_json("churn", settings.monitoring)   # `keel monitor dashboard`

Rows of panels: traffic by status code; latency p50/p95/p99; error ratio and refusals by type;
the endpoint's SLOs (error budget remaining over the SLO window, burn rate over each window a
burn-rate pair uses) when it has any; drift score per column and statistic, and how many
columns drifted; realised vs estimated performance per model version. Every query is plain
PromQL over the serving metrics and the monitoring gauges named in
:mod:`keel.monitoring._promrules` (no recording rules needed), against a Prometheus data
source chosen with the dashboard's ``datasource`` variable.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from keel._monitoring_settings import MonitoringSettings, SLOSettings
from keel.monitoring._promrules import DRIFT_SCORE, DRIFTED, PERFORMANCE, duration
from keel.monitoring._slo import DURATION, REQUESTS, check_threshold

SCHEMA_VERSION = 39
_WIDTH = 24
_HEIGHT = 8
_SOURCE = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "5m"


class _Layout:
    """Places panels left to right, two per row, and numbers them."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0

    def add(self, panel: dict[str, Any], *, width: int = _WIDTH // 2) -> None:
        if self._x + width > _WIDTH:
            self._x, self._y = 0, self._y + _HEIGHT
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": _HEIGHT, "w": width, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += width

    def row(self, title: str) -> None:
        self._x, self._y = 0, self._y + (_HEIGHT if self.panels else 0)
        self.panels.append({
            "type": "row", "title": title, "id": len(self.panels) + 1, "collapsed": False,
            "gridPos": {"h": 1, "w": _WIDTH, "x": 0, "y": self._y}, "panels": [],
        })  # fmt: skip
        self._y += 1
        self._x = _WIDTH  # the next panel starts a new line below the row


def _panel(title: str, unit: str, *queries: tuple[str, str], kind: str = "timeseries",
           description: str = "") -> dict[str, Any]:  # fmt: skip
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": _SOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": _SOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (expr, legend) in enumerate(queries)
        ],
    }


def _ratio(selector: str, bad: str, window: str) -> str:
    """Share of the endpoint's requests that were bad over ``window``."""
    if bad == "errors":
        failed = f'sum(rate({REQUESTS}_total{{{selector},code=~"5.."}}[{window}]))'
        return f"{failed} / sum(rate({REQUESTS}_total{{{selector}}}[{window}]))"
    fast = f'sum(rate({DURATION}_bucket{{{selector},le="{bad}"}}[{window}]))'
    return f"1 - ({fast} / sum(rate({DURATION}_count{{{selector}}}[{window}])))"


def _slo_panels(layout: _Layout, slo: SLOSettings, settings: MonitoringSettings) -> None:
    selector = f'endpoint="{slo.endpoint}"'
    windows = sorted({s for p in settings.burn_rates for s in (p.long_seconds, p.short_seconds)})
    whole = duration(slo.window_days * 86400)
    objectives = []
    if slo.availability is not None:
        objectives.append(("availability", slo.availability, "errors"))
    if slo.latency is not None:
        le = repr(check_threshold(slo.latency_threshold_ms, "latency_threshold_ms"))
        objectives.append(("latency", slo.latency, le))
    for name, objective, bad in objectives:
        allowed = f"{1 - objective:.6g}"
        budget = f"1 - ({_ratio(selector, bad, whole)}) / {allowed}"
        layout.add(_panel(
            f"{name} SLO {objective:g}: error budget remaining ({whole})", "percentunit",
            (budget, "budget remaining"), kind="stat",
            description="1 = untouched, 0 = spent, below 0 = overspent",
        ), width=6)  # fmt: skip
        burns = [(f"({_ratio(selector, bad, duration(w))}) / {allowed}", duration(w))
                 for w in windows]  # fmt: skip
        layout.add(_panel(
            f"{name} SLO burn rate", "x", *burns,
            description="1 spends the budget exactly over the SLO window; the page pairs "
            "fire above 14.4 (1h and 5m) and 6 (6h and 30m)",
        ), width=18)  # fmt: skip


def grafana_dashboard(endpoint: str, settings: MonitoringSettings) -> dict[str, Any]:
    """The dashboard model (Grafana's JSON schema, ``schemaVersion`` 39) for ``endpoint``."""
    selector = f'endpoint="{endpoint}"'
    histogram = f"sum by (le) (rate({DURATION}_bucket{{{selector}}}[{_RATE}]))"
    layout = _Layout()
    layout.row("Serving")
    traffic = f"sum by (code) (rate({REQUESTS}_total{{{selector}}}[{_RATE}]))"
    layout.add(_panel("Traffic by status code", "reqps", (traffic, "{{code}}")))
    layout.add(_panel("Latency", "s", *[
        (f"histogram_quantile({q}, {histogram})", f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)
    ]))  # fmt: skip
    layout.add(_panel("Errors", "percentunit", (_ratio(selector, "errors", _RATE), "5xx ratio")))
    refused = f"sum by (type) (rate(keel_request_errors_total{{{selector}}}[{_RATE}]))"
    layout.add(_panel("Refused or failed requests by type", "reqps", (refused, "{{type}}")))
    slo = next((s for s in settings.slos if s.endpoint == endpoint), None)
    if slo is not None:
        layout.row("Service-level objectives")
        _slo_panels(layout, slo, settings)
    layout.row("Drift and performance")
    layout.add(_panel("Drift score per column", "none",
        (f"{DRIFT_SCORE}{{{selector}}}", "{{column}} {{statistic}}")))  # fmt: skip
    layout.add(_panel("Drifted columns", "none",
        (f"sum({DRIFTED}{{{selector}}})", "drifted columns")))  # fmt: skip
    layout.add(_panel("Performance: realised vs estimated", "none",
        (f'{PERFORMANCE}{{{selector},kind=~"realised|estimated"}}',
         "{{metric}} v{{model_version}} {{kind}}")), width=_WIDTH)  # fmt: skip
    return {
        "uid": _uid(endpoint),
        "title": f"keel: {endpoint}",
        "tags": ["keel", "ml"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                }
            ]
        },
        "annotations": {"list": []},
        "panels": layout.panels,
    }


def grafana_dashboard_json(endpoint: str, settings: MonitoringSettings) -> str:
    return orjson.dumps(grafana_dashboard(endpoint, settings), option=orjson.OPT_INDENT_2).decode()


def _uid(endpoint: str) -> str:
    """Grafana uids are at most 40 characters of letters, digits, - and _."""
    return ("keel-" + re.sub(r"[^A-Za-z0-9_-]", "-", endpoint))[:40]
