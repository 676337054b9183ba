"""SQL shared by the registry's operations: reading versions, locking, auditing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from keel._packaging import Signature
from keel.errors import KeelError, ModelNotFound, ModelVersionNotFound, SchemaError
from keel.registry._models import ModelVersion
from keel.store import _tables as t
from keel.store import now


def get_version(connection: Connection, name: str, version: int) -> ModelVersion:
    """One version with its aliases; ModelNotFound / ModelVersionNotFound otherwise."""
    row = connection.execute(
        versions_query().where(
            t.model_versions.c.name == name, t.model_versions.c.version == version
        )
    ).first()
    if row is None:
        require_model(connection, name)
        raise ModelVersionNotFound(name, version)
    return version_from_row(row, aliases_by_model(connection, name).get(name, {}))


def require_model(connection: Connection, name: str) -> None:
    """Raise ModelNotFound unless ``name`` is registered."""
    exists = connection.execute(
        sa.select(t.registered_models.c.name).where(t.registered_models.c.name == name)
    ).first()
    if exists is None:
        raise ModelNotFound(name)


def lock_model(connection: Connection, name: str) -> None:
    """Lock the model's row until the transaction ends, so read-check-write changes to its
    versions and aliases (transitions, compare-and-set alias moves) are serialised. PostgreSQL
    takes a row lock; on SQLite the write transaction (BEGIN IMMEDIATE) already serialises."""
    found = connection.execute(
        sa.select(t.registered_models.c.name)
        .where(t.registered_models.c.name == name)
        .with_for_update()
    ).first()
    if found is None:
        raise ModelNotFound(name)


def audit(
    connection: Connection,
    actor: str,
    entity: str,
    key: str,
    action: str,
    from_value: str | None,
    to_value: str | None,
    reason: str | None,
) -> None:
    connection.execute(
        t.audit_log.insert().values(
            at=now(),
            actor=actor,
            entity=entity,
            entity_key=key,
            action=action,
            from_value=from_value,
            to_value=to_value,
            reason=reason,
        )
    )


def versions_query() -> sa.Select[Any]:
    return sa.select(t.model_versions, t.artifacts.c.size.label("artifact_size")).join(
        t.artifacts, t.artifacts.c.digest == t.model_versions.c.artifact_digest
    )


def aliases_by_model(connection: Connection, name: str | None = None) -> dict[str, dict[str, int]]:
    query = sa.select(
        t.model_aliases.c.name, t.model_aliases.c.alias, t.model_aliases.c.version
    ).order_by(t.model_aliases.c.alias)
    if name is not None:
        query = query.where(t.model_aliases.c.name == name)
    aliases: dict[str, dict[str, int]] = {}
    for row in connection.execute(query):
        aliases.setdefault(row.name, {})[row.alias] = row.version
    return aliases


def version_from_row(row: Row[Any], aliases: dict[str, int]) -> ModelVersion:
    try:
        signature = Signature.from_dict(row.signature)
    except (KeyError, ValueError, TypeError, SchemaError) as error:
        raise KeelError(
            f"model '{row.name}' version {row.version} has an unreadable signature: {error}"
        ) from error
    return ModelVersion(
        name=row.name,
        version=row.version,
        semver=row.semver,
        status=row.status,
        flavor=row.flavor,
        artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size,
        library_versions=row.library_versions,
        signature=signature,
        metrics=row.metrics,
        params=row.params,
        run_id=row.run_id,
        inputs=row.inputs,
        description=row.description,
        card_notes=row.card_notes,
        created_at=row.created_at,
        created_by=row.created_by,
        aliases=sorted(alias for alias, v in aliases.items() if v == row.version),
        features=row.features or [],
    )


def update_version(connection: Connection, name: str, version: int, **values: Any) -> None:
    connection.execute(
        t.model_versions.update()
        .where(t.model_versions.c.name == name, t.model_versions.c.version == version)
        .values(**values)
    )


def serving_endpoints(connection: Connection, name: str, version: int) -> list[str]:
    """Endpoints whose current deployment revision serves ``name`` version ``version`` in any
    role (primary, shadow, arm, fallback)."""
    from keel.serving._policy import TrafficPolicy  # the registry must not import serving early

    rows = connection.execute(
        sa.select(t.endpoints.c.name, t.deployment_revisions.c.policy).join(
            t.deployment_revisions,
            sa.and_(
                t.deployment_revisions.c.endpoint == t.endpoints.c.name,
                t.deployment_revisions.c.revision == t.endpoints.c.current_revision,
            ),
        )
    ).all()
    return sorted(
        row.name
        for row in rows
        if any(
            (m.name, m.version) == (name, version)
            for m in TrafficPolicy.from_dict(row.policy).models()
        )
    )
