"""Sticky weighted traffic assignment: which arm of a revision's split answers a request.

A request that carries a routing key (a header, or a field of the record: see
:func:`routing_header` and :func:`key_of_field`) always lands on the same arm: in every
process, after every restart and whatever ``PYTHONHASHSEED`` is, because the assignment is a
pure function of the key, the arms' identities and their weights, computed with blake2b
(never Python's randomised ``hash()``). A request without a key is split by weight at random,
independently per request.

The assignment is *weighted rendezvous hashing* in its exponential-race form: for a key ``k``
and an arm ``i`` of normalised weight ``p_i``, ``u_i = blake2b(k, arm i)`` mapped into (0, 1)
and the arm with the smallest ``-ln(u_i) / p_i`` wins. ``-ln(u_i)`` is an Exp(1) variable, so
``-ln(u_i) / p_i`` is Exp(``p_i``) and arm ``i`` wins the race with probability exactly ``p_i``.
Each arm's score depends only on the key, that arm's identity and that arm's weight, which
gives the movement guarantees (keys are "moved" when the same key gets another arm):

* Raising one arm's weight only moves keys *to* it; lowering it only moves keys *away* from
  it; adding an arm only moves keys to the new arm, removing one only moves that arm's keys.
  In each case the share of keys expected to move is the change in that arm's share, the
  least any assignment can move.
* With two arms, any change of weights (90/10 → 80/20) moves keys one way only, and the
  share that changed (10 %, in expectation): the minimum.
* Moving weight from arm A to arm B with three or more arms: every key that moves either
  leaves A or arrives at B (the other arms' scores do not change), and the share moved is at
  most ``2d / (1 + d)`` for a change of ``d`` in total variation (0.1 → at most 18 %). No
  stateless assignment can do better for every change (Bavarian et al., "Optimality of
  correlated sampling strategies", 2016); exactly ``d`` would need a record of past revisions.
* Reordering the arms moves no key, nor does scaling every weight by the same factor (short
  of a floating-point tie between two scores, some 1e-16 per key).

An arm's identity is its pinned model (``models:/churn/3``), so a weight change or an added
arm keeps every other key where it was, while replacing an arm's model version is a removal
plus an addition. ``salt`` (the endpoint's name, say) makes different endpoints split the same
keys independently. Choosing is O(n) in the n arms with a weight: one blake2b digest and one
``log`` each, some 0.7 µs per arm (2 µs for a 90/10 split); splits have two to five arms,
and an O(1) or O(log n) lookup table over a hash would give up the movement guarantees, which
matter more than a microsecond here. A router remembers the arm of the last keys it chose
for (up to :data:`_REMEMBERED` of them; the answer is a pure function, so remembering it
changes nothing but the cost: a returning user is one dictionary lookup). Keyless requests
bisect the cumulative weights.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import numbers
import random
from collections.abc import Mapping, Sequence
from typing import Any

from keel.errors import InvalidPolicy
from keel.serving._policy import Arm

ROUTING_HEADER = "x-keel-routing-key"
"""The request header that carries a routing key unless the endpoint names another."""

_PERSON = b"keel-arm-router"  # blake2b personalisation: these hashes mean nothing elsewhere
_SCALE = 2.0**-53
_HEADER_NAME = ROUTING_HEADER.encode()
_REMEMBERED = 65_536
"""Keys whose arm a router keeps (then forgets them all and starts again: no LRU bookkeeping
on the request path, and a bound on memory whatever the keys' cardinality)."""
_REMEMBERED_LENGTH = 256
"""Longer keys are chosen for each time, not kept: clients choose keys, so 65,536 of them of
a header's full length must not become memory the server holds."""


class ArmRouter:
    """The arm each request goes to, for one revision's weighted split; build once per revision.

        router = ArmRouter(policy.arms, salt="churn")
        index = router.choose("customer-42")      # same arm in every process, every restart
        policy.arms[index].model, router.ids[index]
        router.choose(None)                       # no key: a random arm, by weight

    ``arms`` is the policy's arms, or a mapping from arm id to weight (the ids then stand in
    for the pinned models). Weights are proportions: only their ratios matter, and an arm of
    weight 0 gets no request. ``rng`` draws the arm of requests without a key (a
    ``random.Random`` seeded from the OS unless one is given, for tests).
    """

    def __init__(
        self,
        arms: Sequence[Arm] | Mapping[str, float],
        *,
        salt: str = "",
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(arms, Mapping):
            ids = [str(arm_id) for arm_id in arms]
            weights = list(arms.values())
        else:
            ids = [arm.model.pinned_uri for arm in arms]
            weights = [arm.weight for arm in arms]
        if not ids:
            raise InvalidPolicy("arms", "must hold at least one arm to route traffic to")
        for index, weight in enumerate(weights):
            if (
                not isinstance(weight, int | float)
                or isinstance(weight, bool)
                or not math.isfinite(weight)
                or weight < 0
            ):
                raise InvalidPolicy(
                    f"arms[{index}].weight", f"must be a number >= 0, not {weight!r}"
                )
        if len(set(ids)) != len(ids):
            raise InvalidPolicy("arms", f"repeat an arm: {', '.join(ids)}")
        total = math.fsum(weights)
        if total <= 0:
            raise InvalidPolicy("arms", "have no weight: at least one must be > 0")
        self.ids: tuple[str, ...] = tuple(ids)
        """Each arm's identity, in the order given: what ``choose`` indexes and hashes."""
        self.weights: tuple[float, ...] = tuple(weight / total for weight in weights)
        """Each arm's share of traffic (the weights normalised to sum to 1)."""
        self.salt = salt
        self._rng = rng if rng is not None else random.Random()
        live = [index for index, share in enumerate(self.weights) if share > 0]
        self._live = tuple(live)
        # Per arm with weight: a blake2b state keyed by (salt, arm id), copied for each key,
        # and 1 / weight, so a score is one digest, one log and one multiplication. The raw
        # weight, not the share: an arm's score then does not change, to the last bit, when
        # another arm's weight does, so "keys move only to or from the changed arm" is exact.
        self._racers = tuple(
            (index, _keyed_state(salt, self.ids[index]), 1.0 / weights[index]) for index in live
        )
        # Keyless draws: cumulative shares of the arms with weight, the last one exactly 1.
        cumulative: list[float] = []
        running = 0.0
        for index in live:
            running += self.weights[index]
            cumulative.append(running)
        cumulative[-1] = 1.0
        self._cumulative = tuple(cumulative)
        self._chosen: dict[str | bytes, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        split = ", ".join(f"{i}={w:.4g}" for i, w in zip(self.ids, self.weights, strict=True))
        return f"ArmRouter({split}, salt={self.salt!r})"

    def choose(self, key: str | bytes | None) -> int:
        """The index of the arm that answers a request with routing key ``key``.

        Called once per request (or per record, when the key is a field of each record).
        The same key always gives the same index for the same arms and weights; ``None``
        (a request without a key) draws an arm at random by weight, independently each call.
        """
        if key is None:
            return self._draw()
        chosen = self._chosen.get(key)
        if chosen is not None:
            return chosen
        if len(self._live) == 1:
            return self._live[0]
        data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
        best = self._live[0]
        best_score = math.inf
        for index, state, inverse_weight in self._racers:
            hasher = state.copy()
            hasher.update(data)
            # The top 53 bits as u in (0, 1): never 0, never 1, so -ln(u) is finite and > 0.
            u = ((int.from_bytes(hasher.digest(), "big") >> 11) + 0.5) * _SCALE
            score = -math.log(u) * inverse_weight
            if score < best_score:
                best, best_score = index, score
        if len(key) <= _REMEMBERED_LENGTH:
            if len(self._chosen) >= _REMEMBERED:
                self._chosen.clear()
            self._chosen[key] = best
        return best

    def _draw(self) -> int:
        if len(self._live) == 1:
            return self._live[0]
        position = bisect.bisect_right(self._cumulative, self._rng.random())
        return self._live[min(position, len(self._live) - 1)]


def _keyed_state(salt: str, arm_id: str) -> hashlib.blake2b:
    # Length-prefixed, so ("a", "bc") and ("ab", "c") are different arms.
    material = b"".join(
        len(part).to_bytes(4, "big") + part for part in (salt.encode(), arm_id.encode())
    )
    secret = hashlib.blake2b(material, digest_size=32, person=_PERSON).digest()
    return hashlib.blake2b(digest_size=8, key=secret, person=_PERSON)


def routing_header(headers: Mapping[bytes, bytes]) -> str | None:
    """The routing key a request's ``X-Keel-Routing-Key`` header gives, from its ASGI headers
    as a dictionary (names lower-case, as ASGI gives them). The value is decoded as UTF-8
    (Latin-1 if it is not valid UTF-8) and stripped of surrounding blanks; an empty value is no
    key, so clients that send an empty header are split at random rather than all sent to one
    arm. A request's header wins over the endpoint's ``routing_field`` (the dataplane asks
    :func:`key_of_field` only without one)."""
    raw = headers.get(_HEADER_NAME)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        return raw.decode("latin-1").strip() or None


def key_of_field(record: Mapping[str, Any], field: str) -> str | None:
    """The routing key ``record[field]`` gives: its canonical text, so one customer gets one
    arm however a client typed its id. A string is itself; an integer, or a float with an
    integral value, is its decimal digits (``7``, ``7.0`` and ``"7"`` are one key); another
    finite float is its shortest round-trip text (``7.5``); a boolean is ``true`` / ``false``;
    a list or object is its compact JSON with sorted keys. ``None``, NaN, infinities and the
    empty string are no key."""
    return _canonical(record.get(field))


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
