"""Collectors behind :class:`~keel.serving._metrics.ServingMetrics` that read other objects:
counters kept equal to totals counted elsewhere, the prediction log's lag, this process's CPU
and memory as per-worker series, and forgetting the "live" gauges of workers that exited."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from keel.serving._predlog import PredictionLog


class Mirror:
    """A counter child kept equal to a running total read elsewhere (incremented by the
    difference, so each process adds only what it counted)."""

    __slots__ = ("_child", "_seen")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._seen = 0.0

    def update(self, total: float) -> None:
        if total > self._seen:
            self._child.inc(total - self._seen)
            self._seen = total


class Tally:
    """A labelled counter counted in a plain dictionary on the request path (an addition,
    where a counter takes a lock and, with several workers, writes a memory-mapped file) and
    published into the counter by :meth:`publish`: before every scrape, and every second by
    a worker's sampler thread.

        tally = Tally(counter)
        tally.counts["churn", "hit"] += 1      # the request path (the event loop's thread)
        tally.publish()                        # ServingMetrics.refresh
    """

    __slots__ = ("_counter", "_mirrors", "counts")

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._mirrors: dict[tuple[str, ...], Mirror] = {}
        self.counts: defaultdict[tuple[str, ...], int] = defaultdict(int)

    def publish(self) -> None:
        # list() copies under the GIL: the loop's thread may add a label set meanwhile.
        for labels, count in list(self.counts.items()):
            if labels not in self._mirrors:
                self._mirrors[labels] = Mirror(self._counter.labels(*labels))
            self._mirrors[labels].update(count)


class LagCollector(Collector):
    """The age of the oldest entry of the log directory not yet in Parquet, read at scrape
    time: a property of the directory, so right whichever process computes it."""

    def __init__(self, log: PredictionLog) -> None:
        self._log = log

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        lag = self._log.status()["lag_seconds"]
        family = self._family()
        family.add_metric([], float("nan") if lag is None else lag)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "keel_prediction_log_lag_seconds",
            "Age of the oldest log entry not yet compacted to Parquet (NaN: unreadable).",
        )


class ProcessSampler:
    """This process's CPU, memory and descriptors as per-worker metrics (multiprocess mode,
    where prometheus-client's ProcessCollector would only ever describe the scraping worker)."""

    def __init__(self) -> None:
        self._source = ProcessCollector(registry=None)
        self._pid = str(os.getpid())
        self._gauges: dict[str, Any] = {}
        self._counters: dict[str, Mirror] = {}
        for family in self._source.collect():
            if family.type == "counter":
                counter = Counter(family.name, family.documentation, ["pid"], registry=None)
                self._counters[family.name + "_total"] = Mirror(counter.labels(self._pid))
            else:
                self._gauges[family.name] = Gauge(
                    family.name, family.documentation, registry=None, multiprocess_mode="liveall"
                )

    def refresh(self) -> None:
        for family in self._source.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)
                else:
                    mirror = self._counters.get(sample.name)
                    if mirror is not None:
                        mirror.update(sample.value)


def forget_dead_processes(directory: Path) -> list[int]:
    """``mark_process_dead`` for every process that left "live" gauge files in ``directory``
    and no longer runs; the pids forgotten."""
    pids: set[int] = set()
    for path in directory.glob("gauge_live*_*.db"):
        suffix = path.stem.rpartition("_")[2]
        if suffix.isdigit():
            pids.add(int(suffix))
    dead = sorted(pid for pid in pids - {os.getpid()} if not _running(pid))
    for pid in dead:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not one of our workers, leave it
        return True
    return True
