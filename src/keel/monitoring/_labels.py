"""Predictions of one window joined to their labels, per model version, from the prediction log.

    window = labelled_window(LogReader(log_dir), "churn", start, end)
    for version in window.versions.values():
        report = version.performance()                    # realised metrics of that version

The join runs in DuckDB over the log's ``predictions`` and ``feedback`` views: only the
columns it needs, only the window's date partitions of the endpoint (feedback: from the
window's first day on, since a label cannot precede its prediction), only primary answers
(shadow answers carry the same id but were never shown to anyone). Each outcome the log can
hold has a defined result, counted on :class:`LabelledWindow`:

- feedback for an id the window does not hold, although the id says it was made in the window
  (UUIDv7 ids carry their time; other ids: feedback received in the window): ``unknown_ids``,
  ignored;
- several labels for one prediction: the latest received wins, the others are ``duplicates``;
- a label whose JSON type does not fit the prediction's (a string label for a numeric
  regression, a number for a string class...): ``type_mismatches``, left out;
- fewer labelled rows than ``min_labels`` (none at all included): status ``not_enough_data``
  with the counts, for the window and for each version.

Types that fit: a string prediction takes a string label; an integer or boolean prediction (a
class) takes an integer or boolean label (booleans as 0/1); a floating-point prediction (a
regression) takes any number but a boolean.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from keel.errors import MonitoringError
from keel.monitoring._perf_results import PerformanceReport
from keel.monitoring._performance import realised_performance
from keel.serving._predlog import LogReader

DEFAULT_LABEL_NAME = "label"
WindowStatus = Literal["ok", "not_enough_data"]
LabelKind = Literal["label", "class", "number"]

# The prediction's and the label's JSON types, reduced to what decides whether they fit.
_KIND = """CASE json_type({0}) WHEN 'VARCHAR' THEN 'label' WHEN 'DOUBLE' THEN 'number'
    WHEN 'BIGINT' THEN 'class' WHEN 'UBIGINT' THEN 'class' WHEN 'BOOLEAN' THEN 'bool'
    ELSE 'other' END"""
# UUIDv7 text: the first 48 bits are the epoch milliseconds it was made at.
_ID_MS = """CASE WHEN length(f.prediction_id) = 36 AND substr(f.prediction_id, 15, 1) = '7'
    THEN try_cast('0x' || substr(f.prediction_id, 1, 8) || substr(f.prediction_id, 10, 4)
    AS BIGINT) END"""
_SQL = f"""
WITH p AS (
    SELECT prediction_id, model_version, prediction_number, prediction_label, probabilities,
        {_KIND.format("prediction")} AS prediction_kind
    FROM predictions
    WHERE endpoint = $1 AND date BETWEEN $2 AND $3
        AND time >= $4 AND time < $5 AND NOT shadow
), f AS (
    SELECT prediction_id, value_number, value_label, time, {_KIND.format("value")} AS label_kind,
        row_number() OVER (PARTITION BY prediction_id ORDER BY time DESC, value) AS newest
    FROM feedback
    WHERE date >= $2 AND ($6::DATE IS NULL OR date <= $6)
        AND ($7::TIMESTAMPTZ IS NULL OR time < $7)
        AND (endpoint = $1 OR endpoint IS NULL)
        AND (name = $8 OR name IS NULL)
), unknown AS (
    SELECT count(*) AS n FROM f
    WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.prediction_id = f.prediction_id)
        AND coalesce({_ID_MS} >= $9 AND {_ID_MS} < $10,
                      f.time >= $4 AND f.time < $5)
)
SELECT 'label' AS row_kind, p.model_version, p.prediction_kind, p.prediction_number,
    p.prediction_label, TRY_CAST(TRY_CAST(p.probabilities AS JSON) AS MAP(VARCHAR, DOUBLE))
    AS by_label, TRY_CAST(TRY_CAST(p.probabilities AS JSON) AS DOUBLE[]) AS by_position,
    f.label_kind, f.value_number, f.value_label, NULL::BIGINT AS n
FROM p JOIN f ON f.prediction_id = p.prediction_id AND f.newest = 1
UNION ALL
SELECT 'predictions', model_version, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*)
FROM p GROUP BY model_version
UNION ALL
SELECT 'duplicates', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*)
FROM f WHERE f.newest > 1 AND EXISTS (SELECT 1 FROM p WHERE p.prediction_id = f.prediction_id)
UNION ALL
SELECT 'unknown', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, n FROM unknown
"""
_FITS = {
    "label": {"label"},
    "class": {"class", "bool"},
    "bool": {"class", "bool"},
    "number": {"number", "class"},
}


@dataclass(frozen=True)
class VersionLabels:
    """One model version's labelled predictions in a window, row-aligned arrays:
    ``predictions`` and ``labels`` (strings for string classes, integers for integer or
    boolean classes, floats for a regression), ``probabilities`` (rows x ``classes``, None
    when the log has none or not for every class, see ``note``)."""

    model_version: int
    task: Literal["classification", "regression"]
    predictions: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray | None
    classes: tuple[Any, ...]
    predicted_rows: int
    """Primary predictions of this version in the window, labelled or not."""
    status: WindowStatus
    note: str | None = None

    @property
    def labelled_rows(self) -> int:
        return len(self.labels)

    def performance(self, **options: Any) -> PerformanceReport:
        """The realised metrics of these rows (:func:`realised_performance`; ``options``
        pass through, e.g. ``positive_label``, ``min_rows``)."""
        if self.task == "regression":
            options.setdefault("task", "regression")
        elif self.classes:
            options.setdefault("classes", self.classes)
        return realised_performance(
            self.labels,
            self.predictions,
            self.probabilities,
            model_version=self.model_version,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "task": self.task,
            "classes": [c.item() if hasattr(c, "item") else c for c in self.classes],
            "predicted_rows": self.predicted_rows,
            "labelled_rows": self.labelled_rows,
            "probabilities": self.probabilities is not None,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class LabelledWindow:
    """The labelled predictions of one endpoint's window, per model version, and what the join
    left out (see the module docstring)."""

    endpoint: str
    start: dt.datetime
    end: dt.datetime
    versions: Mapping[int, VersionLabels]
    predictions: int
    labelled: int
    unknown_ids: int
    duplicates: int
    type_mismatches: int
    min_labels: int
    status: WindowStatus
    note: str | None = None
    mismatches_by_version: Mapping[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "unknown_ids": self.unknown_ids,
            "duplicates": self.duplicates,
            "type_mismatches": self.type_mismatches,
            "min_labels": self.min_labels,
            "status": self.status,
            "note": self.note,
            "versions": {str(k): v.to_dict() for k, v in self.versions.items()},
        }


def labelled_window(
    reader: LogReader,
    endpoint: str,
    start: dt.datetime | float,
    end: dt.datetime | float,
    *,
    label_name: str = DEFAULT_LABEL_NAME,
    min_labels: int = 1,
    labels_until: dt.datetime | float | None = None,
) -> LabelledWindow:
    """The predictions ``endpoint`` answered in ``[start, end)`` (aware datetimes, or epoch
    seconds as the window runner counts them), joined to their labels: feedback named
    ``label_name`` or unnamed, received before ``labels_until`` (default: any time).
    ``min_labels`` applies to the window and to each version."""
    start, end = _instant(start), _instant(end)
    until = None if labels_until is None else _instant(labels_until)
    table = reader.query(
        _SQL,
        [  # $1 ... $10 in _SQL
            endpoint,
            start.date(),
            end.date(),
            start,
            end,
            None if until is None else until.date(),
            until,
            label_name,
            int(start.timestamp() * 1000),
            int(end.timestamp() * 1000),
        ],
    )
    return _assemble(table, endpoint, start, end, min_labels)


def _instant(value: dt.datetime | float) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise MonitoringError(
                "a naive datetime as a window bound",
                fix="pass timezone-aware datetimes or epoch seconds",
            )
        return value.astimezone(dt.UTC)
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _assemble(
    table: pa.Table, endpoint: str, start: dt.datetime, end: dt.datetime, min_labels: int
) -> LabelledWindow:
    kinds = table.column("row_kind").to_numpy(zero_copy_only=False)
    counts: dict[str, int] = dict.fromkeys(("duplicates", "unknown"), 0)
    predicted: dict[int, int] = {}
    for row in table.filter(pa.array(kinds != "label")).to_pylist():  # a few rows
        if row["row_kind"] == "predictions":
            predicted[row["model_version"] or 0] = int(row["n"])
        else:
            counts[row["row_kind"]] = int(row["n"] or 0)
    labelled = table.filter(pa.array(kinds == "label"))
    versions: dict[int, VersionLabels] = {}
    mismatches: dict[int, int] = {}
    owners = np.asarray(labelled.column("model_version").fill_null(0).to_numpy())
    for version in np.unique(owners).tolist():
        rows = labelled.filter(pa.array(owners == version))
        built, mismatched = _version(rows, version, predicted.get(version, 0), min_labels)
        versions[version], mismatches[version] = built, mismatched
    for version, count in predicted.items():  # versions without a single label
        if version not in versions:
            versions[version] = _empty(version, count, min_labels)
    total = sum(v.labelled_rows for v in versions.values())
    enough = total >= max(min_labels, 1)
    note = None if enough else f"not enough data: {total} labelled of {sum(predicted.values())}"
    return LabelledWindow(
        endpoint=endpoint,
        start=start,
        end=end,
        versions=dict(sorted(versions.items())),
        predictions=sum(predicted.values()),
        labelled=total,
        unknown_ids=counts["unknown"],
        duplicates=counts["duplicates"],
        type_mismatches=sum(mismatches.values()),
        min_labels=min_labels,
        status="ok" if enough else "not_enough_data",
        note=note,
        mismatches_by_version=mismatches,
    )


def _version(rows: pa.Table, version: int, count: int, minimum: int) -> tuple[VersionLabels, int]:
    """The version's rows whose label fits the prediction (the version's most common
    prediction type: a version answers with one type), and how many were left out."""
    prediction_kinds = _strings(rows, "prediction_kind")
    found = Counter(prediction_kinds.tolist())
    kind = max(("label", "class", "bool", "number"), key=lambda k: found.get(k, 0))
    fits = (prediction_kinds == kind) & np.isin(_strings(rows, "label_kind"), sorted(_FITS[kind]))
    kept = rows.filter(pa.array(fits))
    if kind == "label":
        predictions, labels = _strings(kept, "prediction_label"), _strings(kept, "value_label")
    else:
        cast = float if kind == "number" else np.int64
        predictions = _numbers(kept, "prediction_number").astype(cast)
        labels = _numbers(kept, "value_number").astype(cast)
    probabilities, classes, note = (None, (), None)
    if kind != "number":
        probabilities, classes, note = _probabilities(kept, kind, predictions, labels)
    enough = kept.num_rows >= max(minimum, 1)
    if not enough:
        note = f"not enough data: {kept.num_rows} labelled of {count} predictions, {minimum} needed"
    labelled = VersionLabels(
        model_version=version,
        task="regression" if kind == "number" else "classification",
        predictions=predictions,
        labels=labels,
        probabilities=probabilities,
        classes=classes,
        predicted_rows=count,
        status="ok" if enough else "not_enough_data",
        note=note,
    )
    return labelled, rows.num_rows - kept.num_rows


def _strings(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=object)


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _probabilities(
    rows: pa.Table, kind: str, predictions: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray | None, tuple[Any, ...], str | None]:
    """The probability matrix and its classes. Classes are the probabilities' keys (parsed
    as the predictions are: integers, booleans as 0/1); a list is indexed by integer class."""
    seen = tuple(sorted(set(predictions.tolist()) | set(labels.tolist()), key=_order))
    if rows.num_rows == 0:
        return None, seen, None
    by_label = pa.chunked_array(rows.column("by_label")).combine_chunks()
    by_position = pa.chunked_array(rows.column("by_position")).combine_chunks()
    if by_label.null_count == 0:
        keys = np.asarray(by_label.keys.to_numpy(zero_copy_only=False), dtype=object)
        values = np.asarray(by_label.items.to_numpy(zero_copy_only=False), dtype=float)
        lengths = np.diff(np.asarray(by_label.offsets))
    elif by_position.null_count == 0 and kind != "label":
        lengths = np.diff(np.asarray(by_position.offsets))
        values = np.asarray(by_position.flatten().to_numpy(zero_copy_only=False), dtype=float)
        keys = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.array([])
        keys = keys.astype(str).astype(object)
    elif by_position.null_count == 0:
        return None, seen, "list probabilities cannot be matched to string classes"
    else:
        return None, seen, "probabilities are missing for some rows"
    names, column = np.unique(keys, return_inverse=True)
    labels_of = [_class(str(name), kind) for name in names.tolist()]
    order = sorted(range(len(names)), key=lambda i: _order(labels_of[i]))
    position = np.empty(len(order), dtype=int)
    position[order] = np.arange(len(order))
    matrix = np.full((rows.num_rows, len(names)), np.nan)
    matrix[np.repeat(np.arange(rows.num_rows), lengths), position[column]] = values
    classes = tuple(labels_of[i] for i in order)
    if np.isnan(matrix).any():
        return None, classes, "some rows lack a probability for some class"
    return matrix, classes, None


def _class(key: str, kind: str) -> Any:
    if kind == "label":
        return key
    lowered = key.lower()
    if lowered in {"true", "false"}:
        return int(lowered == "true")
    try:
        return int(key)
    except ValueError:
        return key


def _order(label: Any) -> tuple[int, Any]:
    """Labels sort as themselves (1 before 10); strings after numbers if a log mixes them."""
    return (1, label) if isinstance(label, str) else (0, label)


def _empty(version: int, count: int, minimum: int) -> VersionLabels:
    return VersionLabels(
        model_version=version,
        task="classification",
        predictions=np.array([]),
        labels=np.array([]),
        probabilities=None,
        classes=(),
        predicted_rows=count,
        status="not_enough_data",
        note=f"not enough data: 0 labelled of {count} predictions, {minimum} needed",
    )
