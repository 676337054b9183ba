"""Alerts in the metadata store: their lifecycle, their events, and the audit trail.

    alerts = AlertStore(workspace.store, actor="jane")
    alerts.list(state="firing", endpoint="churn")
    alerts.ack(alert_id, note="looking at it")            # firing -> acknowledged
    alerts.resolve(alert_id, reason="retrained, v7 live")  # firing/acknowledged -> resolved
    alerts.events(alert_id)                                # fired, notified, action, acked...

Every change is written with an ``alert_events`` row and an ``audit_log`` entry (entity
``alert``, key = the alert id) in the same transaction, as the actor who made it.
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.errors import AlertNotFound, InvalidAlertTransition
from keel.registry._rows import audit
from keel.store import MetadataStore, now
from keel.store import _tables as t

FIRING, ACKNOWLEDGED, RESOLVED = "firing", "acknowledged", "resolved"
STATES = (FIRING, ACKNOWLEDGED, RESOLVED)
OPEN_STATES = (FIRING, ACKNOWLEDGED)
_ENTITY = "alert"


@dataclass(frozen=True)
class Alert:
    """One alert as stored; ``evidence`` holds what made it fire (see ``AlertEvaluator``)."""

    id: str
    fingerprint: str
    rule: str
    endpoint: str
    subject: str
    severity: str
    state: str
    summary: str
    value: float | None
    threshold: float | None
    window_start: float | None
    window_end: float | None
    evidence: dict[str, Any]
    started_at: float
    last_seen_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    resolved_by: str | None
    resolve_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class AlertEvent:
    id: int
    alert_id: str
    at: float
    kind: str
    sink: str | None
    attempt: int | None
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def alert_from_row(row: Any) -> Alert:
    values = dict(row._mapping)
    values["evidence"] = values["evidence"] or {}
    return Alert(**values)


def record_event(
    connection: Connection,
    alert_id: str,
    kind: str,
    *,
    sink: str | None = None,
    attempt: int | None = None,
    detail: str | dict[str, Any] | None = None,
) -> None:
    """One ``alert_events`` row; a dict detail is stored as JSON text."""
    text = orjson.dumps(detail, default=str).decode() if isinstance(detail, dict) else detail
    connection.execute(
        t.alert_events.insert().values(
            alert_id=alert_id, at=now(), kind=kind, sink=sink, attempt=attempt, detail=text
        )
    )


class AlertStore:
    """Reads alerts and moves them through firing -> acknowledged -> resolved."""

    def __init__(self, store: MetadataStore, actor: str) -> None:
        self.store = store
        self.actor = actor

    # -- reading ---------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert:
        with self.store.read() as connection:
            return self._get(connection, alert_id)

    def list(
        self, *, state: str | None = None, endpoint: str | None = None, limit: int = 1000
    ) -> builtins.list[Alert]:
        """Alerts, newest first; ``state`` "open" means firing or acknowledged."""
        query = sa.select(t.alerts).order_by(t.alerts.c.started_at.desc(), t.alerts.c.id)
        if state == "open":
            query = query.where(t.alerts.c.state.in_(OPEN_STATES))
        elif state is not None:
            query = query.where(t.alerts.c.state == state)
        if endpoint is not None:
            query = query.where(t.alerts.c.endpoint == endpoint)
        with self.store.read() as connection:
            return [alert_from_row(row) for row in connection.execute(query.limit(limit))]

    def events(self, alert_id: str) -> builtins.list[AlertEvent]:
        """What happened to the alert, oldest first."""
        query = (
            sa.select(t.alert_events)
            .where(t.alert_events.c.alert_id == alert_id)
            .order_by(t.alert_events.c.id)
        )
        with self.store.read() as connection:
            return [AlertEvent(**dict(row._mapping)) for row in connection.execute(query)]

    # -- changing --------------------------------------------------------------------------------

    def ack(self, alert_id: str, *, actor: str | None = None, note: str | None = None) -> Alert:
        """Someone has the alert in hand. Only a firing alert can be acknowledged."""
        who = actor or self.actor
        with self.store.write() as connection:
            alert = self._get(connection, alert_id, lock=True)
            if alert.state != FIRING:
                raise InvalidAlertTransition(alert_id, alert.state, ACKNOWLEDGED)
            at = now()
            connection.execute(
                t.alerts.update()
                .where(t.alerts.c.id == alert_id)
                .values(state=ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=who)
            )
            record_event(connection, alert_id, "acknowledged", detail={"by": who, "note": note})
            audit(connection, who, _ENTITY, alert_id, "ack", FIRING, ACKNOWLEDGED, note)
            return self._get(connection, alert_id)

    def resolve(
        self, alert_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> Alert:
        """Close the alert by hand. A resolved alert cannot be resolved again."""
        with self.store.write() as connection:
            alert = self._get(connection, alert_id, lock=True)
            if alert.state == RESOLVED:
                raise InvalidAlertTransition(alert_id, alert.state, RESOLVED)
            close(connection, alert, actor or self.actor, reason, kind="resolved")
            return self._get(connection, alert_id)

    def _get(self, connection: Connection, alert_id: str, *, lock: bool = False) -> Alert:
        return load_alert(connection, alert_id, lock=lock)


def load_alert(connection: Connection, alert_id: str, *, lock: bool = False) -> Alert:
    """The alert, read in the caller's transaction (``lock``: until it ends)."""
    query = sa.select(t.alerts).where(t.alerts.c.id == alert_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise AlertNotFound(alert_id)
    return alert_from_row(row)


def new_alert_id() -> str:
    return f"al_{secrets.token_hex(8)}"


def close(
    connection: Connection,
    alert: Alert,
    actor: str,
    reason: str | None,
    *,
    kind: str,
    at: float | None = None,
) -> None:
    """Resolve ``alert`` (by hand or automatically) and start its rule's cooldown at ``at``."""
    at = now() if at is None else at
    connection.execute(
        t.alerts.update()
        .where(t.alerts.c.id == alert.id)
        .values(state=RESOLVED, resolved_at=at, resolved_by=actor, resolve_reason=reason)
    )
    connection.execute(
        t.alert_rule_state.update()
        .where(t.alert_rule_state.c.fingerprint == alert.fingerprint)
        .values(last_resolved_at=at, pending_since=None)
    )
    record_event(connection, alert.id, kind, detail={"by": actor, "reason": reason})
    audit(connection, actor, _ENTITY, alert.id, kind, alert.state, RESOLVED, reason)
