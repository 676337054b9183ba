"""labelled_window: predictions joined to their labels in DuckDB over a real prediction log."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.errors import MonitoringError
from keel.monitoring import (
    compare_to_validation,
    detect_concept_drift,
    estimate_performance,
    labelled_window,
)
from keel.serving._predlog import (
    Compactor,
    FeedbackEntry,
    LogReader,
    PredictionEntry,
    PredictionLog,
)

NOW = time.time_ns()
START = dt.datetime.fromtimestamp(NOW / 1e9 - 3600, dt.UTC)
END = dt.datetime.fromtimestamp(NOW / 1e9 + 3600, dt.UTC)
DAY = 86_400 * 10**9


def _id_at(ns: int) -> str:
    """A UUIDv7 made at ``ns`` (the log's ids carry their time)."""
    text = f"{ns // 1_000_000:012x}7{os.urandom(10).hex()[:19]}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def _prediction(
    value: Any, *, version: int = 1, at: int = NOW, probabilities: Any = None, **fields: Any
) -> PredictionEntry:
    return PredictionEntry(
        prediction_id=_id_at(at),
        endpoint=fields.pop("endpoint", "churn"),
        model="churn-model",
        model_version=version,
        inputs={"age": 41},
        prediction=value,
        probabilities=probabilities,
        time=at,
        **fields,
    )


def _label(entry: PredictionEntry | str, value: Any, *, at: int = NOW, **fields: Any) -> Any:
    ident = entry if isinstance(entry, str) else entry.prediction_id
    fields.setdefault("endpoint", "churn")
    return FeedbackEntry(prediction_id=ident, value=value, time=at + 1000, **fields)


def _write(log_dir: Path, *batches: list[Any], compact_first: bool = True) -> LogReader:
    """Write each batch in turn; all but the last are compacted into Parquet (so a window
    reads parts and fresh segments together)."""
    for index, batch in enumerate(batches):
        with PredictionLog(log_dir, fsync="never") as log:
            log.append_sync(batch)
        if compact_first and index < len(batches) - 1:
            Compactor(log_dir).run_once()
    return LogReader(log_dir)


def _window(reader: LogReader, **options: Any) -> Any:
    return labelled_window(reader, "churn", START, END, **options)


def test_labels_join_their_primary_predictions_per_version(tmp_path: Path) -> None:
    proba = [{"0": 0.8, "1": 0.2}, {"0": 0.3, "1": 0.7}, {"0": 0.4, "1": 0.6}]
    first = [_prediction(i % 2, probabilities=p) for i, p in enumerate(proba)]
    second = _prediction(1, version=2, probabilities={"0": 0.1, "1": 0.9})
    shadow = _prediction(0, version=9, shadow=True)
    unlabelled = _prediction(1)
    old = _prediction(1, at=NOW - 2 * DAY)  # an earlier window's
    other = _prediction(1, endpoint="fraud")
    predictions = [*first, second, shadow, unlabelled, old, other]
    labels = [_label(p, v) for p, v in zip(first, [0, 0, 1], strict=True)]
    labels += [_label(second, True), _label(old, 0), _label(other, 0, endpoint="fraud")]
    labels += [_label(first[0], 999, name="revenue")]  # not a label

    window = _window(_write(tmp_path, predictions, labels))

    assert (window.predictions, window.labelled, window.status) == (5, 4, "ok")
    assert (window.unknown_ids, window.duplicates, window.type_mismatches) == (0, 0, 0)
    assert sorted(window.versions) == [1, 2]
    one = window.versions[1]
    order = np.argsort(one.probabilities[:, 1])
    assert one.predicted_rows == 4
    assert one.labelled_rows == 3
    assert one.classes == (0, 1)
    assert one.task == "classification"
    assert one.predictions[order].tolist() == [0, 0, 1]
    assert one.labels[order].tolist() == [0, 1, 0]
    assert one.probabilities[order, 1].tolist() == [0.2, 0.6, 0.7]
    two = window.versions[2]
    assert (two.labels.tolist(), two.predictions.tolist()) == ([1], [1])  # True is class 1
    assert one.performance()["accuracy"].value == pytest.approx(1 / 3)


def test_labels_for_unknown_prediction_ids_are_counted_and_ignored(tmp_path: Path) -> None:
    known = _prediction(1, probabilities=[0.2, 0.8])
    labels = [
        _label(known, 1),
        _label(_id_at(NOW), 0),  # made in this window, never logged
        _label("not-a-uuid", 1),  # received in this window
        _label(_id_at(NOW - 2 * DAY), 1),  # an earlier window's problem, not this one's
    ]

    window = _window(_write(tmp_path, [known], labels))

    assert (window.unknown_ids, window.labelled, window.versions[1].labels.tolist()) == (2, 1, [1])
    assert window.versions[1].probabilities.tolist() == [[0.2, 0.8]]


def test_duplicate_feedback_the_latest_received_wins(tmp_path: Path) -> None:
    entry = _prediction("yes", probabilities={"no": 0.4, "yes": 0.6})
    first, later = _label(entry, "no", at=NOW), _label(entry, "yes", at=NOW + 5_000)

    window = _window(_write(tmp_path, [entry, later], [first]))  # the later one compacted first

    assert (window.duplicates, window.labelled) == (1, 1)
    version = window.versions[1]
    assert version.labels.tolist() == ["yes"]
    assert version.classes == ("no", "yes")


def test_feedback_of_another_type_than_the_prediction_is_counted_and_left_out(
    tmp_path: Path,
) -> None:
    cls, text, amount = _prediction(1), _prediction("yes", version=2), _prediction(3.5, version=3)
    labels = [
        _label(cls, "churned"),  # a string for an integer class
        _label(text, 1),  # a number for a string class
        _label(amount, True),  # a boolean for a regression
    ]
    fitting = [_prediction(0), _prediction(2.0, version=3)]
    labels += [_label(fitting[0], False), _label(fitting[1], 2)]

    window = _window(_write(tmp_path, [cls, text, amount, *fitting], labels))

    assert window.type_mismatches == 3
    assert window.mismatches_by_version == {1: 1, 2: 1, 3: 1}
    assert window.versions[1].labels.tolist() == [0]
    assert window.versions[2].status == "not_enough_data"
    regression = window.versions[3]
    assert regression.task == "regression"
    assert regression.labels.tolist() == [2.0]
    assert regression.performance()["mae"].value == pytest.approx(0.0)


def test_a_window_without_labels_is_not_enough_data_with_its_counts(tmp_path: Path) -> None:
    entries = [_prediction(i % 2) for i in range(5)]

    window = _window(_write(tmp_path, entries))

    assert (window.status, window.predictions, window.labelled) == ("not_enough_data", 5, 0)
    assert window.versions[1].status == "not_enough_data"
    assert window.versions[1].predicted_rows == 5
    assert window.to_dict()["note"] == "not enough data: 0 labelled of 5"


def test_an_empty_window_is_not_enough_data(tmp_path: Path) -> None:
    window = _window(_write(tmp_path, [_prediction(1, at=NOW - 3 * DAY)]))

    assert (window.status, window.predictions, window.labelled) == ("not_enough_data", 0, 0)
    assert window.versions == {}


def test_fewer_labels_than_min_labels_is_not_enough_data(tmp_path: Path) -> None:
    entries = [_prediction(i % 2, probabilities=[0.5, 0.5]) for i in range(6)]
    labels = [_label(e, 1) for e in entries[:3]]

    reader = _write(tmp_path, entries, labels)
    window = _window(reader, min_labels=5)
    enough = _window(reader, min_labels=3)

    assert (window.status, window.labelled, window.predictions) == ("not_enough_data", 3, 6)
    assert window.versions[1].status == "not_enough_data"
    assert "3 labelled of 6 predictions" in (window.versions[1].note or "")
    assert (enough.status, enough.versions[1].status) == ("ok", "ok")


def test_labels_received_after_labels_until_are_not_joined_yet(tmp_path: Path) -> None:
    entry = _prediction(1)
    late = _label(entry, 1, at=NOW + DAY)

    reader = _write(tmp_path, [entry], [late])
    cut = END

    assert _window(reader, labels_until=cut).labelled == 0
    assert _window(reader).labelled == 1


def test_bounds_are_aware_datetimes_or_epoch_seconds(tmp_path: Path) -> None:
    entry = _prediction(1)
    reader = _write(tmp_path, [entry], [_label(entry, 1, endpoint=None)])  # sent from Python

    by_seconds = labelled_window(reader, "churn", START.timestamp(), END.timestamp())

    assert (by_seconds.labelled, by_seconds.start) == (1, START)
    with pytest.raises(MonitoringError, match="timezone-aware"):
        labelled_window(reader, "churn", START.replace(tzinfo=None), END)


def test_string_classes_with_positional_probabilities_have_none(tmp_path: Path) -> None:
    entry = _prediction("yes", probabilities=[0.3, 0.7])

    window = _window(_write(tmp_path, [entry], [_label(entry, "no")]))

    version = window.versions[1]
    assert version.probabilities is None
    assert version.note == "list probabilities cannot be matched to string classes"
    assert version.classes == ("no", "yes")
    assert version.performance()["log_loss"].note == "no probabilities logged"


def test_a_logged_window_with_a_changed_label_relation_is_reported_as_concept_drift(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(4)
    score = 1 / (1 + np.exp(-1.5 * rng.normal(0, 2, 1500)))
    entries = [
        _prediction(int(p >= 0.5), at=NOW - i, probabilities={"0": 1 - p, "1": p})
        for i, p in enumerate(score.tolist())
    ]
    flipped = np.where(rng.random(1500) < 0.6, 1 - score, score)  # the world changed
    labels = [
        _label(e, int(u < p), at=NOW + i)
        for i, (e, u, p) in enumerate(zip(entries, rng.random(1500), flipped, strict=True))
    ]
    version = _window(_write(tmp_path, entries, labels), min_labels=100).versions[1]

    realised = version.performance()
    estimated = estimate_performance(version.probabilities, classes=version.classes)
    finding = detect_concept_drift(
        realised, input_drift=False, estimated=estimated, validation={"val_accuracy": 0.84}
    )

    assert version.labelled_rows == 1500
    assert finding.finding == "concept_drift"
    assert finding.estimate_matches_reference is True
    rows = [*compare_to_validation(realised, {"accuracy": 0.84}).to_results()]
    rows += [*estimated.to_results(), *finding.to_results()]
    assert {row["monitor"] for row in rows} == {
        "performance",
        "estimated_performance",
        "concept_drift",
    }
    json.dumps(rows, allow_nan=False)
