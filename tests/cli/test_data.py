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


# -- keel data validate ----------------------------------------------------------------------------

SCHEMA_YAML = """\
fields:
  - {name: age, dtype: int, min: 0, max: 130}
  - {name: plan, dtype: category, allowed: [basic, pro]}
"""


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(SCHEMA_YAML, encoding="utf-8")
    return path


@pytest.fixture
def people(tmp_path: Path) -> tuple[Path, Path]:
    """``good.parquet`` follows the contract; ``bad.csv`` has a negative age in row 1."""
    good = pd.DataFrame({"age": [30, 41, 57], "plan": ["basic", "pro", "pro"]})
    good.to_parquet(tmp_path / "good.parquet")
    good.assign(age=[30, -4, 57]).to_csv(tmp_path / "bad.csv", index=False)
    return tmp_path / "good.parquet", tmp_path / "bad.csv"


@sqlite_only
def test_validate_a_valid_file_exits_zero(
    keel: Keel, people: tuple[Path, Path], contract: Path
) -> None:
    output = keel.ok("data", "validate", str(people[0]), "--schema", str(contract)).stdout

    assert output.strip() == "3 rows, all valid"


@sqlite_only
def test_validate_an_invalid_file_is_one_line_naming_the_rule(
    keel: Keel, people: tuple[Path, Path], contract: Path
) -> None:
    result = keel("data", "validate", str(people[1]), "--schema", str(contract))

    assert_one_line_error(result, "does not match its schema", "age", "[min]", "row 1: -4")


@sqlite_only
def test_validate_in_warn_mode_prints_the_failures_and_succeeds(
    keel: Keel, people: tuple[Path, Path], contract: Path
) -> None:
    output = keel.ok(
        "data", "validate", str(people[1]), "--schema", str(contract), "--mode", "warn"
    ).stdout

    assert output.startswith("3 rows, 1 invalid")
    for fragment in ("Rule failures", "failing rows", "age", "min", "row 1: -4"):
        assert fragment in output


@sqlite_only
def test_validate_in_drop_mode_quarantines_the_invalid_rows(
    keel: Keel, project: Path, people: tuple[Path, Path], contract: Path
) -> None:
    output = keel.ok(
        "data", "validate", str(people[1]), "--schema", str(contract), "--mode", "drop"
    ).stdout

    [written] = (project / ".keel" / "quarantine").glob("*.parquet")
    assert f"quarantined 1 row to {written}" in output
    rows = pd.read_parquet(written)
    assert rows["age"].tolist() == [-4]
    assert rows["_keel_reasons"].tolist()[0].tolist() == ["age:min"]


@sqlite_only
def test_validate_in_drop_mode_writes_to_the_quarantine_dir_given(
    keel: Keel, tmp_path: Path, people: tuple[Path, Path], contract: Path
) -> None:
    target = tmp_path / "held"

    result = keel.json(
        "data",
        "validate",
        str(people[1]),
        "--schema",
        str(contract),
        "--mode",
        "drop",
        "--quarantine-dir",
        str(target),
    )

    assert result["quarantine_path"] is not None
    assert Path(result["quarantine_path"]).parent == target
    assert len(list(target.glob("*.parquet"))) == 1


@sqlite_only
def test_validate_json_is_the_report(keel: Keel, people: tuple[Path, Path], contract: Path) -> None:
    result = keel.json(
        "data", "validate", str(people[1]), "--schema", str(contract), "--mode", "warn"
    )

    assert result["ok"] is False
    assert result["rows"] == 3
    assert result["invalid_rows"] == 1
    [failure] = result["failures"]
    assert (failure["column"], failure["rule"], failure["count"]) == ("age", "min", 1)
    assert failure["examples"] == [{"row": 1, "value": -4}]
    assert result["quarantine_path"] is None


@sqlite_only
def test_validate_with_an_unusable_schema_file_is_one_line(
    keel: Keel, tmp_path: Path, people: tuple[Path, Path]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("fields:\n  - {name: age, dtype: integer}\n", encoding="utf-8")

    result = keel("data", "validate", str(people[0]), "--schema", str(broken))

    assert_one_line_error(result, "field 'age'", "unknown dtype 'integer'")


@sqlite_only
def test_validate_with_a_missing_schema_file_is_one_line(
    keel: Keel, tmp_path: Path, people: tuple[Path, Path]
) -> None:
    result = keel("data", "validate", str(people[0]), "--schema", str(tmp_path / "none.yaml"))

    assert_one_line_error(result, "cannot read the schema file")


@sqlite_only
def test_validate_a_missing_data_file_is_one_line(
    keel: Keel, tmp_path: Path, contract: Path
) -> None:
    result = keel("data", "validate", str(tmp_path / "none.csv"), "--schema", str(contract))

    assert_one_line_error(result, "no such file")


@sqlite_only
def test_validate_reports_a_missing_column_in_warn_mode(
    keel: Keel, tmp_path: Path, contract: Path
) -> None:
    path = tmp_path / "ages.csv"
    pd.DataFrame({"age": [1, 2]}).to_csv(path, index=False)

    result = keel.json("data", "validate", str(path), "--schema", str(contract), "--mode", "warn")

    assert [(p["column"], p["rule"]) for p in result["problems"]] == [("plan", "missing_column")]


@sqlite_only
def test_validate_a_missing_column_in_drop_mode_is_one_line(
    keel: Keel, project: Path, tmp_path: Path, contract: Path
) -> None:
    path = tmp_path / "ages.csv"
    pd.DataFrame({"age": [1, 2]}).to_csv(path, index=False)

    result = keel("data", "validate", str(path), "--schema", str(contract), "--mode", "drop")

    assert_one_line_error(result, "column 'plan' (category, required) is missing")
    assert not (project / ".keel" / "quarantine").exists()
