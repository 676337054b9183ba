"""Compaction: segments to partitioned Parquet, exactly once however it is interrupted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from keel.serving._predlog import Compactor, PredictionLog, query
from keel.serving._predlog._segments import list_segments

from .conftest import DAY_NS, feedback, prediction

JAN_31 = 1_769_817_600 * 10**9  # 2026-01-31T00:00:00Z


def _parts(log_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(log_dir)) for p in log_dir.rglob("*.parquet"))


def _count(log_dir: Path, table: str = "predictions") -> int:
    return int(query(f"SELECT count(*) FROM {table}", log_dir).column(0)[0].as_py())


def test_segments_become_parquet_parts_by_endpoint_and_date(log_dir: Path) -> None:
    entries = [
        prediction(1, endpoint="churn", time=JAN_31 + 5),
        prediction(2, endpoint="churn", time=JAN_31 + DAY_NS + 5),
        prediction(3, endpoint="fraud/v2", time=JAN_31 + 5),
    ]
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([*entries, feedback(entries[0].prediction_id, time=JAN_31 + 9)])
    segments = {name.kind: name.id for _, name in list_segments(log_dir)}

    result = Compactor(log_dir).run_once()

    assert (result.segments, result.entries, result.parts_written) == (2, 4, 4)
    assert list_segments(log_dir) == []
    p, f = segments["predictions"], segments["feedback"]
    assert _parts(log_dir) == [
        f"feedback/date=2026-01-31/part-{f}.parquet",
        f"predictions/endpoint=churn/date=2026-01-31/part-{p}.parquet",
        f"predictions/endpoint=churn/date=2026-02-01/part-{p}.parquet",
        f"predictions/endpoint=fraud%2Fv2/date=2026-01-31/part-{p}.parquet",
    ]
    part = pq.read_table(log_dir / _parts(log_dir)[1])
    assert part.column("prediction_id").to_pylist() == [entries[0].prediction_id]
    assert "endpoint" not in part.column_names  # partition values live in the path
    rows = query("SELECT endpoint, date::VARCHAR FROM predictions ORDER BY time, endpoint", log_dir)
    assert rows.to_pylist() == [
        {"endpoint": "churn", "CAST(date AS VARCHAR)": "2026-01-31"},
        {"endpoint": "fraud/v2", "CAST(date AS VARCHAR)": "2026-01-31"},
        {"endpoint": "churn", "CAST(date AS VARCHAR)": "2026-02-01"},
    ]


def test_a_segment_open_by_a_live_writer_is_left_alone(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never")
    log.append_sync(prediction())

    result = Compactor(log_dir).run_once()

    assert (result.busy, result.segments) == (1, 0)
    assert _parts(log_dir) == []
    log.close()
    assert Compactor(log_dir).run_once().segments == 1


def test_crash_after_the_parts_before_the_delete_compacts_once(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([prediction(n) for n in range(10)])
    [(segment, _)] = list_segments(log_dir)
    compactor = Compactor(log_dir)

    compactor.write_parts(segment)  # first step only: the process "dies" here
    assert segment.exists()
    [part] = _parts(log_dir)
    written = os.stat(log_dir / part)

    result = compactor.run_once()  # the restart

    assert (result.segments, result.parts_written, result.parts_existing) == (1, 0, 1)
    assert not segment.exists()
    again = os.stat(log_dir / part)
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert _count(log_dir) == 10


def test_crash_between_two_parts_writes_only_the_missing_one(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([prediction(n, endpoint=f"e{n % 2}") for n in range(10)])
    [(segment, _)] = list_segments(log_dir)
    compactor = Compactor(log_dir)
    compactor.write_parts(segment)
    first, second = (log_dir / part for part in _parts(log_dir))
    # The crash came while the second part was still its temporary file.
    second.rename(second.with_name(f".{second.name}.tmp"))

    result = compactor.run_once()

    assert (result.parts_written, result.parts_existing, result.segments) == (1, 1, 1)
    assert second.exists()
    assert first.exists()
    assert [p.name for p in log_dir.rglob(".*.tmp")] == []
    assert _count(log_dir) == 10
    ids = query("SELECT count(DISTINCT prediction_id) FROM predictions", log_dir)
    assert ids.column(0)[0].as_py() == 10


def test_compactors_running_at_once_compact_each_segment_once(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never", segment_max_bytes=1024) as log:
        for number in range(60):
            log.append_sync(prediction(number))
    segments = len(list_segments(log_dir))
    compactors = [Compactor(log_dir) for _ in range(4)]
    results = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.run_once())) for c in compactors
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.segments for r in results) == segments
    assert sum(r.errors for r in results) == 0
    assert _count(log_dir) == 60
    assert len(_parts(log_dir)) == segments


def test_lag_is_the_age_of_the_oldest_segment(log_dir: Path) -> None:
    compactor = Compactor(log_dir)
    assert compactor.lag_seconds() == 0
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(prediction())
    time.sleep(0.05)

    assert compactor.lag_seconds() >= 0.05
    compactor.run_once()
    assert compactor.status()["lag_seconds"] == 0
    assert compactor.status()["entries_total"] == 1


def test_a_failing_compaction_is_counted_and_retried(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(prediction(endpoint="churn", time=JAN_31))
    blocked = log_dir / "predictions" / "endpoint=churn"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("in the way")  # the partition directory cannot be made
    compactor = Compactor(log_dir)

    result = compactor.run_once()

    assert (result.errors, result.segments) == (1, 0)
    assert compactor.errors_total == 1
    assert compactor.last_error
    assert len(list_segments(log_dir)) == 1
    blocked.unlink()
    assert compactor.run_once().segments == 1
    assert _count(log_dir) == 1


def test_background_compaction(log_dir: Path) -> None:
    compactor = Compactor(log_dir)
    compactor.start(interval_seconds=0.02)
    try:
        with PredictionLog(log_dir, fsync="never") as log:
            log.append_sync(prediction())
        deadline = time.monotonic() + 5
        while list_segments(log_dir) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        compactor.stop()

    assert list_segments(log_dir) == []
    assert len(_parts(log_dir)) == 1
