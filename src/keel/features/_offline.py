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
then the matched rows' values are gathered in one streaming scan; every other view is matched by
DuckDB's ``ASOF LEFT JOIN``. Both engines give the same frame (``engine=`` forces one).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import FeatureDefinitionError, FeatureStoreError, TimestampError
from keel.features._definitions import FeatureCatalog, FeatureRef, FeatureView, OnDemandFeature
from keel.features._sources import SnapshotResolver, check_unique_keys, read_view, source_path
from keel.features._time import NaiveRule, to_utc

Engine = Literal["auto", "duckdb", "numpy"]

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_BATCH_ROWS = 1 << 18  # rows per batch when gathering matched values from a Parquet scan
# join-key kinds that can be compared, with the type both sides are cast to
_KEY_TYPES = {
    "integer": (pa.int64(), "BIGINT"),
    "float": (pa.float64(), "DOUBLE"),
    "string": (pa.string(), "VARCHAR"),
    "boolean": (pa.bool_(), "BOOLEAN"),
}
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
            rows = _open(connection, number, catalog.view(name), wanted, naive, resolve_snapshot)
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
    rows: _Rows,
    labels: pd.DataFrame,
    label_ts: np.ndarray[Any, Any],
    naive: NaiveRule,
    engine: Engine,
) -> tuple[np.ndarray[Any, Any], pd.DataFrame]:
    """Whether each label found a row of this view, and the features it found."""
    view = rows.view
    keys = [_label_key(labels, key, rows.key_kind(key), view) for key in view.join_keys]
    cutoff = _cutoff(label_ts, view.ttl)
    if engine != "duckdb" and _sort_merge_applies(connection, rows, engine):
        positions = _match_sorted(connection, rows, keys[0], label_ts, cutoff)
        found, values = positions >= 0, _gather(connection, rows, positions)
    else:
        found, values = _match_asof(connection, rows, keys, label_ts, cutoff)
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


# -- the rows of one view --------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Rows:
    """One view's rows as DuckDB reads them: a Parquet scan or a registered Arrow table."""

    view: FeatureView
    features: list[str]
    source: str  # the FROM clause
    params: dict[str, str]
    schema: Any  # pa.Schema of the source
    table: Any = None  # the Arrow table when the rows are in memory

    def key_kind(self, key: str) -> str:
        return _kind(self.schema.field(key).type)

    def scan(self, connection: duckdb.DuckDBPyConnection, select: str) -> Any:
        return connection.sql(f"SELECT {select} FROM {self.source}", params=self.params or None)


def _open(
    connection: duckdb.DuckDBPyConnection,
    number: int,
    view: FeatureView,
    features: list[str],
    naive: NaiveRule,
    resolve_snapshot: SnapshotResolver | None,
) -> _Rows:
    path = source_path(view, resolve_snapshot)
    columns = [*view.join_keys, view.timestamp_column, *features]
    if path is None or view.transformation is not None:
        frame = read_view(view, naive=naive, resolve_snapshot=resolve_snapshot)
        try:
            table = pa.Table.from_pandas(frame[columns], preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise FeatureDefinitionError(
                f"feature view '{view.name}': its rows cannot be joined ({error}); give each "
                "column one type"
            ) from error
        connection.register(f"__keel_view_{number}", table)
        return _Rows(view, features, f"__keel_view_{number}", {}, table.schema, table)
    rows = _Rows(view, features, "read_parquet($path)", {"path": path}, None)
    try:
        rows.schema = rows.scan(connection, "*").limit(0).to_arrow_table().schema
    except duckdb.Error as error:
        raise FeatureStoreError(
            f"feature view '{view.name}': cannot read {path}: {error}"
        ) from error
    missing = [c for c in columns if c not in rows.schema.names]
    if missing:
        raise FeatureDefinitionError(
            f"feature view '{view.name}': the source {path} has no column(s) "
            f"{', '.join(missing)} (columns: {', '.join(rows.schema.names)})"
        )
    # an empty column of the source's type, so the one time-zone rule refuses what it refuses
    stamps = pa.schema([rows.schema.field(view.timestamp_column)]).empty_table().to_pandas()
    to_utc(stamps[view.timestamp_column], view.timestamp_column, naive)
    return rows


def _kind(arrow_type: Any) -> str:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_null(arrow_type):
        return "null"
    return str(arrow_type)


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
    label_kind = _kind(values.type)
    compatible = label_kind in (view_kind, "null") or (label_kind, view_kind) in {
        ("float", "integer"),
        ("integer", "float"),
    }
    if view_kind not in _KEY_TYPES or not compatible:
        raise FeatureDefinitionError(
            f"join key '{key}': the labels hold {values.type} but feature view '{view.name}' "
            f"holds {view_kind} keys; "
            + (
                "convert the label column to the view's key type"
                if view_kind in _KEY_TYPES
                else "join keys must be integers, strings, booleans or floats"
            )
        )
    try:
        return values.cast(_KEY_TYPES[view_kind][0])
    except pa.ArrowException as error:
        raise FeatureDefinitionError(
            f"join key '{key}': the label values do not fit feature view '{view.name}''s "
            f"{view_kind} keys ({error})"
        ) from error


# -- engine 1: NumPy sort-merge, one integer key ---------------------------------------------------


def _sort_merge_applies(connection: duckdb.DuckDBPyConnection, rows: _Rows, engine: Engine) -> bool:
    """Whether the NumPy engine can join ``rows``: one integer key, and scans that return rows in
    source order (positions found in one scan are read back in another)."""
    keys = rows.view.join_keys
    if len(keys) == 1 and rows.key_kind(keys[0]) == "integer":
        setting = "SELECT current_setting('preserve_insertion_order')"
        if connection.sql(setting).fetchall()[0][0]:
            return True
        problem = "a connection with preserve_insertion_order = false"
    else:
        problem = f"join keys {', '.join(keys)} (it needs one integer key)"
    if engine == "numpy":
        raise FeatureDefinitionError(
            f"engine='numpy' cannot join feature view '{rows.view.name}': {problem}"
        )
    return False


def _match_sorted(
    connection: duckdb.DuckDBPyConnection,
    rows: _Rows,
    label_keys: Any,
    label_ts: np.ndarray[Any, Any],
    cutoff: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """The source row each label takes its features from (-1 for none)."""
    view = rows.view
    key, ts = _quote(view.join_keys[0]), _quote(view.timestamp_column)
    scanned = rows.scan(connection, f"CAST({key} AS BIGINT) AS k, epoch_ns({ts}) AS t")
    table = scanned.to_arrow_table()
    view_keys, view_ts = table.column("k"), table.column("t")
    source: np.ndarray[Any, Any] | None = None  # source row of each position, when not 1:1
    if view_keys.null_count or view_ts.null_count:
        valid = np.asarray(pc.is_valid(view_keys)) & np.asarray(pc.is_valid(view_ts))
        source = np.flatnonzero(valid)
    keys = _numpy(view_keys, source)
    stamps = _numpy(view_ts, source)
    del table, view_keys, view_ts
    if len(keys) > 1:
        same = keys[1:] == keys[:-1]
        ordered = (keys[1:] > keys[:-1]) | (same & (stamps[1:] > stamps[:-1]))
        if not ordered.all():  # not sorted by (key, time), or two rows share both
            order = _sort_order(connection, keys, stamps)
            keys, stamps = keys[order], stamps[order]
            source = order if source is None else source[order]
            same = keys[1:] == keys[:-1]
            twins = same & (stamps[1:] == stamps[:-1])
            if twins.any():
                _report_duplicates(view, keys, stamps, twins)
        del ordered, same
    positions = _latest(keys, stamps, label_keys, label_ts, cutoff)
    if source is not None:
        positions = np.where(positions >= 0, source[np.maximum(positions, 0)], -1)
    return positions


def _numpy(column: Any, keep: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
    values = np.asarray(column.fill_null(0) if column.null_count else column, dtype=np.int64)
    return values if keep is None else values[keep]


def _sort_order(
    connection: duckdb.DuckDBPyConnection,
    keys: np.ndarray[Any, Any],
    stamps: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    # DuckDB's sort is about twice as fast as np.lexsort on ten million rows
    table = pa.table({"k": keys, "t": stamps, "p": np.arange(len(keys))})
    connection.register("__keel_sort", table)
    try:
        order = connection.sql("SELECT p FROM __keel_sort ORDER BY k, t").to_arrow_table()
    finally:
        connection.unregister("__keel_sort")
    return np.asarray(order.column("p"), dtype=np.int64)


def _report_duplicates(
    view: FeatureView,
    keys: np.ndarray[Any, Any],
    stamps: np.ndarray[Any, Any],
    twins: np.ndarray[Any, Any],
) -> None:
    involved = np.zeros(len(keys), dtype=bool)
    involved[:-1] |= twins
    involved[1:] |= twins
    frame = pd.DataFrame(
        {
            view.join_keys[0]: keys[involved],
            view.timestamp_column: pd.to_datetime(stamps[involved], unit="ns", utc=True),
        }
    )
    check_unique_keys(view, frame)


def _latest(
    keys: np.ndarray[Any, Any],
    stamps: np.ndarray[Any, Any],
    label_keys: Any,
    label_ts: np.ndarray[Any, Any],
    cutoff: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """For rows sorted by (key, time): per label, the last row of its key with ``time <=
    label_ts`` and ``time >= cutoff``, else -1."""
    size = len(keys)
    if size == 0 or len(label_ts) == 0:
        return np.full(len(label_ts), -1, dtype=np.int64)
    wanted = np.asarray(label_keys.fill_null(0), dtype=np.int64)
    order = np.argsort(wanted)  # labels in key order: the lookups below walk memory forwards
    wanted, label_ts, cutoff = wanted[order], label_ts[order], cutoff[order]
    first = np.empty(size, dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], size)
    group = np.minimum(np.searchsorted(keys[starts], wanted), len(starts) - 1)
    hit = keys[starts[group]] == wanted
    if label_keys.null_count:
        hit &= np.asarray(pc.is_valid(label_keys))[order]
    low = np.where(hit, starts[group], 0)
    # bisect each label's group, vectorised: ``after`` ends at the first row later than the label
    after, high = low.copy(), np.where(hit, ends[group], 0)
    active = np.flatnonzero(after < high)
    while active.size:
        middle = (after[active] + high[active]) >> 1
        earlier = stamps[middle] <= label_ts[active]
        after[active] = np.where(earlier, middle + 1, after[active])
        high[active] = np.where(earlier, high[active], middle)
        active = active[after[active] < high[active]]
    latest = after - 1
    usable = (after > low) & (stamps[np.maximum(latest, 0)] >= cutoff)
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.where(usable, latest, -1)
    return positions


def _gather(connection: duckdb.DuckDBPyConnection, rows: _Rows, positions: Any) -> Any:
    """The features of source rows ``positions`` (null where -1), in label order."""
    if rows.table is not None:
        return rows.table.select(rows.features).take(pa.array(positions, mask=positions < 0))
    # one streaming scan of the feature columns; each batch gives up the rows labels matched
    hits = np.flatnonzero(positions >= 0)
    order = np.argsort(positions[hits], kind="stable")
    wanted = positions[hits][order]
    last = wanted[-1] if len(wanted) else -1
    reader = rows.scan(connection, ", ".join(map(_quote, rows.features))).to_arrow_reader(
        _BATCH_ROWS
    )
    batches, start = [], 0
    try:
        for batch in reader:
            if start > last:
                break  # nothing further down the source is needed
            stop = start + batch.num_rows
            first, after = np.searchsorted(wanted, [start, stop])
            batches.append(batch.take(pa.array(wanted[first:after] - start)))
            start = stop
    finally:
        reader.close()
    place = np.full(len(positions), -1, dtype=np.int64)
    place[hits[order]] = np.arange(len(order))
    taken = pa.Table.from_batches(batches, schema=reader.schema)
    return taken.take(pa.array(place, mask=place < 0))


# -- engine 2: DuckDB ASOF join, any keys ----------------------------------------------------------


def _match_asof(
    connection: duckdb.DuckDBPyConnection,
    rows: _Rows,
    label_keys: list[Any],
    label_ts: np.ndarray[Any, Any],
    cutoff: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], Any]:
    view = rows.view
    if rows.table is None:  # read_view already checked in-memory rows
        _check_unique_in_duckdb(connection, rows)
    names = [f"k{i}" for i in range(len(label_keys))]
    labels = pa.table(
        {
            "__row": np.arange(len(label_ts)),
            **dict(zip(names, label_keys, strict=True)),
            "__ts": label_ts,
            "__cutoff": cutoff,
        }
    )
    inner = [
        f"CAST({_quote(k)} AS {_KEY_TYPES[rows.key_kind(k)][1]}) AS {n}"
        for k, n in zip(view.join_keys, names, strict=True)
    ]
    inner.append(f"epoch_ns({_quote(view.timestamp_column)}) AS __ts")
    inner += [f"{_quote(f)} AS c{i}" for i, f in enumerate(rows.features)]
    present = " AND ".join(
        f"{_quote(c)} IS NOT NULL" for c in (*view.join_keys, view.timestamp_column)
    )
    within = "f.__ts >= l.__cutoff"
    values = ", ".join(
        f"CASE WHEN {within} THEN f.c{i} END AS {_quote(f)}" for i, f in enumerate(rows.features)
    )
    on = " AND ".join(f"l.{n} = f.{n}" for n in names)
    connection.register("__keel_labels", labels)
    try:
        joined = connection.sql(
            f"SELECT l.__row, coalesce({within}, false) AS __found, {values} "
            f"FROM __keel_labels AS l ASOF LEFT JOIN "
            f"(SELECT {', '.join(inner)} FROM {rows.source} WHERE {present}) AS f "
            f"ON {on} AND l.__ts >= f.__ts",
            params=rows.params or None,
        ).to_arrow_table()
    finally:
        connection.unregister("__keel_labels")
    place = np.empty(len(label_ts), dtype=np.int64)
    place[np.asarray(joined.column("__row"))] = np.arange(len(label_ts))
    joined = joined.take(place)
    return np.asarray(joined.column("__found")), joined.select(rows.features)


def _check_unique_in_duckdb(connection: duckdb.DuckDBPyConnection, rows: _Rows) -> None:
    view = rows.view
    columns = [*view.join_keys, view.timestamp_column]
    listed = ", ".join(map(_quote, columns))
    present = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in columns)
    duplicated = connection.sql(
        f"SELECT {listed}, count(*) AS __n FROM {rows.source} WHERE {present} "
        f"GROUP BY {listed} HAVING count(*) > 1",
        params=rows.params or None,
    ).to_arrow_table()
    if duplicated.num_rows:
        counts = np.asarray(duplicated.column("__n"))
        frame = duplicated.select(columns).to_pandas()
        check_unique_keys(view, frame.loc[frame.index.repeat(counts)])


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
