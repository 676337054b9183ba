"""A circuit breaker for one model version: stop calling a model that keeps failing or crawling.

    breaker = CircuitBreaker("churn/3", slow_call_seconds=0.2, on_transition=export)
    permit = breaker.allow()
    if not permit.allowed:
        ...                                   # serve the fallback; permit.reason says why
    started = time.perf_counter()
    try:
        result = await call_the_model()
    except asyncio.CancelledError:
        breaker.release(permit)               # no outcome: the client went away
        raise
    except Exception:
        breaker.record(permit, False, time.perf_counter() - started)   # timeouts too
        ...                                   # serve the fallback
    else:
        breaker.record(permit, True, time.perf_counter() - started)

States
------
``closed``     every call is allowed; outcomes go into a sliding time window. When the window
               holds at least ``min_requests`` calls and the share of failures reaches
               ``error_rate``, or the share of slow calls (latency >= ``slow_call_seconds``)
               reaches ``slow_call_rate``, the breaker opens.
``open``       every call is refused until ``open_seconds`` have passed; then the next
               :meth:`CircuitBreaker.allow` moves it to half-open.
``half_open``  ``half_open_probes`` calls are let through as probes (all may run at once),
               anything beyond them is refused. All probes succeed (and are not slow) → closed,
               with an empty window. One fails or is slow → open again, for twice as long as the
               last time, up to ``max_open_seconds``. A probe that reports nothing for
               ``probe_timeout_seconds`` while the others wait counts as failed, so a caller
               that loses a permit cannot wedge the breaker in half-open.

Why back off: a model that failed its probes once is likely to fail them again soon, and every
failed probe costs its request the whole timeout before the fallback answers. Doubling the wait
spends fewer requests on a model that stays down, and the cap (60 s by default) bounds how long
fallbacks outlive its recovery. The back-off resets when the breaker closes. There is no jitter:
each worker process calls its own copy of the model, so the probes of several breakers do not
converge on one shared dependency.

Late results
------------
Every :class:`Permit` carries the *epoch* it was issued in; each transition starts a new one.
An outcome whose permit is from an older epoch is counted in ``late_results`` and otherwise
ignored: a call admitted while closed that fails after the breaker opened does not extend the
open time, and one that succeeds during half-open is not mistaken for a probe.

Cost and threading
------------------
:meth:`~CircuitBreaker.allow` and :meth:`~CircuitBreaker.record` are O(1) and allocate nothing
in the steady state: permits are made once per transition and shared by every call of that
epoch, and the window is a fixed ring of ``buckets`` counters (moving to a new bucket clears at
most ``buckets`` of them). A closed breaker's ``allow`` does not even read the clock. There is
no lock: every method must be called from one thread, the event loop's (the batcher's thread
never touches the breaker; the request handler calls it before submitting and after awaiting).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CircuitBreaker", "Permit", "State", "Transition"]

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """Where a breaker is; the value is the label metrics and logs use."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer of :meth:`CircuitBreaker.allow`: whether to call the model, and if not, why.

    ``reason`` is ``None`` when allowed, ``"breaker_open"`` while open, ``"probes_busy"`` while
    half-open with every probe taken. ``probe`` tells a half-open probe from an ordinary call.
    Hand an allowed permit back to :meth:`CircuitBreaker.record` (or ``release``) exactly once.
    """

    allowed: bool
    reason: str | None
    probe: bool
    epoch: int


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, as passed to ``on_transition``; ``at`` is the breaker's clock."""

    name: str
    from_state: State
    to_state: State
    reason: str
    at: float


_REFUSED_OPEN = Permit(allowed=False, reason="breaker_open", probe=False, epoch=-1)
_REFUSED_BUSY = Permit(allowed=False, reason="probes_busy", probe=False, epoch=-1)


class CircuitBreaker:
    """Closed / open / half-open over a sliding time window of failures and slow calls.

    The window is ``window_seconds`` long, kept as ``buckets`` equal slices: a call is counted
    in the slice of the time it was *recorded*, and a slice leaves the window whole, so the
    window spans between ``window_seconds - window_seconds / buckets`` and ``window_seconds``
    of history. Timeouts are failures (the caller records them as such). A slow call is one
    whose latency is at least ``slow_call_seconds`` (None: latency is ignored), failed or not.

    ``on_transition`` is called after every change of state, on the calling thread, and must be
    cheap (set a gauge, bump a counter); an exception it raises is logged, not propagated. The
    breaker writes each transition to the log itself (a warning when it opens).
    """

    __slots__ = (
        "_buckets",
        "_calls",
        "_clock",
        "_epoch",
        "_error_rate",
        "_failures",
        "_head",
        "_last_probe_event",
        "_max_open_seconds",
        "_min_requests",
        "_on_transition",
        "_open_for",
        "_opened_at",
        "_permit",
        "_probe_timeout",
        "_probes",
        "_probes_admitted",
        "_probes_in_flight",
        "_probes_succeeded",
        "_retry_at",
        "_slow",
        "_slow_call_rate",
        "_slow_call_seconds",
        "_state",
        "_total_calls",
        "_total_failures",
        "_total_slow",
        "_width",
        "late_results",
        "name",
        "open_seconds",
        "opens",
        "window_seconds",
    )

    def __init__(
        self,
        name: str,
        *,
        window_seconds: float = 10.0,
        buckets: int = 10,
        min_requests: int = 20,
        error_rate: float = 0.5,
        slow_call_seconds: float | None = None,
        slow_call_rate: float = 0.5,
        open_seconds: float = 5.0,
        max_open_seconds: float = 60.0,
        half_open_probes: int = 3,
        probe_timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        _check(window_seconds > 0, "window_seconds", window_seconds, "must be > 0")
        _check(buckets >= 1, "buckets", buckets, "must be >= 1")
        _check(min_requests >= 1, "min_requests", min_requests, "must be >= 1")
        _check(0 < error_rate <= 1, "error_rate", error_rate, "must be in (0, 1]")
        _check(0 < slow_call_rate <= 1, "slow_call_rate", slow_call_rate, "must be in (0, 1]")
        _check(
            slow_call_seconds is None or slow_call_seconds > 0,
            "slow_call_seconds",
            slow_call_seconds,
            "must be > 0 or None",
        )
        _check(open_seconds > 0, "open_seconds", open_seconds, "must be > 0")
        _check(
            max_open_seconds >= open_seconds,
            "max_open_seconds",
            max_open_seconds,
            f"must be >= open_seconds ({open_seconds})",
        )
        _check(half_open_probes >= 1, "half_open_probes", half_open_probes, "must be >= 1")
        _check(
            probe_timeout_seconds > 0, "probe_timeout_seconds", probe_timeout_seconds, "must be > 0"
        )
        self.name = name
        self.window_seconds = float(window_seconds)
        self.open_seconds = float(open_seconds)
        self._width = self.window_seconds / buckets
        self._buckets = buckets
        self._min_requests = min_requests
        self._error_rate = error_rate
        self._slow_call_seconds = slow_call_seconds
        self._slow_call_rate = slow_call_rate
        self._max_open_seconds = float(max_open_seconds)
        self._probes = half_open_probes
        self._probe_timeout = float(probe_timeout_seconds)
        self._clock = clock
        self._on_transition = on_transition
        # the window: a ring of per-slice counters and their running totals
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._total_calls = 0
        self._total_failures = 0
        self._total_slow = 0
        self._head = int(clock() // self._width)  # absolute number of the newest slice
        self._state = State.CLOSED
        self._epoch = 0
        self._permit = Permit(allowed=True, reason=None, probe=False, epoch=0)
        self._opened_at: float | None = None
        self._retry_at = 0.0
        self._open_for = 0.0  # the length of the current/last open period
        self._probes_admitted = 0
        self._probes_in_flight = 0
        self._probes_succeeded = 0
        self._last_probe_event = 0.0
        self.opens = 0  # times opened since the breaker was made
        self.late_results = 0  # outcomes from an earlier epoch, ignored

    @property
    def state(self) -> State:
        """The current state. An open breaker past its wait stays ``OPEN`` until the next
        :meth:`allow`, which moves it to ``HALF_OPEN`` (``snapshot()`` shows ``retry_in`` 0)."""
        return self._state

    def allow(self) -> Permit:
        """Whether to call the model now: a shared :class:`Permit`, allowed or saying why not.

        Called on the event loop before each request is submitted; an allowed permit must be
        passed back to :meth:`record` (or :meth:`release`) once the call ends.
        """
        state = self._state
        if state is State.CLOSED:
            return self._permit
        now = self._clock()
        if state is State.OPEN:
            if now < self._retry_at:
                return _REFUSED_OPEN
            self._half_open(now)
        elif self._probes_admitted >= self._probes:
            if self._probes_in_flight and now - self._last_probe_event >= self._probe_timeout:
                self._open(now, f"a probe reported nothing for {self._probe_timeout:g} s")
                return _REFUSED_OPEN
            return _REFUSED_BUSY
        self._probes_admitted += 1
        self._probes_in_flight += 1
        self._last_probe_event = now
        return self._permit

    def record(self, permit: Permit, success: bool, latency: float) -> None:
        """Count the outcome of an allowed call: ``success`` False for an error or a timeout,
        ``latency`` in seconds as the client saw it (queueing included).

        Called on the event loop once the call ends, exactly once per allowed permit.
        """
        if not permit.allowed:
            raise ValueError(f"breaker '{self.name}': a refused permit has no outcome to record")
        if permit.epoch != self._epoch:
            self.late_results += 1
            return
        slow = self._slow_call_seconds is not None and latency >= self._slow_call_seconds
        if self._state is State.CLOSED:
            self._count(self._clock(), success, slow)
        else:  # half-open: an epoch's permit is only ever handed out while closed or half-open
            self._probe_ended(success, slow, latency)

    def release(self, permit: Permit) -> None:
        """Hand back an allowed permit whose call ended with no outcome (it was cancelled):
        nothing is counted, and a probe's place is freed for another request."""
        if not permit.allowed:
            raise ValueError(f"breaker '{self.name}': a refused permit cannot be released")
        if permit.epoch == self._epoch and self._state is State.HALF_OPEN:
            if not self._probes_in_flight:  # handed back twice: nothing is out
                return
            self._probes_in_flight -= 1
            self._probes_admitted -= 1

    def snapshot(self) -> dict[str, Any]:
        """The state and window for ``/readyz`` and the dashboard (times on the breaker's clock;
        ``retry_in`` is the seconds until an open breaker lets probes through). While not closed
        the window counts are those it held when the breaker opened."""
        now = self._clock()
        if self._state is State.CLOSED:
            self._advance(now)
        calls = self._total_calls
        return {
            "state": self._state.value,
            "window_seconds": self.window_seconds,
            "calls": calls,
            "failures": self._total_failures,
            "slow_calls": self._total_slow,
            "failure_rate": self._total_failures / calls if calls else 0.0,
            "slow_call_rate": self._total_slow / calls if calls else 0.0,
            "opened_at": self._opened_at,
            "retry_at": self._retry_at if self._state is State.OPEN else None,
            "retry_in": max(0.0, self._retry_at - now) if self._state is State.OPEN else None,
            "open_seconds": self._open_for if self._opened_at is not None else None,
            "probes_in_flight": self._probes_in_flight,
            "probes_succeeded": self._probes_succeeded,
            "opens": self.opens,
            "late_results": self.late_results,
        }

    # -- closed: the window ------------------------------------------------------------------

    def _count(self, now: float, success: bool, slow: bool) -> None:
        self._advance(now)
        slot = self._head % self._buckets
        self._calls[slot] += 1
        self._total_calls += 1
        if not success:
            self._failures[slot] += 1
            self._total_failures += 1
        if slow:
            self._slow[slot] += 1
            self._total_slow += 1
        calls = self._total_calls
        if calls < self._min_requests:
            return
        if self._total_failures >= self._error_rate * calls:
            self._open(
                now,
                f"{self._total_failures} of {calls} calls failed in the last "
                f"{self.window_seconds:g} s (threshold {self._error_rate:.0%})",
            )
        elif self._total_slow >= self._slow_call_rate * calls:
            self._open(
                now,
                f"{self._total_slow} of {calls} calls took >= {self._slow_call_seconds:g} s in "
                f"the last {self.window_seconds:g} s (threshold {self._slow_call_rate:.0%})",
            )

    def _advance(self, now: float) -> None:
        """Clear the slices that left the window since the newest one; at most ``buckets``."""
        head = int(now // self._width)
        if head <= self._head:  # same slice (or a clock that stepped back: keep the newest)
            return
        if head - self._head >= self._buckets:
            self._reset_window()
        else:
            for absolute in range(self._head + 1, head + 1):
                slot = absolute % self._buckets
                self._total_calls -= self._calls[slot]
                self._total_failures -= self._failures[slot]
                self._total_slow -= self._slow[slot]
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
        self._head = head

    def _reset_window(self) -> None:
        for ring in (self._calls, self._failures, self._slow):
            ring[:] = [0] * self._buckets
        self._total_calls = self._total_failures = self._total_slow = 0

    # -- half-open: the probes ---------------------------------------------------------------

    def _probe_ended(self, success: bool, slow: bool, latency: float) -> None:
        if not self._probes_in_flight:  # recorded twice (a caller's bug): nothing is out
            self.late_results += 1
            return
        now = self._clock()
        self._probes_in_flight -= 1
        self._last_probe_event = now
        if not success:
            self._open(now, "a probe failed")
        elif slow:
            self._open(now, f"a probe took {latency:.3g} s (>= {self._slow_call_seconds:g} s)")
        else:
            self._probes_succeeded += 1
            if self._probes_succeeded >= self._probes:
                self._close(now, f"{self._probes} probes succeeded")

    # -- transitions -------------------------------------------------------------------------

    def _open(self, now: float, reason: str) -> None:
        if self._state is State.HALF_OPEN:  # failed its probes again: wait longer
            self._open_for = min(self._open_for * 2, self._max_open_seconds)
        else:
            self._open_for = self.open_seconds
        self._opened_at = now
        self._retry_at = now + self._open_for
        self.opens += 1
        self._move(State.OPEN, now, f"{reason}; probing again in {self._open_for:g} s")

    def _half_open(self, now: float) -> None:
        self._probes_admitted = self._probes_in_flight = self._probes_succeeded = 0
        self._last_probe_event = now
        self._move(State.HALF_OPEN, now, f"open for {now - self._opened_at_or(now):g} s")

    def _close(self, now: float, reason: str) -> None:
        self._reset_window()
        self._head = int(now // self._width)
        self._opened_at = None
        self._probes_admitted = self._probes_in_flight = self._probes_succeeded = 0
        self._move(State.CLOSED, now, reason)

    def _opened_at_or(self, now: float) -> float:
        return now if self._opened_at is None else self._opened_at

    def _move(self, to: State, now: float, reason: str) -> None:
        """Enter ``to`` in a new epoch (outcomes of older permits become late), then report."""
        before = self._state
        self._state = to
        self._epoch += 1
        self._permit = Permit(
            allowed=True, reason=None, probe=to is State.HALF_OPEN, epoch=self._epoch
        )
        level = logging.WARNING if to is State.OPEN else logging.INFO
        logger.log(
            level,
            "circuit breaker '%s': %s -> %s: %s",
            self.name,
            before.value,
            to.value,
            reason,
        )
        if self._on_transition is not None:
            try:
                self._on_transition(Transition(self.name, before, to, reason, now))
            except Exception:
                logger.exception("circuit breaker '%s': on_transition failed", self.name)


def _check(ok: bool, field: str, value: object, problem: str) -> None:
    if not ok:
        raise ValueError(f"CircuitBreaker {field}={value!r}: {problem}")
