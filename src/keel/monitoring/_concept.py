"""Concept drift: the model got worse at the same inputs, told apart from a covariate shift.

    realised = compare_to_validation(realised_performance(labels, predictions, proba), version)
    finding = detect_concept_drift(realised, input_drift=drift_report.verdict == "drift",
                                   estimated=estimate_performance(proba, classes=[0, 1]))
    finding.finding     # "concept_drift" | "covariate_shift_with_degradation" | ...

Realised performance *fell* when the metric is worse than the version's validation value by
more than its tolerance *and* a one-sided test says the drop is not sampling noise: for
accuracy a two-proportion z-test (window vs validation, when the validation row count is
given; otherwise a one-sample test that treats the validation value as exact), for MAE a
one-sample z-test on the window's absolute errors. Then:

- inputs did not drift → ``concept_drift`` (P(label | inputs) changed);
- inputs drifted → ``covariate_shift_with_degradation``;
- input drift unknown, but the CBPE estimate (which only sees the inputs, through the model's
  probabilities) still matches the reference → ``concept_drift`` too: that gap between
  estimated and realised is its signature, and is part of the evidence;
- input drift unknown and the estimate fell as well (or no estimate) → ``degradation``.

Performance that did not fall is ``none``; too few labelled rows, ``not_enough_data``; no
validation value to compare with, ``no_reference``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy import stats

from keel.data._profile import finite_or_none
from keel.errors import MonitoringError
from keel.monitoring._perf_results import PerformanceReport
from keel.monitoring._performance import HasMetrics, compare_to_validation

Finding = Literal[
    "concept_drift",
    "covariate_shift_with_degradation",
    "degradation",
    "none",
    "not_enough_data",
    "no_reference",
]
#: metrics with a test of the window-vs-reference difference
TESTED_METRICS = ("accuracy", "mae")
DEFAULT_MIN_LABELS = 100


@dataclass(frozen=True)
class ConceptDriftFinding:
    """What :func:`detect_concept_drift` concluded about one model version over one window,
    with the evidence: the realised and reference values, the test, the input-drift verdict
    it was given and, when an estimate was given, the estimated value and its gap to the
    realised one (``estimate_gap = realised - estimated``)."""

    finding: Finding
    metric: str
    model_version: int
    rows: int
    realised: float | None = None
    reference: float | None = None
    delta: float | None = None
    tolerance: float | None = None
    degraded: bool | None = None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    alpha: float = 0.05
    input_drift: bool | None = None
    estimated: float | None = None
    estimated_low: float | None = None
    estimated_high: float | None = None
    estimate_gap: float | None = None
    estimate_matches_reference: bool | None = None
    note: str | None = None

    @property
    def detected(self) -> bool:
        """True for a finding someone should look at (any fall in performance)."""
        return self.finding in {"concept_drift", "covariate_shift_with_degradation", "degradation"}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = finite_or_none(value)
        data["detected"] = self.detected
        return data

    def to_results(self) -> Iterator[dict[str, Any]]:
        """One row shaped like the ``monitor_results`` table (monitor ``concept_drift``,
        subject and statistic the metric, value the realised metric, threshold its reference
        as for the performance rows, status the finding)."""
        data = self.to_dict()
        yield {
            "monitor": "concept_drift",
            "subject": self.metric,
            "model_version": self.model_version,
            "statistic": self.metric,
            "value": data["realised"],
            "p_value": data["p_value"],
            "threshold": data["reference"],
            "status": self.finding,
            "rows": self.rows,
            "details": data,
        }


def detect_concept_drift(
    realised: PerformanceReport,
    *,
    input_drift: bool | None,
    estimated: PerformanceReport | None = None,
    validation: HasMetrics | Mapping[str, float] | None = None,
    tolerances: Mapping[str, float] | None = None,
    metric: str | None = None,
    reference_rows: int | None = None,
    alpha: float = 0.05,
    min_labels: int = DEFAULT_MIN_LABELS,
) -> ConceptDriftFinding:
    """Whether the window's realised ``metric`` (default: accuracy for classifiers, MAE for
    regressors) fell, and why (see the module docstring).

    ``realised`` is a realised report already compared with the version's validation metrics
    (:func:`compare_to_validation`), or give ``validation`` (and ``tolerances``) to compare
    here. ``input_drift`` is the window's input-drift verdict (None: not known).
    ``reference_rows`` is the number of validation rows behind the reference accuracy."""
    if realised.kind != "realised":
        raise MonitoringError(
            "an estimated report given to detect_concept_drift",
            fix="pass the realised report (labels joined); the estimate goes in estimated=",
        )
    name = metric or ("mae" if realised.task == "regression" else "accuracy")
    if name not in TESTED_METRICS:
        raise MonitoringError(f"no test for {name!r}", fix=f"choose one of {TESTED_METRICS}")
    if validation is not None:
        realised = compare_to_validation(realised, validation, tolerances=tolerances)
    base: dict[str, Any] = {
        "metric": name,
        "model_version": realised.model_version,
        "rows": realised.rows,
        "alpha": alpha,
        "input_drift": input_drift,
    }
    if realised.status != "ok" or realised.rows < min_labels:
        note = f"{realised.rows} labelled rows, at least {min_labels} needed"
        return ConceptDriftFinding("not_enough_data", note=note, **base)
    result = realised[name]
    if result.value is None or result.reference is None:
        note = result.note or "the version has no validation value for this metric"
        return ConceptDriftFinding("no_reference", realised=result.value, note=note, **base)
    test, z, p_value = _test(name, realised, result.reference, reference_rows)
    evidence = {
        **base,
        "realised": result.value,
        "reference": result.reference,
        "delta": result.delta,
        "tolerance": result.tolerance,
        "degraded": result.degraded,
        "test": test,
        "statistic": z,
        "p_value": p_value,
        **_estimate_evidence(estimated, name, result.value, result.reference, result.tolerance),
    }
    fell = bool(result.degraded) and p_value is not None and p_value < alpha
    if not fell:
        return ConceptDriftFinding("none", **evidence)
    if input_drift is True:
        return ConceptDriftFinding("covariate_shift_with_degradation", **evidence)
    if input_drift is False:
        note = "performance fell while the inputs did not drift"
        return ConceptDriftFinding("concept_drift", note=note, **evidence)
    if evidence.get("estimate_matches_reference"):
        note = "input drift unknown; the estimate from the model's probabilities still matches "
        note += "the reference while realised performance fell"
        return ConceptDriftFinding("concept_drift", note=note, **evidence)
    note = "performance fell; input drift unknown, so the cause is not told apart"
    return ConceptDriftFinding("degradation", note=note, **evidence)


def _test(
    name: str, report: PerformanceReport, reference: float, reference_rows: int | None
) -> tuple[str, float | None, float | None]:
    """The test of "the window is worse than the reference": its name, z and one-sided p."""
    rows = report.rows
    if name == "mae":
        spread = report.details.get("abs_error_sd")
        if not spread:
            return "one-sample z-test on absolute errors", None, None
        z = (report["mae"].value - reference) / (spread / math.sqrt(rows))  # type: ignore[operator]
        return "one-sample z-test on absolute errors", z, float(stats.norm.sf(z))
    accuracy = report.details["correct"] / rows
    if reference_rows:
        pooled = (accuracy * rows + reference * reference_rows) / (rows + reference_rows)
        variance = pooled * (1 - pooled) * (1 / rows + 1 / reference_rows)
        test = f"two-proportion z-test ({reference_rows} validation rows)"
    else:
        variance = reference * (1 - reference) / rows
        test = "one-sample z-test against the validation accuracy (taken as exact)"
    if variance <= 0:  # a perfect reference: any miss is a drop, none is not
        return test, None, 0.0 if accuracy < reference else 1.0
    z = (reference - accuracy) / math.sqrt(variance)
    return test, z, float(stats.norm.sf(z))


def _estimate_evidence(
    estimated: PerformanceReport | None,
    name: str,
    realised: float,
    reference: float,
    tolerance: float | None,
) -> dict[str, Any]:
    if estimated is None or name not in estimated or estimated[name].value is None:
        return {}
    estimate = estimated[name]
    value = float(estimate.value)  # type: ignore[arg-type]
    return {
        "estimated": value,
        "estimated_low": estimate.low,
        "estimated_high": estimate.high,
        "estimate_gap": realised - value,
        "estimate_matches_reference": abs(value - reference) <= (tolerance or 0.0),
    }
