"""The prediction cache: canonical keys, the in-process LRU, Redis, bypassing a Redis that fails.

The Redis tests run a private ``redis-server`` on a free port (never the shared one on 6379), so
they can stop it and start it again on the same port. Each test drives its own loop with
``asyncio.run`` (no asyncio pytest plugin is installed).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
import redis
from hypothesis import example, given
from hypothesis import strategies as st

from keel.errors import ConfigError
from keel.serving._cache import CachedAnswer, MemoryCache, PredictionCache, open_cache
from keel.serving._cache_keys import CacheKeys, cache_key
from keel.serving._cache_redis import RedisCache

T = TypeVar("T")
COLUMNS = ["age", "plan", "score", "tenure"]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def answer(n: int) -> CachedAnswer:
    return CachedAnswer(prediction=f"label-{n}", probabilities={"a": n / 10, "b": 1 - n / 10})


# -- keys ------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


def same_value(a: Any, b: Any) -> bool:
    """Whether two JSON scalars must share a key: equal and of the same kind."""
    if type(a) is bool or type(b) is bool or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if a != a and b != b:
        return True  # NaN
    return bool(a == b)


@given(st.fixed_dictionaries(dict.fromkeys(COLUMNS, scalars)), st.randoms())
def test_key_ignores_field_order(record: dict[str, Any], rng: Any) -> None:
    names = list(record)
    rng.shuffle(names)
    shuffled = {name: record[name] for name in names}
    assert cache_key("m", 1, shuffled, COLUMNS) == cache_key("m", 1, record, COLUMNS)


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_key_is_the_same_for_an_int_and_the_equal_float(value: int) -> None:
    as_int = cache_key("m", 1, {"x": value}, ["x"])
    assert cache_key("m", 1, {"x": float(value)}, ["x"]) == as_int


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_key_ignores_how_a_float_was_written(value: float) -> None:
    # Each spelling parses back to the same double: shortest, padded, exponent, upper case.
    spellings = [repr(value), f"{value:.17e}", f"{value:.25E}", f"{value:.20g}"]
    keys = {cache_key("m", 1, json.loads(f'{{"x": {text}}}'), ["x"]) for text in spellings}
    assert keys == {cache_key("m", 1, {"x": value}, ["x"])}


class _Float(float):
    """A float subclass: keys like its value, but never takes the packed all-numbers path."""


class _Int(int):
    """An int subclass, likewise."""


numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True)
)


@given(st.lists(numbers, min_size=1, max_size=6))
@example([-0.0, 1])
@example([float("nan"), 2.5])
@example([2**53 + 1, 0.5])
def test_an_all_numeric_record_keys_alike_packed_or_column_by_column(values: list[Any]) -> None:
    columns = [f"c{index}" for index in range(len(values))]
    packed = dict(zip(columns, values, strict=True))
    one_by_one = {
        name: _Float(value) if isinstance(value, float) else _Int(value)
        for name, value in packed.items()
    }
    assert cache_key("m", 1, packed, columns) == cache_key("m", 1, one_by_one, columns)


@given(st.lists(numbers, min_size=2, max_size=2), st.lists(numbers, min_size=2, max_size=2))
@example([-0.0, 1], [0.0, 1.0])
@example([2**53 + 1, 1], [2.0**53, 1])
def test_all_numeric_records_share_a_key_only_when_their_values_match(
    first: list[Any], second: list[Any]
) -> None:
    def key(values: list[Any]) -> bytes:
        return cache_key("m", 1, {"a": values[0], "b": values[1]}, ["a", "b"])

    same = all(same_value(a, b) for a, b in zip(first, second, strict=True))
    assert (key(first) == key(second)) == same


@given(scalars, scalars)
def test_key_differs_when_a_value_differs(a: Any, b: Any) -> None:
    first = cache_key("m", 1, {"x": a, "y": "same"}, ["x", "y"])
    second = cache_key("m", 1, {"x": b, "y": "same"}, ["x", "y"])
    assert (first == second) == same_value(a, b)


def test_key_tells_strings_booleans_none_and_numbers_apart() -> None:
    values = ["1", True, None, 1, "", False, 0, "None", "true"]
    keys = {cache_key("m", 1, {"x": value}, ["x"]) for value in values}
    assert len(keys) == len(values)


def test_key_treats_every_nan_alike_and_negative_zero_as_zero() -> None:
    def key(value: Any) -> bytes:
        return cache_key("m", 1, {"x": value}, ["x"])

    negative_nan = -float("nan")
    assert key(float("nan")) == key(negative_nan) == key(np.float32("nan"))
    assert key(float("nan")) != key(None)
    assert key(-0.0) == key(0.0) == key(0)


def test_key_of_an_int_no_double_holds_differs_from_the_nearest_float() -> None:
    big = 2**53 + 1
    assert cache_key("m", 1, {"x": big}, ["x"]) != cache_key("m", 1, {"x": float(big)}, ["x"])
    assert cache_key("m", 1, {"x": 10**400}, ["x"]) != cache_key("m", 1, {"x": 10**400 + 1}, ["x"])


def test_key_of_numpy_scalars_equals_the_key_of_python_values() -> None:
    record = {"age": np.int64(41), "plan": np.str_("pro"), "score": np.float64(0.5)}
    plain = {"age": 41, "plan": "pro", "score": 0.5}
    record["tenure"] = np.bool_(True)
    plain["tenure"] = True
    assert cache_key("m", 1, record, COLUMNS) == cache_key("m", 1, plain, COLUMNS)


def test_key_ignores_fields_outside_the_columns_and_keys_a_missing_one_like_none() -> None:
    base = cache_key("m", 1, {"x": 1, "y": None}, ["x", "y"])
    assert cache_key("m", 1, {"x": 1, "y": None, "extra": 5}, ["x", "y"]) == base
    assert cache_key("m", 1, {"x": 1}, ["x", "y"]) == base


def test_key_depends_on_the_column_names() -> None:
    assert cache_key("m", 1, {"x": 1, "y": 2}, ["x", "y"]) != cache_key(
        "m", 1, {"x": 1, "z": 2}, ["x", "z"]
    )


def test_key_starts_with_model_and_version_and_has_a_fixed_size_digest() -> None:
    keys = CacheKeys("churn", 3, COLUMNS)
    short = keys.key({"age": 1})
    long = keys.key({"age": 1, "plan": "p" * 10_000})
    assert short.startswith(b"churn:3:")
    assert len(short) == len(long) == len(b"churn:3:") + 32
    assert CacheKeys("churn", 4, COLUMNS).key({"age": 1}).startswith(b"churn:4:")


def test_keys_of_a_request_are_one_per_record_in_order() -> None:
    keys = CacheKeys("m", 1, ["x"])
    records = [{"x": 1}, {"x": 2}, {"x": 1.0}]
    assert keys.keys(records) == [keys.key(r) for r in records]
    assert keys.keys(records)[0] == keys.keys(records)[2]


# -- the contract, on every backend ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of this test's own, stopped and started by its PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1"]  # noqa: RUF005
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "private redis-server did not start"
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("KEEL_REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed (KEEL_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    server: PrivateRedis = request.getfixturevalue("private_redis")
    return server.url


def test_cache_returns_stored_answers_and_misses_the_rest(backend: str) -> None:
    async def scenario() -> None:
        cache = open_cache(backend, ttl_seconds=60)
        keys = CacheKeys("m", 1, ["x"]).keys([{"x": n} for n in range(5)])
        assert await cache.get_many(keys) == [None] * 5
        await cache.set_many([(keys[1], answer(1)), (keys[3], answer(3))])
        assert await cache.get_many(keys) == [None, answer(1), None, answer(3), None]
        status = cache.status()
        assert (status["hits"], status["misses"], status["stored"]) == (2, 8, 2)
        assert status["hit_rate"] == 0.2
        assert status["reachable"] is True
        await cache.close()

    run(scenario())


def test_a_cache_never_looked_up_has_no_hit_rate_yet() -> None:
    assert open_cache("memory").status()["hit_rate"] is None


def test_cache_round_trips_every_field_of_an_answer(backend: str) -> None:
    async def scenario() -> None:
        cache = open_cache(backend)
        answers = [
            CachedAnswer(1, None),
            CachedAnswer(2.5, None),
            CachedAnswer(True, {"False": 0.25, "True": 0.75}),
            CachedAnswer("yes", {"no": 0.0, "yes": 1.0}, {"age": 41, "city": "Lyon"}),
        ]
        keys = [f"m:1:{n}".encode() for n in range(len(answers))]
        await cache.set_many(list(zip(keys, answers, strict=True)))
        found = await cache.get_many(keys)
        assert found == answers
        assert [type(a.prediction) for a in found if a] == [int, float, bool, str]
        await cache.close()

    run(scenario())


def test_cache_drops_an_answer_json_cannot_hold_and_keeps_the_rest(backend: str) -> None:
    async def scenario() -> None:
        cache = open_cache(backend)
        await cache.set_many([(b"m:1:a", CachedAnswer(object(), None)), (b"m:1:b", answer(2))])
        assert await cache.get_many([b"m:1:a", b"m:1:b"]) == [None, answer(2)]
        assert (cache.status()["stored"], cache.status()["dropped"]) == (1, 1)
        await cache.close()

    run(scenario())


def test_cache_later_answer_replaces_an_earlier_one(backend: str) -> None:
    async def scenario() -> None:
        cache = open_cache(backend)
        await cache.set_many([(b"k", answer(1))])
        await cache.set_many([(b"k", answer(2))])
        assert await cache.get_many([b"k"]) == [answer(2)]
        await cache.close()

    run(scenario())


def test_cache_with_nothing_to_look_up_or_store_does_nothing(backend: str) -> None:
    async def scenario() -> None:
        cache = open_cache(backend)
        assert await cache.get_many([]) == []
        await cache.set_many([])
        assert cache.status()["hits"] + cache.status()["misses"] == 0
        await cache.close()

    run(scenario())


# -- in process ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_entry_expires_after_its_ttl() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        cache = MemoryCache(ttl_seconds=10, clock=clock)
        await cache.set_many([(b"a", answer(1))])
        await cache.set_many([(b"b", answer(2))], ttl_seconds=100)
        clock.now += 9.9
        assert await cache.get_many([b"a", b"b"]) == [answer(1), answer(2)]
        clock.now += 0.1
        assert await cache.get_many([b"a", b"b"]) == [None, answer(2)]
        assert len(cache) == 1  # the expired entry was dropped, not kept

    run(scenario())


def test_memory_evicts_the_least_recently_used_entry_past_max_entries() -> None:
    async def scenario() -> None:
        cache = MemoryCache(max_entries=3)
        await cache.set_many([(b"a", answer(1)), (b"b", answer(2)), (b"c", answer(3))])
        await cache.get_many([b"a"])  # "a" is now the most recently used
        await cache.set_many([(b"d", answer(4))])
        assert await cache.get_many([b"a", b"b", b"c", b"d"]) == [
            answer(1),
            None,
            answer(3),
            answer(4),
        ]
        assert len(cache) == 3

    run(scenario())


def test_memory_stays_bounded_under_many_distinct_keys() -> None:
    async def scenario() -> None:
        cache = MemoryCache(max_entries=100)
        for start in range(0, 10_000, 50):
            await cache.set_many([(b"%d" % n, answer(1)) for n in range(start, start + 50)])
        assert len(cache) == 100
        assert cache.status()["entries"] == 100

    run(scenario())


def test_memory_entries_give_the_garbage_collector_nothing_to_walk() -> None:
    # A full cache of answer objects made each full collection a long pause (p99 tripled).
    async def scenario() -> None:
        cache = MemoryCache(max_entries=1_000)
        await cache.set_many(
            [(b"%d" % n, CachedAnswer(n, {"a": 0.5}, {"x": [n]})) for n in range(1_000)]
        )
        gc.collect()
        tracked = [entry for entry in cache._entries.values() if gc.is_tracked(entry)]
        assert tracked == []
        found = await cache.get_many([b"7"])
        assert found == [CachedAnswer(7, {"a": 0.5}, {"x": [7]})]

    run(scenario())


def test_memory_rejects_a_ttl_or_size_that_cannot_work() -> None:
    with pytest.raises(ConfigError, match="TTL"):
        MemoryCache(ttl_seconds=0)
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryCache(max_entries=0)


# -- Redis -----------------------------------------------------------------------------------------


def test_redis_keys_are_prefixed_and_scannable_per_model_version(
    private_redis: PrivateRedis,
) -> None:
    async def scenario() -> None:
        cache = RedisCache(private_redis.url + "?prefix=proj")
        v3, v4 = CacheKeys("churn", 3, ["x"]), CacheKeys("churn", 4, ["x"])
        await cache.set_many([(v3.key({"x": n}), answer(n)) for n in range(3)])
        await cache.set_many([(v4.key({"x": 0}), answer(9))])
        assert await cache.get_many([v4.key({"x": 1})]) == [None]  # a new version starts empty
        await cache.close()

    run(scenario())
    client = private_redis.client()
    assert len(list(client.scan_iter(match="proj:churn:3:*"))) == 3
    assert len(list(client.scan_iter(match="proj:churn:4:*"))) == 1
    client.close()


def test_redis_lookup_is_one_mget_and_a_write_sets_with_an_expiry(
    private_redis: PrivateRedis,
) -> None:
    keys = [b"m:1:%d" % n for n in range(50)]

    async def scenario() -> None:
        cache = RedisCache(private_redis.url, ttl_seconds=30)
        await cache.set_many([(key, answer(1)) for key in keys])
        private_redis.client().config_resetstat()
        await cache.get_many(keys)
        await cache.close()

    run(scenario())
    client = private_redis.client()
    stats = client.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats
    assert 29_000 < client.pttl(b"keel-cache:m:1:0") <= 30_000
    client.close()


def test_redis_entry_expires_after_its_ttl(private_redis: PrivateRedis) -> None:
    async def scenario() -> None:
        cache = RedisCache(private_redis.url, ttl_seconds=0.2)
        await cache.set_many([(b"k", answer(1))])
        assert await cache.get_many([b"k"]) == [answer(1)]
        await asyncio.sleep(0.3)
        assert await cache.get_many([b"k"]) == [None]
        await cache.close()

    run(scenario())


def test_redis_value_that_is_not_an_answer_is_a_miss(private_redis: PrivateRedis) -> None:
    client = private_redis.client()
    client.set(b"keel-cache:k1", b"not json")
    client.set(b"keel-cache:k2", b'{"a": 1}')
    client.close()

    async def scenario() -> None:
        cache = RedisCache(private_redis.url)
        assert await cache.get_many([b"k1", b"k2"]) == [None, None]
        assert cache.status()["misses"] == 2
        await cache.close()

    run(scenario())


async def _timed(coroutine: Coroutine[Any, Any, T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await coroutine
    return result, time.perf_counter() - started


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_redis_bypasses_a_stopped_server_and_resumes_when_it_returns(
    private_redis: PrivateRedis,
) -> None:
    keys = [b"k%d" % n for n in range(10)]

    async def scenario() -> None:
        cache = RedisCache(private_redis.url, backoff_seconds=0.05, max_backoff_seconds=0.1)
        await cache.set_many([(key, answer(1)) for key in keys])
        assert await cache.get_many(keys) == [answer(1)] * 10

        private_redis.stop()
        found, first = await _timed(cache.get_many(keys))
        assert found == [None] * 10
        assert first < 0.5
        await cache.set_many([(key, answer(2)) for key in keys])  # dropped, not raised
        for _ in range(20):
            found, later = await _timed(cache.get_many(keys))
            assert found == [None] * 10
            assert later < 0.2
        status = cache.status()
        assert status["reachable"] is False
        assert "ConnectionError" in status["last_error"]
        assert status["errors"] >= 1
        assert status["bypassed"] == 210
        assert status["dropped"] == 10

        private_redis.start()  # same port, empty (no persistence)
        await _until(lambda: cache.status()["reachable"])
        await cache.set_many([(key, answer(3)) for key in keys])
        assert await cache.get_many(keys) == [answer(3)] * 10
        assert cache.status()["reachable"] is True
        await cache.close()

    run(scenario())


def test_redis_serves_concurrent_requests_through_a_restart_without_raising(
    private_redis: PrivateRedis,
) -> None:
    keys = [[b"r%d:%d" % (request, n) for n in range(4)] for request in range(16)]

    async def all_requests(cache: RedisCache) -> list[list[CachedAnswer | None]]:
        return list(await asyncio.gather(*(cache.get_many(k) for k in keys)))

    async def scenario() -> None:
        cache = RedisCache(private_redis.url, backoff_seconds=0.05, max_backoff_seconds=0.1)
        await asyncio.gather(*(cache.set_many([(key, answer(1)) for key in k]) for k in keys))
        assert await all_requests(cache) == [[answer(1)] * 4] * 16  # 16 pooled connections

        private_redis.stop()
        assert await all_requests(cache) == [[None] * 4] * 16
        private_redis.start()
        await _until(lambda: cache.status()["reachable"])
        errors = cache.status()["errors"]
        await asyncio.gather(*(cache.set_many([(key, answer(2)) for key in k]) for k in keys))
        assert await all_requests(cache) == [[answer(2)] * 4] * 16
        assert cache.status()["errors"] == errors  # no connection from before the restart failed
        await cache.close()

    run(scenario())


def test_redis_restarted_between_requests_costs_no_error(private_redis: PrivateRedis) -> None:
    async def scenario() -> None:
        cache = RedisCache(private_redis.url)
        await cache.set_many([(b"k", answer(1))])
        private_redis.stop()
        private_redis.start()  # the pooled connection is now dead; redis-py reconnects it
        await cache.set_many([(b"k", answer(2))])
        assert await cache.get_many([b"k"]) == [answer(2)]
        assert cache.status()["errors"] == 0
        await cache.close()

    run(scenario())


def test_redis_requests_beyond_its_connections_wait_for_one_instead_of_failing(
    private_redis: PrivateRedis,
) -> None:
    async def scenario() -> None:
        cache = RedisCache(private_redis.url, max_connections=2)
        await cache.set_many([(b"k", answer(1))])
        found = await asyncio.gather(*(cache.get_many([b"k"]) for _ in range(200)))
        assert found == [[answer(1)]] * 200
        status = cache.status()
        assert (status["errors"], status["busy"], status["hits"]) == (0, 0, 200)
        await cache.close()

    run(scenario())


def test_redis_unreachable_from_the_start_answers_misses_quickly() -> None:
    async def scenario() -> None:
        cache = RedisCache(f"redis://127.0.0.1:{_free_port()}/0")
        for _ in range(5):
            found, took = await _timed(cache.get_many([b"a", b"b"]))
            assert found == [None, None]
            assert took < 0.5
        await cache.set_many([(b"a", answer(1))])
        assert cache.status()["reachable"] is False
        await cache.close()

    run(scenario())


def test_redis_bypasses_a_server_that_accepts_but_never_answers() -> None:
    async def scenario(port: int) -> None:
        cache = RedisCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.05)
        found, took = await _timed(cache.get_many([b"a"]))
        assert found == [None]
        assert took < 0.5
        assert "Timeout" in cache.status()["last_error"]
        await cache.close()

    with socket.socket() as silent:  # connections wait in the backlog; nothing ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        run(scenario(silent.getsockname()[1]))


def test_redis_requests_queued_behind_a_hung_server_give_up_within_a_bound() -> None:
    async def scenario(port: int) -> None:
        cache = RedisCache(f"redis://127.0.0.1:{port}/0", max_connections=1)
        results = await asyncio.gather(*(_timed(cache.get_many([b"a"])) for _ in range(20)))
        assert [found for found, _ in results] == [[None]] * 20
        assert max(took for _, took in results) < 1.0
        assert cache.status()["errors"] == 1  # only the call holding the connection met Redis
        assert cache.status()["bypassed"] == 20
        await cache.close()

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        run(scenario(silent.getsockname()[1]))


def test_redis_retries_after_the_backoff_not_on_every_request() -> None:
    async def scenario() -> None:
        cache = RedisCache(f"redis://127.0.0.1:{_free_port()}/0", backoff_seconds=5)
        for _ in range(100):
            await cache.get_many([b"a"])
            await cache.set_many([(b"a", answer(1))])
        status = cache.status()
        assert status["errors"] == 1  # the first lookup; the rest never reached Redis
        assert status["bypassed"] == 100
        assert status["dropped"] == 100
        await cache.close()

    run(scenario())


def test_redis_failures_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        cache = RedisCache(
            f"redis://127.0.0.1:{_free_port()}/0",
            backoff_seconds=0.01,
            max_backoff_seconds=0.01,
            log_interval_seconds=60,
        )
        await cache.get_many([b"a"])
        await _until(lambda: cache.status()["errors"] >= 10)
        await cache.close()

    with caplog.at_level(logging.WARNING, logger="keel.serving._cache"):
        run(scenario())
    assert len(caplog.records) == 1
    assert "bypassing" in caplog.records[0].getMessage()


def test_redis_status_hides_the_password() -> None:
    port = _free_port()

    async def scenario() -> None:
        cache = RedisCache(f"redis://:s3cret@127.0.0.1:{port}/0")
        await cache.get_many([b"a"])
        status = cache.status()
        assert "s3cret" not in str(status)
        assert status["url"] == f"redis://127.0.0.1:{port}/0"
        await cache.close()

    run(scenario())


# -- choosing a backend ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, MemoryCache),
        ("memory", MemoryCache),
        ("memory://", MemoryCache),
        ("redis://127.0.0.1:1/0", RedisCache),
        ("rediss://127.0.0.1:1/0", RedisCache),
    ],
)
def test_open_cache_picks_the_backend_the_url_names(
    url: str | None, kind: type[PredictionCache]
) -> None:
    cache = open_cache(url, ttl_seconds=5)
    assert type(cache) is kind
    assert cache.ttl_seconds == 5
    run(cache.close())


def test_open_cache_rejects_a_url_naming_no_backend() -> None:
    with pytest.raises(ConfigError, match="names no prediction cache"):
        open_cache("memcached://127.0.0.1")
    with pytest.raises(ConfigError, match="prefix"):
        open_cache("redis://127.0.0.1/0?prefix=a*")
