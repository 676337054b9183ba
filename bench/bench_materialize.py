"""Materializing 10 million feature rows (1 million entities x 10 rows, 10 float features) into
Redis and SQLite, against raw writes of the same final rows.

    taskset -c 1 .venv/bin/python bench/bench_materialize.py [--rows N] [--stores redis,sqlite]

The benchmark writes its data as Parquet in a temporary directory (one file per 10 % of the
rows; each entity has one row in every file, at distinct times over 90 days), records the view
in a temporary SQLite metadata store, then times ``materialize`` (read the Parquet, apply the
view, keep the latest row per entity, write it, record the watermark). Baselines in the same
run write the same final rows with no keel code: on Redis a pipelined SET per entity of an
orjson-encoded row (no timestamp check), on SQLite one executemany INSERT in one transaction.
Redis uses database 15 (``--redis-url``), emptied before and after; the run refuses a database
holding keys that are not the benchmark's.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import redis

from _common import machine
from keel.data import Field
from keel.features import Entity, FeatureView, ParquetSource
from keel.features._materialize import MaterializeResult, latest_per_entity, materialize
from keel.features._sources import read_view
from keel.features.online import open_online_store
from keel.store import MetadataStore, now
from keel.store import _tables as t

FEATURES = [f"f{i}" for i in range(10)]
ROUNDS = 10
START = pd.Timestamp("2026-01-01", tz="UTC")
END = START + pd.Timedelta(days=91)
PREFIX = "keelbench"


def _generate(directory: Path, rows: int) -> None:
    """``rows`` feature rows: rows // 10 entities, one row each in 10 slices of 9 days."""
    entities = rows // ROUNDS
    rng = np.random.default_rng(0)
    slice_ns = 9 * 86400 * 10**9
    for round_ in range(ROUNDS):
        offsets = rng.integers(0, slice_ns, entities)
        frame = pd.DataFrame(
            {
                "entity_id": np.arange(entities, dtype=np.int64),
                "event_time": START + pd.to_timedelta(round_ * slice_ns + offsets, unit="ns"),
                **{name: rng.random(entities) for name in FEATURES},
            }
        )
        frame.to_parquet(directory / f"part-{round_:02d}.parquet", index=False)


def _view(directory: Path) -> FeatureView:
    return FeatureView(
        name="bench",
        entities=(Entity("entity", join_keys=("entity_id",)),),
        source=ParquetSource(str(directory)),
        timestamp_column="event_time",
        ttl=timedelta(days=30),
        features=tuple(Field(name, "float") for name in FEATURES),
    )


def _record(store: MetadataStore, view: FeatureView) -> None:
    with store.write() as connection:
        connection.execute(
            t.feature_views.insert().values(
                name=view.name,
                version=1,
                definition_hash=view.definition_hash(),
                definition=view.definition(),
                created_at=now(),
                created_by="bench",
            )
        )


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(label: str, result: MaterializeResult) -> None:
    print(
        f"  {label:<30} {result.seconds:7.2f} s   {result.rows_read / result.seconds:>12,.0f} "
        f"source rows/s   read+latest {result.read_seconds:6.2f} s   write "
        f"{result.write_seconds:6.2f} s ({result.rows_written / result.write_seconds:,.0f} "
        f"entities/s)   peak RSS {_peak_mib():,.0f} MiB"
    )


def _empty_redis(client: redis.Redis) -> None:
    foreign = next(
        (k for k in client.scan_iter(count=1000) if not k.startswith(PREFIX.encode() + b":")),
        None,
    )
    if foreign is not None:
        raise SystemExit(
            f"the Redis benchmark database holds keys that are not the benchmark's "
            f"(e.g. {foreign!r}); choose another with --redis-url"
        )
    client.flushdb()


def _redis_baseline(client: redis.Redis, latest: pd.DataFrame) -> float:
    begin = time.perf_counter()
    keys = latest["entity_id"].tolist()
    columns = [latest[name].to_numpy() for name in FEATURES]
    for start in range(0, len(latest), 100_000):
        values = list(zip(*(c[start : start + 100_000].tolist() for c in columns), strict=True))
        pipeline = client.pipeline(transaction=False)
        for offset, row in enumerate(values):
            pipeline.set(b"%s:raw:%d" % (PREFIX.encode(), keys[start + offset]), orjson.dumps(row))
            if offset % 10_000 == 9_999:
                pipeline.execute()
        pipeline.execute()
    return time.perf_counter() - begin


def _sqlite_baseline(path: Path, latest: pd.DataFrame) -> float:
    begin = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE raw (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
    keys = latest["entity_id"].tolist()
    columns = [latest[name].to_numpy() for name in FEATURES]
    connection.execute("BEGIN")
    for start in range(0, len(latest), 100_000):
        values = zip(*(c[start : start + 100_000].tolist() for c in columns), strict=True)
        connection.executemany(
            "INSERT INTO raw VALUES (?, ?)",
            ((str(keys[start + i]), orjson.dumps(row)) for i, row in enumerate(values)),
        )
    connection.execute("COMMIT")
    connection.close()
    return time.perf_counter() - begin


def bench(rows: int, stores: list[str], redis_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="keel-bench-materialize-") as tmp:
        directory = Path(tmp)
        data = directory / "features"
        data.mkdir()
        begin = time.perf_counter()
        _generate(data, rows)
        size = sum(p.stat().st_size for p in data.iterdir()) / 2**20
        print(
            f"data: {rows:,} rows, {rows // ROUNDS:,} entities, 10 float features, "
            f"{size:,.0f} MiB of Parquet, generated in {time.perf_counter() - begin:.1f} s"
        )
        metadata = MetadataStore(f"sqlite:///{directory / 'keel.db'}")
        metadata.migrate()
        view = _view(data)
        _record(metadata, view)
        client = redis.Redis.from_url(redis_url)
        print("materialize (full window):")
        try:
            if "redis" in stores:
                _empty_redis(client)
                with open_online_store(f"{redis_url}?prefix={PREFIX}") as store:
                    result = materialize(view, 1, store, metadata, start=START, end=END)
                    assert result.rows_written == rows // ROUNDS, result
                    _report("Redis", result)
                    memory = client.info("memory")["used_memory"] / 2**20
                    print(f"  {'':<30} Redis memory after: {memory:,.0f} MiB")
            if "sqlite" in stores:
                with open_online_store(f"sqlite:///{directory / 'online.db'}") as store:
                    result = materialize(view, 1, store, metadata, start=START, end=END)
                    assert result.rows_written == rows // ROUNDS, result
                    _report("SQLite", result)
            latest, _ = latest_per_entity(view, read_view(view, naive="reject"))
            print(f"baselines (writing the same {len(latest):,} final rows, no keel code):")
            if "redis" in stores:
                seconds = _redis_baseline(client, latest)
                print(
                    f"  {'Redis pipelined SET':<30} {seconds:7.2f} s   "
                    f"{len(latest) / seconds:>12,.0f} entities/s"
                )
            if "sqlite" in stores:
                seconds = _sqlite_baseline(directory / "raw.db", latest)
                print(
                    f"  {'SQLite executemany INSERT':<30} {seconds:7.2f} s   "
                    f"{len(latest) / seconds:>12,.0f} entities/s"
                )
        finally:
            if "redis" in stores:
                _empty_redis(client)
            client.close()
            metadata.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--stores", default="redis,sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    print(machine())
    bench(args.rows, args.stores.split(","), args.redis_url)


if __name__ == "__main__":
    main()
