"""Files and models a run logs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.errors import ArtifactError, KeelError

# -- files -----------------------------------------------------------------------------------------


def test_log_artifact_stores_the_file_and_the_run_lists_it_with_its_digest(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"fold,auc\n1,0.91\n")
    with workspace.start_run() as run:
        ref = run.log_artifact(path)

    record = workspace.runs.get(run.id)

    assert record.artifacts == {"report.csv": {"digest": ref.digest, "kind": "file"}}
    assert workspace.artifacts.get_bytes(ref.digest, size=ref.size) == path.read_bytes()


def test_log_artifact_lists_the_file_under_the_name_given(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"x")
    with workspace.start_run() as run:
        run.log_artifact(path, name="reports/fold-1.csv")

    assert list(workspace.runs.get(run.id).artifacts) == ["reports/fold-1.csv"]


def test_artifact_digest_is_the_sha256_of_the_content_and_size_its_length(
    workspace: Workspace, tmp_path: Path
) -> None:
    content = bytes(range(256)) * 300
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    with workspace.start_run() as run:
        ref = run.log_artifact(path)

    assert (ref.digest, ref.size) == (hashlib.sha256(content).hexdigest(), len(content))


def test_log_bytes_stores_the_bytes_under_the_name_given(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        ref = run.log_bytes("notes.txt", b"converged after 40 epochs")

    record = workspace.runs.get(run.id)

    assert ref.digest == hashlib.sha256(b"converged after 40 epochs").hexdigest()
    assert record.artifacts == {"notes.txt": {"digest": ref.digest, "kind": "file"}}
    assert workspace.artifacts.get_bytes(ref.digest) == b"converged after 40 epochs"


def test_logging_a_name_again_points_it_at_the_new_content(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_bytes("notes.txt", b"draft")
        second = run.log_bytes("notes.txt", b"final")

    assert workspace.runs.get(run.id).artifacts["notes.txt"]["digest"] == second.digest


def test_two_runs_logging_the_same_bytes_share_one_artifact(workspace: Workspace) -> None:
    with workspace.start_run() as first:
        a = first.log_bytes("weights.bin", b"\x00\x01")
    with workspace.start_run() as second:
        b = second.log_bytes("copy.bin", b"\x00\x01")

    assert a == b
    assert workspace.runs.get(second.id).artifacts["copy.bin"]["digest"] == a.digest


def test_log_artifact_of_a_missing_file_raises_a_keel_error_and_lists_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    with workspace.start_run() as run, pytest.raises(ArtifactError, match="missing.csv"):
        run.log_artifact(tmp_path / "missing.csv")

    assert workspace.runs.get(run.id).artifacts == {}


# -- models ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_model() -> tuple[LogisticRegression, pd.DataFrame]:
    features, target = load_iris(as_frame=True, return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, target)
    return model, features


def test_log_model_records_a_model_artifact_with_flavor_and_signature(
    workspace: Workspace, iris_model: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, features = iris_model
    with workspace.start_run() as run:
        logged = run.log_model(model, input_example=features)

    artifact = workspace.runs.get(run.id).artifacts["model"]

    assert artifact["kind"] == "model"
    assert artifact["digest"] == logged.artifact.digest
    assert artifact["flavor"] == "sklearn"
    assert artifact["library_versions"]["scikit-learn"] == logged.library_versions["scikit-learn"]
    inputs = artifact["signature"]["inputs"]["fields"]
    assert [field["name"] for field in inputs] == list(features.columns)
    assert artifact["signature"]["output"]["task"] == "classification"
    assert artifact["signature"]["output"]["classes"] == [0, 1, 2]


def test_logged_model_describes_itself_and_its_uri(
    workspace: Workspace, iris_model: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, features = iris_model
    with workspace.start_run() as run:
        logged = run.log_model(model, input_example=features, name="clf")

    assert (logged.run_id, logged.name, logged.flavor) == (run.id, "clf", "sklearn")
    assert logged.uri == f"runs:/{run.id}/clf"
    assert logged.signature.output["classes"] == [0, 1, 2]


def test_logged_model_bytes_are_stored_under_their_digest(
    workspace: Workspace, iris_model: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, features = iris_model
    with workspace.start_run() as run:
        logged = run.log_model(model, input_example=features)

    data = workspace.artifacts.get_bytes(logged.artifact.digest, size=logged.artifact.size)

    assert hashlib.sha256(data).hexdigest() == logged.artifact.digest


def test_log_model_with_an_empty_input_example_raises_keel_error(
    workspace: Workspace, iris_model: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, features = iris_model
    with workspace.start_run() as run, pytest.raises(KeelError, match="input_example"):
        run.log_model(model, input_example=features.head(0))

    assert workspace.runs.get(run.id).artifacts == {}
