"""The point-in-time join: latest row at or before each label, inside the TTL, every label kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data import Field
from keel.errors import FeatureDefinitionError, FeatureStoreError, TimestampError
from keel.features import (
    FeatureCatalog,
    FeatureView,
    OnDemandFeature,
    ParquetSource,
    SnapshotSource,
)
from keel.features._offline import get_training_frame

from .conftest import MakeView

START = pd.Timestamp("2026-03-01", tz="UTC")
ENGINES = ["numpy", "duckdb"]
# the property tests share one database: opening one takes ~30 ms, more than a small join
SHARED = duckdb.connect(config={"threads": 1})


def at(hours: float) -> pd.Timestamp:
    return START + pd.Timedelta(hours=hours)


def moments(offsets: list[int], unit: str) -> pd.Series:
    return START + pd.to_timedelta(pd.Series(offsets, dtype="int64"), unit=unit)


def spend_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "event_time": [at(0), at(10), at(20), at(5)],
            "spend_7d": [10.0, 11.0, 12.0, 20.0],
        }
    )


def labels_at(*rows: tuple[Any, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [key for key, _ in rows],
            "event_timestamp": [at(hours) for _, hours in rows],
            "target": range(len(rows)),
        }
    )


def join(labels: pd.DataFrame, features: list[str], *views: Any, **options: Any) -> pd.DataFrame:
    return get_training_frame(labels, features, FeatureCatalog.of(views), **options)


def to_parquet(rows: pd.DataFrame, path: Path) -> ParquetSource:
    rows.to_parquet(path)
    return ParquetSource(str(path))


# -- as of the label's time ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_label_gets_the_latest_row_at_or_before_its_time(make_view: MakeView, engine: str) -> None:
    frame = join(labels_at((1, 15)), ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["spend_7d"].tolist() == [11.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_row_stamped_exactly_at_the_label_time_is_used(make_view: MakeView, engine: str) -> None:
    frame = join(labels_at((1, 20)), ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["spend_7d"].tolist() == [12.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_row_after_the_label_time_is_never_used(make_view: MakeView, engine: str) -> None:
    labels = labels_at((1, 19.999), (2, 4.999))
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["spend_7d"].tolist()[0] == 11.0
    assert np.isnan(frame["spend_7d"].tolist()[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_row_exactly_one_ttl_old_is_used(make_view: MakeView, engine: str) -> None:
    view = make_view(spend_rows(), ttl=timedelta(hours=3))
    frame = join(labels_at((2, 8)), ["spend:spend_7d"], view, engine=engine)
    assert frame["spend_7d"].tolist() == [20.0]
    assert frame["spend__found"].tolist() == [True]


@pytest.mark.parametrize("engine", ENGINES)
def test_row_older_than_the_ttl_gives_nulls_and_found_false(
    make_view: MakeView, engine: str
) -> None:
    view = make_view(spend_rows(), ttl=timedelta(hours=3))
    frame = join(labels_at((2, 8.001)), ["spend:spend_7d"], view, engine=engine)
    assert frame["spend_7d"].isna().all()
    assert frame["spend__found"].tolist() == [False]


# -- every label row, once, in order ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_label_whose_entity_has_no_rows_is_kept_with_nulls(
    make_view: MakeView, engine: str
) -> None:
    labels = labels_at((3, 30), (1, 30), (2, -1))
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["target"].tolist() == [0, 1, 2]
    assert frame["spend__found"].tolist() == [False, True, False]


@pytest.mark.parametrize("engine", ENGINES)
def test_output_keeps_label_rows_index_and_columns_then_features(
    make_view: MakeView, engine: str
) -> None:
    labels = labels_at((2, 9), (1, 15), (2, 9), (1, 1)).set_axis([7, 7, 3, 0])
    labels["note"] = ["a", "b", "c", "d"]
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    pd.testing.assert_frame_equal(frame[labels.columns], labels)
    assert list(frame.columns) == [*labels.columns, "spend_7d", "spend__found"]
    assert frame["spend_7d"].tolist() == [20.0, 11.0, 20.0, 10.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_null_value_in_a_found_row_is_told_apart_from_a_missing_row(
    make_view: MakeView, engine: str
) -> None:
    rows = spend_rows().assign(spend_7d=[10.0, None, 12.0, 20.0])
    frame = join(labels_at((1, 15), (3, 15)), ["spend:spend_7d"], make_view(rows), engine=engine)
    assert frame["spend_7d"].isna().all()
    assert frame["spend__found"].tolist() == [True, False]


# -- the brute-force oracle ------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[tuple[int | None, int]], int]:
    moments = st.integers(0, 40)
    rows = draw(st.lists(st.tuples(st.integers(0, 3), moments), max_size=30, unique=True))
    labels = draw(st.lists(st.tuples(st.none() | st.integers(0, 4), moments), max_size=25))
    return rows, labels, draw(st.integers(1, 45))


def oracle(rows: list[tuple[int, int]], labels: list[tuple[int | None, int]], ttl: int) -> list:
    """For each label: the row id of the latest row of its key at or before it, within ttl."""
    answers: list[int | None] = []
    for key, moment in labels:
        earlier = [(t, i) for i, (k, t) in enumerate(rows) if k == key and t <= moment]
        latest = max(earlier, default=None)
        answers.append(latest[1] if latest and moment - latest[0] <= ttl else None)
    return answers


@pytest.mark.parametrize("engine", ENGINES)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_join_equals_a_brute_force_oracle(
    make_view: MakeView,
    engine: str,
    scenario: tuple[list[tuple[int, int]], list[tuple[int | None, int]], int],
) -> None:
    rows, labels, ttl = scenario
    features = pd.DataFrame(
        {
            "customer_id": pd.array([k for k, _ in rows], dtype="int64"),
            "event_time": moments([t for _, t in rows], "s"),
            "row_id": pd.array(range(len(rows)), dtype="int64"),
        }
    )
    view = make_view(features, ttl=timedelta(seconds=ttl))
    label_frame = pd.DataFrame(
        {
            "customer_id": pd.array([k for k, _ in labels], dtype="Int64"),
            "event_timestamp": moments([t for _, t in labels], "s"),
            "label_id": range(len(labels)),
        }
    )
    frame = join(label_frame, ["spend:row_id"], view, engine=engine, connection=SHARED)
    assert frame["label_id"].tolist() == list(range(len(labels)))  # none dropped, none added
    expected = oracle(rows, labels, ttl)
    assert [None if pd.isna(v) else v for v in frame["row_id"]] == expected
    assert frame["spend__found"].tolist() == [e is not None for e in expected]


@st.composite
def feature_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    size = draw(st.integers(0, 40))
    cells = st.tuples(st.integers(0, 5), st.integers(0, 100))
    keys = draw(st.lists(cells, min_size=size, max_size=size, unique=True))
    maybe = st.none() | st.integers(-5, 5)
    rows = pd.DataFrame(
        {
            "customer_id": pd.array([k for k, _ in keys], dtype="int64"),
            "event_time": moments([t for _, t in keys], "min"),
            "amount": pd.array(draw(st.lists(maybe, min_size=size, max_size=size)), "Float64"),
            "visits": pd.array(draw(st.lists(maybe, min_size=size, max_size=size)), "Int64"),
            "member": pd.array(draw(st.lists(st.booleans(), min_size=size, max_size=size))),
        }
    ).astype({"amount": "float64"})
    count = draw(st.integers(0, 30))
    labels = pd.DataFrame(
        {
            "customer_id": draw(st.lists(st.integers(0, 6), min_size=count, max_size=count)),
            "event_timestamp": moments(
                draw(st.lists(st.integers(-10, 120), min_size=count, max_size=count)), "min"
            ),
        }
    )
    return rows, labels, draw(st.integers(1, 60))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=feature_tables())
def test_numpy_and_duckdb_engines_give_the_same_frame_on_parquet_and_in_memory(
    make_view: MakeView, tmp_path_factory: pytest.TempPathFactory, case: Any
) -> None:
    rows, labels, ttl = case
    path = tmp_path_factory.mktemp("views") / "spend.parquet"
    shuffled = rows.sample(frac=1.0, random_state=len(rows))  # unsorted: the sort path too
    frames = [
        join(
            labels,
            ["spend:*"],
            make_view(rows, ttl=timedelta(minutes=ttl)),
            engine=e,
            connection=SHARED,
        )
        for e in ENGINES
    ]
    source = to_parquet(shuffled, path)
    for engine in ENGINES:
        view = make_view(rows, ttl=timedelta(minutes=ttl), source=source)
        frames.append(join(labels, ["spend:*"], view, engine=engine, connection=SHARED))
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0])


# -- several views, names, on-demand features ------------------------------------------------------


def test_composite_keys_match_on_every_key(make_view: MakeView) -> None:
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "store_id": [10, 11, 10],
            "event_time": [at(0), at(1), at(2)],
            "visits": [3.0, 4.0, 5.0],
        }
    )
    view = make_view(rows, name="visits", keys=("customer_id", "store_id"))
    labels = labels_at((1, 5), (1, 5), (2, 5), (2, 5)).assign(store_id=[10, 11, 10, 11])
    frame = join(labels, ["visits:visits"], view)
    assert frame["visits"].fillna(-1).tolist() == [3.0, 4.0, 5.0, -1]


def test_two_views_apply_their_own_ttl(make_view: MakeView) -> None:
    recent = make_view(spend_rows(), name="recent", ttl=timedelta(hours=1))
    lasting = make_view(spend_rows(), name="lasting", ttl=timedelta(days=1))
    frame = join(labels_at((1, 25)), ["recent:spend_7d", "lasting:spend_7d"], recent, lasting)
    assert frame["recent__found"].tolist() == [False]
    assert frame["lasting__found"].tolist() == [True]
    assert frame["lasting__spend_7d"].tolist() == [12.0]


def test_same_feature_name_in_two_views_is_prefixed_with_each_view(make_view: MakeView) -> None:
    first = make_view(spend_rows(), name="first")
    second = make_view(spend_rows(), name="second")
    frame = join(labels_at((1, 1)), ["first:spend_7d", "second:*"], first, second)
    assert list(frame.columns)[3:5] == ["first__spend_7d", "second__spend_7d"]


def test_on_demand_feature_is_computed_from_a_label_column_and_a_view_feature(
    make_view: MakeView,
) -> None:
    ratio = OnDemandFeature(
        name="basket_ratio",
        inputs=("basket_value", "spend:spend_7d"),
        outputs=(Field("basket_ratio", "float"),),
        function=lambda f: pd.DataFrame({"basket_ratio": f["basket_value"] / f["spend_7d"]}),
    )
    labels = labels_at((1, 15), (3, 15)).assign(basket_value=[22.0, 5.0])
    frame = join(labels, ["basket_ratio"], make_view(spend_rows()), ratio)
    assert frame["basket_ratio"].tolist()[0] == 2.0
    assert np.isnan(frame["basket_ratio"].tolist()[1])
    assert "spend_7d" not in frame.columns  # joined for the function, not requested


def test_on_demand_request_field_missing_from_the_labels_is_named(make_view: MakeView) -> None:
    double = OnDemandFeature(
        "double", ("basket_value",), (Field("double", "float"),), lambda f: f * 2
    )
    with pytest.raises(FeatureDefinitionError, match="basket_value.*request field of 'double'"):
        join(labels_at((1, 1)), ["double"], make_view(spend_rows()), double)


def test_label_column_named_like_a_feature_is_refused(make_view: MakeView) -> None:
    labels = labels_at((1, 1)).assign(spend_7d=1.0)
    with pytest.raises(FeatureDefinitionError, match="spend_7d would appear twice"):
        join(labels, ["spend:spend_7d"], make_view(spend_rows()))


def test_features_given_as_one_string_are_refused(make_view: MakeView) -> None:
    with pytest.raises(FeatureDefinitionError, match="list of feature references"):
        join(labels_at((1, 1)), "spend:spend_7d", make_view(spend_rows()))  # type: ignore[arg-type]


# -- time zones ------------------------------------------------------------------------------------


def test_naive_label_timestamps_are_refused_by_default(make_view: MakeView) -> None:
    labels = labels_at((1, 15))
    labels["event_timestamp"] = labels["event_timestamp"].dt.tz_localize(None)
    with pytest.raises(TimestampError, match="'event_timestamp': has no time zone"):
        join(labels, ["spend:spend_7d"], make_view(spend_rows()))


def test_naive_timestamps_are_taken_as_utc_under_the_utc_rule(make_view: MakeView) -> None:
    labels = labels_at((1, 20))
    labels["event_timestamp"] = labels["event_timestamp"].dt.tz_localize(None)
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), naive="utc")
    assert frame["spend_7d"].tolist() == [12.0]


@pytest.mark.parametrize("kind", ["dataframe", "parquet"])
def test_naive_view_timestamps_are_refused_by_default(
    make_view: MakeView, tmp_path: Path, kind: str
) -> None:
    rows = spend_rows().assign(event_time=lambda r: r["event_time"].dt.tz_localize(None))
    options = {"source": to_parquet(rows, tmp_path / "s.parquet")} if kind == "parquet" else {}
    with pytest.raises(TimestampError, match="'event_time': has no time zone"):
        join(labels_at((1, 1)), ["spend:spend_7d"], make_view(rows, **options))


def test_label_timestamps_in_another_zone_are_compared_in_utc(make_view: MakeView) -> None:
    labels = labels_at((1, 20), (1, 19.5))
    labels["event_timestamp"] = labels["event_timestamp"].dt.tz_convert("Asia/Kolkata")
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()))
    assert frame["spend_7d"].tolist() == [12.0, 11.0]
    assert str(frame["event_timestamp"].dt.tz) == "Asia/Kolkata"  # label columns unchanged


def test_label_row_without_a_timestamp_is_refused(make_view: MakeView) -> None:
    labels = labels_at((1, 20), (1, 3))
    labels.loc[1, "event_timestamp"] = pd.NaT
    with pytest.raises(TimestampError, match="1 label row"):
        join(labels, ["spend:spend_7d"], make_view(spend_rows()))


# -- keys ------------------------------------------------------------------------------------------


def test_missing_join_key_column_is_named(make_view: MakeView) -> None:
    labels = labels_at((1, 1)).rename(columns={"customer_id": "client"})
    with pytest.raises(FeatureDefinitionError, match="no column 'customer_id', a join key of"):
        join(labels, ["spend:spend_7d"], make_view(spend_rows()))


def test_missing_label_timestamp_column_is_named(make_view: MakeView) -> None:
    with pytest.raises(FeatureDefinitionError, match="no column 'when', the label timestamp"):
        join(
            labels_at((1, 1)), ["spend:spend_7d"], make_view(spend_rows()), timestamp_column="when"
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_int32_label_keys_match_int64_view_keys(make_view: MakeView, engine: str) -> None:
    labels = labels_at((1, 15)).astype({"customer_id": "int32"})
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["spend_7d"].tolist() == [11.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_whole_float_label_keys_match_integer_view_keys(make_view: MakeView, engine: str) -> None:
    labels = labels_at((1.0, 15), (None, 15))
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()), engine=engine)
    assert frame["spend__found"].tolist() == [True, False]


def test_fractional_label_keys_are_refused_for_integer_view_keys(make_view: MakeView) -> None:
    with pytest.raises(FeatureDefinitionError, match="do not fit feature view 'spend'"):
        join(labels_at((1.5, 15)), ["spend:spend_7d"], make_view(spend_rows()))


def test_integer_label_keys_against_string_view_keys_are_refused(make_view: MakeView) -> None:
    view = make_view(spend_rows().astype({"customer_id": str}))
    with pytest.raises(FeatureDefinitionError, match="join key 'customer_id'.*string keys"):
        join(labels_at((1, 15)), ["spend:spend_7d"], view)


def test_string_keys_are_joined(make_view: MakeView) -> None:
    view = make_view(spend_rows().astype({"customer_id": str}))
    labels = labels_at(("1", 15), ("2", 15), ("x", 15))
    frame = join(labels, ["spend:spend_7d"], view)
    assert frame["spend_7d"].fillna(-1).tolist() == [11.0, 20.0, -1]


def test_numpy_engine_refuses_composite_keys(make_view: MakeView) -> None:
    view = make_view(spend_rows().assign(store_id=1), keys=("customer_id", "store_id"))
    with pytest.raises(FeatureDefinitionError, match="needs one integer key"):
        join(labels_at((1, 1)).assign(store_id=1), ["spend:*"], view, engine="numpy")


@pytest.mark.parametrize("engine", ENGINES)
def test_view_rows_with_a_null_key_never_match(
    make_view: MakeView, tmp_path: Path, engine: str
) -> None:
    rows = spend_rows().astype({"customer_id": "Int64"})
    rows.loc[2, "customer_id"] = pd.NA
    view = make_view(rows, source=to_parquet(rows, tmp_path / "s.parquet"))
    frame = join(labels_at((1, 25)), ["spend:spend_7d"], view, engine=engine)
    assert frame["spend_7d"].tolist() == [11.0]


def test_connection_that_may_reorder_scans_is_joined_by_duckdb(
    make_view: MakeView, tmp_path: Path
) -> None:
    connection = duckdb.connect(config={"preserve_insertion_order": False})
    view = make_view(spend_rows(), source=to_parquet(spend_rows(), tmp_path / "s.parquet"))
    frame = join(labels_at((1, 15)), ["spend:*"], view, connection=connection)
    assert frame["spend_7d"].tolist() == [11.0]
    with pytest.raises(FeatureDefinitionError, match="preserve_insertion_order = false"):
        join(labels_at((1, 15)), ["spend:*"], view, connection=connection, engine="numpy")


# -- bad view data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "engine"), [("dataframe", "auto"), *(("parquet", e) for e in ENGINES)]
)
def test_two_view_rows_with_one_key_and_timestamp_are_refused(
    make_view: MakeView, tmp_path: Path, kind: str, engine: str
) -> None:
    rows = pd.concat([spend_rows(), spend_rows().iloc[[1]]], ignore_index=True)
    options = {"source": to_parquet(rows, tmp_path / "s.parquet")} if kind == "parquet" else {}
    with pytest.raises(FeatureStoreError, match="2 rows share an entity key and event timestamp"):
        join(labels_at((1, 1)), ["spend:spend_7d"], make_view(rows, **options), engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_feature_columns_come_out_in_their_declared_types(make_view: MakeView, engine: str) -> None:
    rows = spend_rows().assign(visits=[1, 2, 3, 4], member=[True, False, True, True])
    frame = join(labels_at((1, 15), (5, 1)), ["spend:*"], make_view(rows), engine=engine)
    assert frame.dtypes[["spend_7d", "visits", "member"]].tolist() == [
        np.dtype("float64"),
        pd.Int64Dtype(),
        pd.BooleanDtype(),
    ]
    assert frame["visits"].tolist() == [2, pd.NA]


def test_values_that_do_not_fit_the_declared_type_are_refused(make_view: MakeView) -> None:
    rows = spend_rows().assign(spend_7d=[10.0, 11.5, 12.0, 20.0])
    view = make_view(rows, features=(Field("spend_7d", "int"),))
    with pytest.raises(FeatureDefinitionError, match="'spend_7d' is declared int"):
        join(labels_at((1, 15)), ["spend:spend_7d"], view)


# -- sources ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_parquet_source_gives_the_same_frame_as_a_dataframe_source(
    make_view: MakeView, tmp_path: Path, engine: str
) -> None:
    labels = labels_at((1, 15), (2, 4), (2, 6), (3, 1))
    in_memory = make_view(spend_rows())
    on_disk = make_view(spend_rows(), source=to_parquet(spend_rows(), tmp_path / "s.parquet"))
    expected = join(labels, ["spend:*"], in_memory, engine=engine)
    pd.testing.assert_frame_equal(join(labels, ["spend:*"], on_disk, engine=engine), expected)


def test_directory_of_parquet_files_is_one_source(make_view: MakeView, tmp_path: Path) -> None:
    rows = spend_rows()
    to_parquet(rows.iloc[:2], tmp_path / "a.parquet")
    to_parquet(rows.iloc[2:], tmp_path / "b.parquet")
    view = make_view(rows, source=ParquetSource(str(tmp_path)))
    frame = join(labels_at((1, 25), (2, 6)), ["spend:spend_7d"], view)
    assert frame["spend_7d"].tolist() == [12.0, 20.0]


def test_snapshot_source_is_read_from_the_resolved_path(
    make_view: MakeView, tmp_path: Path
) -> None:
    to_parquet(spend_rows(), tmp_path / "snap.parquet")
    view = make_view(spend_rows(), source=SnapshotSource("spend-2026"))
    frame = join(
        labels_at((1, 15)),
        ["spend:spend_7d"],
        view,
        resolve_snapshot=lambda name: str(tmp_path / "snap.parquet"),
    )
    assert frame["spend_7d"].tolist() == [11.0]


def test_missing_parquet_column_is_named(make_view: MakeView, tmp_path: Path) -> None:
    source = to_parquet(spend_rows().drop(columns="spend_7d"), tmp_path / "s.parquet")
    view = make_view(spend_rows(), source=source)
    with pytest.raises(FeatureDefinitionError, match="has no column.*spend_7d"):
        join(labels_at((1, 15)), ["spend:spend_7d"], view)


def _weekly(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(spend_1d=raw["spend_7d"] / 7)


def _transformed(make_view: MakeView, **options: Any) -> FeatureView:
    return make_view(
        spend_rows(),
        features=(Field("spend_1d", "float"),),
        transformation=_weekly,
        **options,
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_transformation_runs_before_the_join(make_view: MakeView, engine: str) -> None:
    frame = join(labels_at((1, 15)), ["spend:spend_1d"], _transformed(make_view), engine=engine)
    assert frame["spend_1d"].tolist() == [11.0 / 7]


def test_transformation_of_a_parquet_source_runs_before_the_join(
    make_view: MakeView, tmp_path: Path
) -> None:
    view = _transformed(make_view, source=to_parquet(spend_rows(), tmp_path / "s.parquet"))
    frame = join(labels_at((1, 15)), ["spend:spend_1d"], view)
    assert frame["spend_1d"].tolist() == [11.0 / 7]


def test_empty_labels_give_an_empty_frame_with_every_column(make_view: MakeView) -> None:
    labels = labels_at((1, 1)).iloc[:0]
    frame = join(labels, ["spend:spend_7d"], make_view(spend_rows()))
    assert list(frame.columns) == [*labels.columns, "spend_7d", "spend__found"]
    assert len(frame) == 0
