"""Online feature lookups: many entities in one round trip per view, TTL and freshness, the
same on-demand functions as offline, and a sampled record of lookups for the skew check.

    result = get_online_features(
        [{"customer_id": 1, "basket_value": 30.0}, {"customer_id": 2, "basket_value": 12.5}],
        ["customer_spend:spend_7d", "basket_ratio"],
        catalog,
        online_store,
        log=lookup_log,
    )
    result.frame                                    # one row per entity row
    result.freshness["customer_spend"].age_seconds  # per entity row

Rules: a stored value older than its view's TTL at the lookup time (``now``, default the wall
clock) is returned as null with ``fresh=False``, exactly as the offline join leaves a label row
without a value inside the TTL. A row whose event time is *after* ``now`` is used as it is
(clocks differ by milliseconds between writers and servers; refusing such rows would null out
the freshest values), and its age is negative. Columns are named by the bare feature name (an
on-demand feature by its outputs); ``full_names=True`` names view features ``VIEW__FEATURE``.
Column types follow the declared dtype: float → float64 (NaN), int → Int64, bool → boolean,
timestamp → datetime64, string/category → strings; nulls stay nulls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from keel.data import Field
from keel.errors import FeatureDefinitionError
from keel.features._definitions import FeatureCatalog, FeatureRef, FeatureView, OnDemandFeature
from keel.features._lookups import LookupLog, LookupRecord
from keel.features._time import NaiveRule, instant_to_utc
from keel.features.online._base import OnlineStore

EntityRows = Sequence[Mapping[str, Any]] | pd.DataFrame
Request = Mapping[str, Any] | pd.DataFrame


@dataclass(frozen=True)
class ViewFreshness:
    """How old each entity row's values of one view were at the lookup time."""

    view: str
    ttl: timedelta
    event_ns: np.ndarray[Any, np.dtype[np.int64]]
    """Event timestamp of the stored row (ns since the epoch, UTC); ``NO_TIME`` if none."""
    found: np.ndarray[Any, np.dtype[np.bool_]]
    """The store held a row for the entity."""
    fresh: np.ndarray[Any, np.dtype[np.bool_]]
    """A row was found and its age is within the TTL (otherwise its values are null)."""
    age_seconds: np.ndarray[Any, np.dtype[np.float64]]
    """Lookup time minus event time; NaN where no row was found."""

    @property
    def event_timestamps(self) -> pd.Series[Any]:
        return pd.Series(self.event_ns.view("datetime64[ns]")).dt.tz_localize("UTC")


@dataclass(frozen=True)
class OnlineResult:
    """Features for each entity row, and how fresh they were."""

    frame: pd.DataFrame
    freshness: dict[str, ViewFreshness]
    at: pd.Timestamp
    """The lookup time the TTL was applied at (UTC)."""


class OnlineFeatures:
    """One list of features, resolved once and looked up per request (what a server keeps).

        lookup = OnlineFeatures(catalog, store, ["customer_spend:*", "basket_ratio"], log=log)
        result = lookup.get([{"customer_id": 1, "basket_value": 30.0}])

    The catalog's definitions are read when the object is built: build a new one after the
    catalog changes. Each :meth:`get` reads every view once (all entity rows in one round
    trip), applies TTLs at ``now``, computes on-demand features and, for a sampled fraction of
    calls (or as ``record`` says), queues a record on ``log``.
    """

    def __init__(
        self,
        catalog: FeatureCatalog,
        online_store: OnlineStore,
        features: Sequence[str],
        *,
        full_names: bool = False,
        log: LookupLog | None = None,
        naive: NaiveRule = "reject",
    ) -> None:
        self.store = online_store
        self.features = list(features)
        self.log = log
        self.naive = naive
        view_refs, self._on_demand = catalog.resolve(features)
        by_view: dict[str, list[str]] = {}
        for ref in view_refs:
            by_view.setdefault(ref.view, []).append(ref.feature)
        self._views = [(catalog.view(name), names) for name, names in by_view.items()]
        self._fields = {ref: catalog.view(ref.view).feature(ref.feature) for ref in view_refs}
        self._columns = _requested_view_columns(features, catalog, full_names)
        self._outputs = [o.name for f in _requested_on_demand(features, catalog) for o in f.outputs]
        clash = {name for name, _ in self._columns} & set(self._outputs)
        if clash:
            raise FeatureDefinitionError(
                f"on-demand output '{sorted(clash)[0]}' has the name of a requested view feature"
            )
        self._labels = pd.Index(
            [*(name for name, _ in self._columns), *self._outputs], dtype=object
        )
        # the common case, only float view features: the frame is built as one 2-D block
        self._all_float = not self._outputs and all(
            self._fields[ref].dtype == "float" for _, ref in self._columns
        )

    def get(
        self,
        entity_rows: EntityRows,
        *,
        request: Request | None = None,
        now: datetime | None = None,
        record: bool | None = None,
    ) -> OnlineResult:
        """Features for each entity row (join keys, and request fields if any); ``request``
        adds request fields: a scalar applies to every row, a sequence or frame gives one value
        per row. ``record`` decides whether the call is recorded on ``log``: None samples it at
        the log's rate, True records it whatever the rate, False never records it."""
        at_ns = time.time_ns() if now is None else instant_to_utc(now, "now", self.naive).value
        rows = _Rows(entity_rows)
        values: dict[FeatureRef, list[Any]] = {}
        freshness: dict[str, ViewFreshness] = {}
        for view, names in self._views:
            stored = self.store.read(view.name, rows.keys(view), names)
            fresh = freshness[view.name] = _freshness(view, stored.event_ns, stored.found, at_ns)
            stale = np.flatnonzero(stored.found & ~fresh.fresh).tolist()
            for name in names:
                column = stored.columns[name]
                for index in stale:
                    column[index] = None
                values[FeatureRef(view.name, name)] = column

        request_columns: dict[str, list[Any]] = {}
        computed: dict[str, Any] = {}
        for feature in self._on_demand:
            inputs: dict[str, Any] = {}
            for field in feature.request_fields:
                request_columns[field] = rows.request_field(field, request, feature)
                inputs[field] = request_columns[field]
            for ref in feature.view_inputs:
                inputs[ref.feature] = _typed(values[ref], self._fields[ref])
            outputs = feature.apply(pd.DataFrame(inputs, index=rows.index))
            for output in feature.outputs:
                computed[output.name] = outputs[output.name].to_numpy()

        if self._all_float:
            block = np.array([values[ref] for _, ref in self._columns], dtype=np.float64)
            frame = pd.DataFrame(
                block.reshape(len(self._columns), rows.count).T,
                columns=self._labels,
                index=rows.index,
            )
        else:
            arrays = [_typed(values[ref], self._fields[ref]) for _, ref in self._columns]
            arrays += [computed[name] for name in self._outputs]
            frame = pd.DataFrame(dict(enumerate(arrays)), index=rows.index)
            frame.columns = self._labels
        at = pd.Timestamp(at_ns, unit="ns", tz="UTC")

        if self.log is not None and (self.log.sampled() if record is None else record):
            self.log.record(
                LookupRecord(
                    at=at,
                    requested=self.features,
                    entity={k: rows.column(k) for v, _ in self._views for k in v.join_keys},
                    request=request_columns,
                    features={
                        **{str(ref): column for ref, column in values.items()},
                        **{name: array.tolist() for name, array in computed.items()},
                    },
                    event_ns={name: fresh.event_ns for name, fresh in freshness.items()},
                    fresh={name: fresh.fresh for name, fresh in freshness.items()},
                )
            )
        return OnlineResult(frame=frame, freshness=freshness, at=at)


def get_online_features(
    entity_rows: EntityRows,
    features: Sequence[str],
    catalog: FeatureCatalog,
    online_store: OnlineStore,
    *,
    request: Request | None = None,
    now: datetime | None = None,
    full_names: bool = False,
    log: LookupLog | None = None,
    record: bool | None = None,
    naive: NaiveRule = "reject",
) -> OnlineResult:
    """Look up ``features`` (``view:feature``, ``view:*`` or on-demand names) for each entity
    row, once: :class:`OnlineFeatures` resolves the features and keeps the plan for repeated
    lookups of the same features, which a server should use instead. ``record`` is as in
    :meth:`OnlineFeatures.get` (None: sampled at ``log``'s rate)."""
    lookup = OnlineFeatures(
        catalog, online_store, features, full_names=full_names, log=log, naive=naive
    )
    return lookup.get(entity_rows, request=request, now=now, record=record)


def _freshness(
    view: FeatureView,
    event_ns: np.ndarray[Any, np.dtype[np.int64]],
    found: np.ndarray[Any, np.dtype[np.bool_]],
    at_ns: int,
) -> ViewFreshness:
    ttl_ns = (view.ttl // timedelta(microseconds=1)) * 1000
    age_ns = at_ns - np.where(found, event_ns, at_ns)  # no overflow from the NO_TIME sentinel
    fresh = found & (age_ns <= ttl_ns)
    age_seconds = np.where(found, age_ns / 1e9, np.nan)
    return ViewFreshness(view.name, view.ttl, event_ns, found, fresh, age_seconds)


def _requested_view_columns(
    features: Sequence[str], catalog: FeatureCatalog, full_names: bool
) -> list[tuple[str, FeatureRef]]:
    """(column name, reference) of every requested view feature, in the order asked."""
    named: dict[str, FeatureRef] = {}
    for text in features:
        if ":" not in text:
            continue
        ref = FeatureRef.parse(text)
        view = catalog.view(ref.view)
        for name in view.feature_names if ref.feature == "*" else (ref.feature,):
            each = FeatureRef(view.name, name)
            column = f"{view.name}__{name}" if full_names else name
            if named.get(column, each) != each:
                raise FeatureDefinitionError(
                    f"'{named[column]}' and '{each}' would both be column '{column}'; "
                    "pass full_names=True to name columns VIEW__FEATURE"
                )
            named[column] = each
    return list(named.items())


def _requested_on_demand(features: Sequence[str], catalog: FeatureCatalog) -> list[OnDemandFeature]:
    wanted = [catalog.on_demand[text] for text in features if ":" not in text]
    return list({feature.name: feature for feature in wanted}.values())


def _typed(values: list[Any], field: Field) -> Any:
    """One column in the pandas type of its declared dtype (nulls kept as nulls); values of
    another type (a row written by an older view version) are kept as they are."""
    try:
        if field.dtype == "float":
            return np.array(values, dtype=np.float64)
        if field.dtype == "int":
            return pd.array(values, dtype="Int64")
        if field.dtype == "bool":
            return pd.array(values, dtype="boolean")
        present = [value for value in values if value is not None]
        if field.dtype == "timestamp" and all(
            isinstance(value, pd.Timestamp) and value.tzinfo is not None for value in present
        ):
            return pd.array(values, dtype="datetime64[ns, UTC]")
        if field.dtype in ("string", "category") and all(isinstance(v, str) for v in present):
            return pd.array(values, dtype="str")
    except (TypeError, ValueError):
        pass
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


class _Rows:
    """Entity rows given as a list of dicts or as a frame, read column by column."""

    def __init__(self, entity_rows: EntityRows) -> None:
        if isinstance(entity_rows, pd.DataFrame):
            self.frame: pd.DataFrame | None = entity_rows
            self.records: Sequence[Mapping[str, Any]] = ()
            self.index: pd.Index[Any] = entity_rows.index
            self.count = len(entity_rows)
        elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str | bytes):
            if not all(type(row) is dict or isinstance(row, Mapping) for row in entity_rows):
                raise FeatureDefinitionError(
                    "entity rows must be a DataFrame or a list of dicts (one per entity)"
                )
            self.frame = None
            self.records = entity_rows
            self.index = pd.RangeIndex(len(entity_rows))
            self.count = len(entity_rows)
        else:
            raise FeatureDefinitionError(
                f"entity rows must be a DataFrame or a list of dicts, not "
                f"{type(entity_rows).__name__}"
            )

    def has(self, name: str) -> bool:
        if self.frame is not None:
            return name in self.frame.columns
        return bool(self.records) and all(name in row for row in self.records)

    def column(self, name: str) -> list[Any]:
        if self.frame is not None:
            return list(self.frame[name].tolist()) if name in self.frame.columns else []
        return [row.get(name) for row in self.records]

    def keys(self, view: FeatureView) -> list[tuple[Any, ...]]:
        join_keys = view.join_keys
        for key in join_keys:
            if self.count and not self.has(key):
                raise FeatureDefinitionError(
                    f"entity rows lack join key '{key}', which view '{view.name}' needs"
                )
        if len(join_keys) == 1:
            return [(value,) for value in self.column(join_keys[0])]
        return list(zip(*(self.column(key) for key in join_keys), strict=True))

    def request_field(
        self, name: str, request: Request | None, feature: OnDemandFeature
    ) -> list[Any]:
        if isinstance(request, pd.DataFrame) and name in request.columns:
            if len(request) != self.count:
                raise FeatureDefinitionError(
                    f"the request frame has {len(request)} rows for {self.count} entity rows"
                )
            return list(request[name].tolist())
        if isinstance(request, Mapping) and name in request:
            value = request[name]
            if isinstance(value, str | bytes) or not isinstance(
                value, Sequence | np.ndarray | pd.Series
            ):
                return [value] * self.count
            if len(value) != self.count:
                raise FeatureDefinitionError(
                    f"request field '{name}' has {len(value)} values for {self.count} entity rows"
                )
            return list(value)
        if not self.count or self.has(name):
            return self.column(name)
        raise FeatureDefinitionError(
            f"on-demand feature '{feature.name}' needs request field '{name}', which neither the "
            "entity rows nor the request carry"
        )
