"""Queries: compacted and fresh entries as one table, feedback joined by prediction id."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import KeelError
from keel.serving._predlog import (
    Compactor,
    LogReader,
    PredictionLog,
    prediction_with_feedback,
    query,
)
from keel.serving._predlog._segments import list_segments

from .conftest import feedback, in_loop, prediction


def _ids(log_dir: Path, sql: str = "SELECT prediction_id FROM predictions ORDER BY time") -> list:
    return query(sql, log_dir).column(0).to_pylist()


@in_loop
async def test_query_sees_compacted_and_just_answered_entries(log_dir: Path) -> None:
    old = [prediction(n) for n in range(3)]
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(old)
    Compactor(log_dir).run_once()
    log = PredictionLog(log_dir, fsync="never")
    fresh = prediction(9)

    await log.append(fresh)

    assert _ids(log_dir) == [e.prediction_id for e in [*old, fresh]]
    log.close()


def test_a_segment_whose_parts_exist_is_not_counted_twice(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([prediction(n) for n in range(4)])
    [(segment, _)] = list_segments(log_dir)
    Compactor(log_dir).write_parts(segment)  # compaction half done: parts and segment

    assert len(_ids(log_dir)) == 4


def test_feedback_joins_its_prediction_by_id(log_dir: Path) -> None:
    first, second = prediction(1), prediction(2)
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([first, second])
        log.append_sync([feedback(second.prediction_id, "churned", name="label")])
    Compactor(log_dir).run_once()
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(feedback(first.prediction_id, 0))  # not compacted yet

    joined = query(
        "SELECT p.prediction_id, f.value_label AS label FROM predictions p "
        "JOIN feedback f USING (prediction_id) ORDER BY p.time",
        log_dir,
    )

    assert joined.to_pylist() == [
        {"prediction_id": first.prediction_id, "label": "0"},
        {"prediction_id": second.prediction_id, "label": "churned"},
    ]


def test_prediction_with_feedback_decodes_json_columns(log_dir: Path) -> None:
    entry = prediction(7, arm="canary", cache_hit=False)
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([entry, prediction(8)])
        log.append_sync([feedback(entry.prediction_id, 1), feedback(entry.prediction_id, 0)])

    found = prediction_with_feedback(entry.prediction_id, log_dir)

    assert found is not None
    record = found["prediction"]
    assert record["prediction_id"] == entry.prediction_id
    assert record["inputs"] == dict(entry.inputs)
    assert record["probabilities"] == {"0": 0.25, "1": 0.75}
    assert (record["endpoint"], record["model_version"], record["arm"]) == ("churn", 3, "canary")
    assert record["cache_hit"] is False
    assert [f["value"] for f in found["feedback"]] == [1, 0]


def test_an_unknown_prediction_is_none(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(prediction())

    assert LogReader(log_dir).prediction_with_feedback(prediction().prediction_id) is None
    assert LogReader(log_dir).prediction_with_feedback("no-such-id") is None


def test_promoted_columns_and_json_paths(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(
            [
                prediction(1, prediction="yes", inputs={"age": 41}),
                prediction(2, prediction=0.25, probabilities=None),
                prediction(3, prediction=True),
            ]
        )

    rows = query(
        "SELECT prediction_label, prediction_number, inputs->>'$.age' AS age, probabilities "
        "FROM predictions ORDER BY time",
        log_dir,
    ).to_pylist()

    assert [(r["prediction_label"], r["prediction_number"]) for r in rows] == [
        ("yes", None),
        (None, 0.25),
        ("true", 1.0),
    ]
    assert rows[0]["age"] == "41"
    assert rows[1]["probabilities"] is None


def test_an_empty_log_has_empty_views(log_dir: Path) -> None:
    assert _ids(log_dir) == []
    assert query("SELECT count(*) FROM feedback", log_dir).column(0)[0].as_py() == 0


def test_parameters_bind(log_dir: Path) -> None:
    entry = prediction(endpoint="fraud")
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([entry, prediction(endpoint="churn")])

    found = LogReader(log_dir).query(
        "SELECT prediction_id FROM predictions WHERE endpoint = ?", ["fraud"]
    )

    assert found.column(0).to_pylist() == [entry.prediction_id]


def test_bad_sql_is_a_keel_error(log_dir: Path) -> None:
    with pytest.raises(KeelError, match="query failed.*no_such_table"):
        query("SELECT * FROM no_such_table", log_dir)
