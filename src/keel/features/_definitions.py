"""Feature definitions, written once in Python and used by training and serving alike.

    customer = Entity("customer", join_keys=("customer_id",))

    def spend_features(raw: pd.DataFrame) -> pd.DataFrame:
        return raw.assign(spend_7d_avg=raw["spend_7d"] / 7)

    spend = FeatureView(
        name="customer_spend",
        entities=(customer,),
        source=ParquetSource("data/spend.parquet"),
        timestamp_column="event_time",
        ttl=timedelta(days=30),
        features=(Field("spend_7d", "float"), Field("spend_7d_avg", "float")),
        transformation=spend_features,
    )

    ratio = OnDemandFeature(
        name="basket_ratio",
        inputs=("basket_value", "customer_spend:spend_7d_avg"),
        outputs=(Field("basket_ratio", "float"),),
        function=lambda f: pd.DataFrame({"basket_ratio": f["basket_value"] / f["spend_7d_avg"]}),
    )

A view's ``transformation`` maps source rows (keys, event timestamp, raw columns) to a frame that
holds the keys, the event timestamp and every declared feature; it runs once per source frame,
before the offline join and before materialization, so training and serving read the same
values. An on-demand feature's ``function`` maps a frame holding its inputs to a frame holding its
outputs; the offline join applies it to the training frame and the online lookup to the request,
the same function both times.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from keel.data import Field
from keel.errors import FeatureDefinitionError

Transformation = Callable[[pd.DataFrame], pd.DataFrame]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise FeatureDefinitionError(
            f"{kind} name '{name}' is not valid: use letters, digits and '_', not starting "
            "with a digit"
        )
    return name


# -- sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParquetSource:
    """Feature rows in a Parquet file or directory (read with DuckDB, never fully into pandas
    unless a transformation needs it). A relative ``path`` is relative to ``base_dir``, which
    the definitions loader sets to the directory of ``features.py`` (the current directory
    otherwise); ``base_dir`` is not part of the view's definition, so moving a project does not
    make new view versions."""

    path: str
    base_dir: str | None = field(default=None, compare=False)

    def resolved(self) -> Path:
        path = Path(self.path).expanduser()
        if path.is_absolute() or self.base_dir is None:
            return path
        return Path(self.base_dir) / path

    def describe(self) -> dict[str, Any]:
        return {"kind": "parquet", "path": str(Path(self.path))}


@dataclass(frozen=True)
class SnapshotSource:
    """Feature rows in a keel snapshot, by fingerprint (immutable) or by name (latest)."""

    snapshot: str

    def describe(self) -> dict[str, Any]:
        return {"kind": "snapshot", "snapshot": self.snapshot}


@dataclass(frozen=True, eq=False)
class DataFrameSource:
    """Feature rows held in memory (tests, notebooks, small reference tables)."""

    frame: pd.DataFrame

    def describe(self) -> dict[str, Any]:
        from keel._packaging import fingerprint

        return {"kind": "dataframe", "fingerprint": fingerprint(self.frame)}


FeatureSource = ParquetSource | SnapshotSource | DataFrameSource


# -- definitions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """What features describe, identified by one or more join keys (composite keys allowed)."""

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name)
        if not self.join_keys:
            raise FeatureDefinitionError(f"entity '{self.name}' needs at least one join key")
        for key in self.join_keys:
            _check_name("join key", key)


def _code_hash(function: Callable[..., Any] | None) -> str | None:
    """A hash of a function's source, so a changed transformation makes a new view version."""
    if function is None:
        return None
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # built-ins, lambdas typed at a prompt
        source = getattr(function, "__qualname__", repr(function))
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Features of one or more entities, read from a source with an event timestamp.

    ``ttl``: a feature value older than this at a label's timestamp is not used (null instead).
    ``features``: the columns the view provides after its transformation, with their types.
    """

    name: str
    entities: tuple[Entity, ...]
    source: FeatureSource
    timestamp_column: str
    ttl: timedelta
    features: tuple[Field, ...]
    transformation: Transformation | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        if not self.entities:
            raise FeatureDefinitionError(f"feature view '{self.name}' needs at least one entity")
        if not self.features:
            raise FeatureDefinitionError(f"feature view '{self.name}' declares no features")
        if self.ttl <= timedelta(0):
            raise FeatureDefinitionError(f"feature view '{self.name}' needs a positive ttl")
        reserved = {*self.join_keys, self.timestamp_column}
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise FeatureDefinitionError(
                f"feature view '{self.name}' declares {', '.join(repeated)} more than once"
            )
        for feature in self.features:
            _check_name("feature", feature.name)
            if feature.name in reserved:
                raise FeatureDefinitionError(
                    f"feature view '{self.name}': '{feature.name}' is a join key or the "
                    "timestamp column, not a feature"
                )

    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for entity in self.entities:
            keys += [k for k in entity.join_keys if k not in keys]
        return tuple(keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Field:
        for candidate in self.features:
            if candidate.name == name:
                return candidate
        raise FeatureDefinitionError(
            f"feature view '{self.name}' has no feature '{name}' "
            f"(it has: {', '.join(self.feature_names)})"
        )

    def definition(self) -> dict[str, Any]:
        """What identifies this version of the view (stored in the metadata store)."""
        return {
            "name": self.name,
            "entities": [{"name": e.name, "join_keys": list(e.join_keys)} for e in self.entities],
            "source": self.source.describe(),
            "timestamp_column": self.timestamp_column,
            "ttl_seconds": self.ttl.total_seconds(),
            "features": [f.to_dict() for f in self.features],
            "transformation": _code_hash(self.transformation),
            "description": self.description,
        }

    def definition_hash(self) -> str:
        import json

        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class OnDemandFeature:
    """Features computed from request fields and/or view features at lookup time.

    ``inputs`` are request field names or ``view:feature`` references; ``function`` maps a frame
    with those columns (view features under their bare feature name) to a frame with the
    ``outputs`` columns, row for row.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[Field, ...]
    function: Transformation
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("on-demand feature", self.name)
        if not self.outputs:
            raise FeatureDefinitionError(f"on-demand feature '{self.name}' declares no outputs")

    @property
    def request_fields(self) -> tuple[str, ...]:
        return tuple(i for i in self.inputs if ":" not in i)

    @property
    def view_inputs(self) -> tuple[FeatureRef, ...]:
        return tuple(FeatureRef.parse(i) for i in self.inputs if ":" in i)

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Run the function on ``frame`` and check it returned every output, row for row."""
        result = self.function(frame)
        if isinstance(result, pd.Series):
            result = result.to_frame(self.outputs[0].name if len(self.outputs) == 1 else None)
        missing = [o.name for o in self.outputs if o.name not in result.columns]
        if missing or len(result) != len(frame):
            raise FeatureDefinitionError(
                f"on-demand feature '{self.name}' returned {len(result)} rows with columns "
                f"{list(result.columns)}; expected {len(frame)} rows with {missing or 'outputs'}"
            )
        return result[[o.name for o in self.outputs]].set_axis(frame.index)


@dataclass(frozen=True)
class FeatureRef:
    """``view:feature`` (or ``view:*`` for every feature of the view); an on-demand feature is
    referenced by its name alone."""

    view: str
    feature: str

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        view, sep, feature = text.partition(":")
        if not sep or not view or not feature:
            raise FeatureDefinitionError(
                f"'{text}' is not a feature reference; write VIEW:FEATURE (or VIEW:*)"
            )
        return cls(view, feature)

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


@dataclass
class FeatureCatalog:
    """The definitions a project declares, looked up by name (built from a definitions module or
    by hand; ``FeatureStore.apply`` records them in the metadata store)."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    on_demand: dict[str, OnDemandFeature] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[Entity | FeatureView | OnDemandFeature]) -> FeatureCatalog:
        catalog = cls()
        for item in objects:
            catalog.add(item)
        return catalog

    def add(self, item: Entity | FeatureView | OnDemandFeature) -> None:
        if isinstance(item, FeatureView):
            for entity in item.entities:
                self.add(entity)
            target: dict[str, Any] = self.views
        elif isinstance(item, Entity):
            target = self.entities
        elif isinstance(item, OnDemandFeature):
            target = self.on_demand
        else:
            raise FeatureDefinitionError(
                f"{item!r} is not an Entity, FeatureView or OnDemandFeature"
            )
        existing = target.get(item.name)
        if existing is not None and existing is not item and existing != item:
            raise FeatureDefinitionError(f"two different definitions are named '{item.name}'")
        target[item.name] = item

    def view(self, name: str) -> FeatureView:
        try:
            return self.views[name]
        except KeyError:
            defined = ", ".join(sorted(self.views)) or "none"
            raise FeatureDefinitionError(
                f"no feature view named '{name}' (defined: {defined})"
            ) from None

    def resolve(self, references: Iterable[str]) -> tuple[list[FeatureRef], list[OnDemandFeature]]:
        """Split requested features into view features (``view:*`` expanded) and on-demand
        features, checking every name exists."""
        view_refs: list[FeatureRef] = []
        seen: set[FeatureRef] = set()  # the same references as view_refs, for membership tests
        on_demand: list[OnDemandFeature] = []
        for text in references:
            if ":" not in text:
                if text not in self.on_demand:
                    raise FeatureDefinitionError(
                        f"'{text}' is neither VIEW:FEATURE nor an on-demand feature "
                        f"(on-demand features: {', '.join(sorted(self.on_demand)) or 'none'})"
                    )
                on_demand.append(self.on_demand[text])
                continue
            ref = FeatureRef.parse(text)
            view = self.view(ref.view)
            names = view.feature_names if ref.feature == "*" else (view.feature(ref.feature).name,)
            for name in names:
                each = FeatureRef(view.name, name)
                if each not in seen:
                    seen.add(each)
                    view_refs.append(each)
        for feature in on_demand:  # their view inputs must be fetched too
            for ref in feature.view_inputs:
                self.view(ref.view).feature(ref.feature)
                if ref not in seen:
                    seen.add(ref)
                    view_refs.append(ref)
        return view_refs, on_demand
