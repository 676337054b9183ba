"""The CLI against real projects: a keel.toml pointing at each metadata backend in turn.

``keel`` invokes the command line in-process with ``--dir`` set to the project; ``workspace``
opens the same project through the Python API, to create what the commands then read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from keel import Workspace, open_workspace
from keel.cli import app


def write_config(directory: Path, metadata_url: str, artifacts: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "keel.toml"
    path.write_text(
        f'metadata_url = "{metadata_url}"\n'
        f'artifacts_url = "{artifacts}"\n'
        'actor = "tester"\n'
        "[tracking]\n"
        "capture_packages = false\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Keel:
    """``keel --dir PROJECT ...`` run in-process."""

    runner: CliRunner
    project: Path

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, ["--dir", str(self.project), *args])

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}{result.exception}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 1, nothing on stdout, and exactly one ``error:`` line on stderr."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(metadata_url: str, tmp_path: Path) -> Path:
    directory = tmp_path / "cli-project"
    write_config(directory, metadata_url, tmp_path / "cli-artifacts")
    return directory


@pytest.fixture
def keel(runner: CliRunner, project: Path) -> Keel:
    return Keel(runner, project)


@pytest.fixture
def workspace(project: Path) -> Iterator[Workspace]:
    with open_workspace(project) as ws:
        yield ws


@pytest.fixture(scope="session")
def training_data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    # standardised, so the solver converges in a few iterations
    features = pd.DataFrame({"age": rng.normal(0, 1, 60), "income": rng.normal(0, 1, 60)})
    target = pd.Series((features["age"] + rng.normal(0, 0.5, 60) > 0).astype(int), name="churn")
    return features, target


Data = tuple[pd.DataFrame, pd.Series]
# The "loss" curve train_run logs, scaled by C.
LOSS_CURVE = (0.9, 0.5, 0.3)


def train_run(workspace: Workspace, data: Data, c: float, experiment: str = "churn") -> str:
    """A finished run that logged a fitted classifier as ``model``; returns its id."""
    features, target = data
    with workspace.start_run(experiment, name=f"logreg-c{c}", seed=7) as run:
        run.log_params({"C": c, "solver": "lbfgs"})
        run.set_tag("team", "risk")
        run.log_input(features, name="train")
        model = LogisticRegression(C=c).fit(features, target)
        run.log_metric("accuracy", float(model.score(features, target)))
        for step, loss in enumerate(LOSS_CURVE):
            run.log_metric("loss", loss * c, step=step)
        run.log_model(model, input_example=features)
    return run.id


@pytest.fixture
def churn(workspace: Workspace, training_data: Data) -> str:
    """Model ``churn`` with two candidate versions registered from two runs."""
    for c in (1.0, 0.01):
        run_id = train_run(workspace, training_data, c)
        workspace.registry.register("churn", f"runs:/{run_id}/model")
    return "churn"


# For tests of formatting and argument parsing, which do not depend on the database.
sqlite_only = pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
