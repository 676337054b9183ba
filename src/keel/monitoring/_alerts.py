"""Alert evaluation: monitor results in, alerts with their evidence out.

    evaluator = AlertEvaluator(store, rules, actor="keel", notifier=notifier)
    outcome = evaluator.evaluate()          # after every `keel monitor run`, or on a schedule
    outcome.fired, outcome.resolved, outcome.pending

The evaluator reads ``monitor_results``, not the monitors' Python objects, so any process that
writes results (the window runner, the SLO tracker) is alerted on alike. For each rule and each
(endpoint, subject) it judges the newest window holding enough data:

- the condition holds over windows spanning ``for_seconds`` → an alert fires, unless one is
  already open for the same fingerprint, one already fired from this window or a newer one
  (evaluating the same results twice fires nothing new), or the last one resolved less than
  ``cooldown_seconds`` ago;
- the condition holds for less long → the rule is pending (``alert_rule_state.pending_since``);
- the condition no longer holds → an open alert resolves itself (event ``auto_resolved``);
- not enough data (fewer rows than ``min_samples``, status ``not_enough_data``, no value) →
  nothing changes: such a window neither fires nor resolves, nor breaks a pending streak.

Notifications and actions run after the transaction that changed the alerts has committed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel._monitoring_settings import AlertRule
from keel.monitoring import _alert_rules as r
from keel.monitoring._actions import run_action
from keel.monitoring._alert_store import (
    FIRING,
    OPEN_STATES,
    Alert,
    AlertStore,
    alert_from_row,
    close,
    load_alert,
    new_alert_id,
    record_event,
)
from keel.registry._rows import audit
from keel.store import MetadataStore, insert_ignore
from keel.store import _tables as t

Result = Mapping[str, Any]
_DRIFT_MONITORS = ("drift", "prediction_drift", "concept_drift")
TOP_COLUMNS = 5
_DAY = 86400.0


class Notifier(Protocol):
    def notify(self, changes: Sequence[tuple[Alert, str]]) -> None:
        """Send each (alert, "fired" | "resolved") to every sink, recording the outcomes in
        ``alert_events``; returns within the notifier's own time bound."""


@dataclass
class Evaluation:
    """What one :meth:`AlertEvaluator.evaluate` changed."""

    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """Fingerprints whose condition holds but not yet for the rule's ``for_seconds``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fired": [alert.to_dict() for alert in self.fired],
            "resolved": [alert.to_dict() for alert in self.resolved],
            "pending": list(self.pending),
        }


@dataclass(frozen=True)
class _Window:
    start: float
    end: float
    judged: list[Result]
    holding: list[Result]


class AlertEvaluator:
    """Turns new monitor results into alerts, and resolves the alerts whose condition cleared."""

    def __init__(
        self,
        store: MetadataStore,
        rules: Iterable[AlertRule],
        *,
        actor: str,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        lookback_seconds: float = 7 * _DAY,
    ) -> None:
        self.store = store
        self.rules = tuple(rules)
        self.actor = actor
        self.alerts = AlertStore(store, actor)
        self._notifier = notifier
        self._clock = clock
        longest_for = max((rule.for_seconds for rule in self.rules), default=0.0)
        self._lookback = max(lookback_seconds, longest_for + _DAY)

    def evaluate(self, *, endpoint: str | None = None) -> Evaluation:
        at = self._clock()
        outcome = Evaluation()
        rows = self._results(at, endpoint)
        with self.store.write() as connection:
            for rule in self.rules:
                series: dict[tuple[str, str], list[Result]] = defaultdict(list)
                for row in rows:
                    if r.selects(rule, row):
                        series[(row["endpoint"], r.subject_key(row))].append(row)
                for (where, subject), found in series.items():
                    self._judge(connection, rule, where, subject, found, at, outcome)
        changes = [(alert, "fired") for alert in outcome.fired]
        changes += [(alert, "resolved") for alert in outcome.resolved]
        if self._notifier is not None and changes:
            self._notifier.notify(changes)
        by_name = {rule.name: rule for rule in self.rules}
        for alert in outcome.fired:
            action = by_name[alert.rule].action
            if action is not None:
                run_action(self.store, alert, action, actor=self.actor)
        return outcome

    def _results(self, at: float, endpoint: str | None) -> list[Result]:
        table = t.monitor_results
        query = sa.select(table).where(
            table.c.monitor.in_({rule.monitor for rule in self.rules}),
            table.c.window_end >= at - self._lookback,
        )
        if endpoint is not None:
            query = query.where(table.c.endpoint == endpoint)
        with self.store.read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def _judge(
        self,
        connection: Connection,
        rule: AlertRule,
        endpoint: str,
        subject: str,
        found: list[Result],
        at: float,
        outcome: Evaluation,
    ) -> None:
        windows = _windows(rule, found)
        if not windows:
            return  # not enough data anywhere: nothing fires, nothing resolves
        latest = windows[-1]
        key = r.fingerprint(rule.name, endpoint, subject)
        state = _rule_state(connection, key, rule.name, endpoint, subject)
        open_alert = _open_alert(connection, key)
        if not latest.holding:
            _set_pending(connection, key, None)
            if open_alert is not None and (open_alert.window_end or 0) < latest.end:
                reason = "condition cleared"
                close(connection, open_alert, self.actor, reason, kind="auto_resolved", at=at)
                outcome.resolved.append(load_alert(connection, open_alert.id))
            return
        since = _streak_start(windows)
        _set_pending(connection, key, since)
        if open_alert is not None:
            connection.execute(
                t.alerts.update().where(t.alerts.c.id == open_alert.id).values(last_seen_at=at)
            )
            return
        if latest.end - since < rule.for_seconds:
            outcome.pending.append(key)
            return
        if _fired_from(connection, key) >= latest.end:
            return  # these results already raised an alert (idempotent evaluation)
        resolved_at = state["last_resolved_at"]
        if resolved_at is not None and at - resolved_at < rule.cooldown_seconds:
            return
        alert = self._fire(connection, rule, key, subject, latest, since, at)
        outcome.fired.append(alert)

    def _fire(
        self,
        connection: Connection,
        rule: AlertRule,
        key: str,
        subject: str,
        window: _Window,
        since: float,
        at: float,
    ) -> Alert:
        worst = min(window.holding, key=lambda row: r.severity_key(rule, row))
        evidence = _evidence(connection, rule, worst, window, since)
        alert_id = new_alert_id()
        values = {
            "id": alert_id,
            "fingerprint": key,
            "rule": rule.name,
            "endpoint": worst["endpoint"],
            "subject": subject,
            "severity": rule.severity,
            "state": FIRING,
            "summary": r.summary(rule, worst),
            "value": worst["value"],
            "threshold": r.bound(rule, worst),
            "window_start": window.start,
            "window_end": window.end,
            "evidence": evidence,
            "started_at": at,
            "last_seen_at": at,
        }
        connection.execute(t.alerts.insert().values(**values))
        connection.execute(
            t.alert_rule_state.update()
            .where(t.alert_rule_state.c.fingerprint == key)
            .values(last_fired_at=at)
        )
        record_event(connection, alert_id, "fired", detail=values["summary"])
        audit(connection, self.actor, "alert", alert_id, "fire", None, FIRING, values["summary"])
        return load_alert(connection, alert_id)


def _windows(rule: AlertRule, found: list[Result]) -> list[_Window]:
    """The windows holding a judgeable result, oldest first."""
    by_window: dict[tuple[float, float], list[Result]] = defaultdict(list)
    for row in found:
        if r.enough_data(rule, row) and r.holds(rule, row) is not None:
            by_window[(row["window_start"], row["window_end"])].append(row)
    return [
        _Window(start, end, judged, [row for row in judged if r.holds(rule, row)])
        for (start, end), judged in sorted(by_window.items(), key=lambda item: item[0][::-1])
    ]


def _streak_start(windows: list[_Window]) -> float:
    """Where the run of holding windows that ends with the newest one began."""
    since = windows[-1].start
    for window in reversed(windows):
        if not window.holding:
            break
        since = min(since, window.start)
    return since


def _rule_state(
    connection: Connection, key: str, rule: str, endpoint: str, subject: str
) -> dict[str, Any]:
    """The fingerprint's state row, created if new and locked until the transaction ends, so
    two evaluators running at once (PostgreSQL) judge one fingerprint one after the other."""
    table = t.alert_rule_state
    values = {"fingerprint": key, "rule": rule, "endpoint": endpoint, "subject": subject}
    insert_ignore(connection, table, [values])
    query = sa.select(table).where(table.c.fingerprint == key).with_for_update()
    return dict(connection.execute(query).mappings().one())


def _set_pending(connection: Connection, key: str, since: float | None) -> None:
    table = t.alert_rule_state
    connection.execute(table.update().where(table.c.fingerprint == key).values(pending_since=since))


def _open_alert(connection: Connection, key: str) -> Alert | None:
    query = sa.select(t.alerts).where(
        t.alerts.c.fingerprint == key, t.alerts.c.state.in_(OPEN_STATES)
    )
    row = connection.execute(query.order_by(t.alerts.c.started_at.desc())).first()
    return None if row is None else alert_from_row(row)


def _fired_from(connection: Connection, key: str) -> float:
    """The newest window any alert of this fingerprint fired from (-inf: none)."""
    newest = connection.execute(
        sa.select(sa.func.max(t.alerts.c.window_end)).where(t.alerts.c.fingerprint == key)
    ).scalar()
    return float("-inf") if newest is None else float(newest)


def _evidence(
    connection: Connection, rule: AlertRule, worst: Result, window: _Window, since: float
) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "rule": rule.name,
        "monitor": worst["monitor"],
        "statistic": worst["statistic"],
        "subject": worst["subject"],
        "model_version": worst["model_version"],
        "value": worst["value"],
        "p_value": worst["p_value"],
        "threshold": worst["threshold"],
        "bound": r.bound(rule, worst),
        "comparison": rule.comparison,
        "status": worst["status"],
        "rows": worst["rows"],
        "window": {"start": window.start, "end": window.end},
        "holding_since": since,
        "statistics": [
            {key: row[key] for key in ("statistic", "value", "p_value", "threshold", "status")}
            for row in window.judged
        ],
        "details": worst["details"] or {},
    }
    if worst["monitor"] in _DRIFT_MONITORS:
        evidence["top_drifting_columns"] = top_drifting_columns(
            connection, worst["endpoint"], window.start, window.end
        )
    return evidence


def top_drifting_columns(
    connection: Connection, endpoint: str, start: float, end: float, limit: int = TOP_COLUMNS
) -> list[dict[str, Any]]:
    """The window's drifted columns, most significant first (smallest p-value, then the
    largest score), one entry per column with its strongest statistic."""
    table = t.monitor_results
    rows = connection.execute(
        sa.select(table).where(
            table.c.endpoint == endpoint,
            table.c.window_start == start,
            table.c.window_end == end,
            table.c.monitor == "drift",
            table.c.status == "drift",
            table.c.subject != "",  # the window's own verdict row is not a column
        )
    ).mappings()
    best: dict[str, Mapping[str, Any]] = {}
    for found in rows:
        row = dict(found)
        if row["subject"] not in best or _rank(row) < _rank(best[row["subject"]]):
            best[row["subject"]] = row
    ranked = sorted(best.values(), key=_rank)[:limit]
    return [
        {"column": row["subject"], "statistic": row["statistic"], "value": row["value"],
         "p_value": row["p_value"]}
        for row in ranked
    ]  # fmt: skip


def _rank(row: Mapping[str, Any]) -> tuple[float, float]:
    p_value = row["p_value"]
    return (1.0 if p_value is None else float(p_value), -float(row["value"] or 0.0))
