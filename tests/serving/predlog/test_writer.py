"""The writer: group commit, the durability point, fsync policies, segments, the memory cap."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from keel.serving._predlog import PredictionLog
from keel.serving._predlog._entry import encode
from keel.serving._predlog._segments import claim_segment, list_segments

from .conftest import in_loop, prediction, segment_ids

THREAD_IO = Path("/proc/thread-self/io")


def _write_syscalls() -> int:
    """write(2) calls this thread has made, as the kernel counts them."""
    for line in THREAD_IO.read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/thread-self/io")


def _open_segment(log: PredictionLog, kind: str = "predictions") -> Path:
    return log.directory / "segments" / log.status()["open_segments"][kind]


@in_loop
async def test_grouped_concurrent_appends_share_one_write(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never", group_writes=True)
    entries = [prediction(n) for n in range(64)]
    counted = THREAD_IO.exists()
    before = _write_syscalls() if counted else 0

    await asyncio.gather(*(log.append([entry]) for entry in entries))

    after = _write_syscalls() if counted else 0
    assert (log.groups_total, log.writes_total, log.entries_written_total) == (1, 1, 64)
    if counted:
        assert after - before == 1
    assert segment_ids(log_dir) == [entry.prediction_id for entry in entries]
    log.close()


@in_loop
async def test_appends_in_later_loop_iterations_form_new_groups(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never", group_writes=True)

    for number in range(3):
        await log.append(prediction(number))

    assert log.groups_total == 3
    log.close()


@in_loop
async def test_append_returns_once_the_entry_is_in_the_file(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never")
    entry = prediction()

    await log.append([entry])

    assert entry.prediction_id.encode() in _open_segment(log).read_bytes()
    log.close()


def test_append_sync_returns_once_the_entry_is_in_the_file(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        entry = prediction()

        log.append_sync([entry])

        assert entry.prediction_id.encode() in _open_segment(log).read_bytes()


@in_loop
async def test_a_cancelled_request_does_not_cancel_its_group(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never", group_writes=True)
    entries = [prediction(n) for n in range(3)]
    tasks = [asyncio.ensure_future(log.append([entry])) for entry in entries]
    await asyncio.sleep(0)  # every task is now waiting on the group

    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None, None]
    assert segment_ids(log_dir) == [entry.prediction_id for entry in entries]
    log.close()


@in_loop
@pytest.mark.parametrize("fsync", ["never", "interval"])
async def test_without_fsync_to_share_each_append_writes_at_once(log_dir: Path, fsync: str) -> None:
    log = PredictionLog(log_dir, fsync=fsync)  # type: ignore[arg-type]
    entries = [prediction(n) for n in range(8)]
    loop_turned = False

    def turned() -> None:
        nonlocal loop_turned
        loop_turned = True

    asyncio.get_running_loop().call_soon(turned)
    for entry in entries:
        await log.append([entry])
        assert entry.prediction_id.encode() in _open_segment(log).read_bytes()

    assert not loop_turned  # no append yielded to the event loop
    assert (log.writes_total, log.entries_written_total) == (8, 8)
    log.close()


@in_loop
async def test_fsync_always_groups_appends_by_default(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="always")
    entries = [prediction(n) for n in range(16)]

    await asyncio.gather(*(log.append([entry]) for entry in entries))

    assert (log.groups_total, log.writes_total) == (1, 1)
    log.close()


@in_loop
async def test_fsync_always_syncs_before_append_returns(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="always")

    await asyncio.gather(*(log.append(prediction(n)) for n in range(16)))

    assert log.fsyncs_total >= 1
    assert log.groups_total == 1
    log.close()


def test_fsync_always_with_append_sync(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="always") as log:
        log.append_sync(prediction())

        assert log.fsyncs_total == 1


def test_fsync_interval_syncs_in_the_background(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="interval", fsync_interval_seconds=0.2) as log:
        log.append_sync(prediction())
        assert log.fsyncs_total == 0  # append did not wait for it

        assert _eventually(lambda: log.fsyncs_total >= 1)


def test_fsync_never_syncs_nothing(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(prediction())
    assert log.fsyncs_total == 0


@pytest.mark.parametrize("fsync", ["never", "interval"])
def test_full_segments_are_closed_and_compactable(log_dir: Path, fsync: str) -> None:
    log = PredictionLog(log_dir, fsync=fsync, segment_max_bytes=1024)  # type: ignore[arg-type]
    for number in range(13):  # ~330 bytes each: a segment closes after its 4th entry
        log.append_sync(prediction(number))

    open_one = _open_segment(log)
    closed = [path for path, _ in list_segments(log_dir) if path != open_one]
    assert len(closed) == 3
    assert all(path.stat().st_size >= 1024 for path in closed)
    # With fsync=interval the syncer thread fsyncs a full segment, then closes it.
    assert _eventually(lambda: all(_claimable(path) for path in closed))
    assert not _claimable(open_one)
    assert len(segment_ids(log_dir)) == 13
    log.close()


def _claimable(path: Path) -> bool:
    fd = claim_segment(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@in_loop
async def test_grouped_appends_beyond_the_memory_cap_are_dropped_and_counted(
    log_dir: Path,
) -> None:
    entries = [prediction(n) for n in range(50)]
    line = len(encode(entries[0]))
    cap = 10 * line + line // 2
    log = PredictionLog(log_dir, fsync="never", max_pending_bytes=cap, group_writes=True)

    await asyncio.gather(*(log.append(entry) for entry in entries))  # one group

    assert log.entries_written_total == 10
    assert log.dropped_entries_total == 40
    assert segment_ids(log_dir) == [entry.prediction_id for entry in entries[:10]]
    log.close()


def test_a_closed_log_drops_and_counts(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never")
    log.close()

    log.append_sync([prediction(), prediction()])

    assert log.dropped_entries_total == 2
    assert segment_ids(log_dir) == []


def test_an_unencodable_entry_is_counted_and_the_rest_written(log_dir: Path) -> None:
    good = prediction()
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([prediction(inputs={"huge": 2**70}), good])

    assert (log.encode_errors_total, log.dropped_entries_total) == (1, 1)
    assert segment_ids(log_dir) == [good.prediction_id]


def test_closing_makes_every_segment_compactable(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="interval")
    log.append_sync(prediction())
    [(path, _)] = list_segments(log_dir)
    assert not _claimable(path)

    log.close()

    assert _claimable(path)


def test_rotate_closes_the_open_segment(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync(prediction(1))
        [(first, _)] = list_segments(log_dir)

        log.rotate()
        log.append_sync(prediction(2))

        assert _claimable(first)
        assert len(list_segments(log_dir)) == 2


def test_segments_older_than_the_max_age_are_closed(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never", segment_max_age_seconds=0) as log:
        log.append_sync(prediction(1))
        log.append_sync(prediction(2))

        assert log.status()["open_segments"] == {}
        assert all(_claimable(path) for path, _ in list_segments(log_dir))


def test_status_has_the_counters_the_server_exports(log_dir: Path) -> None:
    with PredictionLog(log_dir, fsync="never") as log:
        log.append_sync([prediction(1), prediction(2)])
        time.sleep(0.01)

        status = log.status()

    assert status["entries_written_total"] == 2
    assert status["bytes_written_total"] == sum(p.stat().st_size for p, _ in list_segments(log_dir))
    assert (status["groups_total"], status["writes_total"]) == (1, 1)
    assert status["lag_seconds"] >= 0.01
    assert status["degraded"] is False
    assert status["reason"] is None


def test_a_forked_child_writes_segments_of_its_own(log_dir: Path) -> None:
    log = PredictionLog(log_dir, fsync="never")
    parent_entry, child_entry = prediction(1), prediction(2)
    log.append_sync(parent_entry)
    [(parent_segment, _)] = list_segments(log_dir)

    pid = os.fork()
    if pid == 0:  # the child: append, close, leave without running pytest's cleanup
        code = 1
        try:
            log.append_sync(child_entry)
            log.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert not _claimable(parent_segment)  # still the parent's open segment
    log.close()
    assert len(list_segments(log_dir)) == 2
    expected = [parent_entry.prediction_id, child_entry.prediction_id]
    assert sorted(segment_ids(log_dir)) == sorted(expected)
    assert all(_claimable(path) for path, _ in list_segments(log_dir))
