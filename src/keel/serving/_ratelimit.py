"""Per-key rate limits: a token bucket per API key, in this process or shared through Redis.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens a second; a request takes
one token or is refused with the time until one is there. Both limiters answer the same
:class:`RateLimiter` contract; :class:`RedisLimiter` shares one bucket per key across every
worker process and host, and falls back to a :class:`MemoryLimiter` while Redis cannot be
reached, so the limiter never fails or stalls a request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keel.errors import ConfigError
from keel.serving._cache_redis import display_url

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("keel.serving.ratelimit")


class Decision(NamedTuple):
    """The answer to one request: whether it may go ahead, and when to retry if not (a named
    tuple: one is made per request, and a tuple is the cheapest immutable record to make)."""

    allowed: bool
    retry_after_seconds: float
    """0 when allowed; else seconds until the bucket holds a whole token."""
    remaining: int
    """Whole tokens left in the bucket after this request."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` as HTTP wants it: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


class RateLimiter(Protocol):
    """Token buckets keyed by API key id."""

    def take(self, key_id: str, rate: float, burst: int) -> Decision:
        """Take one token from ``key_id``'s bucket (``rate`` tokens/s, ``burst`` capacity; a
        bucket never seen before starts full). Called once per request on the request path:
        must be fast and must not raise."""
        ...

    def close(self) -> None:
        """Release connections; called when the server shuts down."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` shows: the backend, and for a shared one whether it is reachable
        (when not, each process limits on its own). Must not do I/O."""
        ...


def _refill_and_take(
    tokens: float, at: float, now: float, rate: float, burst: int
) -> tuple[float, float, Decision]:
    """The token-bucket step both limiters share (the Lua script is the same arithmetic)."""
    if now > at:
        tokens = min(float(burst), tokens + (now - at) * rate)
        at = now
    if tokens >= 1.0:
        tokens -= 1.0
        return tokens, at, Decision(True, 0.0, math.floor(tokens))
    return tokens, at, Decision(False, (1.0 - tokens) / rate, 0)


class MemoryLimiter:
    """Token buckets in this process: the embedded default, and the fallback of
    :class:`RedisLimiter`. With N worker processes each has its own buckets, so a key gets up
    to N times its limit.

        limiter = MemoryLimiter()
        decision = limiter.take(record.id, record.rate_per_second, record.burst)

    One entry per key id seen (ids come from authenticated keys, so the map is bounded by the
    number of keys); an entry idle long enough to be full again is dropped now and then.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float, float]] = {}  # id -> tokens, at, full_at
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def take(self, key_id: str, rate: float, burst: int) -> Decision:
        now = self._clock()
        with self._lock:
            state = self._buckets.get(key_id)
            tokens, at = (float(burst), now) if state is None else state[:2]
            tokens, at, decision = _refill_and_take(tokens, at, now, rate, burst)
            self._buckets[key_id] = (tokens, at, at + (burst - tokens) / rate)
            if now >= self._next_sweep:
                self._sweep(now)
        return decision

    def _sweep(self, now: float) -> None:
        # A bucket that would be full by now is the same as no bucket.
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        self._next_sweep = now + 60.0

    def close(self) -> None:
        with self._lock:
            self._buckets.clear()

    def status(self) -> dict[str, Any]:
        return {"backend": "memory", "buckets": len(self._buckets)}


# KEYS[1]: the bucket (a hash of tokens and the time they were counted at).
# ARGV: rate (tokens/s), burst, and the time in seconds, or '' to use the server's TIME, which
# every worker and host then shares. Refill and take happen in one script, so they are atomic.
# Numbers are written with %.17g: Lua's tostring keeps 14 digits, too few for epoch microseconds.
# The bucket expires once it would be full again: a missing bucket is a full one.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
else
  now = tonumber(ARGV[3])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.17g', retry), math.floor(tokens)}
"""


class RedisLimiter:
    """Token buckets in Redis, shared by every process that points at the same server.

        limiter = RedisLimiter("redis://cache.internal:6379/0?prefix=churn")

    Each take is one round trip running a Lua script that refills and takes atomically, timed
    by the Redis server's clock (``TIME``) so workers' clocks need not agree; pass ``clock`` to
    time buckets yourself (tests). Buckets are ``PREFIX:ratelimit:KEY_ID`` hashes that expire
    once they would be full again.

    Timeouts are short by default (0.25 s to connect, 0.1 s per command; override in the URL).
    When Redis fails, the take is answered by an in-process :class:`MemoryLimiter` (each worker
    then limits on its own), counted in :attr:`fallbacks` and logged once per outage; for
    ``retry_interval`` seconds after a failure Redis is not tried at all, so an unreachable
    server costs one timeout per interval, not one per request.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        fallback: MemoryLimiter | None = None,
        retry_interval: float = 1.0,
    ) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "keel")
        query.setdefault("socket_connect_timeout", "0.25")
        query.setdefault("socket_timeout", "0.1")
        try:
            import redis
        except ImportError:  # an optional extra; the in-process limiter needs nothing
            raise ConfigError(
                "a Redis rate limiter needs redis-py: pip install 'keel-ml[redis]'"
            ) from None
        self._redis_errors = (redis.RedisError, ValueError, TypeError)
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                urlunsplit(parts._replace(query=urlencode(query)))
            )
        except ValueError as error:
            raise ConfigError(f"the rate limiter's Redis URL is not valid: {error}") from None
        self._script = self._client.register_script(_TAKE)
        self.url = display_url(url)
        self._last_error: str | None = None
        self._prefix = f"{prefix}:ratelimit:"
        self._clock = clock
        self._fallback = fallback if fallback is not None else MemoryLimiter()
        self._retry_interval = retry_interval
        self._down_until = 0.0
        self._degraded = False
        self._lock = threading.Lock()
        self.fallbacks = 0
        """Takes answered by the in-process fallback because Redis failed."""

    @property
    def degraded(self) -> bool:
        """True while the last attempt to reach Redis failed."""
        return self._degraded

    def take(self, key_id: str, rate: float, burst: int) -> Decision:
        if time.monotonic() < self._down_until:
            return self._fall_back(key_id, rate, burst)
        now = "" if self._clock is None else repr(self._clock())
        try:
            reply: Any = self._script(keys=[self._prefix + key_id], args=[rate, burst, now])
            allowed, retry, remaining = reply
            decision = Decision(bool(allowed), float(retry), int(remaining))
        except self._redis_errors as error:
            self._failed(error)
            return self._fall_back(key_id, rate, burst)
        if self._degraded:
            with self._lock:
                self._degraded = False
            logger.warning("rate limiter: Redis answers again; buckets are shared again")
        return decision

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            first = not self._degraded
            self._degraded = True
            self._down_until = time.monotonic() + self._retry_interval
            self._last_error = f"{type(error).__name__}: {error}"
        if first:
            logger.warning(
                "rate limiter: Redis failed (%s: %s); limiting in this process until it answers",
                type(error).__name__,
                error,
            )

    def _fall_back(self, key_id: str, rate: float, burst: int) -> Decision:
        with self._lock:
            self.fallbacks += 1
        return self._fallback.take(key_id, rate, burst)

    def close(self) -> None:
        self._client.close()
        self._fallback.close()

    def status(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "url": self.url,
            "reachable": not self._degraded,
            "last_error": self._last_error,
            "fallbacks": self.fallbacks,
        }
