"""Where alerts go: the log, and webhooks that get a JSON POST.

    notifier = Notifier(store, [LogSink(), WebhookSink("https://hooks.example.com/keel")])
    notifier.notify([(alert, "fired")])

A webhook is tried up to ``attempts`` times, waiting ``backoff * 2**n`` seconds (plus up to
50 % random jitter, so many keel processes do not retry in step) between attempts; each failed
attempt is an ``alert_events`` row (``notify_failed``), success is ``notified``, and running
out of attempts or of time is ``notify_gave_up``. Deliveries run on threads: :meth:`notify`
waits for them at most ``deadline`` seconds, so a slow or unreachable webhook holds up an
evaluation by that bound at most (late deliveries finish, and are recorded, in the background).

The body of a webhook POST::

    {"id": "al_...", "event": "fired", "state": "firing", "rule": "drift",
     "endpoint": "churn", "subject": "age", "severity": "warning", "summary": "...",
     "value": 0.31, "threshold": 0.2, "window_start": ..., "window_end": ...,
     "started_at": ..., "evidence": {...}}
"""

from __future__ import annotations

import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Protocol

import orjson

from keel._monitoring_settings import SinkSettings
from keel.errors import KeelError
from keel.monitoring._alert_store import Alert, record_event
from keel.store import MetadataStore

logger = logging.getLogger("keel.monitoring.alerts")
_MAX_WORKERS = 8


class Sink(Protocol):
    name: str

    def send(self, store: MetadataStore, alert: Alert, event: str) -> None:
        """Deliver one alert event, recording every attempt in ``alert_events``. Called on a
        notifier thread; must return by its own deadline and never raise."""


def payload(alert: Alert, event: str) -> dict[str, Any]:
    """The JSON body a webhook receives (and what a log line summarises)."""
    body = {"event": event, **alert.to_dict()}
    for hidden in ("fingerprint", "last_seen_at"):
        body.pop(hidden, None)
    return body


def _record(store: MetadataStore, alert_id: str, kind: str, sink: str, **fields: Any) -> None:
    try:
        with store.write() as connection:
            record_event(connection, alert_id, kind, sink=sink, **fields)
    except KeelError as error:  # the database is down: the log still says what happened
        logger.error("alert %s: cannot record %s from %s: %s", alert_id, kind, sink, error)


class LogSink:
    """One log line per alert event, on the ``keel.monitoring.alerts`` logger."""

    def __init__(self, name: str = "log") -> None:
        self.name = name

    def send(self, store: MetadataStore, alert: Alert, event: str) -> None:
        level = logging.INFO if event == "resolved" else logging.WARNING
        logger.log(
            level,
            "alert %s %s: [%s] %s (rule %s, endpoint %s)",
            alert.id, event, alert.severity, alert.summary, alert.rule, alert.endpoint,
        )  # fmt: skip
        _record(store, alert.id, "notified", self.name, detail=event)


class WebhookSink:
    """HTTP POST of :func:`payload` as JSON; any 2xx answer is a delivery."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        deadline_seconds: float = 15.0,
        headers: dict[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.name = name or url
        self.attempts = attempts
        self.backoff = backoff_seconds
        self.timeout = timeout_seconds
        self.deadline = deadline_seconds
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._rng = rng or random.Random()

    def send(self, store: MetadataStore, alert: Alert, event: str) -> None:
        body = orjson.dumps(payload(alert, event), default=str)
        give_up_at = time.monotonic() + self.deadline
        for attempt in range(1, self.attempts + 1):
            left = give_up_at - time.monotonic()
            if left <= 0:
                break
            error = self._post(body, min(self.timeout, left))
            if error is None:
                _record(store, alert.id, "notified", self.name, attempt=attempt, detail=event)
                return
            _record(store, alert.id, "notify_failed", self.name, attempt=attempt, detail=error)
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1) * (1 + self._rng.random() / 2)
                time.sleep(max(0.0, min(delay, give_up_at - time.monotonic())))
        else:
            attempt = self.attempts
        logger.error("alert %s: webhook %s gave up after %d attempts", alert.id, self.name, attempt)
        reason = f"{event}: gave up after {attempt} attempts ({self.deadline:g} s deadline)"
        _record(store, alert.id, "notify_gave_up", self.name, attempt=attempt, detail=reason)

    def _post(self, body: bytes, timeout: float) -> str | None:
        """None when delivered, else why not."""
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return None
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return f"{type(reason).__name__}: {reason}"


def build_sinks(configured: Iterable[SinkSettings]) -> list[Sink]:
    sinks: list[Sink] = []
    for settings in configured:
        if settings.kind == "log":
            sinks.append(LogSink(settings.name or "log"))
        else:
            assert settings.url is not None  # the settings model requires it
            sinks.append(
                WebhookSink(
                    settings.url,
                    name=settings.name,
                    attempts=settings.attempts,
                    backoff_seconds=settings.backoff_seconds,
                    timeout_seconds=settings.timeout_seconds,
                    deadline_seconds=settings.deadline_seconds,
                    headers=dict(settings.headers),
                )
            )
    return sinks


class Notifier:
    """Sends alert events to every sink in parallel, waiting at most ``deadline`` seconds."""

    def __init__(self, store: MetadataStore, sinks: Sequence[Sink], *, deadline: float = 20.0):
        self.store = store
        self.sinks = list(sinks)
        self.deadline = deadline

    def notify(self, changes: Sequence[tuple[Alert, str]]) -> None:
        if not self.sinks or not changes:
            return
        # Not a `with` block: leaving it would wait for every delivery, past the deadline.
        pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="keel-alert-sink")
        futures = [
            pool.submit(_safe_send, sink, self.store, alert, event)
            for alert, event in changes
            for sink in self.sinks
        ]
        _, late = wait(futures, timeout=self.deadline)
        pool.shutdown(wait=False)
        if late:
            logger.warning("%d alert deliveries still running after %gs", len(late), self.deadline)

    def __repr__(self) -> str:
        return f"Notifier({[sink.name for sink in self.sinks]})"


def _safe_send(sink: Sink, store: MetadataStore, alert: Alert, event: str) -> None:
    try:
        sink.send(store, alert, event)
    except Exception:  # a sink bug must not take the other deliveries down with it
        logger.exception("alert %s: sink %s failed", alert.id, sink.name)
