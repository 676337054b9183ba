"""Endpoints and their deployment revisions: which model versions an endpoint serves, and how.

An endpoint is a name bound to a :class:`TrafficPolicy`. The policy is never edited in place:
every change writes the next numbered :class:`Revision` (1, 2, 3... with no gaps) and an audit
entry in one transaction, so what an endpoint served at any moment can be told afterwards, and a
rollback is simply a new revision carrying an older policy.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from keel.errors import (
    DeploymentError,
    EndpointExists,
    EndpointNotFound,
    InvalidPolicy,
)
from keel.registry import ModelRef, Registry
from keel.registry._rows import audit
from keel.serving._policy import (
    Arm,
    DefaultPrediction,
    PinnedModel,
    TrafficPolicy,
)
from keel.serving._revisions import (  # Endpoint and Revision re-exported: they are its API
    Endpoint as Endpoint,
)
from keel.serving._revisions import (
    Revision as Revision,
)
from keel.serving._revisions import (
    check_servable,
    endpoint_from_row,
    endpoints_query,
    lock_current,
    read_revision,
    require_endpoint,
    revision_from_row,
)
from keel.store import MetadataStore, now
from keel.store import _tables as t

# Endpoint names follow the model-name rule: they appear in URLs and on the command line.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")

CREATE, SET, ROLLBACK, FOLLOW = "create", "set", "rollback", "follow"


def check_endpoint_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DeploymentError(
            f"'{name}' is not a valid endpoint name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


# -- the store -------------------------------------------------------------------------------------


class _Keep:
    """The default of ``set(fallback=...)``: leave the fallback as it is."""


KEEP = _Keep()


class DeploymentStore:
    """Endpoints and their revisions in the metadata store.

        deployments = workspace.deployments
        deployments.create_endpoint("churn", "models:/churn@champion", max_batch_size=64)
        deployments.set("churn", model_uri="models:/churn@champion", reason="new champion")
        deployments.rollback("churn", reason="p99 regressed")     # back to the previous policy
        live = deployments.get("churn").policy.primary              # name + pinned version

    Model URIs are resolved when a policy is set and the resolved version is pinned in the
    revision. Each change writes its revision and an audit entry (entity ``endpoint``) in one
    transaction, with the endpoint's row locked, so concurrent changes queue and get gapless
    numbers; a change that leaves the policy as it is writes nothing.
    """

    def __init__(self, store: MetadataStore, registry: Registry, actor: str) -> None:
        self._store = store
        self._registry = registry
        self._actor = actor

    # -- changing --------------------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        model_uri: str,
        *,
        description: str | None = None,
        reason: str | None = None,
        fallback: str | DefaultPrediction | None = None,
        arms: Sequence[tuple[str, float]] = (),
        shadows: Sequence[str] = (),
        **options: Any,
    ) -> Revision:
        """Create endpoint ``name`` serving ``model_uri`` (revision 1). The URI must resolve to
        a version that is not archived; ``options`` are serving options (see :data:`OPTIONS`).
        ``fallback`` answers when the primary raises, times out or its breaker is open: a model
        URI (pinned now) or a :class:`DefaultPrediction`. ``arms`` splits traffic by weight:
        (model URI, weight) pairs, each URI pinned now (see :mod:`keel.serving._routing`).
        ``shadows`` (model URIs, pinned now) get a copy of every request, answered in the
        background and logged next to the primary's answer, never returned."""
        check_endpoint_name(name)
        policy = TrafficPolicy(
            primary=self._pin(model_uri),
            fallback=self._fallback(fallback),
            arms=self._arms(arms),
            shadows=tuple(self._pin(uri) for uri in shadows),
        ).with_options(**options)
        with self._store.write() as connection:
            exists = connection.execute(
                sa.select(t.endpoints.c.name).where(t.endpoints.c.name == name)
            ).first()
            if exists is not None:
                raise EndpointExists(name)
            check_servable(connection, policy, None)
            try:
                connection.execute(
                    t.endpoints.insert().values(
                        name=name,
                        created_at=now(),
                        created_by=self._actor,
                        description=description,
                        current_revision=1,
                    )
                )
            except exc.IntegrityError:  # created by someone else since the check above
                raise EndpointExists(name) from None
            return self._record(connection, name, 1, None, policy, CREATE, reason)

    def set(
        self,
        name: str,
        *,
        model_uri: str | None = None,
        reason: str | None = None,
        fallback: str | DefaultPrediction | _Keep | None = KEEP,
        arms: Sequence[tuple[str, float]] | _Keep = KEEP,
        shadows: Sequence[str] | _Keep = KEEP,
        actor: str | None = None,
        **options: Any,
    ) -> Revision:
        """A new revision: the current policy with its primary re-pinned from ``model_uri``
        (when given), its ``fallback`` replaced (a model URI, a :class:`DefaultPrediction`, or
        None to remove it; left as it is by default), its ``arms`` replaced ((URI, weight)
        pairs; () for none), its ``shadows`` replaced (model URIs; () for none) and ``options``
        changed. Nothing changed: no revision, the current
        one is returned. ``actor`` is who the revision and its audit entry name (default: the
        store's; the server's admin routes pass the API key's)."""
        primary = self._pin(model_uri) if model_uri is not None else None
        pinned_shadows = (
            None if isinstance(shadows, _Keep) else tuple(self._pin(uri) for uri in shadows)
        )
        with self._store.write() as connection:
            current = lock_current(connection, name)
            policy = current.policy
            if primary is not None:
                policy = dataclasses.replace(policy, primary=primary)
            if not isinstance(fallback, _Keep):
                policy = dataclasses.replace(policy, fallback=self._fallback(fallback))
            if not isinstance(arms, _Keep):
                policy = dataclasses.replace(policy, arms=self._arms(arms))
            if pinned_shadows is not None:
                policy = dataclasses.replace(policy, shadows=pinned_shadows)
            policy = policy.with_options(**options)
            if policy == current.policy:
                return current
            check_servable(connection, policy, current.policy)
            return self._advance(connection, current, policy, SET, reason, actor)

    def rollback(
        self,
        name: str,
        to: int | None = None,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revision:
        """A new revision whose policy is that of revision ``to`` (default: the one before the
        current one). The recorded reason starts with "rollback to revision N". ``actor`` as
        in :meth:`set`."""
        with self._store.write() as connection:
            current = lock_current(connection, name)
            if to is None and current.number == 1:
                raise DeploymentError(
                    f"endpoint '{name}' has only revision 1: there is nothing to roll back to"
                )
            target_number = current.number - 1 if to is None else to
            if target_number == current.number:
                raise DeploymentError(
                    f"revision {target_number} is already the live revision of endpoint '{name}'"
                )
            target = read_revision(connection, name, target_number, current.number)
            if target.policy == current.policy:
                return current
            check_servable(connection, target.policy, current.policy)
            why = f"rollback to revision {target_number}" + (f": {reason}" if reason else "")
            return self._advance(connection, current, target.policy, ROLLBACK, why, actor)

    def follow_aliases(self, name: str) -> Revision | None:
        """Re-pin the models of ``name``'s live policy that were set from an alias
        (``models:/churn@champion``) and whose alias now points at another version: a new
        revision (action ``follow``, audited, its reason naming each move); None when every
        alias still points where it did. A model set from a version URI never moves.

        Every server process calls it as it polls for revisions, so moving an alias
        (``keel models alias``, or ``registry.set_alias`` from any process) reaches the
        endpoints that follow it. Concurrent calls write one revision: the others find, with
        the endpoint's row locked, nothing left to move."""
        if not self._followed(self.get(name).policy)[1]:  # only reads, when nothing moved
            return None
        with self._store.write() as connection:
            current = lock_current(connection, name)
            policy, moves = self._followed(current.policy)
            if not moves:
                return None
            check_servable(connection, policy, current.policy)
            return self._advance(
                connection, current, policy, FOLLOW, "following " + ", ".join(moves)
            )

    # -- reading ---------------------------------------------------------------------------------

    def get(self, name: str) -> Endpoint:
        with self._store.read() as connection:
            row = connection.execute(endpoints_query().where(t.endpoints.c.name == name)).first()
        if row is None:
            raise EndpointNotFound(name)
        return endpoint_from_row(row)

    def list(self) -> builtins.list[Endpoint]:
        """Every endpoint with its live revision, by name."""
        with self._store.read() as connection:
            rows = connection.execute(endpoints_query().order_by(t.endpoints.c.name)).all()
        return [endpoint_from_row(row) for row in rows]

    def history(self, name: str) -> builtins.list[Revision]:
        """Every revision of the endpoint, oldest first."""
        revisions = t.deployment_revisions
        with self._store.read() as connection:
            require_endpoint(connection, name)
            rows = connection.execute(
                sa.select(revisions)
                .where(revisions.c.endpoint == name)
                .order_by(revisions.c.revision)
            ).all()
        return [revision_from_row(row) for row in rows]

    def revision(self, name: str, number: int) -> Revision:
        with self._store.read() as connection:
            current = require_endpoint(connection, name)
            return read_revision(connection, name, number, current)

    def changed_since(self, name: str, revision: int) -> Revision | None:
        """The live revision if it is not ``revision``, else None: what a server polls to pick
        up changes. One primary-key lookup; EndpointNotFound if the endpoint is gone."""
        endpoints, revisions = t.endpoints, t.deployment_revisions
        query = (
            sa.select(endpoints.c.current_revision, revisions)
            .select_from(endpoints)
            .outerjoin(
                revisions,
                sa.and_(
                    revisions.c.endpoint == endpoints.c.name,
                    revisions.c.revision == endpoints.c.current_revision,
                    endpoints.c.current_revision != revision,
                ),
            )
            .where(endpoints.c.name == name)
        )
        with self._store.read() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise EndpointNotFound(name)
        return None if row.revision is None else revision_from_row(row)

    # -- internals -------------------------------------------------------------------------------

    def _fallback(
        self, fallback: str | DefaultPrediction | None
    ) -> PinnedModel | DefaultPrediction | None:
        if isinstance(fallback, str):
            return self._pin(fallback)
        if fallback is None or isinstance(fallback, DefaultPrediction):
            return fallback
        raise InvalidPolicy(
            "fallback", f"must be a model URI or a DefaultPrediction, not {fallback!r}"
        )

    def _arms(self, arms: Sequence[tuple[str, float]]) -> tuple[Arm, ...]:
        return tuple(Arm(model=self._pin(uri), weight=weight) for uri, weight in arms)

    def _followed(self, policy: TrafficPolicy) -> tuple[TrafficPolicy, builtins.list[str]]:
        """``policy`` with its alias-set models re-pinned where their aliases point now, and
        a ``"models:/churn@champion (3 -> 4)"`` for each that moved."""
        moves: list[str] = []

        def follow(model: PinnedModel) -> PinnedModel:
            if ModelRef.parse(model.uri).alias is None:
                return model
            now = self._pin(model.uri)
            if (now.name, now.version) == (model.name, model.version):
                return model
            moves.append(f"{model.uri} ({model.version} -> {now.version})")
            return now

        return policy.map_models(follow), moves

    def _pin(self, uri: str) -> PinnedModel:
        ref = ModelRef.parse(uri)
        version = self._registry.resolve(ref)
        return PinnedModel(name=version.name, version=version.version, uri=str(ref))

    def _advance(
        self,
        connection: Connection,
        current: Revision,
        policy: TrafficPolicy,
        action: str,
        reason: str | None,
        actor: str | None = None,
    ) -> Revision:
        endpoints = t.endpoints
        number = connection.execute(
            endpoints.update()
            .where(endpoints.c.name == current.endpoint)
            .values(current_revision=endpoints.c.current_revision + 1)
            .returning(endpoints.c.current_revision)
        ).scalar_one()
        return self._record(
            connection, current.endpoint, number, current.number, policy, action, reason, actor
        )

    def _record(
        self,
        connection: Connection,
        name: str,
        number: int,
        previous: int | None,
        policy: TrafficPolicy,
        action: str,
        reason: str | None,
        actor: str | None = None,
    ) -> Revision:
        actor = actor or self._actor
        revision = Revision(
            endpoint=name,
            number=number,
            policy=policy,
            action=action,
            created_at=now(),
            created_by=actor,
            reason=reason,
        )
        connection.execute(
            t.deployment_revisions.insert().values(
                endpoint=name,
                revision=number,
                policy=policy.to_dict(),
                action=action,
                created_at=revision.created_at,
                created_by=revision.created_by,
                reason=reason,
            )
        )
        audit(
            connection,
            actor,
            "endpoint",
            name,
            action,
            None if previous is None else str(previous),
            str(number),
            reason,
        )
        return revision
