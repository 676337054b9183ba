"""Reading a feature view's rows: source → time window → transformation → checked frame.

Offline joins and materialization both read views through :func:`read_view`, so the
transformation runs the same way for training and for serving.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import duckdb
import pandas as pd

from keel.errors import FeatureDefinitionError, FeatureStoreError
from keel.features._definitions import DataFrameSource, FeatureView, ParquetSource, SnapshotSource
from keel.features._time import NaiveRule, instant_to_utc, to_utc

#: Resolves a snapshot name or fingerprint to the local path of its Parquet data.
SnapshotResolver = Callable[[str], str]


def source_path(view: FeatureView, resolve_snapshot: SnapshotResolver | None) -> str | None:
    """The Parquet path a view reads, or None for in-memory sources."""
    source = view.source
    if isinstance(source, ParquetSource):
        path = source.resolved()
        if path.is_dir():
            return str(path / "**" / "*.parquet")
        if not path.exists():
            raise FeatureStoreError(f"feature view '{view.name}': source {path} does not exist")
        return str(path)
    if isinstance(source, SnapshotSource):
        if resolve_snapshot is None:
            raise FeatureStoreError(
                f"feature view '{view.name}' reads snapshot '{source.snapshot}', but no snapshot "
                "store was given to resolve it"
            )
        return resolve_snapshot(source.snapshot)
    return None


def read_raw(
    view: FeatureView,
    *,
    naive: NaiveRule,
    start: datetime | None = None,
    end: datetime | None = None,
    resolve_snapshot: SnapshotResolver | None = None,
) -> pd.DataFrame:
    """The view's source rows with event timestamps in UTC, ``start <= ts < end`` when given."""
    path = source_path(view, resolve_snapshot)
    if path is None:
        assert isinstance(view.source, DataFrameSource)
        frame = view.source.frame.copy()
    else:
        connection = duckdb.connect()
        try:
            # Arrow, not .df(): DuckDB's pandas path trips pandas 3 deprecations.
            relation = connection.read_parquet(path)
            frame = relation.to_arrow_table().to_pandas()
        except duckdb.Error as error:
            raise FeatureStoreError(
                f"feature view '{view.name}': cannot read {path}: {error}"
            ) from error
        finally:
            connection.close()
    column = view.timestamp_column
    if column not in frame.columns:
        raise FeatureDefinitionError(
            f"feature view '{view.name}': source has no timestamp column '{column}' "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    frame[column] = to_utc(frame[column], column, naive)
    if start is not None:
        frame = frame[frame[column] >= instant_to_utc(start, "start", naive)]
    if end is not None:
        frame = frame[frame[column] < instant_to_utc(end, "end", naive)]
    return frame.reset_index(drop=True)


def read_view(
    view: FeatureView,
    *,
    naive: NaiveRule,
    start: datetime | None = None,
    end: datetime | None = None,
    resolve_snapshot: SnapshotResolver | None = None,
) -> pd.DataFrame:
    """The view's rows after its transformation: join keys, event timestamp (UTC) and every
    declared feature, in that column order; checked for missing columns and for two rows of
    one entity at one timestamp (which would make any point-in-time answer arbitrary)."""
    frame = read_raw(view, naive=naive, start=start, end=end, resolve_snapshot=resolve_snapshot)
    if view.transformation is not None:
        transformed = view.transformation(frame)
        if not isinstance(transformed, pd.DataFrame):
            raise FeatureDefinitionError(
                f"feature view '{view.name}': transformation returned "
                f"{type(transformed).__name__}, not a DataFrame"
            )
        frame = transformed
    columns = [*view.join_keys, view.timestamp_column, *view.feature_names]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureDefinitionError(
            f"feature view '{view.name}': after its transformation the rows lack "
            f"{', '.join(missing)}"
        )
    frame = frame[columns]
    frame[view.timestamp_column] = to_utc(
        frame[view.timestamp_column], view.timestamp_column, naive
    )
    check_unique_keys(view, frame)
    return frame


def check_unique_keys(view: FeatureView, frame: pd.DataFrame) -> None:
    keys = [*view.join_keys, view.timestamp_column]
    duplicated = frame.duplicated(subset=keys, keep=False)
    if duplicated.any():
        example = {str(k): v for k, v in frame.loc[duplicated, keys].iloc[0].items()}
        raise FeatureStoreError(
            f"feature view '{view.name}': {int(duplicated.sum())} rows share an entity key and "
            f"event timestamp with another row (e.g. {example}); keep one row per entity and "
            "timestamp"
        )
