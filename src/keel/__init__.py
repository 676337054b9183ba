"""keel: the whole production loop of a machine-learning model in one package."""

from __future__ import annotations

from typing import Any

from keel._packaging import Signature
from keel._workspace import Workspace, open_workspace
from keel.config import Settings
from keel.data import Field, Schema, validate
from keel.data._snapshot import Data, Snapshot
from keel.errors import KeelError
from keel.features import Entity, FeatureStore, FeatureView, OnDemandFeature
from keel.flavors import LoadedModel
from keel.registry import ModelVersion, Registry, load_export
from keel.tracking import LoggedModel, Run, RunRecord

__version__ = "0.1.0"

__all__ = [
    "Entity",
    "FeatureStore",
    "FeatureView",
    "Field",
    "KeelError",
    "LoadedModel",
    "LoggedModel",
    "ModelVersion",
    "OnDemandFeature",
    "Registry",
    "Run",
    "RunRecord",
    "Schema",
    "Settings",
    "Signature",
    "Snapshot",
    "Workspace",
    "__version__",
    "load_export",
    "load_model",
    "open_workspace",
    "snapshot",
    "start_run",
    "validate",
]


def start_run(experiment: str = "default", name: str | None = None, **kwargs: Any) -> Run:
    """Start a run in the project of the current directory (keel.toml + KEEL_* settings).

        with keel.start_run(experiment="churn") as run:
            run.log_metric("auc", 0.91)

    The workspace opened for it is closed when the run ends. To share one workspace between
    several runs, use ``keel.open_workspace().start_run(...)``.
    """
    workspace = open_workspace()
    try:
        run = workspace.start_run(experiment, name, **kwargs)
    except BaseException:
        workspace.close()
        raise
    run.on_end(workspace.close)
    return run


def load_model(uri: str) -> LoadedModel:
    """Load ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` from the current project."""
    with open_workspace() as workspace:
        return workspace.registry.load(uri)


def snapshot(data: Data, name: str, **kwargs: Any) -> Snapshot:
    """Snapshot a DataFrame, an Arrow table or a Parquet/CSV path in the project of the
    current directory (``parents``, ``sources`` and ``code_dir`` as for
    ``Workspace.snapshots.create``).

        train = keel.snapshot("data/train.parquet", name="churn-train")
        train.fingerprint, train.profile["age"].histogram
    """
    with open_workspace() as workspace:
        return workspace.snapshots.create(data, name, **kwargs)
