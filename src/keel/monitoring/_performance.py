"""Realised performance of one model version over one window, and its comparison with the
version's validation metrics.

    report = realised_performance(labels, predictions, probabilities, classes=("no", "yes"))
    report = compare_to_validation(report, registry.get_version("churn", 3))
    report["f1"].value, report["f1"].degraded

Classifiers get accuracy, precision, recall, F1 (binary: of the positive class, by default the
greatest label, so ``1`` or ``True``; multiclass: the unweighted macro average over the classes
seen in labels or predictions), ROC-AUC (binary: from the positive class's probability;
multiclass: one-vs-rest macro average, only when every class has a probability column and
appears in the labels) and log loss (probabilities clipped to [1e-15, 1 - 1e-15] and rows
renormalised). Regressors get MAE, RMSE and R². Every metric is scikit-learn's; a metric that
cannot be computed is None with a ``note`` saying why, never an exception.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn import metrics as skm

from keel.data._profile import finite_or_none
from keel.errors import MonitoringError
from keel.monitoring._perf_results import (
    LOWER_IS_BETTER,
    MetricResult,
    PerformanceReport,
    Task,
    default_positive,
)

CLASSIFIER_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSOR_METRICS = ("mae", "rmse", "r2")
#: Absolute tolerances before a drop counts as a degradation. MAE and RMSE have the target's
#: unit, so they have no absolute default: they use ``relative_tolerance`` x the reference.
DEFAULT_TOLERANCES: Mapping[str, float] = {
    "accuracy": 0.05,
    "precision": 0.05,
    "recall": 0.05,
    "f1": 0.05,
    "roc_auc": 0.05,
    "log_loss": 0.1,
    "r2": 0.05,
}
DEFAULT_RELATIVE_TOLERANCE = 0.1
EPSILON = 1e-15
# Other names a training run commonly logs the same metric under, tried after the metric's
# own name with a validation prefix (a run may log both train and validation values).
_ALIASES = {
    "roc_auc": ("auc", "roc_auc_score"),
    "f1": ("f1_score",),
    "r2": ("r2_score",),
    "log_loss": ("logloss",),
}
_PREFIXES = ("val_", "validation_", "valid_", "")


class HasMetrics(Protocol):
    """A registered model version (:class:`keel.registry.ModelVersion`) or anything with the
    same ``metrics`` mapping."""

    @property
    def metrics(self) -> Mapping[str, float]: ...


def realised_performance(
    labels: npt.ArrayLike,
    predictions: npt.ArrayLike,
    probabilities: npt.ArrayLike | None = None,
    *,
    classes: Sequence[Any] | None = None,
    task: Task | None = None,
    positive_label: Any = None,
    model_version: int = 0,
    min_rows: int = 1,
) -> PerformanceReport:
    """The realised metrics of one window from its labels and the model's predictions.

    ``probabilities`` is ``(rows, classes)`` with columns in the order of ``classes`` (for a
    binary classifier also a 1-D array of the positive class's probability). ``task`` is
    inferred when None: regression for floating-point predictions without probabilities or
    classes, else binary or multiclass by the number of classes. Fewer than ``min_rows`` rows
    give a ``not_enough_data`` report whose metrics are all None.
    """
    y = np.asarray(labels)
    predicted = np.asarray(predictions)
    if y.shape != predicted.shape or y.ndim != 1:
        raise MonitoringError(
            f"labels {y.shape} and predictions {predicted.shape} differ",
            fix="pass one label and one prediction per row, as 1-D arrays",
        )
    if task is None:
        task = _infer_task(y, predicted, probabilities, classes)
    if task == "regression":
        return _regression(y, predicted, model_version, min_rows)
    known = _classes(y, predicted, classes)
    task = "binary" if len(known) <= 2 and task != "multiclass" else "multiclass"
    positive = positive_label
    if positive is None:
        positive = default_positive(known) if known else None
    header: dict[str, Any] = {
        "kind": "realised",
        "task": task,
        "rows": len(y),
        "model_version": model_version,
        "classes": tuple(known),
        "positive_label": positive if task == "binary" else None,
    }
    if len(y) < max(min_rows, 1):
        return PerformanceReport(
            status="not_enough_data",
            metrics=_unavailable(CLASSIFIER_METRICS, len(y), f"{len(y)} rows < {min_rows}"),
            note=f"not enough data: {len(y)} labelled rows, at least {min_rows} needed",
            **header,
        )
    average = "binary" if task == "binary" else "macro"
    scores = _label_metrics(y, predicted, average, positive)
    probability = _probability_metrics(y, probabilities, known, positive, task)
    results = [
        MetricResult(name, value, "realised", len(y), _average(name, task, positive), note=note)
        for name, (value, note) in {**scores, **probability}.items()
    ]
    return PerformanceReport(
        status="ok",
        metrics=tuple(results),
        details={"correct": int(np.sum(y == predicted))},
        **header,
    )


def compare_to_validation(
    report: PerformanceReport,
    validation: HasMetrics | Mapping[str, float],
    *,
    tolerances: Mapping[str, float] | None = None,
    relative_tolerance: float = DEFAULT_RELATIVE_TOLERANCE,
) -> PerformanceReport:
    """``report`` with each metric compared with the version's validation value.

    ``validation`` is the registered :class:`~keel.registry.ModelVersion` (its ``metrics``:
    the run's last logged values plus those given to ``register``) or a plain mapping. A
    metric's validation value is looked up as ``val_<name>``, ``validation_<name>``,
    ``valid_<name>``, ``<name>``, then common aliases (``auc`` for ``roc_auc``...).
    ``tolerances`` overrides :data:`DEFAULT_TOLERANCES` per metric (absolute, in the metric's
    unit); a metric without one (MAE, RMSE) is allowed ``relative_tolerance`` x its reference.
    A metric is degraded when it moved the bad way (down, or up for log loss/MAE/RMSE) by more
    than its tolerance."""
    values = validation if isinstance(validation, Mapping) else validation.metrics
    allowed = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    compared = []
    for metric in report.metrics:
        key = validation_key(values, metric.name)
        if key is None:
            compared.append(metric)
            continue
        reference = float(values[key])
        tolerance = allowed.get(metric.name, relative_tolerance * abs(reference))
        delta = None if metric.value is None else metric.value - reference
        worse = None if delta is None else (delta if metric.name in LOWER_IS_BETTER else -delta)
        compared.append(
            dataclasses.replace(
                metric,
                reference=finite_or_none(reference),
                delta=delta,
                tolerance=tolerance,
                degraded=None if worse is None else bool(worse > tolerance),
                note=_join(metric.note, f"reference: validation metric {key!r}"),
            )
        )
    return dataclasses.replace(report, metrics=tuple(compared))


def validation_key(values: Mapping[str, float], name: str) -> str | None:
    """The key of ``values`` holding the validation value of metric ``name``, if any."""
    for candidate in (name, *_ALIASES.get(name, ())):
        for prefix in _PREFIXES:
            if (
                prefix + candidate in values
                and finite_or_none(values[prefix + candidate]) is not None
            ):
                return prefix + candidate
    return None


def _infer_task(
    y: np.ndarray, predicted: np.ndarray, probabilities: Any, classes: Sequence[Any] | None
) -> Task:
    if probabilities is None and classes is None and predicted.dtype.kind == "f":
        return "regression"
    return "binary"  # refined to multiclass by the number of classes


def _classes(y: np.ndarray, predicted: np.ndarray, classes: Sequence[Any] | None) -> list[Any]:
    if classes is not None:
        return list(classes)
    return sorted(set(y.tolist()) | set(predicted.tolist()))


def _average(name: str, task: Task, positive: Any) -> str | None:
    if name not in {"precision", "recall", "f1", "roc_auc"}:
        return None
    if task == "multiclass":
        return "macro" if name != "roc_auc" else "macro (one-vs-rest)"
    return f"binary (positive: {positive!r})"


_Scores = dict[str, tuple[float | None, str | None]]


def _label_metrics(y: np.ndarray, predicted: np.ndarray, average: str, positive: Any) -> _Scores:
    scores: _Scores = {"accuracy": (float(skm.accuracy_score(y, predicted)), None)}
    options: dict[str, Any] = {"average": average, "zero_division": np.nan}
    if average == "binary":
        # The positive class's scores, every other label a negative: also right for a window
        # where the positive class never appears or a label the model does not know shows up
        # (sklearn's average="binary" refuses both).
        options = {"labels": [positive], "average": "micro", "zero_division": np.nan}
    why = {
        "precision": "no row predicted positive" if average == "binary" else "undefined",
        "recall": "no positive label in the window" if average == "binary" else "undefined",
        "f1": "no positive label or prediction in the window",
    }
    for name, function in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined scores become None with a note
            value = finite_or_none(function(y, predicted, **options))
        scores[name] = (value, None if value is not None else why[name])
    return scores


def _probability_metrics(
    y: np.ndarray, probabilities: Any, classes: list[Any], positive: Any, task: Task
) -> _Scores:
    if probabilities is None:
        return dict.fromkeys(("roc_auc", "log_loss"), (None, "no probabilities logged"))
    matrix = np.asarray(probabilities, dtype=float)
    if matrix.ndim == 1:
        if task != "binary" or len(classes) != 2:
            raise MonitoringError(
                "1-D probabilities with more than two classes",
                fix="pass a (rows, classes) matrix; 1-D is a binary model's positive class",
            )
        high = classes.index(positive)
        matrix = np.column_stack([1 - matrix, matrix] if high == 1 else [matrix, 1 - matrix])
    if matrix.shape != (len(y), len(classes)):
        note = f"probabilities of shape {matrix.shape}, not (rows, {len(classes)} classes)"
        return {"roc_auc": (None, note), "log_loss": (None, note)}
    known = pd.Series(y).isin(classes).to_numpy()
    notes = None if known.all() else f"{int((~known).sum())} labels not among the classes left out"
    y, matrix = y[known], matrix[known]
    matrix = np.clip(matrix, EPSILON, 1 - EPSILON)
    matrix /= matrix.sum(axis=1, keepdims=True)
    scores: _Scores = {}
    present = set(y.tolist())
    if len(present) < 2:
        scores["roc_auc"] = (None, f"one class only in the window ({len(present)} seen)")
    elif task == "binary":
        positives = y == positive
        scores["roc_auc"] = (
            finite_or_none(skm.roc_auc_score(positives, matrix[:, classes.index(positive)])),
            notes,
        )
    elif len(present) < len(classes):
        missing = len(classes) - len(present)
        scores["roc_auc"] = (None, f"{missing} class(es) absent from the labels: no OvR AUC")
    else:
        value = skm.roc_auc_score(y, matrix, multi_class="ovr", average="macro", labels=classes)
        scores["roc_auc"] = (finite_or_none(value), notes)
    if len(y) == 0:
        scores["log_loss"] = (None, "no label among the classes")
    else:
        scores["log_loss"] = (finite_or_none(skm.log_loss(y, matrix, labels=classes)), notes)
    return scores


def _regression(
    y: np.ndarray, predicted: np.ndarray, model_version: int, min_rows: int
) -> PerformanceReport:
    header: dict[str, Any] = {"kind": "realised", "task": "regression", "rows": len(y)}
    if len(y) < max(min_rows, 1):
        return PerformanceReport(
            status="not_enough_data",
            metrics=_unavailable(REGRESSOR_METRICS, len(y), f"{len(y)} rows < {min_rows}"),
            model_version=model_version,
            note=f"not enough data: {len(y)} labelled rows, at least {min_rows} needed",
            **header,
        )
    truth, guess = y.astype(float), predicted.astype(float)
    errors = np.abs(truth - guess)
    constant = bool(np.ptp(truth) == 0) or len(truth) < 2
    values = {
        "mae": (finite_or_none(skm.mean_absolute_error(truth, guess)), None),
        "rmse": (finite_or_none(np.sqrt(skm.mean_squared_error(truth, guess))), None),
        "r2": (
            (None, "constant target in the window: R² undefined")
            if constant
            else (finite_or_none(skm.r2_score(truth, guess)), None)
        ),
    }
    return PerformanceReport(
        status="ok",
        metrics=tuple(
            MetricResult(name, value, "realised", len(y), note=note)
            for name, (value, note) in values.items()
        ),
        model_version=model_version,
        details={"abs_error_sd": finite_or_none(float(errors.std(ddof=1))) if len(y) > 1 else None},
        **header,
    )


def _unavailable(names: Sequence[str], rows: int, why: str) -> tuple[MetricResult, ...]:
    return tuple(MetricResult(name, None, "realised", rows, note=why) for name in names)


def _join(*notes: str | None) -> str | None:
    text = "; ".join(note for note in notes if note)
    return text or None
