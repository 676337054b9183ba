"""Loading by URI verifies the artifact before deserialising it; cards and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace, load_export
from keel.errors import ArtifactCorrupted, ArtifactNotFound, KeelError, SchemaMismatch
from keel.flavors import KeelVersionWarning
from keel.store import _tables as t


@pytest.fixture
def champion(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> str:
    with workspace.start_run(experiment="iris", params={"C": 1.0}) as run:
        run.log_input(iris[0], name="train")
        run.log_metric("accuracy", 0.97)
        logged = run.log_model(iris_model, input_example=iris[0])
    version = workspace.registry.register("iris", logged, description="Iris species.")
    workspace.registry.set_alias("iris", "champion", version.version)
    return "models:/iris@champion"


def test_a_model_loads_by_alias_and_predicts_like_the_original(
    workspace: Workspace,
    champion: str,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
) -> None:
    loaded = workspace.registry.load(champion)
    frame = iris[0]
    np.testing.assert_array_equal(loaded.predict(frame), iris_model.predict(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), iris_model.predict_proba(frame))  # type: ignore[arg-type]


def _artifact_file(workspace: Workspace, uri: str) -> Path:
    version = workspace.registry.resolve(uri)
    return Path(workspace.artifacts.location(version.artifact_digest))


def test_a_tampered_artifact_is_refused_before_unpickling(
    workspace: Workspace, champion: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = (
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    )  # a pickle that runs a shell command when loaded
    _artifact_file(workspace, champion).write_bytes(evil)
    with pytest.raises(ArtifactCorrupted, match="failed its integrity check"):
        workspace.registry.load(champion)
    assert not marker.exists()


def test_a_truncated_artifact_is_refused(workspace: Workspace, champion: str) -> None:
    path = _artifact_file(workspace, champion)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactCorrupted, match="size is"):
        workspace.registry.load(champion)


def test_a_deleted_artifact_is_reported_missing(workspace: Workspace, champion: str) -> None:
    _artifact_file(workspace, champion).unlink()
    with pytest.raises(ArtifactNotFound):
        workspace.registry.load(champion)


def test_loading_under_other_library_versions_warns_with_both(
    workspace: Workspace, champion: str
) -> None:
    version = workspace.registry.resolve(champion)
    with workspace.store.write() as connection:
        connection.execute(
            t.model_versions.update()
            .where(t.model_versions.c.name == "iris")
            .values(library_versions={**version.library_versions, "scikit-learn": "0.0.1"})
        )
    with pytest.warns(KeelVersionWarning, match=r"scikit-learn==0\.0\.1 but scikit-learn==\d"):
        workspace.registry.load(champion)


def test_the_model_card_is_generated_from_the_metadata(workspace: Workspace, champion: str) -> None:
    version = workspace.registry.resolve(champion)
    card = workspace.registry.card(champion)
    assert card.startswith("# iris — version 1 (1.0.0)")
    assert "Iris species." in card
    assert "`champion`" in card
    assert "| petal width (cm) | float | no |" in card
    assert "| accuracy | 0.97 |" in card
    assert version.run_id is not None
    assert version.run_id in card
    assert version.inputs["train"] in card
    assert "scikit-learn==" in card
    assert "register ∅ → candidate 1.0.0" in card


def test_card_notes_are_kept_and_audited(workspace: Workspace, champion: str) -> None:
    workspace.registry.set_card_notes("iris", 1, "Not for clinical use.\n\nOnly three species.")
    card = workspace.registry.card(champion)
    assert card.rstrip().endswith("Not for clinical use.\n\nOnly three species.")
    assert workspace.registry.audit_log("iris", 1)[-1].action == "edit_card"


def test_export_writes_a_self_contained_directory_that_loads(
    workspace: Workspace, champion: str, tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    target = workspace.registry.export(champion, tmp_path / "export")
    assert sorted(p.name for p in target.iterdir()) == [
        "MODEL_CARD.md",
        "keel-model.json",
        "model.bin",
        "requirements.txt",
        "signature.json",
    ]
    requirements = (target / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("scikit-learn==") for line in requirements)
    signature = json.loads((target / "signature.json").read_text())
    assert [f["name"] for f in signature["inputs"]["fields"]] == list(iris[0].columns)
    metadata = json.loads((target / "keel-model.json").read_text())
    assert (metadata["name"], metadata["version"], metadata["aliases"]) == ("iris", 1, ["champion"])
    loaded = load_export(target)
    assert list(loaded.predict(iris[0].head(3))) == list(
        workspace.registry.load(champion).predict(iris[0].head(3))
    )


def test_a_tampered_export_is_refused(workspace: Workspace, champion: str, tmp_path: Path) -> None:
    target = workspace.registry.export(champion, tmp_path / "export")
    (target / "model.bin").write_bytes(b"garbage")
    with pytest.raises(ArtifactCorrupted):
        load_export(target)


def test_export_refuses_a_non_empty_directory_without_force(
    workspace: Workspace, champion: str, tmp_path: Path
) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "keep.txt").write_text("mine")
    with pytest.raises(KeelError, match="not empty; pass --force"):
        workspace.registry.export(champion, tmp_path / "export")
    workspace.registry.export(champion, tmp_path / "export", force=True)
    assert (tmp_path / "export" / "model.bin").exists()


def test_scoring_data_that_no_longer_matches_the_signature_is_refused_with_the_list(
    workspace: Workspace, champion: str, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    frame = iris[0].drop(columns=["petal width (cm)"])
    frame["sepal length (cm)"] = frame["sepal length (cm)"].astype(str)
    model = workspace.registry.load(champion)
    with pytest.raises(SchemaMismatch) as caught:
        model.predict(frame)
    assert caught.value.problems == [
        "missing column 'petal width (cm)' (float)",
        "column 'sepal length (cm)' changed type string -> float",
    ]
    assert "input of models:/iris/1 does not match" in str(caught.value)


def test_extra_and_reordered_columns_are_fitted_to_the_signature(
    workspace: Workspace,
    champion: str,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
) -> None:
    frame = iris[0]
    shuffled = frame[list(reversed(frame.columns))].assign(request_id=range(len(frame)))
    predictions = workspace.registry.load(champion).predict(shuffled)
    np.testing.assert_array_equal(predictions, iris_model.predict(frame))
