"""Drift report: a reference profile against a current window of N rows x 50 columns.

    taskset -c 1 .venv/bin/python bench/drift.py [--rows 1000000] [--strings] [--no-baseline]

40 numeric columns (float64: normal, log-normal, uniform, exponential, integer-valued Poisson;
1 % nulls in some) and 10 categorical ones (5 to 40 categories, Zipf-like frequencies) as pandas
Categorical, or with ``--strings`` as pandas' Arrow-backed ``str``. 12 columns are shifted in the
current window: mean shifts, variance changes, missing-value surges, new categories and one
frequency shift. The reference (1,000,000 rows, another seed) is profiled once and stored as
JSON; a child process then loads that profile, builds the window and times ``drift()`` with all
five statistics, so its peak RSS (``resource.getrusage``'s ``ru_maxrss``) is that of a monitor:
the profile, the window, and the report's working memory. ``tracemalloc`` in a separate call
measures what ``drift()`` itself allocates on top of the window.

Baseline in the same run: per column, ``scipy.stats.ks_2samp`` on the raw reference and window,
``scipy.stats.chi2_contingency`` on category counts, and a NumPy PSI over reference deciles.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from _common import machine
from keel.data import Profile, profile
from keel.monitoring import Reference, drift

NUMERIC, CATEGORICAL = 40, 10
SHIFTED = {
    "num_00": "mean +0.02 std",
    "num_12": "mean +0.05 std (log-normal)",
    "num_10": "mean +0.01 std",
    "num_01": "variance x1.1",
    "num_06": "variance x1.5",
    "num_11": "variance x0.8 (uniform)",
    "num_02": "nulls 1 % -> 20 %",
    "num_08": "nulls 1 % -> 2 %",
    "cat_0": "new category at 5 %",
    "cat_1": "new category at 0.5 %",
    "cat_2": "nulls 1 % -> 20 %",
    "cat_3": "top category share -3 points",
}


def frame(rows: int, seed: int, *, shifted: bool, strings: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        name = f"num_{i:02d}"
        change = SHIFTED.get(name, "") if shifted else ""
        family = i % 5
        if family == 0:
            values = rng.standard_normal(rows)
        elif family == 1:
            values = rng.standard_normal(rows) * (1.1**0.5 if "x1.1" in change else 1.0)
        elif family == 2:
            values = rng.lognormal(0.0, 0.8, rows)
        elif family == 3:
            values = rng.exponential(2.0, rows)
        else:
            values = rng.poisson(4.0, rows).astype("float64")
        if "mean" in change:
            shift = float(change.split("+")[1].split(" ")[0])
            values += shift * values.std()
        if "x1.5" in change:
            values = (values - values.mean()) * 1.5**0.5 + values.mean()
        if name == "num_11":
            values = rng.uniform(0, 1, rows) * (0.8**0.5 if shifted else 1.0)
        null_rate = 0.01 if i % 3 == 2 else 0.0
        if "nulls" in change:
            null_rate = 0.2 if "20 %" in change else 0.02
        if null_rate:
            values[rng.random(rows) < null_rate] = np.nan
        columns[name] = values
    for i in range(CATEGORICAL):
        name = f"cat_{i}"
        change = SHIFTED.get(name, "") if shifted else ""
        size = 5 + 4 * i
        weights = 1.0 / np.arange(1, size + 1)
        weights /= weights.sum()
        if "share" in change:
            weights[0] -= 0.03
            weights[1:] += 0.03 / (size - 1)
        categories = [f"{name}_value_{k}" for k in range(size)]
        codes = rng.choice(size, rows, p=weights)
        if "new category" in change:
            share = 0.005 if "0.5 %" in change else 0.05
            codes[rng.random(rows) < share] = size
            categories.append(f"{name}_brand_new")
        null_rate = 0.2 if "nulls" in change else 0.01
        codes[rng.random(rows) < null_rate] = -1
        columns[name] = _categorical(codes, categories, strings)
    return pd.DataFrame(columns)


def _categorical(codes: np.ndarray, categories: list[str], strings: bool) -> Any:
    if not strings:
        return pd.Categorical.from_codes(codes, categories)
    taken = pc.take(pa.array(categories, pa.large_string()), pa.array(codes, mask=codes < 0))
    return pd.Series(taken, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Load the stored profile, build the window, time drift(): one JSON line on stdout."""
    reference = Reference.from_profile(Profile.from_dict(json.loads(Path(args.child).read_text())))
    window = frame(args.rows, 2, shifted=True, strings=args.strings)
    before = rss_mb()
    timings, report = [], None
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = drift(reference, window)
        timings.append(time.perf_counter() - start)
    peak = rss_mb()
    tracemalloc.start()
    drift(reference, window)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert report is not None
    flagged = {c.name: sorted(s.name for s in c.statistics if s.drifted) for c in report.columns}
    print(
        json.dumps(
            {
                "seconds": timings,
                "rss_with_window_mb": before,
                "peak_rss_mb": peak,
                "drift_allocations_mb": traced,
                "drifted": report.drifted_columns,
                "flagged": flagged,
                "tests": report.tests,
            }
        )
    )


def baseline(reference: pd.DataFrame, window: pd.DataFrame) -> float:
    """Plain per-column SciPy: ks_2samp + PSI over reference deciles, chi2_contingency."""
    start = time.perf_counter()
    for name in reference.columns:
        ref, cur = reference[name], window[name]
        if name.startswith("num"):
            a, b = ref.dropna().to_numpy(), cur.dropna().to_numpy()
            stats.ks_2samp(a, b)
            edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)))
            edges[0], edges[-1] = -np.inf, np.inf
            e = np.histogram(a, edges)[0] / a.size
            o = np.histogram(b, edges)[0] / b.size
            e, o = np.maximum(e, 1e-4), np.maximum(o, 1e-4)
            float(np.sum((o - e) * np.log(o / e)))
        else:
            table = pd.concat(
                [ref.value_counts(dropna=False), cur.value_counts(dropna=False)], axis=1
            ).fillna(0)
            stats.chi2_contingency(table.to_numpy().T)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--strings", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(machine())
    kind = "Arrow-backed str" if args.strings else "pandas Categorical"
    print(f"window {args.rows:,} x 50 (40 float64, 10 {kind}), reference {args.reference_rows:,}")
    reference = frame(args.reference_rows, 1, shifted=False, strings=args.strings)
    start = time.perf_counter()
    stored = profile(reference)
    print(f"profiling the reference (once, not timed below): {time.perf_counter() - start:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(json.dumps(stored.to_dict()))
        command = [sys.executable, __file__, "--child", str(path), "--rows", str(args.rows)]
        command += ["--repeat", str(args.repeat), *(["--strings"] if args.strings else [])]
        result = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    seconds = statistics.median(result["seconds"])
    caught = set(result["drifted"])
    print(
        f"keel drift(), all five statistics: median {seconds:.3f} s of {result['seconds']}, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (window and profile alone "
        f"{result['rss_with_window_mb']:.0f} MB), drift() allocations peak "
        f"{result['drift_allocations_mb']:.0f} MB (tracemalloc), {result['tests']} tests (BH)"
    )
    missed = sorted(set(SHIFTED) - caught)
    false = sorted(caught - set(SHIFTED))
    print(
        f"shifted columns caught: {len(set(SHIFTED) & caught)}/{len(SHIFTED)}, "
        f"missed {missed}, unshifted flagged {false}"
    )
    for name, change in SHIFTED.items():
        print(f"  {name:7} {change:30} flagged by {', '.join(result['flagged'][name]) or '-'}")
    others = {n: f for n, f in result["flagged"].items() if n not in SHIFTED and f}
    print(f"statistics flagging unshifted columns: {others or 'none'}")
    if not args.no_baseline:
        window = frame(args.rows, 2, shifted=True, strings=args.strings)
        spent = baseline(reference, window)
        print(
            f"baseline per-column SciPy (ks_2samp + PSI, chi2_contingency): {spent:.2f} s, "
            f"keel x{spent / seconds:.1f} faster"
        )


if __name__ == "__main__":
    main()
