"""What a version registered from a run takes from it: the logged model and its lineage."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel._packaging import Signature
from keel.artifacts import ArtifactRef
from keel.errors import KeelError, RegistryError, RunNotFound
from keel.store import _tables as t
from keel.tracking import LoggedModel


def logged_model(connection: Connection, uri: str) -> LoggedModel:
    """The model a run logged, from a ``runs:/RUN_ID/NAME`` URI."""
    if not uri.startswith("runs:/") or uri.count("/") < 2:
        raise RegistryError(f"'{uri}' is not a run artifact URI; use runs:/RUN_ID/NAME")
    run_id, _, artifact_name = uri.removeprefix("runs:/").partition("/")
    row = connection.execute(
        sa.select(t.run_artifacts, t.artifacts.c.size)
        .join(t.artifacts, t.artifacts.c.digest == t.run_artifacts.c.digest)
        .where(t.run_artifacts.c.run_id == run_id, t.run_artifacts.c.name == artifact_name)
    ).first()
    if row is None:
        raise _missing_run_model(connection, run_id, artifact_name)
    if row.kind != "model":
        raise RegistryError(f"'{uri}' is a file, not a model logged with run.log_model")
    details = row.details or {}
    return LoggedModel(
        run_id=run_id,
        name=artifact_name,
        flavor=details["flavor"],
        artifact=ArtifactRef(row.digest, row.size),
        library_versions=details["library_versions"],
        signature=Signature.from_dict(details["signature"]),
    )


def _missing_run_model(connection: Connection, run_id: str, artifact_name: str) -> KeelError:
    if connection.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first() is None:
        return RunNotFound(run_id)
    models = connection.execute(
        sa.select(t.run_artifacts.c.name).where(
            t.run_artifacts.c.run_id == run_id, t.run_artifacts.c.kind == "model"
        )
    ).scalars()
    logged = ", ".join(sorted(models)) or "none"
    return RegistryError(
        f"run {run_id} has no model named '{artifact_name}' (its models: {logged})"
    )


def run_lineage(
    connection: Connection, run_id: str
) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """A run's last metric values, its params and the fingerprints of its inputs."""

    def pairs(key: sa.Column[str], value: sa.Column[object], table: sa.Table) -> dict[str, object]:
        return dict(connection.execute(sa.select(key, value).where(table.c.run_id == run_id)).all())

    metrics = pairs(t.run_latest_metrics.c.key, t.run_latest_metrics.c.value, t.run_latest_metrics)
    params = pairs(t.run_params.c.key, t.run_params.c.value, t.run_params)
    inputs = pairs(t.run_inputs.c.name, t.run_inputs.c.fingerprint, t.run_inputs)
    return (
        {k: float(v) for k, v in metrics.items()},  # type: ignore[arg-type]
        {k: str(v) for k, v in params.items()},
        {k: str(v) for k, v in inputs.items()},
    )
