"""Several processes logging to their own runs in one metadata database at the same time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from keel import Settings, Workspace
from keel.tracking import FINISHED

VALUES_PER_PROCESS = 2_000

# Opens the workspace and starts its run, says so by writing the run id to READY, waits for GO,
# then logs COUNT values in batches of 10 so that both processes write many small transactions.
CHILD = """
import sys, time
from pathlib import Path
from keel import Settings, Workspace

project, metadata_url, artifacts_url, ready, go, count = sys.argv[1:]
settings = Settings.load(
    project,
    metadata_url=metadata_url,
    artifacts_url=artifacts_url,
    actor="worker",
    tracking={"metric_batch_size": 10, "metric_flush_seconds": 3600, "capture_packages": False},
)
with Workspace(settings) as workspace, workspace.start_run(experiment="parallel") as run:
    Path(ready).write_text(run.id)
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.005)
    for step in range(int(count)):
        run.log_metric("loss", step / 1000, step=step)
"""


def wait_for(paths: list[Path], children: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in paths):
        for child in children:
            if child.poll() is not None:
                raise AssertionError(f"a worker exited early: {child.communicate()}")
        assert time.monotonic() < deadline, "the workers never started their runs"
        time.sleep(0.01)


def test_two_processes_logging_at_once_both_record_every_value(
    workspace: Workspace, settings: Settings, tmp_path: Path
) -> None:
    ready = [tmp_path / "ready-0", tmp_path / "ready-1"]
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(settings.project_dir),
                settings.metadata_url,
                settings.artifacts_url,
                str(path),
                str(go),
                str(VALUES_PER_PROCESS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in ready
    ]
    try:
        wait_for(ready, children)
        go.touch()
        outcomes = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    assert [child.returncode for child in children] == [0, 0], outcomes
    run_ids = [path.read_text() for path in ready]
    histories = [workspace.runs.metric_history(run_id, "loss") for run_id in run_ids]
    for run_id, history in zip(run_ids, histories, strict=True):
        record = workspace.runs.get(run_id)
        assert (record.status, record.metrics) == (FINISHED, {"loss": 1.999})
        assert [(p.step, p.value) for p in history] == [
            (step, step / 1000) for step in range(VALUES_PER_PROCESS)
        ]
    # the two runs really did write at the same time
    first, second = ([p.timestamp for p in history] for history in histories)
    assert max(first[0], second[0]) < min(first[-1], second[-1])
