"""ArmRouter and routing keys: sticky weighted assignment, its movement guarantees, key extraction.

Statistical checks use bounds with a stated false-alarm probability (``ALPHA``), taken from
the chi-square and binomial distributions, not hand-picked tolerances. The keys are fixed, so
every check is deterministic: a bound that holds today holds on every run.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from keel.errors import InvalidPolicy, KeelError
from keel.serving._policy import Arm, PinnedModel
from keel.serving._routing import ROUTING_HEADER, ArmRouter, key_of_field, routing_header

ALPHA = 1e-6
"""False-alarm probability of each statistical bound on fixed inputs."""
ALPHA_PROPERTY = 1e-9
"""The same for hypothesis tests, which try new weights on every run and up to 30 per test."""

KEYS_100K = [f"user-{i}" for i in range(100_000)]
KEYS_5K = KEYS_100K[:5_000]

weight_lists = st.lists(st.floats(0.05, 20.0), min_size=2, max_size=5)


def assign(router: ArmRouter, keys: Sequence[str]) -> list[int]:
    return [router.choose(key) for key in keys]


def ids_of(router: ArmRouter, keys: Sequence[str]) -> list[str]:
    return [router.ids[router.choose(key)] for key in keys]


def assert_split(counts: Mapping[int, int], shares: Sequence[float], total: int) -> None:
    """Pearson's chi-square over the arms with a share; arms without one must get nothing."""
    live = [i for i, share in enumerate(shares) if share > 0]
    for i, share in enumerate(shares):
        if share == 0:
            assert counts.get(i, 0) == 0, f"arm {i} has weight 0 but got {counts[i]}"
    statistic = sum((counts.get(i, 0) - total * shares[i]) ** 2 / (total * shares[i]) for i in live)
    critical = stats.chi2.isf(ALPHA, len(live) - 1)
    assert statistic < critical, f"chi-square {statistic:.1f} >= {critical:.1f}: {counts}"


def assert_binomial(observed: int, trials: int, p: float, alpha: float = ALPHA) -> None:
    low, high = stats.binom.interval(1 - alpha, trials, p)
    assert low <= observed <= high, f"{observed}/{trials} outside [{low}, {high}] for p={p}"


def pinned(name: str, version: int, uri: str | None = None) -> PinnedModel:
    return PinnedModel(name, version, uri or f"models:/{name}/{version}")


# -- stickiness -------------------------------------------------------------------------------


def test_same_key_gets_the_same_arm_from_separately_built_routers() -> None:
    first = ArmRouter({"a": 0.7, "b": 0.2, "c": 0.1}, salt="churn")
    second = ArmRouter({"a": 0.7, "b": 0.2, "c": 0.1}, salt="churn")
    keys = KEYS_5K
    assert assign(first, keys) == assign(second, keys)
    assert assign(first, keys) == assign(first, keys)


def test_arms_from_a_policy_are_identified_by_their_pinned_version() -> None:
    # The alias a model was set from does not matter, the version it resolved to does.
    by_alias = ArmRouter(
        [Arm(pinned("churn", 3, "models:/churn@champion"), 9), Arm(pinned("churn", 4), 1)]
    )
    by_version = ArmRouter({"models:/churn/3": 90, "models:/churn/4": 10})
    assert by_alias.ids == ("models:/churn/3", "models:/churn/4")
    assert by_alias.weights == pytest.approx((0.9, 0.1))
    assert assign(by_alias, KEYS_5K) == assign(by_version, KEYS_5K)


def test_str_and_utf8_bytes_keys_are_the_same_key() -> None:
    router = ArmRouter({"a": 1, "b": 1, "c": 1})
    for key in ["customer-42", "é", "日本-7", ""]:
        assert router.choose(key) == router.choose(key.encode())


_CHILD = """
from keel.serving._routing import ArmRouter
router = ArmRouter({"control": 5, "treatment": 3, "holdout": 2}, salt="churn")
print(hash("probe"))
print("".join(str(router.choose(f"customer-{i}")) for i in range(10_000)))
"""


def test_10000_keys_get_the_same_arms_in_two_processes_with_different_hash_seeds() -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    outputs = []
    for child in children:
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        outputs.append(stdout.split())
    (hash_one, arms_one), (hash_two, arms_two) = outputs
    assert hash_one != hash_two, "the two processes did not randomise hash() differently"
    assert len(arms_one) == 10_000
    assert arms_one == arms_two
    here = ArmRouter({"control": 5, "treatment": 3, "holdout": 2}, salt="churn")
    assert arms_one == "".join(str(here.choose(f"customer-{i}")) for i in range(10_000))
    assert set(arms_one) == {"0", "1", "2"}


def test_assignments_are_pinned_across_keel_releases() -> None:
    # Changing the hash, its inputs or the score would re-shuffle every live experiment on
    # upgrade: this literal must only change deliberately, with a release note.
    router = ArmRouter({"control": 5, "treatment": 3, "holdout": 2}, salt="churn")
    got = "".join(str(router.choose(f"customer-{i}")) for i in range(40))
    assert got == "0102200001002110000001020020022202010011"


def test_the_salt_splits_the_same_keys_independently() -> None:
    shares = {"a": 0.5, "b": 0.5}
    one = assign(ArmRouter(shares, salt="churn"), KEYS_5K)
    other = assign(ArmRouter(shares, salt="fraud"), KEYS_5K)
    # Independent 50/50 splits agree on a key with probability 1/2.
    assert_binomial(sum(x == y for x, y in zip(one, other, strict=True)), len(KEYS_5K), 0.5)


# -- split --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [(90, 10), (50, 50), (0.7, 0.2, 0.1), (1, 1, 1, 1, 1), (99, 1), (5, 0, 3, 2)],
    ids=str,
)
def test_100000_keys_split_by_weight(weights: tuple[float, ...]) -> None:
    router = ArmRouter({f"arm-{i}": w for i, w in enumerate(weights)})
    counts = Counter(assign(router, KEYS_100K))
    assert_split(counts, router.weights, len(KEYS_100K))


def test_zero_weight_arm_gets_nothing_and_changes_nothing() -> None:
    with_idle = ArmRouter({"a": 6, "idle": 0, "b": 4}, rng=random.Random(7))
    without = ArmRouter({"a": 6, "b": 4})
    keyed = ids_of(with_idle, KEYS_5K)
    assert "idle" not in keyed
    assert keyed == ids_of(without, KEYS_5K)
    assert 1 not in {with_idle.choose(None) for _ in range(10_000)}


def test_a_single_arm_with_weight_takes_everything() -> None:
    router = ArmRouter({"off": 0, "on": 1}, rng=random.Random(1))
    assert set(assign(router, KEYS_5K)) == {1}
    assert {router.choose(None) for _ in range(100)} == {1}


def test_requests_without_a_key_follow_the_weights() -> None:
    router = ArmRouter({"a": 0.7, "b": 0.2, "c": 0.1}, rng=random.Random(2024))
    draws = [router.choose(None) for _ in range(100_000)]
    assert_split(Counter(draws), router.weights, len(draws))
    # An injected generator makes the draws reproducible; they are not sticky per request.
    again = ArmRouter({"a": 0.7, "b": 0.2, "c": 0.1}, rng=random.Random(2024))
    assert [again.choose(None) for _ in range(1_000)] == draws[:1_000]
    assert len(set(draws[:100])) > 1


# -- movement when weights change -------------------------------------------------------------


def test_90_10_to_80_20_moves_about_a_tenth_of_keys_all_from_arm_0_to_arm_1() -> None:
    before = assign(ArmRouter({"stable": 90, "canary": 10}), KEYS_100K)
    after = assign(ArmRouter({"stable": 80, "canary": 20}), KEYS_100K)
    moves = Counter((b, a) for b, a in zip(before, after, strict=True) if b != a)
    assert set(moves) == {(0, 1)}
    # With two arms a key moves iff its race ratio falls between 8/2 and 9/1: probability 0.1.
    assert_binomial(moves[0, 1], len(KEYS_100K), 0.1)


def test_adding_an_arm_only_moves_keys_to_it() -> None:
    before = ids_of(ArmRouter({"a": 60, "b": 40}), KEYS_100K)
    after = ids_of(ArmRouter({"a": 60, "b": 40, "new": 25}), KEYS_100K)
    moves = Counter((b, a) for b, a in zip(before, after, strict=True) if b != a)
    assert set(moves) <= {("a", "new"), ("b", "new")}
    assert_binomial(sum(moves.values()), len(KEYS_100K), 25 / 125)
    # The new arm takes from each old arm in proportion to its share.
    assert_binomial(moves["a", "new"], sum(moves.values()), 0.6)


def test_removing_an_arm_only_moves_its_keys() -> None:
    before = ids_of(ArmRouter({"a": 5, "b": 3, "gone": 2}), KEYS_100K)
    after = ids_of(ArmRouter({"a": 5, "b": 3}), KEYS_100K)
    for b, a in zip(before, after, strict=True):
        assert b == a or b == "gone"
    assert "gone" not in after


@settings(max_examples=30, deadline=None)
@given(
    weights=weight_lists,
    permutation_seed=st.integers(0, 2**32 - 1),
    factor=st.floats(1e-3, 1e3),
)
def test_reordering_or_scaling_the_weights_moves_no_key(
    weights: list[float], permutation_seed: int, factor: float
) -> None:
    arms = {f"arm-{i}": w for i, w in enumerate(weights)}
    order = list(arms)
    random.Random(permutation_seed).shuffle(order)
    reordered = {name: arms[name] for name in order}
    scaled = {name: w * factor for name, w in arms.items()}
    keys = KEYS_5K[:2_000]
    expected = ids_of(ArmRouter(arms), keys)
    assert ids_of(ArmRouter(reordered), keys) == expected
    # Scaling changes the floats a little; a flip would need two scores within an ulp.
    assert ids_of(ArmRouter(scaled), keys) == expected


@settings(max_examples=30, deadline=None)
@given(weights=weight_lists, data=st.data())
def test_changing_one_arms_weight_moves_keys_only_to_or_from_it(
    weights: list[float], data: st.DataObject
) -> None:
    target = data.draw(st.integers(0, len(weights) - 1), label="target")
    new_weight = data.draw(st.floats(0.0, 40.0), label="new weight")
    before_arms = {f"arm-{i}": w for i, w in enumerate(weights)}
    after_arms = {**before_arms, f"arm-{target}": new_weight}
    before_router, after_router = ArmRouter(before_arms), ArmRouter(after_arms)
    before = assign(before_router, KEYS_5K)
    after = assign(after_router, KEYS_5K)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    if new_weight >= weights[target]:
        assert all(a == target for _, a in moved)
    else:
        assert all(b == target for b, _ in moved)
    # The least possible movement: exactly the change in the target's share.
    change = abs(after_router.weights[target] - before_router.weights[target])
    assert_binomial(len(moved), len(KEYS_5K), change, ALPHA_PROPERTY)


@settings(max_examples=30, deadline=None)
@given(weights=st.lists(st.floats(0.5, 20.0), min_size=3, max_size=5), data=st.data())
def test_moving_weight_between_two_arms_of_many(weights: list[float], data: st.DataObject) -> None:
    giver, taker = data.draw(
        st.lists(st.integers(0, len(weights) - 1), min_size=2, max_size=2, unique=True),
        label="giver, taker",
    )
    amount = data.draw(st.floats(0.0, weights[giver]), label="amount")
    after_weights = list(weights)
    after_weights[giver] -= amount
    after_weights[taker] += amount
    before_router = ArmRouter({f"arm-{i}": w for i, w in enumerate(weights)})
    after_router = ArmRouter({f"arm-{i}": w for i, w in enumerate(after_weights)})
    before = assign(before_router, KEYS_5K)
    after = assign(after_router, KEYS_5K)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    # Only the giver's and the taker's scores changed, so a moving key leaves one or joins
    # the other.
    assert all(b == giver or a == taker for b, a in moved)
    # And no more move than the optimal bound for a stateless assignment, 2d / (1 + d).
    d = 0.5 * sum(
        abs(x - y) for x, y in zip(before_router.weights, after_router.weights, strict=True)
    )
    bound = 2 * d / (1 + d)
    assert len(moved) <= stats.binom.ppf(1 - ALPHA_PROPERTY, len(KEYS_5K), bound)


# -- refused arms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "field"),
    [
        ({}, "arms"),
        ({"a": 1, "b": -1}, "arms[1].weight"),
        ({"a": math.nan}, "arms[0].weight"),
        ({"a": math.inf}, "arms[0].weight"),
        ({"a": True}, "arms[0].weight"),
        ({"a": "1"}, "arms[0].weight"),
        ({"a": 0, "b": 0.0}, "arms"),
        ([Arm(pinned("m", 1), 1), Arm(pinned("m", 1, "models:/m@x"), 1)], "arms"),
    ],
    ids=["empty", "negative", "nan", "inf", "bool", "text", "all-zero", "repeated"],
)
def test_arms_that_cannot_route_are_refused(arms: Any, field: str) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        ArmRouter(arms)
    assert caught.value.field == field
    assert isinstance(caught.value, KeelError)


# -- routing keys from a request ---------------------------------------------------------------


def test_the_header_is_stripped_and_an_empty_or_missing_one_is_no_key() -> None:
    assert routing_header({ROUTING_HEADER.encode(): b" abc "}) == "abc"
    assert routing_header({ROUTING_HEADER.encode(): b"  "}) is None
    assert routing_header({b"x-user": b"u-1"}) is None


def test_a_record_without_the_field_has_no_key() -> None:
    assert key_of_field({"other": 7}, "customer_id") is None


def test_header_bytes_decode_as_utf8_else_latin1() -> None:
    assert routing_header({ROUTING_HEADER.encode(): "é".encode()}) == "é"
    assert routing_header({ROUTING_HEADER.encode(): b"\xff"}) == "ÿ"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("7", "7"),
        (7, "7"),
        (7.0, "7"),
        (-3, "-3"),
        (7.5, "7.5"),
        (1e300, str(int(1e300))),
        (True, "true"),
        (False, "false"),
        ("", None),
        (None, None),
        (math.nan, None),
        (-math.inf, None),
        ([1, "a"], '[1,"a"]'),
        ({"b": 1, "a": "é"}, '{"a":"é","b":1}'),
    ],
    ids=repr,
)
def test_field_values_become_canonical_text(value: Any, key: str | None) -> None:
    assert key_of_field({"id": value}, "id") == key


@given(st.integers())
def test_an_integer_id_is_one_key_whether_sent_as_a_number_or_text(number: int) -> None:
    as_number = key_of_field({"id": number}, "id")
    assert as_number == key_of_field({"id": str(number)}, "id")
    if abs(number) < 2**53:
        assert as_number == key_of_field({"id": float(number)}, "id")


def test_a_router_remembers_short_keys_only_and_answers_long_ones_the_same_every_time() -> None:
    router = ArmRouter({"a": 90.0, "b": 10.0}, salt="churn")
    fresh = ArmRouter({"a": 90.0, "b": 10.0}, salt="churn")
    long_keys = [f"{n:0>300}" for n in range(200)]

    first = [router.choose(key) for key in long_keys]
    again = [router.choose(key) for key in long_keys]

    assert first == again == [fresh.choose(key) for key in long_keys]
    assert router._chosen == {}  # clients pick keys: 300-character ones are not kept
    router.choose("customer-42")
    assert list(router._chosen) == ["customer-42"]
