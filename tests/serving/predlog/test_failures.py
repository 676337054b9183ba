"""Write failures degrade the log (visibly, without raising) and it recovers on its own.

Two real failures, no mocks. An unusable directory: ``segments`` is a regular file, so creating
a segment fails (ENOTDIR/EEXIST) -- chmod would not do, the tests may run as root. A full disk:
a child process lowers its own RLIMIT_FSIZE, so writes past the limit fail with EFBIG after a
short write, exactly like ENOSPC on a full filesystem (SIGXFSZ ignored, as Python does by
default); raising the limit again is the disk getting space back. Neither needs root, a loop
device or a tmpfs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from keel.serving._predlog import PredictionLog
from keel.serving._predlog._segments import SegmentReader, list_segments

from .conftest import in_loop, prediction, run_child, segment_ids


def _block_segments(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    blocker = log_dir / "segments"
    blocker.write_text("not a directory")
    return blocker


@in_loop
async def test_unwritable_directory_degrades_without_raising(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _block_segments(log_dir)
    log = PredictionLog(log_dir, fsync="never", retry_seconds=0)

    for number in range(3):
        await log.append(prediction(number))

    assert log.degraded
    status = log.status()
    assert status["degraded"] is True
    assert "segments" in status["reason"]
    assert status["write_errors_total"] >= 3  # each group (and each timed retry) tries
    assert status["pending_entries"] == 3
    assert status["dropped_entries_total"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited: one line, not one per failed write
    assert "degraded" in warnings[0].getMessage()
    log.close()


@in_loop
async def test_kept_entries_are_written_when_the_directory_works_again(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = _block_segments(log_dir)
    log = PredictionLog(log_dir, fsync="never", retry_seconds=0.02)
    kept = [prediction(n) for n in range(3)]
    for entry in kept:
        await log.append(entry)
    assert log.degraded

    blocker.unlink()
    await asyncio.sleep(0.2)  # no new appends: the retry timer writes them

    assert not log.degraded
    assert log.status()["pending_entries"] == 0
    assert segment_ids(log_dir) == [entry.prediction_id for entry in kept]
    assert "recovered" in caplog.records[-1].getMessage()
    log.close()


@in_loop
async def test_entries_beyond_the_cap_are_dropped_while_degraded(log_dir: Path) -> None:
    _block_segments(log_dir)
    log = PredictionLog(log_dir, fsync="never", max_pending_bytes=2000, retry_seconds=60)

    for number in range(20):  # ~330 bytes each, 6 fit under the cap
        await log.append(prediction(number))

    status = log.status()
    assert status["pending_bytes"] <= 2000
    assert status["pending_entries"] == 6
    assert status["dropped_entries_total"] == 14
    log.close()
    assert log.dropped_entries_total == 20  # the kept ones could not be written at close


DISK_FULL_CHILD = """
    import asyncio, json, resource, signal, sys
    from keel.serving._predlog import PredictionEntry, PredictionLog, new_prediction_id

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # the "disk" holds 4 KiB
    log = PredictionLog(sys.argv[1], fsync="always", retry_seconds=0.02)

    def entry(number):
        return PredictionEntry(
            prediction_id=new_prediction_id(), endpoint="churn", model="m", model_version=1,
            inputs={"number": number, "pad": "x" * 200}, prediction=number % 2,
        )

    async def main():
        ids = []
        for number in range(40):
            ids.append((e := entry(number)).prediction_id)
            await log.append([e])
        full = log.status()
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space is back
        await asyncio.sleep(0.3)
        after = log.status()
        log.close()
        print(json.dumps({"ids": ids, "full": full, "after": after}))

    asyncio.run(main())
"""


def test_disk_full_degrades_then_recovers_without_losing_or_tearing(log_dir: Path) -> None:
    result = json.loads(run_child(DISK_FULL_CHILD, str(log_dir)).stdout)

    full, after = result["full"], result["after"]
    assert full["degraded"] is True
    assert "File too large" in full["reason"]
    assert full["write_errors_total"] >= 1
    assert 0 < full["entries_written_total"] < 40
    assert after["degraded"] is False
    assert after["entries_written_total"] == 40
    assert after["dropped_entries_total"] == 0
    # The write that hit the limit was cut back: no torn line, every entry exactly once.
    readers = [SegmentReader(path) for path, _ in list_segments(log_dir)]
    found = [record["prediction_id"] for reader in readers for record in reader]
    assert found == result["ids"]
    assert sum(reader.skipped for reader in readers) == 0
