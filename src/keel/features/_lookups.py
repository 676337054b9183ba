"""Sampled records of online lookups, kept for the skew check.

    with LookupLog(directory, sample_rate=0.01) as log:
        get_online_features(rows, features, catalog, store, log=log)
    lookups = read_lookups(directory)                  # one row per recorded entity row

A lookup is recorded when :meth:`LookupLog.sampled` says so, unless its caller passes
``record=True`` (always) or ``record=False`` (never); it queues a :class:`LookupRecord`, a
background thread writes JSON-lines segment files, and :func:`read_lookups` reads them back as
one frame for :func:`~keel.features.check_skew`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupRecord:
    """One lookup as the skew check needs it: column per name, one value per entity row."""

    at: pd.Timestamp
    requested: list[str]
    entity: dict[str, list[Any]]
    request: dict[str, list[Any]]
    features: dict[str, list[Any]]
    event_ns: dict[str, np.ndarray[Any, np.dtype[np.int64]]]
    fresh: dict[str, np.ndarray[Any, np.dtype[np.bool_]]]


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class LookupLog:
    """Appends a sampled fraction of online lookups to JSON-lines segment files.

        log = LookupLog(settings.project_path(settings.features.lookup_log_dir),
                        settings.features.lookup_sample_rate)
        get_online_features(rows, features, catalog, store, log=log)
        log.close()                                    # writes what is still buffered

    One line per entity row of a sampled call: lookup id and time, the features asked for, the
    entity keys and request fields, every returned value (``view:feature`` and on-demand
    output names), and each view's event timestamp and freshness. The lookup itself only
    queues its record; a background thread turns records into lines and writes them once
    ``flush_every`` lines are waiting or ``flush_seconds`` have passed, and :meth:`close` (or
    :meth:`flush`) writes the rest. A segment file holds at most ``segment_lines`` lines.
    Logging never fails or slows a lookup: an error is counted in ``errors`` (the lines it
    loses in ``dropped``) and reported with :mod:`logging`.
    """

    def __init__(
        self,
        directory: str | Path,
        sample_rate: float,
        *,
        seed: int | None = None,
        flush_every: int = 1000,
        flush_seconds: float = 1.0,
        segment_lines: int = 100_000,
    ) -> None:
        if not 0 <= sample_rate <= 1:
            raise ValueError(f"sample_rate must be between 0 and 1, not {sample_rate}")
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.segment_lines = segment_lines
        self.errors = 0
        self.dropped = 0
        self.written = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # guards the queue, the counters and the random stream
        self._wake = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one writer of the segment file at a time
        self._pending: list[LookupRecord] = []
        self._pending_lines = 0
        self._closed = False
        self._writer: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._segment_count = 0
        self._segments = 0
        # Segment names sort in the order they were written: time, then writer, then number.
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def sampled(self) -> bool:
        """Whether to record this call (each call is drawn independently)."""
        if self.sample_rate <= 0:
            return False
        with self._lock:
            return self._random.random() < self.sample_rate

    def record(self, record: LookupRecord) -> None:
        """Queue ``record`` for writing; cheap, and never raises."""
        with self._lock:
            if self._closed:
                self.dropped += _row_count(record)
                return
            self._pending.append(record)
            self._pending_lines += _row_count(record)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="keel-lookup-log", daemon=True
                )
                self._writer.start()
            if self._pending_lines >= self.flush_every:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and self._pending_lines < self.flush_every:
                    self._wake.wait(self.flush_seconds)
                if self._closed:
                    return
            self._drain(pause=True)

    def flush(self) -> None:
        """Write every queued record now, in the calling thread; never raises."""
        self._drain(pause=False)

    def _drain(self, *, pause: bool) -> None:
        with self._write_lock:
            with self._lock:
                records, self._pending, self._pending_lines = self._pending, [], 0
            lines: list[bytes] = []
            for record in records:
                try:
                    lines += _lines(record)
                except Exception:
                    with self._lock:
                        self.errors += 1
                    logger.exception("could not record an online lookup for the skew check")
                if pause:  # the writer thread lets lookups take the GIL between records
                    time.sleep(0)
            self._write(lines)

    def _write(self, lines: list[bytes]) -> None:
        done = 0
        try:
            while done < len(lines):
                handle = self._segment()
                batch = lines[done : done + self.segment_lines - self._segment_count]
                handle.write(b"".join(batch))
                handle.flush()
                self._segment_count += len(batch)
                done += len(batch)
        except Exception as error:  # a full disk or a bad directory must not fail a lookup
            self._close_segment()
            with self._lock:
                self.errors += 1
                self.dropped += len(lines) - done
            logger.warning(
                "could not write %d online lookup records to %s (%s); %d failures so far",
                len(lines) - done,
                self.directory,
                error,
                self.errors,
            )
        finally:
            with self._lock:
                self.written += done

    def _segment(self) -> IO[bytes]:
        if self._file is not None and self._segment_count < self.segment_lines:
            return self._file
        self._close_segment()
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._segments += 1
        name = f"lookups-{stamp}-{self._token}-{self._segments:06d}.jsonl"
        self._file = (self.directory / name).open("ab")
        self._segment_count = 0
        return self._file

    def _close_segment(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        """Stop the writer thread, write what is queued and close the segment file; never
        raises. Records arriving afterwards are dropped (and counted)."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            writer = self._writer
        if writer is not None:
            writer.join()
        self.flush()
        with self._write_lock:
            self._close_segment()

    def __enter__(self) -> LookupLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _row_count(record: LookupRecord) -> int:
    return len(next(iter(record.event_ns.values()), ())) or max(
        (len(values) for values in record.features.values()), default=0
    )


def _lines(record: LookupRecord) -> list[bytes]:
    """One JSON line per entity row of ``record``."""
    lookup_id = uuid.uuid4().hex
    [at] = _iso(np.array([record.at.value], dtype=np.int64))
    event_times = {view: _iso(nanos) for view, nanos in record.event_ns.items()}
    fresh = {view: flags.tolist() for view, flags in record.fresh.items()}
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    lines = []
    for row in range(_row_count(record)):
        line = {
            "lookup_id": lookup_id,
            "at": at,
            "row": row,
            "requested": record.requested,
            "entity": {name: values[row] for name, values in record.entity.items()},
            "request": {name: values[row] for name, values in record.request.items()},
            "features": {name: values[row] for name, values in record.features.items()},
            "event_timestamps": {view: stamps[row] for view, stamps in event_times.items()},
            "fresh": {view: flags[row] for view, flags in fresh.items()},
        }
        lines.append(orjson.dumps(line, default=_json_default, option=options))
    return lines


def _iso(nanos: np.ndarray[Any, np.dtype[np.int64]]) -> list[str | None]:
    """ISO-8601 UTC text of ns timestamps (``...T12:00:00.000000000Z``); None for NO_TIME."""
    text = np.datetime_as_string(nanos.view("datetime64[ns]"), timezone="UTC").tolist()
    return [None if value == "NaT" else value for value in text]


def read_lookups(directory: str | Path) -> pd.DataFrame:
    """Every recorded lookup row in ``directory``, one row per entity row, oldest segment first.

    Columns: ``lookup_id``, ``at`` (UTC), ``row``, ``requested`` (list), then flattened
    ``entity.KEY``, ``request.FIELD``, ``features.NAME`` (``view:feature`` or an on-demand
    output; timestamp values as ISO-8601 text), ``event_timestamps.VIEW`` (UTC, NaT when the
    store had no row) and ``fresh.VIEW``. A line cut short by a crash is skipped (and logged).
    """
    records: list[dict[str, Any]] = []
    skipped = 0
    for path in sorted(Path(directory).glob("lookups-*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    skipped += 1
    if skipped:
        logger.warning("skipped %d unreadable lookup records in %s", skipped, directory)
    if not records:
        return pd.DataFrame(columns=["lookup_id", "at", "row", "requested"])
    frame = pd.json_normalize(records, sep=".", max_level=1)
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    for column in frame.columns:
        if column.startswith("event_timestamps."):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
