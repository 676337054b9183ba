"""The traffic policy of a deployment revision: which model versions an endpoint serves, and how.

Its shape already holds what gradual rollouts need (shadows, weighted arms, a fallback) next to
the primary version and the per-endpoint serving options; it is checked when it is built and
round-trips through JSON unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keel.errors import InvalidPolicy

OPTIONS = (
    "cache",
    "features",
    "max_batch_size",
    "max_batch_wait_ms",
    "routing_field",
    "timeout_ms",
)
"""The per-endpoint serving options ``create_endpoint`` and ``set`` accept as keywords."""


@dataclass(frozen=True)
class PinnedModel:
    """A model version an endpoint serves, pinned when the policy was set.

        PinnedModel(name="churn", version=3, uri="models:/churn@champion")

    ``uri`` is what it was set from and ``version`` what that resolved to at the time. A
    revision always serves exactly its pinned versions; when an alias it was set from moves,
    the serving processes write the next revision, re-pinned (``follow_aliases``), so what
    served when stays on record. A version URI never moves.
    """

    name: str
    version: int
    uri: str

    @property
    def pinned_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "uri": self.uri}


@dataclass(frozen=True)
class Arm:
    """One side of a weighted split: ``model`` gets ``weight`` / (sum of weights) of traffic
    (an arm of weight 0 stays loaded and gets none: a rollout can drain an arm, then refill it,
    without a load)."""

    model: PinnedModel
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "weight": self.weight}


@dataclass(frozen=True)
class DefaultPrediction:
    """A fixed answer served when every model fails (any JSON value)."""

    value: Any


@dataclass(frozen=True)
class TrafficPolicy:
    """What an endpoint serves and how; immutable, validated on construction.

        policy = TrafficPolicy(primary=PinnedModel("churn", 3, "models:/churn@champion"))
        policy = dataclasses.replace(policy, max_batch_size=64)   # validated again
        TrafficPolicy.from_dict(policy.to_dict()) == policy      # JSON round trip

    ``primary`` answers requests (unless ``arms`` split traffic by weight); ``shadows`` receive a
    copy of every request in the background, their answers logged, never returned; ``fallback``
    answers when the models cannot. A request's arm is chosen by its routing key: the
    ``X-Keel-Routing-Key`` header, else the ``routing_field`` of its first record (None: no
    field), else a random draw by weight.
    Batching groups concurrent requests up to ``max_batch_size`` rows or ``max_batch_wait_ms``
    (0 turns it off); ``timeout_ms`` bounds a prediction (None: no bound); ``features`` lets
    requests carry only entity keys, the rest being looked up in the feature store; ``cache``
    answers a record the same model version has already answered from the prediction cache.
    """

    primary: PinnedModel
    shadows: tuple[PinnedModel, ...] = ()
    arms: tuple[Arm, ...] = ()
    fallback: PinnedModel | DefaultPrediction | None = None
    max_batch_size: int = 32
    max_batch_wait_ms: float = 2.0
    timeout_ms: int | None = None
    features: bool = False
    cache: bool = False
    routing_field: str | None = None

    def __post_init__(self) -> None:
        # Sequences are accepted and frozen into tuples, so equal policies compare equal.
        object.__setattr__(self, "shadows", tuple(self.shadows))
        object.__setattr__(self, "arms", tuple(self.arms))
        _check_model("primary", self.primary)
        seen = {(self.primary.name, self.primary.version)}
        for index, shadow in enumerate(self.shadows):
            _check_model(f"shadows[{index}]", shadow)
            if (shadow.name, shadow.version) in seen:
                raise InvalidPolicy(
                    f"shadows[{index}]", f"repeats {shadow.pinned_uri}, already served"
                )
            seen.add((shadow.name, shadow.version))
        armed: set[tuple[str, int]] = set()
        for index, arm in enumerate(self.arms):
            if not isinstance(arm, Arm):
                raise InvalidPolicy(f"arms[{index}]", f"must be an Arm, not {arm!r}")
            _check_model(f"arms[{index}].model", arm.model)
            if not _is_number(arm.weight) or arm.weight < 0:
                raise InvalidPolicy(
                    f"arms[{index}].weight", f"must be a number >= 0, not {arm.weight!r}"
                )
            if (arm.model.name, arm.model.version) in armed:
                raise InvalidPolicy(f"arms[{index}]", f"repeats {arm.model.pinned_uri}")
            armed.add((arm.model.name, arm.model.version))
        if self.arms and not any(arm.weight > 0 for arm in self.arms):
            raise InvalidPolicy("arms", "have no weight: at least one arm must weigh > 0")
        if isinstance(self.fallback, PinnedModel):
            _check_model("fallback", self.fallback)
        elif isinstance(self.fallback, DefaultPrediction):
            try:
                json.dumps(self.fallback.value, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise InvalidPolicy("fallback", f"must be a JSON value ({error})") from None
        elif self.fallback is not None:
            raise InvalidPolicy(
                "fallback",
                f"must be a PinnedModel, a DefaultPrediction or None, not {self.fallback!r}",
            )
        if not _is_int(self.max_batch_size) or self.max_batch_size < 1:
            raise InvalidPolicy(
                "max_batch_size", f"must be a whole number >= 1, not {self.max_batch_size!r}"
            )
        if not _is_number(self.max_batch_wait_ms) or self.max_batch_wait_ms < 0:
            raise InvalidPolicy(
                "max_batch_wait_ms",
                f"must be a number of milliseconds >= 0 (0 turns batching off), "
                f"not {self.max_batch_wait_ms!r}",
            )
        object.__setattr__(self, "max_batch_wait_ms", float(self.max_batch_wait_ms))
        if self.timeout_ms is not None and (not _is_int(self.timeout_ms) or self.timeout_ms < 1):
            raise InvalidPolicy(
                "timeout_ms",
                f"must be a whole number of milliseconds >= 1, or None for no timeout, "
                f"not {self.timeout_ms!r}",
            )
        if not isinstance(self.features, bool):
            raise InvalidPolicy("features", f"must be true or false, not {self.features!r}")
        if not isinstance(self.cache, bool):
            raise InvalidPolicy("cache", f"must be true or false, not {self.cache!r}")
        if self.routing_field is not None and (
            not isinstance(self.routing_field, str) or not self.routing_field
        ):
            raise InvalidPolicy(
                "routing_field",
                f"must be the name of a request field, or None, not {self.routing_field!r}",
            )
        if self.cache and self.features:
            raise InvalidPolicy(
                "cache",
                "cannot be on with features: a request carries only entity keys, while the "
                "features looked up for them change, so a cached answer would go stale",
            )

    def with_options(self, **options: Any) -> TrafficPolicy:
        """A copy with serving options changed (see :data:`OPTIONS`); unknown names refused."""
        for key in options:
            if key not in OPTIONS:
                raise InvalidPolicy(key, f"is not a serving option (known: {', '.join(OPTIONS)})")
        return dataclasses.replace(self, **options) if options else self

    def models(self) -> list[PinnedModel]:
        """Every model version the policy refers to: primary, shadows, arms, fallback."""
        found = [self.primary, *self.shadows, *(arm.model for arm in self.arms)]
        if isinstance(self.fallback, PinnedModel):
            found.append(self.fallback)
        return found

    def map_models(self, change: Callable[[PinnedModel], PinnedModel]) -> TrafficPolicy:
        """A copy with every model (primary, shadows, arms, fallback) replaced by
        ``change(model)``, validated again."""
        fallback = self.fallback
        return dataclasses.replace(
            self,
            primary=change(self.primary),
            shadows=tuple(change(shadow) for shadow in self.shadows),
            arms=tuple(Arm(model=change(arm.model), weight=arm.weight) for arm in self.arms),
            fallback=change(fallback) if isinstance(fallback, PinnedModel) else fallback,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back to an equal policy."""
        fallback: dict[str, Any] | None = None
        if isinstance(self.fallback, PinnedModel):
            fallback = {"model": self.fallback.to_dict()}
        elif isinstance(self.fallback, DefaultPrediction):
            fallback = {"prediction": self.fallback.value}
        return {
            "primary": self.primary.to_dict(),
            "shadows": [shadow.to_dict() for shadow in self.shadows],
            "arms": [arm.to_dict() for arm in self.arms],
            "fallback": fallback,
            "max_batch_size": self.max_batch_size,
            "max_batch_wait_ms": self.max_batch_wait_ms,
            "timeout_ms": self.timeout_ms,
            "features": self.features,
            "cache": self.cache,
            "routing_field": self.routing_field,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficPolicy:
        if not isinstance(data, Mapping):
            raise InvalidPolicy("policy", f"must be a JSON object, not {data!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                raise InvalidPolicy(key, f"is not a policy field (known: {', '.join(known)})")
        if "primary" not in data:
            raise InvalidPolicy("primary", "is missing")
        values = dict(data)
        values["primary"] = _model_from("primary", data["primary"])
        values["shadows"] = tuple(
            _model_from(f"shadows[{i}]", item) for i, item in enumerate(_list("shadows", data))
        )
        values["arms"] = tuple(
            _arm_from(f"arms[{i}]", item) for i, item in enumerate(_list("arms", data))
        )
        values["fallback"] = _fallback_from(data.get("fallback"))
        return cls(**values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_model(path: str, model: object) -> None:
    if not isinstance(model, PinnedModel):
        raise InvalidPolicy(path, f"must be a PinnedModel, not {model!r}")
    if not isinstance(model.name, str) or not model.name:
        raise InvalidPolicy(f"{path}.name", f"must be a model name, not {model.name!r}")
    if not _is_int(model.version) or model.version < 1:
        raise InvalidPolicy(f"{path}.version", f"must be a version >= 1, not {model.version!r}")
    if not isinstance(model.uri, str) or not model.uri.startswith("models:/"):
        raise InvalidPolicy(f"{path}.uri", f"must be a models:/ URI, not {model.uri!r}")


def _list(key: str, data: Mapping[str, Any]) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise InvalidPolicy(key, f"must be a list, not {value!r}")
    return list(value)


def _model_from(path: str, value: Any) -> PinnedModel:
    if not isinstance(value, Mapping) or set(value) != {"name", "version", "uri"}:
        raise InvalidPolicy(path, f"must be an object with name, version and uri, not {value!r}")
    return PinnedModel(name=value["name"], version=value["version"], uri=value["uri"])


def _arm_from(path: str, value: Any) -> Arm:
    if not isinstance(value, Mapping) or set(value) != {"model", "weight"}:
        raise InvalidPolicy(path, f"must be an object with model and weight, not {value!r}")
    return Arm(model=_model_from(f"{path}.model", value["model"]), weight=value["weight"])


def _fallback_from(value: Any) -> PinnedModel | DefaultPrediction | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) == {"model"}:
        return _model_from("fallback.model", value["model"])
    if isinstance(value, Mapping) and set(value) == {"prediction"}:
        return DefaultPrediction(value["prediction"])
    raise InvalidPolicy(
        "fallback", f"must be {{'model': ...}} or {{'prediction': ...}}, not {value!r}"
    )
