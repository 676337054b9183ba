"""A numeric column's sketch: reference counts over ~100 buckets of roughly equal mass.

The bucket boundaries sit on a fine equal-width grid (4096 cells between the 0.1 % and 99.9 %
quantiles), so live values are bucketed by arithmetic alone (a multiply and a ``bincount``),
and drift tests get far more resolution than the profile's 20 histogram bins give on skewed
data. Profiles keep one per numeric column (:mod:`keel.data._profile`); it is optional, and
profiles stored before it existed fall back to their histogram (:meth:`Sketch.from_histogram`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keel.data._profile import Histogram

#: cells of the sketch's equal-width grid, and the equal-mass buckets drawn over it
SKETCH_CELLS = 4096
SKETCH_BUCKETS = 100
# The grid spans these quantiles, so one far outlier cannot stretch it over empty space.
_SKETCH_SPAN = (0.001, 0.999)
_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class Sketch:
    """Reference counts over buckets of roughly equal mass, for drift tests.

    A grid of ``cells`` equal-width cells covers [``low``, ``high``]; cell 0 holds the values
    below ``low`` and cell ``cells + 1`` those above ``high`` (``high`` itself is in the last
    inner cell). Bucket ``i`` is the run of cells from ``starts[i - 1]`` (0 for the first
    bucket) up to ``starts[i]``, and ``counts[i]`` its reference values (NaN left out, ±inf in
    the outer buckets). Because bucket bounds are grid lines, live values are bucketed with a
    multiply and a ``bincount`` (:meth:`bin`), the same arithmetic that counted the reference.

        live_counts = column.sketch.bin(values)     # aligned with column.sketch.counts
    """

    low: float
    high: float
    cells: int
    starts: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def bounds(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The value where each bucket after the first begins (``len(counts) - 1`` values)."""
        width = (self.high - self.low) / self.cells
        return self.low + (np.asarray(self.starts, dtype="float64") - 1.0) * width

    def bin(self, values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Counts of ``values`` (NaN ignored) in these buckets."""
        cells = grid_counts(np.asarray(values, dtype="float64"), self.low, self.high, self.cells)
        return np.add.reduceat(cells, np.asarray((0, *self.starts), dtype=np.intp))

    @classmethod
    def from_histogram(cls, histogram: Histogram) -> Sketch:
        """The histogram's bins as a sketch (below, each bin, above): for profiles stored before
        sketches existed. Binning by arithmetic may place a value within rounding of an inner
        edge in the neighbouring bin, which does not matter for a drift statistic."""
        bins = len(histogram.counts)
        return cls(
            low=histogram.edges[0],
            high=histogram.edges[-1],
            cells=bins,
            starts=tuple(range(1, bins + 2)),
            counts=(histogram.below, *histogram.counts, histogram.above),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "cells": self.cells,
            "starts": list(self.starts),
            "counts": list(self.counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sketch:
        return cls(
            low=float(data["low"]),
            high=float(data["high"]),
            cells=int(data["cells"]),
            starts=tuple(int(s) for s in data["starts"]),
            counts=tuple(int(c) for c in data["counts"]),
        )


def grid_counts(
    values: np.ndarray[Any, np.dtype[np.float64]], low: float, high: float, cells: int
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Counts of ``values`` in ``cells`` equal-width cells over [low, high] plus one cell below
    and one above (``cells + 2`` counts), NaN left out: a few vectorized passes and a bincount,
    several times faster than ``searchsorted`` over the edges."""
    scale = cells / (high - low)
    with np.errstate(invalid="ignore", over="ignore"):
        position = values * scale
        position += 1.0 - low * scale
        # fmax sends NaN to cell 0 (taken out again below); the clip keeps +inf in range
        np.fmax(position, 0.0, out=position)
        np.minimum(position, cells + 1, out=position)
        index = position.astype(np.intp)
    counts = np.bincount(index, minlength=cells + 2)
    # high belongs to the last inner cell, like the histogram's closed last bin
    above = int(np.count_nonzero(values > high))
    counts[cells] += int(counts[cells + 1]) - above
    counts[cells + 1] = above
    counts[0] -= int(np.count_nonzero(np.isnan(values)))
    return counts


def sketch_of(values: np.ndarray[Any, Any], finite: np.ndarray[Any, Any]) -> Sketch | None:
    """The sketch of a column's non-NaN ``values``, whose finite part is ``finite``."""
    levels = np.quantile(finite, [*_SKETCH_SPAN, *(np.arange(1, SKETCH_BUCKETS) / SKETCH_BUCKETS)])
    low, high = float(levels[0]), float(levels[1])
    if high <= low:  # almost every value is one number: span the whole range instead
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        low, high = padded_range(low)
    if not math.isfinite(SKETCH_CELLS / (high - low)) or not math.isfinite(high - low):
        return None
    # each quantile moves to its nearest grid line; the outer cells stay buckets of their own
    lines = np.rint((levels[2:] - low) * (SKETCH_CELLS / (high - low))) + 1
    inner = np.clip(lines, 1, SKETCH_CELLS + 1)
    starts = np.unique(np.concatenate(([1], inner, [SKETCH_CELLS + 1]))).astype(np.intp)
    counts = np.add.reduceat(grid_counts(values, low, high, SKETCH_CELLS), np.append(0, starts))
    return Sketch(
        low, high, SKETCH_CELLS, tuple(int(s) for s in starts), tuple(int(c) for c in counts)
    )


def padded_range(value: float) -> tuple[float, float]:
    """A unit-wide range around a constant column's ``value`` (as NumPy does), widened where
    0.5 is lost in the value's precision and clamped where it would overflow."""
    pad = max(0.5, abs(value) * 1e-9)
    return max(value - pad, -_FLOAT_MAX), min(value + pad, _FLOAT_MAX)
