"""Feature definitions recorded in the metadata store, versioned by what they compute."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.errors import FeatureDefinitionError
from keel.features._definitions import FeatureCatalog, FeatureView
from keel.store import MetadataStore, now, upsert
from keel.store import _tables as t


@dataclass(frozen=True)
class ViewVersion:
    """One recorded version of a feature view."""

    name: str
    version: int
    definition_hash: str
    definition: dict[str, Any]
    created_at: float
    created_by: str


@dataclass(frozen=True)
class AppliedView:
    """What ``apply`` did with one view: kept its current version or added a new one."""

    name: str
    version: int
    created: bool


class FeatureRegistry:
    """Entities and feature-view versions in the metadata store.

    Applying a catalog records each entity and, for each view whose definition (features, TTL,
    source, keys, transformation code) differs from its latest recorded version, the next
    version; an unchanged view keeps its version, so applying is idempotent. Every change is
    written to the audit log.
    """

    def __init__(self, store: MetadataStore, actor: str) -> None:
        self._store = store
        self._actor = actor

    def apply(self, catalog: FeatureCatalog, *, actor: str | None = None) -> list[AppliedView]:
        who = actor or self._actor
        applied: list[AppliedView] = []
        with self._store.write() as connection:
            upsert(
                connection,
                t.feature_entities,
                [
                    {
                        "name": entity.name,
                        "join_keys": list(entity.join_keys),
                        "description": entity.description,
                        "updated_at": now(),
                    }
                    for entity in catalog.entities.values()
                ],
                update=["join_keys", "description", "updated_at"],
            )
            for view in catalog.views.values():
                applied.append(self._apply_view(connection, view, who))
        return applied

    def _apply_view(self, connection: Connection, view: FeatureView, actor: str) -> AppliedView:
        definition_hash = view.definition_hash()
        latest = connection.execute(
            sa.select(t.feature_views.c.version, t.feature_views.c.definition_hash)
            .where(t.feature_views.c.name == view.name)
            .order_by(t.feature_views.c.version.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if latest is not None and latest.definition_hash == definition_hash:
            return AppliedView(view.name, latest.version, created=False)
        version = 1 if latest is None else latest.version + 1
        connection.execute(
            t.feature_views.insert().values(
                name=view.name,
                version=version,
                definition_hash=definition_hash,
                definition=view.definition(),
                created_at=now(),
                created_by=actor,
            )
        )
        connection.execute(
            t.audit_log.insert().values(
                at=now(),
                actor=actor,
                entity="feature_view",
                entity_key=f"{view.name}/{version}",
                action="apply",
                from_value=None if latest is None else str(latest.version),
                to_value=str(version),
                reason=f"definition {definition_hash[:12]}",
            )
        )
        return AppliedView(view.name, version, created=True)

    def versions(self, name: str) -> list[ViewVersion]:
        with self._store.read() as connection:
            rows = connection.execute(
                sa.select(t.feature_views)
                .where(t.feature_views.c.name == name)
                .order_by(t.feature_views.c.version)
            ).all()
        if not rows:
            raise FeatureDefinitionError(
                f"no feature view named '{name}' has been applied (run `keel features apply`)"
            )
        return [ViewVersion(**row._asdict()) for row in rows]

    def latest(self) -> list[ViewVersion]:
        """The newest version of every applied view, by name."""
        newest = (
            sa.select(t.feature_views.c.name, sa.func.max(t.feature_views.c.version).label("v"))
            .group_by(t.feature_views.c.name)
            .subquery()
        )
        with self._store.read() as connection:
            rows = connection.execute(
                sa.select(t.feature_views)
                .join(
                    newest,
                    sa.and_(
                        newest.c.name == t.feature_views.c.name,
                        newest.c.v == t.feature_views.c.version,
                    ),
                )
                .order_by(t.feature_views.c.name)
            ).all()
        return [ViewVersion(**row._asdict()) for row in rows]

    def version_of(self, view: FeatureView) -> int:
        """The recorded version whose definition is exactly ``view`` as it is in code now."""
        definition_hash = view.definition_hash()
        with self._store.read() as connection:
            version = connection.execute(
                sa.select(t.feature_views.c.version).where(
                    t.feature_views.c.name == view.name,
                    t.feature_views.c.definition_hash == definition_hash,
                )
            ).scalar()
        if version is None:
            raise FeatureDefinitionError(
                f"feature view '{view.name}' in code differs from every applied version "
                "(its features, TTL, source or transformation changed): run `keel features apply`"
            )
        return int(version)

    def lineage(self, catalog: FeatureCatalog, references: list[str]) -> list[dict[str, Any]]:
        """What a model trained on ``references`` records: each feature with its view version
        (on-demand features with their inputs), for the model registry."""
        view_refs, on_demand = catalog.resolve(references)
        versions = {ref.view: self.version_of(catalog.view(ref.view)) for ref in view_refs}
        records: list[dict[str, Any]] = [
            {"feature": str(ref), "view": ref.view, "view_version": versions[ref.view]}
            for ref in view_refs
        ]
        records += [
            {"feature": feature.name, "on_demand": True, "inputs": list(feature.inputs)}
            for feature in on_demand
        ]
        return records
