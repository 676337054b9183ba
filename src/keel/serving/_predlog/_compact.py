"""Compaction: closed segments become Parquet parts, exactly once, then are deleted.

Each closed segment becomes one part per partition it has entries for,
``<log dir>/predictions/endpoint=<name>/date=<day>/part-<segment id>.parquet`` (or
``feedback/date=<day>/...``). A part is written to a hidden temporary name, fsynced, and renamed
into place, so a part that exists is complete. The segment is deleted only once all its parts
exist. A compaction interrupted anywhere is finished by the next one: the segment is still
there, its parts that already exist are left alone, the missing ones are written (the same
names, from the same immutable segment), and then it is deleted. No entry is lost, none is
written twice.

Segments a crashed process left behind are closed (the kernel dropped its lock), so recovery
on startup is simply a :meth:`Compactor.run_once`. Several compactors (one per server worker)
may run at once: a segment is compacted by whoever holds its lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from keel.serving._predlog._segments import (
    SegmentName,
    SegmentReader,
    claim_segment,
    fsync_directory,
    lag_seconds,
    list_segments,
    segments_dir,
)
from keel.serving._predlog._tables import SCHEMAS, Partitioner, to_table

logger = logging.getLogger(__name__)

# Rows buffered per partition before they are written as one Parquet row group.
ROWS_PER_GROUP = 20_000


@dataclass
class CompactionResult:
    """What one :meth:`Compactor.run_once` did."""

    segments: int = 0
    """Segments compacted and deleted."""
    entries: int = 0
    """Entries they held."""
    parts_written: int = 0
    parts_existing: int = 0
    """Parts an interrupted earlier compaction had already written (left as they were)."""
    skipped_lines: int = 0
    """Torn or unreadable lines left out."""
    busy: int = 0
    """Segments still open by a live writer (compacted once it closes them)."""
    errors: int = 0


def part_path(log_dir: Path, partition: str, segment: SegmentName) -> Path:
    return log_dir / partition / f"part-{segment.id}.parquet"


class Compactor:
    """Moves closed segments of a log directory into Parquet.

        compactor = Compactor(log_dir)
        compactor.run_once()                  # on startup: replays what a crash left behind
        compactor.start(interval_seconds=30)  # then in a background thread...
        compactor.stop()

    A thread shares the server's GIL: parsing a large segment takes the interpreter from the
    request path for a while, so a busy server is better off running :meth:`run_once` in a
    separate process. Counters ending in ``_total`` only grow; the server exports them.
    """

    def __init__(self, directory: str | Path, *, compression: str = "zstd") -> None:
        self.directory = Path(directory)
        self.compression = compression
        self.runs_total = 0
        self.segments_total = 0
        self.entries_total = 0
        self.parts_written_total = 0
        self.skipped_lines_total = 0
        self.errors_total = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        """Epoch seconds of :attr:`last_error`."""
        self.last_run_at: float | None = None
        """Epoch seconds when the last :meth:`run_once` ended."""
        self._lock = threading.Lock()  # one run at a time in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> CompactionResult:
        """Compact every closed segment, oldest first. Never raises: a segment that fails is
        counted, logged and left for the next run."""
        result = CompactionResult()
        with self._lock:
            try:
                segments = list_segments(self.directory)
            except OSError as error:
                segments = []
                result.errors += 1
                self._error(segments_dir(self.directory), error)
            for path, name in segments:
                try:
                    done = self._compact(path, name, result, delete=True)
                except Exception as error:
                    result.errors += 1
                    self._error(path, error)
                    continue
                if not done:
                    result.busy += 1
            self.runs_total += 1
            self.segments_total += result.segments
            self.entries_total += result.entries
            self.parts_written_total += result.parts_written
            self.skipped_lines_total += result.skipped_lines
            self.last_run_at = time.time()
        return result

    def write_parts(self, segment: str | Path) -> CompactionResult:
        """Write the missing Parquet parts of one closed segment and keep the segment: the first
        half of a compaction (``run_once`` finishes it). Raises ``OSError`` on I/O failure."""
        path = Path(segment)
        name = SegmentName.parse(path.name)
        if name is None:
            raise ValueError(f"{path} is not a prediction log segment")
        result = CompactionResult()
        with self._lock:
            if not self._compact(path, name, result, delete=False):
                result.busy += 1
        return result

    def _compact(
        self, path: Path, name: SegmentName, result: CompactionResult, *, delete: bool
    ) -> bool:
        """Compact ``path`` if it is closed; False when a live writer still has it open."""
        fd = claim_segment(path)
        if fd is None:
            return not path.exists()  # gone: another compactor did it
        try:
            entries = self._write_parts(path, name, result)
            if delete:
                os.unlink(path)
                fsync_directory(segments_dir(self.directory))
                result.segments += 1
                result.entries += entries
        finally:
            os.close(fd)
        return True

    def _write_parts(self, path: Path, name: SegmentName, result: CompactionResult) -> int:
        reader = SegmentReader(path)
        where = Partitioner(name.kind)
        batches: dict[str, list[dict[str, Any]]] = {}
        writers: dict[str, _PartWriter | None] = {}  # None: the part already exists
        entries = 0
        try:
            for record in reader:
                partition = where(record)
                if partition is None:
                    reader.skipped += 1
                    continue
                entries += 1
                if partition not in writers:
                    part = part_path(self.directory, partition, name)
                    exists = part.exists()
                    writers[partition] = None if exists else _PartWriter(part, name.kind, self)
                    result.parts_existing += exists
                batch = batches.setdefault(partition, [])
                batch.append(record)
                if len(batch) >= ROWS_PER_GROUP:
                    self._flush(writers[partition], name.kind, batch)
            for partition, batch in batches.items():
                self._flush(writers[partition], name.kind, batch)
            for writer in writers.values():
                if writer is not None:
                    writer.commit()
                    result.parts_written += 1
        finally:
            for writer in writers.values():
                if writer is not None:
                    writer.abort()
        result.skipped_lines += reader.skipped
        return entries

    @staticmethod
    def _flush(writer: _PartWriter | None, kind: str, batch: list[dict[str, Any]]) -> None:
        if writer is not None and batch:
            writer.write(to_table(kind, batch))
        batch.clear()

    def _error(self, path: Path, error: Exception) -> None:
        self.errors_total += 1
        self.last_error = f"{path.name}: {error}"
        self.last_error_at = time.time()
        logger.warning("prediction log compaction of %s failed (will retry): %s", path, error)

    # -- state and background running -------------------------------------------------------

    def lag_seconds(self) -> float | None:
        """Age of the oldest entry not yet in Parquet (its segment's opening time); None when
        the segments directory cannot be read."""
        try:
            return lag_seconds(self.directory)
        except OSError:
            return None

    def status(self) -> dict[str, Any]:
        return {
            "lag_seconds": self.lag_seconds(),
            "runs_total": self.runs_total,
            "segments_total": self.segments_total,
            "entries_total": self.entries_total,
            "parts_written_total": self.parts_written_total,
            "skipped_lines_total": self.skipped_lines_total,
            "errors_total": self.errors_total,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_run_at": self.last_run_at,
        }

    def start(self, interval_seconds: float = 30.0) -> None:
        """Run :meth:`run_once` now and then every ``interval_seconds`` in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="keel-predlog-compactor", daemon=True
        )
        self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(interval_seconds)

    def stop(self) -> None:
        """Stop the background thread (after the run in progress, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class _PartWriter:
    """One Parquet part, written under a hidden temporary name until :meth:`commit`."""

    def __init__(self, part: Path, kind: str, compactor: Compactor) -> None:
        self.part = part
        self.temporary = part.with_name(f".{part.name}.tmp")
        part.parent.mkdir(parents=True, exist_ok=True)
        # Only the holder of the segment's lock writes this name, so a leftover from a crash
        # is simply overwritten.
        self._handle = self.temporary.open("wb")
        self._writer = pq.ParquetWriter(
            self._handle, SCHEMAS[kind], compression=compactor.compression
        )
        self._done = False

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def commit(self) -> None:
        self._writer.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temporary, self.part)
        fsync_directory(self.part.parent)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(OSError):
            self.temporary.unlink()
        self._done = True
