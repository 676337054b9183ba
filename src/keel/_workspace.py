"""The composition root: every keel object is built here, from one Settings."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from keel.artifacts import ArtifactStore
from keel.config import Settings
from keel.data._snapshot import SnapshotStore
from keel.features._store import FeatureStore
from keel.flavors import LoadedModel
from keel.registry import Registry
from keel.serving import DeploymentStore
from keel.serving._keys import KeyStore
from keel.store import MetadataStore
from keel.tracking import Run, RunQueries


class Workspace:
    """A keel project: its metadata database, artifact store, snapshots, runs and registry.

        with keel.open_workspace() as ws:              # keel.toml in the current directory
            train = ws.snapshots.create("data/train.parquet", name="churn-train")
            with ws.start_run(experiment="churn") as run:
                run.log_input(train)
                ...
            ws.registry.load("models:/churn@champion")

    Opening migrates the metadata schema to the newest version when needed.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = MetadataStore(settings.resolved_metadata_url())
        try:
            self.store.migrate()
            self.artifacts = ArtifactStore(settings.resolved_artifacts_url())
        except BaseException:
            self.store.close()
            raise
        self.runs = RunQueries(self.store)
        self.registry = Registry(self.store, self.artifacts, settings.registry, settings.actor)
        self.deployments = DeploymentStore(self.store, self.registry, settings.actor)
        self.keys = KeyStore(self.store, settings.actor)
        self.snapshots = SnapshotStore(
            self.store, self.artifacts, settings.actor, code_dir=settings.project_dir
        )
        self.features = FeatureStore(
            settings.features,
            definitions_path=settings.project_path(settings.features.definitions),
            online_url=settings.resolved_online_url(),
            lookup_log_dir=settings.project_path(settings.features.lookup_log_dir),
            metadata=self.store,
            actor=settings.actor,
            resolve_snapshot=self.snapshots.path,
        )

    def start_run(
        self,
        experiment: str = "default",
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        seed: int | None = None,
        code_dir: str | Path | None = None,
    ) -> Run:
        """Start a run (use it as a context manager). ``seed`` seeds Python's and NumPy's global
        generators; without one a seed is drawn, applied and recorded, so every run can be
        replayed. ``code_dir`` is where the git commit is read (default: the project dir)."""
        run = Run(
            self.store,
            self.artifacts,
            self.settings.tracking,
            experiment=experiment,
            name=name,
            actor=self.settings.actor,
            seed=seed,
            code_dir=Path(code_dir) if code_dir is not None else self.settings.project_dir,
        )
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        return run

    def load_model(self, uri: str) -> LoadedModel:
        return self.registry.load(uri)

    def close(self) -> None:
        self.features.close()
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_workspace(project_dir: str | Path | None = None, **overrides: Any) -> Workspace:
    """Read settings (keel.toml + KEEL_* + ``overrides``) and open the project's workspace."""
    return Workspace(Settings.load(project_dir, **overrides))
