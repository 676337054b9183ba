"""The report's bars: a window counted in its reference's own bins and categories."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keel.data._profile import profile
from keel.monitoring._report_bins import TOP_CATEGORIES, _short, category_bins, numeric_bins


def test_numbers_outside_the_reference_range_and_nulls_get_bars_of_their_own() -> None:
    reference = profile(pd.DataFrame({"x": np.linspace(0.0, 10.0, 101)}), bins=5)["x"]
    assert reference.histogram is not None
    found = numeric_bins(reference, [-3.0, 1.0, 1.5, 9.9, 25.0, 30.0, None])
    assert found is not None
    labels, before, now = found
    assert labels[0] == "< 0"
    assert labels[-2:] == ("> 10", "(null)")
    assert before == [0, *reference.histogram.counts, 0, 0]
    assert now == [1, 2, 0, 0, 0, 1, 2, 1]
    inner = reference.histogram.bin(np.array([1.0, 1.5, 9.9]))
    assert now[1:-2] == list(inner.counts)


def test_a_value_a_complete_reference_never_held_is_unseen_and_nulls_are_counted() -> None:
    frame = pd.DataFrame({"plan": ["basic"] * 6 + ["pro"] * 3 + [None]})
    reference = profile(frame)["plan"]
    found = category_bins(reference, ["basic", "pro", "pro", "gold", "gold", None, None])
    assert found == (("basic", "pro", "(unseen)", "(null)"), [6, 3, 0, 1], [1, 2, 2, 2])


def test_beyond_the_reference_top_list_a_value_may_be_a_cut_one_so_it_is_other() -> None:
    frame = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"] * 2})
    reference = profile(frame, top_n=2)["c"]  # "c" was cut from the list
    found = category_bins(reference, ["a", "c", "z"])
    assert found == (("a", "b", "(other)"), [5, 3, 2], [1, 0, 2])


def test_only_the_top_categories_are_drawn_the_rest_add_up_to_other() -> None:
    values = [f"v{i}" for i in range(TOP_CATEGORIES + 3) for _ in range(20 - i)]
    reference = profile(pd.DataFrame({"c": values}))["c"]
    found = category_bins(reference, [f"v{TOP_CATEGORIES + 2}", "v0"])
    assert found is not None
    labels, before, now = found
    assert len(labels) == TOP_CATEGORIES + 1
    assert labels[-1] == "(other)"
    assert sum(before) == len(values)
    assert now[0] == 1
    assert now[-1] == 1


def test_bin_edges_are_short() -> None:
    assert [_short(x) for x in (0.25, 36.8, 999.9, 4012.3, -125_000, 1.26e6)] == [
        "0.25", "36.8", "1000", "4.01k", "-125k", "1.26M",
    ]  # fmt: skip
