"""MicroBatcher: grouping policy, per-item results and failures, cancellation, overload.

Neither pytest-asyncio nor anyio's plugin is installed, so each test drives its own loop with
``asyncio.run``. Batches are held open with a ``threading.Event`` that ``run_batch`` waits on
(it runs on the batcher's thread), which makes "requests that arrive while a batch runs"
deterministic instead of timing-dependent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.errors import KeelError
from keel.serving._batching import BatcherClosed, BatchRecord, MicroBatcher, Overloaded


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


class Model:
    """A run_batch that records its batches and can be held open on a chosen item."""

    def __init__(self, hold_on: object = None) -> None:
        self.batches: list[list[Any]] = []
        self.hold_on = hold_on
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, items: list[Any]) -> Sequence[Any]:
        self.batches.append(list(items))
        if self.hold_on in items:
            self.entered.set()
            assert self.release.wait(5), "test never released the held batch"
        return [f"r{item}" for item in items]

    async def held(self) -> None:
        """Wait until the held batch is running on the batcher's thread."""
        await until(self.entered.is_set)


def spawn(batcher: MicroBatcher[Any, Any], items: Sequence[Any]) -> list[asyncio.Task[Any]]:
    return [asyncio.ensure_future(batcher.submit(item)) for item in items]


# -- the policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_a_lone_request_is_not_held_back(max_concurrency: int) -> None:
    async def main() -> None:
        model = Model()
        batcher = MicroBatcher(
            model, max_batch_size=64, max_batch_wait_ms=200, max_concurrency=max_concurrency
        )
        for item in range(3):  # each one alone, one after the other
            start = time.perf_counter()
            assert await batcher.submit(item) == f"r{item}"
            assert time.perf_counter() - start < 0.05  # far below the 200 ms wait
        assert model.batches == [[0], [1], [2]]
        await batcher.aclose()

    run(main())


def test_requests_arriving_during_a_batch_form_the_next_batches() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model, max_batch_size=4, max_batch_wait_ms=200)
        first = spawn(batcher, [0])
        await model.held()
        followers = spawn(batcher, range(1, 11))
        await until(lambda: batcher.stats.queued == 10)
        model.release.set()
        start = time.perf_counter()
        results = await asyncio.gather(*first, *followers)
        assert time.perf_counter() - start < 0.1  # followers left when the batch ended
        assert results == [f"r{item}" for item in range(11)]
        assert model.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
        await batcher.aclose()

    run(main())


def test_submissions_in_one_loop_iteration_share_a_batch() -> None:
    async def main() -> None:
        model = Model()
        batcher = MicroBatcher(model, max_batch_size=64, max_batch_wait_ms=200)
        results = await asyncio.gather(*(batcher.submit(item) for item in range(20)))
        assert results == [f"r{item}" for item in range(20)]
        assert model.batches == [list(range(20))]
        await batcher.aclose()

    run(main())


def test_with_a_free_slot_beside_a_running_batch_items_wait_for_company() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model, max_batch_size=3, max_batch_wait_ms=150, max_concurrency=2)
        held = spawn(batcher, [0])
        await model.held()
        start = time.perf_counter()
        assert await asyncio.gather(*spawn(batcher, [1, 2, 3])) == ["r1", "r2", "r3"]
        assert time.perf_counter() - start < 0.1  # a full batch leaves without the wait
        waited = spawn(batcher, [4, 5])
        assert await asyncio.gather(*waited) == ["r4", "r5"]
        assert time.perf_counter() - start >= 0.14  # a partial one waits max_batch_wait_ms
        assert model.batches == [[0], [1, 2, 3], [4, 5]]
        model.release.set()
        assert await held[0] == "r0"
        await batcher.aclose()

    run(main())


def test_item_size_counts_rows_against_the_batch_size() -> None:
    async def main() -> None:
        model = Model(hold_on="hold")
        records: list[BatchRecord] = []
        batcher: MicroBatcher[Any, Any] = MicroBatcher(
            model,
            max_batch_size=10,
            item_size=lambda item: 1 if item == "hold" else item,
            observer=records.append,
        )
        held = spawn(batcher, ["hold"])
        await model.held()
        tasks = spawn(batcher, [4, 5, 2, 30, 1])
        await until(lambda: batcher.stats.queued == 5)
        model.release.set()
        await asyncio.gather(*held, *tasks)
        assert model.batches == [["hold"], [4, 5], [2], [30], [1]]
        assert [record.rows for record in records] == [1, 9, 2, 30, 1]
        await batcher.aclose()

    run(main())


@pytest.mark.parametrize(("max_batch_size", "max_batch_wait_ms"), [(64, 0), (1, 200)])
def test_batching_can_be_turned_off(max_batch_size: int, max_batch_wait_ms: float) -> None:
    async def main() -> None:
        model = Model()
        batcher = MicroBatcher(
            model, max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms
        )
        assert not batcher.batching
        results = await asyncio.gather(*(batcher.submit(item) for item in range(5)))
        assert results == [f"r{item}" for item in range(5)]
        assert model.batches == [[0], [1], [2], [3], [4]]
        await batcher.aclose()

    run(main())


# -- results and failures --------------------------------------------------------------------------


def test_an_exception_fails_every_item_of_its_batch_and_no_other() -> None:
    class Boom(Exception):
        pass

    def run_batch(items: list[int]) -> list[int]:
        if 0 in items:
            gate.wait(5)
        if 2 in items:
            raise Boom("model fell over")
        return [item * 10 for item in items]

    gate = threading.Event()

    async def main() -> None:
        batcher = MicroBatcher(run_batch, max_batch_size=2)
        tasks = spawn(batcher, [0])
        await until(lambda: batcher.stats.running == 1)
        tasks += spawn(batcher, [1, 2, 3, 4])
        await until(lambda: batcher.stats.queued == 4)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert outcomes[0] == 0
        assert isinstance(outcomes[1], Boom)
        assert outcomes[2] is outcomes[1]
        assert outcomes[3:] == [30, 40]
        assert batcher.stats.failed_batches == 1
        assert await batcher.submit(5) == 50  # the batcher carries on
        await batcher.aclose()

    run(main())


def test_a_returned_exception_fails_only_its_item() -> None:
    def run_batch(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad row {item}") if item % 2 else item for item in items]

    async def main() -> None:
        batcher = MicroBatcher(run_batch)
        outcomes = await asyncio.gather(*spawn(batcher, range(6)), return_exceptions=True)
        assert outcomes[0::2] == [0, 2, 4]
        assert [str(error) for error in outcomes[1::2]] == ["bad row 1", "bad row 3", "bad row 5"]
        assert batcher.stats.batches == 1
        assert batcher.stats.failed_batches == 0
        await batcher.aclose()

    run(main())


def test_a_wrong_number_of_results_fails_the_batch() -> None:
    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: items[:-1])
        outcomes = await asyncio.gather(*spawn(batcher, range(3)), return_exceptions=True)
        assert all(isinstance(outcome, ValueError) for outcome in outcomes)
        assert "returned 2 results for 3 items" in str(outcomes[0])
        await batcher.aclose()

    run(main())


# -- cancellation, overload, shutdown --------------------------------------------------------------


def test_a_cancelled_submitter_leaves_the_queue_without_harming_the_others() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model, max_batch_size=8)
        held = spawn(batcher, [0])
        await model.held()
        queued = spawn(batcher, [1, 2, 3])
        await until(lambda: batcher.stats.queued == 3)
        queued[1].cancel()
        await asyncio.sleep(0)
        assert batcher.stats.queued == 2
        model.release.set()
        assert await asyncio.gather(*held, queued[0], queued[2]) == ["r0", "r1", "r3"]
        assert queued[1].cancelled()
        assert model.batches == [[0], [1, 3]]
        assert batcher.stats.cancelled == 1
        await batcher.aclose()

    run(main())


def test_a_cancelled_submitter_in_a_running_batch_does_not_break_it() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model, max_batch_size=8)
        tasks = spawn(batcher, [0, 1, 2])
        await model.held()
        tasks[0].cancel()
        model.release.set()
        assert [await tasks[1], await tasks[2]] == ["r1", "r2"]
        assert tasks[0].cancelled()
        assert model.batches == [[0, 1, 2]]
        assert await batcher.submit(3) == "r3"
        await batcher.aclose()

    run(main())


def test_a_full_queue_refuses_at_once() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model, name="churn/3", max_queue=2)
        held = spawn(batcher, [0])
        await model.held()
        queued = spawn(batcher, [1, 2])
        await until(lambda: batcher.stats.queued == 2)
        with pytest.raises(Overloaded, match=r"'churn/3' is overloaded: 2 requests .*max_queue=2"):
            await batcher.submit(3)
        assert isinstance(Overloaded("m", 1, 1), KeelError)
        assert batcher.stats.rejected == 1
        model.release.set()
        assert await asyncio.gather(*held, *queued) == ["r0", "r1", "r2"]
        await batcher.aclose()

    run(main())


def test_aclose_drains_then_refuses() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        batcher = MicroBatcher(model)
        held = spawn(batcher, [0])
        await model.held()
        queued = spawn(batcher, [1, 2])
        await until(lambda: batcher.stats.queued == 2)
        closing = asyncio.ensure_future(batcher.aclose())
        await asyncio.sleep(0.01)
        assert not closing.done()
        with pytest.raises(BatcherClosed):
            await batcher.submit(3)
        model.release.set()
        await closing
        assert [task.result() for task in [*held, *queued]] == ["r0", "r1", "r2"]

    run(main())


# -- the event loop and observability --------------------------------------------------------------


def test_the_event_loop_keeps_running_while_a_batch_runs() -> None:
    def slow(items: list[int]) -> list[int]:
        time.sleep(0.3)
        return items

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        batcher = MicroBatcher(slow)
        ticking = asyncio.ensure_future(ticker())
        assert await batcher.submit(7) == 7
        ticking.cancel()
        assert ticks >= 15  # about 30 while the batch slept
        await batcher.aclose()

    run(main())


def test_the_observer_sees_batch_sizes_and_queue_waits() -> None:
    async def main() -> None:
        model = Model(hold_on=0)
        records: list[BatchRecord] = []
        batcher = MicroBatcher(model, max_batch_size=8, observer=records.append)
        held = spawn(batcher, [0])
        await model.held()
        queued = spawn(batcher, [1, 2, 3])
        await asyncio.sleep(0.05)
        model.release.set()
        await asyncio.gather(*held, *queued)
        assert [record.size for record in records] == [1, 3]
        assert not any(record.failed for record in records)
        assert records[0].run_seconds >= 0.04  # held open while the others queued
        assert all(wait >= 0.04 for wait in records[1].queue_waits)
        stats = batcher.stats
        assert (stats.batches, stats.items, stats.queued, stats.running) == (2, 4, 0, 0)
        await batcher.aclose()

    run(main())


def test_a_failing_observer_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def observer(record: BatchRecord) -> None:
        raise RuntimeError("metrics backend down")

    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            lambda items: items, name="m", observer=observer
        )
        assert await batcher.submit(1) == 1
        await batcher.aclose()

    run(main())
    assert "batch observer of model 'm' failed" in caplog.text


@pytest.mark.parametrize(
    "bad",
    [
        {"max_batch_size": 0},
        {"max_batch_wait_ms": -1},
        {"max_queue": 0},
        {"max_concurrency": 0},
    ],
)
def test_impossible_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        MicroBatcher(lambda items: items, **bad)  # type: ignore[arg-type]


# -- property: every item gets exactly its own result ----------------------------------------------

arrivals = st.lists(
    st.tuples(st.integers(0, 3), st.booleans()),  # (delay in ms before submitting, cancel it)
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pattern=arrivals,
    max_batch_size=st.integers(1, 8),
    max_concurrency=st.integers(1, 3),
    run_ms=st.integers(0, 2),
)
def test_every_item_gets_exactly_its_own_result(
    pattern: list[tuple[int, bool]], max_batch_size: int, max_concurrency: int, run_ms: int
) -> None:
    batches: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int | Exception]:
        batches.append(list(items))
        time.sleep(run_ms / 1000)
        return [ValueError(str(item)) if item % 7 == 3 else -item for item in items]

    async def client(batcher: MicroBatcher[int, int], index: int, delay: int) -> int:
        await asyncio.sleep(delay / 1000)
        return await batcher.submit(index)

    async def main() -> None:
        batcher = MicroBatcher(
            run_batch,
            max_batch_size=max_batch_size,
            max_batch_wait_ms=1,
            max_concurrency=max_concurrency,
        )
        tasks = [
            asyncio.ensure_future(client(batcher, index, delay))
            for index, (delay, _) in enumerate(pattern)
        ]
        await asyncio.sleep(0.002)
        for task, (_, cancel) in zip(tasks, pattern, strict=True):
            if cancel:
                task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, asyncio.CancelledError):
                continue
            if index % 7 == 3:
                assert isinstance(outcome, ValueError)
                assert str(outcome) == str(index)
            else:
                assert outcome == -index
        seen = [item for batch in batches for item in batch]
        assert len(seen) == len(set(seen))  # no item ran twice
        assert all(1 <= len(batch) <= max_batch_size for batch in batches)
        finished = {index for index, outcome in enumerate(outcomes) if not _cancelled(outcome)}
        assert finished <= set(seen)
        await batcher.aclose()
        assert batcher.stats.queued == batcher.stats.running == 0

    run(main())


def _cancelled(outcome: object) -> bool:
    return isinstance(outcome, asyncio.CancelledError)


# -- cheap batches run inline ------------------------------------------------------------------


class ThreadRecorder:
    """A run_batch that records which thread ran each batch and takes ``seconds`` per call."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.threads: list[int] = []

    def __call__(self, items: list[Any]) -> Sequence[Any]:
        self.threads.append(threading.get_ident())
        if self.seconds:
            time.sleep(self.seconds)
        return list(items)


def test_a_cheap_model_runs_on_the_loop_thread_once_its_cost_is_known() -> None:
    model = ThreadRecorder()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_batch_wait_ms=0, inline_below_ms=5)
        for item in range(20):
            assert await batcher.submit(item) == item
        loop_thread = threading.get_ident()
        # The first call's cost is unknown, so it goes to the thread; then it is known.
        assert model.threads[0] != loop_thread
        assert set(model.threads[1:]) == {loop_thread}
        assert batcher.stats.inline_batches == 19
        await batcher.aclose()

    run(main())


def test_a_slow_model_never_blocks_the_event_loop() -> None:
    model = ThreadRecorder(seconds=0.02)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_batch_wait_ms=0, inline_below_ms=1)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.ensure_future(ticker())
        for item in range(5):
            await batcher.submit(item)
        tick_task.cancel()
        assert threading.get_ident() not in model.threads
        assert batcher.stats.inline_batches == 0
        assert ticks > 5  # the loop kept turning while every call ran on the thread
        await batcher.aclose()

    run(main())


def test_a_model_that_becomes_slow_goes_back_to_the_thread() -> None:
    model = ThreadRecorder()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_batch_wait_ms=0, inline_below_ms=2)
        for item in range(5):
            await batcher.submit(item)
        loop_thread = threading.get_ident()
        assert model.threads[-1] == loop_thread
        model.seconds = 0.02  # one slow inline call teaches the batcher
        for item in range(5):
            await batcher.submit(item)
        assert model.threads[-1] != loop_thread
        await batcher.aclose()

    run(main())


def test_a_large_batch_of_a_cheap_model_is_not_assumed_cheap() -> None:
    model = ThreadRecorder(seconds=0.0015)  # 1.5 ms a call, whatever its size

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=64, max_batch_wait_ms=2, inline_below_ms=2)
        await batcher.submit(0)
        await batcher.submit(1)  # known: one row takes ~1.5 ms, under the 2 ms limit
        loop_thread = threading.get_ident()
        assert model.threads[-1] == loop_thread
        # 8 rows have never been seen; from one row's cost they are expected to take ~12 ms.
        await asyncio.gather(*spawn(batcher, range(8)))
        assert model.threads[-1] != loop_thread
        await batcher.aclose()

    run(main())


def test_inline_is_off_by_default_and_refuses_a_negative_limit() -> None:
    model = ThreadRecorder()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_batch_wait_ms=0)
        for item in range(5):
            await batcher.submit(item)
        assert threading.get_ident() not in model.threads
        await batcher.aclose()

    run(main())
    with pytest.raises(ValueError, match="inline_below_ms"):
        MicroBatcher(model, inline_below_ms=-1)
