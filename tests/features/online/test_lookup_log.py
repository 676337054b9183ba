"""Sampled records of online lookups, for the skew check: written in segments, never a reason
for a lookup to fail."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from keel.data import Field
from keel.features import DataFrameSource, Entity, FeatureCatalog, FeatureView, OnDemandFeature
from keel.features._lookups import LookupLog, read_lookups
from keel.features._online import OnlineFeatures, get_online_features
from keel.features.online import OnlineStore, open_online_store

T0 = pd.Timestamp("2026-01-01", tz="UTC")
NOW = T0 + pd.Timedelta(hours=1)
ROWS = pd.DataFrame(
    {
        "customer_id": [1, 2],
        "event_time": [T0, T0 - pd.Timedelta(days=10)],
        "spend": [10.0, 20.0],
        "seen": [T0, T0],
    }
)
SPEND = FeatureView(
    name="spend",
    entities=(Entity("customer", join_keys=("customer_id",)),),
    source=DataFrameSource(ROWS),
    timestamp_column="event_time",
    ttl=timedelta(days=1),
    features=(Field("spend", "float"), Field("seen", "timestamp")),
)
DOUBLE = OnDemandFeature(
    name="double",
    inputs=("basket", "spend:spend"),
    outputs=(Field("double_spend", "float"),),
    function=lambda f: pd.DataFrame({"double_spend": f["spend"] * 2 + f["basket"]}),
)
CATALOG = FeatureCatalog.of([SPEND, DOUBLE])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OnlineStore]:
    with open_online_store(f"sqlite:///{tmp_path / 'online.db'}") as online:
        online.write(
            "spend",
            ROWS[["customer_id"]],
            ROWS["event_time"],
            {"spend": ROWS["spend"], "seen": ROWS["seen"]},
        )
        yield online


def _lookup(
    store: OnlineStore,
    log: LookupLog,
    ids: list[int] | None = None,
    *,
    record: bool | None = None,
) -> pd.DataFrame:
    rows = [{"customer_id": i, "basket": 1.0} for i in (ids or [1, 2, 3])]
    features = ["spend:spend", "spend:seen", "double"]
    result = get_online_features(rows, features, CATALOG, store, now=NOW, log=log, record=record)
    return result.frame


def test_a_sampled_lookup_writes_one_line_per_entity_row(
    store: OnlineStore, tmp_path: Path
) -> None:
    with LookupLog(tmp_path / "lookups", 1.0) as log:
        _lookup(store, log)

    lookups = read_lookups(tmp_path / "lookups")

    assert len(lookups) == 3
    assert lookups["row"].tolist() == [0, 1, 2]
    assert lookups["lookup_id"].nunique() == 1
    assert lookups["at"].tolist() == [NOW] * 3
    assert lookups["entity.customer_id"].tolist() == [1, 2, 3]
    assert lookups["request.basket"].tolist() == [1.0, 1.0, 1.0]
    assert lookups["features.spend:spend"].tolist()[0] == 10.0
    assert lookups["features.spend:spend"].isna().tolist() == [False, True, True]  # 2 is stale
    assert lookups["features.double_spend"].tolist()[0] == 21.0
    assert lookups["features.spend:seen"].tolist()[0] == T0.isoformat()
    assert lookups["event_timestamps.spend"].tolist()[:2] == [T0, T0 - pd.Timedelta(days=10)]
    assert lookups["event_timestamps.spend"].isna().tolist() == [False, False, True]
    assert lookups["fresh.spend"].tolist() == [True, False, False]
    assert lookups["requested"][0] == ["spend:spend", "spend:seen", "double"]


def test_the_sample_rate_is_respected(store: OnlineStore, tmp_path: Path) -> None:
    log = LookupLog(tmp_path / "lookups", 0.2, seed=7)

    sampled = sum(log.sampled() for _ in range(5000))

    assert 900 <= sampled <= 1100


def test_a_seed_makes_the_sampling_repeatable(tmp_path: Path) -> None:
    first = LookupLog(tmp_path, 0.5, seed=3)
    second = LookupLog(tmp_path, 0.5, seed=3)

    assert [first.sampled() for _ in range(50)] == [second.sampled() for _ in range(50)]


def test_a_rate_of_zero_records_nothing(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 0.0) as log:
        for _ in range(20):
            _lookup(store, log)

    assert log.written == 0
    assert read_lookups(tmp_path / "lookups").empty


def test_record_true_records_a_call_whatever_the_rate(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 0.0) as log:
        _lookup(store, log, record=True)
        _lookup(store, log)  # sampled at the rate: not recorded

    lookups = read_lookups(tmp_path / "lookups")
    assert log.written == 3
    assert lookups["entity.customer_id"].tolist() == [1, 2, 3]
    assert lookups["lookup_id"].nunique() == 1


def test_record_false_never_records_a_call(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 1.0) as log:
        for _ in range(5):
            frame = _lookup(store, log, record=False)

    assert frame["spend"].tolist()[0] == 10.0
    assert log.written == 0
    assert read_lookups(tmp_path / "lookups").empty


def test_a_forced_record_without_a_log_is_no_error(store: OnlineStore) -> None:
    rows = [{"customer_id": 1, "basket": 1.0}]
    lookup = OnlineFeatures(CATALOG, store, ["spend:spend", "double"])

    result = lookup.get(rows, now=NOW, record=True)

    assert result.frame["double_spend"].tolist() == [21.0]


def test_sampled_calls_are_recorded_whole(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 0.5, seed=11) as log:
        for _ in range(40):
            _lookup(store, log, ids=[1, 2])

    lookups = read_lookups(tmp_path / "lookups")
    calls = lookups.groupby("lookup_id").size()
    assert 10 <= len(calls) <= 30
    assert set(calls) == {2}


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_lookup_only_queues_its_record(store: OnlineStore, tmp_path: Path) -> None:
    log = LookupLog(tmp_path / "lookups", 1.0, flush_every=1000, flush_seconds=60)

    _lookup(store, log)

    assert log.written == 0
    assert not (tmp_path / "lookups").exists()
    log.flush()
    assert log.written == 3
    log.close()


def test_the_writer_writes_once_flush_every_lines_wait(store: OnlineStore, tmp_path: Path) -> None:
    log = LookupLog(tmp_path / "lookups", 1.0, flush_every=5, flush_seconds=60)

    _lookup(store, log)  # 3 lines wait
    _lookup(store, log)  # 6 lines: the writer wakes up

    assert _wait_until(lambda: log.written == 6)
    _lookup(store, log)
    log.close()  # the last 3 are written on close
    assert log.written == 9
    assert len(read_lookups(tmp_path / "lookups")) == 9


def test_the_writer_writes_after_flush_seconds(store: OnlineStore, tmp_path: Path) -> None:
    log = LookupLog(tmp_path / "lookups", 1.0, flush_every=1000, flush_seconds=0.05)

    _lookup(store, log)

    assert _wait_until(lambda: log.written == 3)
    log.close()


def test_records_after_close_are_dropped_and_counted(store: OnlineStore, tmp_path: Path) -> None:
    log = LookupLog(tmp_path / "lookups", 1.0)
    log.close()

    frame = _lookup(store, log)

    assert len(frame) == 3
    assert (log.written, log.dropped) == (0, 3)


def test_segments_roll_over(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 1.0, flush_every=1, segment_lines=4) as log:
        for _ in range(3):
            _lookup(store, log)

    segments = sorted((tmp_path / "lookups").glob("lookups-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in segments] == [4, 4, 1]
    assert len(read_lookups(tmp_path / "lookups")) == 9


def test_a_failing_directory_does_not_break_the_lookup(
    store: OnlineStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the log directory should be")
    log = LookupLog(blocked, 1.0, flush_every=1)

    with caplog.at_level(logging.WARNING, logger="keel.features._lookups"):
        frame = _lookup(store, log)
        log.close()  # the writer thread or close() meets the bad directory

    assert frame["spend"].tolist()[0] == 10.0
    assert log.errors == 1
    assert log.dropped == 3
    assert "could not write 3 online lookup records" in caplog.text


def test_a_value_that_cannot_be_logged_is_counted_not_raised(
    store: OnlineStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = LookupLog(tmp_path / "lookups", 1.0)
    rows = [{"customer_id": 1, "basket": 1.0, "odd": object()}]
    catalog = FeatureCatalog.of(
        [
            SPEND,
            OnDemandFeature(
                name="odd_feature",
                inputs=("odd",),
                outputs=(Field("odd_out", "string"),),
                function=lambda f: pd.DataFrame({"odd_out": f["odd"]}),
            ),
        ]
    )

    with caplog.at_level(logging.ERROR, logger="keel.features._lookups"):
        result = get_online_features(rows, ["odd_feature"], catalog, store, now=NOW, log=log)
        log.close()

    assert len(result.frame) == 1
    assert log.errors == 1
    assert "could not record an online lookup" in caplog.text


def test_a_line_cut_short_is_skipped_when_reading(store: OnlineStore, tmp_path: Path) -> None:
    with LookupLog(tmp_path / "lookups", 1.0) as log:
        _lookup(store, log)
    [segment] = (tmp_path / "lookups").glob("lookups-*.jsonl")
    with segment.open("ab") as handle:
        handle.write(b'{"lookup_id": "cut sho')

    assert len(read_lookups(tmp_path / "lookups")) == 3


def test_reading_an_empty_directory_gives_an_empty_frame(tmp_path: Path) -> None:
    frame = read_lookups(tmp_path)

    assert frame.empty
    assert list(frame.columns) == ["lookup_id", "at", "row", "requested"]
