"""``keel log``: SQL over the project's prediction log, one prediction with its feedback."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.serving._predlog import FeedbackEntry, PredictionEntry, PredictionLog, new_prediction_id

from .conftest import Keel, assert_one_line_error, sqlite_only

pytestmark = sqlite_only


@pytest.fixture
def log_dir(project: Path) -> Path:
    """The log directory named in the project's keel.toml (not the default)."""
    with (project / "keel.toml").open("a", encoding="utf-8") as handle:
        handle.write('[serving]\nprediction_log_dir = "logs/predictions"\n')
    return project / "logs" / "predictions"


def _entry(endpoint: str, prediction: str, age: int) -> PredictionEntry:
    return PredictionEntry(
        prediction_id=new_prediction_id(),
        endpoint=endpoint,
        model="churn",
        model_version=2,
        inputs={"age": age},
        prediction=prediction,
        probabilities={"no": 0.3, "yes": 0.7},
        latency_ms=1.25,
    )


@pytest.fixture
def logged(log_dir: Path) -> list[PredictionEntry]:
    entries = [_entry("churn", "yes", 41), _entry("churn", "no", 23), _entry("fraud", "no", 50)]
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(entries)
        log.append_sync(FeedbackEntry(prediction_id=entries[0].prediction_id, value="yes"))
    return entries


def test_query_json(keel: Keel, logged: list[PredictionEntry]) -> None:
    rows = keel.json(
        "log", "query", "SELECT endpoint, count(*) AS n FROM predictions GROUP BY 1 ORDER BY 1"
    )

    assert rows == [{"endpoint": "churn", "n": 2}, {"endpoint": "fraud", "n": 1}]


def test_query_json_renders_times_as_iso_text(keel: Keel, logged: list[PredictionEntry]) -> None:
    [row] = keel.json("log", "query", "SELECT time, date FROM feedback")

    assert row["time"].endswith("+00:00")
    assert row["time"].startswith(row["date"])


def test_query_table(keel: Keel, logged: list[PredictionEntry]) -> None:
    output = keel.ok("log", "query", "SELECT prediction_id, prediction_label FROM predictions")

    assert "prediction_label" in output.stdout
    for entry in logged:
        assert entry.prediction_id in output.stdout


def test_bad_sql_is_one_line(keel: Keel, logged: list[PredictionEntry]) -> None:
    assert_one_line_error(keel("log", "query", "SELEC nothing"), "query failed")


def test_show_json(keel: Keel, logged: list[PredictionEntry]) -> None:
    shown = keel.json("log", "show", logged[0].prediction_id)

    assert shown["prediction"]["prediction_id"] == logged[0].prediction_id
    assert shown["prediction"]["inputs"] == {"age": 41}
    assert shown["prediction"]["prediction"] == "yes"
    assert [f["value"] for f in shown["feedback"]] == ["yes"]


def test_show_table(keel: Keel, logged: list[PredictionEntry]) -> None:
    output = keel.ok("log", "show", logged[1].prediction_id).stdout

    assert logged[1].prediction_id in output
    assert "churn version 2" in output
    assert "age" in output
    assert "23" in output
    assert "no feedback yet" in output


def test_show_unknown_id_is_one_line(keel: Keel, logged: list[PredictionEntry]) -> None:
    assert_one_line_error(keel("log", "show", "nope"), "no prediction 'nope'", "logs/predictions")
