"""The model registry: versions, lifecycle, aliases, audit, loading by URI."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from keel._packaging import Signature, package_model
from keel.artifacts import ArtifactStore
from keel.config import RegistrySettings
from keel.data import conform
from keel.errors import (
    AliasConflict,
    AliasNotFound,
    ApprovalPolicyViolation,
    InvalidTransition,
    RegistryError,
)
from keel.flavors import LoadedModel, load_model
from keel.registry._card import render_card
from keel.registry._export import write_export
from keel.registry._lifecycle import APPROVED, ARCHIVED, CANDIDATE, TRANSITIONS, next_semver
from keel.registry._models import (
    AuditEntry,
    ModelRef,
    ModelVersion,
    RegisteredModel,
    check_alias,
    check_model_name,
)
from keel.registry._rows import (
    aliases_by_model,
    audit,
    get_version,
    lock_model,
    require_model,
    serving_endpoints,
    update_version,
    version_from_row,
    versions_query,
)
from keel.registry._sources import logged_model, run_lineage
from keel.store import MetadataStore, insert_ignore, now
from keel.store import _tables as t
from keel.tracking import LoggedModel, RunQueries
from keel.tracking._run import record_artifact

_UNSET: Any = object()


class Registry:
    """Registered models and their versions.

        registry = workspace.registry
        v = registry.register("churn", logged_model)             # from a run
        v = registry.register("churn", model, input_example=X)  # or directly
        registry.transition("churn", v.version, "approved", reason="beats v1 on AUC")
        registry.set_alias("churn", "champion", v.version)
        model = registry.load("models:/churn@champion")

    Every change (registration, transition, alias move, card edit) is written in the same
    transaction as an append-only audit entry naming the actor, the time and the reason.
    """

    def __init__(
        self, store: MetadataStore, artifacts: ArtifactStore, settings: RegistrySettings, actor: str
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._settings = settings
        self._actor = actor

    # -- registering -----------------------------------------------------------------------------

    def register(
        self,
        name: str,
        source: Any,
        *,
        input_example: pd.DataFrame | None = None,
        flavor: str | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        description: str | None = None,
        features: list[dict[str, Any]] | None = None,
        sensitive: Collection[str] = (),
        actor: str | None = None,
    ) -> ModelVersion:
        """Add the next version of ``name``.

        ``source`` is a :class:`LoggedModel` returned by ``run.log_model``, a ``runs:/ID/NAME``
        URI, or a fitted model object (then ``input_example`` is required to infer the
        signature). Metrics, params and input fingerprints default to the run's. ``features``
        records the feature-store features the model was trained on (``FeatureStore.lineage``).
        ``sensitive`` names input fields holding personal data: marked in the signature, they
        are tokenized or dropped before a served prediction is logged (``[serving] pii_mode``).
        """
        check_model_name(name)
        run_id: str | None = None
        inputs: dict[str, str] = {}
        run_metrics: dict[str, float] = {}
        run_params: dict[str, str] = {}
        if isinstance(source, str):
            with self._store.read() as connection:
                source = logged_model(connection, source)
        if isinstance(source, LoggedModel):
            run_id = source.run_id
            flavor_name, ref = source.flavor, source.artifact
            library_versions, signature = source.library_versions, source.signature
            with self._store.read() as connection:
                run_metrics, run_params, inputs = run_lineage(connection, run_id)
        else:
            if input_example is None:
                raise RegistryError(
                    "registering a model object needs input_example= (the training inputs), "
                    "from which its signature is inferred"
                )
            packaged = package_model(source, input_example, flavor)
            ref = self._artifacts.put_bytes(packaged.saved.data)
            flavor_name, library_versions = packaged.saved.flavor, packaged.saved.library_versions
            signature = packaged.signature
        if sensitive:
            signature = dataclasses.replace(
                signature, inputs=signature.inputs.mark_sensitive(*sensitive)
            )
        all_metrics = {**run_metrics, **{k: float(v) for k, v in (metrics or {}).items()}}
        all_params = {**run_params, **{k: str(v) for k, v in (params or {}).items()}}
        who = actor or self._actor
        with self._store.write() as connection:
            record_artifact(connection, ref)
            insert_ignore(
                connection,
                t.registered_models,
                [{"name": name, "created_at": now(), "created_by": who, "last_version": 0}],
            )
            # The counter row is locked until commit: concurrent registrations queue here and a
            # failed one rolls its increment back, so versions have no gaps or duplicates.
            version = connection.execute(
                t.registered_models.update()
                .where(t.registered_models.c.name == name)
                .values(last_version=t.registered_models.c.last_version + 1)
                .returning(t.registered_models.c.last_version)
            ).scalar_one()
            previous = connection.execute(
                sa.select(
                    t.model_versions.c.semver,
                    t.model_versions.c.signature,
                    t.model_versions.c.artifact_digest,
                ).where(t.model_versions.c.name == name, t.model_versions.c.version == version - 1)
            ).first()
            semver, why = next_semver(
                (previous.semver, Signature.from_dict(previous.signature), previous.artifact_digest)
                if previous
                else None,
                signature,
                ref.digest,
            )
            connection.execute(
                t.model_versions.insert().values(
                    name=name,
                    version=version,
                    semver=semver,
                    flavor=flavor_name,
                    artifact_digest=ref.digest,
                    library_versions=library_versions,
                    signature=signature.to_dict(),
                    metrics=all_metrics,
                    params=all_params,
                    run_id=run_id,
                    inputs=inputs,
                    status=CANDIDATE,
                    description=description,
                    features=features or [],
                    created_at=now(),
                    created_by=who,
                )
            )
            audit(
                connection,
                who,
                "model_version",
                f"{name}/{version}",
                "register",
                None,
                f"{CANDIDATE} {semver}",
                why,
            )
        return self.get_version(name, version)

    # -- reading ---------------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        with self._store.read() as connection:
            rows = connection.execute(
                sa.select(t.registered_models).order_by(t.registered_models.c.name)
            ).all()
            aliases = aliases_by_model(connection)
        return [
            RegisteredModel(
                name=row.name,
                created_at=row.created_at,
                created_by=row.created_by,
                description=row.description,
                latest_version=row.last_version,
                aliases=aliases.get(row.name, {}),
            )
            for row in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._store.read() as connection:
            require_model(connection, name)
            rows = connection.execute(
                versions_query()
                .where(t.model_versions.c.name == name)
                .order_by(t.model_versions.c.version)
            ).all()
            aliases = aliases_by_model(connection, name).get(name, {})
        return [version_from_row(row, aliases) for row in rows]

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._store.read() as connection:
            return get_version(connection, name, version)

    def resolve(self, uri: str | ModelRef) -> ModelVersion:
        """The version a URI points at now: ``models:/name/3`` or ``models:/name@champion``."""
        ref = ModelRef.parse(uri) if isinstance(uri, str) else uri
        with self._store.read() as connection:
            if ref.version is not None:
                return get_version(connection, ref.name, ref.version)
            version = connection.execute(
                sa.select(t.model_aliases.c.version).where(
                    t.model_aliases.c.name == ref.name, t.model_aliases.c.alias == ref.alias
                )
            ).scalar()
            if version is None:
                require_model(connection, ref.name)
                raise AliasNotFound(ref.name, str(ref.alias))
            return get_version(connection, ref.name, int(version))

    def load(self, uri: str | ModelRef) -> LoadedModel:
        """Resolve ``uri`` and load its model; the artifact's sha256 is checked before any
        bytes are deserialised (a modified or truncated file raises ArtifactCorrupted)."""
        return self.load_version(self.resolve(uri))

    def load_version(self, version: ModelVersion) -> LoadedModel:
        data = self._artifacts.get_bytes(version.artifact_digest, size=version.artifact_size)
        loaded = load_model(version.flavor, data, version.library_versions)
        loaded.conform = functools.partial(
            conform, schema=version.signature.inputs, what=f"input of {version.uri}"
        )
        return loaded

    # -- changing --------------------------------------------------------------------------------

    def transition(
        self,
        name: str,
        version: int,
        status: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Move a version through its lifecycle (candidate → approved → archived)."""
        who = actor or self._actor
        if status not in TRANSITIONS:
            raise RegistryError(
                f"'{status}' is not a lifecycle status; use one of: {', '.join(TRANSITIONS)}"
            )
        with self._store.write() as connection:
            lock_model(connection, name)
            current = get_version(connection, name, version)
            allowed = TRANSITIONS[current.status]
            if status not in allowed:
                raise InvalidTransition(name, version, current.status, status, allowed)
            if (
                status == APPROVED
                and self._settings.require_distinct_approver
                and who == current.created_by
            ):
                raise ApprovalPolicyViolation(
                    f"{who} registered model '{name}' version {version} and cannot also approve "
                    "it (registry.require_distinct_approver is on): ask someone else to approve"
                )
            if status == ARCHIVED and current.aliases:
                raise RegistryError(
                    f"model '{name}' version {version} is aliased as "
                    f"{', '.join(current.aliases)}; move those aliases before archiving it"
                )
            serving = serving_endpoints(connection, name, version) if status == ARCHIVED else []
            if serving:
                raise RegistryError(
                    f"model '{name}' version {version} is served by endpoint "
                    f"{', '.join(serving)}; deploy another version there before archiving it"
                )
            update_version(connection, name, version, status=status)
            audit(
                connection,
                who,
                "model_version",
                f"{name}/{version}",
                "transition",
                current.status,
                status,
                reason,
            )
            return get_version(connection, name, version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected: int | None = _UNSET,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Point ``alias`` at ``version`` atomically. With ``expected`` (a version, or None for
        "not set yet") the move only happens if the alias is still there: compare-and-set, so
        two people promoting at once cannot silently overwrite each other."""
        check_alias(alias)
        who = actor or self._actor
        with self._store.write() as connection:
            lock_model(connection, name)
            target = get_version(connection, name, version)
            if target.status == ARCHIVED:
                raise RegistryError(
                    f"model '{name}' version {version} is archived; restore it to candidate "
                    "before pointing an alias at it"
                )
            current = connection.execute(
                sa.select(t.model_aliases.c.version).where(
                    t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                )
            ).scalar()
            if expected is not _UNSET and expected != current:
                raise AliasConflict(name, alias, expected, current)
            values = {"version": version, "updated_at": now(), "updated_by": who}
            if current is None:
                connection.execute(
                    t.model_aliases.insert().values(name=name, alias=alias, **values)
                )
            else:
                connection.execute(
                    t.model_aliases.update()
                    .where(t.model_aliases.c.name == name, t.model_aliases.c.alias == alias)
                    .values(**values)
                )
            audit(
                connection,
                who,
                "alias",
                f"{name}@{alias}",
                "move",
                None if current is None else str(current),
                str(version),
                reason,
            )
            return get_version(connection, name, version)

    def delete_alias(
        self, name: str, alias: str, *, reason: str | None = None, actor: str | None = None
    ) -> None:
        who = actor or self._actor
        with self._store.write() as connection:
            lock_model(connection, name)
            current = connection.execute(
                sa.select(t.model_aliases.c.version).where(
                    t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                )
            ).scalar()
            if current is None:
                require_model(connection, name)
                raise AliasNotFound(name, alias)
            connection.execute(
                t.model_aliases.delete().where(
                    t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                )
            )
            audit(connection, who, "alias", f"{name}@{alias}", "delete", str(current), None, reason)

    def set_card_notes(
        self, name: str, version: int, notes: str, *, actor: str | None = None
    ) -> ModelVersion:
        """Replace the free-text section of a version's model card (audited)."""
        who = actor or self._actor
        with self._store.write() as connection:
            lock_model(connection, name)
            get_version(connection, name, version)
            update_version(connection, name, version, card_notes=notes)
            audit(
                connection,
                who,
                "model_version",
                f"{name}/{version}",
                "edit_card",
                None,
                None,
                f"{len(notes)} characters of notes",
            )
            return get_version(connection, name, version)

    # -- documents -------------------------------------------------------------------------------

    def card(self, uri: str | ModelRef) -> str:
        """The model card of the version ``uri`` points at, as Markdown."""
        version = self.resolve(uri)
        run = RunQueries(self._store).get(version.run_id) if version.run_id else None
        return render_card(version, run, self.audit_log(version.name, version.version))

    def export(self, uri: str | ModelRef, directory: Path, *, force: bool = False) -> Path:
        """Write a self-contained directory: verified artifact, requirements.txt,
        signature.json, keel-model.json and MODEL_CARD.md (load it with ``load_export``)."""
        version = self.resolve(uri)
        data = self._artifacts.get_bytes(version.artifact_digest, size=version.artifact_size)
        return write_export(version, data, self.card(version.uri), directory, force=force)

    # -- audit -----------------------------------------------------------------------------------

    def audit_log(
        self, name: str | None = None, version: int | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries, oldest first; for one model (its versions and aliases) or one version."""
        query = sa.select(t.audit_log).order_by(t.audit_log.c.id)
        if name is not None and version is not None:
            query = query.where(
                t.audit_log.c.entity == "model_version",
                t.audit_log.c.entity_key == f"{name}/{version}",
            )
        elif name is not None:
            query = query.where(
                sa.or_(
                    t.audit_log.c.entity_key.startswith(f"{name}/", autoescape=True),
                    t.audit_log.c.entity_key.startswith(f"{name}@", autoescape=True),
                )
            )
        if limit is not None:
            query = query.limit(limit)
        with self._store.read() as connection:
            if name is not None:
                require_model(connection, name)
            if version is not None and name is not None:
                get_version(connection, name, version)
            return [AuditEntry(**row._asdict()) for row in connection.execute(query)]
