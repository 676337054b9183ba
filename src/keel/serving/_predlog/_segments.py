"""Segment files: naming, the lock that tells an open segment from a closed one, reading back.

A segment is ``<log dir>/segments/<kind>-<start ns>-<pid>-<n>.log``: kind is ``predictions``
or ``feedback``, then the time it was opened, the writing process and a per-writer counter, so
names sort in the order segments were opened and ``<start ns>-<pid>-<n>`` (the segment id)
names its Parquet parts.

A writer holds an exclusive ``flock`` on its open segment for as long as it may append to it.
The kernel drops that lock when the writer closes the file or its process dies (even by
``kill -9``), so "I can take the lock" means exactly "no live writer will append here": the
segment is closed and can be compacted. ``flock`` (not ``fcntl``/``lockf`` record locks) is used
because its locks belong to the open file, so a compactor thread in the writer's own process is
kept out too. Whoever holds the lock re-checks that the path still names the file it locked,
since a compactor may have compacted and deleted it in between.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from keel.serving._predlog._entry import KINDS

SEGMENTS_DIR = "segments"
_NAME = re.compile(r"^(predictions|feedback)-(\d+)-(\d+)-(\d+)\.log$")


@dataclass(frozen=True, order=True)
class SegmentName:
    start_ns: int
    pid: int
    number: int
    kind: str

    @property
    def id(self) -> str:
        """``<start ns>-<pid>-<n>``: unique per segment, and the name of its Parquet parts."""
        return f"{self.start_ns}-{self.pid}-{self.number}"

    @property
    def filename(self) -> str:
        return f"{self.kind}-{self.id}.log"

    @classmethod
    def parse(cls, filename: str) -> SegmentName | None:
        match = _NAME.match(filename)
        if match is None:
            return None
        kind, start, pid, number = match.groups()
        return cls(start_ns=int(start), pid=int(pid), number=int(number), kind=kind)


def segments_dir(log_dir: Path) -> Path:
    return log_dir / SEGMENTS_DIR


def list_segments(log_dir: Path, kind: str | None = None) -> list[tuple[Path, SegmentName]]:
    """Every segment under ``log_dir`` (open or closed), oldest first."""
    directory = segments_dir(log_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for filename in names:
        name = SegmentName.parse(filename)
        if name is not None and (kind is None or name.kind == kind):
            found.append((directory / filename, name))
    found.sort(key=lambda item: item[1])
    return found


@dataclass
class OpenSegment:
    """A segment this process appends to; ``fd`` holds the segment's lock."""

    fd: int
    path: Path
    name: SegmentName
    size: int = 0
    synced: int = 0
    """Bytes an fsync round has covered (``size`` once it is clean)."""
    opened: float = 0.0
    """``time.monotonic()`` when it was opened."""


def create_segment(log_dir: Path, kind: str, number: int) -> OpenSegment:
    """Create, lock and return a new segment of ``kind``. Raises ``OSError`` when the directory
    cannot be made or written."""
    if kind not in KINDS:
        raise ValueError(f"unknown log kind {kind!r}")
    directory = segments_dir(log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    while True:
        name = SegmentName(start_ns=time.time_ns(), pid=os.getpid(), number=number, kind=kind)
        path = directory / name.filename
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            number += 1
            continue
        try:
            if _lock(fd) and _still_named(path, fd):
                return OpenSegment(fd=fd, path=path, name=name, opened=time.monotonic())
        except BaseException:
            os.close(fd)
            raise
        # A compactor took the empty file between our create and lock: start over.
        os.close(fd)
        number += 1


def claim_segment(path: Path) -> int | None:
    """A read-only descriptor of ``path`` holding its lock when the segment is closed (no live
    writer) and still present; None otherwise. Close the descriptor to release the claim."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _lock(fd) and _still_named(path, fd):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _still_named(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class SegmentReader:
    """The entries of a segment, decoded one line at a time (memory stays flat however big
    the segment is); ``skipped`` counts the lines that were not valid entries.

    Only lines ending in a newline count: a write a crash cut short (or one still in progress,
    in an open segment) is a last line without one, and is skipped. Iterating raises
    ``FileNotFoundError`` when the segment is gone (compacted meanwhile).
    """

    def __init__(self, path: Path, *, chunk_bytes: int = 1 << 20) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.skipped = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as handle:
            rest = b""
            while chunk := handle.read(self.chunk_bytes):
                lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
                rest = lines.pop()  # b"" after a complete line
                for line in lines:
                    record = self._decode(line)
                    if record is not None:
                        yield record
            if rest:
                self.skipped += 1

    def _decode(self, line: bytes) -> dict[str, Any] | None:
        if not line:
            return None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            return record
        self.skipped += 1
        return None


def fsync_directory(directory: Path) -> None:
    """Make a created, renamed or removed name in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def lag_seconds(log_dir: Path, now_ns: int | None = None) -> float:
    """Age of the oldest segment not yet compacted (0 when every entry is in Parquet)."""
    segments = list_segments(log_dir)
    if not segments:
        return 0.0
    now = time.time_ns() if now_ns is None else now_ns
    return max(now - segments[0][1].start_ns, 0) / 1e9
