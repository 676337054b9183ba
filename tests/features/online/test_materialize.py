"""Materialization: the latest row per entity into the online store, with a watermark recorded
in the metadata store (SQLite and PostgreSQL) and idempotent re-runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from keel import Workspace
from keel.data import Field
from keel.errors import FeatureDefinitionError
from keel.features import DataFrameSource, Entity, FeatureView, ParquetSource
from keel.features._materialize import (
    materialize,
    materialize_incremental,
    read_watermark,
)
from keel.features.online import OnlineStore, open_online_store
from keel.store import MetadataStore, now
from keel.store import _tables as t

CUSTOMER = Entity("customer", join_keys=("customer_id",))
DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-01-01", tz="UTC")

# customer 1: days 0, 2, 4; customer 2: days 1, 3; customer 3: day 5
ROWS = pd.DataFrame(
    {
        "customer_id": [1, 1, 1, 2, 2, 3],
        "event_time": [T0, T0 + 2 * DAY, T0 + 4 * DAY, T0 + DAY, T0 + 3 * DAY, T0 + 5 * DAY],
        "spend": [10.0, 12.0, 14.0, 20.0, 23.0, 30.0],
    }
)


def _view(rows: pd.DataFrame = ROWS, **changes: object) -> FeatureView:
    definition: dict[str, object] = {
        "name": "spend",
        "entities": (CUSTOMER,),
        "source": DataFrameSource(rows),
        "timestamp_column": "event_time",
        "ttl": timedelta(days=30),
        "features": (Field("spend", "float"),),
    }
    definition.update(changes)
    return FeatureView(**definition)  # type: ignore[arg-type]


def _record(store: MetadataStore, view: FeatureView, version: int = 1) -> int:
    """Record a version of ``view`` as the feature registry would (the FK needs the row)."""
    with store.write() as connection:
        connection.execute(
            t.feature_views.insert().values(
                name=view.name,
                version=version,
                definition_hash=view.definition_hash(),
                definition=view.definition(),
                created_at=now(),
                created_by="tester",
            )
        )
    return version


def _spend(online: OnlineStore, *ids: int) -> list[object]:
    return online.read("spend", [(i,) for i in ids], ["spend"]).columns["spend"]


@pytest.fixture
def sqlite_online(tmp_path: Path) -> Iterator[OnlineStore]:
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as store:
        yield store


def test_the_latest_row_per_entity_in_the_window_is_written(
    workspace: Workspace, online_store: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    result = materialize(view, version, online_store, workspace.store, start=T0, end=T0 + 10 * DAY)

    assert _spend(online_store, 1, 2, 3) == [14.0, 23.0, 30.0]
    rows = online_store.read("spend", [(1,)], ["spend"])
    assert rows.event_timestamps[0] == T0 + 4 * DAY
    assert (result.rows_read, result.rows_written, result.rows_replaced) == (6, 3, 3)


def test_rows_outside_the_window_are_not_written(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    materialize(view, version, sqlite_online, workspace.store, start=T0 + DAY, end=T0 + 3 * DAY)

    # customer 1: day 2 (day 4 is at/after end); customer 2: day 1; customer 3: nothing
    assert _spend(sqlite_online, 1, 2, 3) == [12.0, 20.0, None]


def test_the_watermark_is_recorded_and_read_back(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    materialize(view, version, sqlite_online, workspace.store, start=T0, end=T0 + 3 * DAY)

    mark = read_watermark(workspace.store, "spend", version, sqlite_online.url)
    assert mark is not None
    assert (mark.start, mark.end, mark.rows) == (T0, T0 + 3 * DAY, 2)
    assert mark.store == sqlite_online.url


def test_without_a_start_the_watermark_starts_at_the_first_row(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    result = materialize(view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    assert result.start == T0
    mark = read_watermark(workspace.store, "spend", version, sqlite_online.url)
    assert mark is not None
    assert mark.start == T0


def test_rerunning_the_same_window_changes_nothing(
    workspace: Workspace, online_store: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)
    start, end = T0, T0 + 10 * DAY
    materialize(view, version, online_store, workspace.store, start=start, end=end)
    before = online_store.read("spend", [(1,), (2,), (3,)], ["spend"])
    mark = read_watermark(workspace.store, "spend", version, online_store.url)

    materialize(view, version, online_store, workspace.store, start=start, end=end)

    after = online_store.read("spend", [(1,), (2,), (3,)], ["spend"])
    assert after.columns == before.columns
    assert after.event_ns.tolist() == before.event_ns.tolist()
    again = read_watermark(workspace.store, "spend", version, online_store.url)
    assert again is not None
    assert mark is not None
    assert (again.start, again.end, again.rows) == (mark.start, mark.end, mark.rows)


def test_an_older_window_after_a_newer_one_keeps_the_newer_values(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)
    materialize(view, version, sqlite_online, workspace.store, start=T0 + 3 * DAY, end=T0 + 6 * DAY)

    materialize(view, version, sqlite_online, workspace.store, start=T0, end=T0 + 3 * DAY)

    assert _spend(sqlite_online, 1, 2, 3) == [14.0, 23.0, 30.0]
    mark = read_watermark(workspace.store, "spend", version, sqlite_online.url)
    assert mark is not None
    assert (mark.start, mark.end) == (T0, T0 + 6 * DAY)


def test_incremental_without_a_watermark_starts_at_the_beginning(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    result = materialize_incremental(
        view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY
    )

    assert result.rows_read == 6
    assert _spend(sqlite_online, 1, 2, 3) == [14.0, 23.0, 30.0]


def test_incremental_starts_at_the_watermark(
    workspace: Workspace, online_store: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)
    first = materialize_incremental(view, version, online_store, workspace.store, end=T0 + 2 * DAY)
    assert _spend(online_store, 1, 2, 3) == [10.0, 20.0, None]

    second = materialize_incremental(
        view, version, online_store, workspace.store, end=T0 + 10 * DAY
    )

    assert (first.rows_read, second.rows_read) == (2, 4)  # days 0-1, then days 2-5
    assert _spend(online_store, 1, 2, 3) == [14.0, 23.0, 30.0]
    mark = read_watermark(workspace.store, "spend", version, online_store.url)
    assert mark is not None
    assert (mark.start, mark.end) == (T0, T0 + 10 * DAY)


def test_incremental_up_to_the_watermark_reads_nothing(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)
    materialize_incremental(view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    again = materialize_incremental(
        view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY
    )

    assert (again.rows_read, again.rows_written) == (0, 0)


def test_incremental_picks_up_rows_appended_to_a_parquet_source(
    workspace: Workspace, sqlite_online: OnlineStore, tmp_path: Path
) -> None:
    directory = tmp_path / "spend"
    directory.mkdir()
    ROWS.iloc[:3].to_parquet(directory / "part-0.parquet")
    view = _view(source=ParquetSource(str(directory)))
    version = _record(workspace.store, view)
    materialize_incremental(view, version, sqlite_online, workspace.store, end=T0 + 5 * DAY)
    late = ROWS.iloc[3:].assign(event_time=ROWS["event_time"].iloc[3:] + 6 * DAY)
    late.to_parquet(directory / "part-1.parquet")  # days 7, 9 and 11: after the watermark

    result = materialize_incremental(
        view, version, sqlite_online, workspace.store, end=T0 + 20 * DAY
    )

    assert result.rows_read == 3
    assert _spend(sqlite_online, 1, 2, 3) == [14.0, 23.0, 30.0]


def test_each_view_version_has_its_own_watermark(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    _record(workspace.store, view, version=1)
    _record(workspace.store, view, version=2)
    materialize_incremental(view, 1, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    result = materialize_incremental(view, 2, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    assert result.rows_read == 6  # version 2 starts from the beginning


def test_an_unrecorded_view_version_is_refused(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    with pytest.raises(FeatureDefinitionError, match="run `keel features apply`"):
        materialize(_view(), 1, sqlite_online, workspace.store, end=T0 + DAY)


def test_rows_with_a_missing_join_key_are_skipped_and_counted(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    rows = ROWS.astype({"customer_id": "float64"})
    rows.loc[5, "customer_id"] = None
    view = _view(rows)
    version = _record(workspace.store, view)

    result = materialize(view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    assert result.skipped_missing_keys == 1
    assert _spend(sqlite_online, 1, 2) == [14.0, 23.0]  # float keys 1.0/2.0 are keys 1/2


def test_the_transformation_runs_before_materialization(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    def doubled(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(spend_x2=frame["spend"] * 2)

    view = _view(
        transformation=doubled,
        features=(Field("spend", "float"), Field("spend_x2", "float")),
    )
    version = _record(workspace.store, view)

    materialize(view, version, sqlite_online, workspace.store, end=T0 + 10 * DAY)

    rows = sqlite_online.read("spend", [(1,)], ["spend_x2"])
    assert rows.columns["spend_x2"] == [28.0]


def test_a_window_that_starts_after_it_ends_is_refused(
    workspace: Workspace, sqlite_online: OnlineStore
) -> None:
    view = _view()
    version = _record(workspace.store, view)

    with pytest.raises(FeatureDefinitionError, match="is not before end"):
        materialize(view, version, sqlite_online, workspace.store, start=T0, end=T0)
