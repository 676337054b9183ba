"""CircuitBreaker: the window, opening, refusing, probing, recovering, late results.

Time is a fake clock the tests move by hand: nothing sleeps and nothing is timed.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.serving._breaker import CircuitBreaker, Permit, State, Transition


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state_of(breaker: CircuitBreaker) -> State:
    """``breaker.state`` through a call, which mypy does not narrow from one assert to the next."""
    return breaker.state


def make(clock: Clock, **options: Any) -> tuple[CircuitBreaker, list[Transition]]:
    seen: list[Transition] = []
    breaker = CircuitBreaker("churn/3", clock=clock, on_transition=seen.append, **options)
    return breaker, seen


def call(breaker: CircuitBreaker, success: bool = True, latency: float = 0.01) -> Permit:
    permit = breaker.allow()
    if permit.allowed:
        breaker.record(permit, success, latency)
    return permit


def trip(breaker: CircuitBreaker, failures: int = 20) -> None:
    for _ in range(failures):
        call(breaker, success=False)
    assert state_of(breaker) is State.OPEN


# -- closed ----------------------------------------------------------------------------------------


def test_stays_closed_below_min_requests() -> None:
    clock = Clock()
    breaker, seen = make(clock, min_requests=20)
    for _ in range(19):
        assert call(breaker, success=False).allowed
    assert state_of(breaker) is State.CLOSED
    assert seen == []
    call(breaker, success=False)
    assert state_of(breaker) is State.OPEN


def test_opens_when_the_failure_rate_reaches_the_threshold() -> None:
    clock = Clock()
    breaker, seen = make(clock, min_requests=20, error_rate=0.5)
    for _ in range(11):
        call(breaker)
    for _ in range(9):
        call(breaker, success=False)
    assert state_of(breaker) is State.CLOSED  # 9 of 20: 45 %
    call(breaker, success=False)  # 10 of 21: 47.6 %
    assert state_of(breaker) is State.CLOSED
    call(breaker, success=False)  # 11 of 22: 50 %
    assert state_of(breaker) is State.OPEN
    (opened,) = seen
    assert opened.name == "churn/3"
    assert (opened.from_state, opened.to_state) == (State.CLOSED, State.OPEN)
    assert opened.at == clock.now
    assert "11 of 22 calls failed" in opened.reason


def test_a_success_that_brings_the_window_to_min_requests_can_open_it() -> None:
    breaker, _ = make(Clock(), min_requests=20)
    for _ in range(19):
        call(breaker, success=False)
    call(breaker, success=True)  # 19 of 20 failed
    assert state_of(breaker) is State.OPEN


def test_opens_on_the_slow_call_rate() -> None:
    clock = Clock()
    breaker, seen = make(clock, min_requests=10, slow_call_seconds=0.5, slow_call_rate=0.6)
    for _ in range(4):
        call(breaker, latency=0.1)
    for _ in range(5):
        call(breaker, latency=0.5)  # at the threshold counts as slow
    assert state_of(breaker) is State.CLOSED  # 5 of 9, below min_requests anyway
    call(breaker, latency=2.0)  # 6 of 10: 60 %
    assert state_of(breaker) is State.OPEN
    assert "6 of 10 calls took >= 0.5 s" in seen[0].reason


def test_latency_is_ignored_without_a_slow_call_threshold() -> None:
    breaker, _ = make(Clock(), min_requests=5)
    for _ in range(50):
        call(breaker, latency=100.0)
    assert state_of(breaker) is State.CLOSED
    assert breaker.snapshot()["slow_calls"] == 0


def test_old_buckets_leave_the_window() -> None:
    clock = Clock(1000.0)
    breaker, _ = make(clock, window_seconds=10, buckets=10, min_requests=10)
    for _ in range(9):
        call(breaker, success=False)
    clock.advance(5)
    assert breaker.snapshot()["failures"] == 9  # still inside the window
    clock.advance(5)  # the slice [1000, 1001) has left
    assert breaker.snapshot()["failures"] == 0
    call(breaker, success=False)
    assert state_of(breaker) is State.CLOSED  # 1 failure in the window, not 10


def test_the_window_slides_one_slice_at_a_time() -> None:
    clock = Clock(1000.0)
    breaker, _ = make(clock, window_seconds=4, buckets=4, min_requests=100)
    for second in range(4):
        for _ in range(second + 1):  # 1, 2, 3, 4 calls in the seconds 1000..1003
            call(breaker, success=False)
        clock.advance(1)
    clock.now = 1003.5
    assert breaker.snapshot()["calls"] == 10
    clock.now = 1004.0
    assert breaker.snapshot()["calls"] == 9
    clock.now = 1006.0
    assert breaker.snapshot()["calls"] == 4
    clock.now = 1030.0  # far past: the whole ring is cleared at once
    snapshot = breaker.snapshot()
    assert (snapshot["calls"], snapshot["failures"], snapshot["failure_rate"]) == (0, 0, 0.0)


def test_failures_spread_thinner_than_the_window_never_open() -> None:
    clock = Clock()
    breaker, seen = make(clock, window_seconds=10, min_requests=5)
    for _ in range(100):
        call(breaker, success=False)
        clock.advance(2.5)  # never more than 4 calls in 10 s
    assert state_of(breaker) is State.CLOSED
    assert seen == []


def test_a_closed_breaker_hands_out_one_shared_permit() -> None:
    breaker, _ = make(Clock())
    first = breaker.allow()
    assert first.allowed
    assert not first.probe
    assert first.reason is None
    assert breaker.allow() is first  # nothing allocated per call


# -- open ------------------------------------------------------------------------------------------


def test_refuses_while_open_until_open_seconds_have_passed() -> None:
    clock = Clock()
    breaker, seen = make(clock, open_seconds=5)
    trip(breaker)
    for _ in range(3):
        refused = breaker.allow()
        assert not refused.allowed
        assert refused.reason == "breaker_open"
        clock.advance(1.6)  # 1.6, 3.2, 4.8 s
    assert state_of(breaker) is State.OPEN
    assert breaker.snapshot()["retry_in"] == pytest.approx(0.2)
    clock.advance(0.2)
    probe = breaker.allow()
    assert probe.allowed
    assert probe.probe
    assert state_of(breaker) is State.HALF_OPEN
    assert [t.to_state for t in seen] == [State.OPEN, State.HALF_OPEN]


def test_half_open_admits_only_the_configured_number_of_probes() -> None:
    clock = Clock()
    breaker, _ = make(clock, open_seconds=5, half_open_probes=3)
    trip(breaker)
    clock.advance(5)
    probes = [breaker.allow() for _ in range(3)]
    assert all(p.allowed and p.probe for p in probes)
    for _ in range(5):
        refused = breaker.allow()
        assert not refused.allowed
        assert refused.reason == "probes_busy"
    assert breaker.snapshot()["probes_in_flight"] == 3
    breaker.record(probes[0], True, 0.01)  # a finished probe does not make room for another
    assert not breaker.allow().allowed


def test_an_open_breaker_recovers_when_its_probes_succeed() -> None:
    clock = Clock()
    breaker, seen = make(clock, open_seconds=5, half_open_probes=3, min_requests=20)
    trip(breaker)
    clock.advance(5)
    probes = [breaker.allow() for _ in range(3)]
    breaker.record(probes[0], True, 0.01)
    breaker.record(probes[1], True, 0.01)
    assert state_of(breaker) is State.HALF_OPEN
    breaker.record(probes[2], True, 0.01)
    assert state_of(breaker) is State.CLOSED
    assert [(t.from_state, t.to_state) for t in seen] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert seen[-1].reason == "3 probes succeeded"
    snapshot = breaker.snapshot()
    assert snapshot["calls"] == 0  # the window starts afresh
    assert snapshot["opened_at"] is None
    assert snapshot["retry_at"] is None
    # closed again for real: it takes a full min_requests of failures to open it
    for _ in range(19):
        call(breaker, success=False)
    assert state_of(breaker) is State.CLOSED
    call(breaker, success=False)
    assert state_of(breaker) is State.OPEN
    assert seen[-1].reason.endswith("probing again in 5 s")  # the back-off was reset


def test_a_failed_probe_reopens_with_a_backoff_up_to_the_cap() -> None:
    clock = Clock()
    breaker, seen = make(clock, open_seconds=5, max_open_seconds=18, half_open_probes=2)
    trip(breaker)
    waits = []
    for _ in range(4):
        waits.append(breaker.snapshot()["retry_in"])
        clock.advance(breaker.snapshot()["retry_in"])
        probe = breaker.allow()
        other = breaker.allow()
        breaker.record(probe, False, 0.01)
        assert state_of(breaker) is State.OPEN
        breaker.record(other, True, 0.01)  # the probe still out: late, changes nothing
        assert state_of(breaker) is State.OPEN
    assert waits == [5, 10, 18, 18]
    assert breaker.snapshot()["retry_in"] == 18
    assert [t.to_state for t in seen[1:3]] == [State.HALF_OPEN, State.OPEN]
    assert seen[2].reason.startswith("a probe failed")
    assert breaker.late_results == 4


def test_a_slow_probe_reopens() -> None:
    clock = Clock()
    breaker, seen = make(clock, slow_call_seconds=0.5, min_requests=4)
    for _ in range(4):
        call(breaker, latency=1.0)
    assert state_of(breaker) is State.OPEN
    clock.advance(5)
    breaker.record(breaker.allow(), True, 0.6)
    assert state_of(breaker) is State.OPEN
    assert "a probe took 0.6 s (>= 0.5 s)" in seen[-1].reason


def test_a_released_probe_frees_its_place() -> None:
    clock = Clock()
    breaker, _ = make(clock, half_open_probes=2)
    trip(breaker)
    clock.advance(5)
    first, second = breaker.allow(), breaker.allow()
    assert not breaker.allow().allowed
    breaker.release(first)  # cancelled: counts neither way
    third = breaker.allow()
    assert third.allowed
    breaker.record(second, True, 0.01)
    breaker.record(third, True, 0.01)
    assert state_of(breaker) is State.CLOSED


def test_a_probe_that_never_reports_cannot_wedge_half_open() -> None:
    clock = Clock()
    breaker, seen = make(clock, half_open_probes=2, probe_timeout_seconds=30)
    trip(breaker)
    clock.advance(5)
    lost, fine = breaker.allow(), breaker.allow()  # ``lost`` is never recorded
    breaker.record(fine, True, 0.01)
    clock.advance(29)
    assert breaker.allow().reason == "probes_busy"
    clock.advance(1)
    assert breaker.allow().reason == "breaker_open"
    assert seen[-1].to_state is State.OPEN
    assert seen[-1].reason.startswith("a probe reported nothing for 30 s")
    # it probes again after its (doubled) wait, and can recover
    clock.advance(10)
    probes = [breaker.allow(), breaker.allow()]
    for probe in probes:
        breaker.record(probe, True, 0.01)
    assert state_of(breaker) is State.CLOSED
    breaker.record(lost, True, 0.01)  # turning up at last: late
    assert breaker.late_results == 1


# -- late results ----------------------------------------------------------------------------------


def test_results_from_before_opening_are_ignored_when_they_arrive_late() -> None:
    clock = Clock()
    breaker, seen = make(clock, open_seconds=5, half_open_probes=2, min_requests=20)
    early = [breaker.allow() for _ in range(5)]  # admitted while closed, still running
    trip(breaker)
    retry_at = breaker.snapshot()["retry_at"]
    clock.advance(1)
    breaker.record(early[0], False, 3.0)  # a late failure does not extend the open time
    assert breaker.snapshot()["retry_at"] == retry_at
    assert breaker.snapshot()["failures"] == 20
    clock.advance(4)
    probe = breaker.allow()
    assert state_of(breaker) is State.HALF_OPEN
    breaker.record(early[1], True, 0.01)  # late successes are not probes
    breaker.record(early[2], True, 0.01)
    assert state_of(breaker) is State.HALF_OPEN
    assert breaker.snapshot()["probes_succeeded"] == 0
    breaker.record(early[3], False, 0.01)  # and a late failure does not fail the probing
    assert state_of(breaker) is State.HALF_OPEN
    breaker.release(early[4])  # a late release frees no probe place
    assert breaker.snapshot()["probes_in_flight"] == 1
    breaker.record(probe, True, 0.01)
    breaker.record(breaker.allow(), True, 0.01)
    assert state_of(breaker) is State.CLOSED
    assert breaker.late_results == 4
    assert len(seen) == 3


def test_a_refused_permit_has_no_outcome() -> None:
    breaker, _ = make(Clock())
    trip(breaker)
    refused = breaker.allow()
    with pytest.raises(ValueError, match="refused permit"):
        breaker.record(refused, False, 0.0)
    with pytest.raises(ValueError, match="refused permit"):
        breaker.release(refused)


# -- reporting -------------------------------------------------------------------------------------


def test_snapshot_shows_the_state_the_window_and_the_next_probe() -> None:
    clock = Clock(1000.0)
    breaker, _ = make(clock, min_requests=4, slow_call_seconds=1.0)
    call(breaker, latency=2.0)
    call(breaker, success=False)
    snapshot = breaker.snapshot()
    assert snapshot["state"] == "closed"
    assert (snapshot["calls"], snapshot["failures"], snapshot["slow_calls"]) == (2, 1, 1)
    assert snapshot["failure_rate"] == 0.5
    assert snapshot["opened_at"] is None
    assert snapshot["retry_in"] is None
    call(breaker, success=False)
    call(breaker, success=False)
    clock.advance(2)
    snapshot = breaker.snapshot()
    assert snapshot["state"] == "open"
    assert snapshot["opened_at"] == 1000.0
    assert snapshot["retry_at"] == 1005.0
    assert snapshot["retry_in"] == 3.0
    assert snapshot["open_seconds"] == 5.0
    assert snapshot["opens"] == 1


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker, _ = make(clock, half_open_probes=1)
    with caplog.at_level(logging.INFO, logger="keel.serving._breaker"):
        trip(breaker)
        clock.advance(5)
        breaker.record(breaker.allow(), True, 0.01)
    assert [(r.levelname, r.getMessage().split(": ")[1]) for r in caplog.records] == [
        ("WARNING", "closed -> open"),
        ("INFO", "open -> half_open"),
        ("INFO", "half_open -> closed"),
    ]
    assert "circuit breaker 'churn/3'" in caplog.records[0].getMessage()


def test_a_failing_transition_callback_is_logged_and_the_breaker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(transition: Transition) -> None:
        raise RuntimeError("metrics are down")

    breaker = CircuitBreaker("churn/3", clock=Clock(), on_transition=broken)
    with caplog.at_level(logging.ERROR, logger="keel.serving._breaker"):
        for _ in range(20):
            call(breaker, success=False)
    assert state_of(breaker) is State.OPEN
    assert "on_transition failed" in caplog.text
    assert "metrics are down" in caplog.text


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("window_seconds", 0),
        ("buckets", 0),
        ("min_requests", 0),
        ("error_rate", 0),
        ("error_rate", 1.5),
        ("slow_call_rate", 0),
        ("slow_call_seconds", 0),
        ("open_seconds", 0),
        ("max_open_seconds", 1),
        ("half_open_probes", 0),
        ("probe_timeout_seconds", 0),
    ],
)
def test_bad_settings_are_refused(option: str, value: float) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=option):
        CircuitBreaker("churn/3", **options)


# -- properties ------------------------------------------------------------------------------------

LEGAL = {
    (State.CLOSED, State.OPEN),
    (State.OPEN, State.HALF_OPEN),
    (State.HALF_OPEN, State.OPEN),
    (State.HALF_OPEN, State.CLOSED),
}

operations = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.integers(1, 5), st.booleans(), st.sampled_from([0.1, 2])),
        st.tuples(st.just("allow"), st.integers(1, 4)),
        st.tuples(st.just("record"), st.integers(0, 50), st.booleans(), st.sampled_from([0.1, 2])),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.sampled_from([0.3, 1.0, 2.5, 7.0, 40.0])),
    ),
    min_size=20,
    max_size=150,
)


@settings(max_examples=100, deadline=None)
@given(operations)
def test_any_sequence_keeps_the_breaker_consistent(ops: list[tuple[Any, ...]]) -> None:
    """Whatever happens: only legal transitions, in order; no call allowed while open before
    its wait is over; never more probes out than allowed; the window's totals match its ring."""
    clock = Clock(500.0)
    seen: list[Transition] = []
    probes = 2
    breaker = CircuitBreaker(
        "m/1",
        window_seconds=10,
        buckets=5,
        min_requests=3,
        slow_call_seconds=1.0,
        open_seconds=5,
        max_open_seconds=20,
        half_open_probes=probes,
        probe_timeout_seconds=30,
        clock=clock,
        on_transition=seen.append,
    )
    held: list[Permit] = []
    for op in ops:
        if op[0] in ("allow", "call"):
            for _ in range(op[1]):
                last_open = next((t for t in reversed(seen) if t.to_state is State.OPEN), None)
                must_refuse = (
                    breaker.state is State.OPEN
                    and last_open is not None
                    and clock.now < last_open.at + 5
                )
                permit = breaker.allow()
                if must_refuse:
                    assert not permit.allowed
                    assert permit.reason == "breaker_open"
                if permit.allowed:
                    assert state_of(breaker) is not State.OPEN
                    assert permit.probe == (breaker.state is State.HALF_OPEN)
                    if op[0] == "call":
                        breaker.record(permit, op[2], op[3])
                    else:
                        held.append(permit)
        elif op[0] == "record" and held:
            breaker.record(held.pop(op[1] % len(held)), op[2], op[3])
        elif op[0] == "release" and held:
            breaker.release(held.pop(op[1] % len(held)))
        elif op[0] == "tick":
            clock.advance(op[1])

        state = breaker.state
        snapshot = breaker.snapshot()
        assert state.value == snapshot["state"]
        if state is State.HALF_OPEN:
            # a phase's permits are one shared object: the newest probe permit is this phase's
            phase = next((p for p in reversed(held) if p.probe), None)
            in_flight = 0 if phase is None else sum(p is phase for p in held)
            assert in_flight <= probes
            assert snapshot["probes_in_flight"] <= probes
        if state is State.OPEN:
            assert 5 <= snapshot["open_seconds"] <= 20
        assert 0 <= snapshot["failures"] <= snapshot["calls"]
        assert 0 <= snapshot["slow_calls"] <= snapshot["calls"]

    previous = State.CLOSED
    for transition in seen:
        assert (transition.from_state, transition.to_state) in LEGAL
        assert transition.from_state is previous
        previous = transition.to_state
    assert previous is breaker.state
    opens = [t for t in seen if t.to_state is State.OPEN]
    assert breaker.opens == len(opens)
    for before, after in itertools.pairwise(seen):
        assert before.at <= after.at


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.4, 1.1, 3.3, 12.0])),
        max_size=150,
    )
)
def test_the_window_matches_a_brute_force_count(outcomes: list[tuple[bool, float]]) -> None:
    """With thresholds that never trip, the ring's counts equal a recount of the calls recorded
    in the slices the window covers."""
    clock = Clock(100.0)
    breaker = CircuitBreaker("m/1", window_seconds=6, buckets=3, min_requests=10**6, clock=clock)
    recorded: list[tuple[float, bool]] = []
    for success, step in outcomes:
        clock.advance(step)
        call(breaker, success=success)
        recorded.append((clock.now, success))
        newest = clock.now // 2
        inside = [s for t, s in recorded if newest - t // 2 < 3]
        snapshot = breaker.snapshot()
        assert snapshot["calls"] == len(inside)
        assert snapshot["failures"] == inside.count(False)


def test_a_probe_recorded_twice_is_counted_once() -> None:
    clock = Clock()
    breaker, _ = make(clock, half_open_probes=2)
    trip(breaker)
    clock.advance(5)
    probe = breaker.allow()
    breaker.record(probe, True, 0.01)
    breaker.record(probe, True, 0.01)  # a caller's bug: must not stand for the second probe
    breaker.release(probe)
    assert state_of(breaker) is State.HALF_OPEN
    snapshot = breaker.snapshot()
    assert (snapshot["probes_in_flight"], snapshot["probes_succeeded"]) == (0, 1)
    assert breaker.allow().allowed
