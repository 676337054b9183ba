"""A profile reference's binned statistics against SciPy on the raw data, and data references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keel.data import Profile, profile
from keel.monitoring import Reference, drift

DISTRIBUTIONS = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1.0, n),
    "lognormal": lambda rng, n, shift: rng.lognormal(shift, 0.8, n),
    "exponential": lambda rng, n, shift: rng.exponential(1.0 + shift, n),
    "poisson": lambda rng, n, shift: rng.poisson(4.0 + 4 * shift, n).astype("float64"),
}
SHIFTS = (0.0, 0.05, 0.2)


def _pairs(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for name, draw in DISTRIBUTIONS.items():
        for shift in SHIFTS:
            ref[f"{name}_{shift}"] = draw(rng, 20_000, 0.0)
            cur[f"{name}_{shift}"] = draw(rng, 5_000, shift)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def _without_sketches(stored: Profile) -> Profile:
    """The profile as stored before sketches existed (histogram only)."""
    return Profile(stored.num_rows, tuple(dataclasses.replace(c, sketch=None) for c in stored))


def test_binned_ks_is_a_lower_bound_of_scipys_within_one_bucket() -> None:
    ref, cur = _pairs()
    report = drift(profile(ref), cur, statistics=["ks"], correction="none")

    for name in ref.columns:
        exact = stats.ks_2samp(ref[name], cur[name], method="asymp")
        binned = report[name]["ks"]
        assert binned.value is not None
        assert binned.p_value is not None
        assert binned.value <= exact.statistic + 1e-12, name
        # sketch buckets hold ~1 % of the reference each; discrete data loses nothing
        assert exact.statistic - binned.value <= 0.012, name
        assert binned.p_value >= exact.pvalue * (1 - 1e-6), name  # conservative


def test_old_profiles_without_sketch_fall_back_to_the_histogram_conservatively() -> None:
    ref, cur = _pairs(1)
    stored = _without_sketches(profile(ref))
    assert Profile.from_dict(stored.to_dict()) == stored  # the old layout still loads

    report = drift(stored, cur, statistics=["ks"], correction="none")

    for name in ref.columns:
        exact = stats.ks_2samp(ref[name], cur[name]).statistic
        assert report[name]["ks"].value is not None
        assert report[name]["ks"].value <= exact + 1e-12, name


def test_binned_wasserstein_is_close_to_scipys() -> None:
    ref, cur = _pairs(2)
    report = drift(profile(ref), cur, statistics=["ks", "chi2", "wasserstein"])

    for name in ref.columns:
        exact = stats.wasserstein_distance(ref[name], cur[name]) / ref[name].std()
        binned = report[name]["wasserstein"].value
        assert binned == pytest.approx(exact, abs=0.015), name


def test_a_data_reference_computes_ks_and_wasserstein_exactly() -> None:
    ref, cur = _pairs(3)
    reference = Reference.from_data(ref)
    report = drift(reference, cur, correction="none")

    assert reference.source == "data"
    for name in ref.columns:
        exact = stats.ks_2samp(ref[name], cur[name], method="asymp")
        assert report[name]["ks"].value == pytest.approx(exact.statistic)
        assert report[name]["ks"].p_value == pytest.approx(exact.pvalue, rel=1e-6)
        distance = stats.wasserstein_distance(ref[name], cur[name]) / ref[name].std()
        assert report[name]["wasserstein"].value == pytest.approx(distance)


def test_chi_square_psi_and_js_are_the_same_from_a_profile_and_from_data() -> None:
    ref, cur = _pairs(4)
    from_profile = drift(profile(ref), cur)
    from_data = drift(ref, cur)

    for name in ref.columns:
        for statistic in ("chi2", "psi", "js"):
            assert from_profile[name][statistic].value == pytest.approx(
                from_data[name][statistic].value
            ), (name, statistic)


def test_unseen_categories_need_a_complete_reference_list() -> None:
    ref = pd.DataFrame({"plan": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pd.DataFrame({"plan": ["a"] * 40 + ["c"] * 20 + ["d"] * 30 + ["e"] * 10})

    complete = drift(profile(ref), cur, min_rows=10)["plan"]
    cut = drift(profile(ref, top_n=2), cur, min_rows=10)["plan"]

    assert complete.unseen is not None
    assert (complete.unseen.count, complete.unseen.distinct) == (40, 2)
    assert complete.unseen.values == (("d", 30), ("e", 10))
    # with the list cut at 2, "c", "d" and "e" may all be among the cut values: "other"
    assert cut.unseen is None
    assert cut["chi2"].value is not None


def test_arrow_tables_work_on_both_sides() -> None:
    import pyarrow as pa

    ref, cur = _pairs(5)
    from_frames = drift(ref, cur)
    from_tables = drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))

    assert from_tables.to_dict() == from_frames.to_dict()
