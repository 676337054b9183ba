"""Confidence-based performance estimation (CBPE): a classifier's expected performance over a
window before its labels arrive, from its own (calibrated) probabilities.

    calibrator = Calibrator.fit(validation_probabilities, validation_labels, classes=[0, 1])
    estimate = estimate_performance(window_probabilities, classes=[0, 1], calibrator=calibrator)
    estimate["accuracy"].value, estimate["accuracy"].low, estimate["accuracy"].high

If the probabilities are calibrated, row i's label is class k with probability p_ik. The
expected confusion matrix follows (as NannyML describes CBPE): for class k, expected
TP = sum of p_ik over rows predicted k, FP = rows predicted k - TP, FN = sum of p_ik over rows
predicted otherwise. Accuracy, precision, recall and F1 are computed from those expected counts
(binary: of the positive class; multiclass: macro average). ROC-AUC is the expected AUC: the
share of (positive, negative) pairs the model's scores order correctly, each pair weighted by
the probability that its rows are positive and negative.

The band is sampling error, not model error: the standard deviation of each metric over
``draws`` label sets drawn from the probabilities (a seeded Monte Carlo, so the same window
gives the same band), and ``estimate ± z·se``. It assumes the probabilities are calibrated on
the window; when they are not (the model was never calibrated, or the relation between inputs
and labels changed: concept drift) the estimate is off by more than the band, which is why a
realised metric falling outside it is evidence in :mod:`._concept`.

Predictions are the model's own (the ones it served, or derived from the raw probabilities:
argmax, or the positive class when its probability reaches ``threshold``); calibration changes
the probabilities the expectation uses, never the decisions. Rankings for the AUC use the raw
scores too, since an isotonic calibrator flattens them into ties the model never made.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from keel.data._profile import finite_or_none
from keel.errors import MonitoringError
from keel.monitoring._perf_results import (
    MetricResult,
    PerformanceReport,
    default_positive,
)

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
CalibrationMethod = Literal["isotonic", "platt"]
# Label draws held in memory at once (draws x rows x classes booleans): bounds the band's cost.
_CELLS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class Calibrator:
    """Maps a model's probabilities to calibrated ones, one-vs-rest per class (a binary model:
    its positive class only), fitted where labels are known (validation predictions).

        calibrator = Calibrator.fit(probabilities, labels, classes=["a", "b", "c"])
        calibrated = calibrator.apply(window_probabilities)   # rows sum to 1
    """

    classes: tuple[Any, ...]
    method: CalibrationMethod
    models: tuple[Any, ...]

    @classmethod
    def fit(
        cls,
        probabilities: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        classes: Sequence[Any],
        method: CalibrationMethod = "isotonic",
    ) -> Calibrator:
        """Fit on reference ``probabilities`` (rows x classes, in the order of ``classes``;
        a binary model's may be the positive, last, class's only) and their ``labels``.
        Isotonic is the better choice from about a thousand reference rows; Platt (a logistic
        fit on the log-odds) needs fewer but assumes a sigmoid-shaped miscalibration."""
        matrix = _matrix(probabilities, len(classes))
        y = np.asarray(labels)
        columns = [len(classes) - 1] if len(classes) == 2 else range(len(classes))
        models = []
        for k in columns:
            target = (y == classes[k]).astype(float)
            if method == "isotonic":
                model: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                model.fit(matrix[:, k], target)
            elif method == "platt":
                model = LogisticRegression().fit(_logit(matrix[:, k])[:, None], target)
            else:
                raise MonitoringError(
                    f"unknown calibration method {method!r}", fix="use isotonic or platt"
                )
            models.append(model)
        return cls(tuple(classes), method, tuple(models))

    def apply(self, probabilities: npt.ArrayLike) -> np.ndarray:
        """Calibrated probabilities (rows x classes, rows summing to 1)."""
        matrix = _matrix(probabilities, len(self.classes))
        columns = [self._one(model, matrix[:, k]) for k, model in self._columns()]
        if len(self.classes) == 2:
            return np.column_stack([1 - columns[0], columns[0]])
        out = np.column_stack(columns)
        totals = out.sum(axis=1, keepdims=True)
        # A row every one-vs-rest map sends to 0 keeps its model's own probabilities.
        return np.where(totals > 0, out / np.where(totals > 0, totals, 1), matrix)

    def _columns(self) -> list[tuple[int, Any]]:
        if len(self.classes) == 2:
            return [(1, self.models[0])]
        return list(enumerate(self.models))

    def _one(self, model: Any, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.asarray(model.predict(scores), dtype=float)
        return np.asarray(model.predict_proba(_logit(scores)[:, None])[:, 1], dtype=float)


def estimate_performance(
    probabilities: npt.ArrayLike,
    *,
    classes: Sequence[Any],
    predictions: npt.ArrayLike | None = None,
    positive_label: Any = None,
    threshold: float = 0.5,
    calibrator: Calibrator | None = None,
    confidence: float = 0.95,
    draws: int = 500,
    seed: int = 0,
    model_version: int = 0,
    min_rows: int = 1,
) -> PerformanceReport:
    """The expected accuracy, precision, recall, F1 and ROC-AUC of a window (kind
    ``estimated``), each with a ``confidence`` band, from the model's ``probabilities``
    (rows x ``classes``; a binary model's may be 1-D: the positive class's).

    ``positive_label`` defaults to the greater of two ``classes`` (e.g. ``1`` or ``True``);
    ``predictions`` default to the model's decisions on the raw probabilities (see the module
    docstring). With a ``calibrator`` the probabilities are calibrated first
    (``report.calibrated``)."""
    if len(classes) < 2:
        raise MonitoringError("fewer than two classes", fix="pass the model's classes")
    classes = list(classes)
    binary = len(classes) == 2
    positive = default_positive(classes) if positive_label is None else positive_label
    if binary and positive not in classes:
        raise MonitoringError(
            f"positive_label {positive!r} is not one of {classes}", fix="name one of them"
        )
    if binary and classes.index(positive) == 0:
        classes.reverse()  # the positive class is column 1 from here on
        raw = _matrix(probabilities, 2, positive_first=True)
    else:
        raw = _matrix(probabilities, len(classes))
    rows = raw.shape[0]
    method = (
        f"CBPE: metrics of the expected confusion matrix; band: estimate ± z·se, se = sd of "
        f"each metric over {draws} label sets drawn from the probabilities (seeded Monte "
        f"Carlo, seed {seed})"
    )
    header: dict[str, Any] = {
        "kind": "estimated",
        "task": "binary" if binary else "multiclass",
        "rows": rows,
        "model_version": model_version,
        "positive_label": positive if binary else None,
        "classes": tuple(classes),
        "calibrated": calibrator is not None,
        "method": method,
    }
    if rows < max(min_rows, 1):
        return PerformanceReport(
            status="not_enough_data",
            metrics=tuple(
                MetricResult(name, None, "estimated", rows, note=f"{rows} rows < {min_rows}")
                for name in ESTIMATED_METRICS
            ),
            note=f"not enough data: {rows} rows, at least {min_rows} needed",
            **header,
        )
    predicted = _decisions(raw, classes, predictions, threshold, binary)
    calibrated = raw if calibrator is None else _aligned(calibrator, raw, classes)
    counted = [1] if binary else list(range(len(classes)))
    point = _expected(calibrated, raw, predicted, counted)
    spread = _monte_carlo(calibrated, raw, predicted, counted, draws, seed)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    average = f"binary (positive: {positive!r})" if binary else "macro"
    results = []
    for index, name in enumerate(ESTIMATED_METRICS):
        value = finite_or_none(point[index])
        se = finite_or_none(float(np.nanstd(spread[:, index]))) if value is not None else None
        band = (None, None) if se is None or value is None else (value - z * se, value + z * se)
        results.append(
            MetricResult(
                name,
                value,
                "estimated",
                rows,
                average=None if name == "accuracy" else average,
                standard_error=se,
                low=None if band[0] is None else max(0.0, band[0]),
                high=None if band[1] is None else min(1.0, band[1]),
                note=None if value is not None else "undefined on this window",
            )
        )
    return PerformanceReport(status="ok", metrics=tuple(results), **header)


def _matrix(probabilities: npt.ArrayLike, width: int, *, positive_first: bool = False) -> Any:
    matrix = np.asarray(probabilities, dtype=float)
    if matrix.ndim == 1:
        if width != 2:
            raise MonitoringError(
                "1-D probabilities with more than two classes",
                fix="pass a (rows, classes) matrix; 1-D is a binary model's positive class",
            )
        matrix = np.column_stack([1 - matrix, matrix])
    elif positive_first:
        matrix = matrix[:, ::-1]
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise MonitoringError(
            f"probabilities of shape {matrix.shape}",
            fix=f"pass one column per class: (rows, {width})",
        )
    matrix = np.clip(matrix, 0.0, 1.0)
    totals = matrix.sum(axis=1, keepdims=True)
    return matrix / np.where(totals > 0, totals, 1)


def _aligned(calibrator: Calibrator, raw: np.ndarray, classes: list[Any]) -> np.ndarray:
    """``calibrator`` applied to ``raw`` whose columns follow ``classes`` (maybe reordered)."""
    order = [classes.index(label) for label in calibrator.classes]
    out = np.empty_like(raw)
    out[:, order] = calibrator.apply(raw[:, order])
    return out


def _decisions(
    raw: np.ndarray,
    classes: list[Any],
    predictions: npt.ArrayLike | None,
    threshold: float,
    binary: bool,
) -> np.ndarray:
    """Index into ``classes`` of each row's predicted class."""
    if predictions is None:
        return (raw[:, 1] >= threshold).astype(int) if binary else raw.argmax(axis=1)
    lookup = {label: index for index, label in enumerate(classes)}
    values = np.asarray(predictions).tolist()
    unknown = [value for value in values if value not in lookup]
    if unknown:
        raise MonitoringError(
            f"predictions {sorted(set(map(str, unknown)))[:5]} not in {classes}",
            fix="pass the classes the model predicts",
        )
    return np.fromiter((lookup[value] for value in values), dtype=int, count=len(values))


def _expected(p: np.ndarray, raw: np.ndarray, predicted: np.ndarray, counted: list[int]) -> Any:
    rows = len(predicted)
    accuracy = p[np.arange(rows), predicted].mean()
    precision, recall, f1, auc = [], [], [], []
    for k in counted:
        mine = predicted == k
        tp, called, positives = p[mine, k].sum(), mine.sum(), p[:, k].sum()
        precision.append(tp / called if called else np.nan)
        recall.append(tp / positives if positives > 0 else np.nan)
        f1.append(2 * tp / (called + positives) if called + positives > 0 else np.nan)
        auc.append(_expected_auc(raw[:, k], p[:, k]))
    with np.errstate(all="ignore"):
        return np.array([accuracy, *(_mean(v) for v in (precision, recall, f1, auc))])


def _expected_auc(scores: np.ndarray, q: np.ndarray) -> float:
    """Sum over pairs i != j of q_i (1 - q_j) [s_i > s_j] (+ half for ties), over the sum of
    q_i (1 - q_j) over all pairs i != j: the AUC the labels drawn from ``q`` give on average
    (to first order)."""
    values, group = np.unique(scores, return_inverse=True)
    negative = np.bincount(group, weights=1 - q, minlength=len(values))
    below = np.cumsum(negative) - negative
    ties = negative[group] - (1 - q)
    numerator = float(np.sum(q * (below[group] + 0.5 * ties)))
    denominator = float(q.sum() * (1 - q).sum() - np.sum(q * (1 - q)))
    return numerator / denominator if denominator > 0 else np.nan


def _monte_carlo(
    p: np.ndarray,
    raw: np.ndarray,
    predicted: np.ndarray,
    counted: list[int],
    draws: int,
    seed: int,
) -> np.ndarray:
    """The realised metrics (draws x metrics) of label sets drawn from ``p``."""
    rng = np.random.default_rng(seed)
    rows, width = p.shape
    cumulative = np.cumsum(p, axis=1)[:, :-1]
    ranks = np.column_stack([stats.rankdata(raw[:, k]) for k in counted])
    called = np.array([np.sum(predicted == k) for k in counted], dtype=float)
    chunk = max(1, _CELLS_PER_CHUNK // max(rows * width, 1))
    out = []
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        u = rng.random((size, rows, 1))
        labels = (u > cumulative[None, :, :]).sum(axis=2)  # draws x rows: a class index
        out.append(_realised(labels, predicted, counted, called, ranks))
    return np.vstack(out)


def _realised(
    labels: np.ndarray,
    predicted: np.ndarray,
    counted: list[int],
    called: np.ndarray,
    ranks: np.ndarray,
) -> np.ndarray:
    """Accuracy, precision, recall, F1 and ROC-AUC of each row of ``labels`` (as
    sklearn computes them: macro averages skip classes where the metric is undefined)."""
    rows = labels.shape[1]
    accuracy = (labels == predicted[None, :]).mean(axis=1)
    per_class = []
    with np.errstate(all="ignore"):
        for column, k in enumerate(counted):
            truth = (labels == k).astype(float)
            positives = truth.sum(axis=1)
            tp = truth @ (predicted == k).astype(float)
            rank_sum = truth @ ranks[:, column]
            both = called[column] + positives
            auc = (rank_sum - positives * (positives + 1) / 2) / (positives * (rows - positives))
            per_class.append(
                [
                    np.where(called[column] > 0, tp / called[column], np.nan),
                    np.where(positives > 0, tp / positives, np.nan),
                    np.where(called[column] + positives > 0, 2 * tp / both, np.nan),
                    np.where((positives > 0) & (positives < rows), auc, np.nan),
                ]
            )
        stacked: np.ndarray = np.array(per_class)  # classes x 4 metrics x draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw where no class is defined
        averaged = np.nanmean(stacked, axis=0) if len(counted) > 1 else stacked[0]
    return np.column_stack([accuracy, averaged.T])


def _mean(values: list[float]) -> float:
    finite_values = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite_values)) if finite_values else float("nan")


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))
