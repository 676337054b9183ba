"""The OnlineStore contract: every test runs on SQLite and on the real Redis server."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.errors import FeatureStoreError, OnlineStoreUnavailable, TimestampError
from keel.features.online import OnlineStore, encode_key, open_online_store
from keel.features.online._base import display_url

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _stamps(*offsets_seconds: float) -> pd.Series:
    return pd.Series([T0 + pd.Timedelta(seconds=s) for s in offsets_seconds])


def test_every_value_type_round_trips(online_store: OnlineStore) -> None:
    paris = pd.Timestamp("2026-03-01 12:00:00.123456789", tz="Europe/Paris")
    naive = pd.Timestamp("2020-05-05 05:05:05")
    values = {
        "float": [1.25, -0.1],
        "int": [2**62, -7],
        "bool": [True, False],
        "str": ["café ☕", ""],
        "none": [None, None],
        "nan": [float("nan"), 0.5],
        "inf": [math.inf, -math.inf],
        "aware": [paris, None],
        "naive": [naive, None],
        "numpy_nat": [np.datetime64("NaT"), np.datetime64("2026-01-01T00:00:00")],
    }
    online_store.write("types", [(1,), (2,)], _stamps(0, 0), values)

    rows = online_store.read("types", [(1,), (2,)], list(values))

    assert rows.row(0) == {
        "float": 1.25,
        "int": 2**62,
        "bool": True,
        "str": "café ☕",
        "none": None,
        "nan": None,
        "inf": math.inf,
        "aware": paris.tz_convert("UTC"),
        "naive": naive,
        "numpy_nat": None,
    }
    assert rows.row(1)["inf"] == -math.inf
    assert rows.row(1)["numpy_nat"] == pd.Timestamp("2026-01-01")
    assert type(rows.row(0)["int"]) is int
    assert type(rows.row(0)["bool"]) is bool
    assert str(rows.row(0)["aware"].tz) == "UTC"
    assert rows.row(0)["naive"].tzinfo is None


def test_numpy_and_pandas_columns_round_trip_with_their_type(online_store: OnlineStore) -> None:
    frame = pd.DataFrame(
        {
            "f": np.array([1.5, np.nan]),
            "i": np.array([3, 4], dtype=np.int32),
            "b": np.array([True, False]),
            "ni": pd.array([5, None], dtype="Int64"),
            "nb": pd.array([None, True], dtype="boolean"),
            "s": pd.array(["a", None], dtype="str"),
            "t": pd.to_datetime(["2026-01-01 01:00", None]).tz_localize("Asia/Tokyo"),
        }
    )
    online_store.write("np", [(1,), (2,)], _stamps(0, 0), {c: frame[c] for c in frame.columns})

    rows = online_store.read("np", [(1,), (2,)], list(frame.columns))

    assert rows.row(0) == {
        "f": 1.5,
        "i": 3,
        "b": True,
        "ni": 5,
        "nb": None,
        "s": "a",
        "t": pd.Timestamp("2025-12-31 16:00", tz="UTC"),
    }
    assert rows.row(1) == {
        "f": None,
        "i": 4,
        "b": False,
        "ni": None,
        "nb": True,
        "s": None,
        "t": None,
    }


def test_composite_keys_are_distinct_entities(online_store: OnlineStore) -> None:
    keys = [(1, "eu"), (1, "us"), (2, "eu")]
    online_store.write("composite", keys, _stamps(0, 0, 0), {"x": [1.0, 2.0, 3.0]})

    rows = online_store.read("composite", [(2, "eu"), (1, "us"), (1, "eu"), (2, "us")], ["x"])

    assert rows.columns["x"] == [3.0, 2.0, 1.0, None]


def test_int_and_string_keys_are_different_entities(online_store: OnlineStore) -> None:
    online_store.write("kinds", [(1,), ("1",), (True,)], _stamps(0, 0, 0), {"x": [1, 2, 3]})

    rows = online_store.read("kinds", [(1,), ("1",), (True,)], ["x"])

    assert rows.columns["x"] == [1, 2, 3]


def test_integral_floats_and_numpy_ints_find_int_keys(online_store: OnlineStore) -> None:
    online_store.write("numbers", [(7,)], _stamps(0), {"x": [1]})

    rows = online_store.read("numbers", [(7.0,), (np.int64(7),), (np.float32(7),)], ["x"])

    assert rows.columns["x"] == [1, 1, 1]


def test_keys_can_be_given_as_a_frame(online_store: OnlineStore) -> None:
    keys = pd.DataFrame({"id": [1, 2], "region": ["eu", "us"]})
    online_store.write("frame_keys", keys, _stamps(0, 0), {"x": [1.0, 2.0]})

    rows = online_store.read("frame_keys", [(2, "us"), (1, "eu")], ["x"])

    assert rows.columns["x"] == [2.0, 1.0]


def test_missing_entities_are_not_found_and_null(online_store: OnlineStore) -> None:
    online_store.write("sparse", [(1,)], _stamps(5), {"x": [1.0], "y": ["a"]})

    rows = online_store.read("sparse", [(404,), (1,)], ["x", "y"])

    assert rows.found.tolist() == [False, True]
    assert rows.row(0) == {"x": None, "y": None}
    assert rows.event_timestamps.isna().tolist() == [True, False]
    assert rows.event_timestamps[1] == T0 + pd.Timedelta(seconds=5)


def test_a_key_with_a_missing_part_is_never_found(online_store: OnlineStore) -> None:
    online_store.write("nullkey", [(1, "a")], _stamps(0), {"x": [1.0]})

    rows = online_store.read("nullkey", [(1, None), (float("nan"), "a"), (1, "a")], ["x"])

    assert rows.found.tolist() == [False, False, True]


def test_a_key_with_a_missing_part_cannot_be_written(online_store: OnlineStore) -> None:
    with pytest.raises(FeatureStoreError, match="missing part"):
        online_store.write("nullkey", [(None,)], _stamps(0), {"x": [1.0]})


def test_many_entities_are_read_in_one_call_in_the_order_asked(online_store: OnlineStore) -> None:
    count = 3000
    keys = [(i,) for i in range(count)]
    online_store.write(
        "many", keys, _stamps(*range(count)), {"x": [float(i) for i in range(count)]}
    )
    wanted = [(i,) for i in range(count + 50, -1, -3)] + [(9,), (9,)]

    rows = online_store.read("many", wanted, ["x"])

    expected = [float(k) if k < count else None for (k,) in wanted]
    assert rows.columns["x"] == expected
    assert len(rows) == len(wanted)


def test_reading_no_entities_returns_empty_columns(online_store: OnlineStore) -> None:
    rows = online_store.read("nothing", [], ["x"])

    assert rows.columns == {"x": []}
    assert len(rows) == 0


def test_a_feature_the_row_lacks_reads_as_null(online_store: OnlineStore) -> None:
    online_store.write("partial", [(1,)], _stamps(0), {"x": [1.0]})

    rows = online_store.read("partial", [(1,)], ["x", "not_written"])

    assert rows.row(0) == {"x": 1.0, "not_written": None}


def test_rows_written_with_other_features_stay_readable(online_store: OnlineStore) -> None:
    online_store.write("evolving", [(1,)], _stamps(0), {"old": [1.0], "kept": [2.0]})
    online_store.write("evolving", [(2,)], _stamps(0), {"kept": [3.0], "new": ["n"]})

    rows = online_store.read("evolving", [(1,), (2,)], ["old", "kept", "new"])

    assert rows.row(0) == {"old": 1.0, "kept": 2.0, "new": None}
    assert rows.row(1) == {"old": None, "kept": 3.0, "new": "n"}


def test_a_new_store_object_reads_what_another_wrote(
    online_store: OnlineStore, reopen: Callable[[], OnlineStore]
) -> None:
    online_store.write("shared", [(1,)], _stamps(0), {"x": [1.5], "t": [T0]})

    rows = reopen().read("shared", [(1,)], ["t", "x"])

    assert rows.row(0) == {"t": T0, "x": 1.5}


def test_an_older_row_never_overwrites_a_newer_one(online_store: OnlineStore) -> None:
    online_store.write("order", [(1,)], _stamps(10), {"x": [10.0]})

    replaced = online_store.write("order", [(1,)], _stamps(5), {"x": [5.0]})

    assert replaced == 0
    rows = online_store.read("order", [(1,)], ["x"])
    assert rows.columns["x"] == [10.0]
    assert rows.event_timestamps[0] == T0 + pd.Timedelta(seconds=10)


def test_a_row_with_the_same_timestamp_replaces_the_stored_one(online_store: OnlineStore) -> None:
    online_store.write("same", [(1,)], _stamps(10), {"x": [1.0]})

    replaced = online_store.write("same", [(1,)], _stamps(10), {"x": [2.0]})

    assert replaced == 1
    assert online_store.read("same", [(1,)], ["x"]).columns["x"] == [2.0]


def test_write_counts_the_rows_it_inserted_or_replaced(online_store: OnlineStore) -> None:
    online_store.write("count", [(1,), (2,)], _stamps(10, 10), {"x": [1.0, 2.0]})

    replaced = online_store.write(
        "count", [(1,), (2,), (3,)], _stamps(20, 0, 0), {"x": [1.1, 2.1, 3.1]}
    )

    assert replaced == 2  # key 1 newer, key 2 older (kept), key 3 new


def test_timestamps_before_1970_and_nanoseconds_are_ordered(online_store: OnlineStore) -> None:
    early = pd.Series([pd.Timestamp("1960-01-01 00:00:00.000000001", tz="UTC")])
    earlier = pd.Series([pd.Timestamp("1960-01-01", tz="UTC")])
    online_store.write("old", [(1,)], early, {"x": [2.0]})
    online_store.write("old", [(1,)], earlier, {"x": [1.0]})

    rows = online_store.read("old", [(1,)], ["x"])

    assert rows.columns["x"] == [2.0]
    assert rows.event_timestamps[0] == early[0]


_WRITES = st.lists(
    st.tuples(
        st.integers(0, 4),  # key
        st.integers(-(2**62), 2**62),  # event time in ns
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=_WRITES)
def test_any_order_of_writes_keeps_the_newest_row_per_key(
    online_store: OnlineStore, writes: list[tuple[int, int, float]]
) -> None:
    view = f"v{uuid.uuid4().hex[:10]}"
    for key, nanos, value in writes:  # one write call per row: every order is exercised
        stamp = pd.Series([pd.Timestamp(nanos, unit="ns", tz="UTC")])
        online_store.write(view, [(key,)], stamp, {"x": [value], "ns": [nanos]})

    keys = sorted({key for key, _, _ in writes})
    rows = online_store.read(view, [(k,) for k in keys], ["x", "ns"])

    for index, key in enumerate(keys):
        newest = max(nanos for k, nanos, _ in writes if k == key)
        last_at_newest = [v for k, n, v in writes if k == key and n == newest][-1]
        assert rows.row(index) == {"x": last_at_newest, "ns": newest}
        assert int(rows.event_ns[index]) == newest


def test_views_do_not_share_entity_rows(online_store: OnlineStore) -> None:
    online_store.write("a", [(1,)], _stamps(0), {"x": [1.0]})
    online_store.write("b", [(1,)], _stamps(0), {"x": [2.0]})

    assert online_store.read("a", [(1,)], ["x"]).columns["x"] == [1.0]
    assert online_store.read("b", [(1,)], ["x"]).columns["x"] == [2.0]


def test_delete_view_removes_only_that_view(online_store: OnlineStore) -> None:
    online_store.write("gone", [(1,), (2,)], _stamps(0, 0), {"x": [1.0, 2.0]})
    online_store.write("kept", [(1,)], _stamps(0), {"x": [3.0]})

    removed = online_store.delete_view("gone")

    assert removed == 2
    assert online_store.read("gone", [(1,), (2,)], ["x"]).found.tolist() == [False, False]
    assert online_store.read("kept", [(1,)], ["x"]).columns["x"] == [3.0]


def test_a_deleted_view_can_be_written_again(online_store: OnlineStore) -> None:
    online_store.write("again", [(1,)], _stamps(10), {"x": [1.0]})
    online_store.delete_view("again")

    online_store.write("again", [(1,)], _stamps(0), {"x": [2.0]})

    assert online_store.read("again", [(1,)], ["x"]).columns["x"] == [2.0]


def test_naive_event_timestamps_are_refused(online_store: OnlineStore) -> None:
    with pytest.raises(TimestampError, match="no time zone"):
        online_store.write("naive", [(1,)], [datetime(2026, 1, 1)], {"x": [1.0]})


def test_aware_datetimes_are_accepted_as_event_timestamps(online_store: OnlineStore) -> None:
    online_store.write("aware", [(1,)], [datetime(2026, 1, 1, tzinfo=UTC)], {"x": [1.0]})

    assert online_store.read("aware", [(1,)], ["x"]).event_timestamps[0] == T0


def test_a_value_of_an_unsupported_type_is_refused(online_store: OnlineStore) -> None:
    with pytest.raises(FeatureStoreError, match="feature 'x' holds a list"):
        online_store.write("bad", [(1,)], _stamps(0), {"x": [[1, 2]]})


def test_mismatched_column_lengths_are_refused(online_store: OnlineStore) -> None:
    with pytest.raises(FeatureStoreError, match="2 values for 1 entity keys"):
        online_store.write("bad", [(1,)], _stamps(0), {"x": [1.0, 2.0]})


def test_ping_succeeds_on_a_reachable_store(online_store: OnlineStore) -> None:
    online_store.ping()


def test_reads_from_several_threads_see_the_same_rows(online_store: OnlineStore) -> None:
    online_store.write("threads", [(1,)], _stamps(0), {"x": [1.0]})
    seen: list[list[object]] = []

    def read() -> None:
        seen.append(online_store.read("threads", [(1,)], ["x"]).columns["x"])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen == [[1.0]] * 4


# -- opening stores --------------------------------------------------------------------------------


def test_unreachable_redis_raises_online_store_unavailable() -> None:
    unreachable = r"cannot reach the online store redis://127\.0\.0\.1:1/0"
    with (
        open_online_store("redis://127.0.0.1:1/0?socket_connect_timeout=0.5") as store,
        pytest.raises(OnlineStoreUnavailable, match=unreachable),
    ):
        store.read("v", [(1,)], ["x"])


def test_unreachable_redis_fails_ping() -> None:
    with (
        open_online_store("redis://127.0.0.1:1/0?socket_connect_timeout=0.5") as store,
        pytest.raises(OnlineStoreUnavailable, match="Connection"),
    ):
        store.ping()


def test_a_sqlite_path_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(OnlineStoreUnavailable, match="cannot reach the online store sqlite"):
        open_online_store(f"sqlite:///{blocker}/online.db")


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(FeatureStoreError, match="not an online store URL"):
        open_online_store("memcached://127.0.0.1/0")


def test_the_store_url_hides_the_password() -> None:
    with open_online_store("redis://:s3cret@127.0.0.1:6379/3?prefix=p") as store:
        assert "s3cret" not in store.url
        assert store.url == "redis://127.0.0.1:6379/3?prefix=p"
    assert display_url("redis://user:pw@host:1/0") == "redis://user@host:1/0"


def test_key_encoding_is_a_typed_json_array() -> None:
    assert encode_key((42,)) == b"[42]"
    assert encode_key(("42",)) == b'["42"]'
    assert encode_key((42, "eu")) == b'[42,"eu"]'
    assert encode_key((True,)) == b"[true]"
    assert encode_key((np.int64(42), 42.0)) == b"[42,42]"
    assert encode_key((None,)) is None


def test_a_key_part_of_an_unsupported_type_is_refused() -> None:
    with pytest.raises(FeatureStoreError, match="key parts are int, str or bool"):
        encode_key((timedelta(days=1),))


def test_an_infinite_key_part_is_refused() -> None:
    with pytest.raises(FeatureStoreError, match="not a finite number"):
        encode_key((math.inf,))
