"""``keel serve --workers N``: worker processes sharing a port, their metrics merged on every
scrape, every prediction logged once; and prediction-log compaction from several processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.serving._predlog import Compactor, LogReader, query
from keel.serving._predlog._segments import list_segments
from keel.serving._server import MULTIPROC_ENV, worker_app

FRAME = pd.DataFrame(
    {
        "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
        "income": [1, 0, 2, 1, 0, 3.0],
        "visits": [1, 4, 2, 0, 3, 5],
    }
)
ROW = {"age": 0.3, "income": 1.5, "visits": 2}
SLOW_SECONDS = 2.0


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Worker processes do not depend on the metadata backend: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


def _slow_model() -> Any:
    """A regressor that takes SLOW_SECONDS a call. Its class is local, so cloudpickle stores it
    by value and the spawned workers can load it without importing this test module."""

    class Slow:
        def predict(self, frame: Any) -> Any:
            time.sleep(SLOW_SECONDS)
            return np.zeros(len(frame))

    return Slow()


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """Endpoints ``churn`` (a LogisticRegression) and ``slow`` (SLOW_SECONDS a prediction)."""
    model = LogisticRegression().fit(FRAME, [1, 0, 1, 1, 0, 0])
    workspace.registry.register("churn", model, input_example=FRAME)
    workspace.deployments.create_endpoint("churn", "models:/churn/1")
    workspace.registry.register("slow", _slow_model(), input_example=FRAME)
    workspace.deployments.create_endpoint("slow", "models:/slow/1")
    return workspace


# -- a real `keel serve --workers 2` ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server:
    """``keel serve --workers 2`` in a session of its own; only ever signalled by its PID (or,
    as a last resort, its process group, which is its own)."""

    def __init__(self, settings: Settings, temporary: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        keel = Path(sys.executable).with_name("keel")  # the console script next to this Python
        environment = {
            **os.environ,
            "KEEL_METADATA_URL": settings.metadata_url,
            "KEEL_ARTIFACTS_URL": settings.artifacts_url,
            "TMPDIR": str(temporary),  # where the server makes its run's directory
        }
        environment.pop(MULTIPROC_ENV, None)
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [str(keel), "--dir", str(settings.project_dir), "serve", "--workers", "2", *address],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers are in it too
        )
        self.pid = self.process.pid
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def metrics(self) -> bytes:
        response = httpx.get(f"{self.url}/metrics")  # a new connection: any worker answers
        assert response.status_code == 200
        return response.content

    def wait_for_workers(self, count: int, *, without: Collection[str] = ()) -> set[str]:
        """The pids of ``count`` workers that loaded both models (none of ``without``)."""
        deadline = time.monotonic() + 120
        while True:
            try:
                body = self.metrics()
                pids = _pids(body, "keel_model_load_seconds", endpoint="churn")
                both = pids == _pids(body, "keel_model_load_seconds", endpoint="slow")
                if len(pids) == count and both and not pids & set(without):
                    return pids
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, f"workers never became ready:\n{self.output}"
            time.sleep(0.2)

    def settled(self, check: Callable[[bytes], bool], timeout: float = 30) -> bytes:
        """The first scrape ``check`` accepts: a request is counted just after its response is
        sent, and a worker's sampled values are published every second."""
        deadline = time.monotonic() + timeout
        while not check(body := self.metrics()):
            assert time.monotonic() < deadline, body.decode()
            time.sleep(0.1)
        return body

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM to the server's PID; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)  # the pipe ends when the last process holding it exits
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def _serving(settings: Settings, temporary: Path) -> Iterator[_Server]:
    server = _Server(settings, temporary)
    try:
        yield server
    finally:
        server.kill_group()  # nothing left behind, whatever happened


def _samples(body: bytes, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def _value(body: bytes, name: str, **labels: str) -> float:
    return sum(value for _, value in _samples(body, name, **labels))


def _pids(body: bytes, name: str, **labels: str) -> set[str]:
    return {found["pid"] for found, _ in _samples(body, name, **labels)}


def _predict(url: str, count: int) -> list[str]:
    """``count`` predictions of endpoint churn from 4 threads, each on a new connection (so
    the kernel hands them to either worker); their prediction ids."""

    def one(_: int) -> str:
        response = httpx.post(f"{url}/v1/endpoints/churn/predict", json={"inputs": ROW})
        assert response.status_code == 200, response.text
        prediction_id: str = response.json()["predictions"][0]["prediction_id"]
        return prediction_id

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def _gone(pid: int, *, group: bool = False, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0) if group else os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_two_workers_share_the_port_the_metrics_and_the_log(
    served: Workspace, settings: Settings, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with _serving(settings, temporary) as server:
        workers = server.wait_for_workers(2)
        assert [entry.name[:11] for entry in temporary.iterdir()] == ["keel-serve-"]

        ids = _predict(server.url, 40)

        def counted(total: int, pids: set[str]) -> Callable[[bytes], bool]:
            return lambda body: (
                _value(body, "keel_requests_total", endpoint="churn", code="200") == total
                and _value(body, "keel_requests_in_flight") == 1  # the scrape itself
                and _pids(body, "process_resident_memory_bytes") == pids
            )

        server.settled(counted(40, workers))
        scrapes = [server.metrics() for _ in range(6)]  # new connections: both workers answer
        assert all(counted(40, workers)(body) for body in scrapes)
        body = scrapes[-1]
        assert _value(body, "keel_queue_wait_seconds_count", endpoint="churn") == 40
        assert _value(body, "keel_batch_rows_sum", endpoint="churn") == 40

        # A worker killed outright is replaced; what it counted stays, its live gauges go.
        killed = min(workers)
        os.kill(int(killed), signal.SIGKILL)
        survivor = workers - {killed}
        workers_after = server.wait_for_workers(2, without={killed})
        assert survivor < workers_after
        ids += _predict(server.url, 40)
        server.settled(counted(80, workers_after))
        assert all(counted(80, workers_after)(server.metrics()) for _ in range(4))

        # SIGTERM lets the request in flight finish before the workers stop.
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(
                httpx.post,
                f"{server.url}/v1/endpoints/slow/predict",
                json={"inputs": ROW},
                timeout=60,
            )
            time.sleep(SLOW_SECONDS / 2)
            code = server.stop()
            answered = slow.result()

        output = server.output
        assert code == 0, output
        assert answered.status_code == 200, output
        ids.append(answered.json()["predictions"][0]["prediction_id"])
        # the survivor and the replacement shut down cleanly (the killed one could not)
        assert output.count("Application shutdown complete") == 2, output
        for pid in workers | workers_after:
            assert _gone(int(pid)), f"worker {pid} is still running"
        assert _gone(server.pid, group=True), "something of the server is still running"
        assert list(temporary.iterdir()) == []  # the run's directory (and metrics) removed

    log_dir = settings.project_path(settings.serving.prediction_log_dir)
    Compactor(log_dir).run_once()
    assert list_segments(log_dir) == []
    logged = LogReader(log_dir).query("SELECT prediction_id FROM predictions").to_pylist()
    assert sorted(row["prediction_id"] for row in logged) == sorted(ids)  # each exactly once
    writers = {part.stem.split("-")[2] for part in log_dir.rglob("part-*.parquet")}
    assert workers <= writers  # both first workers answered predictions


def test_a_worker_that_cannot_build_its_app_stops_with_startup_failure(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "metrics").mkdir(parents=True)
    spec = {
        "settings": settings.model_dump(mode="json"),
        "endpoints": ["gone"],
        "max_queue": 8,
        "auth": False,
    }
    (run_dir / "worker.json").write_text(json.dumps(spec))
    monkeypatch.setenv(MULTIPROC_ENV, str(run_dir / "metrics"))

    with pytest.raises(SystemExit) as exit_:
        worker_app()

    assert exit_.value.code == 3  # uvicorn's STARTUP_FAILURE: the supervisor stops, no restarts
    assert "EndpointNotFound" in (run_dir / "failed").read_text()


# -- the prediction log from several processes -----------------------------------------------------

WRITER = """
    import sys, threading
    from keel.serving._predlog import (
        Compactor, PredictionEntry, PredictionLog, new_prediction_id,
    )

    log_dir, count = sys.argv[1], int(sys.argv[2])
    compactor = Compactor(log_dir)
    stop = threading.Event()

    def compact() -> None:
        while not stop.is_set():
            compactor.run_once()

    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    thread = threading.Thread(target=compact)
    thread.start()
    with PredictionLog(log_dir, fsync="never", segment_max_bytes=2048) as log:
        for number in range(count):
            log.append_sync(PredictionEntry(
                prediction_id=new_prediction_id(), endpoint="churn", model="churn",
                model_version=1, inputs={"n": number}, prediction=number % 2,
            ))
    stop.set()
    thread.join()
    print(compactor.errors_total, compactor.entries_total, flush=True)
"""


def test_compactors_in_several_processes_compact_each_entry_once(tmp_path: Path) -> None:
    """What a server of several workers does: each writes its own segments and compacts
    everyone's closed ones, at the same time."""
    log_dir = tmp_path / "predictions"
    count, processes = 400, 3
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(log_dir), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        outputs = [child.communicate("go\n", timeout=120)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    assert [child.returncode for child in children] == [0] * processes
    errors, compacted = zip(*(map(int, out.split()) for out in outputs), strict=True)
    assert errors == (0,) * processes
    final = Compactor(log_dir).run_once()
    assert final.errors == 0
    assert sum(compacted) + final.entries == count * processes
    assert list_segments(log_dir) == []
    assert [p.name for p in log_dir.rglob(".*.tmp")] == []
    total, distinct = (
        query("SELECT count(*), count(DISTINCT prediction_id) FROM predictions", log_dir)
        .to_pylist()[0]
        .values()
    )
    assert total == distinct == count * processes
