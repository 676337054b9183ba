"""What ``keel.features`` exports: listed once, sorted, and importable."""

from __future__ import annotations

import keel.features


def test_all_is_sorted_and_complete() -> None:
    assert keel.features.__all__ == sorted(keel.features.__all__)
    for name in keel.features.__all__:
        assert hasattr(keel.features, name), name


def test_the_online_lookup_and_watermark_types_are_exported() -> None:
    exported = set(keel.features.__all__)

    assert {"OnlineFeatures", "ViewFreshness", "Watermark", "read_watermark"} <= exported
