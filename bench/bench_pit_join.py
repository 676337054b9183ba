"""Point-in-time join: keel's get_training_frame against a plain DuckDB ASOF join, same data.

    taskset -c 1 .venv/bin/python bench/bench_pit_join.py [--entities N] [--days N] [--labels N]
                                                            [--repeat N] [--shuffled]

The data is generated here with a fixed seed, as Parquet in a temporary directory: `entities`
entities with 10 feature rows each spread over `days` days (one int64 key, a UTC event
timestamp, 10 float64 features; written sorted by key and time, as a feature table usually is,
or shuffled with --shuffled), and `labels` label rows of which about 22 % have no feature row
inside the 30-day TTL (13 % are entities without features, the rest fall before an entity's
first row or more than 30 days after its last). Both joins must keep every label row.

The baseline is the plain DuckDB query (default settings) on the same files:

    SELECT l.*, CASE WHEN l.ts - f.ts <= INTERVAL 30 DAYS THEN f.f0 END AS f0, ...
    FROM labels l ASOF LEFT JOIN read_parquet('features.parquet') f
      ON l.entity_id = f.entity_id AND l.ts >= f.ts

Every measurement runs in a fresh child process that loads the labels into pandas, then times
the join alone; the parent reads the child's peak RSS from wait4(). The data is generated in a
child too: a forked child starts from its parent's peak RSS, so a parent that had generated
10 million rows would inflate every figure after it. Both sides report a checksum of the joined
values, which must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _common import fmt, machine

SEED = 42
ROWS_PER_ENTITY = 10
FEATURES = [f"f{i}" for i in range(10)]
TTL_DAYS = 30
NEW_ENTITIES = 0.13  # share of labels whose entity has no feature rows at all
_DAY_US = 86_400_000_000
_START_US = int(np.datetime64("2026-01-01T00:00:00", "us").astype(np.int64))


def generate(directory: Path, entities: int, days: int, labels: int, shuffled: bool) -> dict:
    rng = np.random.default_rng(SEED)
    keys = np.repeat(np.arange(entities, dtype=np.int64), ROWS_PER_ENTITY)
    stamps = _START_US + rng.integers(0, days * _DAY_US, len(keys))
    order = np.lexsort((stamps, keys))
    keys, stamps = keys[order], stamps[order]
    unique = np.ones(len(keys), dtype=bool)  # one row per entity and timestamp
    unique[1:] = (keys[1:] != keys[:-1]) | (stamps[1:] != stamps[:-1])
    keys, stamps = keys[unique], stamps[unique]
    if shuffled:
        permutation = rng.permutation(len(keys))
        keys, stamps = keys[permutation], stamps[permutation]
    columns = {
        "entity_id": keys,
        "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        **{name: rng.standard_normal(len(keys)) for name in FEATURES},
    }
    pq.write_table(pa.table(columns), directory / "features.parquet")
    new = rng.random(labels) < NEW_ENTITIES
    label_keys = np.where(
        new, rng.integers(entities, 2 * entities, labels), rng.integers(0, entities, labels)
    )
    label_stamps = _START_US + rng.integers(0, days * _DAY_US, labels)
    label_table = {
        "entity_id": label_keys,
        "event_timestamp": pa.array(label_stamps, pa.timestamp("us", tz="UTC")),
        "label": rng.integers(0, 2, labels),
    }
    pq.write_table(pa.table(label_table), directory / "labels.parquet")
    return {
        "feature_rows": len(keys),
        "parquet_bytes": (directory / "features.parquet").stat().st_size,
    }


# -- what a child process runs ---------------------------------------------------------------------


def child(kind: str, directory: Path) -> None:
    import pandas as pd

    labels = pd.read_parquet(directory / "labels.parquet")
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if kind == "keel":
        frame, seconds, threads = _keel(labels, directory)
        found = float(frame["stats__found"].mean())
        order_kept = bool((frame["entity_id"].to_numpy() == labels["entity_id"].to_numpy()).all())
    else:
        frame, seconds, threads = _plain_duckdb(labels, directory)
        found = float(frame["f0"].notna().mean())
        order_kept = False  # the plain query does not promise the label order
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": len(frame),
                "found": found,
                "order_kept": order_kept,
                "checksum": float(np.nansum(frame[FEATURES].to_numpy())),
                "loaded_rss": loaded,
                "threads": threads,
            }
        )
    )


def _keel(labels, directory: Path):
    from keel.data import Field
    from keel.features import Entity, FeatureCatalog, FeatureView, ParquetSource
    from keel.features._offline import get_training_frame

    view = FeatureView(
        name="stats",
        entities=(Entity("entity", ("entity_id",)),),
        source=ParquetSource(str(directory / "features.parquet")),
        timestamp_column="event_timestamp",
        ttl=timedelta(days=TTL_DAYS),
        features=tuple(Field(name, "float") for name in FEATURES),
    )
    catalog = FeatureCatalog.of([view])
    start = time.perf_counter()
    frame = get_training_frame(labels, ["stats:*"], catalog)
    return frame, time.perf_counter() - start, len(os.sched_getaffinity(0))


def _plain_duckdb(labels, directory: Path):
    import duckdb

    values = ", ".join(
        f"CASE WHEN l.event_timestamp - f.event_timestamp <= INTERVAL {TTL_DAYS} DAYS "
        f"THEN f.{name} END AS {name}"
        for name in FEATURES
    )
    query = (
        f"SELECT l.*, {values} FROM labels AS l "
        f"ASOF LEFT JOIN read_parquet('{directory / 'features.parquet'}') AS f "
        "ON l.entity_id = f.entity_id AND l.event_timestamp >= f.event_timestamp"
    )
    connection = duckdb.connect()
    threads = connection.sql("SELECT current_setting('threads')").fetchall()[0][0]
    start = time.perf_counter()
    with warnings.catch_warnings():  # DuckDB's .df() trips a pandas 3 deprecation warning
        warnings.simplefilter("ignore")
        frame = connection.execute(query).df()
    return frame, time.perf_counter() - start, threads


# -- the parent ------------------------------------------------------------------------------------


def run_child(kind: str, directory: Path, args: dict) -> tuple[bytes, int]:
    """Run one step in a fresh process: its output, and its peak RSS in bytes from wait4()."""
    command = [sys.executable, __file__, "--child", kind, str(directory)]
    command += [f"--{name}={args[name]}" for name in ("entities", "days", "labels")]
    command += ["--shuffled"] if args["shuffled"] else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the {kind} child failed with exit code {process.returncode}")
    return output, usage.ru_maxrss * 1024


def measure(kind: str, directory: Path, args: dict) -> dict:
    output, peak = run_child(kind, directory, args)
    return {**json.loads(output), "peak_rss": peak}


def mb(size: float) -> str:
    return f"{size / 2**20:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shuffled", action="store_true", help="feature rows in random order")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "generate":
        # generated in a child so the parent stays small: Linux children inherit the parent's
        # peak RSS through fork(), which would inflate every measurement after it
        data = generate(Path(args.child[1]), args.entities, args.days, args.labels, args.shuffled)
        print(json.dumps(data))
        return
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    print(machine())
    print(
        f"duckdb {metadata.version('duckdb')}, pyarrow {metadata.version('pyarrow')}, "
        f"pandas {metadata.version('pandas')}, numpy {metadata.version('numpy')}; "
        f"cpu affinity {sorted(os.sched_getaffinity(0))}"
    )
    with tempfile.TemporaryDirectory(prefix="keel-bench-pit-") as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        data = json.loads(run_child("generate", directory, vars(args))[0])
        generated = time.perf_counter() - start
        print(
            f"data: {data['feature_rows']:,} feature rows ({args.entities:,} entities, "
            f"{args.days} days, {len(FEATURES)} float features, {mb(data['parquet_bytes'])} "
            f"Parquet, {'shuffled' if args.shuffled else 'sorted by key and time'}) x "
            f"{args.labels:,} labels; ttl {TTL_DAYS} days; generated in {fmt(generated)}"
        )
        runs: dict[str, list[dict]] = {"keel": [], "duckdb": []}
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(measure(kind, directory, vars(args)))
    names = {"keel": "keel get_training_frame", "duckdb": "plain DuckDB ASOF join"}
    seconds = {kind: statistics.median(r["seconds"] for r in rs) for kind, rs in runs.items()}
    for kind, results in runs.items():
        last = results[-1]
        each = ", ".join(f"{r['seconds']:.2f}" for r in results)
        print(
            f"{names[kind]:>24}: {fmt(seconds[kind])} (median of {len(results)}: "
            f"{each} s; {last['threads']} thread(s))  "
            f"{args.labels / seconds[kind]:,.0f} label rows/s  "
            f"{data['feature_rows'] / seconds[kind]:,.0f} feature rows/s  "
            f"peak RSS {mb(max(r['peak_rss'] for r in results))} "
            f"(labels loaded: {mb(last['loaded_rss'])})  "
            f"rows kept {last['rows']:,}  without features {1 - last['found']:.1%}"
        )
    keel, plain = runs["keel"][-1], runs["duckdb"][-1]
    assert keel["rows"] == plain["rows"] == args.labels, "a label row was dropped or duplicated"
    assert keel["order_kept"], "keel changed the label order"
    assert abs(keel["found"] - plain["found"]) < 1e-12, "the two joins found different rows"
    assert np.isclose(keel["checksum"], plain["checksum"], rtol=1e-9), "the joined values differ"
    print(
        f"keel is x{seconds['duckdb'] / seconds['keel']:.2f} the speed of the plain query "
        f"(ratio keel/plain {seconds['keel'] / seconds['duckdb']:.2f}); same rows, same values"
    )


if __name__ == "__main__":
    main()
