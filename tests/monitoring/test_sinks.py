"""Alert sinks against real local HTTP servers: retries, exhaustion, a hang, a refusal."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keel._monitoring_settings import SinkSettings
from keel.monitoring._alert_rules import DEFAULT_RULES
from keel.monitoring._alert_store import Alert, AlertStore
from keel.monitoring._alerts import AlertEvaluator
from keel.monitoring._sinks import LogSink, Notifier, WebhookSink, build_sinks
from keel.store import MetadataStore

from .alert_helpers import put_result

T0 = 1_700_000_000.0


class Hook:
    """A webhook receiver on a free port: answers ``statuses`` in turn (then 200), or never
    answers while ``hang`` is set."""

    def __init__(self, statuses: list[int], *, hang: bool = False) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                if hang:
                    hook.release.wait(30)
                    return
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook_factory() -> Iterator[Callable[..., Hook]]:
    started: list[Hook] = []

    def start(statuses: list[int], *, hang: bool = False) -> Hook:
        started.append(Hook(statuses, hang=hang))
        return started[-1]

    yield start
    for hook in started:
        hook.stop()


@pytest.fixture
def alert(metadata_store: MetadataStore) -> Alert:
    put_result(metadata_store, start=T0)
    [rule] = [r for r in DEFAULT_RULES if r.name == "drift"]
    evaluator = AlertEvaluator(metadata_store, [rule], actor="watcher", clock=lambda: T0 + 7200)
    [fired] = evaluator.evaluate().fired
    return fired


def kinds(store: MetadataStore, alert: Alert, sink: str) -> list[tuple[str, int | None]]:
    events = AlertStore(store, "x").events(alert.id)
    return [(event.kind, event.attempt) for event in events if event.sink == sink]


def webhook(url: str, **options: Any) -> WebhookSink:
    return WebhookSink(url, name="hook", backoff_seconds=0.01, **options)


def test_a_webhook_retried_after_failures_delivers_the_alert_json(
    metadata_store: MetadataStore, alert: Alert, hook_factory: Callable[..., Hook]
) -> None:
    hook = hook_factory([500, 503])

    Notifier(metadata_store, [webhook(hook.url, attempts=5)]).notify([(alert, "fired")])

    assert kinds(metadata_store, alert, "hook") == [
        ("notify_failed", 1), ("notify_failed", 2), ("notified", 3),
    ]  # fmt: skip
    body = hook.bodies[-1]
    assert (body["id"], body["event"], body["state"], body["rule"]) == (
        alert.id, "fired", "firing", "drift",
    )  # fmt: skip
    assert (body["endpoint"], body["severity"]) == ("churn", "warning")
    assert body["summary"] == alert.summary
    assert body["evidence"]["p_value"] == pytest.approx(0.001)


def test_running_out_of_attempts_is_recorded(
    metadata_store: MetadataStore, alert: Alert, hook_factory: Callable[..., Hook]
) -> None:
    hook = hook_factory([500, 500, 500, 500])

    Notifier(metadata_store, [webhook(hook.url, attempts=3)]).notify([(alert, "fired")])

    assert kinds(metadata_store, alert, "hook") == [
        ("notify_failed", 1), ("notify_failed", 2), ("notify_failed", 3), ("notify_gave_up", 3),
    ]  # fmt: skip
    assert len(hook.bodies) == 3


def test_the_backoff_doubles_between_attempts(
    metadata_store: MetadataStore, alert: Alert, hook_factory: Callable[..., Hook]
) -> None:
    hook = hook_factory([500, 500, 500])
    sink = WebhookSink(hook.url, name="hook", attempts=3, backoff_seconds=0.2)

    started = time.monotonic()
    sink.send(metadata_store, alert, "fired")
    elapsed = time.monotonic() - started

    # 0.2 s then 0.4 s, each with up to 50 % jitter: between 0.6 s and 0.9 s (+ request time)
    assert 0.6 <= elapsed < 1.5


def test_a_hanging_webhook_holds_the_evaluation_up_no_longer_than_the_deadline(
    metadata_store: MetadataStore, alert: Alert, hook_factory: Callable[..., Hook]
) -> None:
    hook = hook_factory([], hang=True)
    sink = webhook(hook.url, attempts=10, timeout_seconds=0.3, deadline_seconds=1.0)

    started = time.monotonic()
    Notifier(metadata_store, [sink], deadline=0.5).notify([(alert, "fired")])
    assert time.monotonic() - started < 1.0

    time.sleep(1.5)  # the delivery ends by its own deadline, in the background
    recorded = kinds(metadata_store, alert, "hook")
    assert recorded[-1][0] == "notify_gave_up"
    assert {kind for kind, _ in recorded[:-1]} == {"notify_failed"}


def test_a_refused_connection_is_a_recorded_failure(
    metadata_store: MetadataStore, alert: Alert
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    webhook(f"http://127.0.0.1:{port}/", attempts=2).send(metadata_store, alert, "fired")

    events = [e for e in AlertStore(metadata_store, "x").events(alert.id) if e.sink == "hook"]
    assert [e.kind for e in events] == ["notify_failed", "notify_failed", "notify_gave_up"]
    assert "ConnectionRefused" in (events[0].detail or "")


def test_the_log_sink_writes_one_line_per_alert(
    metadata_store: MetadataStore, alert: Alert, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="keel.monitoring.alerts"):
        Notifier(metadata_store, [LogSink()]).notify([(alert, "fired"), (alert, "resolved")])

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert all(alert.id in line and alert.summary in line for line in lines)
    assert kinds(metadata_store, alert, "log") == [("notified", None), ("notified", None)]


def test_configured_sinks_are_built_by_kind() -> None:
    sinks = build_sinks(
        [SinkSettings(kind="log"), SinkSettings(kind="webhook", url="http://h/x", attempts=2)]
    )
    assert isinstance(sinks[0], LogSink)
    assert isinstance(sinks[1], WebhookSink)
    assert (sinks[1].name, sinks[1].attempts) == ("http://h/x", 2)
