"""``keel data``: snapshot files, show snapshots, diff two of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel import Workspace

from .conftest import Keel, assert_one_line_error, sqlite_only


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """``june.parquet`` and ``july.csv``: july's income is shifted and a plan appears."""
    rng = np.random.default_rng(0)
    june = pd.DataFrame(
        {
            "age": rng.integers(18, 90, 100),
            "income": rng.normal(50_000, 10_000, 100),
            "plan": rng.choice(["basic", "pro"], 100),
        }
    )
    july = june.assign(income=june["income"] + 20_000, plan="team").drop(columns="age")
    june.to_parquet(tmp_path / "june.parquet")
    july.to_csv(tmp_path / "july.csv", index=False)
    return tmp_path / "june.parquet", tmp_path / "july.csv"


def test_snapshot_json_returns_the_stored_snapshot(
    keel: Keel, workspace: Workspace, files: tuple[Path, Path]
) -> None:
    june, _ = files

    created = keel.json("data", "snapshot", str(june), "--name", "june")

    assert created["name"] == "june"
    assert created["num_rows"] == 100
    assert workspace.snapshots.get("june").fingerprint == created["fingerprint"]
    assert created["lineage"]["sources"] == [str(june.resolve())]


def test_snapshot_records_parents(keel: Keel, files: tuple[Path, Path]) -> None:
    june, july = files
    parent = keel.json("data", "snapshot", str(june), "--name", "june")

    child = keel.json("data", "snapshot", str(july), "--name", "july", "--parent", "june")

    assert child["lineage"]["parents"] == [parent["fingerprint"]]


@sqlite_only
def test_snapshot_prints_the_fingerprint(keel: Keel, files: tuple[Path, Path]) -> None:
    output = keel.ok("data", "snapshot", str(files[0]), "--name", "june").stdout

    assert output.startswith("snapshot ")
    assert "'june': 100 rows x 3 columns" in output


def test_snapshot_of_a_missing_file_is_one_line(keel: Keel, tmp_path: Path) -> None:
    result = keel("data", "snapshot", str(tmp_path / "nowhere.csv"), "--name", "x")

    assert_one_line_error(result, "no such file")


def test_snapshot_with_an_unknown_parent_is_one_line(keel: Keel, files: tuple[Path, Path]) -> None:
    result = keel("data", "snapshot", str(files[0]), "--name", "june", "--parent", "nope")

    assert_one_line_error(result, "no snapshot", "'nope'")


def test_show_without_a_reference_lists_snapshots_newest_first(
    keel: Keel, files: tuple[Path, Path]
) -> None:
    june = keel.json("data", "snapshot", str(files[0]), "--name", "june")
    july = keel.json("data", "snapshot", str(files[1]), "--name", "july")

    listed = keel.json("data", "show")

    assert [s["fingerprint"] for s in listed] == [july["fingerprint"], june["fingerprint"]]
    assert listed[1]["columns"] == ["age", "income", "plan"]


def test_show_json_has_schema_profile_and_lineage(keel: Keel, files: tuple[Path, Path]) -> None:
    created = keel.json("data", "snapshot", str(files[0]), "--name", "june")

    shown = keel.json("data", "show", created["fingerprint"][:10])

    assert shown == created
    assert [f["name"] for f in shown["schema"]["fields"]] == ["age", "income", "plan"]
    assert len(shown["profile"]["columns"]["income"]["histogram"]["edges"]) == 21


@sqlite_only
def test_show_table_lists_each_column_with_its_statistics(
    keel: Keel, files: tuple[Path, Path]
) -> None:
    keel.ok("data", "snapshot", str(files[0]), "--name", "june")

    output = keel.ok("data", "show", "june").stdout

    for fragment in ("name", "june", "sources", "income", "float", "plan", "basic="):
        assert fragment in output


@sqlite_only
def test_show_with_no_snapshots_says_so(keel: Keel) -> None:
    assert keel.ok("data", "show").stdout.strip() == "no snapshots"


def test_show_of_an_unknown_snapshot_is_one_line(keel: Keel) -> None:
    assert_one_line_error(keel("data", "show", "nope"), "no snapshot", "'nope'")


def test_diff_json_reports_schema_and_profile_changes(keel: Keel, files: tuple[Path, Path]) -> None:
    keel.ok("data", "snapshot", str(files[0]), "--name", "june")
    keel.ok("data", "snapshot", str(files[1]), "--name", "july")

    result = keel.json("data", "diff", "june", "july")

    assert [f["name"] for f in result["schema"]["removed"]] == ["age"]
    columns = {c["name"]: c for c in result["profile"]["columns"]}
    assert columns["income"]["psi"] > 1
    assert columns["plan"]["new_values"] == ["team"]


@sqlite_only
def test_diff_table_shows_schema_changes_and_shifts(keel: Keel, files: tuple[Path, Path]) -> None:
    keel.ok("data", "snapshot", str(files[0]), "--name", "june")
    keel.ok("data", "snapshot", str(files[1]), "--name", "july")

    output = keel.ok("data", "diff", "june", "july").stdout

    assert "- age (int)" in output
    assert "income" in output
    assert "new: team" in output


def test_diff_with_an_unknown_snapshot_is_one_line(keel: Keel, files: tuple[Path, Path]) -> None:
    keel.ok("data", "snapshot", str(files[0]), "--name", "june")

    assert_one_line_error(keel("data", "diff", "june", "nope"), "'nope'")
