"""A monitor's read of one window of live traffic: N logged predictions out of the prediction log.

    taskset -c 1 .venv/bin/python bench/monitor_window.py [--rows 1000000]

What ``keel monitor run`` does for each window before it computes any statistic: DuckDB reads
the window's rows of one endpoint from the prediction log, pulls every signature field out of
the ``inputs`` JSON and casts it, and counts the values that do not cast. This script writes a
log of ``--rows`` entries within one hour (25 numeric and 5 text inputs, a class and two
probabilities, like a served classifier's), then times, in one process:

- ``read_window`` over the raw JSON-lines segments (a window the compactor has not reached);
- the compaction of those segments into Parquet (``Compactor.run_once``);
- ``read_window`` over the Parquet parts (the usual case: windows end in the past);
- ``drift()`` of the window's inputs against a profile of a reference of the same size.

Baseline in the same run: ``pyarrow.json.read_json`` of the same segments, flattening
``inputs`` into columns (the read alone, no casting, no counting of bad values), and
``pyarrow.parquet.read_table`` of the compacted parts (the columns as stored, ``inputs`` still
JSON text).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from _common import machine
from keel.data import profile
from keel.monitoring import drift
from keel.monitoring._log_window import LogWindow, read_window
from keel.serving._predlog import (
    Compactor,
    LogReader,
    PredictionEntry,
    PredictionLog,
    new_prediction_ids,
)

T = TypeVar("T")

NUMERIC = [f"x{i}" for i in range(25)]
TEXT = [f"s{i}" for i in range(5)]
HOUR_NS = 3600 * 10**9
START = 1_764_000_000  # 2025-11-24 16:00 UTC, a whole hour


def traffic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        name: rng.normal(i, 1 + i / 10, rows) for i, name in enumerate(NUMERIC)
    }
    for i, name in enumerate(TEXT):
        data[name] = rng.choice([f"c{k}" for k in range(5 + 5 * i)], rows)
    return pd.DataFrame(data)


async def write_log(directory: Path, frame: pd.DataFrame) -> float:
    """Append every row of ``frame`` as one prediction, spread evenly over the hour."""
    log = PredictionLog(directory, fsync="never")
    rows = len(frame)
    ids = new_prediction_ids(rows)
    step = HOUR_NS // rows
    started = time.perf_counter()
    for first in range(0, rows, 1000):
        records = frame.iloc[first : first + 1000].to_dict("records")
        await log.append(
            [
                PredictionEntry(
                    prediction_id=ids[n],
                    endpoint="bench",
                    model="m",
                    model_version=1,
                    revision=1,
                    inputs=records[n - first],
                    prediction=n % 2,
                    probabilities={"0": 0.31, "1": 0.69},
                    latency_ms=0.8,
                    time=START * 10**9 + n * step,
                )
                for n in range(first, min(first + 1000, rows))
            ]
        )
    log.close()
    return time.perf_counter() - started


def timed(label: str, call: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = call()
    print(f"  {label:<58}{time.perf_counter() - started:>8.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(machine())
    columns = {**dict.fromkeys(NUMERIC, "DOUBLE"), **dict.fromkeys(TEXT, "VARCHAR")}
    with tempfile.TemporaryDirectory(prefix="keel-bench-monitor-") as tmp:
        directory = Path(tmp) / "log"
        current = traffic(args.rows, seed=1)
        seconds = asyncio.run(write_log(directory, current))
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        print(
            f"{args.rows:,} entries written in {seconds:.1f} s ({size / 1e6:,.0f} MB of JSON lines)"
        )
        reader = LogReader(directory)

        def window() -> LogWindow:
            return read_window(reader, "bench", START, START + 3600, columns, classes=[0, 1])

        segments = sorted((directory / "segments").glob("predictions-*.log"))
        print("raw segments (not compacted yet):")
        raw = timed("read_window: 30 fields extracted, cast and checked", window)
        timed(
            "baseline: pyarrow.json.read_json, inputs flattened",
            lambda: pa.concat_tables(
                [pajson.read_json(path).flatten() for path in segments], promote_options="default"
            ),
        )
        timed("Compactor.run_once (JSON lines -> Parquet)", Compactor(directory).run_once)
        parts = sorted(directory.rglob("*.parquet"))
        size = sum(p.stat().st_size for p in parts)
        print(f"compacted: {len(parts)} Parquet parts, {size / 1e6:,.0f} MB")
        compacted = timed("read_window: 30 fields extracted, cast and checked", window)
        timed(
            "baseline: pyarrow.parquet.read_table (inputs still JSON text)",
            lambda: pa.concat_tables([pq.read_table(path) for path in parts]),
        )
        assert raw.rows == compacted.rows == args.rows, (raw.rows, compacted.rows)
        reference = profile(traffic(args.rows, seed=2))
        report = timed(
            "drift(): the window's 30 inputs against a reference profile",
            lambda: drift(reference, compacted.inputs),
        )
        print(f"  verdict: {report.verdict}")


if __name__ == "__main__":
    main()
