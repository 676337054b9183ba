"""The serving benchmark's two models, and how fast ``predict_proba`` is with no server at all.

    taskset -c 1 .venv/bin/python bench/serving_models.py [--seconds S]

Models: ``LogisticRegression`` and ``HistGradientBoostingClassifier(max_iter=100)`` fitted on
``make_classification(n_samples=20000, n_features=20, random_state=0)``, features named
f0..f19 in that column order. :func:`build_models` pickles both into a directory for the
servers to load. The in-process limit is ``predict_proba`` called in a tight loop on a float64
numpy array of 1 row and of 64 rows, printed as calls/s and rows/s: no server can beat it.
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from _common import machine

FEATURES = [f"f{i}" for i in range(20)]
"""Column order of training, and the keys of a request's ``inputs``."""
MODELS = ("logistic", "hist_gradient_boosting")


def training_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    x, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    return x, y


def fit(name: str, *, feature_names: bool = False) -> Any:
    """The fitted model ``name`` (one of :data:`MODELS`).

    ``feature_names=True`` fits on a DataFrame with columns f0..f19, for servers that pass
    frames (keel does); the thin baseline passes numpy arrays and needs the default, or
    scikit-learn warns on every call.
    """
    x, y = training_data()
    data: Any = pd.DataFrame(x, columns=FEATURES) if feature_names else x
    if name == "logistic":
        return LogisticRegression(max_iter=1000).fit(data, y)
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(data, y)
    raise ValueError(f"unknown benchmark model {name!r}; use one of {', '.join(MODELS)}")


def build_models(directory: Path, *, feature_names: bool = False) -> dict[str, Path]:
    """Fit both models and pickle them into ``directory``: {name: path of the pickle}."""
    paths = {}
    for name in MODELS:
        path = directory / f"{name}.pkl"
        path.write_bytes(pickle.dumps(fit(name, feature_names=feature_names), protocol=5))
        paths[name] = path
    return paths


def request_body() -> bytes:
    """The fixed request every load generator sends: one record, ``{"inputs": {f0: ..., ...}}``."""
    x, _ = training_data()
    record = {name: round(float(value), 6) for name, value in zip(FEATURES, x[0], strict=True)}
    return orjson.dumps({"inputs": record})


def predict_limit(model: Any, rows: int, seconds: float) -> float:
    """Calls per second of ``model.predict_proba`` on ``rows`` rows: best of 3 runs."""
    x, _ = training_data()
    batch = np.ascontiguousarray(x[:rows])
    predict_proba = model.predict_proba
    for _ in range(20):
        predict_proba(batch)
    best = 0.0
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while time.perf_counter() < deadline:
            for _ in range(10):
                predict_proba(batch)
            calls += 10
        best = max(best, calls / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    print(machine())
    print(f"{'model':<24}{'batch':>6}{'calls/s':>12}{'rows/s':>12}{'µs/call':>10}")
    for name in MODELS:
        model = fit(name)
        for rows in (1, 64):
            calls = predict_limit(model, rows, args.seconds)
            print(f"{name:<24}{rows:>6}{calls:>12,.0f}{calls * rows:>12,.0f}{1e6 / calls:>10.0f}")


if __name__ == "__main__":
    main()
