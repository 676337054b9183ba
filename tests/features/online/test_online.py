"""Online lookups: many entities per read, TTL at read time, freshness, on-demand features
computed by the same function as offline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.data import Field
from keel.errors import FeatureDefinitionError, TimestampError
from keel.features import DataFrameSource, Entity, FeatureCatalog, FeatureView, OnDemandFeature
from keel.features._online import OnlineFeatures, get_online_features
from keel.features.online import EntityKeys, OnlineRows, OnlineStore, SQLiteOnlineStore

T0 = pd.Timestamp("2026-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
CUSTOMER = Entity("customer", join_keys=("customer_id",))
STORE = Entity("store", join_keys=("store_id", "region"))

SPEND_ROWS = pd.DataFrame(
    {
        "customer_id": [1, 2, 3],
        "event_time": [T0, T0 + DAY, T0 - 40 * DAY],
        "spend": [10.0, 20.0, 30.0],
        "visits": [3, 4, 5],
        "vip": [True, False, True],
        "tier": ["gold", "silver", "bronze"],
        "last_seen": [T0 - DAY, T0, T0],
    }
)
SPEND = FeatureView(
    name="spend",
    entities=(CUSTOMER,),
    source=DataFrameSource(SPEND_ROWS),
    timestamp_column="event_time",
    ttl=timedelta(days=30),
    features=(
        Field("spend", "float"),
        Field("visits", "int"),
        Field("vip", "bool"),
        Field("tier", "string"),
        Field("last_seen", "timestamp"),
    ),
)
STORE_ROWS = pd.DataFrame(
    {
        "store_id": [7, 7],
        "region": ["eu", "us"],
        "event_time": [T0, T0],
        "footfall": [100.0, 200.0],
        "spend": [1.0, 2.0],
    }
)
STORES = FeatureView(
    name="stores",
    entities=(STORE,),
    source=DataFrameSource(STORE_ROWS),
    timestamp_column="event_time",
    ttl=timedelta(days=1),
    features=(Field("footfall", "float"), Field("spend", "float")),
)


def _ratio(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"basket_ratio": frame["basket_value"] / frame["spend"]})


RATIO = OnDemandFeature(
    name="basket_ratio",
    inputs=("basket_value", "spend:spend"),
    outputs=(Field("basket_ratio", "float"),),
    function=_ratio,
)
CATALOG = FeatureCatalog.of([SPEND, STORES, RATIO])
NOW = T0 + 2 * DAY


def _load(store: OnlineStore, view: FeatureView, rows: pd.DataFrame) -> None:
    """Write every row of ``rows`` (one per entity) as materialization would."""
    store.write(
        view.name,
        rows[list(view.join_keys)],
        rows[view.timestamp_column],
        {name: rows[name] for name in view.feature_names},
    )


@pytest.fixture
def loaded(online_store: OnlineStore) -> OnlineStore:
    _load(online_store, SPEND, SPEND_ROWS)
    _load(online_store, STORES, STORE_ROWS)
    return online_store


def test_features_come_back_one_row_per_entity_row_in_order(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 2}, {"customer_id": 1}],
        ["spend:spend", "spend:visits"],
        CATALOG,
        loaded,
        now=NOW,
    )

    assert result.frame.to_dict("list") == {"spend": [20.0, 10.0], "visits": [4, 3]}


def test_columns_have_the_declared_types(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 1}, {"customer_id": 99}], ["spend:*"], CATALOG, loaded, now=NOW
    )

    dtypes = {name: str(dtype) for name, dtype in result.frame.dtypes.items()}
    assert dtypes == {
        "spend": "float64",
        "visits": "Int64",
        "vip": "boolean",
        "tier": "str",
        "last_seen": "datetime64[ns, UTC]",
    }
    assert result.frame["last_seen"][0] == T0 - DAY
    assert result.frame.iloc[1].isna().all()


def test_a_view_wildcard_gives_every_feature_of_the_view(loaded: OnlineStore) -> None:
    result = get_online_features([{"customer_id": 1}], ["spend:*"], CATALOG, loaded, now=NOW)

    assert list(result.frame.columns) == list(SPEND.feature_names)


def test_an_unknown_entity_gets_nulls_and_is_not_found(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 1}, {"customer_id": 404}], ["spend:spend"], CATALOG, loaded, now=NOW
    )

    assert result.frame["spend"].isna().tolist() == [False, True]
    fresh = result.freshness["spend"]
    assert fresh.found.tolist() == [True, False]
    assert fresh.fresh.tolist() == [True, False]
    assert np.isnan(fresh.age_seconds[1])


def test_a_value_older_than_the_ttl_is_null_and_not_fresh(loaded: OnlineStore) -> None:
    result = get_online_features([{"customer_id": 3}], ["spend:spend"], CATALOG, loaded, now=NOW)

    assert result.frame["spend"].isna().all()
    fresh = result.freshness["spend"]
    assert (bool(fresh.found[0]), bool(fresh.fresh[0])) == (True, False)
    assert fresh.age_seconds[0] == pytest.approx((42 * DAY).total_seconds())
    assert fresh.event_timestamps[0] == T0 - 40 * DAY


def test_a_value_exactly_at_the_ttl_is_still_fresh(loaded: OnlineStore) -> None:
    at_ttl = T0 + SPEND.ttl
    result = get_online_features([{"customer_id": 1}], ["spend:spend"], CATALOG, loaded, now=at_ttl)

    assert result.frame["spend"].tolist() == [10.0]
    assert result.freshness["spend"].age_seconds[0] == SPEND.ttl.total_seconds()


def test_the_ttl_is_applied_at_the_lookup_time(loaded: OnlineStore) -> None:
    later = T0 + SPEND.ttl + pd.Timedelta(seconds=1)
    result = get_online_features([{"customer_id": 1}], ["spend:spend"], CATALOG, loaded, now=later)

    assert result.frame["spend"].isna().all()
    assert result.at == later


def test_ages_are_reported_per_entity_row(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 1}, {"customer_id": 2}], ["spend:spend"], CATALOG, loaded, now=NOW
    )

    ages = result.freshness["spend"].age_seconds.tolist()
    assert ages == [(2 * DAY).total_seconds(), DAY.total_seconds()]


def test_a_row_newer_than_the_lookup_time_is_used_with_a_negative_age(loaded: OnlineStore) -> None:
    result = get_online_features([{"customer_id": 2}], ["spend:spend"], CATALOG, loaded, now=T0)

    assert result.frame["spend"].tolist() == [20.0]
    assert result.freshness["spend"].age_seconds[0] == -DAY.total_seconds()


def test_composite_keys_are_looked_up(loaded: OnlineStore) -> None:
    rows = [{"store_id": 7, "region": "us"}, {"store_id": 7, "region": "eu"}]
    result = get_online_features(rows, ["stores:footfall"], CATALOG, loaded, now=T0)

    assert result.frame["footfall"].tolist() == [200.0, 100.0]


def test_entity_rows_as_a_frame_keep_their_index(loaded: OnlineStore) -> None:
    rows = pd.DataFrame({"customer_id": [2, 1]}, index=["b", "a"])
    result = get_online_features(
        rows,
        ["spend:spend", "basket_ratio"],
        CATALOG,
        loaded,
        now=NOW,
        request={"basket_value": 5.0},
    )

    assert list(result.frame.index) == ["b", "a"]
    assert result.frame["spend"].to_dict() == {"b": 20.0, "a": 10.0}
    assert result.frame["basket_ratio"].to_dict() == {"b": 0.25, "a": 0.5}


def test_on_demand_features_online_equal_the_offline_function(loaded: OnlineStore) -> None:
    rows = [
        {"customer_id": 1, "basket_value": 3.0},
        {"customer_id": 2, "basket_value": 50.0},
        {"customer_id": 404, "basket_value": 1.0},
    ]
    online = get_online_features(rows, ["basket_ratio"], CATALOG, loaded, now=NOW)

    offline_inputs = pd.DataFrame({"basket_value": [3.0, 50.0, 1.0], "spend": [10.0, 20.0, np.nan]})
    offline = RATIO.apply(offline_inputs)
    pd.testing.assert_series_equal(online.frame["basket_ratio"], offline["basket_ratio"])
    assert list(online.frame.columns) == ["basket_ratio"]  # its inputs were not asked for


def test_request_fields_can_come_from_the_request(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 1}, {"customer_id": 2}],
        ["basket_ratio"],
        CATALOG,
        loaded,
        request={"basket_value": [1.0, 2.0]},
        now=NOW,
    )

    assert result.frame["basket_ratio"].tolist() == [0.1, 0.1]


def test_a_scalar_request_field_applies_to_every_row(loaded: OnlineStore) -> None:
    result = get_online_features(
        [{"customer_id": 1}, {"customer_id": 2}],
        ["basket_ratio"],
        CATALOG,
        loaded,
        request={"basket_value": 40.0},
        now=NOW,
    )

    assert result.frame["basket_ratio"].tolist() == [4.0, 2.0]


def test_a_missing_request_field_is_an_error(loaded: OnlineStore) -> None:
    with pytest.raises(FeatureDefinitionError, match="needs request field 'basket_value'"):
        get_online_features([{"customer_id": 1}], ["basket_ratio"], CATALOG, loaded, now=NOW)


def test_a_missing_join_key_is_an_error(loaded: OnlineStore) -> None:
    with pytest.raises(FeatureDefinitionError, match="lack join key 'region'"):
        get_online_features([{"store_id": 7}], ["stores:footfall"], CATALOG, loaded, now=NOW)


def test_an_unknown_feature_is_an_error(loaded: OnlineStore) -> None:
    with pytest.raises(FeatureDefinitionError, match="has no feature 'nope'"):
        get_online_features([{"customer_id": 1}], ["spend:nope"], CATALOG, loaded, now=NOW)


def test_two_features_with_one_name_need_full_names(loaded: OnlineStore) -> None:
    rows = [{"customer_id": 1, "store_id": 7, "region": "eu"}]
    with pytest.raises(FeatureDefinitionError, match="full_names=True"):
        get_online_features(rows, ["spend:spend", "stores:spend"], CATALOG, loaded, now=T0)

    result = get_online_features(
        rows, ["spend:spend", "stores:spend"], CATALOG, loaded, now=T0, full_names=True
    )
    assert result.frame.to_dict("list") == {"spend__spend": [10.0], "stores__spend": [1.0]}


def test_naive_lookup_times_follow_the_time_zone_rule(loaded: OnlineStore) -> None:
    naive_now = pd.Timestamp("2026-01-03")
    with pytest.raises(TimestampError, match="no time zone"):
        get_online_features([{"customer_id": 1}], ["spend:spend"], CATALOG, loaded, now=naive_now)

    result = get_online_features(
        [{"customer_id": 1}], ["spend:spend"], CATALOG, loaded, now=naive_now, naive="utc"
    )
    assert result.at == NOW


def test_no_entity_rows_give_an_empty_frame(loaded: OnlineStore) -> None:
    result = get_online_features([], ["spend:spend"], CATALOG, loaded, now=NOW)

    assert list(result.frame.columns) == ["spend"]
    assert len(result.frame) == 0


class _CountingStore(SQLiteOnlineStore):
    """The real SQLite store, counting the reads it serves."""

    reads: list[tuple[str, int]]

    def read(self, view: str, entity_keys: EntityKeys, features: Sequence[str]) -> OnlineRows:
        self.reads.append((view, len(entity_keys)))
        return super().read(view, entity_keys, features)


def test_each_view_is_read_once_per_lookup(tmp_path: Path) -> None:
    store = _CountingStore(f"sqlite:///{tmp_path / 'online.db'}")
    store.reads = []
    _load(store, SPEND, SPEND_ROWS)
    rows: list[dict[str, Any]] = [
        {"customer_id": i, "store_id": 7, "region": "eu", "basket_value": 1.0} for i in range(100)
    ]

    get_online_features(
        rows,
        ["spend:spend", "spend:visits", "basket_ratio", "stores:footfall"],
        CATALOG,
        store,
        now=NOW,
    )

    assert sorted(store.reads) == [("spend", 100), ("stores", 100)]
    store.close()


def test_a_lookup_built_once_serves_repeated_requests(loaded: OnlineStore) -> None:
    lookup = OnlineFeatures(CATALOG, loaded, ["spend:spend", "basket_ratio"])

    first = lookup.get([{"customer_id": 1}], request={"basket_value": 5.0}, now=NOW)
    second = lookup.get([{"customer_id": 2}], request={"basket_value": 5.0}, now=NOW)

    assert first.frame.to_dict("list") == {"spend": [10.0], "basket_ratio": [0.5]}
    assert second.frame.to_dict("list") == {"spend": [20.0], "basket_ratio": [0.25]}


def test_unknown_features_are_refused_when_the_lookup_is_built(loaded: OnlineStore) -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature view named 'nope'"):
        OnlineFeatures(CATALOG, loaded, ["nope:x"])
