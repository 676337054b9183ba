"""Durability: kill -9 loses no entry whose append returned; a torn tail is skipped."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from keel.serving._predlog import Compactor, PredictionLog, query
from keel.serving._predlog._segments import SegmentReader, list_segments

from .conftest import prediction

APPENDER = """
    import asyncio, sys
    from keel.serving._predlog import PredictionEntry, PredictionLog, new_prediction_id

    log = PredictionLog(sys.argv[1], fsync="never", segment_max_bytes=32 * 1024)

    async def client(number):
        while True:
            entry = PredictionEntry(
                prediction_id=new_prediction_id(), endpoint=f"e{number % 2}", model="m",
                model_version=1, inputs={"client": number}, prediction=0.5,
            )
            await log.append([entry])
            # Only now is the entry acknowledged: the "response" is this line.
            sys.stdout.write(entry.prediction_id + "\\n")
            sys.stdout.flush()

    async def main():
        await asyncio.gather(*(client(n) for n in range(16)))

    asyncio.run(main())
"""


def test_kill_9_loses_no_acknowledged_entry(log_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(APPENDER), str(log_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while len(acknowledged) < 3000 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(line.decode().strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, stderr = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    assert len(acknowledged) >= 3000, stderr.decode()

    result = Compactor(log_dir).run_once()  # the dead writer's segments are closed now

    assert result.busy == 0
    assert result.errors == 0
    assert list_segments(log_dir) == []
    found = query("SELECT prediction_id FROM predictions", log_dir).column(0).to_pylist()
    missing = set(acknowledged) - set(found)
    duplicated = [i for i, n in collections.Counter(found).items() if n > 1]
    assert (len(missing), len(duplicated)) == (0, 0)
    assert len(found) >= len(acknowledged)


def test_a_torn_tail_is_skipped_and_poisons_nothing(log_dir: Path) -> None:
    entries = [prediction(n) for n in range(5)]
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(entries)
    [(segment, _)] = list_segments(log_dir)
    with segment.open("ab") as handle:  # a crash in the middle of the next write
        handle.write(b'{"prediction_id": "torn", "time": 17')

    reader = SegmentReader(segment)
    assert [r["prediction_id"] for r in reader] == [e.prediction_id for e in entries]
    assert reader.skipped == 1

    with PredictionLog(log_dir, fsync="never") as log:  # the restarted server
        log.append_sync(later := prediction(99))
    assert len(list_segments(log_dir)) == 2  # it never appends after the torn line

    result = Compactor(log_dir).run_once()
    assert (result.entries, result.skipped_lines) == (6, 1)
    ids = query("SELECT prediction_id FROM predictions ORDER BY time", log_dir).column(0)
    assert ids.to_pylist() == [e.prediction_id for e in [*entries, later]]
