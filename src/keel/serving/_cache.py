"""The prediction cache: answers already computed by a model version, looked up before predicting.

    keys = CacheKeys("churn", 3, runtime.request_names)      # _cache_keys; once per version
    cache = open_cache("redis://cache.internal:6379/0", ttl_seconds=600)
    found = await cache.get_many(keys.keys(records))          # one round trip per request
    ...predict the rows where found[i] is None...
    await cache.set_many([(key, CachedAnswer(prediction, probabilities)), ...])
    cache.status()                                            # what /readyz shows

A key is the model name and version in clear, then a 128-bit blake2b digest of the record's
canonical form (:mod:`keel.serving._cache_keys`): field order, how a number was written and
whether an equal number came as an int or a float do not change it. A new version writes new
keys, so entries of the old one are never read again and expire by their TTL.

Two backends (:func:`open_cache` picks one by URL): :class:`MemoryCache`, an LRU dictionary in
the server process (the default), and :class:`RedisCache`, shared by every worker and host.
The cache is an optimisation, never a dependency: when Redis fails or times out, lookups answer
"miss" and writes are dropped, the failure is counted and logged (once per interval), and a
background probe reconnects after a backoff; requests never wait for Redis more than its short
socket timeouts, and only the request that met the failure pays them.

Both backends are used from the event loop's thread only (no locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from keel.errors import ConfigError

if TYPE_CHECKING:
    import redis.asyncio

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds from a monotonic clock (``time.monotonic``; tests pass a fake one)."""

DEFAULT_TTL_SECONDS: Final = 600.0
DEFAULT_MAX_ENTRIES: Final = 100_000


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """What the cache keeps for one row: the fields of the model's ``RowResult``."""

    prediction: Any
    probabilities: dict[str, float] | None
    inputs: dict[str, Any] | None = None


# -- the contract ----------------------------------------------------------------------------------


class PredictionCache(ABC):
    """Where answers are kept between requests. Implementations count what happens in
    :attr:`counters` (``hits + misses + bypassed`` = rows looked up) for :meth:`status`."""

    backend: str

    def __init__(self, ttl_seconds: float) -> None:
        if not ttl_seconds > 0:
            raise ConfigError(f"the prediction cache TTL must be positive, not {ttl_seconds}")
        self.ttl_seconds = float(ttl_seconds)
        self.counters = {
            "hits": 0,
            "misses": 0,
            "bypassed": 0,
            "errors": 0,
            "stored": 0,
            "dropped": 0,
        }

    @abstractmethod
    async def get_many(self, keys: Sequence[bytes]) -> list[CachedAnswer | None]:
        """The answer kept under each key, None where there is none (or it expired). Called once
        per request with the keys of all its rows, before predicting. Never raises for the
        backend's failures: an unreachable backend answers None for every key."""

    @abstractmethod
    async def set_many(
        self, items: Sequence[tuple[bytes, CachedAnswer]], ttl_seconds: float | None = None
    ) -> None:
        """Keep each answer under its key for ``ttl_seconds`` (default: the cache's TTL).
        Called after predicting the misses of a request. Never raises for the backend's
        failures: answers that cannot be kept are dropped (and counted)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks (at server shutdown, on the same loop)."""

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` shows: backend, whether it is reachable, the last error, counters."""
        return {
            "backend": self.backend,
            "reachable": True,
            "last_error": None,
            "ttl_seconds": self.ttl_seconds,
            **self.counters,
        }

    def _ttl(self, ttl_seconds: float | None) -> float:
        if ttl_seconds is None:
            return self.ttl_seconds
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
        return ttl_seconds


# -- in process ------------------------------------------------------------------------------------


class MemoryCache(PredictionCache):
    """An LRU dictionary of answers in this process, each kept at most ``ttl_seconds``.

        cache = MemoryCache(max_entries=100_000, ttl_seconds=600)

    Every operation is O(1) per key (an ``OrderedDict`` moved to its end on a hit, popped from
    its front past ``max_entries``); an expired entry is dropped when it is next looked up, or
    evicted as least recently used. Its methods never suspend: awaiting them costs a coroutine
    step (≈0.1 µs), not a trip through the event loop.

    An entry is its expiry and the answer encoded as Redis keeps it (compact JSON), not the
    answer's objects: a full cache of objects is hundreds of thousands of containers the garbage
    collector walks on every full collection (a 30 ms pause at p99 with 100,000 entries), while
    a float and a bytes value are not tracked at all. A hit then answers exactly what a Redis
    hit answers.
    """

    backend = "memory"

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(ttl_seconds)
        if max_entries < 1:
            raise ConfigError(f"the prediction cache needs max_entries >= 1, not {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, keys: Sequence[bytes]) -> list[CachedAnswer | None]:
        now = self._clock()
        entries = self._entries
        found: list[CachedAnswer | None] = []
        hits = 0
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                found.append(None)
            elif entry[0] <= now:
                del entries[key]
                found.append(None)
            else:
                entries.move_to_end(key)
                found.append(_decode_answer(entry[1]))
                hits += 1
        self.counters["hits"] += hits
        self.counters["misses"] += len(found) - hits
        return found

    async def set_many(
        self, items: Sequence[tuple[bytes, CachedAnswer]], ttl_seconds: float | None = None
    ) -> None:
        expires = self._clock() + self._ttl(ttl_seconds)
        entries = self._entries
        stored = 0
        for key, answer in items:
            try:
                entries[key] = (expires, _encode_answer(answer))
            except TypeError:  # an answer JSON cannot hold is not kept, as in Redis
                self.counters["dropped"] += 1
                continue
            entries.move_to_end(key)
            stored += 1
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        self.counters["stored"] += stored

    async def close(self) -> None:
        self._entries.clear()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "entries": len(self._entries), "max_entries": self.max_entries}


# -- Redis -----------------------------------------------------------------------------------------


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


def _encode_answer(answer: CachedAnswer) -> bytes:
    fields: list[Any] = [answer.prediction, answer.probabilities]
    if answer.inputs is not None:
        fields.append(answer.inputs)
    return orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)


def _decode_answer(data: bytes | str) -> CachedAnswer | None:
    try:
        fields = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(fields, list) or len(fields) not in (2, 3):
        return None
    return CachedAnswer(*fields)


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
                value = _encode_answer(answer)
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


# -- choosing a backend ----------------------------------------------------------------------------

_BACKENDS: Final[dict[str, str]] = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
}


def open_cache(
    url: str | None,
    *,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    **redis_options: Any,
) -> PredictionCache:
    """The cache a URL names: None or ``memory`` (or ``memory://``) an in-process
    :class:`MemoryCache` of ``max_entries``; ``redis://``, ``rediss://`` or ``unix://`` a
    :class:`RedisCache` (``redis_options`` are its keyword arguments)."""
    scheme = "memory" if url is None or url == "memory" else urlsplit(url).scheme
    backend = _BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"'{display_url(url or '')}' names no prediction cache: use memory or a redis:// URL"
        )
    if backend == "memory":
        return MemoryCache(max_entries=max_entries, ttl_seconds=ttl_seconds)
    assert url is not None
    return RedisCache(url, ttl_seconds, **redis_options)
