"""The prediction log package exports a handful of names, listed once and sorted."""

from __future__ import annotations

import keel.serving._predlog as predlog


def test_all_is_sorted_and_complete() -> None:
    assert predlog.__all__ == sorted(predlog.__all__)
    for name in predlog.__all__:
        assert hasattr(predlog, name), name
