"""EndpointRuntime: where its model calls run (the loop's thread only when cheap and safe)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.serving._runtime import EndpointRuntime

ROW = {"age": 0.3, "income": 1.5}


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def registered(workspace: Workspace) -> Workspace:
    frame = pd.DataFrame({"age": [0.1, -1.2, 0.7, 1.5], "income": [1, 0, 2, 1.0]})
    model = LogisticRegression().fit(frame, [1, 0, 1, 0])
    workspace.registry.register("churn", model, input_example=frame)
    return workspace


def _inline_batches(workspace: Workspace, endpoint: str, requests: int) -> int:
    runtime = EndpointRuntime(
        workspace.deployments.get(endpoint), workspace.registry, inline_below_ms=50
    )
    runtime.load()

    async def main() -> int:
        for _ in range(requests):
            [result] = await runtime.predict([ROW])
            assert result.probabilities is not None
        stats = runtime.batcher_stats
        assert stats is not None
        await runtime.aclose()
        return stats.inline_batches

    return asyncio.run(main())


def test_cheap_calls_of_an_endpoint_run_on_the_loop_thread(registered: Workspace) -> None:
    registered.deployments.create_endpoint("churn", "models:/churn/1", max_batch_wait_ms=0)

    assert _inline_batches(registered, "churn", 10) == 9  # the first call's cost is unknown


def test_an_endpoint_with_a_timeout_never_runs_its_model_on_the_loop_thread(
    registered: Workspace,
) -> None:
    # the timeout could not cut short a call that holds the event loop
    registered.deployments.create_endpoint("churn", "models:/churn/1", timeout_ms=1000)

    assert _inline_batches(registered, "churn", 10) == 0


class NegativeAverse:
    """A regressor (2x) that raises on any frame holding a negative x."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if (frame["x"] < 0).any():
            raise ValueError("x must not be negative")
        return frame["x"].to_numpy() * 2


def test_a_model_failing_on_some_inputs_fails_only_the_requests_carrying_them(
    workspace: Workspace,
) -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0]})
    workspace.registry.register("picky", NegativeAverse(), input_example=frame)
    # A long batching window: the concurrent requests below share one micro-batch.
    workspace.deployments.create_endpoint("picky", "models:/picky/1", max_batch_wait_ms=50)
    runtime = EndpointRuntime(
        workspace.deployments.get("picky"), workspace.registry, inline_below_ms=0
    )
    runtime.load()
    xs = [1.0, -1.0, 2.0, 3.0, -5.0, 4.0]

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(
                *(runtime.predict([{"x": x}]) for x in xs), return_exceptions=True
            )
        finally:
            await runtime.aclose()

    answers = asyncio.run(main())
    stats = runtime.batcher_stats
    assert stats is not None

    for x, answer in zip(xs, answers, strict=True):
        if x < 0:
            assert isinstance(answer, ValueError)
        else:
            assert not isinstance(answer, BaseException), answer
            assert [row.prediction for row in answer] == [2 * x]
    assert stats.batches < len(xs)  # they were batched together, then told apart
