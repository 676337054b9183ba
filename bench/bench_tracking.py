"""Logging 10,000 metric values in one run: keel's batched writes vs one write per value.

    .venv/bin/python bench/bench_tracking.py [--backend sqlite|postgresql|both] [--values N]

The baseline is the same run with metric_batch_size=1, i.e. one transaction per value, which is
what a tracker without batching does. Both run in the same process, so the ratio holds on a
noisy machine even when absolute times do not.
"""

from __future__ import annotations

import argparse
import time

from _common import fmt, machine, project
from keel import Settings, Workspace
from keel.config import TrackingSettings


def log_values(metadata_url: str, directory: str, values: int, batch_size: int) -> float:
    settings = Settings.load(
        directory,
        metadata_url=metadata_url,
        artifacts_url=f"{directory}/artifacts",
        tracking=TrackingSettings(metric_batch_size=batch_size, capture_packages=False),
    )
    with Workspace(settings) as workspace:
        run = workspace.start_run(experiment="bench")
        start = time.perf_counter()
        for step in range(values):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.end()
        elapsed = time.perf_counter() - start
        stored = len(workspace.runs.metric_history(run.id, "loss"))
    assert stored == values, f"{stored} of {values} values stored"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--values", type=int, default=10_000)
    args = parser.parse_args()
    print(machine())
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with project(backend) as (url, directory):
            batched = log_values(url, str(directory), args.values, batch_size=1000)
        with project(backend) as (url, directory):
            unbatched = log_values(url, str(directory), args.values, batch_size=1)
        print(
            f"{backend:>10}: {args.values:,} metric values  batched {fmt(batched)} "
            f"({batched / args.values * 1e6:.1f} µs/value)  one-write-per-value {fmt(unbatched)} "
            f"({unbatched / args.values * 1e6:.1f} µs/value)  speed-up x{unbatched / batched:.1f}"
        )


if __name__ == "__main__":
    main()
