"""The server's Prometheus metrics: names, types and labels, sampled values, overload and
compaction reporting, and multiprocess mode (worker processes started here, merged on scrape)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from keel import Workspace
from keel.serving._batching import BatchRecord
from keel.serving._metrics import ServingMetrics
from keel.serving._metrics_sources import Tally
from keel.serving._predlog import Compactor, PredictionEntry, PredictionLog, new_prediction_id
from keel.serving._server import serving_app

FRAME = pd.DataFrame(
    {
        "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
        "income": [1, 0, 2, 1, 0, 3.0],
        "visits": [1, 4, 2, 0, 3, 5],
    }
)
ROW = {"age": 0.3, "income": 1.5, "visits": 2}


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Metrics do not depend on the metadata backend: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


def _families(body: bytes) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def _samples(body: bytes, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` (a full sample name: ``..._total``)."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    ]


def _value(body: bytes, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for found, value in _samples(body, name)
        if all(found.get(k) == v for k, v in labels.items())
    )


def _entry(number: int) -> PredictionEntry:
    return PredictionEntry(
        prediction_id=new_prediction_id(),
        endpoint="churn",
        model="churn",
        model_version=1,
        revision=1,
        inputs={"number": number},
        prediction=number % 2,
        probabilities=None,
        latency_ms=1.0,
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PredictionLog]:
    with PredictionLog(tmp_path / "predictions", fsync="never") as log:
        yield log


# -- one process -----------------------------------------------------------------------------------


EXPECTED = {
    # family name (as the parser reports it): type, label names
    "keel_requests": ("counter", {"endpoint", "model_version", "api", "code"}),
    "keel_request_duration_seconds": ("histogram", {"endpoint", "model_version"}),
    "keel_request_errors": ("counter", {"endpoint", "type"}),
    "keel_requests_in_flight": ("gauge", set()),
    "keel_requests_queued": ("gauge", {"endpoint"}),
    "keel_queue_wait_seconds": ("histogram", {"endpoint"}),
    "keel_batch_rows": ("histogram", {"endpoint"}),
    "keel_batches_inline": ("counter", {"endpoint"}),
    "keel_batch_duration_seconds": ("histogram", {"endpoint"}),
    "keel_model_load_seconds": ("gauge", {"endpoint", "model", "model_version"}),
    "keel_prediction_log_entries_written": ("counter", set()),
    "keel_prediction_log_write_errors": ("counter", set()),
    "keel_prediction_log_dropped_entries": ("counter", set()),
    "keel_prediction_log_fsync_errors": ("counter", set()),
    "keel_prediction_log_degraded": ("gauge", set()),
    "keel_prediction_log_pending_entries": ("gauge", set()),
    "keel_prediction_log_lag_seconds": ("gauge", set()),
    "keel_prediction_log_compaction_runs": ("counter", set()),
    "keel_prediction_log_compaction_errors": ("counter", set()),
    "keel_prediction_log_compacted_entries": ("counter", set()),
    "process_cpu_seconds": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
}


def test_metric_names_types_and_labels(log: PredictionLog) -> None:
    metrics = ServingMetrics(log, compactor=Compactor(log.directory))
    metrics.request("churn", "1", "v1", 200, 0.004)
    metrics.error("churn", "overloaded")
    metrics.batch_observer("churn")(BatchRecord(2, 2, (0.001, 0.002), 0.003, False))
    metrics.model_loaded("churn", "churn", 1, 0.25)
    metrics.watch_queue("churn", lambda: 0)

    families = _families(metrics.exposition())

    for name, (kind, labels) in EXPECTED.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        sample_labels = {key for sample in family.samples for key in sample.labels}
        assert sample_labels - {"le"} == labels, name
    for name, family in families.items():
        if name.endswith("_created"):  # creation times prometheus-client adds
            continue
        assert family.documentation, f"{name} has no help text"
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {f"{name}_total", f"{name}_created"}
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        for unit in ("seconds", "bytes"):  # base units, named last
            if unit in name:
                assert name.endswith(f"_{unit}"), name
        assert "_ms" not in name, name
        assert "milliseconds" not in name, name


def test_requests_refused_by_a_full_queue_are_errors_of_type_overloaded() -> None:
    metrics = ServingMetrics()
    metrics.request("churn", "1", "v1", 503, 0.001)
    metrics.error("churn", "overloaded")

    body = metrics.exposition()

    assert _value(body, "keel_request_errors_total", type="overloaded") == 1
    assert _value(body, "keel_requests_total", code="503") == 1


def test_every_request_of_a_batch_has_its_queue_wait_observed() -> None:
    metrics = ServingMetrics()
    observe = metrics.batch_observer("churn")
    observe(BatchRecord(3, 5, (0.0001, 0.004, 0.3), 0.01, False))

    body = metrics.exposition()

    assert _value(body, "keel_queue_wait_seconds_count", endpoint="churn") == 3
    assert _value(body, "keel_queue_wait_seconds_sum") == pytest.approx(0.3041)
    assert _value(body, "keel_queue_wait_seconds_bucket", le="0.005") == 2
    assert _value(body, "keel_batch_rows_sum", endpoint="churn") == 5


def test_model_calls_run_on_the_loop_thread_are_counted() -> None:
    metrics = ServingMetrics()
    observe = metrics.batch_observer("churn")
    observe(BatchRecord(1, 1, (0.0,), 0.0001, False, inline=True))
    observe(BatchRecord(1, 1, (0.0,), 0.002, False, inline=False))

    body = metrics.exposition()

    assert _value(body, "keel_batches_inline_total", endpoint="churn") == 1
    assert _value(body, "keel_batch_rows_count", endpoint="churn") == 2


def test_sampled_values_are_read_when_scraped(log: PredictionLog) -> None:
    compactor = Compactor(log.directory)
    metrics = ServingMetrics(log, compactor=compactor)
    queued = {"churn": 3}
    metrics.watch_queue("churn", lambda: queued["churn"])
    log.append_sync([_entry(n) for n in range(4)])

    first = metrics.exposition()
    log.rotate()
    compactor.run_once()
    log.append_sync([_entry(n) for n in range(2)])
    queued["churn"] = 0
    second = metrics.exposition()
    third = metrics.exposition()  # nothing new: counters must not count twice

    assert _value(first, "keel_requests_queued", endpoint="churn") == 3
    assert _value(first, "keel_prediction_log_entries_written_total") == 4
    assert _value(first, "keel_prediction_log_compaction_runs_total") == 0
    assert _value(second, "keel_requests_queued", endpoint="churn") == 0
    for body in (second, third):
        assert _value(body, "keel_prediction_log_entries_written_total") == 6
        assert _value(body, "keel_prediction_log_compaction_runs_total") == 1
        assert _value(body, "keel_prediction_log_compacted_entries_total") == 4
        assert _value(body, "keel_prediction_log_compaction_errors_total") == 0
        assert _value(body, "keel_prediction_log_degraded") == 0
        lag = _value(body, "keel_prediction_log_lag_seconds")
        assert 0 <= lag < 60  # the open segment of the last two entries


def test_one_process_needs_no_thread(log: PredictionLog) -> None:
    metrics = ServingMetrics(log)
    metrics.start()
    metrics.close()
    assert metrics.multiprocess_dir is None
    assert "keel-metrics" not in {thread.name for thread in threading.enumerate()}


# -- through the app: overload, readiness ----------------------------------------------------------


class _Slow:
    """A regressor that takes its time (a model call long enough to fill a queue)."""

    def predict(self, frame: pd.DataFrame) -> Any:
        time.sleep(0.8)
        return np.zeros(len(frame))


def test_a_full_queue_is_counted_and_readyz_shows_compaction(workspace: Workspace) -> None:
    workspace.registry.register("slow", _Slow(), input_example=FRAME)
    workspace.deployments.create_endpoint("slow", "models:/slow/1")
    app = serving_app(workspace, max_queue=1)

    async def scenario() -> tuple[list[int], dict[str, Any], bytes]:
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:

                async def predict() -> int:
                    url = "/v1/endpoints/slow/predict"
                    return (await client.post(url, json={"inputs": ROW})).status_code

                running = asyncio.create_task(predict())
                await asyncio.sleep(0.15)  # its batch is in the model now
                queued = asyncio.create_task(predict())
                await asyncio.sleep(0.05)  # ... and this one waits in the queue (max_queue=1)
                refused = await predict()
                codes = [await running, await queued, refused]
                ready = (await client.get("/readyz")).json()
                body = (await client.get("/metrics")).content
            return codes, ready, body
        finally:
            await app.shutdown()

    codes, ready, body = asyncio.run(scenario())

    assert codes == [200, 200, 503]
    assert _value(body, "keel_request_errors_total", endpoint="slow", type="overloaded") == 1
    assert _value(body, "keel_requests_total", endpoint="slow", code="503") == 1
    assert _value(body, "keel_queue_wait_seconds_count", endpoint="slow") == 2
    assert app.metrics.compactor is app.compactor
    compaction = ready["compaction"]
    assert compaction["last_run_at"] == pytest.approx(time.time(), abs=60)  # ran at startup
    assert compaction["last_error"] is None
    assert compaction["last_error_at"] is None
    assert compaction["runs_total"] >= 1


# -- several processes -----------------------------------------------------------------------------

WORKER = """
    import os, sys
    from keel.serving._metrics import ServingMetrics
    from keel.serving._predlog import PredictionEntry, PredictionLog, new_prediction_id

    directory, requests, log_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log = PredictionLog(log_dir, fsync="never") if log_dir != "-" else None
    metrics = ServingMetrics(log, multiprocess_dir=directory, sample_seconds=0.05)
    for _ in range(requests):
        metrics.request("churn", "1", "v1", 200, 0.002)
    metrics.in_flight.inc()  # still "handling" one when it stops
    metrics.model_loaded("churn", "churn", 1, 0.5)
    metrics.refresh()
    metrics.start()  # from now on only the sampler publishes
    if log is not None:
        log.append_sync([
            PredictionEntry(
                prediction_id=new_prediction_id(), endpoint="churn", model="churn",
                model_version=1, revision=1, inputs={"n": n}, prediction=0,
                probabilities=None, latency_ms=1.0,
            )
            for n in range(4)
        ])
    print(os.getpid(), flush=True)
    sys.stdin.readline()  # until the test says stop
    if log is not None:
        log.close()
    metrics.close()
"""


def _worker(directory: Path, requests: int, log_dir: Path | None) -> subprocess.Popen[str]:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(WORKER),
            str(directory),
            str(requests),
            str(log_dir) if log_dir is not None else "-",
        ],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _pids(body: bytes, name: str) -> set[str]:
    return {labels["pid"] for labels, _ in _samples(body, name)}


def test_several_processes_are_merged_and_dead_ones_forgotten(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    log_dir = tmp_path / "predictions"
    first = _worker(directory, 3, None)
    second = _worker(directory, 2, log_dir)
    try:
        assert first.stdout is not None
        assert second.stdout is not None
        pid_first, pid_second = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert pid_first.isdigit()
        assert pid_second.isdigit()
        reader = ServingMetrics(multiprocess_dir=directory)  # what any worker's scrape returns

        both = reader.exposition()
        first.communicate("stop\n", timeout=30)  # a worker that is gone...
        deadline = time.monotonic() + 10
        while True:  # (the sampler publishes what the second worker's log wrote)
            after = reader.exposition()
            if _value(after, "keel_prediction_log_entries_written_total") == 4:
                break
            assert time.monotonic() < deadline, "the sampler never published the log's counters"
            time.sleep(0.05)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.communicate("stop\n", timeout=30)

    assert _value(both, "keel_requests_total") == 5  # summed over processes
    assert _value(both, "keel_requests_in_flight") == 2  # livesum
    assert _pids(both, "keel_model_load_seconds") == {pid_first, pid_second}  # liveall
    assert _pids(both, "process_resident_memory_bytes") == {pid_first, pid_second}
    # ...still counts in counters, and no longer in live gauges
    assert _value(after, "keel_requests_total") == 5
    assert _value(after, "keel_requests_in_flight") == 1
    assert _pids(after, "keel_model_load_seconds") == {pid_second}
    assert _pids(after, "process_resident_memory_bytes") == {pid_second}
    assert _pids(after, "process_cpu_seconds_total") == {pid_first, pid_second}
    assert not list(directory.glob(f"gauge_live*_{pid_first}.db"))
    assert _value(after, "keel_prediction_log_degraded") == 0


def test_a_tally_publishes_what_was_counted_since_it_last_did_and_nothing_twice() -> None:
    registry = CollectorRegistry()
    counter = Counter("things", "Things.", ["endpoint", "result"], registry=registry)
    tally = Tally(counter)
    tally.counts["a", "hit"] += 2
    tally.counts["a", "miss"] += 1

    tally.publish()
    tally.publish()
    tally.counts["a", "hit"] += 3
    tally.publish()

    assert registry.get_sample_value("things_total", {"endpoint": "a", "result": "hit"}) == 5
    assert registry.get_sample_value("things_total", {"endpoint": "a", "result": "miss"}) == 1
