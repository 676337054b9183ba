"""The thread that forces segment writes to disk, so no event loop ever waits on an fsync.

The writer hands work over through two callbacks: ``collect`` (called on this thread) returns
what to sync now, ``synced`` is told when it is done. One fsync round covers every write made
before it started, so appends that arrive while a round is running share the next one: group
commit for fsync, on top of group commit for ``os.write``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keel.serving._predlog._segments import fsync_directory

logger = logging.getLogger(__name__)


@dataclass
class SyncBatch:
    sequence: int
    """The writer's write sequence number this round covers."""
    fds: list[int] = field(default_factory=list)
    """Descriptors owned by the round: each is fsynced, then closed."""
    directories: list[Path] = field(default_factory=list)
    """Directories in which segments were created since the last round."""


class Syncer:
    """Runs fsync rounds when asked (:meth:`request`) and every ``interval`` seconds (None: only
    when asked).

        syncer = Syncer(collect, synced, interval=1.0)
        syncer.request()                   # a round soon
        syncer.wait_for(sequence)          # block until writes up to `sequence` are synced
        syncer.stop()                      # one last round, then the thread ends
    """

    def __init__(
        self,
        collect: Callable[[], SyncBatch],
        synced: Callable[[SyncBatch, OSError | None], None],
        *,
        interval: float | None,
    ) -> None:
        self._collect = collect
        self._synced = synced
        self._interval = interval
        self._cond = threading.Condition()
        self._requested = False
        self._stopping = False
        self._done_sequence = -1
        self._thread = threading.Thread(target=self._run, name="keel-predlog-fsync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Start a round as soon as the current one (if any) ends."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()

    def wait_for(self, sequence: int) -> None:
        """Block until a round covering ``sequence`` has finished (or the syncer stopped)."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()
            while self._done_sequence < sequence and self._thread.is_alive():
                self._cond.wait(0.1)

    def stop(self) -> None:
        """Run one last round and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._requested and not self._stopping:
                    self._cond.wait(self._interval)
                self._requested = False
                stopping = self._stopping
            try:
                self._round()
            except Exception:  # a bug here must not silently end fsyncing for good
                logger.exception("prediction log: fsync round failed")
            if stopping:
                return

    def _round(self) -> None:
        batch = self._collect()
        try:
            error: OSError | None = None
            for fd in batch.fds:
                try:
                    os.fdatasync(fd)
                except OSError as failure:
                    error = failure
                finally:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            for directory in batch.directories:
                with contextlib.suppress(OSError):
                    fsync_directory(directory)
            self._synced(batch, error)
        finally:
            with self._cond:
                self._done_sequence = max(self._done_sequence, batch.sequence)
                self._cond.notify_all()
