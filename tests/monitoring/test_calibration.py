"""Statistical honesty: false-alarm rates under no drift, power against known shifts, and the
multiple-testing corrections over many columns.

Simulations are vectorized by putting independent trials side by side as columns of one frame:
one ``drift`` call with ``correction="none"`` runs hundreds of independent tests. Every trial has
its own reference sample, so a false alarm is judged against the tests' own null hypothesis
(both samples from one distribution).

Sampling error: a rate measured over ``n`` independent trials with true rate ``p`` has standard
deviation sqrt(p(1-p)/n). Bounds are ``p ± 4`` standard deviations (a chance below 1e-4 of a
calibrated test failing); all seeds are fixed, so the runs are reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from keel.data import profile
from keel.monitoring import DriftReport, Reference, drift

ALPHA = 0.05
TRIALS = 400
WINDOW = 5_000


def _bound(rate: float, trials: int) -> float:
    return 4 * math.sqrt(rate * (1 - rate) / trials)


def _frames(
    seed: int, reference_rows: int, draw_current: object = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(reference_rows, TRIALS))
    cur = rng.normal(size=(WINDOW, TRIALS))
    ref[rng.random(ref.shape) < 0.01] = np.nan
    cur[rng.random(cur.shape) < 0.01] = np.nan
    names = [f"t{i}" for i in range(TRIALS)]
    return pd.DataFrame(ref, columns=names), pd.DataFrame(cur, columns=names)


def _categorical_frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    values = np.array(["a", "b", "c", "d", "e", "f"])
    weights = np.array([0.4, 0.25, 0.15, 0.1, 0.07, 0.03])

    def frame(rows: int) -> pd.DataFrame:
        codes = rng.choice(len(values), size=(rows, TRIALS), p=weights)
        return pd.DataFrame(
            {f"t{i}": pd.Categorical.from_codes(codes[:, i], values) for i in range(TRIALS)}
        )

    return frame(WINDOW), frame(WINDOW)


def _rejection_rate(report: DriftReport, statistic: str) -> float:
    flags = [c[statistic].drifted for c in report.columns]
    assert len(flags) == TRIALS
    return sum(bool(f) for f in flags) / TRIALS


@pytest.mark.parametrize("source", ["data", "profile"])
def test_numeric_false_alarm_rate_stays_at_alpha(source: str) -> None:
    ref, cur = _frames(11 if source == "data" else 12, WINDOW)
    reference = Reference.from_data(ref) if source == "data" else profile(ref)

    report = drift(reference, cur, statistics=["ks", "chi2"], correction="none", alpha=ALPHA)

    bound = _bound(ALPHA, TRIALS)
    ks, chi2 = _rejection_rate(report, "ks"), _rejection_rate(report, "chi2")
    # binned KS is conservative (its statistic is a lower bound): only the upper bound holds
    assert ks <= ALPHA + bound
    if source == "data":
        assert ks >= ALPHA - bound
    assert ALPHA - bound <= chi2 <= ALPHA + bound


def test_categorical_false_alarm_rate_stays_at_alpha() -> None:
    ref, cur = _categorical_frames(13)

    for reference in (profile(ref), ref):
        report = drift(reference, cur, correction="none", alpha=ALPHA)
        rate = _rejection_rate(report, "chi2")
        assert ALPHA - _bound(ALPHA, TRIALS) <= rate <= ALPHA + _bound(ALPHA, TRIALS)


POWER_TRIALS = 100
REQUIRED_POWER = 0.9


def _power(reference: pd.DataFrame, shifted: pd.DataFrame) -> float:
    report = drift(profile(reference), shifted, correction="none", alpha=ALPHA)
    assert report.tests > 0
    return sum(bool(c.drifted) for c in report.columns) / len(report.columns)


def _numeric_shift(seed: int, change: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = [f"t{i}" for i in range(POWER_TRIALS)]
    ref = rng.normal(size=(20_000, POWER_TRIALS))
    ref[rng.random(ref.shape) < 0.01] = np.nan
    cur = rng.normal(size=(WINDOW, POWER_TRIALS))
    if change == "mean":
        cur += 0.2
    elif change == "variance":
        cur *= math.sqrt(1.5)
    null_rate = 0.2 if change == "nulls" else 0.01
    cur[rng.random(cur.shape) < null_rate] = np.nan
    return pd.DataFrame(ref, columns=names), pd.DataFrame(cur, columns=names)


@pytest.mark.parametrize("change", ["mean", "variance", "nulls"])
def test_numeric_shifts_are_detected_with_stated_power(change: str) -> None:
    """Mean +0.2 std, variance x1.5, nulls 1 % -> 20 %: window 5,000, reference 20,000,
    default statistic (KS, binned from the profile), alpha 0.05: power >= 0.9."""
    assert _power(*_numeric_shift(21, change)) >= REQUIRED_POWER


@pytest.mark.parametrize("change", ["new category", "nulls"])
def test_categorical_shifts_are_detected_with_stated_power(change: str) -> None:
    """A new category at 5 %, or nulls 1 % -> 20 %: chi-square, window 5,000, power >= 0.9."""
    rng = np.random.default_rng(22)
    values = ["a", "b", "c", "d"]
    weights = [0.4, 0.3, 0.2, 0.1]
    ref = pd.DataFrame(
        {f"t{i}": rng.choice(values, 20_000, p=weights) for i in range(POWER_TRIALS)}
    )
    ref = ref.mask(rng.random(ref.shape) < 0.01)
    cur = pd.DataFrame(
        {f"t{i}": rng.choice(values, WINDOW, p=weights) for i in range(POWER_TRIALS)}
    )
    if change == "new category":
        cur = cur.mask(rng.random(cur.shape) < 0.05, "z")
    cur = cur.mask(rng.random(cur.shape) < (0.2 if change == "nulls" else 0.01))

    assert _power(ref, cur) >= REQUIRED_POWER


COLUMNS = 20
REPORTS = 300


def _family_rates(shifted: int) -> dict[str, tuple[float, float, float]]:
    """Per correction: (rate of reports with any false alarm, mean false-discovery proportion,
    share of shifted columns found) over REPORTS reports of COLUMNS columns."""
    rng = np.random.default_rng(31 + shifted)
    names = [f"c{i}" for i in range(COLUMNS)]
    reference = Reference.from_profile(
        profile(pd.DataFrame(rng.normal(size=(200_000, COLUMNS)), columns=names))
    )
    found: dict[str, list[tuple[int, int]]] = {"bh": [], "bonferroni": [], "none": []}
    for _ in range(REPORTS):
        window = rng.normal(size=(2_000, COLUMNS))
        window[:, :shifted] += 0.12
        frame = pd.DataFrame(window, columns=names)
        for correction, outcomes in found.items():
            report = drift(reference, frame, statistics=["ks"], correction=correction, min_rows=1)  # type: ignore[arg-type]
            flagged = [int(c.name[1:]) for c in report.columns if c.drifted]
            false = sum(1 for i in flagged if i >= shifted)
            outcomes.append((false, len(flagged) - false))
    rates = {}
    for correction, outcomes in found.items():
        any_false = sum(1 for false, _ in outcomes if false) / REPORTS
        fdp = float(np.mean([false / max(false + true, 1) for false, true in outcomes]))
        power = sum(true for _, true in outcomes) / (REPORTS * shifted) if shifted else 0.0
        rates[correction] = (any_false, fdp, power)
    return rates


def test_corrections_control_false_alarms_over_many_null_columns() -> None:
    rates = _family_rates(shifted=0)
    bound = _bound(ALPHA, REPORTS)

    assert rates["bonferroni"][0] <= ALPHA + bound  # family-wise error rate
    assert rates["bh"][0] <= ALPHA + bound  # under the full null FDR = FWER
    # uncorrected, 20 tests at 5 % raise at least one false alarm in ~64 % of reports
    assert rates["none"][0] >= 1 - (1 - ALPHA) ** COLUMNS - 4 * math.sqrt(0.64 * 0.36 / REPORTS)


def test_benjamini_hochberg_controls_false_discoveries_with_more_power_than_bonferroni() -> None:
    rates = _family_rates(shifted=5)

    assert rates["bh"][1] <= ALPHA + _bound(ALPHA, REPORTS)  # false-discovery rate
    assert rates["bh"][2] >= rates["bonferroni"][2]
    assert rates["bonferroni"][0] <= ALPHA + _bound(ALPHA, REPORTS)
