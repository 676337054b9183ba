"""Data sets a run read: what log_input records, and the fingerprint that identifies them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis
import pandas as pd
import pytest
from hypothesis import strategies as st

from keel import Workspace
from keel._packaging import fingerprint
from keel.errors import TrackingError

# -- log_input -----------------------------------------------------------------------------------


def test_log_input_of_a_dataframe_records_its_fingerprint_rows_and_columns(
    workspace: Workspace,
) -> None:
    frame = pd.DataFrame({"age": [31, 45, 27], "plan": ["a", "b", "a"]})
    with workspace.start_run() as run:
        returned = run.log_input(frame, name="train")

    inputs = workspace.runs.get(run.id).inputs

    assert returned == fingerprint(frame)
    assert inputs == {
        "train": {
            "fingerprint": fingerprint(frame),
            "source": "dataframe",
            "num_rows": 3,
            "columns": ["age", "plan"],
        }
    }


def test_log_input_of_a_file_records_its_resolved_path_and_fingerprint(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "train.csv"
    path.write_text("age\n31\n", encoding="utf-8")
    with workspace.start_run() as run:
        returned = run.log_input(path)

    inputs = workspace.runs.get(run.id).inputs

    assert inputs == {
        "training": {
            "fingerprint": returned,
            "source": str(path.resolve()),
            "num_rows": None,
            "columns": None,
        }
    }


def test_file_fingerprint_changes_with_the_file_content(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("age\n31\n", encoding="utf-8")
    before = fingerprint(path)
    path.write_text("age\n32\n", encoding="utf-8")

    assert fingerprint(path) != before


def test_directory_fingerprint_changes_when_any_file_in_it_changes(tmp_path: Path) -> None:
    (tmp_path / "data" / "part").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("1\n", encoding="utf-8")
    (tmp_path / "data" / "part" / "b.csv").write_text("2\n", encoding="utf-8")
    before = fingerprint(tmp_path / "data")
    (tmp_path / "data" / "part" / "b.csv").write_text("3\n", encoding="utf-8")

    assert fingerprint(tmp_path / "data") != before


def test_log_input_of_a_missing_path_raises_tracking_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    with (
        workspace.start_run() as run,
        pytest.raises(TrackingError, match="input 'train'.*does not exist"),
    ):
        run.log_input(tmp_path / "nowhere.csv", name="train")

    assert workspace.runs.get(run.id).inputs == {}


# -- fingerprints of frames ------------------------------------------------------------------------

COLUMN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(10**9), 10**9),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "text": st.text(max_size=6),
    "bool": st.booleans(),
}


@st.composite
def frame_columns(draw: st.DrawFn) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Column values (plain lists, so a frame can be rebuilt from them) and each column's kind."""
    rows = draw(st.integers(min_value=1, max_value=6))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_VALUES)), min_size=1, max_size=4))
    columns = {
        f"c{index}": draw(st.lists(COLUMN_VALUES[kind], min_size=rows, max_size=rows))
        for index, kind in enumerate(kinds)
    }
    return columns, {f"c{index}": kind for index, kind in enumerate(kinds)}


FRAME_SETTINGS = hypothesis.settings(max_examples=60, deadline=None, database=None)


@FRAME_SETTINGS
@hypothesis.given(frame_columns())
def test_equal_frames_have_equal_fingerprints(
    columns: tuple[dict[str, list[Any]], dict[str, str]],
) -> None:
    values, _ = columns
    first = pd.DataFrame({name: list(column) for name, column in values.items()})
    second = pd.DataFrame({name: list(column) for name, column in values.items()})

    assert fingerprint(first) == fingerprint(second)


@FRAME_SETTINGS
@hypothesis.given(frame_columns(), st.data())
def test_changing_one_value_changes_the_fingerprint(
    columns: tuple[dict[str, list[Any]], dict[str, str]], data: st.DataObject
) -> None:
    values, kinds = columns
    name = data.draw(st.sampled_from(sorted(values)), label="column")
    row = data.draw(st.integers(min_value=0, max_value=len(values[name]) - 1), label="row")
    old = values[name][row]
    new = data.draw(COLUMN_VALUES[kinds[name]].filter(lambda value: value != old), label="new")
    changed = {column: list(items) for column, items in values.items()}
    changed[name][row] = new

    assert fingerprint(pd.DataFrame(changed)) != fingerprint(pd.DataFrame(values))


def test_renaming_a_column_changes_the_fingerprint() -> None:
    frame = pd.DataFrame({"age": [31, 45]})

    assert fingerprint(frame.rename(columns={"age": "years"})) != fingerprint(frame)


def test_changing_a_column_type_changes_the_fingerprint() -> None:
    frame = pd.DataFrame({"age": [31, 45]})

    assert fingerprint(frame.astype("float64")) != fingerprint(frame)


def test_reordering_rows_changes_the_fingerprint() -> None:
    frame = pd.DataFrame({"age": [31, 45]})

    assert fingerprint(frame.iloc[::-1]) != fingerprint(frame)
