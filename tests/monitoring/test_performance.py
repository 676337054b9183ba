"""Realised metrics equal scikit-learn's; undefined ones are None with a reason; the comparison
with a version's validation metrics is direction-aware."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.monitoring._alert_rules import DEFAULT_RULES, holds
from keel.monitoring._performance import compare_to_validation, realised_performance


def _json(data: object) -> object:
    return json.loads(json.dumps(data, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(2, 300))
def test_binary_metrics_equal_sklearn(seed: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    score = rng.random(rows)
    labels = (rng.random(rows) < score).astype(int)
    predictions = (score >= 0.5).astype(int)

    report = realised_performance(labels, predictions, score, classes=[0, 1])

    assert report["accuracy"].value == pytest.approx(skm.accuracy_score(labels, predictions))
    for name, function in [
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ]:
        expected = function(labels, predictions, zero_division=np.nan)
        got = report[name].value
        assert got == pytest.approx(expected) if np.isfinite(expected) else got is None
    if len(set(labels.tolist())) == 2:
        assert report["roc_auc"].value == pytest.approx(skm.roc_auc_score(labels, score))
    else:
        assert report["roc_auc"].value is None
    clipped = np.clip(score, 1e-15, 1 - 1e-15)
    expected_loss = skm.log_loss(labels, np.column_stack([1 - clipped, clipped]), labels=[0, 1])
    assert report["log_loss"].value == pytest.approx(expected_loss)
    _json(report.to_dict())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(30, 300), width=st.integers(3, 5))
def test_multiclass_metrics_are_sklearns_macro_averages(seed: int, rows: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(width), rows)
    labels = (rng.random((rows, 1)) > np.cumsum(proba, axis=1)[:, :-1]).sum(axis=1)
    predictions = proba.argmax(axis=1)
    classes = list(range(width))

    report = realised_performance(labels, predictions, proba, classes=classes)

    assert report.task == "multiclass"
    assert report["f1"].average == "macro"
    macro = {"zero_division": np.nan, "average": "macro"}
    assert report["precision"].value == pytest.approx(
        skm.precision_score(labels, predictions, **macro)
    )
    assert report["recall"].value == pytest.approx(skm.recall_score(labels, predictions, **macro))
    assert report["f1"].value == pytest.approx(skm.f1_score(labels, predictions, **macro))
    if len(set(labels.tolist())) == width:
        expected = skm.roc_auc_score(labels, proba, multi_class="ovr", labels=classes)
        assert report["roc_auc"].value == pytest.approx(expected)
    else:
        assert "absent from the labels" in (report["roc_auc"].note or "")
    assert report["log_loss"].value == pytest.approx(skm.log_loss(labels, proba, labels=classes))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(2, 200))
def test_regression_metrics_equal_sklearn(seed: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=rows)
    guess = truth + rng.normal(scale=0.5, size=rows)

    report = realised_performance(truth, guess)

    assert report.task == "regression"
    assert report["mae"].value == pytest.approx(skm.mean_absolute_error(truth, guess))
    assert report["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(truth, guess)))
    assert report["r2"].value == pytest.approx(skm.r2_score(truth, guess))


def test_a_constant_target_has_no_r2() -> None:
    report = realised_performance(np.full(10, 3.0), np.linspace(2, 4, 10))

    assert report["r2"].value is None
    assert "constant target" in (report["r2"].note or "")
    assert report["mae"].value == pytest.approx(np.mean(np.abs(np.linspace(2, 4, 10) - 3)))


def test_one_class_only_has_no_auc_and_no_probabilities_no_log_loss() -> None:
    labels = np.ones(20, dtype=int)
    predictions = np.array([1] * 15 + [0] * 5)

    with_proba = realised_performance(labels, predictions, np.linspace(0.1, 0.9, 20))
    without = realised_performance(labels, predictions, classes=[0, 1])

    assert with_proba["roc_auc"].value is None
    assert with_proba["roc_auc"].note == "one class only in the window (1 seen)"
    assert with_proba["log_loss"].value is not None
    assert without["log_loss"].value is None
    assert without["log_loss"].note == "no probabilities logged"
    assert without["recall"].value == pytest.approx(0.75)
    assert _json(without.to_dict())


def test_the_positive_class_defaults_to_the_greater_label_and_can_be_chosen() -> None:
    labels = np.array(["yes", "yes", "no", "no", "no"], dtype=object)
    predictions = np.array(["yes", "no", "no", "no", "yes"], dtype=object)

    default = realised_performance(labels, predictions)
    negative = realised_performance(labels, predictions, positive_label="no")

    assert default.positive_label == "yes"
    assert default["recall"].value == pytest.approx(0.5)
    assert default["recall"].average == "binary (positive: 'yes')"
    assert negative["recall"].value == pytest.approx(2 / 3)
    booleans = realised_performance(np.array([True, False]), np.array([True, True]))
    assert booleans.positive_label is True
    assert booleans["precision"].value == pytest.approx(0.5)


def test_labels_the_model_does_not_know_count_as_wrong_and_skip_probability_metrics() -> None:
    labels = np.array(["a", "b", "zzz", "a"], dtype=object)
    predictions = np.array(["a", "b", "a", "a"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])

    report = realised_performance(labels, predictions, proba, classes=["a", "b"])

    assert report["accuracy"].value == pytest.approx(0.75)
    assert report["log_loss"].note == "1 labels not among the classes left out"
    expected = skm.log_loss(["a", "b", "a"], proba[[0, 1, 3]], labels=["a", "b"])
    assert report["log_loss"].value == pytest.approx(expected)


def test_too_few_rows_is_not_enough_data_with_every_metric_none() -> None:
    report = realised_performance(np.array([1, 0]), np.array([1, 1]), min_rows=10)

    assert report.status == "not_enough_data"
    assert all(metric.value is None for metric in report.metrics)
    rows = list(report.to_results())
    assert {row["status"] for row in rows} == {"not_enough_data"}
    assert len(rows) == 6


def test_comparison_is_direction_aware_with_per_metric_tolerances() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(400)
    labels = (rng.random(400) < score).astype(int)
    report = realised_performance(labels, (score >= 0.5).astype(int), score)
    accuracy, loss = report["accuracy"].value, report["log_loss"].value
    assert accuracy is not None
    assert loss is not None
    validation = {
        "accuracy": 0.99,  # the training run's: the validation one wins
        "val_accuracy": accuracy + 0.03,
        "validation_f1": 0.0,  # the window is far better: never a degradation
        "log_loss": loss - 0.2,  # lower was better: the window's rise is a degradation
        "auc": 1.0,
    }

    compared = compare_to_validation(report, validation, tolerances={"roc_auc": 0.5})

    assert compared["accuracy"].reference == pytest.approx(accuracy + 0.03)
    assert compared["accuracy"].delta == pytest.approx(-0.03)
    assert compared["accuracy"].degraded is False  # within the default 0.05
    assert compared["f1"].degraded is False
    assert compared["log_loss"].degraded is True
    assert compared["roc_auc"].tolerance == 0.5
    assert compared["roc_auc"].degraded is False
    assert compared["precision"].reference is None
    assert compared["precision"].degraded is None
    strict = compare_to_validation(report, validation, tolerances={"accuracy": 0.01})
    assert strict["accuracy"].degraded is True
    assert strict.degraded


def test_regression_errors_get_a_relative_tolerance_and_rise_is_worse() -> None:
    report = realised_performance(np.arange(10.0), np.arange(10.0) + 1.0)

    compared = compare_to_validation(report, {"mae": 0.8, "rmse": 0.95, "r2": 0.9})

    assert compared["mae"].tolerance == pytest.approx(0.08)
    assert compared["mae"].degraded is True  # 1.0 > 0.8 + 0.08
    assert compared["rmse"].degraded is False  # 1.0 <= 0.95 + 0.095
    assert compared["r2"].degraded is False  # 0.88 is within 0.05 of 0.9


def test_a_registered_versions_metrics_are_the_reference(workspace: Workspace) -> None:
    frame = pd.DataFrame({"x": np.linspace(-2, 2, 60)})
    target = (frame["x"] > 0).astype(int)
    model = LogisticRegression().fit(frame, target)
    version = workspace.registry.register(
        "perf", model, input_example=frame, metrics={"accuracy": 0.95, "roc_auc": 0.99}
    )
    labels = np.array([0, 1] * 50)
    predictions = np.array([0, 1] * 40 + [1, 0] * 10)

    compared = compare_to_validation(realised_performance(labels, predictions), version)

    assert compared["accuracy"].reference == pytest.approx(0.95)
    assert compared["accuracy"].degraded is True  # 0.8 vs 0.95
    [row] = [r for r in compared.to_results() if r["subject"] == "accuracy"]
    assert row["monitor"] == "performance"
    assert row["statistic"] == "accuracy"
    assert row["status"] == "degraded"
    assert row["threshold"] == 0.95  # the validation value, as the alert rules expect
    assert row["details"]["tolerance"] == 0.05
    assert row["rows"] == 100
    assert _json(row) == row


def test_the_built_in_alert_rules_read_these_rows_as_intended() -> None:
    labels = np.array([0, 1] * 100)
    predictions = np.array([0, 1] * 70 + [1, 0] * 30)
    proba = np.where(predictions == 1, 0.8, 0.2)
    report = realised_performance(labels, predictions, proba)
    value = {m.name: m.value for m in report.metrics}
    validation = {"accuracy": 0.9, "log_loss": 0.3, "f1": value["f1"]}
    rows = {row["subject"]: row for row in compare_to_validation(report, validation).to_results()}
    rules = {rule.name: rule for rule in DEFAULT_RULES}

    assert holds(rules["performance_below_validation"], rows["accuracy"]) is True  # 0.7 < 0.9
    assert holds(rules["performance_below_validation"], rows["f1"]) is False
    assert holds(rules["performance_above_validation"], rows["log_loss"]) is True
    assert holds(rules["performance_below_validation"], rows["precision"]) is None  # no ref
