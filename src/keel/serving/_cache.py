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

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from keel.errors import ConfigError

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
        looked_up = self.counters["hits"] + self.counters["misses"]
        return {
            "backend": self.backend,
            "reachable": True,
            "last_error": None,
            "ttl_seconds": self.ttl_seconds,
            **self.counters,
            # A cache that (almost) never hits only costs: each miss pays a key and a store.
            "hit_rate": round(self.counters["hits"] / looked_up, 4) if looked_up else None,
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

    def lookup(self, key: bytes) -> CachedAnswer | None:
        """:meth:`get_many` of one key, without a coroutine (the request path's one-record
        case: this cache never does I/O)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._entries.move_to_end(key)
                self.counters["hits"] += 1
                return _decode_answer(entry[1])
            del self._entries[key]
        self.counters["misses"] += 1
        return None

    def store(
        self, key: bytes, prediction: Any, probabilities: dict[str, float] | None, inputs: Any
    ) -> None:
        """:meth:`set_many` of one answer (a :class:`CachedAnswer`'s fields), without a
        coroutine."""
        self._put(key, prediction, probabilities, inputs, self._clock() + self.ttl_seconds)

    async def get_many(self, keys: Sequence[bytes]) -> list[CachedAnswer | None]:
        return [self.lookup(key) for key in keys]

    async def set_many(
        self, items: Sequence[tuple[bytes, CachedAnswer]], ttl_seconds: float | None = None
    ) -> None:
        expires = self._clock() + self._ttl(ttl_seconds)
        for key, answer in items:
            self._put(key, answer.prediction, answer.probabilities, answer.inputs, expires)

    def _put(
        self,
        key: bytes,
        prediction: Any,
        probabilities: dict[str, float] | None,
        inputs: Any,
        expires: float,
    ) -> None:
        try:
            encoded = _encode_answer(prediction, probabilities, inputs)
        except TypeError:  # an answer JSON cannot hold is not kept, as in Redis
            self.counters["dropped"] += 1
            return
        entries = self._entries
        entries[key] = (expires, encoded)
        entries.move_to_end(key)
        self.counters["stored"] += 1
        if len(entries) > self.max_entries:  # one in, at most one out
            entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "entries": len(self._entries), "max_entries": self.max_entries}


def _encode_answer(prediction: Any, probabilities: dict[str, float] | None, inputs: Any) -> bytes:
    fields = (prediction, probabilities) if inputs is None else (prediction, probabilities, inputs)
    return orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)


def _decode_answer(data: bytes | str) -> CachedAnswer | None:
    try:
        fields = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(fields, list) or len(fields) not in (2, 3):
        return None
    return CachedAnswer(*fields)


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
    :class:`~keel.serving._cache_redis.RedisCache` (``redis_options`` are its keyword
    arguments)."""
    scheme = "memory" if url is None or url == "memory" else urlsplit(url).scheme
    backend = _BACKENDS.get(scheme)
    if backend is None:
        from keel.serving._cache_redis import display_url

        raise ConfigError(
            f"'{display_url(url or '')}' names no prediction cache: use memory or a redis:// URL"
        )
    if backend == "memory":
        return MemoryCache(max_entries=max_entries, ttl_seconds=ttl_seconds)
    assert url is not None
    # The Redis backend builds on this module's contract, so it is imported when chosen.
    from keel.serving._cache_redis import RedisCache

    return RedisCache(url, ttl_seconds, **redis_options)
