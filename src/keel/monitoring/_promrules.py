"""A Prometheus alerting-rules file equivalent to keel's built-in alert rules.

    text = prometheus_rules_yaml(settings.monitoring)     # `keel monitor rules --out FILE`

For people who alert from Prometheus/Alertmanager rather than from keel's own evaluator. It
holds three groups:

- ``keel-slo-ratios``: recording rules ``keel:slo_errors:ratio_rate<W>`` (share of requests
  answered with a 5xx) and ``keel:slo_slow:ratio_rate<W>`` (share slower than the endpoint's
  latency threshold) for every window a burn-rate pair uses;
- ``keel-slo-burn``: one ``KeelSLOBurnRate`` alert per endpoint, objective and window pair
  (labels ``endpoint``, ``slo``, ``window``, ``severity``), firing when both windows' ratios
  exceed factor x (1 - objective), as :mod:`keel.monitoring._slo` judges them;
- ``keel-monitoring``: the drift and performance rules over the monitoring gauges.

**The gauge contract** (exported by the monitor runner, read here and by the Grafana
dashboard; these names and labels must not change without changing both):

- ``keel_monitor_drift_score{endpoint,column,statistic}`` - a drift statistic's value;
- ``keel_monitor_drift_p_value{endpoint,column,statistic}`` - its p-value (p-value statistics);
- ``keel_monitor_drifted{endpoint,column}`` - 1 when the column drifted in the last window
  (after the multiple-testing correction), else 0; not exported for windows with too few rows;
- ``keel_monitor_performance{endpoint,model_version,metric,kind}`` - kind ``realised`` or
  ``estimated``, and ``validation`` for the version's validation value the built-in
  performance rules compare against;
- ``keel_monitor_window_rows{endpoint}`` - rows of the latest window (a rule's
  ``min_samples`` becomes ``and on(endpoint) keel_monitor_window_rows >= N``).

What Prometheus cannot say the same way: ``cooldown_seconds`` (Alertmanager's
``repeat_interval`` plays that part), and rules over monitors without a gauge (prediction
drift, concept drift): those are listed in the file's header comment and stay with keel's
evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from keel._monitoring_settings import AlertRule, MonitoringSettings, SLOSettings
from keel.monitoring._alert_rules import effective_rules
from keel.monitoring._slo import DURATION, REQUESTS, check_threshold

DRIFT_SCORE = "keel_monitor_drift_score"
DRIFT_P_VALUE = "keel_monitor_drift_p_value"
DRIFTED = "keel_monitor_drifted"
PERFORMANCE = "keel_monitor_performance"
WINDOW_ROWS = "keel_monitor_window_rows"
MONITORING_GAUGES = (DRIFT_SCORE, DRIFT_P_VALUE, DRIFTED, PERFORMANCE, WINDOW_ROWS)
ERRORS_RATIO = "keel:slo_errors:ratio_rate"
SLOW_RATIO = "keel:slo_slow:ratio_rate"
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration in the largest unit that divides it (3600 -> 1h)."""
    whole = round(seconds)
    for unit, size in _UNITS:
        if whole % size == 0 and whole:
            return f"{whole // size}{unit}"
    return "0s"


def glob_regex(pattern: str) -> str:
    """A ``|``-joined glob as a PromQL (RE2, fully anchored) regular expression."""
    parts = []
    for glob in pattern.split("|"):
        escaped = re.escape(glob.strip())
        parts.append(escaped.replace(r"\*", ".*").replace(r"\?", "."))
    return "|".join(parts)


def _matchers(*fixed: str, **globs: str) -> str:
    """A label selector body: the ``fixed`` matchers, then one per glob that is not "*"."""
    found = list(fixed)
    for label, pattern in globs.items():
        if pattern.strip() in ("*", "?*"):  # a gauge's label is never empty: "?*" is "*"
            continue
        regex = glob_regex(pattern)
        found.append(
            f'{label}=~"{regex}"' if regex != re.escape(pattern) else f'{label}="{pattern}"'
        )
    return ",".join(found)


def _gauge(name: str, fixed: str | None, rule: AlertRule, **globs: str) -> str:
    """``name{...}`` selecting the rule's endpoint glob, ``fixed`` and the other globs."""
    selector = _matchers(*([fixed] if fixed else []), endpoint=rule.endpoint, **globs)
    return f"{name}{{{selector}}}" if selector else name


def _ratio_rules(slos: Iterable[SLOSettings], windows: list[float]) -> list[dict[str, Any]]:
    rules = []
    for seconds in windows:
        w = duration(seconds)
        total = f"sum by (endpoint) (rate({REQUESTS}_total[{w}]))"
        errors = f'sum by (endpoint) (rate({REQUESTS}_total{{code=~"5.."}}[{w}]))'
        rules.append({"record": f"{ERRORS_RATIO}{w}", "expr": f"{errors} / {total}"})
        for n, slo in enumerate(slos):
            if slo.latency is None:
                continue
            key = f"monitoring.slos.{n}.latency_threshold_ms"
            # prometheus_client writes bucket bounds as Python floats ("0.1", "1.0")
            le = repr(check_threshold(slo.latency_threshold_ms, key))
            only = f'endpoint="{slo.endpoint}"'
            fast = f'sum by (endpoint) (rate({DURATION}_bucket{{{only},le="{le}"}}[{w}]))'
            count = f"sum by (endpoint) (rate({DURATION}_count{{{only}}}[{w}]))"
            rules.append({"record": f"{SLOW_RATIO}{w}", "expr": f"1 - ({fast} / {count})"})
    return rules


def _burn_rules(settings: MonitoringSettings) -> list[dict[str, Any]]:
    rules = []
    for slo in settings.slos:
        objectives = [("availability", slo.availability, ERRORS_RATIO),
                      ("latency", slo.latency, SLOW_RATIO)]  # fmt: skip
        for name, objective, ratio in objectives:
            if objective is None:
                continue
            only = f'{{endpoint="{slo.endpoint}"}}'
            for pair in settings.burn_rates:
                limit = f"{pair.factor:g} * {1 - objective:.6g}"
                long_w, short_w = duration(pair.long_seconds), duration(pair.short_seconds)
                expr = (f"{ratio}{long_w}{only} > ({limit}) and "
                        f"{ratio}{short_w}{only} > ({limit})")  # fmt: skip
                rules.append({
                    "alert": "KeelSLOBurnRate",
                    "expr": expr,
                    "labels": {"severity": pair.severity, "endpoint": slo.endpoint,
                               "slo": name, "window": pair.name},
                    "annotations": {
                        "summary": f"{slo.endpoint}: {name} SLO ({objective:g}) error budget "
                                   f"burning over {pair.factor:g}x over {long_w} and {short_w}",
                    },
                })  # fmt: skip
    return rules


def _monitor_rule(rule: AlertRule) -> dict[str, Any] | None:
    """The PromQL form of one keel rule, or None when the gauges cannot express it."""
    if rule.monitor == "drift":
        if rule.comparison == "status":
            expr = f"{_gauge(DRIFTED, None, rule, column=rule.subject)} == 1"
        elif rule.threshold is not None:
            gauge = DRIFT_P_VALUE if rule.field == "p_value" else DRIFT_SCORE
            selected = _gauge(gauge, None, rule, column=rule.subject, statistic=rule.statistic)
            op = ">" if rule.comparison == "above" else "<"
            expr = f"{selected} {op} {rule.threshold:g}"
        else:
            return None
    elif rule.monitor == "performance" and rule.comparison in ("above", "below"):
        realised = _gauge(PERFORMANCE, 'kind="realised"', rule, metric=rule.statistic)
        op = ">" if rule.comparison == "above" else "<"
        if rule.threshold is not None:
            expr = f"{realised} {op} {rule.threshold:g}"
        else:
            factor = 1 + rule.margin if rule.comparison == "above" else 1 - rule.margin
            validation = _gauge(PERFORMANCE, 'kind="validation"', rule, metric=rule.statistic)
            expr = f"{realised} {op} ignoring(kind) ({validation} * {factor:g})"
    else:
        return None
    if rule.min_samples:
        expr = f"({expr}) and on(endpoint) {WINDOW_ROWS} >= {rule.min_samples}"
    words = re.split(r"[^A-Za-z0-9]+", rule.name)
    out: dict[str, Any] = {"alert": "Keel" + "".join(w.capitalize() for w in words), "expr": expr}
    if rule.for_seconds:
        out["for"] = duration(rule.for_seconds)
    out["labels"] = {"severity": rule.severity, "keel_rule": rule.name}
    out["annotations"] = {"summary": f"keel rule {rule.name} ({rule.monitor})"}
    return out


def prometheus_rules(settings: MonitoringSettings) -> tuple[dict[str, Any], list[str]]:
    """The rules file as a dict, and the names of keel rules it could not express."""
    windows = sorted({s for p in settings.burn_rates for s in (p.long_seconds, p.short_seconds)})
    monitor_rules, skipped = [], []
    for rule in effective_rules(settings.rules, defaults=settings.default_rules):
        if rule.monitor == "slo":
            continue  # the burn-rate group is their form
        translated = _monitor_rule(rule)
        if translated is None:
            skipped.append(rule.name)
        else:
            monitor_rules.append(translated)
    groups = [
        {"name": "keel-slo-ratios", "rules": _ratio_rules(settings.slos, windows)},
        {"name": "keel-slo-burn", "rules": _burn_rules(settings)},
        {"name": "keel-monitoring", "rules": monitor_rules},
    ]
    return {"groups": [group for group in groups if group["rules"]]}, skipped


def prometheus_rules_yaml(settings: MonitoringSettings) -> str:
    """:func:`prometheus_rules` as the YAML ``promtool check rules`` reads."""
    rules, skipped = prometheus_rules(settings)
    header = "# Generated by `keel monitor rules` from keel.toml [monitoring]; do not edit.\n"
    if skipped:
        header += f"# Evaluated by keel only (no gauge expresses them): {', '.join(skipped)}\n"
    return header + yaml.safe_dump(rules, sort_keys=False, width=1000)
