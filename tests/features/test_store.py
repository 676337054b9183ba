"""The feature store end to end: apply, train, materialize, serve, and catch skew."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from keel import Settings, Workspace
from keel.config import FeatureSettings
from keel.data import Field
from keel.errors import FeatureDefinitionError
from keel.features import (
    DataFrameSource,
    Entity,
    FeatureCatalog,
    FeatureRef,
    FeatureView,
    OnDemandFeature,
)

CUSTOMER = Entity("customer", join_keys=("customer_id",))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAW = pd.DataFrame(
    {
        "customer_id": [1, 1, 2, 3],
        "event_time": [T0, T0 + timedelta(days=2), T0 + timedelta(days=1), T0],
        "spend_7d": [70.0, 140.0, 7.0, 3.5],
    }
)


def weekly(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(spend_per_day=frame["spend_7d"] / 7)


def spend_view(transformation: object = weekly) -> FeatureView:
    return FeatureView(
        name="spend",
        entities=(CUSTOMER,),
        source=DataFrameSource(RAW),
        timestamp_column="event_time",
        ttl=timedelta(days=30),
        features=(Field("spend_7d", "float"), Field("spend_per_day", "float")),
        transformation=transformation,  # type: ignore[arg-type]
    )


BASKET_RATIO = OnDemandFeature(
    name="basket_ratio",
    inputs=("basket", "spend:spend_per_day"),
    outputs=(Field("basket_ratio", "float"),),
    function=lambda f: pd.DataFrame({"basket_ratio": f["basket"] / f["spend_per_day"]}),
)


@pytest.fixture(params=["sqlite", "redis"])
def workspace(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Workspace]:
    online = (
        f"sqlite:///{settings.project_dir / 'online.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    features = FeatureSettings(online_url=online, lookup_sample_rate=1.0)
    with Workspace(settings.model_copy(update={"features": features})) as ws:
        ws.features.use([spend_view(), BASKET_RATIO])
        yield ws


def test_training_frame_is_point_in_time_correct(workspace: Workspace) -> None:
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 4],
            "event_timestamp": [T0 + timedelta(days=1), T0 + timedelta(days=3), T0, T0],
            "basket": [10.0, 20.0, 5.0, 1.0],
        }
    )
    frame = workspace.features.get_training_frame(labels, ["spend:*", "basket_ratio"])
    assert frame["spend_7d"].tolist()[:2] == [70.0, 140.0]
    assert frame["spend_7d"].isna().tolist()[2:] == [True, True]  # before its row; unknown
    assert frame["spend__found"].tolist() == [True, True, False, False]
    assert frame["basket_ratio"].tolist()[:2] == [1.0, 1.0]


def test_materialized_features_are_served_with_on_demand_features(workspace: Workspace) -> None:
    workspace.features.apply()
    result = workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    assert result.rows_written == 3
    served = workspace.features.get_online_features(
        [{"customer_id": 1, "basket": 40.0}, {"customer_id": 9, "basket": 1.0}],
        ["spend:spend_7d", "basket_ratio"],
        now=T0 + timedelta(days=5),
    )
    assert served.frame["spend_7d"].tolist()[0] == 140.0
    assert pd.isna(served.frame["spend_7d"].tolist()[1])
    assert served.frame["basket_ratio"].tolist()[0] == pytest.approx(2.0)


def test_materializing_again_is_incremental_and_idempotent(workspace: Workspace) -> None:
    workspace.features.apply()
    first = workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    again = workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    assert (first.rows_written, again.rows_read, again.rows_written) == (3, 0, 0)


def test_materializing_a_view_changed_since_apply_is_refused(workspace: Workspace) -> None:
    workspace.features.apply()
    workspace.features.use([spend_view(transformation=None), BASKET_RATIO])
    with pytest.raises(FeatureDefinitionError, match="run `keel features apply`"):
        workspace.features.materialize("spend")


def test_no_skew_when_both_paths_compute_the_same(workspace: Workspace) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    workspace.features.get_online_features(
        [{"customer_id": c, "basket": 3.0} for c in (1, 2, 3)],
        ["spend:*", "basket_ratio"],
        now=T0 + timedelta(days=5),
    )
    report = workspace.features.skew()
    assert report.lookup_rows == 3
    assert report.ok, report.to_dict()
    checked = {f.feature: f.checked for f in report.features}
    assert checked == {"spend:spend_7d": 3, "spend:spend_per_day": 3, "basket_ratio": 3}


def test_a_deliberate_skew_in_served_values_is_reported_per_feature(
    workspace: Workspace,
) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    # A buggy writer (say, a streaming job with its own copy of the transformation) puts
    # spend_per_day = spend_7d / 30 for customer 2 into the online store.
    workspace.features.online.write(
        "spend",
        pd.DataFrame({"customer_id": [2]}),
        pd.Series([T0 + timedelta(days=1)]),
        {"spend_7d": [7.0], "spend_per_day": [7.0 / 30]},
    )
    workspace.features.get_online_features(
        [{"customer_id": c} for c in (1, 2, 3)], ["spend:*"], now=T0 + timedelta(days=5)
    )
    report = workspace.features.skew()
    by_feature = {f.feature: f for f in report.features}
    assert not report.ok
    assert by_feature["spend:spend_7d"].mismatches == 0
    assert by_feature["spend:spend_per_day"].mismatches == 1
    assert by_feature["spend:spend_per_day"].examples[0]["entity"] == {"customer_id": 2}
    assert by_feature["spend:spend_per_day"].examples[0]["offline"] == pytest.approx(1.0)


def test_a_transformation_changed_after_materializing_is_reported_as_skew(
    workspace: Workspace,
) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=T0 + timedelta(days=5))
    workspace.features.get_online_features(
        [{"customer_id": c} for c in (1, 2)], ["spend:spend_per_day"], now=T0 + timedelta(days=5)
    )

    def monthly(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(spend_per_day=frame["spend_7d"] / 30)

    workspace.features.use([spend_view(monthly), BASKET_RATIO])
    report = workspace.features.skew()
    assert [(f.feature, f.mismatches) for f in report.features] == [("spend:spend_per_day", 2)]


NOW = T0 + timedelta(days=5)
ROWS = [{"customer_id": 1, "basket": 40.0}, {"customer_id": 2, "basket": 2.0}]


class CountingCatalog(FeatureCatalog):
    """A catalog that counts how often a feature list is resolved."""

    resolved = 0

    def resolve(self, references: Iterable[str]) -> tuple[list[FeatureRef], list[OnDemandFeature]]:
        self.resolved += 1
        return super().resolve(references)


def test_repeated_lookups_resolve_the_catalog_once(workspace: Workspace) -> None:
    catalog = CountingCatalog.of([spend_view(), BASKET_RATIO])
    assert isinstance(catalog, CountingCatalog)
    workspace.features.use(catalog)
    workspace.features.apply()
    workspace.features.materialize("spend", end=NOW)

    features = ["spend:*", "basket_ratio"]
    first = workspace.features.get_online_features(ROWS, features, now=NOW)
    again = workspace.features.get_online_features(ROWS, features, now=NOW)
    other = workspace.features.get_online_features(ROWS, ["spend:spend_7d"], now=NOW)

    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert first.frame["basket_ratio"].tolist() == pytest.approx([2.0, 2.0])
    assert other.frame.columns.tolist() == ["spend_7d"]
    assert catalog.resolved == 2  # once per feature list


def test_changed_definitions_take_effect_on_the_next_lookup(workspace: Workspace) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=NOW)
    features = ["spend:spend_7d", "basket_ratio"]
    before = workspace.features.get_online_features(ROWS, features, now=NOW)

    doubled = OnDemandFeature(
        name="basket_ratio",
        inputs=("basket", "spend:spend_per_day"),
        outputs=(Field("basket_ratio", "float"),),
        function=lambda f: pd.DataFrame({"basket_ratio": 2 * f["basket"] / f["spend_per_day"]}),
    )
    workspace.features.use([spend_view(), doubled])
    after_use = workspace.features.get_online_features(ROWS, features, now=NOW)
    workspace.features.apply([spend_view(), BASKET_RATIO])
    after_apply = workspace.features.get_online_features(ROWS, features, now=NOW)

    assert before.frame["basket_ratio"].tolist() == pytest.approx([2.0, 2.0])
    assert after_use.frame["basket_ratio"].tolist() == pytest.approx([4.0, 4.0])
    assert after_apply.frame["basket_ratio"].tolist() == pytest.approx([2.0, 2.0])


def test_lookups_after_close_use_the_reopened_store_and_log(workspace: Workspace) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=NOW)
    before = workspace.features.get_online_features(ROWS, ["spend:spend_7d"], now=NOW)

    workspace.features.close()
    after = workspace.features.get_online_features(ROWS, ["spend:spend_7d"], now=NOW)

    pd.testing.assert_frame_equal(before.frame, after.frame)
    assert len(workspace.features.read_lookups()) == 4  # neither record went to a closed log


def test_record_is_passed_through(workspace: Workspace) -> None:
    workspace.features.apply()
    workspace.features.materialize("spend", end=NOW)

    workspace.features.get_online_features(ROWS, ["spend:spend_7d"], now=NOW, record=False)
    assert workspace.features.read_lookups().empty  # the rate is 1, but this call said no

    workspace.features.get_online_features(ROWS, ["spend:spend_7d"], now=NOW, record=True)
    assert len(workspace.features.read_lookups()) == 2


def test_a_model_version_records_the_features_it_was_trained_on(workspace: Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    workspace.features.apply()
    frame = pd.DataFrame({"spend_7d": [1.0, 2.0, 3.0]})
    model = LinearRegression().fit(frame, [1.0, 2.0, 3.0])
    version = workspace.registry.register(
        f"m{uuid.uuid4().hex[:6]}",
        model,
        input_example=frame,
        features=workspace.features.lineage(["spend:spend_7d"]),
    )
    assert version.features == [{"feature": "spend:spend_7d", "view": "spend", "view_version": 1}]
    assert "view `spend` version 1" in workspace.registry.card(version.uri)
