"""The Redis backend of the prediction cache: answers shared by every worker and host.

See :mod:`keel.serving._cache` for the contract; :func:`keel.serving._cache.open_cache` picks
this backend for ``redis://``, ``rediss://`` and ``unix://`` URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keel.errors import ConfigError
from keel.serving._cache import (
    DEFAULT_TTL_SECONDS,
    CachedAnswer,
    Clock,
    PredictionCache,
    _decode_answer,
    _encode_answer,
)

if TYPE_CHECKING:
    import redis.asyncio

logger = logging.getLogger("keel.serving._cache")


def display_url(url: str) -> str:
    """``url`` without its password (what logs and /readyz show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


class RedisCache(PredictionCache):
    """Answers in Redis, shared by every worker and host serving the model.

        cache = RedisCache("redis://cache.internal:6379/0?prefix=churn", ttl_seconds=600)

    A key is ``PREFIX:`` + the :class:`CacheKeys` key (``keel-cache:churn:3:9f0c…``), so the
    entries of one version can be scanned (``SCAN MATCH keel-cache:churn:3:*``). A value is the
    answer as compact JSON (orjson). A lookup is one ``MGET``; a write one pipeline of
    ``SET … PX``: one round trip each per request.

    Failures bypass the cache: a Redis error or a timeout (``socket_timeout``, 50 ms by
    default, per command; ``socket_connect_timeout``, 250 ms, only paid when the pool opens a
    connection, and a refused one fails at once; both also settable in the URL) turns that
    lookup into misses and drops that write, and marks Redis unreachable. Until a background
    probe (a ``PING`` after ``backoff_seconds``, doubling up to ``max_backoff_seconds``)
    succeeds, requests do not touch Redis at all. A failure is logged when it happens and then
    at most once per ``log_interval_seconds``; the return is logged too. At most
    ``max_connections`` calls run at once; others wait for a connection (at most one call's
    timeout, then skip the cache, counted ``busy``) instead of failing the pool.

    The timeouts are wall-clock time on the event loop: a loop overloaded for longer than
    them (thousands of requests queued at once) shows as timeouts, and the cache then steps
    aside for a backoff, which is also the right thing to do under such load.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        *,
        socket_timeout: float = 0.05,
        socket_connect_timeout: float = 0.25,
        max_connections: int = 64,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        log_interval_seconds: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(ttl_seconds)
        import redis
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "keel-cache")
        if not prefix or any(char in prefix for char in "*?[]\\"):
            raise ConfigError(f"prediction cache prefix '{prefix}' must be non-empty, no * ? [ ]")
        self.url = display_url(url)
        self._prefix = prefix.encode() + b":"
        try:
            self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                urlunsplit(parts._replace(query=urlencode(query))),
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                # redis-py retries a failed command 10 times with backoff by default: a request
                # must never wait for that (the probe below does the retrying). One immediate
                # retry on a broken connection is kept: a pooled connection found dead after a
                # restart is replaced at once instead of failing the request.
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                max_connections=max_connections + 1,  # + the probe's
            )
        except ValueError as error:
            raise ConfigError(f"'{self.url}' is not a Redis URL: {error}") from None
        kwargs = self._client.connection_pool.connection_kwargs
        # A hard bound per call, should a read stall between socket timeouts.
        self._call_timeout = (
            float(kwargs.get("socket_connect_timeout") or socket_connect_timeout)
            + 2 * float(kwargs.get("socket_timeout") or socket_timeout)
            + 0.01
        )
        # Calls wait for one of these rather than fail on an exhausted pool: a burst of
        # requests is congestion here, not a Redis failure.
        self._slots = asyncio.Semaphore(max_connections)
        self.counters["busy"] = 0
        self._backoff_initial = backoff_seconds
        self._backoff_max = max_backoff_seconds
        self._log_interval = log_interval_seconds
        self._clock = clock
        self._reachable = True  # optimistic until the first failure
        self._last_error: str | None = None
        self._last_logged: float | None = None
        self._unlogged = 0
        self._probe: asyncio.Task[None] | None = None
        self._closed = False

    # -- the contract ----------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[bytes]) -> list[CachedAnswer | None]:
        count = len(keys)
        if not count:
            return []
        if not self._reachable:
            self.counters["bypassed"] += count
            return [None] * count
        if not await self._slot():
            self.counters["bypassed"] += count
            return [None] * count
        prefix = self._prefix
        try:
            async with asyncio.timeout(self._call_timeout):
                values = await self._client.mget([prefix + key for key in keys])
        except Exception as error:  # any failure of the cache must leave the request unharmed
            self._failed("lookup", error)
            self.counters["bypassed"] += count
            return [None] * count
        finally:
            self._slots.release()
        found = [None if value is None else _decode_answer(value) for value in values]
        hits = count - found.count(None)
        self.counters["hits"] += hits
        self.counters["misses"] += count - hits
        return found

    async def set_many(
        self, items: Sequence[tuple[bytes, CachedAnswer]], ttl_seconds: float | None = None
    ) -> None:
        if not items:
            return
        ttl_ms = max(1, round(self._ttl(ttl_seconds) * 1000))
        if not self._reachable:
            self.counters["dropped"] += len(items)
            return
        pipeline = self._client.pipeline(transaction=False)
        stored = 0
        for key, answer in items:
            try:
                value = _encode_answer(answer.prediction, answer.probabilities, answer.inputs)
            except TypeError:  # an answer JSON cannot hold is not kept; the next one might be
                self.counters["dropped"] += 1
                continue
            pipeline.set(self._prefix + key, value, px=ttl_ms)
            stored += 1
        if not stored:
            return
        if not await self._slot():
            self.counters["dropped"] += stored
            return
        try:
            async with asyncio.timeout(self._call_timeout):
                await pipeline.execute()
        except Exception as error:
            self._failed("write", error)
            self.counters["dropped"] += stored
            return
        finally:
            self._slots.release()
        self.counters["stored"] += stored

    async def close(self) -> None:
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        await self._client.aclose()

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "url": self.url,
            "reachable": self._reachable,
            "last_error": self._last_error,
        }

    async def _slot(self) -> bool:
        """Take a connection slot, waiting at most a call's timeout; False (the call is skipped
        and counted ``busy``) when none came free, or Redis failed meanwhile."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._call_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                self.counters["busy"] += 1
                return False
        else:
            await self._slots.acquire()  # free: returns without suspending
        if not self._reachable:  # Redis failed while this call waited
            self._slots.release()
            return False
        return True

    # -- failure and recovery ----------------------------------------------------------------------

    def _failed(self, what: str, error: BaseException) -> None:
        self.counters["errors"] += 1
        self._last_error = _describe(error)
        if self._reachable:
            self._reachable = False
            self._log(
                f"prediction cache {self.url}: {what} failed ({self._last_error}); "
                f"bypassing it, retrying in {self._backoff_initial:g} s"
            )
        else:
            self._log(f"prediction cache {self.url}: {what} failed ({self._last_error})")
        if not self._closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(
                self._reconnect(), name=f"prediction cache probe {self.url}"
            )

    def _log(self, message: str) -> None:
        """Log a failure, unless one was logged less than the log interval ago (a flapping
        Redis must not flood the log): those are counted and the count said next time."""
        now = self._clock()
        if self._last_logged is None or now - self._last_logged >= self._log_interval:
            suffix = f" ({self._unlogged} more since the last message)" if self._unlogged else ""
            logger.warning("%s%s", message, suffix)
            self._last_logged = now
            self._unlogged = 0
        else:
            self._unlogged += 1

    async def _reconnect(self) -> None:
        """Ping Redis after a backoff that doubles after each failure, until it answers."""
        backoff = self._backoff_initial
        while True:
            await asyncio.sleep(backoff)
            try:
                async with asyncio.timeout(self._call_timeout):
                    await self._client.ping()
            except Exception as error:
                self.counters["errors"] += 1
                self._last_error = _describe(error)
                backoff = min(backoff * 2, self._backoff_max)
                self._log(
                    f"prediction cache {self.url} still unreachable ({self._last_error}); "
                    f"bypassing it, retrying in {backoff:g} s"
                )
                continue
            self._reachable = True
            logger.info("prediction cache %s is reachable again; using it", self.url)
            return


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
