"""Helpers for the prediction log tests: entries, reading segment files, child processes."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

import pytest

from keel.serving._predlog import FeedbackEntry, PredictionEntry, new_prediction_id
from keel.serving._predlog._segments import SegmentReader, list_segments

DAY_NS = 86_400 * 10**9
P = ParamSpec("P")


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test in a fresh event loop (no asyncio pytest plugin is installed;
    fixtures are passed through)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def prediction(
    number: int = 0, *, endpoint: str = "churn", time: int | None = None, **fields: Any
) -> PredictionEntry:
    """A prediction of a small classifier, ``number`` in its inputs."""
    values: dict[str, Any] = {
        "prediction_id": new_prediction_id(),
        "endpoint": endpoint,
        "model": "churn-model",
        "model_version": 3,
        "revision": 2,
        "inputs": {"age": 30 + number % 50, "plan": "pro", "number": number},
        "prediction": number % 2,
        "probabilities": {"0": 0.25, "1": 0.75},
        "latency_ms": 1.5,
    }
    if time is not None:
        values["time"] = time
    values.update(fields)
    return PredictionEntry(**values)


def feedback(prediction_id: str, value: Any = 1, **fields: Any) -> FeedbackEntry:
    return FeedbackEntry(prediction_id=prediction_id, value=value, **fields)


def segment_ids(log_dir: Path, kind: str = "predictions") -> list[str]:
    """Ids of every complete entry in the segments of ``kind``, in file order."""
    return [
        record["prediction_id"]
        for path, _ in list_segments(log_dir, kind)
        for record in SegmentReader(path)
    ]


def run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = ``args``); fails the test with
    the child's stderr when it exits non-zero."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"child exited {result.returncode}:\n{result.stderr}")
    return result


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "predictions"
