"""Concept drift told apart from a covariate shift: the same inputs with a flipped label
relationship, shifted inputs with a real drop, and no change at all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.errors import MonitoringError
from keel.monitoring._concept import ConceptDriftFinding, detect_concept_drift
from keel.monitoring._estimate import estimate_performance
from keel.monitoring._performance import realised_performance

ROWS = 3000


def _model(x: np.ndarray) -> np.ndarray:
    """A calibrated logistic model's probability of class 1."""
    return 1 / (1 + np.exp(-1.5 * x))


def _window(
    seed: int, *, shift: bool = False, flip: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (narrowed towards the boundary when ``shift``), the model's answers, and labels
    from the true relation, the opposite of the model's for a ``flip`` share of the rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.4 if shift else 2, ROWS)
    score = _model(x)
    truth = np.where(rng.random(ROWS) < flip, 1 - score, score)
    labels = (rng.random(ROWS) < truth).astype(int)
    return score, (score >= 0.5).astype(int), labels


def _validation() -> dict[str, float]:
    score, predictions, labels = _window(0)
    report = realised_performance(labels, predictions, score)
    return {name: report[name].value for name in ("accuracy", "f1")}


def _finding(
    seed: int, *, input_drift: bool | None, shift: bool = False, flip: float = 0.0
) -> ConceptDriftFinding:
    score, predictions, labels = _window(seed, shift=shift, flip=flip)
    return detect_concept_drift(
        realised_performance(labels, predictions, score),
        input_drift=input_drift,
        estimated=estimate_performance(score, classes=[0, 1], seed=seed),
        validation=_validation(),
        reference_rows=ROWS,
    )


def test_same_inputs_flipped_labels_is_concept_drift() -> None:
    finding = _finding(1, input_drift=False, flip=0.6)

    assert finding.finding == "concept_drift"
    assert finding.detected
    assert finding.delta < -0.05
    assert finding.p_value < 1e-6
    assert finding.test == f"two-proportion z-test ({ROWS} validation rows)"
    # the model's own probabilities saw nothing wrong: the estimate stayed at the reference
    assert finding.estimate_matches_reference is True
    assert finding.estimate_gap < -0.05
    assert finding.realised < finding.estimated_low


def test_the_estimate_realised_gap_is_concept_drift_when_input_drift_is_unknown() -> None:
    finding = _finding(2, input_drift=None, flip=0.6)

    assert finding.finding == "concept_drift"
    assert "estimate" in (finding.note or "")


def test_shifted_inputs_and_a_drop_is_covariate_shift_with_degradation() -> None:
    finding = _finding(3, input_drift=True, shift=True)

    assert finding.finding == "covariate_shift_with_degradation"
    assert finding.detected
    # the estimate saw the drop coming: the model is less sure of the shifted inputs
    assert finding.estimate_matches_reference is False
    assert abs(finding.estimate_gap) < 0.03


def test_a_drop_the_estimate_also_saw_with_unknown_input_drift_is_a_degradation() -> None:
    finding = _finding(4, input_drift=None, shift=True)

    assert finding.finding == "degradation"


@pytest.mark.parametrize("input_drift", [False, True, None])
def test_no_change_is_no_finding(input_drift: bool | None) -> None:
    finding = _finding(5, input_drift=input_drift)

    assert finding.finding == "none"
    assert not finding.detected


def test_a_drop_within_tolerance_or_too_few_labels_is_not_a_finding() -> None:
    score, predictions, labels = _window(6, flip=0.6)
    realised = realised_performance(labels, predictions, score)

    lenient = detect_concept_drift(
        realised, input_drift=False, validation=_validation(), tolerances={"accuracy": 0.5}
    )
    few = realised_performance(labels[:50], predictions[:50], score[:50])
    small = detect_concept_drift(few, input_drift=False, validation=_validation())
    unknown = detect_concept_drift(realised, input_drift=False, validation={"auc": 0.9})

    assert lenient.finding == "none"
    assert lenient.degraded is False
    assert small.finding == "not_enough_data"
    assert small.note == "50 labelled rows, at least 100 needed"
    assert unknown.finding == "no_reference"


def test_a_small_significant_looking_drop_needs_the_test_too() -> None:
    # 0.2 below the reference in a 100-row window but with a strict alpha: not shown
    labels = np.array([1] * 100)
    predictions = np.array([1] * 70 + [0] * 30)
    realised = realised_performance(labels, predictions, classes=[0, 1])

    strict = detect_concept_drift(
        realised, input_drift=False, validation={"accuracy": 0.8}, alpha=1e-4
    )
    usual = detect_concept_drift(realised, input_drift=False, validation={"accuracy": 0.8})

    assert strict.degraded is True
    assert strict.finding == "none"
    assert usual.finding == "concept_drift"
    assert usual.test == "one-sample z-test against the validation accuracy (taken as exact)"


def test_regressors_are_tested_on_mae() -> None:
    rng = np.random.default_rng(8)
    truth = rng.normal(size=2000)
    drifted = truth + rng.normal(scale=1.0, size=2000)

    realised = realised_performance(truth, drifted)
    finding = detect_concept_drift(realised, input_drift=False, validation={"mae": 0.4})

    assert finding.metric == "mae"
    assert finding.finding == "concept_drift"
    assert finding.test == "one-sample z-test on absolute errors"


def test_the_finding_maps_to_one_monitor_results_row() -> None:
    finding = _finding(1, input_drift=False, flip=0.6)

    [row] = list(finding.to_results())

    assert row["monitor"] == "concept_drift"
    assert row["subject"] == row["statistic"] == "accuracy"
    assert row["status"] == "concept_drift"
    assert row["rows"] == ROWS
    assert row["threshold"] == finding.reference
    assert row["details"]["tolerance"] == 0.05
    assert row["details"]["estimate_gap"] == finding.estimate_gap
    json.dumps(row, allow_nan=False)


def test_an_estimate_is_not_a_realised_report() -> None:
    estimate = estimate_performance(np.array([0.2, 0.8]), classes=[0, 1])

    with pytest.raises(MonitoringError, match="realised"):
        detect_concept_drift(estimate, input_drift=False)
