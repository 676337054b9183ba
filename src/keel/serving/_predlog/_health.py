"""The prediction log's write health: why writing fails, since when, when to retry, and its
rate-limited warnings. Kept apart from the writer so the writer only decides *what* to write."""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# While the log is degraded, one warning per this many seconds.
WARNING_INTERVAL_SECONDS = 60.0


class WriteHealth:
    """Failure state of one log's writes; the writer calls :meth:`failed` / :meth:`succeeded`
    under its lock and asks :meth:`may_write` before each attempt."""

    def __init__(self, directory: Path, retry_seconds: float) -> None:
        self.directory = directory
        self.retry_seconds = retry_seconds
        self.reason: str | None = None
        """Why writing fails now (None when it works)."""
        self.since: float | None = None
        """When it started failing (epoch seconds)."""
        self._retry_at = 0.0
        self._warned_at = -WARNING_INTERVAL_SECONDS
        self._dropped_warned_at = -WARNING_INTERVAL_SECONDS

    def may_write(self) -> bool:
        """False while failing and the next retry is not due yet."""
        return self.reason is None or time.monotonic() >= self._retry_at

    def retry_now(self) -> None:
        """Make the next attempt due at once (on close: one last try)."""
        self._retry_at = 0.0

    def failed(
        self, error: OSError, *, retained: int, max_bytes: int, errors: int, dropped: int
    ) -> None:
        now = time.monotonic()
        self._retry_at = now + self.retry_seconds
        reason = f"cannot write to {self.directory}: {error.strerror or error}"
        first = self.reason is None
        self.reason = reason
        if first:
            self.since = time.time()
        if first or now - self._warned_at >= WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            logger.warning(
                "prediction log degraded: %s; keeping %d entries in memory (at most %d bytes), "
                "retrying every %gs; %d write errors, %d entries dropped so far",
                reason,
                retained,
                max_bytes,
                self.retry_seconds,
                errors,
                dropped,
            )

    def dropped(self, count: int, why: str, *, max_bytes: int, total: int) -> None:
        """Warn that ``count`` entries were lost and why; once per WARNING_INTERVAL_SECONDS."""
        now = time.monotonic()
        if now - self._dropped_warned_at < WARNING_INTERVAL_SECONDS:
            return
        self._dropped_warned_at = now
        logger.warning(
            "prediction log %s: dropped %d entries: %s (cap %d bytes); %d dropped so far",
            self.directory,
            count,
            why,
            max_bytes,
            total,
        )

    def succeeded(self, *, errors: int, dropped: int) -> None:
        if self.reason is None:
            return
        logger.warning(
            "prediction log recovered: writing to %s again after %.1fs (%d write errors, %d "
            "entries dropped so far)",
            self.directory,
            time.time() - (self.since or time.time()),
            errors,
            dropped,
        )
        self.reason = None
        self.since = None
