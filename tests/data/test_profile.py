"""Column profiles: statistics against NumPy, fixed histogram edges, frequencies, comparison."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter

import hypothesis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keel.data._profile import (
    DEFAULT_BINS,
    QUANTILES,
    Histogram,
    Profile,
    profile,
)
from keel.data._profile_diff import profile_diff

PROPERTY = hypothesis.settings(max_examples=60, deadline=None, database=None)

# Finite values or NaN (a null), over a range where NumPy's own arithmetic does not overflow.
float_arrays = hnp.arrays(
    np.float64,
    st.integers(min_value=0, max_value=40),
    elements=st.one_of(
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), st.just(float("nan"))
    ),
)


def one_column(values: object, name: str = "x") -> pd.DataFrame:
    return pd.DataFrame({name: values})


# -- numeric statistics ----------------------------------------------------------------------------


@PROPERTY
@hypothesis.given(float_arrays)
def test_numeric_statistics_match_numpy(values: np.ndarray) -> None:
    column = profile(one_column(values))["x"]
    present = values[~np.isnan(values)]

    assert (column.count, column.nulls) == (present.size, values.size - present.size)
    if present.size == 0:
        assert (column.min, column.max, column.mean, column.quantiles) == (None, None, None, None)
        return
    assert column.min == present.min()
    assert column.max == present.max()
    assert column.mean == pytest.approx(np.mean(present), rel=1e-9, abs=1e-6)
    if present.size > 1:
        assert column.std == pytest.approx(np.std(present, ddof=1), rel=1e-9, abs=1e-6)
    else:
        assert column.std is None
    expected = np.quantile(present, list(QUANTILES.values()))
    assert column.quantiles is not None
    assert list(column.quantiles.values()) == pytest.approx(list(expected), rel=1e-9, abs=1e-6)


@PROPERTY
@hypothesis.given(float_arrays.filter(lambda v: np.count_nonzero(~np.isnan(v)) > 0))
def test_histogram_matches_numpy_over_min_max(values: np.ndarray) -> None:
    present = values[~np.isnan(values)]
    hypothesis.assume(present.min() < present.max())
    histogram = profile(one_column(values))["x"].histogram
    try:
        counts, edges = np.histogram(
            present, bins=DEFAULT_BINS, range=(present.min(), present.max())
        )
    except ValueError:  # NumPy cannot split a range narrower than 20 ulps: nothing to compare
        hypothesis.reject()

    assert histogram is not None
    assert list(histogram.edges) == pytest.approx(list(edges))
    assert list(histogram.counts) == list(counts)


def test_histogram_has_fixed_equal_width_edges_over_min_and_max() -> None:
    histogram = profile(one_column([0.0, 3.0, 10.0, None]), bins=5)["x"].histogram

    assert histogram is not None
    assert histogram.edges == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert histogram.counts == (1, 1, 0, 0, 1)


def test_histogram_counts_sum_to_the_non_null_count() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=1000)
    values[::7] = np.nan
    column = profile(one_column(values))["x"]

    assert column.histogram is not None
    assert sum(column.histogram.counts) == column.count == 1000 - len(values[::7])


def test_a_constant_column_has_all_its_values_in_one_bin() -> None:
    histogram = profile(one_column([5, 5, 5]))["x"].histogram

    assert histogram is not None
    assert histogram.edges[0] < 5 < histogram.edges[-1]
    assert sum(histogram.counts) == 3
    assert max(histogram.counts) == 3


@pytest.mark.parametrize("value", [sys.float_info.max, -sys.float_info.max, 1.7976931330e308])
def test_a_constant_column_at_the_largest_double_keeps_finite_edges(value: float) -> None:
    # found by hypothesis: padding the range overflowed to infinity (and NaN edges)
    histogram = profile(one_column([value, value]))["x"].histogram

    assert histogram is not None
    assert all(math.isfinite(edge) for edge in histogram.edges)
    assert histogram.edges[0] <= value <= histogram.edges[-1]
    assert sum(histogram.counts) == 2


def test_infinite_values_are_counted_outside_the_bins_and_left_out_of_the_statistics() -> None:
    column = profile(one_column([1.0, 2.0, np.inf, -np.inf, np.inf]))["x"]

    assert column.count == 5
    assert column.infinite == 3
    assert (column.min, column.max, column.mean) == (1.0, 2.0, 1.5)
    assert column.histogram is not None
    assert (column.histogram.below, sum(column.histogram.counts), column.histogram.above) == (
        1,
        2,
        2,
    )


def test_integer_min_and_max_are_exact() -> None:
    column = profile(one_column([2**60 + 1, 3]))["x"]

    assert column.dtype == "int"
    assert (column.min, column.max) == (3, 2**60 + 1)


def test_nullable_integers_count_their_nulls() -> None:
    column = profile(one_column(pd.array([1, None, 3], dtype="Int64")))["x"]

    assert (column.dtype, column.count, column.nulls, column.mean) == ("int", 2, 1, 2.0)


# -- frequencies and timestamps --------------------------------------------------------------------


def test_string_frequencies_keep_the_top_values_the_rest_and_the_distinct_count() -> None:
    frame = one_column(["a", "b", "a", "c", "a", "b", "d", None])
    column = profile(frame, top_n=2)["x"]

    assert column.frequencies is not None
    assert column.frequencies.top == (("a", 3), ("b", 2))
    assert column.frequencies.other == 2
    assert column.frequencies.distinct == 4
    assert (column.count, column.nulls) == (7, 1)


@PROPERTY
@hypothesis.given(
    st.lists(st.sampled_from("abcdefgh"), max_size=40), st.integers(min_value=0, max_value=9)
)
def test_top_values_are_the_most_frequent_with_ties_by_value(values: list[str], top_n: int) -> None:
    counts = Counter(values)
    expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_n]

    frequencies = profile(one_column(pd.Series(values, dtype="str")), top_n=top_n)["x"].frequencies

    assert frequencies is not None
    assert list(frequencies.top) == expected
    assert frequencies.other == len(values) - sum(n for _, n in expected)
    assert frequencies.distinct == len(counts)


def test_equally_frequent_values_are_ordered_by_value() -> None:
    column = profile(one_column(["z", "y", "x", "y", "z", "x"]))["x"]

    assert column.frequencies is not None
    assert column.frequencies.top == (("x", 2), ("y", 2), ("z", 2))


def test_category_frequencies_leave_out_unused_categories() -> None:
    values = pd.Categorical(["low", "high", "low"], categories=["low", "mid", "high"])
    column = profile(one_column(values))["x"]

    assert column.dtype == "category"
    assert column.frequencies is not None
    assert column.frequencies.top == (("low", 2), ("high", 1))
    assert column.frequencies.distinct == 2


def test_bool_frequencies_keep_bool_values() -> None:
    column = profile(one_column([True, False, True]))["x"]

    assert column.frequencies is not None
    assert column.frequencies.top == ((True, 2), (False, 1))


def test_timestamps_keep_min_and_max_as_iso_text() -> None:
    stamps = pd.to_datetime(["2024-03-01 10:00", None, "2024-01-15 00:00"], utc=True)
    column = profile(one_column(stamps))["x"]

    assert (column.dtype, column.count, column.nulls) == ("timestamp", 2, 1)
    assert (column.min, column.max) == ("2024-01-15T00:00:00+00:00", "2024-03-01T10:00:00+00:00")


# -- storing ---------------------------------------------------------------------------------------


def test_to_dict_is_json_without_nan_and_reads_back_equal() -> None:
    frame = pd.DataFrame(
        {
            "empty": [np.nan, np.nan],
            "one": [1.5, None],
            "plan": ["a", None],
            "flag": [True, False],
            "at": pd.to_datetime(["2024-01-01", None]),
        }
    )
    original = profile(frame)
    text = json.dumps(original.to_dict(), allow_nan=False)

    assert Profile.from_dict(json.loads(text)) == original


def test_an_arrow_table_is_profiled_like_its_frame() -> None:
    frame = pd.DataFrame({"age": [31, 45, 27], "plan": ["a", "b", "a"]})

    assert profile(pa.Table.from_pandas(frame)) == profile(frame)


# -- binning live data into the reference edges ----------------------------------------------------


def test_histogram_bin_counts_values_into_the_same_edges() -> None:
    reference = Histogram(edges=(0.0, 1.0, 2.0), counts=(5, 5))

    live = reference.bin(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.nan]))

    assert live.edges == reference.edges
    assert (live.below, live.counts, live.above) == (1, (2, 2), 1)


def test_profile_with_a_reference_bins_numerics_into_its_edges() -> None:
    reference = profile(one_column([0.0, 10.0]), bins=2)

    live = profile(one_column([-5.0, 2.0, 7.0, 20.0]), reference=reference)["x"].histogram

    assert live is not None
    assert live.edges == (0.0, 5.0, 10.0)
    assert (live.below, live.counts, live.above) == (1, (1, 1), 1)


def test_psi_of_identical_histograms_is_zero() -> None:
    histogram = Histogram(edges=(0.0, 1.0, 2.0), counts=(3, 7))

    assert histogram.psi(histogram) == 0.0


def test_psi_grows_with_the_shift_between_histograms() -> None:
    reference = Histogram(edges=(0.0, 1.0, 2.0), counts=(50, 50))
    small = Histogram(edges=(0.0, 1.0, 2.0), counts=(45, 55))
    large = Histogram(edges=(0.0, 1.0, 2.0), counts=(10, 90))

    small_psi, large_psi = reference.psi(small), reference.psi(large)

    assert small_psi is not None
    assert large_psi is not None
    assert 0 < small_psi < large_psi


def test_psi_is_not_computed_over_different_edges() -> None:
    a = Histogram(edges=(0.0, 1.0, 2.0), counts=(1, 1))
    b = Histogram(edges=(0.0, 2.0, 4.0), counts=(1, 1))

    assert a.psi(b) is None


# -- comparing profiles ----------------------------------------------------------------------------


def test_diff_names_added_and_removed_columns() -> None:
    a = profile(pd.DataFrame({"kept": [1], "old": [1]}))
    b = profile(pd.DataFrame({"kept": [1], "new": [1]}))

    change = profile_diff(a, b)

    assert (change.added, change.removed) == (["new"], ["old"])
    assert [c.name for c in change.columns] == ["kept"]


def test_diff_reports_counts_null_rates_and_mean_shift() -> None:
    a = profile(one_column([1.0, 2.0, 3.0, None]))
    b = profile(one_column([3.0, 4.0, 5.0, 6.0]))

    change = profile_diff(a, b)["x"]

    assert change.count == (3, 4)
    assert change.null_rate == (0.25, 0.0)
    assert change.mean == (2.0, 4.5)
    assert change.mean_shift_in_std == pytest.approx(2.5)


def test_diff_compares_quantiles_when_histogram_edges_differ() -> None:
    a = profile(one_column(np.arange(101.0)))
    b = profile(one_column(np.arange(101.0) + 10))

    change = profile_diff(a, b)["x"]

    assert change.psi is None
    assert change.quantile_shift is not None
    assert change.quantile_shift["p50"] == pytest.approx(10.0)


def test_diff_computes_psi_when_b_is_binned_into_a_edges() -> None:
    rng = np.random.default_rng(3)
    a = profile(one_column(rng.normal(0, 1, 2000)))
    same = profile(one_column(rng.normal(0, 1, 2000)), reference=a)
    shifted = profile(one_column(rng.normal(1, 1, 2000)), reference=a)

    same_psi = profile_diff(a, same)["x"].psi
    shifted_psi = profile_diff(a, shifted)["x"].psi

    assert same_psi is not None
    assert shifted_psi is not None
    assert same_psi < 0.1 < shifted_psi


def test_diff_lists_new_and_gone_categories_with_their_shares() -> None:
    a = profile(one_column(["a", "a", "b", "c"]))
    b = profile(one_column(["a", "b", "d", "d"]))

    change = profile_diff(a, b)["x"]

    assert change.new_values == ["d"]
    assert change.gone_values == ["c"]
    assert change.shares is not None
    assert change.shares["a"] == (0.5, 0.25)
    assert change.shares["d"] == (None, 0.5)


def test_diff_does_not_call_values_new_when_the_reference_list_was_cut() -> None:
    a = profile(one_column(["a", "a", "b", "c"]), top_n=1)
    b = profile(one_column(["c", "b"]))

    change = profile_diff(a, b)["x"]

    assert change.new_values == []


def test_diff_to_dict_is_json_without_nan() -> None:
    a = profile(pd.DataFrame({"x": [1.0, 1.0], "s": ["a", "b"]}))
    b = profile(pd.DataFrame({"x": [np.nan, np.nan], "s": ["a", "c"]}))

    data = json.loads(json.dumps(profile_diff(a, b).to_dict(), allow_nan=False))

    assert data["columns"][0]["name"] == "x"
    assert not any(isinstance(v, float) and math.isnan(v) for v in data["columns"][0].values())


# -- the drift sketch ------------------------------------------------------------------------------


def test_numeric_sketch_buckets_hold_about_equal_reference_mass() -> None:
    rng = np.random.default_rng(5)
    values = rng.lognormal(size=50_000)
    values[::20] = np.nan
    sketch = profile(one_column(values))["x"].sketch

    assert sketch is not None
    inner = np.array(sketch.counts[1:-1]) / sum(sketch.counts)
    assert sum(sketch.counts) == np.count_nonzero(~np.isnan(values))
    assert 90 <= len(inner) <= 100
    assert inner.max() < 0.02  # ~1 % each, give or take a grid cell
    assert list(sketch.bin(values)) == list(sketch.counts)  # the same arithmetic counted both


def test_sketch_keeps_high_in_the_last_inner_bucket_and_tails_apart() -> None:
    sketch = profile(one_column([0.0, 1.0, 2.0, 3.0, 4.0] * 20))["x"].sketch

    assert sketch is not None
    counts = list(sketch.bin(np.array([4.0, 4.5, -1.0, np.nan])))
    # below the grid, the maximum itself (closed last bucket), above the grid; NaN left out
    assert (counts[0], counts[-2], counts[-1], sum(counts)) == (1, 1, 1, 3)
    assert sketch.bounds[0] == 0.0
    assert sketch.bounds[-1] == 4.0


def test_profiles_stored_without_a_sketch_still_load() -> None:
    stored = profile(one_column([1.0, 2.0, 3.0])).to_dict()
    del stored["columns"]["x"]["sketch"]

    column = Profile.from_dict(stored)["x"]

    assert column.sketch is None
    assert column.histogram is not None
