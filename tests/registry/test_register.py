"""Registering versions: numbering, what each version records, semantic versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from keel import Workspace
from keel.errors import KeelError, ModelNotFound, ModelVersionNotFound, RegistryError, RunNotFound
from keel.store import _tables as t


def test_versions_are_numbered_from_one_per_model(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    frame, _ = iris
    registry = workspace.registry
    numbers = [registry.register("a", iris_model, input_example=frame).version for _ in range(3)]
    other = registry.register("b", iris_model, input_example=frame).version
    assert numbers == [1, 2, 3]
    assert other == 1


def test_a_version_registered_from_a_run_carries_its_lineage(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    frame, target = iris
    with workspace.start_run(experiment="iris", params={"C": 1.0}) as run:
        fingerprint = run.log_input(frame, name="train")
        run.log_metric("accuracy", 0.5, step=0)
        run.log_metric("accuracy", float(iris_model.score(frame, target)), step=1)
        logged = run.log_model(iris_model, input_example=frame)
    version = workspace.registry.register("iris", logged, description="first try")
    assert version.run_id == run.id
    assert version.inputs == {"train": fingerprint}
    assert version.metrics == {"accuracy": pytest.approx(iris_model.score(frame, target))}
    assert version.params == {"C": "1.0"}
    assert version.artifact_digest == logged.artifact.digest
    assert version.flavor == "sklearn"
    assert version.status == "candidate"
    assert version.created_by == "tester"
    assert version.description == "first try"
    assert any(line.startswith("scikit-learn==") for line in version.requirements)


def test_a_run_artifact_uri_registers_the_logged_model(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    frame, _ = iris
    with workspace.start_run() as run:
        logged = run.log_model(iris_model, input_example=frame, name="clf")
    version = workspace.registry.register("iris", f"runs:/{run.id}/clf")
    assert version.artifact_digest == logged.artifact.digest
    assert version.run_id == run.id


def test_an_unknown_run_artifact_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(RunNotFound):
        workspace.registry.register("iris", "runs:/0123456789abcdef/model")


def test_a_file_artifact_cannot_be_registered_as_a_model(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_bytes("notes.txt", b"hello")
    with pytest.raises(RegistryError, match="is a file, not a model"):
        workspace.registry.register("iris", f"runs:/{run.id}/notes.txt")


def test_the_signature_is_inferred_from_the_training_frame(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    frame, _ = iris
    version = workspace.registry.register("iris", iris_model, input_example=frame)
    inputs = version.signature.inputs
    assert inputs.names == list(frame.columns)
    assert {f.dtype for f in inputs.fields} == {"float"}
    assert version.signature.output["task"] == "classification"
    assert version.signature.output["classes"] == [0, 1, 2]


def test_a_regressor_signature_has_no_classes(workspace: Workspace) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "n": np.arange(20)})
    model = LinearRegression().fit(frame, frame["x"] * 2)
    version = workspace.registry.register("reg", model, input_example=frame)
    assert version.signature.output == {
        "dtype": "float",
        "task": "regression",
        "classes": None,
        "shape": [],
    }


def test_registering_a_model_object_needs_an_input_example(
    workspace: Workspace, iris_model: LogisticRegression
) -> None:
    with pytest.raises(RegistryError, match="input_example"):
        workspace.registry.register("iris", iris_model)


def test_an_input_example_the_model_cannot_score_is_refused(
    workspace: Workspace, iris_model: LogisticRegression
) -> None:
    with pytest.raises(KeelError, match="failed to predict on its input example"):
        workspace.registry.register("iris", iris_model, input_example=pd.DataFrame({"q": [1.0]}))
    assert workspace.registry.list_models() == []


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "@alias", "-lead"])
def test_an_invalid_model_name_is_refused(
    workspace: Workspace,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
    name: str,
) -> None:
    with pytest.raises(RegistryError, match="not a valid model name"):
        workspace.registry.register(name, iris_model, input_example=iris[0])


def test_unknown_models_and_versions_are_named(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    with pytest.raises(ModelNotFound, match="'ghost'"):
        workspace.registry.get_version("ghost", 1)
    workspace.registry.register("iris", iris_model, input_example=iris[0])
    with pytest.raises(ModelVersionNotFound, match="'iris' has no version 7"):
        workspace.registry.get_version("iris", 7)
    with pytest.raises(ModelNotFound):
        workspace.registry.list_versions("ghost")


def test_list_models_reports_latest_version_and_aliases(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    registry = workspace.registry
    registry.register("iris", iris_model, input_example=iris[0])
    registry.register("iris", iris_model, input_example=iris[0])
    registry.set_alias("iris", "champion", 1)
    [model] = registry.list_models()
    assert (model.name, model.latest_version, model.aliases) == ("iris", 2, {"champion": 1})
    assert [v.version for v in registry.list_versions("iris")] == [1, 2]


# -- semantic versions -----------------------------------------------------------------------------


def test_semantic_versions_follow_what_changed(
    workspace: Workspace,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
    other_iris_model: LogisticRegression,
) -> None:
    frame, target = iris
    registry = workspace.registry
    first = registry.register("iris", iris_model, input_example=frame)
    same_bytes = registry.register("iris", iris_model, input_example=frame, description="docs")
    retrained = registry.register("iris", other_iris_model, input_example=frame)
    narrower = frame.drop(columns=[frame.columns[0]])
    changed = registry.register(
        "iris", LogisticRegression(max_iter=300).fit(narrower, target), input_example=narrower
    )
    assert [first.semver, same_bytes.semver, retrained.semver, changed.semver] == [
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    reasons = [entry.reason for entry in registry.audit_log("iris") if entry.action == "register"]
    assert reasons[0] == "first version"
    assert "removed column 'sepal length (cm)'" in str(reasons[3])


def test_an_added_optional_column_is_a_compatible_change(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    frame, target = iris
    registry = workspace.registry
    registry.register(
        "iris", LogisticRegression(max_iter=300).fit(frame, target), input_example=frame
    )
    wider = frame.assign(extra=np.where(np.arange(len(frame)) % 2, 1.0, np.nan)).fillna(
        {"extra": 0}
    )
    wider.loc[0, "extra"] = np.nan
    model = LogisticRegression(max_iter=300).fit(wider.fillna(0), target)

    class Imputing:
        """Accepts the optional column with nulls."""

        def __init__(self, inner: LogisticRegression) -> None:
            self.inner = inner
            self.classes_ = inner.classes_

        def predict(self, x: pd.DataFrame) -> np.ndarray:
            return self.inner.predict(x.fillna(0))

    version = registry.register("iris", Imputing(model), input_example=wider)
    assert version.signature.inputs.field("extra").nullable
    assert version.semver == "1.1.0"


def test_a_run_without_that_model_names_the_models_it_has(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    with workspace.start_run() as run:
        run.log_model(iris_model, input_example=iris[0], name="clf")
    with pytest.raises(RegistryError, match=f"run {run.id} has no model named 'model'.*clf"):
        workspace.registry.register("iris", f"runs:/{run.id}/model")


def test_the_audit_log_of_an_unknown_model_or_version_is_an_error(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    with pytest.raises(ModelNotFound):
        workspace.registry.audit_log("ghost")
    workspace.registry.register("iris", iris_model, input_example=iris[0])
    with pytest.raises(ModelVersionNotFound):
        workspace.registry.audit_log("iris", 5)


@pytest.mark.parametrize(
    "signature",
    [
        {"output": {}},  # no inputs: a KeyError
        {"inputs": {"fields": [{"name": "x", "dtype": "complex"}]}, "output": {}},  # SchemaError
    ],
)
def test_an_unreadable_stored_signature_names_the_version(
    workspace: Workspace,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
    signature: dict[str, object],
) -> None:
    workspace.registry.register("iris", iris_model, input_example=iris[0])
    with workspace.store.write() as connection:
        connection.execute(
            t.model_versions.update()
            .where(t.model_versions.c.name == "iris")
            .values(signature=signature)
        )
    with pytest.raises(KeelError, match="model 'iris' version 1 has an unreadable signature"):
        workspace.registry.get_version("iris", 1)
