"""What a deployment is made of, and how it is read from the metadata store: :class:`Revision`
and :class:`Endpoint` (re-exported by :mod:`keel.serving._deployments`, whose store writes them),
and the row helpers its transactions share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from keel.errors import (
    DeploymentError,
    EndpointNotFound,
    InvalidPolicy,
    ModelVersionNotFound,
    RevisionNotFound,
)
from keel.registry import ARCHIVED
from keel.registry._rows import lock_model
from keel.serving._policy import TrafficPolicy
from keel.store import _tables as t

# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One numbered, immutable state of an endpoint's deployment."""

    endpoint: str
    number: int
    policy: TrafficPolicy
    action: str
    """How it was made: create, set, rollback, or follow (an alias it was set from moved)."""
    created_at: float
    created_by: str
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "number": self.number,
            "action": self.action,
            "policy": self.policy.to_dict(),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Endpoint:
    """A named endpoint and its live revision."""

    name: str
    description: str | None
    created_at: float
    created_by: str
    revision: Revision

    @property
    def policy(self) -> TrafficPolicy:
        return self.revision.policy

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revision": self.revision.to_dict(),
        }


def lock_current(connection: Connection, name: str) -> Revision:
    """The live revision, with the endpoint's row locked until the transaction ends (on SQLite
    the write transaction, begun IMMEDIATE, already serialises writers)."""
    current = connection.execute(
        sa.select(t.endpoints.c.current_revision)
        .where(t.endpoints.c.name == name)
        .with_for_update()
    ).scalar()
    if current is None:
        raise EndpointNotFound(name)
    return read_revision(connection, name, current, current)


def require_endpoint(connection: Connection, name: str) -> int:
    current = connection.execute(
        sa.select(t.endpoints.c.current_revision).where(t.endpoints.c.name == name)
    ).scalar()
    if current is None:
        raise EndpointNotFound(name)
    return int(current)


def read_revision(connection: Connection, name: str, number: int, current: int) -> Revision:
    revisions = t.deployment_revisions
    row = connection.execute(
        sa.select(revisions).where(revisions.c.endpoint == name, revisions.c.revision == number)
    ).first()
    if row is None:
        raise RevisionNotFound(name, number, current)
    return revision_from_row(row)


def check_servable(
    connection: Connection, policy: TrafficPolicy, previous: TrafficPolicy | None
) -> None:
    """Refuse archived versions among those the change starts serving (their models' rows are
    locked, in name order so two changes cannot deadlock, so none is archived meanwhile), and
    feature lookups for a primary version trained without the feature store."""
    already = {(m.name, m.version) for m in previous.models()} if previous else set()
    new = sorted({(m.name, m.version) for m in policy.models()} - already)
    versions = t.model_versions
    for name, version in new:
        lock_model(connection, name)
        status = connection.execute(
            sa.select(versions.c.status).where(
                versions.c.name == name, versions.c.version == version
            )
        ).scalar()
        if status is None:
            raise ModelVersionNotFound(name, version)
        if status == ARCHIVED:
            raise DeploymentError(
                f"model '{name}' version {version} is archived and cannot be served: restore "
                f"it to candidate (`keel models transition {name} {version} candidate`) or "
                "pick another version"
            )
    primary = policy.primary
    if policy.features and (
        previous is None or (previous.primary, previous.features) != (primary, True)
    ):
        lineage = connection.execute(
            sa.select(versions.c.features).where(
                versions.c.name == primary.name, versions.c.version == primary.version
            )
        ).scalar()
        if not lineage:
            raise InvalidPolicy(
                "features",
                f"cannot be on: {primary.pinned_uri} records no feature-store features it was "
                "trained on, so there is nothing to look up for its requests",
            )


def endpoints_query() -> sa.Select[Any]:
    endpoints, revisions = t.endpoints, t.deployment_revisions
    return sa.select(
        endpoints.c.name,
        endpoints.c.description,
        endpoints.c.created_at.label("endpoint_created_at"),
        endpoints.c.created_by.label("endpoint_created_by"),
        revisions,
    ).join(
        revisions,
        sa.and_(
            revisions.c.endpoint == endpoints.c.name,
            revisions.c.revision == endpoints.c.current_revision,
        ),
    )


def endpoint_from_row(row: Row[Any]) -> Endpoint:
    return Endpoint(
        name=row.name,
        description=row.description,
        created_at=row.endpoint_created_at,
        created_by=row.endpoint_created_by,
        revision=revision_from_row(row),
    )


def revision_from_row(row: Row[Any]) -> Revision:
    try:
        policy = TrafficPolicy.from_dict(row.policy)
    except InvalidPolicy as error:
        raise DeploymentError(
            f"endpoint '{row.endpoint}' revision {row.revision} has an unreadable policy "
            f"({error}); was it written by a newer keel?"
        ) from error
    return Revision(
        endpoint=row.endpoint,
        number=row.revision,
        policy=policy,
        action=row.action,
        created_at=row.created_at,
        created_by=row.created_by,
        reason=row.reason,
    )
