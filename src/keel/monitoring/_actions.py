"""What an alert runs when it fires: a command or a Python callable, once, on the record.

A command gets the alert as JSON on stdin and ``KEEL_ALERT_*`` variables in its environment,
and is killed after ``timeout_seconds``; a callable ("module:function") gets the alert's dict.
Either way the outcome (exit code or exception, duration, the tail of the output) is written to
``alert_events`` (kind ``action`` or ``action_failed``) and to the audit log as the evaluator's
actor. Whatever happens, it never raises: a failing retrain hook must not stop the alerting.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import time
from typing import Any

import orjson

from keel._monitoring_settings import ActionSettings
from keel.monitoring._alert_store import Alert, record_event
from keel.registry._rows import audit
from keel.store import MetadataStore

logger = logging.getLogger("keel.monitoring.actions")
_OUTPUT_TAIL = 2000


def alert_environment(alert: Alert) -> dict[str, str]:
    return {
        "KEEL_ALERT_ID": alert.id,
        "KEEL_ALERT_RULE": alert.rule,
        "KEEL_ALERT_ENDPOINT": alert.endpoint,
        "KEEL_ALERT_SUBJECT": alert.subject,
        "KEEL_ALERT_SEVERITY": alert.severity,
        "KEEL_ALERT_STATE": alert.state,
    }


def run_action(store: MetadataStore, alert: Alert, action: ActionSettings, *, actor: str) -> bool:
    """Run ``action`` for ``alert`` and record its outcome; True when it succeeded."""
    started = time.perf_counter()
    try:
        if action.command is not None:
            outcome = _run_command(alert, action)
        else:
            outcome = _call(alert, action)
    except Exception as error:  # the hook is user code: any failure is an outcome to record
        outcome = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    outcome["action"] = list(action.command) if action.command else action.callable
    kind = "action" if outcome["ok"] else "action_failed"
    if not outcome["ok"]:
        logger.warning("alert %s: action failed: %s", alert.id, outcome)
    text = orjson.dumps(outcome, default=str).decode()
    with store.write() as connection:
        record_event(connection, alert.id, kind, detail=text)
        audit(connection, actor, "alert", alert.id, kind, None, None, text)
    return bool(outcome["ok"])


def _run_command(alert: Alert, action: ActionSettings) -> dict[str, Any]:
    assert action.command is not None
    try:
        completed = subprocess.run(
            list(action.command),
            input=orjson.dumps(alert.to_dict(), default=str),
            capture_output=True,
            timeout=action.timeout_seconds,
            env={**os.environ, **alert_environment(alert)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {action.timeout_seconds:g} s"}
    except OSError as error:
        return {"ok": False, "error": f"cannot run {action.command[0]}: {error.strerror}"}
    return {
        "ok": completed.returncode == 0,
        "exit_code": completed.returncode,
        "stdout": completed.stdout.decode(errors="replace")[-_OUTPUT_TAIL:],
        "stderr": completed.stderr.decode(errors="replace")[-_OUTPUT_TAIL:],
    }


def _call(alert: Alert, action: ActionSettings) -> dict[str, Any]:
    assert action.callable is not None
    module_name, _, attribute = action.callable.partition(":")
    function = getattr(importlib.import_module(module_name), attribute)
    returned = function(alert.to_dict())
    return {"ok": True, "returned": None if returned is None else str(returned)[:_OUTPUT_TAIL]}
