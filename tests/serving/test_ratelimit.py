"""Token buckets per key: in-process, shared through Redis, and falling back when Redis fails."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from keel.serving._ratelimit import Decision, MemoryLimiter, RateLimiter, RedisLimiter


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RateLimiter]:
    """Each limiter on a clock the test moves (Redis gets the time passed in)."""
    made: RateLimiter
    if request.param == "memory":
        made = MemoryLimiter(clock=clock)
    else:
        made = RedisLimiter(request.getfixturevalue("redis_url"), clock=clock)
    yield made
    made.close()


def _take_all(limiter: RateLimiter, key: str, rate: float, burst: int, times: int) -> list[bool]:
    return [limiter.take(key, rate, burst).allowed for _ in range(times)]


# -- the contract, on both limiters ----------------------------------------------------------------


def test_a_new_bucket_allows_the_burst_then_refuses(limiter: RateLimiter) -> None:
    decisions = [limiter.take("k1", 1.0, 3) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].retry_after_seconds == 0.0


def test_retry_after_is_the_time_until_a_whole_token(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert _take_all(limiter, "k1", 4.0, 2, 2) == [True, True]

    refused = limiter.take("k1", 4.0, 2)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(0.25)
    assert refused.retry_after_header == "1"

    clock.now += 0.1
    assert limiter.take("k1", 4.0, 2).retry_after_seconds == pytest.approx(0.15)
    clock.now += 0.15
    assert limiter.take("k1", 4.0, 2).allowed


def test_the_bucket_refills_at_the_rate_up_to_the_burst(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert _take_all(limiter, "k1", 2.0, 4, 5) == [True] * 4 + [False]

    clock.now += 1.0  # two tokens
    assert _take_all(limiter, "k1", 2.0, 4, 3) == [True, True, False]

    clock.now += 3600.0  # full again, and no fuller
    assert _take_all(limiter, "k1", 2.0, 4, 5) == [True] * 4 + [False]


def test_keys_have_their_own_buckets(limiter: RateLimiter) -> None:
    assert _take_all(limiter, "k1", 1.0, 1, 2) == [True, False]
    assert limiter.take("k2", 1.0, 1).allowed


def test_a_long_wait_is_answered_in_whole_seconds() -> None:
    decision = Decision(False, 12.01, 0)
    assert decision.retry_after_header == "13"


def test_memory_limiter_forgets_buckets_that_are_full_again(clock: FakeClock) -> None:
    limiter = MemoryLimiter(clock=clock)
    limiter.take("k1", 1.0, 5)
    clock.now += 120.0
    limiter.take("k2", 1.0, 5)  # sweeps

    assert set(limiter._buckets) == {"k2"}


# -- Redis: one budget for every process -----------------------------------------------------------


def _spend(url: str, key: str, takes: int, results: multiprocessing.Queue[int]) -> None:
    limiter = RedisLimiter(url)
    allowed = sum(limiter.take(key, 0.001, 25).allowed for _ in range(takes))
    results.put(allowed)
    limiter.close()


@pytest.mark.slow  # two spawned interpreters importing keel
def test_processes_sharing_redis_share_one_budget(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = context.Queue()
    key = f"shared-{uuid.uuid4().hex[:8]}"
    workers = [context.Process(target=_spend, args=(redis_url, key, 20, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    counts = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert sum(counts) == 25  # 40 tries, one bucket of 25 (refill is negligible)
    assert all(worker.exitcode == 0 for worker in workers)


def test_redis_buckets_use_the_server_clock_and_expire(redis_url: str) -> None:
    limiter = RedisLimiter(redis_url)
    assert _take_all(limiter, "k1", 10.0, 2, 3) == [True, True, False]

    prefix = redis_url.rsplit("prefix=", 1)[1]
    client = redis.Redis.from_url(redis_url.split("?")[0])
    ttl_ms = client.pttl(f"{prefix}:ratelimit:k1")
    client.close()
    limiter.close()

    assert 0 < ttl_ms <= 1200  # empty bucket: full again after 0.2 s, plus a second of slack


# -- Redis down: the request still gets an answer --------------------------------------------------


@pytest.fixture
def down_url() -> str:
    return f"redis://127.0.0.1:{_closed_port()}/0?prefix=nothing"


def test_an_unreachable_redis_falls_back_to_this_process(
    down_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisLimiter(down_url, fallback=MemoryLimiter(clock=clock))

    with caplog.at_level(logging.WARNING, logger="keel.serving.ratelimit"):
        decisions = [limiter.take("k1", 1.0, 2) for _ in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    assert limiter.degraded
    assert limiter.fallbacks == 3
    failures = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(failures) == 1  # logged once per outage, counted every time
    limiter.close()


def test_after_a_failure_redis_is_not_retried_until_the_interval_passes(
    down_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RedisLimiter(down_url, retry_interval=60.0)
    calls: list[int] = []
    script = limiter._script

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return script(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(limiter, "_script", counting)
    for _ in range(50):
        assert limiter.take("k1", 100.0, 100).allowed

    assert len(calls) == 1
    limiter.close()


def test_the_limiter_recovers_when_redis_answers_again(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisLimiter(redis_url, retry_interval=0.0)
    real: Callable[..., object] = limiter._script
    failing = [True]

    def flaky(*args: object, **kwargs: object) -> object:
        if failing[0]:
            raise redis.ConnectionError("connection refused")
        return real(*args, **kwargs)

    limiter._script = flaky  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="keel.serving.ratelimit"):
        assert limiter.take("k1", 1.0, 1).allowed  # fallback bucket
        failing[0] = False
        assert limiter.take("k1", 1.0, 1).allowed  # the shared bucket, still full

    assert not limiter.degraded
    assert limiter.fallbacks == 1
    assert "answers again" in caplog.text
    limiter.close()
