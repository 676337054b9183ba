"""The statistic kernels against SciPy on raw data, and their properties."""

from __future__ import annotations

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keel.monitoring._stats import (
    KS_LIMIT_ROWS,
    MIN_EXPECTED,
    STATISTICS,
    chi_square,
    js_distance,
    ks_from_counts,
    ks_from_values,
    ks_p_value,
    merge_sparse,
    psi,
    wasserstein_from_counts,
    wasserstein_from_values,
)

PROPERTY = hypothesis.settings(max_examples=60, deadline=None, database=None)
samples = hnp.arrays(
    np.float64,
    st.integers(min_value=1, max_value=60),
    elements=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
)
count_vectors = hnp.arrays(
    np.int64, st.integers(min_value=2, max_value=12), elements=st.integers(0, 500)
).filter(lambda c: c.sum() > 0)


def test_every_statistic_says_how_it_decides() -> None:
    kinds = {name: info.kind for name, info in STATISTICS.items()}

    assert kinds == {
        "ks": "p_value",
        "chi2": "p_value",
        "psi": "threshold",
        "js": "threshold",
        "wasserstein": "threshold",
    }
    assert [STATISTICS[n].threshold for n in ("psi", "js", "wasserstein")] == [0.2, 0.1, 0.1]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # SciPy's p-value on tiny samples
@PROPERTY
@hypothesis.given(samples, samples)
def test_ks_from_values_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    expected = stats.ks_2samp(a, b, method="asymp").statistic  # the statistic only

    assert ks_from_values(np.sort(a), a.size, np.sort(b), b.size) == pytest.approx(expected)


def test_ks_counts_nulls_as_an_atom_above_every_number() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(size=400)
    a_nulls, b_nulls = 5, 80
    # SciPy on the same data with nulls written as +inf: the same extended variable
    expected = stats.ks_2samp(
        np.append(a, [np.inf] * a_nulls), np.append(b, [np.inf] * b_nulls)
    ).statistic

    got = ks_from_values(np.sort(a), a.size + a_nulls, np.sort(b), b.size + b_nulls)

    assert got == pytest.approx(expected)


@pytest.mark.parametrize("n", [200, 3000, KS_LIMIT_ROWS])
def test_ks_p_value_is_scipys_asymptotic_one_up_to_the_limit(n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(0.05, 1, size=n * 2)
    expected = stats.ks_2samp(a, b, method="asymp")

    got = ks_p_value(expected.statistic, n, 2 * n)

    assert got == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("d", [0.0015, 0.002, 0.003, 0.004])
def test_ks_p_value_beyond_the_limit_agrees_with_kstwo(d: float) -> None:
    n = 400_000  # effective rows 200,000
    expected = stats.kstwo.sf(d, 200_000)

    assert ks_p_value(d, n, n) == pytest.approx(expected, rel=2e-3)


@PROPERTY
@hypothesis.given(count_vectors)
def test_identical_distributions_have_zero_distance(counts: np.ndarray) -> None:
    edges = np.arange(len(counts) + 1, dtype="float64")

    assert ks_from_counts(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)
    assert psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(counts, counts * 3) == pytest.approx(0.0, abs=1e-7)
    assert wasserstein_from_counts(edges, counts, counts * 3) == pytest.approx(0.0, abs=1e-9)


@PROPERTY
@hypothesis.given(samples)
def test_identical_samples_have_zero_ks_and_wasserstein(a: np.ndarray) -> None:
    ordered = np.sort(a)

    assert ks_from_values(ordered, a.size, ordered, a.size) == 0.0
    assert wasserstein_from_values(ordered, ordered) == 0.0


@PROPERTY
@hypothesis.given(count_vectors, st.data())
def test_js_matches_scipy_and_is_symmetric(p: np.ndarray, data: st.DataObject) -> None:
    q = data.draw(hnp.arrays(np.int64, len(p), elements=st.integers(0, 500)))
    hypothesis.assume(q.sum() > 0)

    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-7)
    assert js_distance(p, q) == pytest.approx(js_distance(q, p), abs=1e-12)
    assert 0.0 <= js_distance(p, q) <= 1.0


def test_js_of_disjoint_distributions_is_one() -> None:
    assert js_distance(np.array([5, 0]), np.array([0, 7])) == pytest.approx(1.0)


def test_psi_matches_the_textbook_formula_with_the_empty_bucket_floor() -> None:
    reference, current = np.array([50, 30, 20, 0]), np.array([40, 30, 20, 10])
    e = np.maximum(reference / 100, 1e-4)
    a = np.maximum(current / 100, 1e-4)

    assert psi(reference, current) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))


def test_chi_square_matches_scipy_contingency_without_sparse_buckets() -> None:
    reference, current = np.array([120, 340, 200, 90]), np.array([100, 300, 260, 60])
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)

    statistic, p_value, freedom = chi_square(reference, current)

    assert (statistic, p_value, freedom) == pytest.approx(
        (expected.statistic, expected.pvalue, expected.dof)
    )


@PROPERTY
@hypothesis.given(count_vectors, count_vectors)
def test_merged_buckets_keep_totals_and_reach_the_expected_count(
    a: np.ndarray, b: np.ndarray
) -> None:
    size = min(len(a), len(b))
    reference, current = a[:size], b[:size]
    hypothesis.assume(reference.sum() > 0 and current.sum() > 0)

    ref, cur = merge_sparse(reference, current)

    assert (ref.sum(), cur.sum()) == (reference.sum(), current.sum())
    if ref.size > 1:
        pooled = ref + cur
        smaller = min(ref.sum(), cur.sum()) / pooled.sum()
        assert (pooled * smaller >= MIN_EXPECTED - 1e-9).all()


def test_chi_square_with_one_bucket_left_tests_nothing() -> None:
    assert chi_square(np.array([3, 1]), np.array([2, 2])) == (0.0, 1.0, 0)


def test_wasserstein_from_values_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = np.sort(rng.normal(size=700)), np.sort(rng.gamma(2.0, size=300))

    assert wasserstein_from_values(a, b) == pytest.approx(stats.wasserstein_distance(a, b))


def test_wasserstein_from_counts_is_exact_for_uniform_buckets() -> None:
    # two uniform distributions on [0, 1] and [1, 2] are 1 apart
    edges = np.array([0.0, 1.0, 2.0])

    assert wasserstein_from_counts(edges, np.array([10, 0]), np.array([0, 4])) == pytest.approx(1)
    # uniform on [0, 2] vs uniform on [0, 1]: integral of |x/2 - min(x, 1)| is 0.5
    got = wasserstein_from_counts(edges, np.array([5, 5]), np.array([8, 0]))
    assert got == pytest.approx(0.5)
