"""Training frames joined point in time: each label row gets the features as they were then.

    frame = get_training_frame(
        labels,  # join keys, an event timestamp, the targets
        ["customer_spend:spend_7d", "customer_profile:*", "basket_ratio"],
        catalog,
    )

The contract, for every label row and every feature view it needs:

* **As of the label's time, never after.** The features come from the latest view row with the
  same join keys and ``view_ts <= label_ts`` (a row stamped exactly at the label's time counts).
* **Within the TTL.** That row is used only if ``label_ts - view_ts <= view.ttl`` (the boundary
  counts); otherwise the label gets nulls, as it does when its entity has no row at all.
* **Every label row, once, in order.** The result holds the label rows in the label order with
  the label index, all label columns unchanged, then the requested view features, then the
  on-demand features, then a boolean ``<view>__found`` column per view joined, True when a row
  within the TTL was found: a null feature with ``found`` True is a null value in that row, with
  ``found`` False a missing row.
* **Names.** A feature column is named by the bare feature name; when two requested views provide
  the same name, both become ``<view>__<feature>``. A name that clashes with a label column or
  another output column is a :class:`FeatureDefinitionError`.
* **Types.** Feature columns come out as their declared type: float → float64 (NaN when null),
  int → Int64, bool → boolean, string → pandas' string type, category → category,
  timestamp → datetime64[ns, UTC]. Values that do not fit it are a FeatureDefinitionError.
* **Time zones** (see ``_time``). Label and event timestamps are compared in UTC; naive values
  are refused unless ``naive="utc"``. A label row without a timestamp is a TimestampError.
* **Keys.** The labels hold every join key of every view joined, or FeatureDefinitionError names
  the missing one. Integers of any width match; a float label key matches integer view keys if
  every value is whole (an int column with missing values); integers against strings, or any
  other mix, are a FeatureDefinitionError. A null label key matches nothing; view rows with a
  null key or event timestamp never match.
* **Duplicates.** Two view rows with one entity key and one event timestamp make the answer
  arbitrary: FeatureStoreError from ``_sources.check_unique_keys``.
* **On-demand features** run after the join through ``OnDemandFeature.apply`` (the function the
  online lookup runs) on their request fields (label columns) and view inputs (bare names). View
  features they need but that were not requested are joined, not returned.

How it runs: a view read from Parquet without a transformation is scanned by DuckDB straight
from the file, reading only the columns needed; any other view goes through ``read_view`` and is
handed to DuckDB as an Arrow table. Views with one integer join key are matched by a sort-merge in
NumPy (the source checked sorted by key and time in one pass, sorted by DuckDB when it is not),
then the matched rows' values are gathered in one streaming scan (``_sortmerge``); every other
view is matched by DuckDB's ``ASOF LEFT JOIN`` (``_asof``). Both engines give the same frame
(``engine=`` forces one). The rows of a view are opened in ``_offline_rows``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from keel.errors import FeatureDefinitionError, FeatureStoreError, TimestampError
from keel.features._asof import match_asof
from keel.features._definitions import FeatureCatalog, FeatureRef, FeatureView, OnDemandFeature
from keel.features._offline_rows import KEY_TYPES, Rows, kind, open_rows
from keel.features._sortmerge import gather, match_sorted, sort_merge_applies
from keel.features._sources import SnapshotResolver
from keel.features._time import NaiveRule, to_utc

Engine = Literal["auto", "duckdb", "numpy"]

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
# Arrow types that pandas would turn into float or object when nulls appear, kept exact instead
_NULLABLE = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
_DECLARED: dict[str, Any] = {
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
    "category": "category",
}


def get_training_frame(
    labels: pd.DataFrame,
    features: Sequence[str],
    catalog: FeatureCatalog,
    *,
    timestamp_column: str = "event_timestamp",
    naive: NaiveRule = "reject",
    resolve_snapshot: SnapshotResolver | None = None,
    engine: Engine = "auto",
    threads: int | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """``labels`` with the ``features`` each row's entities had at its timestamp (see the
    module docstring for the whole contract).

    ``features``: ``view:feature``, ``view:*`` or on-demand feature names. ``naive``: how
    timestamps without a zone are taken (refused, or taken as UTC). ``resolve_snapshot`` maps a
    snapshot source to its Parquet path. ``engine``: ``auto`` (NumPy sort-merge for one integer
    join key, DuckDB ASOF otherwise), or force ``duckdb`` or ``numpy``. ``connection``: a DuckDB
    connection to work in (through a cursor of its own; callers that join often keep one, since
    opening one takes tens of milliseconds); otherwise a new in-memory database with ``threads``
    threads, by default as many as the cores this process may run on.
    """
    if not isinstance(labels, pd.DataFrame):
        raise FeatureDefinitionError(f"labels must be a pandas DataFrame, not {type(labels)}")
    if isinstance(features, str) or not features:
        raise FeatureDefinitionError("features must be a non-empty list of feature references")
    refs, on_demand = catalog.resolve(features)
    requested, _ = catalog.resolve([f for f in features if ":" in f])
    names = _column_names(requested)
    _check_labels(labels, timestamp_column, refs, on_demand, catalog)
    added = [*names.values(), *(o.name for f in on_demand for o in f.outputs)]
    added += [f"{view}__found" for view in dict.fromkeys(r.view for r in refs)]
    clashes = sorted({n for n in added if added.count(n) > 1 or n in labels.columns})
    if clashes:
        raise FeatureDefinitionError(
            f"output column(s) {', '.join(clashes)} would appear twice (a label column or "
            "another feature has that name); rename the label column or request fewer features"
        )
    label_ts = _nanoseconds(to_utc(labels[timestamp_column], timestamp_column, naive))
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        by_view.setdefault(ref.view, []).append(ref.feature)

    joined: dict[FeatureRef, pd.Series[Any]] = {}
    found: dict[str, np.ndarray[Any, Any]] = {}
    if connection is None:
        connection = duckdb.connect(config={"threads": threads or _cores()})
    else:
        connection = connection.cursor()
    try:
        for number, (name, wanted) in enumerate(by_view.items()):
            rows = open_rows(
                connection, number, catalog.view(name), wanted, naive, resolve_snapshot
            )
            found[name], frame = _join_view(connection, rows, labels, label_ts, naive, engine)
            joined.update({FeatureRef(name, f): frame[f] for f in wanted})
    except duckdb.Error as error:
        raise FeatureStoreError(f"the point-in-time join failed in DuckDB: {error}") from error
    finally:
        connection.close()

    # concatenated side by side, never aligned on the label index (which may repeat values)
    columns = [labels, *(joined[ref].rename(names[ref]) for ref in requested)]
    for feature in on_demand:
        inputs = [labels[r] for r in feature.request_fields]
        inputs += [joined[ref].rename(ref.feature) for ref in feature.view_inputs]
        if len({i.name for i in inputs}) < len(inputs):
            raise FeatureDefinitionError(
                f"on-demand feature '{feature.name}': two of its inputs share a column name "
                f"({', '.join(feature.inputs)})"
            )
        columns.append(feature.apply(pd.concat(inputs, axis=1)))
    columns += [pd.Series(v, labels.index, name=f"{k}__found") for k, v in found.items()]
    return pd.concat(columns, axis=1)


def _join_view(
    connection: duckdb.DuckDBPyConnection,
    rows: Rows,
    labels: pd.DataFrame,
    label_ts: np.ndarray[Any, Any],
    naive: NaiveRule,
    engine: Engine,
) -> tuple[np.ndarray[Any, Any], pd.DataFrame]:
    """Whether each label found a row of this view, and the features it found."""
    view = rows.view
    keys = [_label_key(labels, key, rows.key_kind(key), view) for key in view.join_keys]
    cutoff = _cutoff(label_ts, view.ttl)
    if engine != "duckdb" and sort_merge_applies(connection, rows, required=engine == "numpy"):
        positions = match_sorted(connection, rows, keys[0], label_ts, cutoff)
        found, values = positions >= 0, gather(connection, rows, positions)
    else:
        found, values = match_asof(connection, rows, keys, label_ts, cutoff)
    return found, _to_pandas(values, view, labels.index, naive)


# -- checks before any data is read ----------------------------------------------------------------


def _column_names(requested: list[FeatureRef]) -> dict[FeatureRef, str]:
    counts = Counter(ref.feature for ref in requested)
    return {r: f"{r.view}__{r.feature}" if counts[r.feature] > 1 else r.feature for r in requested}


def _check_labels(
    labels: pd.DataFrame,
    timestamp_column: str,
    refs: list[FeatureRef],
    on_demand: list[OnDemandFeature],
    catalog: FeatureCatalog,
) -> None:
    if labels.columns.duplicated().any():
        twice = sorted({str(c) for c in labels.columns[labels.columns.duplicated()]})
        raise FeatureDefinitionError(f"the labels have two columns named {', '.join(twice)}")
    needed = {timestamp_column: "the label timestamp column"}
    for view in dict.fromkeys(catalog.view(r.view) for r in refs):
        needed.update(dict.fromkeys(view.join_keys, f"a join key of feature view '{view.name}'"))
    for feature in on_demand:
        needed.update(dict.fromkeys(feature.request_fields, f"a request field of '{feature.name}'"))
    for column, role in needed.items():
        if column not in labels.columns:
            raise FeatureDefinitionError(
                f"the labels have no column '{column}', {role} "
                f"(label columns: {', '.join(map(str, labels.columns))})"
            )


def _nanoseconds(stamps: pd.Series[Any]) -> np.ndarray[Any, Any]:
    missing = int(stamps.isna().sum())
    if missing:
        raise TimestampError(
            str(stamps.name),
            f"{missing} label row(s) have no timestamp; a point-in-time join needs one per row",
        )
    return np.asarray(stamps.dt.tz_convert(None), dtype="datetime64[ns]").view(np.int64)


def _cutoff(label_ts: np.ndarray[Any, Any], ttl: timedelta) -> np.ndarray[Any, Any]:
    """The oldest event timestamp each label may use (``label_ts - ttl``, without overflow)."""
    ttl_ns = min(ttl // timedelta(microseconds=1) * 1000, int(_INT64_MAX))
    with np.errstate(over="ignore"):
        return np.where(label_ts < _INT64_MIN + ttl_ns, _INT64_MIN, label_ts - ttl_ns)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what `taskset` allows, not the whole machine
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- join keys -------------------------------------------------------------------------------------


def _label_key(labels: pd.DataFrame, key: str, view_kind: str, view: FeatureView) -> Any:
    """The label column ``key`` as an Arrow array of the type the view's keys are compared in."""
    try:
        values = pa.array(labels[key], from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise FeatureDefinitionError(
            f"label column '{key}' cannot be used as a join key ({error}); give it one type"
        ) from error
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    label_kind = kind(values.type)
    compatible = label_kind in (view_kind, "null") or (label_kind, view_kind) in {
        ("float", "integer"),
        ("integer", "float"),
    }
    if view_kind not in KEY_TYPES or not compatible:
        raise FeatureDefinitionError(
            f"join key '{key}': the labels hold {values.type} but feature view '{view.name}' "
            f"holds {view_kind} keys; "
            + (
                "convert the label column to the view's key type"
                if view_kind in KEY_TYPES
                else "join keys must be integers, strings, booleans or floats"
            )
        )
    try:
        return values.cast(KEY_TYPES[view_kind][0])
    except pa.ArrowException as error:
        raise FeatureDefinitionError(
            f"join key '{key}': the label values do not fit feature view '{view.name}''s "
            f"{view_kind} keys ({error})"
        ) from error


# -- back to pandas --------------------------------------------------------------------------------


def _to_pandas(
    values: Any, view: FeatureView, index: pd.Index[Any], naive: NaiveRule
) -> pd.DataFrame:
    """Feature columns in their declared types (see the module docstring)."""
    frame: pd.DataFrame = values.to_pandas(types_mapper=_NULLABLE.get, split_blocks=True)
    frame.index = index
    for name in frame.columns:
        declared = view.feature(name).dtype
        try:
            if declared == "timestamp":
                frame[name] = to_utc(frame[name], name, naive)
            elif declared == "string":
                if not pd.api.types.is_string_dtype(frame[name].dtype):
                    raise TypeError(f"{frame[name].dtype} is not a string type")
            else:
                frame[name] = frame[name].astype(_DECLARED[declared])
        except (TypeError, ValueError) as error:
            raise FeatureDefinitionError(
                f"feature view '{view.name}': feature '{name}' is declared {declared} but its "
                f"values do not fit ({error})"
            ) from error
    return frame
