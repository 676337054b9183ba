"""Adaptive micro-batching: concurrent requests for one model grouped into one predict call.

    batcher = MicroBatcher(predict_rows, name="churn/3", max_batch_size=64)
    probabilities = await batcher.submit(row)    # from many request handlers at once
    ...
    await batcher.aclose()                       # at shutdown: drains, then stops the thread

``run_batch(items) -> results`` is an ordinary synchronous function (stack the rows into one
frame, call ``predict_proba`` once, split the output). It runs off the event loop on a
dedicated thread, so a CPU-bound model never stalls request handling, unless a batch is known
to be cheaper than the trip to that thread (see "Cheap batches run inline" below).

When a batch leaves
-------------------
A *slot* is a place to run a batch (``max_concurrency``, default 1: one dedicated thread).
The dispatcher runs when something changes (a batch ends, a timer fires; after a submission,
at the end of that event-loop iteration) and, while a slot is free and items are queued:

1. **No batch running** → the queued items leave at once, up to ``max_batch_size``. A lone
   request is never held back waiting for company, and followers that queued behind a batch
   leave the moment it ends: they have already waited.
2. **Another batch running** (only possible with ``max_concurrency > 1``) → the queued items
   wait for company until they fill a batch or the oldest has waited ``max_batch_wait_ms``.
   This is the only timed wait. It is used where it can help: starting a small batch beside a
   running one costs a whole predict call for a few rows.
3. Items submitted while every slot is busy queue (at most ``max_queue``; beyond that
   :meth:`MicroBatcher.submit` raises :class:`Overloaded` at once) and form the next batch:
   the classic "batch what queued while busy" scheme, whose batches grow with the load.
4. Items submitted in the same loop iteration as a dispatch join it, for free (several
   requests read from the sockets in one poll go out as one batch).

With one slot a timed wait cannot help: followers wait for the running batch anyway, and
holding them after it ends only leaves the model idle while they wait longer (measured with
16 closed-loop clients on a gradient-boosting model: holding for full batches of 16 halved the
requests served per second, against batches of about 8 that leave as soon as they can).
``max_batch_wait_ms=0`` or ``max_batch_size=1`` turns batching off: every item is its own
``run_batch([item])`` call, started in the executor as soon as a slot is free.

Cheap batches run inline
------------------------
Handing a batch to the thread and its result back costs two thread wake-ups and two GIL
hand-overs: on a busy core, more than a small model's whole predict call (measured: a
LogisticRegression answers one row in ≈0.1 ms; the round trip cost keel ≈0.25 ms a request and
half its throughput). With ``inline_below_ms`` > 0, a batch whose *expected* run time is below
it, and that would start with no other batch running, runs on the event loop's thread instead.
The expectation comes from the batches run so far (both ways): an exponentially weighted
average of the seconds per row, kept per batch-size class (1, 2-3, 4-7, ...); a class never seen
is estimated from the nearest smaller one as if time grew linearly with rows (an overestimate),
and with nothing to go on the batch goes to the thread. So a slow model, or a batch made large
by load, never holds the loop for long: the loop is blocked at most about ``inline_below_ms``
(plus an occasional outlier, which then sends that class back to the thread until its average
falls again). While a batch runs inline, requests arriving wait in the sockets and are read
together afterwards, so they still form the next batch (rule 4).

Results and failures
--------------------
Each submitter gets the result at its item's position. If ``run_batch`` raises, every item of
that batch fails with that exception; to fail only some items, return an ``Exception``
instance in their place. A submitter that is cancelled (the client went away) leaves the
queue if its item has not started; if it has, the batch runs on for the others and its result
is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from keel.errors import BatcherClosed, Overloaded

__all__ = ["BatchRecord", "BatcherClosed", "BatcherStats", "MicroBatcher", "Overloaded"]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What one finished batch reports to the ``observer`` (the server feeds Prometheus)."""

    size: int
    """Items in the batch."""
    rows: int
    """Rows in the batch (``item_size`` summed; equals ``size`` unless items carry many rows)."""
    queue_waits: tuple[float, ...]
    """Seconds each item waited from submission until ``run_batch`` started."""
    run_seconds: float
    """Seconds spent inside ``run_batch``."""
    failed: bool
    """``run_batch`` raised (every item failed)."""
    inline: bool = False
    """The batch ran on the event loop's thread (it was expected to be cheap)."""


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Running totals since the batcher was created, and the current queue."""

    batches: int
    items: int
    failed_batches: int
    rejected: int
    cancelled: int
    queued: int
    running: int
    inline_batches: int
    """Batches run on the event loop's thread because they were expected to be cheap."""


class _CostModel:
    """Expected seconds of a batch by its rows: per batch-size class (rows.bit_length()), an
    exponentially weighted average of seconds per row; see "Cheap batches run inline"."""

    __slots__ = ("_per_row",)

    _WEIGHT = 0.2  # of the newest batch: about the last ten batches of a class count

    def __init__(self) -> None:
        self._per_row: dict[int, float] = {}

    def observe(self, rows: int, seconds: float) -> None:
        rows = max(rows, 1)
        size_class = rows.bit_length()
        per_row = seconds / rows
        known = self._per_row.get(size_class)
        self._per_row[size_class] = (
            per_row if known is None else known + self._WEIGHT * (per_row - known)
        )

    def expected(self, rows: int) -> float | None:
        """Seconds a batch of ``rows`` is expected to take; None when nothing is known."""
        rows = max(rows, 1)
        for size_class in range(rows.bit_length(), 0, -1):
            per_row = self._per_row.get(size_class)
            if per_row is not None:
                # From a smaller class, seconds per row only fall as batches grow: linear
                # extrapolation errs on the slow side, which sends the batch to the thread.
                return per_row * rows
        return None


class _Entry(Generic[T, R]):
    __slots__ = ("future", "item", "size", "submitted")

    def __init__(self, item: T, future: asyncio.Future[R], submitted: float, size: int) -> None:
        self.item = item
        self.future = future
        self.submitted = submitted
        self.size = size


_Outcome = tuple[float, float, Sequence[R | Exception] | BaseException]
"""(start, end, results or the exception run_batch raised), from the executor's thread."""


class MicroBatcher(Generic[T, R]):
    """Groups concurrent :meth:`submit` calls into calls of ``run_batch``; see the module doc.

    Args:
        run_batch: synchronous; gets a non-empty list of items, returns one result per item, in
            order (an ``Exception`` instance in an item's place fails only that item). Called
            on the executor's thread, never on the event loop.
        name: names the model in errors and logs.
        max_batch_size: most rows in one batch (an item larger than this runs alone).
        max_batch_wait_ms: longest an item waits for company while another batch is running
            (rule 2 of the module doc); 0 turns batching off.
        max_queue: most items waiting for a batch; beyond it :meth:`submit` raises
            :class:`Overloaded`.
        max_concurrency: batches running at once. The default 1 keeps CPU-bound predict calls
            from contending with each other.
        executor: where batches run. By default a thread pool of ``max_concurrency`` threads
            owned (and shut down) by the batcher; a given executor is left running.
        item_size: rows an item counts for against ``max_batch_size`` (default: 1 each).
        observer: called on the event loop after every batch with its :class:`BatchRecord`;
            it must be quick (a few counter updates).
        inline_below_ms: run a batch on the event loop's thread when it is expected to take
            less than this and no other batch is running (module doc, "Cheap batches run
            inline"); 0, the default, always uses the executor.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R | Exception]],
        *,
        name: str = "model",
        max_batch_size: int = 64,
        max_batch_wait_ms: float = 2.0,
        max_queue: int = 1024,
        max_concurrency: int = 1,
        executor: Executor | None = None,
        item_size: Callable[[T], int] | None = None,
        observer: Callable[[BatchRecord], None] | None = None,
        inline_below_ms: float = 0.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, not {max_batch_size}")
        if max_batch_wait_ms < 0:
            raise ValueError(f"max_batch_wait_ms must not be negative, not {max_batch_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if inline_below_ms < 0:
            raise ValueError(f"inline_below_ms must not be negative, not {inline_below_ms}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_batch_wait_ms = max_batch_wait_ms
        self.max_queue = max_queue
        self.max_concurrency = max_concurrency
        self.batching = max_batch_size > 1 and max_batch_wait_ms > 0
        self._run_batch = run_batch
        self._item_size = item_size
        self._observer = observer
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix=f"keel-batch-{name}"
        )
        self._wait = max_batch_wait_ms / 1000
        self._inline_below = inline_below_ms / 1000
        self._costs = _CostModel()
        self._queue: deque[_Entry[T, R]] = deque()
        self._running = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatch_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._idle: asyncio.Event | None = None
        self._batches = 0
        self._items = 0
        self._failed_batches = 0
        self._rejected = 0
        self._cancelled = 0
        self._inline_batches = 0

    @property
    def stats(self) -> BatcherStats:
        """Counters for scraping: totals so far, and what is queued and running now."""
        return BatcherStats(
            batches=self._batches,
            items=self._items,
            failed_batches=self._failed_batches,
            rejected=self._rejected,
            cancelled=self._cancelled,
            queued=len(self._queue),
            running=self._running,
            inline_batches=self._inline_batches,
        )

    async def submit(self, item: T) -> R:
        """Queue ``item``, wait for its batch, return its own result (or raise its error).

        Raises :class:`Overloaded` at once when ``max_queue`` items are already waiting, and
        :class:`BatcherClosed` after :meth:`aclose`. Cancelling the caller removes the item if
        its batch has not started, and never disturbs the other items of a running batch.
        """
        if self._closing:
            raise BatcherClosed(self.name)
        if len(self._queue) >= self.max_queue:
            self._rejected += 1
            raise Overloaded(self.name, len(self._queue), self.max_queue)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        size = 1 if self._item_size is None else self._item_size(item)
        entry = _Entry(item, future, time.perf_counter(), size)
        self._queue.append(entry)
        if self._running < self.max_concurrency:
            if not self.batching:
                self._dispatch()  # no grouping, so no reason to wait for the loop iteration
            elif not self._dispatch_scheduled:
                self._dispatch_scheduled = True
                loop.call_soon(self._dispatch)
        try:
            return await future
        except asyncio.CancelledError:
            if future.cancelled():
                self._cancelled += 1
                # ValueError: already in a running batch, which carries on without it
                with contextlib.suppress(ValueError):
                    self._queue.remove(entry)
            raise

    async def aclose(self) -> None:
        """Refuse new submissions, let queued and running batches finish, stop owned threads."""
        self._closing = True
        if self._queue or self._running:
            self._idle = asyncio.Event()
            self._dispatch()
            await self._idle.wait()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    # -- dispatching (event-loop side) -------------------------------------------------------------

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        while queue and self._running < self.max_concurrency:
            if self._running and self.batching and not self._closing:
                # Rule 2: a slot is free but the model is busy; wait for company if it can come.
                rows = sum(entry.size for entry in queue)
                deadline = queue[0].submitted + self._wait
                delay = deadline - time.perf_counter()
                if rows < self.max_batch_size and delay > 0:
                    assert self._loop is not None
                    self._timer = self._loop.call_later(delay, self._dispatch)
                    return
            batch = self._take()
            if self._cheap(batch):
                self._run_inline(batch)
            else:
                self._start(batch)

    def _cheap(self, batch: list[_Entry[T, R]]) -> bool:
        if self._inline_below <= 0 or self._running:
            return False
        expected = self._costs.expected(sum(entry.size for entry in batch))
        return expected is not None and expected < self._inline_below

    def _run_inline(self, batch: list[_Entry[T, R]]) -> None:
        self._inline_batches += 1
        self._complete(batch, self._run([entry.item for entry in batch]), inline=True)

    def _take(self) -> list[_Entry[T, R]]:
        queue = self._queue
        batch = [queue.popleft()]
        if not self.batching:
            return batch
        rows = batch[0].size
        while queue and rows + queue[0].size <= self.max_batch_size:
            entry = queue.popleft()
            rows += entry.size
            batch.append(entry)
        return batch

    def _start(self, batch: list[_Entry[T, R]]) -> None:
        self._running += 1
        loop = self._loop
        assert loop is not None
        items = [entry.item for entry in batch]
        try:
            work = self._executor.submit(self._run, items)
        except RuntimeError as error:  # a shared executor that was shut down under us
            failed: Future[_Outcome[R]] = Future()
            failed.set_exception(error)
            loop.call_soon(self._finish, batch, failed)
            return

        def done(work: Future[_Outcome[R]]) -> None:  # on the executor's thread
            # RuntimeError: the loop is closed, nobody is left to answer
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finish, batch, work)

        work.add_done_callback(done)

    def _run(self, items: list[T]) -> _Outcome[R]:  # on the executor's thread
        started = time.perf_counter()
        try:
            results: Sequence[R | Exception] | BaseException = self._run_batch(items)
        except Exception as error:
            results = error
        return started, time.perf_counter(), results

    def _finish(self, batch: list[_Entry[T, R]], work: Future[_Outcome[R]]) -> None:
        self._running -= 1
        failure = work.exception()  # only if the executor itself failed
        if failure is None:
            outcome = work.result()
        else:
            now = time.perf_counter()
            outcome = (now, now, failure)
        self._complete(batch, outcome, inline=False)
        self._dispatch()
        if self._idle is not None and not self._queue and not self._running:
            self._idle.set()

    def _complete(self, batch: list[_Entry[T, R]], outcome: _Outcome[R], *, inline: bool) -> None:
        """Answer the batch's submitters, count it, learn its cost, tell the observer."""
        started, ended, results = outcome
        error: BaseException | None = None
        if not isinstance(results, BaseException) and len(results) != len(batch):
            results = ValueError(
                f"run_batch of model '{self.name}' returned {len(results)} results "
                f"for {len(batch)} items"
            )
        if isinstance(results, BaseException):
            error = results
            if isinstance(error, StopIteration):  # a future cannot carry one
                error = RuntimeError(f"run_batch raised {error!r}")
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(error)
        else:
            for entry, result in zip(batch, results, strict=True):
                if entry.future.done():
                    continue  # its submitter was cancelled
                if isinstance(result, Exception):
                    entry.future.set_exception(result)
                else:
                    entry.future.set_result(result)
        self._batches += 1
        self._items += len(batch)
        self._failed_batches += error is not None
        rows = sum(entry.size for entry in batch)
        if error is None:
            self._costs.observe(rows, ended - started)
        if self._observer is not None:
            record = BatchRecord(
                size=len(batch),
                rows=rows,
                queue_waits=tuple(started - entry.submitted for entry in batch),
                run_seconds=ended - started,
                failed=error is not None,
                inline=inline,
            )
            try:
                self._observer(record)
            except Exception:
                logger.exception("batch observer of model '%s' failed", self.name)
