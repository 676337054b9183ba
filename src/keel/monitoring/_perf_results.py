"""Results of the performance monitors: one metric, one window's report, rows for the store.

A :class:`PerformanceReport` holds the metrics of one model version over one window, either
``realised`` (computed from joined labels) or ``estimated`` (CBPE, before labels arrive).
``to_results`` yields one row per metric shaped like the ``monitor_results`` table
(``monitor``, ``subject``, ``model_version``, ``statistic``, ``value``, ``p_value``,
``threshold``, ``status``, ``rows``, ``details``) without writing anything: the window runner
adds the endpoint and window bounds and stores them. ``threshold`` is the reference value (the
version's validation metric), which is what the built-in performance alert rules compare with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.data._profile import finite_or_none

MetricKind = Literal["realised", "estimated"]
Task = Literal["binary", "multiclass", "regression"]
#: ``ok``: computed; ``not_enough_data``: fewer rows than the minimum (no metric computed)
ReportStatus = Literal["ok", "not_enough_data"]
#: per metric: ``ok`` (not degraded, or no reference to compare with: see ``reference``),
#: ``degraded``, ``unavailable`` (value None, see ``note``), ``not_enough_data``
MetricStatus = Literal["ok", "degraded", "unavailable", "not_enough_data"]

#: metrics where a smaller value is better (a rise is a degradation)
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})


def default_positive(classes: Sequence[Any]) -> Any:
    """The positive class of a binary model when none is named: the greater label (``1``,
    ``True``, ``"yes"`` over ``"no"``), or the last one when the labels do not compare."""
    try:
        return max(classes)
    except TypeError:
        return classes[-1]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    return _json_safe(item()) if callable(item) else value


@dataclass(frozen=True)
class MetricResult:
    """One metric of one window. ``value`` None (with a ``note``) when it cannot be computed
    (one class only, no probabilities, a constant target...). After a comparison with the
    version's validation metrics, ``reference`` is the validation value, ``delta`` is
    ``value - reference`` and ``degraded`` says whether it moved the bad way by more than
    ``tolerance`` (direction-aware: a rise for :data:`LOWER_IS_BETTER`); all three stay None
    when the version has no such validation metric. Estimates carry their sampling band
    (``low``, ``high``) and its ``standard_error``."""

    name: str
    value: float | None
    kind: MetricKind
    rows: int
    average: str | None = None
    """How a multiclass metric is averaged (``macro``), or ``binary`` with the positive class."""
    reference: float | None = None
    delta: float | None = None
    tolerance: float | None = None
    degraded: bool | None = None
    standard_error: float | None = None
    low: float | None = None
    high: float | None = None
    note: str | None = None

    @property
    def status(self) -> MetricStatus:
        if self.value is None:
            return "unavailable"
        return "degraded" if self.degraded else "ok"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: _json_safe(getattr(self, f.name)) for f in dataclasses.fields(self)}
        data["status"] = self.status
        if self.kind == "realised":
            for name in ("standard_error", "low", "high"):
                data.pop(name)
        return data


@dataclass(frozen=True)
class PerformanceReport:
    """The metrics of one model version over one window.

    report = realised_performance(labels, predictions, probabilities, classes=[0, 1])
    report = compare_to_validation(report, registry.get_version("churn", 3))
    report["accuracy"].degraded, report.to_dict(), list(report.to_results())
    """

    kind: MetricKind
    task: Task
    rows: int
    status: ReportStatus
    metrics: tuple[MetricResult, ...]
    model_version: int = 0
    """The version the rows were answered by; 0 means every version of the window."""
    positive_label: Any = None
    classes: tuple[Any, ...] = ()
    calibrated: bool | None = None
    """Estimates only: whether the probabilities went through a fitted calibrator first."""
    method: str | None = None
    """Estimates only: how the point estimate and its band were computed."""
    note: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """Counts a later test needs (e.g. ``correct`` rows, ``abs_error_sd``)."""

    @property
    def monitor(self) -> str:
        return "performance" if self.kind == "realised" else "estimated_performance"

    @property
    def degraded(self) -> bool:
        return any(metric.degraded for metric in self.metrics)

    def __getitem__(self, name: str) -> MetricResult:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r} in this report: {[m.name for m in self.metrics]}")

    def __contains__(self, name: object) -> bool:
        return any(metric.name == name for metric in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "kind": self.kind,
            "task": self.task,
            "model_version": self.model_version,
            "rows": self.rows,
            "status": self.status,
            "positive_label": _json_safe(self.positive_label),
            "classes": _json_safe(list(self.classes)),
            "calibrated": self.calibrated,
            "method": self.method,
            "note": self.note,
            "details": _json_safe(self.details),
            "metrics": [metric.to_dict() for metric in self.metrics],
        }

    def to_results(self) -> Iterator[dict[str, Any]]:
        """One row per metric in the shape of the ``monitor_results`` table: subject and
        statistic are the metric's name, ``threshold`` the version's validation value it is
        compared with (None without one; the alert rules apply their own margin to it, the
        tolerance behind ``status`` is in ``details``), ``details`` the rest."""
        for metric in self.metrics:
            data = metric.to_dict()
            status = "not_enough_data" if self.status == "not_enough_data" else metric.status
            yield {
                "monitor": self.monitor,
                "subject": metric.name,
                "model_version": self.model_version,
                "statistic": metric.name,
                "value": data["value"],
                "p_value": None,
                "threshold": data["reference"],
                "status": status,
                "rows": self.rows,
                "details": {
                    **{k: v for k, v in data.items() if k not in {"name", "value", "status"}},
                    "task": self.task,
                    "calibrated": self.calibrated,
                    "method": self.method,
                },
            }
