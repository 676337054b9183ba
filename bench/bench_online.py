"""Online feature reads: p50/p99 of get_online_features on SQLite and Redis, with raw baselines.

    taskset -c 1 .venv/bin/python bench/bench_online.py [--entities N] [--repeat N]

One feature view of 10 float features over ``--entities`` entities (100,000 by default) is
written to each store; each lookup asks for all 10 features of 1 or of 100 random entities.
Baselines in the same run read the same stored rows with no keel code: on Redis, one MGET of
the keys (the floor for this layout) and a pipeline of one GET per key (what "a pipelined read"
usually means); on SQLite, the same ``SELECT ... WHERE key IN (...)`` on a plain connection
with the store's read settings.
Redis uses database 15 (``--redis-url``) under the prefix ``keelbench``; its keys are removed
before and after the run, and the run refuses a database holding anything else.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from _common import machine
from keel.data import Field
from keel.features import DataFrameSource, Entity, FeatureCatalog, FeatureView
from keel.features._lookups import LookupLog
from keel.features._online import OnlineFeatures, get_online_features
from keel.features.online import OnlineStore, encode_key, open_online_store
from keel.features.online._sqlite import CACHE_KIB, MMAP_BYTES

FEATURES = [f"f{i}" for i in range(10)]
PREFIX = "keelbench"


def _view() -> FeatureView:
    return FeatureView(
        name="bench",
        entities=(Entity("entity", join_keys=("entity_id",)),),
        source=DataFrameSource(pd.DataFrame()),
        timestamp_column="event_time",
        ttl=timedelta(days=30),
        features=tuple(Field(name, "float") for name in FEATURES),
    )


def _fill(store: OnlineStore, entities: int) -> None:
    rng = np.random.default_rng(0)
    now = pd.Timestamp.now(tz="UTC")
    for start in range(0, entities, 100_000):
        ids = np.arange(start, min(start + 100_000, entities))
        stamps = pd.Series(now - pd.to_timedelta(rng.integers(0, 86400, len(ids)), unit="s"))
        store.write(
            "bench",
            pd.DataFrame({"entity_id": ids}),
            stamps,
            {name: rng.random(len(ids)) for name in FEATURES},
        )


def _lookup(
    rows: list[list[dict[str, int]]],
    catalog: FeatureCatalog,
    store: OnlineStore,
    log: LookupLog | None = None,
) -> Callable[[int], object]:
    return lambda i: get_online_features(rows[i], FEATURES_REFS, catalog, store, log=log)


def _percentiles(action: Callable[[int], object], repeat: int) -> tuple[float, float]:
    for i in range(min(200, repeat)):  # warm up: connections, statement caches, layouts
        action(i)
    timings = []
    for i in range(repeat):
        begin = time.perf_counter()
        action(i)
        timings.append(time.perf_counter() - begin)
    timings.sort()
    return timings[len(timings) // 2], timings[min(len(timings) - 1, int(len(timings) * 0.99))]


def _row(label: str, p50: float, p99: float) -> None:
    print(f"  {label:<58} p50 {p50 * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms")


def _check_redis(client: redis.Redis) -> None:
    foreign = [k for k in client.scan_iter(count=1000) if not k.startswith(PREFIX.encode() + b":")]
    if foreign:
        raise SystemExit(
            f"the Redis benchmark database holds keys that are not the benchmark's "
            f"(e.g. {foreign[0]!r}); choose another with --redis-url"
        )
    client.flushdb()


def bench(entities: int, repeat: int, redis_url: str) -> None:
    catalog = FeatureCatalog.of([_view()])
    rng = random.Random(1)
    samples = {
        size: [[{"entity_id": rng.randrange(entities)} for _ in range(size)] for _ in range(repeat)]
        for size in (1, 100)
    }
    client = redis.Redis.from_url(redis_url)
    _check_redis(client)
    with tempfile.TemporaryDirectory(prefix="keel-bench-online-") as tmp:
        stores = {
            "SQLite": open_online_store(f"sqlite:///{Path(tmp) / 'online.db'}"),
            "Redis": open_online_store(f"{redis_url}?prefix={PREFIX}"),
        }
        try:
            for name, store in stores.items():
                begin = time.perf_counter()
                _fill(store, entities)
                print(
                    f"{name}: {entities:,} entities x 10 features written in "
                    f"{time.perf_counter() - begin:.1f} s"
                )
            for size in (1, 100):
                print(
                    f"\n{size} entit{'y' if size == 1 else 'ies'} x 10 features "
                    f"({repeat} lookups each)"
                )
                rows = samples[size]
                keys = [[(row["entity_id"],) for row in batch] for batch in rows]
                for name, store in stores.items():
                    lookup = OnlineFeatures(catalog, store, FEATURES_REFS)
                    p50, p99 = _percentiles(lambda i, g=lookup.get, r=rows: g(r[i]), repeat)
                    _row(f"{name}: OnlineFeatures.get (resolved once)", p50, p99)
                    p50, p99 = _percentiles(_lookup(rows, catalog, store), repeat)
                    _row(f"{name}: get_online_features (resolves per call)", p50, p99)
                    p50, p99 = _percentiles(
                        lambda i, s=store, k=keys: s.read("bench", k[i], FEATURES), repeat
                    )
                    _row(f"{name}: OnlineStore.read only", p50, p99)
                with LookupLog(Path(tmp) / "lookups", 0.01, seed=0) as log:
                    logged = OnlineFeatures(catalog, stores["SQLite"], FEATURES_REFS, log=log)
                    p50, p99 = _percentiles(lambda i, g=logged.get, r=rows: g(r[i]), repeat)
                _row("SQLite: OnlineFeatures.get, lookups logged at 1 %", p50, p99)
                _baselines(size, keys, repeat, Path(tmp) / "online.db", client)
        finally:
            for store in stores.values():
                store.close()
            _check_redis(client)
            client.close()


FEATURES_REFS = [f"bench:{name}" for name in FEATURES]


def _encoded(key: tuple[int]) -> bytes:
    encoded = encode_key(key)
    assert encoded is not None
    return encoded


def _baselines(
    size: int, keys: list[list[tuple[int]]], repeat: int, sqlite_path: Path, client: redis.Redis
) -> None:
    import sqlite3

    prefix = f"{PREFIX}:bench:".encode()
    encoded = [[_encoded(key) for key in batch] for batch in keys]
    redis_keys = [[prefix + key for key in batch] for batch in encoded]
    p50, p99 = _percentiles(lambda i: client.mget(redis_keys[i]), repeat)
    _row("baseline Redis: raw MGET of the same keys", p50, p99)

    def pipelined(i: int) -> object:
        pipe = client.pipeline(transaction=False)
        for key in redis_keys[i]:
            pipe.get(key)
        return pipe.execute()

    p50, p99 = _percentiles(pipelined, repeat)
    _row("baseline Redis: raw pipelined GET per key", p50, p99)
    connection = sqlite3.connect(sqlite_path)
    # the same read settings the SQLite store uses (a memory-mapped file, a larger page cache)
    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    texts = [[key.decode() for key in batch] for batch in encoded]
    statement = (
        f"SELECT key, ts, value FROM online_rows WHERE view = 'bench' AND key IN "
        f"({','.join('?' * size)})"
    )
    p50, p99 = _percentiles(lambda i: connection.execute(statement, texts[i]).fetchall(), repeat)
    _row("baseline SQLite: raw SELECT ... IN of the same rows", p50, p99)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    print(machine())
    bench(args.entities, args.repeat, args.redis_url)


if __name__ == "__main__":
    main()
