"""`keel features`: apply, list, materialize, get and skew on a project's features.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from keel import open_workspace

from .conftest import Keel, assert_one_line_error

DEFINITIONS = """
from datetime import timedelta
import pandas as pd
from keel.data import Field
from keel.features import Entity, FeatureView, ParquetSource

customer = Entity("customer", join_keys=("customer_id",))

def per_day(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(spend_per_day=frame["spend_7d"] / 7)

spend = FeatureView(
    name="spend",
    entities=(customer,),
    source=ParquetSource("spend.parquet"),
    timestamp_column="event_time",
    ttl=timedelta(days=30),
    features=(Field("spend_7d", "float"), Field("spend_per_day", "float")),
    transformation=per_day,
)
"""
# Recent enough to be inside the 30-day TTL when `keel features get` looks up "now".
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
END = (T0 + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S%z")


@pytest.fixture
def feature_project(project: Path) -> Path:
    pd.DataFrame(
        {
            "customer_id": [1, 2, 2],
            "event_time": [T0, T0, T0 + timedelta(days=1)],
            "spend_7d": [7.0, 14.0, 21.0],
        }
    ).to_parquet(project / "spend.parquet")
    (project / "features.py").write_text(DEFINITIONS)
    with (project / "keel.toml").open("a") as config:
        config.write("[features]\nlookup_sample_rate = 1.0\n")
    return project


@pytest.mark.usefixtures("feature_project")
def test_apply_then_list_shows_the_view_version(keel: Keel) -> None:
    assert "spend: version 1 (new version)" in keel.ok("features", "apply").stdout
    assert "spend: version 1 (unchanged)" in keel.ok("features", "apply").stdout
    [view] = keel.json("features", "list")
    assert (view["name"], view["version"]) == ("spend", 1)


@pytest.mark.usefixtures("feature_project")
def test_materialize_then_get_serves_the_latest_values(keel: Keel) -> None:
    keel.ok("features", "apply")
    [result] = keel.json("features", "materialize", "spend", "--end", END)
    assert result["rows_written"] == 2
    served = keel.json(
        "features", "get", "-f", "spend:*", "-e", '{"customer_id": 2}', "-e", '{"customer_id": 5}'
    )
    assert served["rows"][0]["spend_7d"] == 21.0
    assert served["rows"][0]["spend_per_day"] == 3.0
    assert served["rows"][1]["spend_7d"] is None


def test_skew_passes_then_fails_after_a_deliberate_skew(keel: Keel, feature_project: Path) -> None:
    keel.ok("features", "apply")
    keel.ok("features", "materialize", "spend", "--end", END)
    keel.ok("features", "get", "-f", "spend:*", "-e", '{"customer_id": 1}')
    report = keel.json("features", "skew")
    assert report["ok"] is True
    with open_workspace(feature_project) as workspace:  # a writer with its own arithmetic
        workspace.features.online.write(
            "spend",
            pd.DataFrame({"customer_id": [1]}),
            pd.Series([T0]),
            {"spend_7d": [7.0], "spend_per_day": [7.0 / 30]},
        )
    keel.ok("features", "get", "-f", "spend:*", "-e", '{"customer_id": 1}')
    result = keel("features", "skew", "--json")
    assert result.exit_code == 1
    skewed = {f["feature"]: f["mismatches"] for f in json.loads(result.stdout)["features"]}
    assert skewed == {"spend:spend_7d": 0, "spend:spend_per_day": 1}


@pytest.mark.usefixtures("feature_project")
def test_an_entity_that_is_not_json_is_one_line(keel: Keel) -> None:
    assert_one_line_error(keel("features", "get", "-f", "spend:*", "-e", "{customer"), "not JSON")


def test_a_missing_definitions_module_is_one_line(keel: Keel) -> None:
    assert_one_line_error(keel("features", "apply"), "no feature definitions at")
