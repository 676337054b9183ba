"""The prediction log's writer: segment files for asyncio servers, with group commit.

An ``append`` encodes its entries (a request's rows are one write) and hands them to the OS,
in one of two ways (``group_writes``; by default grouped only with ``fsync="always"``):

- **grouped**: the append joins the current event-loop iteration's group and awaits it; one
  ``loop.call_soon`` callback, run after every task ready in the iteration, writes the group
  with one ``os.write`` per segment kind (and one fsync with ``always``) and resolves it;
- **not grouped**: the append writes at once, without yielding to the loop. Without an fsync
  to share this is cheaper for a server's request mix: a lone append costs half as much, and
  grouping wins only when dozens land in one iteration (docs/benchmarks.md, prediction log).

The write happens on the event loop's thread: handing a few kilobytes to the page cache takes a
microsecond or two, less than waking another thread would. fsync never runs there: a
:class:`~keel.serving._predlog._sync.Syncer` thread does it, every ``fsync_interval_seconds``
(``interval``) or after each group (``always``, where appends return only once it is done).

When writing fails (a full disk, a read-only or missing directory) the log degrades instead of
raising: entries are kept in memory up to ``max_pending_bytes`` and appends return at once;
a write is retried every ``retry_seconds`` (on the next group, or by a timer) and the kept
entries are written when it succeeds. Entries beyond the cap are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from keel.serving._predlog._entry import KINDS, FeedbackEntry, LogEntry, PredictionEntry, encode
from keel.serving._predlog._group import Group, Pending, SharedFuture, resolve
from keel.serving._predlog._health import WriteHealth
from keel.serving._predlog._segments import (
    OpenSegment,
    create_segment,
    lag_seconds,
    segments_dir,
)
from keel.serving._predlog._sync import SyncBatch, Syncer

if TYPE_CHECKING:
    from keel.config import Settings

logger = logging.getLogger(__name__)

FsyncPolicy = Literal["never", "interval", "always"]
FSYNC_POLICIES = ("never", "interval", "always")


class PredictionLog:
    """Durable, append-only log of predictions and feedback, written in segment files.

        log = PredictionLog.from_settings(settings)   # or PredictionLog(directory, fsync=...)
        await log.append([PredictionEntry(...), ...])  # returns once the OS has the bytes
        log.append_sync([FeedbackEntry(...)])          # the same, for code without a loop
        log.status()                                   # counters and degradation, for /readyz
        log.close()                                    # closed segments can be compacted

    Durability: when ``append`` returns (and the log is not degraded), the entries are in the
    kernel, so a ``kill -9`` of the process loses none of them; ``fsync="always"`` also waits
    for the disk. Appends never raise for I/O failures (see :attr:`degraded`).

    ``group_writes``: concurrent appends share one write (module doc). None, the default,
    groups them when ``fsync="always"``, where they also share an fsync; otherwise an append
    writes at once, which costs less than waiting for company.

    One instance per process; ``append`` from one event loop at a time, ``append_sync`` from any
    thread (but not from a coroutine when ``fsync="always"``: it blocks until the disk is done).
    The counters ending in ``_total`` only grow; the server exports them as metrics.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval_seconds: float = 1.0,
        segment_max_bytes: int = 64 * 1024 * 1024,
        segment_max_age_seconds: float = 3600.0,
        max_pending_bytes: int = 16 * 1024 * 1024,
        retry_seconds: float = 1.0,
        group_writes: bool | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self.directory = Path(directory)
        self.fsync = fsync
        self.fsync_interval_seconds = fsync_interval_seconds
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_seconds = segment_max_age_seconds
        self.max_pending_bytes = max_pending_bytes
        self.retry_seconds = retry_seconds
        self.group_writes = fsync == "always" if group_writes is None else group_writes

        self.entries_written_total = 0
        """Entries handed to the OS."""
        self.bytes_written_total = 0
        self.groups_total = 0
        """Group commits that wrote something (each is one ``os.write`` per kind in it)."""
        self.writes_total = 0
        """``os.write`` calls made."""
        self.write_errors_total = 0
        """Writes that failed (each failed group or retry counts once)."""
        self.dropped_entries_total = 0
        """Entries never written: over the memory cap, unencodable, or pending at close."""
        self.encode_errors_total = 0
        self.fsyncs_total = 0
        """fsync rounds that synced at least one segment."""
        self.fsync_errors_total = 0
        self.segments_opened_total = 0

        self._lock = threading.Lock()  # segments, retained entries, counters shared with threads
        self._group: Group | None = None  # touched by the event loop's thread only
        self._retained = Pending()
        self._segments: dict[str, OpenSegment] = {}
        self._next_number = 0
        self._sequence = 0  # successful group commits, the unit the syncer acknowledges
        self._retired: list[int] = []  # closed segments' descriptors, fsynced then closed
        self._created = False  # a segment was created since the last fsync round
        self._waiters: list[tuple[int, SharedFuture, asyncio.AbstractEventLoop]] = []
        self._syncer: Syncer | None = None
        self._health = WriteHealth(segments_dir(self.directory), retry_seconds)
        self._fsync_failure: str | None = None
        self._retry_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._pid = os.getpid()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PredictionLog:
        """The log ``[serving]`` describes: its directory, fsync policy and segment size."""
        serving = settings.serving
        return cls(
            settings.project_path(serving.prediction_log_dir),
            fsync=serving.fsync,
            fsync_interval_seconds=serving.fsync_interval_seconds,
            segment_max_bytes=serving.segment_max_bytes,
            **options,
        )

    # -- appending --------------------------------------------------------------------------

    async def append(self, entries: Iterable[LogEntry] | LogEntry) -> None:
        """Record ``entries``; returns once they are written to the current segment (handed to
        the OS), and with ``fsync="always"`` once they are on disk. With ``group_writes``,
        appends made in the same event-loop iteration share one write. Never raises for I/O
        problems: a degraded log keeps the entries in memory (within ``max_pending_bytes``) and
        returns at once."""
        pending = self._encode(entries)
        if pending is None:
            return
        if not self.group_writes:
            sequence, syncer = self._write_now(pending)
            if sequence is None:
                self._schedule_retry(asyncio.get_running_loop())
            elif syncer is not None:  # ungrouped "always" (a choice): wait off the loop
                await asyncio.to_thread(syncer.wait_for, sequence)
            return
        group = self._group
        if group is None:
            loop = asyncio.get_running_loop()
            group = self._group = Group(loop)
            loop.call_soon(self._flush_group)
        if not self._admit(pending, group.pending.size):
            return
        group.pending.extend(pending)
        await group.future

    def append_sync(self, entries: Iterable[LogEntry] | LogEntry) -> None:
        """Record ``entries`` from code without an event loop (batch jobs, scripts, tests);
        same guarantees as :meth:`append`, one write per call."""
        pending = self._encode(entries)
        if pending is None:
            return
        sequence, syncer = self._write_now(pending)
        if sequence is not None and syncer is not None:
            syncer.wait_for(sequence)

    def _write_now(self, pending: Pending) -> tuple[int | None, Syncer | None]:
        """Write ``pending`` at once: the commit's sequence (None when kept in memory or
        dropped) and, with fsync "always", the syncer to wait on."""
        if not self._admit(pending, 0):
            return None, None
        with self._lock:
            sequence = self._commit(pending)
            return sequence, self._syncer if self.fsync == "always" else None

    def _encode(self, entries: Iterable[LogEntry] | LogEntry) -> Pending | None:
        if isinstance(entries, PredictionEntry | FeedbackEntry):
            entries = (entries,)
        pending = Pending()
        for entry in entries:
            try:
                line = encode(entry)
            except TypeError as error:  # orjson.JSONEncodeError is a TypeError
                with self._lock:
                    self.encode_errors_total += 1
                self._drop(1, f"entry {entry.prediction_id} cannot be encoded ({error})")
                continue
            pending.add(entry.KIND, line)
        return pending if pending.count else None

    def _admit(self, pending: Pending, queued: int) -> bool:
        """Whether ``pending`` fits under the memory cap (and the log is open)."""
        total = queued + self._retained.size + pending.size
        if not self._closed and total <= self.max_pending_bytes:
            return True
        why = "the log is closed" if self._closed else f"{total} bytes would wait in memory"
        self._drop(pending.count, why)
        return False

    def _drop(self, count: int, why: str) -> None:
        """Count ``count`` entries as lost (the health warns, at most once an interval)."""
        with self._lock:
            self.dropped_entries_total += count
            total = self.dropped_entries_total
        self._health.dropped(count, why, max_bytes=self.max_pending_bytes, total=total)

    def _flush_group(self) -> None:
        """The event loop callback that writes the current group (runs after every task that
        was ready when the group began)."""
        group, self._group = self._group, None
        if group is None:
            return
        if group.pending.count:
            with self._lock:
                sequence = self._commit(group.pending)
                syncer = self._syncer if self.fsync == "always" else None
                if sequence is not None and syncer is not None:
                    self._waiters.append((sequence, group.future, group.loop))
            if sequence is None:
                self._schedule_retry(group.loop)
            elif syncer is not None:
                syncer.request()  # the syncer resolves the group once its data is on disk
                return
        group.future.set_result(None)

    # -- writing (the caller holds self._lock) -----------------------------------------------

    def _commit(self, new: Pending | None) -> int | None:
        """Write the retained entries, then ``new``. Returns the commit's sequence number, or
        None when the entries were kept in memory because writing fails."""
        if new is not None:
            if self._retained.count:
                self._retained.extend(new)
            else:
                self._retained = new
        pending = self._retained
        if not pending.count:
            return self._sequence
        if not self._health.may_write():
            return None
        for kind in KINDS:
            lines = pending.lines[kind]
            if not lines:
                continue
            data = b"".join(lines)
            try:
                self._write(kind, data)
            except OSError as error:
                self.write_errors_total += 1
                self._health.failed(
                    error,
                    retained=self._retained.count,
                    max_bytes=self.max_pending_bytes,
                    errors=self.write_errors_total,
                    dropped=self.dropped_entries_total,
                )
                return None
            self.entries_written_total += len(lines)
            self.bytes_written_total += len(data)
            pending.take(kind)
        self.groups_total += 1
        self._sequence += 1
        self._health.succeeded(errors=self.write_errors_total, dropped=self.dropped_entries_total)
        return self._sequence

    def _write(self, kind: str, data: bytes) -> None:
        if self._pid != os.getpid():
            self._forked()
        segment = self._segments.get(kind)
        if segment is None:
            segment = create_segment(self.directory, kind, self._next_number)
            self._next_number = segment.name.number + 1
            self._segments[kind] = segment
            self._created = True
            self.segments_opened_total += 1
            if self.fsync != "never" and self._syncer is None:
                interval = self.fsync_interval_seconds if self.fsync == "interval" else None
                self._syncer = Syncer(self._collect, self._synced, interval=interval)
        start = segment.size
        view = memoryview(data)
        try:
            done = 0
            while done < len(data):  # a short write happens at a size limit; the next one fails
                self.writes_total += 1
                done += os.write(segment.fd, view[done:])
        except OSError:
            # Never leave half an entry for the next write to land after: cut back to the last
            # complete line, or give the segment up (its torn tail is skipped when read).
            try:
                os.ftruncate(segment.fd, start)
            except OSError:
                self._retire(kind)
            raise
        segment.size = start + len(data)
        if (
            segment.size >= self.segment_max_bytes
            or time.monotonic() - segment.opened >= self.segment_max_age_seconds
        ):
            self._retire(kind)

    def _forked(self) -> None:
        """In a child forked from the process that opened the log: the open segments and the
        syncer are the parent's. Drop the child's copies of their descriptors (the parent's
        locks stay with the parent) and start segments of this process's own."""
        for fd in [*(s.fd for s in self._segments.values()), *self._retired]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._segments = {}
        self._retired = []
        self._waiters = []
        self._syncer = None  # threads do not survive a fork; a new one starts with a segment
        self._pid = os.getpid()

    def _retire(self, kind: str) -> None:
        """Close the open segment of ``kind``, which makes it compactable. Unless fsync is
        ``never``, the syncer fsyncs it first."""
        segment = self._segments.pop(kind, None)
        if segment is None:
            return
        if self._syncer is None:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
            return
        self._retired.append(segment.fd)
        self._syncer.request()

    def _schedule_retry(self, loop: asyncio.AbstractEventLoop) -> None:
        """Retry the retained entries even if no new append comes along."""
        if self._retry_handle is None and not self._closed:
            self._retry_handle = loop.call_later(self.retry_seconds, self._retry, loop)

    def _retry(self, loop: asyncio.AbstractEventLoop) -> None:
        self._retry_handle = None
        with self._lock:
            if not self._retained.count:
                return
            sequence = self._commit(None)
            syncer = self._syncer if self.fsync == "always" else None
        if sequence is None:
            self._schedule_retry(loop)
        elif syncer is not None:
            # Nobody waits on this write, but "always" still means a round after each group:
            # without one, an idle server leaves what it recovered unsynced until the next one.
            syncer.request()

    # -- fsync (called on the syncer's thread) ----------------------------------------------

    def _collect(self) -> SyncBatch:
        with self._lock:
            batch = SyncBatch(sequence=self._sequence, fds=self._retired)
            self._retired = []
            for segment in self._segments.values():
                if segment.synced < segment.size:  # an idle segment needs no fsync
                    with contextlib.suppress(OSError):
                        batch.fds.append(os.dup(segment.fd))
                        segment.synced = segment.size
            if self._created:
                self._created = False
                batch.directories.append(segments_dir(self.directory))
        return batch

    def _synced(self, batch: SyncBatch, error: OSError | None) -> None:
        with self._lock:
            if batch.fds:
                self.fsyncs_total += 1
            if error is not None:
                self.fsync_errors_total += 1
                self._fsync_failure = f"fsync failed: {error.strerror or error}"
                logger.warning("prediction log %s: %s", self.directory, self._fsync_failure)
            elif batch.fds:
                self._fsync_failure = None
            done = [w for w in self._waiters if w[0] <= batch.sequence]
            self._waiters = [w for w in self._waiters if w[0] > batch.sequence]
        by_loop: dict[asyncio.AbstractEventLoop, list[SharedFuture]] = {}
        for _, future, loop in done:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(resolve, futures)

    # -- state -------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Whether the log is failing to write (or to fsync); :meth:`status` says why."""
        return self._health.reason is not None or self._fsync_failure is not None

    def status(self) -> dict[str, Any]:
        """Counters and health, for ``/readyz`` detail and metrics. ``lag_seconds`` is the age
        of the oldest entry of the directory not yet compacted (any writer's)."""
        try:
            lag: float | None = lag_seconds(self.directory)
        except OSError:  # the directory is unusable; "reason" says how
            lag = None
        with self._lock:
            reason = self._health.reason or self._fsync_failure
            return {
                "lag_seconds": lag,
                "degraded": reason is not None,
                "reason": reason,
                "degraded_since": self._health.since,
                "directory": str(self.directory),
                "fsync": self.fsync,
                "pending_entries": self._retained.count,
                "pending_bytes": self._retained.size,
                "open_segments": {k: s.path.name for k, s in sorted(self._segments.items())},
                "entries_written_total": self.entries_written_total,
                "bytes_written_total": self.bytes_written_total,
                "groups_total": self.groups_total,
                "writes_total": self.writes_total,
                "write_errors_total": self.write_errors_total,
                "dropped_entries_total": self.dropped_entries_total,
                "encode_errors_total": self.encode_errors_total,
                "fsyncs_total": self.fsyncs_total,
                "fsync_errors_total": self.fsync_errors_total,
                "segments_opened_total": self.segments_opened_total,
            }

    def rotate(self) -> None:
        """Close the open segments now (new appends open new ones), so compaction can take
        what they hold; the server calls it when traffic is too light to fill a segment."""
        with self._lock:
            for kind in KINDS:
                self._retire(kind)

    def close(self) -> None:
        """Write what is pending (one last try if the log is degraded), fsync unless the policy
        is ``never``, and close the segments. Call it from the event loop's thread, or when no
        loop runs. Entries appended afterwards are dropped and counted. Never raises."""
        if self._closed:
            return
        self._closed = True
        group, self._group = self._group, None
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        with self._lock:
            self._health.retry_now()
            self._commit(group.pending if group is not None else None)
            if self._retained.count:
                self.dropped_entries_total += self._retained.count
                logger.warning(
                    "prediction log %s closed with %d entries it could not write (%s)",
                    self.directory,
                    self._retained.count,
                    self._health.reason,
                )
                self._retained = Pending()
            for kind in KINDS:
                self._retire(kind)
        if self._syncer is not None:
            self._syncer.stop()
        if group is not None and not group.future.done():
            group.future.set_result(None)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> PredictionLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
