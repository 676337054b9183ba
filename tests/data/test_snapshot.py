"""Snapshots: creating, fingerprinting, finding, loading, lineage and comparing, on each backend."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import hypothesis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import strategies as st

import keel
from keel import Settings, Workspace
from keel._packaging import fingerprint
from keel.data import Schema
from keel.data._profile import profile
from keel.data._snapshot import Snapshot, _from_frame, _write_parquet
from keel.errors import ArtifactCorrupted, DataError, SnapshotNotFound


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, 200),
            "income": rng.normal(50_000, 10_000, 200),
            "plan": rng.choice(["basic", "pro", "team"], 200),
            "churned": rng.random(200) < 0.2,
        }
    )


def artifact_file(workspace: Workspace, snapshot: Snapshot) -> Path:
    return Path(workspace.artifacts.location(snapshot.artifact.digest))


# -- creating --------------------------------------------------------------------------------------


def test_create_from_a_dataframe_stores_its_rows_and_columns(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")

    assert (created.name, created.num_rows) == ("train", 200)
    assert created.columns == ["age", "income", "plan", "churned"]
    assert created.created_by == "tester"
    assert len(created.fingerprint) == 64


def test_loading_returns_the_data_that_was_snapshotted(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")

    pd.testing.assert_frame_equal(workspace.snapshots.load(created.fingerprint), frame)


def test_the_fingerprint_is_the_fingerprint_of_the_loaded_frame(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")

    assert fingerprint(workspace.snapshots.load(created)) == created.fingerprint


def test_an_arrow_table_gives_the_same_snapshot_as_its_frame(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    from_frame = workspace.snapshots.create(frame, "train")

    from_arrow = workspace.snapshots.create(pa.Table.from_pandas(frame), "train")

    assert from_arrow == from_frame


def test_a_parquet_file_gives_the_same_fingerprint_as_its_frame(
    workspace: Workspace, frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)

    created = workspace.snapshots.create(path, "train")

    assert created.fingerprint == workspace.snapshots.create(frame, "train").fingerprint
    assert created.lineage["sources"] == [str(path.resolve())]


def test_a_csv_file_is_read_with_inferred_types(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("age,plan\n31,a\n45,b\n", encoding="utf-8")

    created = workspace.snapshots.create(str(path), "train")

    assert [(f.name, f.dtype) for f in created.schema.fields] == [
        ("age", "int"),
        ("plan", "string"),
    ]
    assert created.lineage["sources"] == [str(path.resolve())]


def test_a_directory_of_parquet_files_is_read_in_path_order(
    workspace: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "parts").mkdir()
    pd.DataFrame({"x": [3, 4]}).to_parquet(tmp_path / "parts" / "b.parquet")
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "parts" / "a.parquet")

    created = workspace.snapshots.create(tmp_path / "parts", "parts")

    assert workspace.snapshots.load(created)["x"].tolist() == [1, 2, 3, 4]
    assert len(created.lineage["sources"]) == 2


def test_a_missing_path_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        workspace.snapshots.create(tmp_path / "nowhere.parquet", "train")


def test_an_unsupported_file_type_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "train.xlsx"
    path.write_bytes(b"not a table")

    with pytest.raises(DataError, match=r"only \.parquet"):
        workspace.snapshots.create(path, "train")


def test_duplicate_column_names_are_refused(workspace: Workspace) -> None:
    frame = pd.DataFrame([[1, 2]], columns=["x", "x"])

    with pytest.raises(DataError, match="duplicate columns: x"):
        workspace.snapshots.create(frame, "train")


def test_an_empty_name_is_refused(workspace: Workspace, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="not usable"):
        workspace.snapshots.create(frame, " ")


# -- fingerprints and idempotence ------------------------------------------------------------------


def test_snapshotting_the_same_data_again_returns_the_existing_snapshot(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    first = workspace.snapshots.create(frame, "train")

    again = workspace.snapshots.create(frame.copy(), "train", sources=["elsewhere.csv"])

    assert again == first
    assert workspace.snapshots.list() == [first]


def test_the_same_data_under_another_name_is_refused(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    workspace.snapshots.create(frame, "train")

    with pytest.raises(DataError, match="already snapshot .* named 'train'"):
        workspace.snapshots.create(frame, "copy")


def test_one_changed_value_changes_the_fingerprint(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    changed = frame.copy()
    changed.loc[17, "income"] += 0.01

    first = workspace.snapshots.create(frame, "train")
    second = workspace.snapshots.create(changed, "train")

    assert second.fingerprint != first.fingerprint


def test_row_order_is_part_of_the_content(workspace: Workspace, frame: pd.DataFrame) -> None:
    reordered = frame.iloc[::-1].reset_index(drop=True)

    first = workspace.snapshots.create(frame, "train")
    second = workspace.snapshots.create(reordered, "train")

    assert second.fingerprint != first.fingerprint


def test_an_unnamed_index_is_not_part_of_the_content(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    filtered = frame[frame["age"] > 40]

    created = workspace.snapshots.create(filtered, "older")

    assert created.fingerprint == fingerprint(filtered.reset_index(drop=True))


def test_a_named_index_becomes_a_column(workspace: Workspace) -> None:
    frame = pd.DataFrame({"customer": [7, 9], "age": [31, 45]}).set_index("customer")

    created = workspace.snapshots.create(frame, "customers")

    assert created.columns == ["customer", "age"]


def test_the_same_data_is_written_as_the_same_bytes(frame: pd.DataFrame, tmp_path: Path) -> None:
    _write_parquet(_from_frame(frame), tmp_path / "a.parquet")
    _write_parquet(_from_frame(frame.copy()), tmp_path / "b.parquet")

    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


COLUMN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(10**12), 10**12),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "text": st.text(max_size=5),
    "bool": st.booleans(),
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Column values (plain lists, so equal frames can be rebuilt) and each column's kind."""
    rows = draw(st.integers(min_value=1, max_value=5))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_VALUES)), min_size=1, max_size=3))
    columns = {
        f"c{i}": draw(st.lists(COLUMN_VALUES[kind], min_size=rows, max_size=rows))
        for i, kind in enumerate(kinds)
    }
    return columns, {f"c{i}": kind for i, kind in enumerate(kinds)}


@pytest.fixture(scope="module")
def sqlite_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One SQLite workspace shared by the examples of a property test."""
    root = tmp_path_factory.mktemp("property")
    settings = Settings.load(
        root,
        metadata_url=f"sqlite:///{root / 'keel.db'}",
        artifacts_url=str(root / "artifacts"),
        actor="tester",
    )
    with Workspace(settings) as ws:
        yield ws


@hypothesis.settings(max_examples=40, deadline=None, database=None)
@hypothesis.given(tables(), st.data())
def test_fingerprints_are_equal_for_equal_data_and_differ_after_any_change(
    sqlite_workspace: Workspace,
    columns: tuple[dict[str, list[Any]], dict[str, str]],
    data: st.DataObject,
) -> None:
    values, kinds = columns
    name = data.draw(st.sampled_from(sorted(values)), label="column")
    row = data.draw(st.integers(min_value=0, max_value=len(values[name]) - 1), label="row")
    old = values[name][row]
    new = data.draw(COLUMN_VALUES[kinds[name]].filter(lambda v: v != old), label="new")
    changed = {column: list(items) for column, items in values.items()}
    changed[name][row] = new
    snapshots = sqlite_workspace.snapshots
    # one name for every example: equal data drawn again is then the same snapshot
    first = snapshots.create(pd.DataFrame(values), "drawn")
    same = snapshots.create(pd.DataFrame({k: list(v) for k, v in values.items()}), "drawn")
    different = snapshots.create(pd.DataFrame(changed), "drawn")

    assert same.fingerprint == first.fingerprint
    assert different.fingerprint != first.fingerprint


# -- schema and profile ----------------------------------------------------------------------------


def test_schema_and_profile_read_back_equal_to_those_of_the_data(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")

    stored = workspace.snapshots.get(created.fingerprint)

    assert stored.schema == Schema.from_frame(frame)
    assert stored.profile == profile(frame)
    assert stored == created


def test_stored_histograms_have_fixed_edges_and_count_every_non_null_value(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    frame.loc[::10, "income"] = np.nan
    column = workspace.snapshots.create(frame, "train").profile["income"]

    assert column.histogram is not None
    assert len(column.histogram.edges) == 21
    assert column.histogram.edges[0] == column.min
    assert column.histogram.edges[-1] == column.max
    assert sum(column.histogram.counts) == column.count == 180


def test_stored_profile_keeps_category_frequencies(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    column = workspace.snapshots.create(frame, "train").profile["plan"]
    expected = frame["plan"].value_counts()

    assert column.frequencies is not None
    assert column.frequencies.counts() == expected.to_dict()
    assert column.frequencies.distinct == 3


# -- lineage ---------------------------------------------------------------------------------------


def test_given_sources_are_recorded(workspace: Workspace, frame: pd.DataFrame) -> None:
    created = workspace.snapshots.create(frame, "train", sources=["s3://raw/2024-06.csv"])

    assert created.lineage["sources"] == ["s3://raw/2024-06.csv"]


def test_parents_are_recorded_by_fingerprint(workspace: Workspace, frame: pd.DataFrame) -> None:
    raw = workspace.snapshots.create(frame, "raw")

    clean = workspace.snapshots.create(frame.dropna().head(50), "clean", parents=["raw"])

    assert clean.lineage["parents"] == [raw.fingerprint]


def test_a_missing_parent_is_refused_and_nothing_is_stored(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    with pytest.raises(SnapshotNotFound, match="'nope'"):
        workspace.snapshots.create(frame, "train", parents=["nope"])

    assert workspace.snapshots.list() == []


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return completed.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one commit, isolated from the user's git configuration."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "tester@example.com")
    git(root, "config", "user.name", "Tester")
    git(root, "config", "commit.gpgsign", "false")
    (root / "prepare.py").write_text("print('prepare')\n", encoding="utf-8")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_the_producing_code_version_is_recorded(
    workspace: Workspace, frame: pd.DataFrame, repo: Path
) -> None:
    (repo / "prepare.py").write_text("print('changed')\n", encoding="utf-8")

    created = workspace.snapshots.create(frame, "train", code_dir=repo)

    assert created.lineage["code"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert len(created.lineage["code"]["dirty_hash"]) == 64


# -- finding ---------------------------------------------------------------------------------------


def test_get_by_name_returns_the_newest(workspace: Workspace, frame: pd.DataFrame) -> None:
    workspace.snapshots.create(frame, "train")
    newer = workspace.snapshots.create(frame.head(100), "train")

    assert workspace.snapshots.get("train") == newer


def test_get_by_fingerprint_prefix(workspace: Workspace, frame: pd.DataFrame) -> None:
    created = workspace.snapshots.create(frame, "train")

    assert workspace.snapshots.get(created.fingerprint[:8]) == created


def test_a_prefix_shorter_than_eight_characters_is_not_a_reference(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")

    with pytest.raises(SnapshotNotFound):
        workspace.snapshots.get(created.fingerprint[:7])


def test_an_unknown_reference_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(SnapshotNotFound, match="'deadbeefdeadbeef'"):
        workspace.snapshots.get("deadbeefdeadbeef")


def test_list_filters_by_name_newest_first(workspace: Workspace, frame: pd.DataFrame) -> None:
    old = workspace.snapshots.create(frame, "train")
    workspace.snapshots.create(frame.head(10), "test")
    new = workspace.snapshots.create(frame.head(100), "train")

    assert workspace.snapshots.list(name="train") == [new, old]


# -- reading ---------------------------------------------------------------------------------------


def test_loading_a_tampered_snapshot_is_refused(workspace: Workspace, frame: pd.DataFrame) -> None:
    created = workspace.snapshots.create(frame, "train")
    stored = artifact_file(workspace, created)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    with pytest.raises(ArtifactCorrupted):
        workspace.snapshots.load("train")


def test_the_path_of_a_tampered_snapshot_is_refused(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")
    with artifact_file(workspace, created).open("ab") as handle:
        handle.write(b"extra")

    with pytest.raises(ArtifactCorrupted):
        workspace.snapshots.path("train")


def test_duckdb_reads_the_snapshot_path(workspace: Workspace, frame: pd.DataFrame) -> None:
    workspace.snapshots.create(frame, "train")
    path = workspace.snapshots.path("train")

    count = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()

    assert count == (200,)


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_a_remote_artifact_store_gives_a_verified_local_copy(
    settings: Settings, frame: pd.DataFrame
) -> None:
    remote = settings.model_copy(update={"artifacts_url": f"memory://keel-{uuid.uuid4().hex}"})
    with Workspace(remote) as workspace:
        created = workspace.snapshots.create(frame, "train")

        path = workspace.snapshots.path(created)

    assert "://" not in path
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


# -- comparing -------------------------------------------------------------------------------------


def test_diff_reports_added_removed_and_retyped_columns(workspace: Workspace) -> None:
    a = workspace.snapshots.create(pd.DataFrame({"id": [1, 2], "age": [31, 45]}), "a")
    b = workspace.snapshots.create(pd.DataFrame({"id": [1.5, 2.0], "plan": ["x", "y"]}), "b")

    change = workspace.snapshots.diff("a", "b").schema

    assert [f.name for f in change.added] == ["plan"]
    assert [f.name for f in change.removed] == ["age"]
    assert [(old.dtype, new.dtype) for old, new in change.retyped] == [("int", "float")]
    assert (a.name, b.name) == ("a", "b")


def test_diff_reports_profile_changes_with_psi_against_the_reference_edges(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    shifted = frame.assign(income=frame["income"] + 20_000, plan="enterprise")
    workspace.snapshots.create(frame, "june")
    workspace.snapshots.create(shifted, "july")

    change = workspace.snapshots.diff("june", "july").profile

    income = change["income"]
    assert income.psi is not None
    assert income.psi > 1
    assert income.mean_shift_in_std == pytest.approx(2.0, rel=0.1)
    assert change["plan"].new_values == ["enterprise"]
    assert change["age"].psi == pytest.approx(0.0)


# -- runs and the top-level helper -----------------------------------------------------------------


def test_a_run_that_logs_a_snapshot_records_it_as_an_input(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    created = workspace.snapshots.create(frame, "train")
    with workspace.start_run() as run:
        returned = run.log_input(created, name="train")

    assert returned == created.fingerprint
    assert workspace.runs.get(run.id).inputs == {
        "train": {
            "fingerprint": created.fingerprint,
            "source": "snapshot:train",
            "num_rows": 200,
            "columns": ["age", "income", "plan", "churned"],
        }
    }


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_keel_snapshot_uses_the_project_of_the_current_directory(
    settings: Settings, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = settings.project_dir
    (project / "keel.toml").write_text(
        f'metadata_url = "{settings.metadata_url}"\nartifacts_url = "{settings.artifacts_url}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(project)

    created = keel.snapshot(frame, name="train")

    with Workspace(settings) as workspace:
        assert workspace.snapshots.get("train") == created
