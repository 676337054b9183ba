"""Performance monitors of one window: realised (labels joined), estimated (CBPE), concept drift.

    results = performance_results(reader, window, versions, input_drift=True, classes=[0, 1])

Per model version the window holds:

- ``performance``: the realised metrics of the rows whose labels have arrived
  (:func:`keel.monitoring.labelled_window`), compared with the version's validation metrics;
- ``estimated_performance``: classifiers only, the metrics expected from the logged
  probabilities of *every* row of the window, labelled or not, with their band;
- ``concept_drift``: the finding of :func:`keel.monitoring.detect_concept_drift` from the two
  and the window's input-drift verdict.

Plus one window row (monitor ``performance``, subject ``""``, statistic ``labels``) counting
what the label join saw: predictions, labelled, unknown ids, duplicates, type mismatches.

Labels arrive late, so these monitors are recomputed for windows that ended within the label
horizon on every run (:meth:`keel.monitoring.MonitorRunner.run`), replacing their earlier
results; the input monitors of a window are computed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from keel.monitoring._concept import detect_concept_drift
from keel.monitoring._estimate import estimate_performance
from keel.monitoring._labels import labelled_window
from keel.monitoring._log_window import LogWindow
from keel.monitoring._perf_results import PerformanceReport
from keel.monitoring._performance import compare_to_validation
from keel.monitoring._results import MonitorResult, result_maker
from keel.registry import ModelVersion
from keel.serving._predlog import LogReader

MONITORS = ("performance", "estimated_performance", "concept_drift")


def performance_results(
    reader: LogReader,
    window: LogWindow,
    versions: Mapping[int, ModelVersion],
    *,
    input_drift: bool | None,
    classes: Sequence[Any] | None,
    label_name: str = "label",
    min_labels: int = 100,
) -> list[MonitorResult]:
    """The performance monitors of ``window`` (see the module doc); ``versions`` are the
    registered versions by number (a version not there is compared with nothing)."""
    labelled = labelled_window(
        reader, window.endpoint, window.start, window.end, label_name=label_name,
        min_labels=min_labels,
    )  # fmt: skip
    make = result_maker(window.endpoint, window.start, window.end, "performance")
    found = [
        make(
            "",
            "labels",
            labelled.status,
            labelled.predictions,
            value=float(labelled.labelled),
            details={
                "unknown_ids": labelled.unknown_ids,
                "duplicates": labelled.duplicates,
                "type_mismatches": labelled.type_mismatches,
                "min_labels": labelled.min_labels,
                "note": labelled.note,
            },
        )
    ]
    estimates = _estimates(window, versions, classes) if classes else {}
    for number in sorted(set(labelled.versions) | set(estimates)):
        version = versions.get(number)
        estimated = estimates.get(number)
        if estimated is not None:
            found += _rows(window, estimated.to_results())
        labels = labelled.versions.get(number)
        if labels is None:
            continue
        realised = labels.performance()
        if version is not None:
            realised = compare_to_validation(realised, version)
        found += _rows(window, realised.to_results())
        finding = detect_concept_drift(
            realised, input_drift=input_drift, estimated=estimated, min_labels=min_labels
        )
        found += _rows(window, finding.to_results())
    return found


def _estimates(
    window: LogWindow, versions: Mapping[int, ModelVersion], classes: Sequence[Any]
) -> dict[int, PerformanceReport]:
    table = window.predictions
    names = [f"p{i}" for i in range(len(classes))]
    if table.num_rows == 0 or not all(name in table.column_names for name in names):
        return {}
    # A default prediction (a fallback without a model) has no version: -1 matches none.
    numbers = np.asarray(
        pc.fill_null(table.column("model_version"), -1).to_numpy(zero_copy_only=False)
    )
    matrix = np.column_stack(
        [table.column(name).to_numpy(zero_copy_only=False) for name in names]
    ).astype("float64")
    complete = ~np.isnan(matrix).any(axis=1)
    reports = {}
    for number in np.unique(numbers[complete & (numbers >= 0)]):
        rows = complete & (numbers == number)
        estimate = estimate_performance(matrix[rows], classes=classes, model_version=int(number))
        version = versions.get(int(number))
        reports[int(number)] = (
            estimate if version is None else compare_to_validation(estimate, version)
        )
    return reports


def _rows(window: LogWindow, rows: Iterable[Mapping[str, Any]]) -> list[MonitorResult]:
    where = {"endpoint": window.endpoint, "window_start": window.start, "window_end": window.end}
    return [MonitorResult.from_row({**row, **where}) for row in rows]
