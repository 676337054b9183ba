"""CBPE checked against realised metrics: labels drawn from a calibrated model's probabilities
fall inside the estimate's band at its stated rate; the estimate follows a covariate shift; an
uncalibrated model's estimate is right again after isotonic calibration on reference labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.errors import MonitoringError
from keel.monitoring._estimate import Calibrator, estimate_performance
from keel.monitoring._performance import realised_performance

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _draw(rng: np.random.Generator, proba: np.ndarray) -> np.ndarray:
    """One label per row drawn from its (calibrated) class probabilities."""
    return (rng.random((len(proba), 1)) > np.cumsum(proba, axis=1)[:, :-1]).sum(axis=1)


def _coverage(windows: int, rows: int, width: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    inside = dict.fromkeys(METRICS, 0)
    classes = list(range(width))
    for window in range(windows):
        if width == 2:
            score = rng.beta(2, 2, rows)
            proba = np.column_stack([1 - score, score])
        else:
            proba = rng.dirichlet(np.full(width, 1.5), rows)
        labels = _draw(rng, proba)
        predictions = proba.argmax(axis=1)
        estimate = estimate_performance(proba, classes=classes, draws=200, seed=window)
        realised = realised_performance(labels, predictions, proba, classes=classes)
        for name in METRICS:
            value, band = realised[name].value, estimate[name]
            assert value is not None
            assert band.low is not None
            assert band.high is not None
            inside[name] += band.low <= value <= band.high
    return {name: count / windows for name, count in inside.items()}


def test_a_95_percent_band_covers_the_realised_binary_metrics_of_200_windows() -> None:
    coverage = _coverage(windows=200, rows=800, width=2, seed=11)

    assert all(rate >= 0.90 for rate in coverage.values()), coverage
    assert all(rate <= 0.99 for rate in coverage.values()), coverage  # not a uselessly wide band


def test_a_95_percent_band_covers_the_realised_multiclass_macro_metrics() -> None:
    coverage = _coverage(windows=120, rows=600, width=3, seed=12)

    assert all(rate >= 0.88 for rate in coverage.values()), coverage


def test_the_estimate_tracks_a_drop_caused_by_a_covariate_shift() -> None:
    rng = np.random.default_rng(5)
    # A logistic model on x: shifting x towards the decision boundary makes it less sure, and
    # (the model being calibrated) really less accurate.
    before_x, after_x = rng.normal(0, 2, 4000), rng.normal(0, 0.4, 4000)
    results = []
    for x in (before_x, after_x):
        score = 1 / (1 + np.exp(-1.5 * x))
        labels = (rng.random(len(x)) < score).astype(int)
        predictions = (score >= 0.5).astype(int)
        estimate = estimate_performance(score, classes=[0, 1], seed=1)
        realised = realised_performance(labels, predictions, score)
        results.append((estimate, realised))

    for name in ("accuracy", "f1", "roc_auc"):
        (est_before, real_before), (est_after, real_after) = results
        real_drop = real_before[name].value - real_after[name].value
        est_drop = est_before[name].value - est_after[name].value
        assert real_drop > 0.1, name
        assert est_drop == pytest.approx(real_drop, abs=0.04), name
        assert est_after[name].low <= real_after[name].value <= est_after[name].high, name


def test_an_overconfident_model_is_estimated_right_after_calibration() -> None:
    rng = np.random.default_rng(7)

    def overconfident(p: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))  # a sharpened sigmoid of the truth

    truth_ref, truth = rng.beta(2, 2, 5000), rng.beta(2, 2, 3000)
    labels_ref = (rng.random(5000) < truth_ref).astype(int)
    labels = (rng.random(3000) < truth).astype(int)
    raw = overconfident(truth)
    realised = realised_performance(labels, (raw >= 0.5).astype(int), raw)

    naive = estimate_performance(raw, classes=[0, 1])
    isotonic = Calibrator.fit(overconfident(truth_ref), labels_ref, classes=[0, 1])
    calibrated = estimate_performance(raw, classes=[0, 1], calibrator=isotonic)
    platt = Calibrator.fit(overconfident(truth_ref), labels_ref, classes=[0, 1], method="platt")
    by_platt = estimate_performance(raw, classes=[0, 1], calibrator=platt)

    assert (naive.calibrated, calibrated.calibrated) == (False, True)
    for name in ("accuracy", "f1", "roc_auc"):
        value = realised[name].value
        assert value is not None
        assert abs(naive[name].value - value) > 0.1, name
        assert calibrated[name].value == pytest.approx(value, abs=0.025), name
        assert by_platt[name].value == pytest.approx(value, abs=0.025), name


def test_a_multiclass_calibrator_gives_rows_that_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3), 2000)
    labels = _draw(rng, proba)
    sharp = proba**3 / (proba**3).sum(axis=1, keepdims=True)

    calibrator = Calibrator.fit(sharp, labels, classes=[0, 1, 2])
    fixed = calibrator.apply(sharp)

    np.testing.assert_allclose(fixed.sum(axis=1), 1.0)
    calibrated = estimate_performance(sharp, classes=[0, 1, 2], calibrator=calibrator)
    naive = estimate_performance(sharp, classes=[0, 1, 2])
    realised = realised_performance(labels, sharp.argmax(axis=1), sharp, classes=[0, 1, 2])
    gap = abs(calibrated["accuracy"].value - realised["accuracy"].value)
    assert gap < abs(naive["accuracy"].value - realised["accuracy"].value)
    assert gap < 0.03


def test_estimates_are_labelled_as_estimates_with_their_band_and_method() -> None:
    score = np.linspace(0.01, 0.99, 500)

    report = estimate_performance(score, classes=[0, 1], seed=3, model_version=4)

    assert report.kind == "estimated"
    assert report.monitor == "estimated_performance"
    assert "500 label sets drawn from the probabilities (seeded Monte Carlo, seed 3)" in (
        report.method or ""
    )
    accuracy = report["accuracy"]
    assert accuracy.value == pytest.approx(np.mean(np.maximum(score, 1 - score)))
    assert accuracy.low < accuracy.value < accuracy.high
    assert accuracy.standard_error == pytest.approx(
        np.sqrt(np.sum(np.maximum(score, 1 - score) * np.minimum(score, 1 - score))) / 500,
        rel=0.15,  # the Bernoulli variance of the expected count, within Monte Carlo error
    )
    rows = list(report.to_results())
    assert {row["monitor"] for row in rows} == {"estimated_performance"}
    assert {row["model_version"] for row in rows} == {4}
    assert rows[0]["details"]["kind"] == "estimated"
    assert rows[0]["details"]["low"] == accuracy.low
    json.dumps([report.to_dict(), rows], allow_nan=False)
    again = estimate_performance(score, classes=[0, 1], seed=3)
    assert again["f1"].high == report["f1"].high  # seeded: the same window, the same band


def test_served_predictions_and_the_positive_label_are_respected() -> None:
    score = np.array([0.2, 0.4, 0.6, 0.9])  # probability of "yes"
    proba = np.column_stack([score, 1 - score])  # columns in the order of classes below
    served = np.array(["no", "yes", "yes", "yes"], dtype=object)  # a threshold of 0.3

    report = estimate_performance(proba, classes=["yes", "no"], predictions=served)

    assert report.positive_label == "yes"
    # expected TP = 0.4 + 0.6 + 0.9 over 3 predicted positive
    assert report["precision"].value == pytest.approx(1.9 / 3)
    assert report["recall"].value == pytest.approx(1.9 / 2.1)
    assert report["accuracy"].value == pytest.approx((0.8 + 1.9) / 4)
    with pytest.raises(MonitoringError, match="not in"):
        estimate_performance(proba, classes=["yes", "no"], predictions=["maybe"] * 4)


def test_too_few_rows_is_not_enough_data() -> None:
    report = estimate_performance(np.array([0.3, 0.7]), classes=[0, 1], min_rows=50)

    assert report.status == "not_enough_data"
    assert all(metric.value is None for metric in report.metrics)
    assert {row["status"] for row in report.to_results()} == {"not_enough_data"}
