"""Registering a version, resolving models:/name@champion, and loading it cold and warm.

    .venv/bin/python bench/bench_registry.py [--backend sqlite|postgresql|both] [--repeat N]

Baselines measured in the same run: for loading, reading the model file and unpickling it with
no registry, database or integrity check (the floor any registry load sits on); for cold loads,
the same in a new process. "cold" opens a new workspace (new connections, nothing cached) for
every load; "warm" reuses one open workspace. "process" is a whole new Python process running
`keel.load_model` (imports included) against plain `pickle.load` in a new process.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from _common import fmt, machine, median_seconds, project
from keel import Settings, Workspace
from keel.config import TrackingSettings

MODEL = "bench"


def _settings(url: str, directory: Path) -> Settings:
    return Settings.load(
        directory,
        metadata_url=url,
        artifacts_url=str(directory / "artifacts"),
        tracking=TrackingSettings(capture_packages=False),
    )


def _process_seconds(code: str, cwd: Path, repeat: int) -> float:
    return median_seconds(
        lambda: subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True), repeat
    )


def bench(backend: str, repeat: int) -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(frame, target)
    with project(backend) as (url, directory):
        settings = _settings(url, directory)
        (directory / "keel.toml").write_text(
            f'metadata_url = "{url}"\nartifacts_url = "artifacts"\n'
        )
        with Workspace(settings) as workspace:
            with workspace.start_run(experiment="bench") as run:
                logged = run.log_model(model, input_example=frame)
            register = median_seconds(lambda: workspace.registry.register(MODEL, logged), repeat)
            workspace.registry.set_alias(MODEL, "champion", 1)
            resolve = median_seconds(
                lambda: workspace.registry.resolve(f"models:/{MODEL}@champion"), repeat * 5
            )
            warm = median_seconds(
                lambda: workspace.registry.load(f"models:/{MODEL}@champion"), repeat
            )
            size = workspace.registry.resolve(f"models:/{MODEL}/1").artifact_size

        def cold_load() -> None:
            with Workspace(settings) as fresh:
                fresh.registry.load(f"models:/{MODEL}@champion")

        cold = median_seconds(cold_load, repeat)
        with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as handle:
            pickle.dump(model, handle, protocol=5)
            pickled = Path(handle.name)

        def raw_load() -> None:
            with pickled.open("rb") as f:
                pickle.load(f)

        raw = median_seconds(raw_load, repeat)
        keel_process = _process_seconds(
            f"import keel; keel.load_model('models:/{MODEL}@champion')", directory, 3
        )
        raw_process = _process_seconds(
            f"import pickle; pickle.load(open('{pickled}', 'rb'))", directory, 3
        )
        pickled.unlink()
    print(f"{backend:>10}: model {size / 1024:.0f} KiB (random forest, 100 trees)")
    print(f"{'':>10}  register a version          {fmt(register)}")
    print(f"{'':>10}  resolve models:/…@champion  {fmt(resolve)}")
    print(
        f"{'':>10}  load warm                  {fmt(warm)}   raw unpickle {fmt(raw)}   "
        f"x{warm / raw:.2f}"
    )
    print(f"{'':>10}  load cold (new workspace)   {fmt(cold)}   x{cold / raw:.2f} of raw")
    print(
        f"{'':>10}  load in a new process       {fmt(keel_process)}   raw unpickle process "
        f"{fmt(raw_process)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        bench(backend, args.repeat)


if __name__ == "__main__":
    main()
