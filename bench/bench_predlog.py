"""Prediction log: appends/s and cost per request of group commit, against one syscall each.

    taskset -c 1 .venv/bin/python bench/bench_predlog.py [--seconds S] [--max-appends N]

Every append records one entry like the serving benchmark's: 20 float inputs, a class and two
probabilities (~700 bytes as JSON). Rows:

- ``loop floor``: the same tasks awaiting a shared future that a ``call_soon`` callback
  resolves (the event-loop iteration every grouped append pays), with no encoding or writing;
- ``PredictionLog`` with 1 and 64 concurrent appenders in one event loop, for each fsync policy
  with its default mode (``never``/``interval``: each append writes at once; ``always``: appends
  join the iteration's group and return after its ``os.write`` and its fdatasync, run on the
  syncer thread), and ``interval`` grouped (``group_writes=True``) for comparison;
- baselines without keel: the same encoded line written with one ``os.write`` per entry, and one
  ``os.write`` + ``os.fdatasync`` per entry, in a plain loop.

Each row runs for ``--seconds`` (or ``--max-appends``, whichever comes first) in a fresh
directory under the system temp dir, so fsync costs are those of that disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import machine
from keel.serving._predlog import PredictionEntry, PredictionLog, new_prediction_ids
from keel.serving._predlog._entry import encode


@dataclass
class Row:
    name: str
    appends: int
    seconds: float
    groups: int | None = None
    fsyncs: int | None = None

    def line(self) -> str:
        rate = self.appends / self.seconds
        per = self.seconds / self.appends * 1e6
        groups = "" if self.groups is None else f"{self.appends / max(self.groups, 1):.1f}"
        fsyncs = "" if self.fsyncs is None else str(self.fsyncs)
        return f"| {self.name} | {rate:,.0f} | {per:.2f} | {groups} | {fsyncs} |"


def _entries(count: int) -> list[PredictionEntry]:
    ids = new_prediction_ids(count)
    inputs = {f"f{i}": 0.1234567 * i for i in range(20)}
    return [
        PredictionEntry(
            prediction_id=ids[n],
            endpoint="bench",
            model="hgb",
            model_version=1,
            revision=1,
            inputs=inputs,
            prediction=n % 2,
            probabilities={"0": 0.31, "1": 0.69},
            latency_ms=0.8,
        )
        for n in range(count)
    ]


async def _drive(
    concurrency: int, seconds: float, limit: int, append: Callable[[int], Coroutine[Any, Any, None]]
) -> tuple[int, float]:
    """``concurrency`` tasks calling ``append(n)`` back to back; (appends, seconds)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while done < limit and time.perf_counter() < deadline:
            n = done
            done += 1
            await append(n)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, time.perf_counter() - start


def loop_floor(concurrency: int, seconds: float, limit: int) -> Row:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        state: dict[str, asyncio.Future[None] | None] = {"future": None}

        def resolve() -> None:
            future, state["future"] = state["future"], None
            assert future is not None
            future.set_result(None)

        async def append(n: int) -> None:
            future = state["future"]
            if future is None:
                future = state["future"] = loop.create_future()
                loop.call_soon(resolve)
            await future

        return await _drive(concurrency, seconds, limit, append)

    appends, elapsed = asyncio.run(main())
    return Row(f"loop floor, {concurrency} appender(s)", appends, elapsed)


def group_commit(
    directory: Path,
    fsync: str,
    concurrency: int,
    seconds: float,
    entries: list[PredictionEntry],
    grouped: bool | None = None,
) -> Row:
    log = PredictionLog(directory, fsync=fsync, group_writes=grouped)  # type: ignore[arg-type]

    async def main() -> tuple[int, float]:
        async def append(n: int) -> None:
            await log.append((entries[n],))

        return await _drive(concurrency, seconds, len(entries), append)

    appends, elapsed = asyncio.run(main())
    log.close()
    assert log.entries_written_total == appends
    assert not log.degraded
    mode = {None: "", True: ", grouped", False: ", not grouped"}[grouped]
    name = f"PredictionLog fsync={fsync}{mode}, {concurrency} appender(s)"
    return Row(name, appends, elapsed, log.groups_total, log.fsyncs_total)


def one_write_each(
    directory: Path, sync: int, seconds: float, entries: list[PredictionEntry]
) -> Row:
    fd = os.open(directory / "baseline.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    done = 0
    try:
        for entry in entries:
            os.write(fd, encode(entry))
            if sync:
                os.fdatasync(fd)
            done += 1
            if time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    name = "baseline: os.write + fdatasync per entry" if sync else "baseline: os.write per entry"
    return Row(name, done, elapsed, done, done if sync else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per row (default 2)")
    parser.add_argument("--max-appends", type=int, default=200_000, help="per row")
    options = parser.parse_args()
    entries = _entries(options.max_appends)
    print(machine())
    print(f"entry: {len(encode(entries[0]))} bytes as JSON; temp dir {tempfile.gettempdir()}\n")
    print("| scenario | appends/s | µs per append | entries per write | fsyncs |")
    print("|---|---:|---:|---:|---:|")

    rows = [loop_floor(c, options.seconds, options.max_appends) for c in (1, 64)]
    runs: list[Callable[[Path], Row]] = [
        lambda d, f=fsync, c=concurrency: group_commit(d, f, c, options.seconds, entries)
        for fsync in ("never", "interval", "always")
        for concurrency in (1, 64)
    ]
    runs += [  # the default (grouping only with "always") against the other choice
        lambda d, c=concurrency: group_commit(d, "interval", c, options.seconds, entries, True)
        for concurrency in (1, 64)
    ]
    runs += [lambda d, s=sync: one_write_each(d, s, options.seconds, entries) for sync in (0, 1)]
    for run in runs:
        with tempfile.TemporaryDirectory(prefix="keel-bench-predlog-") as directory:
            rows.append(run(Path(directory)))
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
