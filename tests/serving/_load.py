"""Load on a real ``keel serve`` while a test breaks something, and what every request got.

    with Load(server.url, clients=8, headers=auth) as load:   # posting from a thread of its own
        time.sleep(1.5)
        redis.stop()                                          # the test breaks things meanwhile
        ...
    load.statuses          # Counter of HTTP statuses; load.failures: requests left unanswered
    load.answered_ids      # prediction ids of every 200

Each client is an asyncio task posting ``/v1/endpoints/churn/predict`` one request at a time
(one record from a small set, so a cache sees repeats). Every request is recorded with the
monotonic times it started and ended, so a test can ask what happened before or after an event
it timed with the same clock. A transport error (connection refused or cut) is recorded, never
raised, and the client pauses briefly before its next request so a dead server is not spun on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PREDICT = "/v1/endpoints/churn/predict"
DISTINCT_RECORDS = 16


def record(number: int) -> dict[str, Any]:
    """One of DISTINCT_RECORDS churn records."""
    n = number % DISTINCT_RECORDS
    return {"age": n / 10 - 0.8, "income": float(n % 4), "visits": n % 6}


@dataclass(frozen=True)
class Answer:
    """One request: when it started and ended, its status (None: no HTTP answer)."""

    started: float
    ended: float
    status: int | None
    ids: tuple[str, ...] = ()
    version: int | None = None
    """The model version that answered a 200."""
    error: str | None = None


@dataclass
class Load:
    """``clients`` clients posting to ``url`` until the ``with`` block ends (see the module)."""

    url: str
    clients: int = 8
    headers: dict[str, str] = field(default_factory=dict)
    keepalive: bool = True
    """False: a new connection per request, so the kernel spreads them over the workers."""
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._error: BaseException | None = None
        self.started = 0.0
        self.ended = 0.0

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Let every client finish its request in flight, then return."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the load's clients did not stop"
        self.ended = time.monotonic()
        if self._error is not None:
            raise self._error

    async def _run(self) -> None:
        limits = httpx.Limits(
            max_connections=self.clients,
            max_keepalive_connections=self.clients if self.keepalive else 0,
        )
        try:
            async with httpx.AsyncClient(
                base_url=self.url, headers=self.headers, timeout=30, limits=limits
            ) as http:
                await asyncio.gather(*(self._client(http, n) for n in range(self.clients)))
        except BaseException as error:  # a bug in the load itself: raised by stop()
            self._error = error

    async def _client(self, http: httpx.AsyncClient, n: int) -> None:
        number = n
        while not self._stop.is_set():
            number += self.clients
            started = time.monotonic()
            try:
                response = await http.post(PREDICT, json={"inputs": record(number)})
            except httpx.TransportError as error:
                ended = time.monotonic()
                self.answers.append(Answer(started, ended, None, error=repr(error)))
                await asyncio.sleep(0.02)
                continue
            ended = time.monotonic()
            if response.status_code != 200:
                self.answers.append(
                    Answer(started, ended, response.status_code, error=response.text)
                )
                continue
            answer = response.json()
            ids = tuple(row["prediction_id"] for row in answer["predictions"])
            version = answer["model"]["version"]
            self.answers.append(Answer(started, ended, 200, ids, version))

    # -- what happened -----------------------------------------------------------------------------

    @property
    def statuses(self) -> collections.Counter[int | None]:
        """HTTP statuses answered (None counts requests that got no answer)."""
        return collections.Counter(answer.status for answer in self.answers)

    @property
    def failures(self) -> list[Answer]:
        """Requests answered with anything but 200, or not at all."""
        return [answer for answer in self.answers if answer.status != 200]

    @property
    def answered_ids(self) -> set[str]:
        return {i for answer in self.answers if answer.status == 200 for i in answer.ids}

    def between(self, start: float, end: float) -> list[Answer]:
        """Requests that started and ended within [start, end]."""
        return [a for a in self.answers if a.started >= start and a.ended <= end]

    def summary(self) -> str:
        seconds = (self.ended or time.monotonic()) - self.started
        slowest = max((a.ended - a.started for a in self.answers), default=0.0)
        return (
            f"{len(self.answers)} requests in {seconds:.1f} s from {self.clients} clients, "
            f"statuses {dict(self.statuses)}, slowest {slowest * 1000:.0f} ms"
        )


def wait_until(check: Any, what: str, timeout: float = 15, interval: float = 0.05) -> Any:
    """The first truthy result of ``check()``; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            result = check()
            if result:
                return result
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(interval)
