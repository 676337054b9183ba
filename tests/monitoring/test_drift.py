"""drift(): the report, the column statuses and each edge case's defined outcome, bad options."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from keel.data import profile
from keel.errors import KeelError, MonitoringError
from keel.monitoring import DriftReport, drift

RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame(
    {
        "age": RNG.normal(40, 10, 4000),
        "plan": RNG.choice(["free", "pro", "team"], 4000),
        "at": pd.date_range("2024-01-01", periods=4000, freq="min"),
    }
)


def _window(rows: int = 3000, **changes: object) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "plan": rng.choice(["free", "pro", "team"], rows),
            "at": pd.date_range("2024-02-01", periods=rows, freq="min"),
        }
    )
    for name, values in changes.items():
        frame[name] = values
    return frame


def _json(report: DriftReport) -> dict[str, object]:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


@pytest.mark.parametrize("reference", [profile(REFERENCE), REFERENCE], ids=["profile", "data"])
def test_a_window_like_the_reference_has_no_drift(reference: object) -> None:
    report = drift(reference, _window())  # type: ignore[arg-type]

    assert report.verdict == "no_drift"
    assert report.correction == "bh"
    assert report.tests == 3  # ks + chi2 on age, chi2 on plan
    age, plan, at = report.columns
    assert (age.status, age.kind, age.default_statistic, age.drifted) == (
        "ok",
        "numeric",
        "ks",
        False,
    )
    assert [s.name for s in age.statistics] == ["ks", "chi2", "psi", "js", "wasserstein"]
    assert (plan.default_statistic, [s.name for s in plan.statistics]) == (
        "chi2",
        ["chi2", "psi", "js"],
    )
    assert at.status == "unsupported"
    assert age["ks"].kind == "p_value"
    assert age["psi"].kind == "threshold"
    assert age["psi"].threshold == 0.2
    _json(report)


def test_a_mean_shift_is_drift_with_evidence() -> None:
    report = drift(profile(REFERENCE), _window(age=np.random.default_rng(1).normal(45, 10, 3000)))

    assert report.verdict == "drift"
    assert report.drifted_columns == ["age"]
    ks = report["age"]["ks"]
    assert ks.p_value is not None
    assert ks.adjusted_p_value is not None
    assert ks.adjusted_p_value >= ks.p_value
    assert ks.drifted


def test_an_empty_window_is_not_enough_data() -> None:
    report = drift(profile(REFERENCE), _window().iloc[:0])

    assert (report.verdict, report.status, report.rows) == ("not_enough_data", "empty", (4000, 0))
    assert {c.status for c in report.columns if c.name != "at"} == {"not_enough_data"}
    assert all(c.drifted is None for c in report.columns)
    _json(report)


def test_a_window_below_min_rows_is_neither_drift_nor_no_drift() -> None:
    shifted = _window(500, age=np.full(500, 90.0))

    report = drift(profile(REFERENCE), shifted, min_rows=1000)

    assert (report.verdict, report.status) == ("not_enough_data", "not_enough_data")
    assert report["age"].statistics == ()
    assert drift(profile(REFERENCE), shifted, min_rows=100).verdict == "drift"


def test_an_all_null_current_column_is_a_missing_value_surge() -> None:
    report = drift(profile(REFERENCE), _window(age=np.full(3000, np.nan)))
    age = report["age"]

    assert age.drifted is True
    assert age.null_rate == (0.0, 1.0)
    assert age["ks"].value == pytest.approx(1.0)
    assert age["wasserstein"].value is None
    assert age["wasserstein"].drifted is None
    assert "every current value is null" in age.notes
    _json(report)


def test_a_column_null_on_both_sides_has_no_drift() -> None:
    ref = REFERENCE.assign(age=np.nan)
    report = drift(profile(ref), _window(age=np.full(3000, np.nan)))

    assert report["age"].drifted is False
    assert report["age"]["ks"].value == 0.0
    assert "every reference value is null" in report["age"].notes


def test_a_constant_column_that_stays_constant_has_no_drift() -> None:
    ref = REFERENCE.assign(age=7.0)

    same = drift(profile(ref), _window(age=np.full(3000, 7.0)))["age"]
    moved = drift(profile(ref), _window(age=np.full(3000, 8.0)))["age"]

    assert (same.drifted, same["ks"].value) == (False, 0.0)
    assert same["wasserstein"].value is None
    assert "constant" in (same["wasserstein"].note or "")
    assert moved.drifted is True


def test_columns_on_one_side_only_are_reported_as_such() -> None:
    window = _window().drop(columns=["plan"]).assign(extra=1.0)

    report = drift(profile(REFERENCE), window)

    assert report["plan"].status == "missing_in_current"
    assert report["extra"].status == "missing_in_reference"
    assert report["extra"].dtype == (None, "float")
    assert report.verdict == "no_drift"  # the others were compared


def test_unseen_categories_are_counted_listed_and_tested() -> None:
    rng = np.random.default_rng(3)
    plans = np.where(
        rng.random(3000) < 0.05, "enterprise", rng.choice(["free", "pro", "team"], 3000)
    )

    plan = drift(profile(REFERENCE), _window(plan=plans))["plan"]

    assert plan.unseen is not None
    assert plan.unseen.distinct == 1
    assert plan.unseen.values[0][0] == "enterprise"
    assert plan.unseen.count == plan.unseen.values[0][1] > 100
    assert plan.drifted is True


def test_a_numeric_column_arriving_as_text_is_a_type_change() -> None:
    report = drift(profile(REFERENCE), _window(age=["forty"] * 3000))

    assert report["age"].status == "type_changed"
    assert report["age"].dtype == ("float", "string")


def test_the_default_statistic_is_configurable() -> None:
    report = drift(
        profile(REFERENCE),
        _window(age=np.random.default_rng(1).normal(40.5, 10, 3000)),
        default_statistics={"numeric": "wasserstein"},
        thresholds={"wasserstein": 0.5},
    )

    assert report["age"].default_statistic == "wasserstein"
    assert report["age"].drifted is False
    assert report["age"]["wasserstein"].threshold == 0.5


def test_nan_never_reaches_the_json() -> None:
    ref = REFERENCE.assign(age=np.nan)
    data = _json(drift(profile(ref), _window(age=np.full(3000, np.nan))))

    assert data["columns"][0]["name"] == "age"
    text = json.dumps(data)
    assert "NaN" not in text
    assert not any(isinstance(v, float) and math.isnan(v) for v in data.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"statistics": ["ks", "kl"]}, "unknown statistic 'kl'; choose among ks, chi2"),
        ({"statistics": []}, "no statistic"),
        ({"correction": "holm"}, "unknown correction 'holm'; use 'bh'"),
        ({"alpha": 0.0}, r"alpha=0.0 is not in \(0, 1\)"),
        ({"alpha": 1.0}, "alpha=1.0 is not in"),
        ({"alpha": float("nan")}, "alpha=nan is not in"),
        ({"thresholds": {"ks": 0.1}}, "no threshold for 'ks'"),
        ({"thresholds": {"psi": -1}}, "not a positive number"),
        ({"default_statistics": {"numeric": "psi"}, "statistics": ["ks", "chi2"]}, "not among"),
        ({"default_statistics": {"categorical": "ks"}}, "'ks' cannot decide categorical"),
        ({"default_statistics": {"text": "ks"}}, "unknown column kind 'text'"),
        ({"columns": ["age", "height"]}, "no column 'height' on either side"),
        ({"min_rows": 0}, "min_rows=0 is not a positive integer"),
    ],
)
def test_bad_options_raise_a_monitoring_error_saying_what_to_do(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(MonitoringError, match=message) as raised:
        drift(profile(REFERENCE), _window(), **options)  # type: ignore[arg-type]

    assert isinstance(raised.value, KeelError)


def test_bad_inputs_raise_a_monitoring_error() -> None:
    with pytest.raises(MonitoringError, match="cannot compare against a list"):
        drift([1, 2], _window())  # type: ignore[arg-type]
    with pytest.raises(MonitoringError, match="cannot read a current window from a dict"):
        drift(profile(REFERENCE), {"age": [1]})  # type: ignore[arg-type]
