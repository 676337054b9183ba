"""Feature views are recorded in the metadata store and versioned by what they compute."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from keel import Workspace
from keel.data import Field
from keel.errors import FeatureDefinitionError
from keel.features import DataFrameSource, Entity, FeatureCatalog, FeatureView, OnDemandFeature
from keel.features._loader import load_definitions
from keel.features._registry import FeatureRegistry

CUSTOMER = Entity("customer", join_keys=("customer_id",))
ROWS = pd.DataFrame(
    {
        "customer_id": [1, 2],
        "event_time": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
        "spend": [10.0, 20.0],
    }
)


def _view(ttl_days: int = 30, transformation: object = None) -> FeatureView:
    return FeatureView(
        name="spend",
        entities=(CUSTOMER,),
        source=DataFrameSource(ROWS),
        timestamp_column="event_time",
        ttl=timedelta(days=ttl_days),
        features=(Field("spend", "float"),),
        transformation=transformation,  # type: ignore[arg-type]
    )


@pytest.fixture
def registry(workspace: Workspace) -> FeatureRegistry:
    return FeatureRegistry(workspace.store, actor="tester")


def test_applying_a_view_records_version_one(registry: FeatureRegistry) -> None:
    [applied] = registry.apply(FeatureCatalog.of([_view()]))
    assert (applied.name, applied.version, applied.created) == ("spend", 1, True)
    [recorded] = registry.versions("spend")
    assert recorded.definition["ttl_seconds"] == 30 * 86400
    assert recorded.created_by == "tester"


def test_applying_an_unchanged_view_again_changes_nothing(registry: FeatureRegistry) -> None:
    registry.apply(FeatureCatalog.of([_view()]))
    [again] = registry.apply(FeatureCatalog.of([_view()]))
    assert (again.version, again.created) == (1, False)
    assert len(registry.versions("spend")) == 1


def test_a_changed_ttl_makes_a_new_version(registry: FeatureRegistry) -> None:
    registry.apply(FeatureCatalog.of([_view(30)]))
    [changed] = registry.apply(FeatureCatalog.of([_view(7)]))
    assert (changed.version, changed.created) == (2, True)
    assert [v.version for v in registry.latest()] == [2]


def test_a_changed_transformation_makes_a_new_version(registry: FeatureRegistry) -> None:
    def double(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(spend=frame["spend"] * 2)

    def triple(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(spend=frame["spend"] * 3)

    registry.apply(FeatureCatalog.of([_view(transformation=double)]))
    [changed] = registry.apply(FeatureCatalog.of([_view(transformation=triple)]))
    assert changed.version == 2


def test_version_of_a_view_not_applied_in_its_current_form_is_an_error(
    registry: FeatureRegistry,
) -> None:
    registry.apply(FeatureCatalog.of([_view(30)]))
    assert registry.version_of(_view(30)) == 1
    with pytest.raises(FeatureDefinitionError, match="run `keel features apply`"):
        registry.version_of(_view(5))


def test_each_new_version_is_audited(workspace: Workspace, registry: FeatureRegistry) -> None:
    registry.apply(FeatureCatalog.of([_view(30)]))
    registry.apply(FeatureCatalog.of([_view(7)]))
    with workspace.store.read() as connection:
        rows = connection.exec_driver_sql(
            "SELECT entity_key, from_value, to_value FROM audit_log WHERE entity = 'feature_view'"
            " ORDER BY id"
        ).all()
    assert [tuple(r) for r in rows] == [("spend/1", None, "1"), ("spend/2", "1", "2")]


def test_lineage_names_each_feature_with_its_view_version(registry: FeatureRegistry) -> None:
    ratio = OnDemandFeature(
        name="double_spend",
        inputs=("spend:spend",),
        outputs=(Field("double_spend", "float"),),
        function=lambda f: pd.DataFrame({"double_spend": f["spend"] * 2}),
    )
    catalog = FeatureCatalog.of([_view(), ratio])
    registry.apply(catalog)
    assert registry.lineage(catalog, ["spend:*", "double_spend"]) == [
        {"feature": "spend:spend", "view": "spend", "view_version": 1},
        {"feature": "double_spend", "on_demand": True, "inputs": ["spend:spend"]},
    ]


def test_an_unknown_view_has_no_versions(registry: FeatureRegistry) -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature view named 'ghost'"):
        registry.versions("ghost")


def test_definitions_load_from_a_project_module(tmp_path: Path) -> None:
    module = tmp_path / "features.py"
    module.write_text(
        "from datetime import timedelta\n"
        "import pandas as pd\n"
        "from keel.data import Field\n"
        "from keel.features import Entity, FeatureView, ParquetSource\n"
        "customer = Entity('customer', join_keys=('customer_id',))\n"
        "spend = FeatureView(name='spend', entities=(customer,),\n"
        "    source=ParquetSource('spend.parquet'), timestamp_column='ts',\n"
        "    ttl=timedelta(days=3), features=(Field('spend', 'float'),))\n"
    )
    catalog = load_definitions(module)
    assert sorted(catalog.views) == ["spend"]
    assert sorted(catalog.entities) == ["customer"]


def test_a_broken_definitions_module_names_the_file_and_the_error(tmp_path: Path) -> None:
    module = tmp_path / "features.py"
    module.write_text("raise ValueError('boom')\n")
    with pytest.raises(FeatureDefinitionError, match=r"features\.py failed: ValueError: boom"):
        load_definitions(module)


def test_a_missing_definitions_module_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FeatureDefinitionError, match="no feature definitions at"):
        load_definitions(tmp_path / "features.py")
