"""Feature definitions (names, TTL, keys, references, the catalog) and reading a view's rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from keel.data import Field
from keel.errors import FeatureDefinitionError, FeatureStoreError, TimestampError
from keel.features import (
    DataFrameSource,
    Entity,
    FeatureCatalog,
    FeatureRef,
    FeatureView,
    OnDemandFeature,
    ParquetSource,
    SnapshotSource,
)
from keel.features._sources import read_view, source_path

from .conftest import MakeView

START = pd.Timestamp("2026-03-01", tz="UTC")
CUSTOMER = Entity("customer", ("customer_id",))


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_time": [START, START + pd.Timedelta(hours=1), START],
            "spend_7d": [7.0, 14.0, 21.0],
            "visits": [1, 2, 3],
        }
    )


def view(**changes: object) -> FeatureView:
    options: dict[str, object] = {
        "name": "spend",
        "entities": (CUSTOMER,),
        "source": DataFrameSource(rows()),
        "timestamp_column": "event_time",
        "ttl": timedelta(days=30),
        "features": (Field("spend_7d", "float"), Field("visits", "int")),
    }
    return FeatureView(**{**options, **changes})  # type: ignore[arg-type]


def ratio(**changes: object) -> OnDemandFeature:
    options: dict[str, object] = {
        "name": "ratio",
        "inputs": ("basket", "spend:spend_7d"),
        "outputs": (Field("ratio", "float"),),
        "function": lambda f: pd.DataFrame({"ratio": f["basket"] / f["spend_7d"]}),
    }
    return OnDemandFeature(**{**options, **changes})  # type: ignore[arg-type]


# -- names, keys, ttl ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "1st", "with-dash", "a b", "x" * 129])
def test_invalid_entity_name_is_refused(name: str) -> None:
    with pytest.raises(FeatureDefinitionError, match="entity name"):
        Entity(name, ("customer_id",))


def test_entity_without_join_keys_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="at least one join key"):
        Entity("customer", ())


def test_invalid_join_key_name_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="join key name 'customer id'"):
        Entity("customer", ("customer id",))


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_view_without_a_positive_ttl_is_refused(ttl: timedelta) -> None:
    with pytest.raises(FeatureDefinitionError, match="positive ttl"):
        view(ttl=ttl)


def test_view_without_entities_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="at least one entity"):
        view(entities=())


def test_view_without_features_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="declares no features"):
        view(features=())


@pytest.mark.parametrize("name", ["customer_id", "event_time"])
def test_feature_named_like_a_key_or_the_timestamp_is_refused(name: str) -> None:
    with pytest.raises(FeatureDefinitionError, match="join key or the timestamp"):
        view(features=(Field(name, "float"),))


def test_invalid_feature_name_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="feature name 'spend-7d'"):
        view(features=(Field("spend-7d", "float"),))


def test_view_join_keys_are_its_entities_keys_once_each() -> None:
    store = Entity("store", ("store_id", "customer_id"))
    assert view(entities=(CUSTOMER, store)).join_keys == ("customer_id", "store_id")


def test_unknown_feature_of_a_view_is_refused_listing_its_features() -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature 'spend'.*spend_7d, visits"):
        view().feature("spend")


def test_changing_the_transformation_changes_the_definition_hash() -> None:
    def double(raw: pd.DataFrame) -> pd.DataFrame:
        return raw.assign(spend_7d=raw["spend_7d"] * 2)

    assert view().definition_hash() == view().definition_hash()
    assert view(transformation=double).definition_hash() != view().definition_hash()


def test_on_demand_feature_without_outputs_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="declares no outputs"):
        ratio(outputs=())


def test_on_demand_inputs_split_into_request_fields_and_view_features() -> None:
    assert ratio().request_fields == ("basket",)
    assert ratio().view_inputs == (FeatureRef("spend", "spend_7d"),)


# -- on-demand apply -------------------------------------------------------------------------------


def test_on_demand_apply_returns_outputs_on_the_input_index() -> None:
    frame = pd.DataFrame({"basket": [2.0, 9.0], "spend_7d": [1.0, 3.0]}, index=[10, 20])
    pd.testing.assert_frame_equal(
        ratio().apply(frame), pd.DataFrame({"ratio": [2.0, 3.0]}, index=[10, 20])
    )


def test_on_demand_function_returning_a_series_names_it_after_its_one_output() -> None:
    feature = ratio(function=lambda f: f["basket"] * 2)
    assert feature.apply(pd.DataFrame({"basket": [1.0]})).columns.tolist() == ["ratio"]


def test_on_demand_function_missing_an_output_is_refused() -> None:
    feature = ratio(function=lambda f: pd.DataFrame({"other": f["basket"]}))
    with pytest.raises(FeatureDefinitionError, match="expected 1 rows with \\['ratio'\\]"):
        feature.apply(pd.DataFrame({"basket": [1.0]}))


def test_on_demand_function_changing_the_row_count_is_refused() -> None:
    feature = ratio(function=lambda f: pd.DataFrame({"ratio": [1.0, 2.0]}))
    with pytest.raises(FeatureDefinitionError, match="returned 2 rows"):
        feature.apply(pd.DataFrame({"basket": [1.0]}))


# -- references and the catalog --------------------------------------------------------------------


def test_feature_reference_is_parsed_into_view_and_feature() -> None:
    assert FeatureRef.parse("spend:spend_7d") == FeatureRef("spend", "spend_7d")
    assert str(FeatureRef.parse("spend:*")) == "spend:*"


@pytest.mark.parametrize("text", ["spend", ":spend_7d", "spend:"])
def test_malformed_feature_reference_is_refused(text: str) -> None:
    with pytest.raises(FeatureDefinitionError, match="VIEW:FEATURE"):
        FeatureRef.parse(text)


def test_catalog_holds_a_views_entities() -> None:
    assert FeatureCatalog.of([view()]).entities == {"customer": CUSTOMER}


def test_two_different_definitions_with_one_name_are_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="two different definitions.*'spend'"):
        FeatureCatalog.of([view(), view()])


def test_adding_the_same_definition_twice_is_allowed() -> None:
    spend = view()
    assert FeatureCatalog.of([spend, spend]).view("spend") is spend


def test_unknown_view_is_refused_listing_the_defined_ones() -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature view named 'x'.*spend"):
        FeatureCatalog.of([view()]).view("x")


def test_resolve_expands_view_star_in_declared_order_once_each() -> None:
    refs, on_demand = FeatureCatalog.of([view()]).resolve(["spend:visits", "spend:*"])
    assert refs == [FeatureRef("spend", "visits"), FeatureRef("spend", "spend_7d")]
    assert on_demand == []


def test_resolve_adds_the_view_inputs_of_on_demand_features() -> None:
    feature = ratio()
    refs, on_demand = FeatureCatalog.of([view(), feature]).resolve(["ratio", "spend:visits"])
    assert refs == [FeatureRef("spend", "visits"), FeatureRef("spend", "spend_7d")]
    assert on_demand == [feature]


def test_resolve_refuses_an_unknown_feature_of_a_known_view() -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature 'nope'"):
        FeatureCatalog.of([view()]).resolve(["spend:nope"])


def test_resolve_refuses_an_unknown_on_demand_name() -> None:
    with pytest.raises(FeatureDefinitionError, match="'nope' is neither VIEW:FEATURE"):
        FeatureCatalog.of([view()]).resolve(["nope"])


def test_resolve_refuses_an_on_demand_input_from_an_unknown_view() -> None:
    catalog = FeatureCatalog.of([view(), ratio(inputs=("basket", "other:spend_7d"))])
    with pytest.raises(FeatureDefinitionError, match="no feature view named 'other'"):
        catalog.resolve(["ratio"])


# -- reading a view's rows -------------------------------------------------------------------------


def test_read_view_returns_keys_timestamp_and_features_in_utc() -> None:
    frame = read_view(view(), naive="reject")
    assert list(frame.columns) == ["customer_id", "event_time", "spend_7d", "visits"]
    assert frame["event_time"].dtype == "datetime64[ns, UTC]"


def test_read_view_keeps_rows_inside_the_window() -> None:
    frame = read_view(
        view(),
        naive="reject",
        start=START + pd.Timedelta(minutes=30),
        end=START + pd.Timedelta(hours=2),
    )
    assert frame["spend_7d"].tolist() == [14.0]


def test_read_view_runs_the_transformation_first() -> None:
    def weekly(raw: pd.DataFrame) -> pd.DataFrame:
        return raw.assign(spend_1d=raw["spend_7d"] / 7)

    spend = view(transformation=weekly, features=(Field("spend_1d", "float"),))
    assert read_view(spend, naive="reject")["spend_1d"].tolist() == [1.0, 2.0, 3.0]


def test_transformation_output_missing_a_declared_feature_is_refused() -> None:
    spend = view(transformation=lambda raw: raw.drop(columns="visits"))
    with pytest.raises(
        FeatureDefinitionError, match="after its transformation the rows lack visits"
    ):
        read_view(spend, naive="reject")


def test_transformation_returning_something_else_than_a_frame_is_refused() -> None:
    spend = view(transformation=lambda raw: raw["spend_7d"])
    with pytest.raises(FeatureDefinitionError, match="returned Series, not a DataFrame"):
        read_view(spend, naive="reject")


def test_two_rows_of_one_entity_at_one_timestamp_are_refused() -> None:
    doubled = pd.concat([rows(), rows().iloc[[0]]], ignore_index=True)
    with pytest.raises(FeatureStoreError, match="2 rows share an entity key and event timestamp"):
        read_view(view(source=DataFrameSource(doubled)), naive="reject")


def test_source_without_the_timestamp_column_is_refused() -> None:
    spend = view(source=DataFrameSource(rows().drop(columns="event_time")))
    with pytest.raises(FeatureDefinitionError, match="no timestamp column 'event_time'"):
        read_view(spend, naive="reject")


def test_naive_source_timestamps_are_refused_by_default() -> None:
    naive = rows().assign(event_time=lambda r: r["event_time"].dt.tz_localize(None))
    with pytest.raises(TimestampError, match="'event_time'"):
        read_view(view(source=DataFrameSource(naive)), naive="reject")


def test_parquet_source_is_read(tmp_path: Path, make_view: MakeView) -> None:
    naive = rows().assign(event_time=lambda r: r["event_time"].dt.tz_localize(None))
    naive.to_parquet(tmp_path / "spend.parquet")  # naive: DuckDB's .df() warns on zoned ones
    spend = make_view(naive, source=ParquetSource(str(tmp_path / "spend.parquet")))
    frame = read_view(spend, naive="utc")
    assert frame["spend_7d"].tolist() == [7.0, 14.0, 21.0]
    assert frame["event_time"].tolist() == rows()["event_time"].tolist()


def test_missing_parquet_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FeatureStoreError, match="does not exist"):
        source_path(view(source=ParquetSource(str(tmp_path / "none.parquet"))), None)


def test_directory_source_reads_every_parquet_file_below_it(tmp_path: Path) -> None:
    spend = view(source=ParquetSource(str(tmp_path)))
    assert source_path(spend, None) == str(tmp_path / "**" / "*.parquet")


def test_snapshot_source_without_a_resolver_is_refused() -> None:
    with pytest.raises(FeatureStoreError, match="no snapshot store was given"):
        source_path(view(source=SnapshotSource("spend-2026")), None)


def test_snapshot_source_is_resolved_to_its_path() -> None:
    spend = view(source=SnapshotSource("spend-2026"))
    assert source_path(spend, lambda name: f"/snapshots/{name}.parquet") == (
        "/snapshots/spend-2026.parquet"
    )
