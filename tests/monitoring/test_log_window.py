"""A window of live traffic is read from the prediction log: only its rows, typed, and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.monitoring._log_window import log_time_range, read_window
from keel.serving._predlog import Compactor, LogReader, PredictionEntry, PredictionLog

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def entry(n: int, at: float, inputs: dict[str, object], **flags: object) -> PredictionEntry:
    return PredictionEntry(
        prediction_id=f"00000000-0000-0000-0000-{n:012d}",
        endpoint=str(flags.pop("endpoint", "churn")),
        model="churn",
        model_version=1,
        inputs=inputs,
        prediction=n % 2,
        probabilities={"0": 0.25, "1": 0.75},
        time=int(at * 1e9),
        **flags,  # type: ignore[arg-type]
    )


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "predictions"
    entries = [entry(n, T0 + n * 60, {"age": 30 + n, "plan": "basic"}) for n in range(10)]
    entries += [
        entry(100, T0 + 120, {"age": "old", "plan": 3}),  # a value of the wrong type
        entry(101, T0 + 180, {"plan": None}),  # missing and null
        entry(102, T0 + 240, {"age": 1, "plan": "x"}, shadow=True),  # a shadow's answer
        entry(103, T0 + 240, {"age": 1, "plan": "x"}, endpoint="other"),
        entry(104, T0 + 86_400 * 3, {"age": 99, "plan": "late"}),  # another day
    ]
    with PredictionLog(directory, fsync="never") as log:
        log.append_sync(entries[:7])
    Compactor(directory).run_once()  # some entries in Parquet, the rest in segments
    with PredictionLog(directory, fsync="never") as log:
        log.append_sync(entries[7:])
    return directory


def test_a_window_holds_the_primary_answers_of_its_endpoint_in_its_time_range(
    log_dir: Path,
) -> None:
    window = read_window(
        LogReader(log_dir), "churn", T0 + 60, T0 + 300, {"age": "DOUBLE", "plan": "VARCHAR"}
    )
    # rows at 60, 120, 180, 240 s of the first ten, plus the wrong-typed and the missing one
    assert window.rows == 6
    assert sorted(v for v in window.inputs.column("age").to_pylist() if v is not None) == [
        31.0,
        32.0,
        33.0,
        34.0,
    ]
    assert window.inputs.column("plan").to_pylist().count(None) == 1
    assert window.predictions.num_rows == 6


def test_a_value_of_the_wrong_type_is_a_null_and_counted_as_invalid(log_dir: Path) -> None:
    window = read_window(LogReader(log_dir), "churn", T0, T0 + 600, {"age": "DOUBLE"})
    assert window.invalid == {"age": 1}
    assert window.inputs.column("age").null_count == 2  # the text and the missing value


def test_an_empty_window_has_no_rows(log_dir: Path) -> None:
    window = read_window(LogReader(log_dir), "churn", T0 + 86_400, T0 + 86_460, {"age": "DOUBLE"})
    assert window.rows == 0
    assert window.invalid == {"age": 0}


def test_field_names_with_path_syntax_are_read_as_names(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    with PredictionLog(directory, fsync="never") as log:
        log.append_sync([entry(1, T0, {'a.b "c" [0]': 5, "it's": "yes"})])
    window = read_window(
        LogReader(directory), "churn", T0, T0 + 1, {'a.b "c" [0]': "DOUBLE", "it's": "VARCHAR"}
    )
    assert window.inputs.to_pylist() == [{'a.b "c" [0]': 5.0, "it's": "yes"}]


def test_the_time_range_of_an_endpoint_spans_its_first_and_last_answer(log_dir: Path) -> None:
    first, last = log_time_range(LogReader(log_dir), "churn") or (0.0, 0.0)
    assert (first, last) == pytest.approx((T0, T0 + 86_400 * 3))
    assert log_time_range(LogReader(log_dir), "nobody") is None
