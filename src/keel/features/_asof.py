"""Engine 2 of ``_offline``: DuckDB's ``ASOF LEFT JOIN``, for views with any join keys."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from keel.features._offline_rows import KEY_TYPES, Rows, quote
from keel.features._sources import check_unique_keys


def match_asof(
    connection: duckdb.DuckDBPyConnection,
    rows: Rows,
    label_keys: list[Any],
    label_ts: np.ndarray[Any, Any],
    cutoff: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], Any]:
    """Whether each label found a row within its ``cutoff``, and that row's features, in label
    order."""
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
        f"CAST({quote(k)} AS {KEY_TYPES[rows.key_kind(k)][1]}) AS {n}"
        for k, n in zip(view.join_keys, names, strict=True)
    ]
    inner.append(f"epoch_ns({quote(view.timestamp_column)}) AS __ts")
    inner += [f"{quote(f)} AS c{i}" for i, f in enumerate(rows.features)]
    present = " AND ".join(
        f"{quote(c)} IS NOT NULL" for c in (*view.join_keys, view.timestamp_column)
    )
    within = "f.__ts >= l.__cutoff"
    values = ", ".join(
        f"CASE WHEN {within} THEN f.c{i} END AS {quote(f)}" for i, f in enumerate(rows.features)
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


def _check_unique_in_duckdb(connection: duckdb.DuckDBPyConnection, rows: Rows) -> None:
    view = rows.view
    columns = [*view.join_keys, view.timestamp_column]
    listed = ", ".join(map(quote, columns))
    present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)
    duplicated = connection.sql(
        f"SELECT {listed}, count(*) AS __n FROM {rows.source} WHERE {present} "
        f"GROUP BY {listed} HAVING count(*) > 1",
        params=rows.params or None,
    ).to_arrow_table()
    if duplicated.num_rows:
        counts = np.asarray(duplicated.column("__n"))
        frame = duplicated.select(columns).to_pandas()
        check_unique_keys(view, frame.loc[frame.index.repeat(counts)])
