"""Alert rules: the built-in defaults, which results a rule reads, and when its condition holds.

The built-in rules (override one with a ``[[monitoring.rules]]`` entry of the same name, turn
it off with ``enabled = false``):

=============================  =============================================================
``drift``                      a column's drift statistic says it drifted (status ``drift``,
                               after the drift monitor's multiple-testing correction)
``prediction_drift``           the model's outputs drifted from its validation outputs
``performance_below_validation``  realised accuracy / precision / recall / F1 / ROC-AUC / R²
                               more than 5 % below the version's validation value (the
                               result's ``threshold``)
``performance_above_validation``  realised MAE / RMSE / log loss more than 5 % above it
``concept_drift``              performance fell while the inputs did not drift
``slo_page`` / ``slo_ticket``  an SLO burn-rate window pair above its factor (see ``_slo``)
=============================  =============================================================

Drift and performance rules need 100 rows in the window; SLO rules one request.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from keel._monitoring_settings import AlertRule

NOT_ENOUGH_DATA = "not_enough_data"
_HOUR = 3600.0


def _data_rule(name: str, monitor: str, **fields: Any) -> AlertRule:
    """A built-in rule over a window of logged data: 100 rows at least, 6 h cooldown."""
    return AlertRule(
        name=name, monitor=monitor, min_samples=100, cooldown_seconds=6 * _HOUR, **fields
    )


_BURN = "{endpoint}: {subject} SLO error budget burning {value}x too fast ({statistic})"
_PERFORMANCE = "{endpoint}: realised {statistic} {value} is >5% %s validation"

DEFAULT_RULES: tuple[AlertRule, ...] = (
    # subject "?*": every column, not the window's verdict row (subject "")
    _data_rule("drift", "drift", status="drift", subject="?*",
               summary="{endpoint}: column {subject} drifted ({statistic} = {value})"),
    _data_rule("prediction_drift", "prediction_drift", status="drift", subject="?*",
               summary="{endpoint}: predictions drifted ({statistic} = {value})"),
    _data_rule("performance_below_validation", "performance", comparison="below", margin=0.05,
               statistic="accuracy|precision|recall|f1|roc_auc|r2",
               summary=_PERFORMANCE.replace("%s", "below")),
    _data_rule("performance_above_validation", "performance", comparison="above", margin=0.05,
               statistic="mae|rmse|log_loss", summary=_PERFORMANCE.replace("%s", "above")),
    _data_rule("concept_drift", "concept_drift", status="concept_drift",
               clear_status="none|degradation|covariate_shift_with_degradation",
               summary="{endpoint}: concept drift ({subject} fell, inputs did not drift)"),
    AlertRule(name="slo_page", monitor="slo", statistic="page_*", comparison="above",
              min_samples=1, severity="page", summary=_BURN),
    AlertRule(name="slo_ticket", monitor="slo", statistic="ticket_*", comparison="above",
              min_samples=1, severity="ticket", summary=_BURN),
)  # fmt: skip


def effective_rules(
    configured: Iterable[AlertRule], *, defaults: bool = True
) -> tuple[AlertRule, ...]:
    """The built-in rules (when ``defaults``) with configured rules replacing those of the
    same name, then the other configured rules; disabled rules left out."""
    own = {rule.name: rule for rule in configured}
    merged = [own.pop(rule.name, rule) for rule in DEFAULT_RULES] if defaults else []
    merged += own.values()
    return tuple(rule for rule in merged if rule.enabled)


def globs_match(pattern: str, value: str) -> bool:
    """``value`` matches one of the ``|``-separated globs of ``pattern``."""
    return any(fnmatchcase(value, glob.strip()) for glob in pattern.split("|"))


def selects(rule: AlertRule, result: Mapping[str, Any]) -> bool:
    """Whether ``rule`` reads this ``monitor_results`` row."""
    return (
        result["monitor"] == rule.monitor
        and globs_match(rule.statistic, result["statistic"])
        and globs_match(rule.subject, result["subject"])
        and globs_match(rule.endpoint, result["endpoint"])
    )


def enough_data(rule: AlertRule, result: Mapping[str, Any]) -> bool:
    return result["status"] != NOT_ENOUGH_DATA and int(result["rows"]) >= rule.min_samples


def bound(rule: AlertRule, result: Mapping[str, Any]) -> float | None:
    """The number the result is compared with: the rule's threshold or, without one, the
    result's own threshold moved by the margin in the direction that tolerates more."""
    if rule.threshold is not None:
        return rule.threshold
    own = result["threshold"]
    if own is None:
        return None
    factor = 1 - rule.margin if rule.comparison == "below" else 1 + rule.margin
    return float(own) * factor if own >= 0 else float(own) * (2 - factor)


def holds(rule: AlertRule, result: Mapping[str, Any]) -> bool | None:
    """The rule's condition on one result; None when it cannot be judged (no value, no
    threshold), which counts like not enough data."""
    if rule.comparison == "status":
        if globs_match(rule.status, result["status"]):
            return True
        return False if globs_match(rule.clear_status, result["status"]) else None
    observed = result[rule.field]
    limit = bound(rule, result)
    if observed is None or limit is None or not math.isfinite(observed):
        return None
    return bool(observed > limit) if rule.comparison == "above" else bool(observed < limit)


def severity_key(rule: AlertRule, result: Mapping[str, Any]) -> tuple[int, float]:
    """Orders results of one evaluation from most to least alarming (smaller first): those
    with a p-value before those without, the smallest p-value first, then the largest value
    beyond (or below, for a "below" rule) the bound."""
    if result["p_value"] is not None and (rule.comparison == "status" or rule.field == "p_value"):
        return (0, float(result["p_value"]))
    value = result["value"]
    if value is None:
        return (2, 0.0)
    return (1, -float(value) if rule.comparison != "below" else float(value))


def subject_key(result: Mapping[str, Any]) -> str:
    """What "the same problem" is about: the subject, and the model version when one is named."""
    version = int(result["model_version"])
    return result["subject"] if version == 0 else f"{result['subject']}@v{version}"


def fingerprint(rule_name: str, endpoint: str, subject: str) -> str:
    return hashlib.sha256(f"{rule_name}\x00{endpoint}\x00{subject}".encode()).hexdigest()[:32]


def summary(rule: AlertRule, result: Mapping[str, Any]) -> str:
    template = rule.summary or "{endpoint}: {monitor} {statistic} on {subject} = {value}"
    value = result["value"]
    return template.format(
        endpoint=result["endpoint"],
        subject=subject_key(result),
        statistic=result["statistic"],
        monitor=result["monitor"],
        value="n/a" if value is None else f"{value:.4g}",
    )
