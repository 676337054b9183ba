"""The prediction log's promises, checked through a real ``keel serve`` process.

* ``kill -9`` under load loses no prediction whose response was received: 16 clients post for
  about two seconds, the server is killed while their requests are in flight, and a restarted
  server replays what the dead one left into Parquet, every entry exactly once.
* A full disk degrades the log, not the service: requests keep answering, ``/readyz`` (still
  200) and ``/metrics`` say so, a warning is printed, once space is back the kept entries are
  written, and a server stopped before that exits cleanly and says what it lost.

How the disk fills: the test lowers the running server's RLIMIT_FSIZE with ``prlimit(2)``, so
its writes past the limit fail with EFBIG (SIGXFSZ is ignored by Python), the way writes to a
full filesystem fail with ENOSPC (the writer treats every ``OSError`` alike); raising the limit
again is space coming back, without a control endpoint. Unlike a small tmpfs mounted for the
log, it needs neither root nor a mount and leaves nothing behind. It is applied once the server
is up, so startup (migrations, model load, the log's replay) writes normally; afterwards the
server writes no file but the log's: the metadata store is read at startup only, and the
server's output is a pipe, which the limit does not cover. ``predlog/test_failures.py`` covers
the writer's side in detail; these check the whole server.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel import Settings, Workspace
from keel.serving._predlog import Compactor, LogReader
from keel.serving._predlog._segments import SegmentReader, list_segments

from ._server_process import ROW, ServerProcess, deploy_churn

pytestmark = pytest.mark.slow

CLIENTS = 16
LOAD_SECONDS = 2.0
PREDICT = "/v1/endpoints/churn/predict"
FEEDBACK = "/v1/endpoints/churn/feedback"


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    deploy_churn(workspace)
    return workspace


def _log_dir(settings: Settings) -> Path:
    return settings.project_path(settings.serving.prediction_log_dir)


# -- kill -9 under load ----------------------------------------------------------------------------


@dataclass
class _Load:
    """What the clients saw: only responses received in full count as acknowledged."""

    answered: dict[str, tuple[dict[str, Any], Any]] = field(default_factory=dict)
    """Prediction id -> (the record sent, the prediction answered)."""
    feedback: dict[str, int] = field(default_factory=dict)
    """Acknowledged feedback: prediction id -> value."""
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    cut_off: int = 0
    """Requests left without a complete response because the server died."""


def _record(client: int, number: int) -> dict[str, Any]:
    return {
        "age": ((client * 7 + number) % 30) / 10 - 1.5,
        "income": float(number % 4),
        "visits": (client + number) % 6,
    }


async def _load_then_kill(server: ServerProcess, *, seconds: float) -> _Load:
    """Run CLIENTS clients for ``seconds``, then SIGKILL the server while they are posting."""
    load = _Load()
    killed = False
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)

    async def client(http: httpx.AsyncClient, n: int) -> None:
        number = 0
        while True:
            number += 1
            size = (n + number) % 3 + 1  # one record (sent as an object), or a list of 2-3
            records = [_record(n, number * 3 + k) for k in range(size)]
            body = {"inputs": records[0] if size == 1 else records}
            try:
                response = await http.post(PREDICT, json=body)
            except httpx.TransportError:
                if not killed:
                    raise
                load.cut_off += 1
                return
            load.statuses[response.status_code] += 1
            if response.status_code != 200:
                continue
            predictions = response.json()["predictions"]
            for record, row in zip(records, predictions, strict=True):
                load.answered[row["prediction_id"]] = (record, row["prediction"])
            if number % 4:
                continue
            target = predictions[0]["prediction_id"]
            item = {"prediction_id": target, "value": number % 2}
            try:
                response = await http.post(FEEDBACK, json={"feedback": item})
            except httpx.TransportError:
                if not killed:
                    raise
                load.cut_off += 1
                return
            load.statuses[response.status_code] += 1
            if response.status_code == 200:
                load.feedback[target] = item["value"]

    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        tasks = [asyncio.create_task(client(http, n)) for n in range(CLIENTS)]
        await asyncio.sleep(seconds)
        for task in tasks:
            if task.done():  # a client failed before the kill: report that, not the kill
                task.result()
        os.kill(server.pid, signal.SIGKILL)  # the PID started by this test, nothing else
        killed = True
        await asyncio.gather(*tasks)
    return load


def _left_in_segments(log_dir: Path, kind: str) -> list[str]:
    """Ids of the complete entries of ``kind`` in the segments. A segment may end in one torn
    line (a write the kill cut short, so never an acknowledged one), and nothing else is bad."""
    ids: list[str] = []
    for path, _ in list_segments(log_dir, kind):
        reader = SegmentReader(path)
        ids += [record["prediction_id"] for record in reader]
        assert reader.skipped <= 1, f"{path.name}: {reader.skipped} bad lines, not just a tail"
    return ids


@pytest.mark.parametrize(
    ("metadata_url", "fsync"),
    [("sqlite", "never"), ("postgresql", "always")],
    indirect=["metadata_url"],
)
def test_kill_9_under_load_loses_no_answered_prediction(
    served: Workspace, settings: Settings, fsync: str
) -> None:
    """``never`` is the interesting policy: a process kill loses nothing the OS was handed;
    ``always`` (appends wait for the fsync thread) takes another path to the same promise, and
    ``interval`` is ``never`` as far as a process kill goes. PostgreSQL shows that the restart is
    not held up by the dead server's connections."""
    log_dir = _log_dir(settings)
    env = {
        "KEEL_SERVING__FSYNC": fsync,
        # small segments: the kill leaves closed segments as well as the open ones
        "KEEL_SERVING__SEGMENT_MAX_BYTES": str(32 * 1024),
    }
    with ServerProcess(settings, env=env) as server:
        server.wait_ready()
        load = asyncio.run(_load_then_kill(server, seconds=LOAD_SECONDS))
        assert server.kill() == -signal.SIGKILL, server.output

    assert set(load.statuses) == {200}, load.statuses
    assert len(load.answered) >= 50, "the load hardly ran"
    assert load.cut_off >= 1, "the kill cut no request off"
    assert load.feedback
    left = _left_in_segments(log_dir, "predictions")
    assert set(load.answered) <= set(left)
    feedback_left = _left_in_segments(log_dir, "feedback")

    with ServerProcess(settings, env={"KEEL_SERVING__FSYNC": fsync}) as restarted:
        restarted.wait_ready()  # the startup replay is done before the server is ready
        assert list_segments(log_dir) == [], "the restart did not replay every segment"
        reader = LogReader(log_dir)
        logged = reader.query(
            "SELECT prediction_id, endpoint, model_version, inputs, prediction, probabilities "
            "FROM predictions"
        ).to_pylist()
        joined = reader.query(
            "SELECT f.prediction_id, f.value_number FROM feedback f "
            "JOIN predictions p USING (prediction_id)"
        ).to_pylist()
        feedback_rows = reader.query("SELECT count(*) AS n FROM feedback").to_pylist()[0]["n"]
        assert restarted.stop() in (0, -signal.SIGTERM), restarted.output

    counts = collections.Counter(row["prediction_id"] for row in logged)
    assert [i for i, n in counts.items() if n > 1] == []  # replayed exactly once
    assert sorted(counts) == sorted(left)  # every complete entry, none made up
    assert set(load.answered) - set(counts) == set()  # no answered prediction lost
    assert len(logged) >= len(load.answered)
    for row in logged:  # every row whole: nothing torn, nothing mixed up between requests
        assert (row["endpoint"], row["model_version"]) == ("churn", 1)
        inputs = json.loads(row["inputs"])
        assert set(inputs) == set(ROW)
        assert json.loads(row["prediction"]) in (0, 1)
        assert set(json.loads(row["probabilities"])) == {"0", "1"}
        if row["prediction_id"] in load.answered:
            record, prediction = load.answered[row["prediction_id"]]
            assert (inputs, json.loads(row["prediction"])) == (record, prediction)
    assert feedback_rows == len(feedback_left)
    found = {row["prediction_id"]: row["value_number"] for row in joined}
    assert {i: found.get(i) for i in load.feedback} == load.feedback


# -- disk full -------------------------------------------------------------------------------------


# While the disk is full the server writes no file but the log's (the metadata store is read at
# startup only), and SQLite is the one store that is a local file the limit could reach.
SQLITE_ONLY = pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)


def _set_file_size_limit(pid: int, limit: int) -> None:
    """RLIMIT_FSIZE of process ``pid`` (soft limit; the hard one stays)."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def _predict(http: httpx.Client, count: int) -> list[str]:
    ids = []
    for number in range(count):
        response = http.post(PREDICT, json={"inputs": _record(0, number)})
        assert response.status_code == 200, response.text
        ids += [row["prediction_id"] for row in response.json()["predictions"]]
    return ids


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


def _log_status(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    response = http.get("/readyz")
    status: dict[str, Any] = response.json()["prediction_log"]
    return response.status_code, status


@SQLITE_ONLY
def test_a_full_disk_degrades_the_log_while_requests_keep_answering(
    served: Workspace, settings: Settings
) -> None:
    """``/readyz`` stays 200 while the log is degraded: the server answers correctly, and
    taking it out of rotation would turn a logging outage into a serving outage; the detail
    and the metrics say what is wrong."""
    with ServerProcess(settings) as server, httpx.Client(base_url=server.url) as http:
        server.wait_ready()
        before = _predict(http, 3)
        _set_file_size_limit(server.pid, 1)  # the disk is full

        during = _predict(http, 20)
        ready, status = _log_status(http)
        metrics = http.get("/metrics").text

        assert ready == 200
        assert status["degraded"] is True
        assert "File too large" in status["reason"]
        assert status["pending_entries"] == 20
        assert status["dropped_entries_total"] == 0
        assert _metric(metrics, "keel_prediction_log_write_errors_total") >= 1
        assert _metric(metrics, "keel_prediction_log_degraded") == 1
        assert _metric(metrics, "keel_prediction_log_pending_entries") == 20
        server.wait_for_output("prediction log degraded")
        assert server.kill() == -signal.SIGKILL

    # What the OS was handed before the disk filled is all there, nothing torn after it.
    result = Compactor(_log_dir(settings)).run_once()
    assert (result.errors, result.skipped_lines) == (0, 0)
    logged = LogReader(_log_dir(settings)).query("SELECT prediction_id FROM predictions")
    assert sorted(logged.column(0).to_pylist()) == sorted(before)
    assert set(during).isdisjoint(logged.column(0).to_pylist())


@SQLITE_ONLY
def test_entries_kept_while_the_disk_is_full_are_written_when_space_returns(
    served: Workspace, settings: Settings
) -> None:
    """No new request is needed: the log's retry timer writes the kept entries, and with
    ``fsync="always"`` also has them fsynced (not only once the next request comes)."""
    env = {"KEEL_SERVING__FSYNC": "always"}
    with ServerProcess(settings, env=env) as server, httpx.Client(base_url=server.url) as http:
        server.wait_ready()
        before = _predict(http, 3)
        _, hard = resource.prlimit(server.pid, resource.RLIMIT_FSIZE)
        _set_file_size_limit(server.pid, 1)
        during = _predict(http, 20)
        full = _log_status(http)[1]
        assert full["degraded"] is True

        _set_file_size_limit(server.pid, hard)  # space is back
        deadline = time.monotonic() + 10
        while True:
            status = _log_status(http)[1]
            written = not status["degraded"] and status["pending_entries"] == 0
            if written and status["fsyncs_total"] > full["fsyncs_total"]:
                break
            assert time.monotonic() < deadline, f"kept entries not written and synced: {status}"
            time.sleep(0.1)
        assert status["dropped_entries_total"] == 0
        assert status["entries_written_total"] == 23
        server.wait_for_output("prediction log recovered")
        after = _predict(http, 2)
        assert server.kill() == -signal.SIGKILL  # written means handed to the OS: none is lost

    result = Compactor(_log_dir(settings)).run_once()
    assert (result.errors, result.skipped_lines) == (0, 0)
    logged = LogReader(_log_dir(settings)).query("SELECT prediction_id FROM predictions")
    ids = logged.column(0).to_pylist()
    assert sorted(ids) == sorted(before + during + after)  # each exactly once


@SQLITE_ONLY
def test_a_server_stopped_while_the_disk_is_full_exits_and_says_what_it_lost(
    served: Workspace, settings: Settings
) -> None:
    with ServerProcess(settings) as server, httpx.Client(base_url=server.url) as http:
        server.wait_ready()
        before = _predict(http, 3)
        _set_file_size_limit(server.pid, 1)
        _predict(http, 20)

        assert server.stop() in (0, -signal.SIGTERM), server.output

    assert "Application shutdown complete" in server.output
    assert "closed with 20 entries it could not write" in server.output
    result = Compactor(_log_dir(settings)).run_once()
    assert (result.errors, result.skipped_lines) == (0, 0)
    logged = LogReader(_log_dir(settings)).query("SELECT prediction_id FROM predictions")
    assert sorted(logged.column(0).to_pylist()) == sorted(before)
