"""Materialization: the latest row of each entity, from a view's source into an online store.

    result = materialize(view, 3, online, metadata, start=jan_1, end=feb_1)
    result = materialize_incremental(view, 3, online, metadata)   # from the watermark to now

Rules (one place, documented here):

* The window is ``start <= event_time < end`` (UTC, by the time-zone rule of ``_time``);
  ``start=None`` means from the first row of the source, ``end=None`` means now.
* Within the window, the **latest row per entity** is written (as Feast does). Rows are not
  filtered by TTL here: the TTL is applied when features are read, against the lookup time,
  which is the only moment that knows how old a value really is (a backfill's ``end`` may be
  months in the past). Rows whose join keys are missing are skipped and counted.
* The store keeps the newer row per entity, so re-running a window, or materializing an older
  window after a newer one, never replaces a newer value: materializing is idempotent.
* The **watermark** of each (view, version, store) in ``feature_materializations`` is the
  extent materialized so far: ``start`` the earliest window start, ``end`` the latest window
  end; ``rows`` is how many entity rows the last run wrote. ``materialize_incremental``
  starts where the watermark ends (from the beginning of the data when there is none), so
  rows that arrive late with event times before the watermark are not picked up by it; run
  :func:`materialize` over that window to write them.
* A new view version has no watermark, so its first incremental run materializes everything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from keel.errors import FeatureDefinitionError
from keel.features._definitions import FeatureView
from keel.features._sources import SnapshotResolver, read_view
from keel.features._time import NaiveRule, instant_to_utc
from keel.features.online import OnlineStore
from keel.store import MetadataStore, now, upsert
from keel.store import _tables as t

logger = logging.getLogger(__name__)

#: Entity rows sent to the online store per write call (bounds the memory of encoded rows).
WRITE_CHUNK_ROWS = 100_000
_ONE_MICROSECOND = pd.Timedelta(microseconds=1)


@dataclass(frozen=True)
class Watermark:
    """How far a view version has been materialized into one online store."""

    view: str
    version: int
    store: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    updated_at: float


@dataclass(frozen=True)
class MaterializeResult:
    """What one materialization read and wrote."""

    view: str
    version: int
    store: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows_read: int
    """Source rows inside the window (after the view's transformation)."""
    rows_written: int
    """Entity rows sent to the store (the latest per entity in the window)."""
    rows_replaced: int
    """Of those, how many the store inserted or replaced (older than what it held: not)."""
    skipped_missing_keys: int
    seconds: float
    """Wall time of the whole run."""
    read_seconds: float = 0.0
    """Of which reading the window and keeping the latest row per entity."""
    write_seconds: float = 0.0
    """Of which writing those rows to the online store."""


def materialize(
    view: FeatureView,
    view_version: int,
    online_store: OnlineStore,
    metadata_store: MetadataStore,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    naive: NaiveRule = "reject",
    resolve_snapshot: SnapshotResolver | None = None,
) -> MaterializeResult:
    """Write the latest row per entity of ``view`` in ``[start, end)`` to ``online_store`` and
    extend the watermark of (view, ``view_version``, store) in ``metadata_store``."""
    began = time.perf_counter()
    _check_version_recorded(metadata_store, view, view_version)
    window_end = (
        pd.Timestamp(time.time_ns(), unit="ns", tz="UTC")
        if end is None
        else instant_to_utc(end, "end", naive)
    )
    window_start = None if start is None else instant_to_utc(start, "start", naive)
    if window_start is not None and window_start >= window_end:
        raise FeatureDefinitionError(
            f"materialize '{view.name}': start {window_start} is not before end {window_end}"
        )
    frame = read_view(
        view, naive=naive, start=window_start, end=window_end, resolve_snapshot=resolve_snapshot
    )
    rows_read = len(frame)
    latest, skipped = latest_per_entity(view, frame)
    read_done = time.perf_counter()
    if skipped:
        logger.warning(
            "materialize %s: skipped %d rows whose join keys are missing", view.name, skipped
        )
    replaced = 0
    keys = list(view.join_keys)
    for offset in range(0, len(latest), WRITE_CHUNK_ROWS):
        chunk = latest.iloc[offset : offset + WRITE_CHUNK_ROWS]
        replaced += online_store.write(
            view.name,
            chunk[keys],
            chunk[view.timestamp_column],
            {name: chunk[name] for name in view.feature_names},
        )
    write_done = time.perf_counter()
    if window_start is None:
        first = frame[view.timestamp_column].min() if rows_read else window_end
        window_start = min(first, window_end)
    _record_watermark(
        metadata_store,
        view.name,
        view_version,
        online_store.url,
        window_start,
        window_end,
        len(latest),
    )
    return MaterializeResult(
        view=view.name,
        version=view_version,
        store=online_store.url,
        start=window_start,
        end=window_end,
        rows_read=rows_read,
        rows_written=len(latest),
        rows_replaced=replaced,
        skipped_missing_keys=skipped,
        seconds=time.perf_counter() - began,
        read_seconds=read_done - began,
        write_seconds=write_done - read_done,
    )


def materialize_incremental(
    view: FeatureView,
    view_version: int,
    online_store: OnlineStore,
    metadata_store: MetadataStore,
    *,
    end: datetime | None = None,
    naive: NaiveRule = "reject",
    resolve_snapshot: SnapshotResolver | None = None,
) -> MaterializeResult:
    """:func:`materialize` from the recorded watermark's end (or the beginning of the data when
    none is recorded) to ``end`` (default: now). Nothing is read when the watermark already
    reaches ``end``."""
    mark = read_watermark(metadata_store, view.name, view_version, online_store.url)
    window_end = (
        pd.Timestamp(time.time_ns(), unit="ns", tz="UTC")
        if end is None
        else instant_to_utc(end, "end", naive)
    )
    if mark is not None and mark.end >= window_end:
        return MaterializeResult(
            view=view.name,
            version=view_version,
            store=online_store.url,
            start=mark.end,
            end=mark.end,
            rows_read=0,
            rows_written=0,
            rows_replaced=0,
            skipped_missing_keys=0,
            seconds=0.0,
        )
    return materialize(
        view,
        view_version,
        online_store,
        metadata_store,
        # A recorded end may have lost sub-microsecond digits (rounded up or down): starting
        # one microsecond earlier can only re-read rows, which writing again leaves unchanged.
        start=None if mark is None else mark.end - _ONE_MICROSECOND,
        end=window_end,
        naive=naive,
        resolve_snapshot=resolve_snapshot,
    )


def latest_per_entity(view: FeatureView, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The newest row of each entity (rows with a missing join key dropped), and how many rows
    were dropped for a missing key. ``read_view`` has already refused two rows of one entity at
    one timestamp, so the newest row is unique."""
    keys = list(view.join_keys)
    frame = frame.reset_index(drop=True)
    missing = frame[keys].isna().any(axis=1)
    skipped = int(missing.sum())
    if skipped:
        frame = frame[~missing].reset_index(drop=True)
    if frame.empty:
        return frame, skipped
    newest = frame.groupby(keys, sort=False, dropna=True)[view.timestamp_column].idxmax()
    return frame.loc[newest.to_numpy()].reset_index(drop=True), skipped


# -- watermarks ------------------------------------------------------------------------------------


def read_watermark(
    metadata_store: MetadataStore, view: str, version: int, store: str
) -> Watermark | None:
    """The recorded watermark of (view, version, store URL), or None."""
    table = t.feature_materializations
    with metadata_store.read() as connection:
        row = connection.execute(
            sa.select(table).where(
                table.c.view == view, table.c.version == version, table.c.store == store
            )
        ).first()
    if row is None:
        return None
    return Watermark(
        view=row.view,
        version=row.version,
        store=row.store,
        start=_from_epoch(row.start),
        end=_from_epoch(row.end),
        rows=row.rows,
        updated_at=row.updated_at,
    )


def _check_version_recorded(metadata_store: MetadataStore, view: FeatureView, version: int) -> None:
    table = t.feature_views
    with metadata_store.read() as connection:
        known = connection.execute(
            sa.select(table.c.version).where(table.c.name == view.name, table.c.version == version)
        ).first()
    if known is None:
        raise FeatureDefinitionError(
            f"feature view '{view.name}' version {version} is not recorded in the metadata "
            "store; run `keel features apply` before materializing it"
        )


def _record_watermark(
    metadata_store: MetadataStore,
    view: str,
    version: int,
    store: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    rows: int,
) -> None:
    table = t.feature_materializations
    with metadata_store.write() as connection:
        query = sa.select(table.c.start, table.c.end).where(
            table.c.view == view, table.c.version == version, table.c.store == store
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        existing = connection.execute(query).first()
        new_start, new_end = _to_epoch(start), _to_epoch(end)
        if existing is not None:
            if new_start > existing.end:
                logger.warning(
                    "materialize %s: window %s..%s leaves a gap after the watermark end %s; "
                    "the watermark extent now includes that gap",
                    view,
                    start,
                    end,
                    _from_epoch(existing.end),
                )
            new_start = min(new_start, existing.start)
            new_end = max(new_end, existing.end)
        upsert(
            connection,
            table,
            [
                {
                    "view": view,
                    "version": version,
                    "store": store,
                    "start": new_start,
                    "end": new_end,
                    "rows": rows,
                    "updated_at": now(),
                }
            ],
            update=["start", "end", "rows", "updated_at"],
        )


# Watermarks are stored as epoch seconds (doubles), exact to the microsecond for any date
# this side of the year 2200; read back, they are rounded to the nearest microsecond.


def _to_epoch(stamp: pd.Timestamp) -> float:
    return float(stamp.value) / 1e9


def _from_epoch(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(round(seconds * 1e6), unit="us", tz="UTC").as_unit("ns")
