"""Alert evaluation over monitor results, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from keel._monitoring_settings import AlertRule
from keel.errors import AlertNotFound, InvalidAlertTransition
from keel.monitoring._alert_rules import DEFAULT_RULES, effective_rules
from keel.monitoring._alert_store import ACKNOWLEDGED, FIRING, RESOLVED
from keel.monitoring._alerts import AlertEvaluator
from keel.store import MetadataStore
from keel.store import _tables as t

from .alert_helpers import HOUR, Clock, put_clean, put_result

T0 = 1_700_000_000.0
DRIFT = AlertRule(name="drift", monitor="drift", status="drift", min_samples=100)


@pytest.fixture
def store(metadata_store: MetadataStore) -> MetadataStore:
    return metadata_store


def evaluator(
    store: MetadataStore, *rules: AlertRule, clock: Clock | None = None
) -> AlertEvaluator:
    return AlertEvaluator(
        store, rules or (DRIFT,), actor="watcher", clock=clock or Clock(T0 + 10 * HOUR)
    )


def test_a_drifted_column_fires_with_its_evidence_and_the_top_drifting_columns(
    store: MetadataStore,
) -> None:
    put_result(store, start=T0, subject="age", statistic="ks", value=0.2, p_value=0.01)
    put_result(store, start=T0, subject="age", statistic="psi", value=0.4, p_value=None,
               threshold=0.2)  # fmt: skip
    put_result(store, start=T0, subject="income", statistic="ks", value=0.5, p_value=1e-9)
    put_clean(store, start=T0, subject="city", statistic="chi2")

    fired = evaluator(store).evaluate().fired

    assert sorted(alert.subject for alert in fired) == ["age", "income"]
    age = next(alert for alert in fired if alert.subject == "age")
    assert (age.state, age.rule, age.endpoint) == (FIRING, "drift", "churn")
    assert (age.window_start, age.window_end) == (T0, T0 + HOUR)
    evidence = age.evidence
    assert (evidence["statistic"], evidence["p_value"]) == ("ks", 0.01)  # the smallest p
    assert {s["statistic"] for s in evidence["statistics"]} == {"ks", "psi"}
    assert [c["column"] for c in evidence["top_drifting_columns"]] == ["income", "age"]
    assert evidence["window"] == {"start": T0, "end": T0 + HOUR}


def test_evaluating_the_same_results_twice_fires_nothing_new(store: MetadataStore) -> None:
    put_result(store, start=T0)
    first = evaluator(store).evaluate()
    again = evaluator(store).evaluate()

    assert len(first.fired) == 1
    assert again.fired == []
    assert again.resolved == []
    # still nothing once a person resolved it: the alert came from these very results
    evaluator(store).alerts.resolve(first.fired[0].id, reason="known")
    assert evaluator(store).evaluate().fired == []


def test_the_for_duration_holds_back_firing_until_the_results_span_it(
    store: MetadataStore,
) -> None:
    rule = DRIFT.model_copy(update={"for_seconds": 2 * HOUR})
    put_result(store, start=T0)
    assert evaluator(store, rule).evaluate().fired == []
    assert len(evaluator(store, rule).evaluate().pending) == 1

    put_result(store, start=T0 + HOUR)  # the condition now spans T0 .. T0 + 2h
    assert len(evaluator(store, rule).evaluate().fired) == 1


def test_a_clean_window_restarts_the_for_duration(store: MetadataStore) -> None:
    rule = DRIFT.model_copy(update={"for_seconds": 2 * HOUR})
    put_result(store, start=T0)
    put_clean(store, start=T0 + HOUR)
    put_result(store, start=T0 + 2 * HOUR)

    outcome = evaluator(store, rule).evaluate()

    assert outcome.fired == []
    assert len(outcome.pending) == 1


def test_windows_below_min_samples_neither_fire_nor_resolve(store: MetadataStore) -> None:
    put_result(store, start=T0, rows=99)  # drifted, but 99 < min_samples
    assert evaluator(store).evaluate().fired == []

    put_result(store, start=T0 + HOUR)
    [alert] = evaluator(store).evaluate().fired
    put_clean(store, start=T0 + 2 * HOUR, rows=50)  # clean, but too small to say so
    put_result(store, start=T0 + 3 * HOUR, status="not_enough_data")

    assert evaluator(store).evaluate().resolved == []
    assert evaluator(store).alerts.get(alert.id).state == FIRING


def test_an_alert_resolves_itself_when_the_condition_clears(store: MetadataStore) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store).evaluate().fired
    evaluator(store).alerts.ack(alert.id, note="on it")
    put_clean(store, start=T0 + HOUR)

    [resolved] = evaluator(store).evaluate().resolved

    assert (resolved.id, resolved.state, resolved.resolved_by) == (alert.id, RESOLVED, "watcher")
    kinds = [event.kind for event in evaluator(store).alerts.events(alert.id)]
    assert kinds == ["fired", "acknowledged", "auto_resolved"]
    assert evaluator(store).evaluate().resolved == []


def test_the_cooldown_keeps_a_resolved_problem_quiet_then_lets_it_fire(
    store: MetadataStore,
) -> None:
    rule = DRIFT.model_copy(update={"cooldown_seconds": 5 * HOUR})
    clock = Clock(T0 + 2 * HOUR)
    put_result(store, start=T0)
    evaluator(store, rule, clock=clock).evaluate()
    put_clean(store, start=T0 + HOUR)
    assert len(evaluator(store, rule, clock=clock).evaluate().resolved) == 1

    put_result(store, start=T0 + 2 * HOUR)
    clock.now = T0 + 6 * HOUR  # 4 h after the resolution
    assert evaluator(store, rule, clock=clock).evaluate().fired == []
    clock.now = T0 + 7.5 * HOUR
    assert len(evaluator(store, rule, clock=clock).evaluate().fired) == 1


def test_an_open_alert_is_not_fired_again_by_newer_windows(store: MetadataStore) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store).evaluate().fired
    put_result(store, start=T0 + HOUR)

    assert evaluator(store).evaluate().fired == []
    assert evaluator(store).alerts.get(alert.id).state == FIRING


def test_realised_performance_below_validation_by_the_margin_fires(store: MetadataStore) -> None:
    [rule] = [r for r in DEFAULT_RULES if r.name == "performance_below_validation"]
    # validation accuracy 0.90: 0.86 is within 5 %, 0.85 is not (bound 0.855)
    put_result(store, start=T0, monitor="performance", subject="realised", statistic="accuracy",
               value=0.86, p_value=None, threshold=0.90, status="ok", model_version=3)  # fmt: skip
    assert evaluator(store, rule).evaluate().fired == []
    put_result(store, start=T0 + HOUR, monitor="performance", subject="realised",
               statistic="accuracy", value=0.85, p_value=None, threshold=0.90, status="ok",
               model_version=3)  # fmt: skip

    [alert] = evaluator(store, rule).evaluate().fired

    assert alert.subject == "realised@v3"
    assert alert.threshold == pytest.approx(0.855)
    assert alert.value == pytest.approx(0.85)


def test_a_configured_rule_replaces_the_built_in_one_and_disabled_rules_drop_out() -> None:
    mine = AlertRule(name="drift", monitor="drift", min_samples=5000)
    off = AlertRule(name="concept_drift", monitor="concept_drift", enabled=False)
    extra = AlertRule(name="psi", monitor="drift", statistic="psi", comparison="above",
                      threshold=0.25)  # fmt: skip

    rules = effective_rules([mine, off, extra])

    names = [rule.name for rule in rules]
    assert (names[0], rules[0].min_samples) == ("drift", 5000)
    assert "concept_drift" not in names
    assert names[-1] == "psi"
    assert [rule.name for rule in effective_rules([extra], defaults=False)] == ["psi"]


def test_ack_and_resolve_follow_the_lifecycle(store: MetadataStore) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store).evaluate().fired
    alerts = evaluator(store).alerts

    acked = alerts.ack(alert.id, actor="jane", note="mine")
    resolved = alerts.resolve(alert.id, actor="joe", reason="fixed upstream")

    assert (acked.state, acked.acknowledged_by) == (ACKNOWLEDGED, "jane")
    assert (resolved.state, resolved.resolved_by, resolved.resolve_reason) == (
        RESOLVED, "joe", "fixed upstream",
    )  # fmt: skip
    assert [a.id for a in alerts.list(state="resolved", endpoint="churn")] == [alert.id]
    assert alerts.list(state="open") == []


def test_each_lifecycle_change_is_an_event_and_an_audit_entry_by_its_actor(
    store: MetadataStore,
) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store).evaluate().fired
    alerts = evaluator(store).alerts
    alerts.ack(alert.id, actor="jane", note="mine")
    alerts.resolve(alert.id, actor="joe", reason="fixed upstream")

    with store.read() as connection:
        entries = connection.execute(
            sa.select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.reason)
            .where(t.audit_log.c.entity == "alert", t.audit_log.c.entity_key == alert.id)
            .order_by(t.audit_log.c.id)
        ).all()
    assert [tuple(entry) for entry in entries] == [
        ("watcher", "fire", alert.summary), ("jane", "ack", "mine"),
        ("joe", "resolved", "fixed upstream"),
    ]  # fmt: skip
    assert [e.kind for e in alerts.events(alert.id)] == ["fired", "acknowledged", "resolved"]


def test_changes_the_lifecycle_forbids_are_refused(store: MetadataStore) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store).evaluate().fired
    alerts = evaluator(store).alerts
    alerts.resolve(alert.id)

    with pytest.raises(InvalidAlertTransition, match="is resolved and cannot be resolved"):
        alerts.resolve(alert.id)
    with pytest.raises(InvalidAlertTransition, match="cannot be acknowledged"):
        alerts.ack(alert.id)
    with pytest.raises(AlertNotFound, match="no alert with id 'al_nope'"):
        alerts.ack("al_nope")


def built_in(name: str) -> AlertRule:
    return next(rule for rule in DEFAULT_RULES if rule.name == name)


def test_the_window_verdict_row_is_not_alerted_as_a_column(store: MetadataStore) -> None:
    put_result(store, start=T0, subject="", statistic="verdict", p_value=None)
    put_result(store, start=T0, subject="age")

    fired = evaluator(store, built_in("drift")).evaluate().fired

    assert [alert.subject for alert in fired] == ["age"]


def test_a_column_that_was_not_compared_neither_fires_nor_resolves(store: MetadataStore) -> None:
    put_result(store, start=T0)
    [alert] = evaluator(store, built_in("drift")).evaluate().fired
    put_result(store, start=T0 + HOUR, status="missing_in_current", value=None, p_value=None)
    put_result(store, start=T0 + 2 * HOUR, status="not_computed", value=None, p_value=None)

    outcome = evaluator(store, built_in("drift")).evaluate()

    assert (outcome.fired, outcome.resolved) == ([], [])
    assert evaluator(store).alerts.get(alert.id).state == FIRING


def test_concept_drift_fires_on_its_finding_and_clears_when_there_is_none(
    store: MetadataStore,
) -> None:
    rule = built_in("concept_drift")
    fields = {"monitor": "concept_drift", "subject": "accuracy", "statistic": "accuracy",
              "threshold": 0.9, "model_version": 2}  # fmt: skip
    put_result(store, start=T0, value=0.7, p_value=0.001, status="concept_drift", **fields)
    [alert] = evaluator(store, rule).evaluate().fired
    put_result(store, start=T0 + HOUR, value=0.88, p_value=0.4, status="none", **fields)

    [resolved] = evaluator(store, rule).evaluate().resolved

    assert (alert.subject, resolved.id) == ("accuracy@v2", alert.id)
