"""Alert actions: a command or a callable, run once per firing, on the record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sqlalchemy as sa

from keel._monitoring_settings import ActionSettings, AlertRule
from keel.monitoring._alert_store import AlertStore
from keel.monitoring._alerts import AlertEvaluator
from keel.store import MetadataStore
from keel.store import _tables as t

from . import alert_helpers
from .alert_helpers import Clock, put_result

T0 = 1_700_000_000.0
WRITE_INPUT = (
    "import json, os, sys; alert = json.load(sys.stdin); "
    "open(sys.argv[1], 'a').write(json.dumps([alert['id'], os.environ['KEEL_ALERT_ID'], "
    "os.environ['KEEL_ALERT_ENDPOINT'], alert['evidence']['statistic']]) + '\\n')"
)


def fire(store: MetadataStore, action: ActionSettings, times: int = 1) -> str:
    rule = AlertRule(name="drift", monitor="drift", action=action)
    put_result(store, start=T0)
    evaluator = AlertEvaluator(store, [rule], actor="watcher", clock=Clock(T0 + 7200))
    [alert] = evaluator.evaluate().fired
    for _ in range(times - 1):
        evaluator.evaluate()
    return alert.id


def action_events(store: MetadataStore, alert_id: str) -> list[tuple[str, dict[str, object]]]:
    events = AlertStore(store, "x").events(alert_id)
    return [(e.kind, json.loads(e.detail or "{}")) for e in events if e.kind.startswith("action")]


def audited(store: MetadataStore, alert_id: str) -> list[tuple[str, str]]:
    with store.read() as connection:
        rows = connection.execute(
            sa.select(t.audit_log.c.actor, t.audit_log.c.action)
            .where(t.audit_log.c.entity == "alert", t.audit_log.c.entity_key == alert_id)
            .order_by(t.audit_log.c.id)
        )
        return [(row.actor, row.action) for row in rows]


def test_a_command_runs_once_with_the_alert_on_stdin_and_in_its_environment(
    metadata_store: MetadataStore, tmp_path: Path
) -> None:
    out = tmp_path / "ran.jsonl"
    action = ActionSettings(command=(sys.executable, "-c", WRITE_INPUT, str(out)))

    alert_id = fire(metadata_store, action, times=3)

    [line] = out.read_text().splitlines()
    assert json.loads(line) == [alert_id, alert_id, "churn", "ks"]
    [(kind, detail)] = action_events(metadata_store, alert_id)
    assert (kind, detail["exit_code"]) == ("action", 0)
    assert isinstance(detail["seconds"], float)
    assert audited(metadata_store, alert_id) == [("watcher", "fire"), ("watcher", "action")]


def test_a_failing_command_is_recorded_with_its_exit_code_and_output(
    metadata_store: MetadataStore,
) -> None:
    script = "import sys; print('no data'); sys.exit(3)"
    alert_id = fire(metadata_store, ActionSettings(command=(sys.executable, "-c", script)))

    [(kind, detail)] = action_events(metadata_store, alert_id)
    assert (kind, detail["exit_code"], detail["stdout"]) == ("action_failed", 3, "no data\n")


def test_a_command_past_its_timeout_is_killed_and_recorded(metadata_store: MetadataStore) -> None:
    action = ActionSettings(
        command=(sys.executable, "-c", "import time; time.sleep(30)"), timeout_seconds=0.5
    )
    alert_id = fire(metadata_store, action)

    [(kind, detail)] = action_events(metadata_store, alert_id)
    assert kind == "action_failed"
    assert "timed out after 0.5 s" in str(detail["error"])


def test_a_callable_gets_the_alert_and_its_outcome_is_audited(
    metadata_store: MetadataStore,
) -> None:
    alert_helpers.CALLS.clear()
    target = f"{alert_helpers.__name__}:remember"

    alert_id = fire(metadata_store, ActionSettings(callable=target), times=2)

    assert [call["id"] for call in alert_helpers.CALLS] == [alert_id]
    [(kind, detail)] = action_events(metadata_store, alert_id)
    assert (kind, detail["returned"], detail["action"]) == ("action", "retrain queued", target)


def test_a_callable_that_raises_is_recorded_not_raised(metadata_store: MetadataStore) -> None:
    alert_id = fire(metadata_store, ActionSettings(callable=f"{alert_helpers.__name__}:explode"))

    [(kind, detail)] = action_events(metadata_store, alert_id)
    assert kind == "action_failed"
    assert detail["error"] == "RuntimeError: cannot retrain churn"
