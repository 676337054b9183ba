"""Checking ``drift``'s arguments: each bad one is a MonitoringError saying what to change."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, get_args

import pandas as pd
import pyarrow as pa

from keel.data._profile import Profile
from keel.errors import MonitoringError
from keel.monitoring._reference import ColumnKind, Reference
from keel.monitoring._report import Correction
from keel.monitoring._stats import STATISTICS
from keel.monitoring._window import columns_of

_KNOWN = ", ".join(STATISTICS)


def statistics(names: Iterable[str] | None) -> list[str]:
    """The statistics to compute, known and at least one (default: all)."""
    if names is None:
        return list(STATISTICS)
    chosen = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in chosen if name not in STATISTICS]
    if unknown or not chosen:
        what = f"unknown statistic {', '.join(map(repr, unknown))}" if unknown else "no statistic"
        raise MonitoringError(what, fix=f"choose among {_KNOWN}")
    return chosen


def default_statistics(
    given: Mapping[str, str] | None,
    defaults: Mapping[ColumnKind, str],
    names: list[str],
    present: set[ColumnKind],
) -> dict[ColumnKind, str]:
    """Which statistic decides each column kind's verdict: it must apply to the kind, and be
    computed where columns of that kind are ``present``."""
    chosen: dict[ColumnKind, str] = dict(defaults)
    for kind, name in (given or {}).items():
        if kind not in get_args(ColumnKind):
            raise MonitoringError(
                f"unknown column kind {kind!r} in default_statistics",
                fix="use 'numeric' and/or 'categorical'",
            )
        chosen[kind] = name  # type: ignore[index]  # checked against ColumnKind just above
    for kind, name in chosen.items():
        info = STATISTICS.get(name)
        if info is None or not (info.numeric if kind == "numeric" else info.categorical):
            applicable = [s.name for s in STATISTICS.values() if getattr(s, kind)]
            raise MonitoringError(
                f"{name!r} cannot decide {kind} columns",
                fix=f"choose among {', '.join(applicable)}",
            )
        if name not in names and kind in present:
            raise MonitoringError(
                f"the default statistic {name!r} for {kind} columns is not among statistics="
                f"{names}",
                fix=f"add {name!r} to statistics or pick another in default_statistics",
            )
    return chosen


def thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    """Thresholds of the threshold statistics: the defaults, overridden by ``given``."""
    limits = {s.name: s.threshold for s in STATISTICS.values() if s.threshold is not None}
    for name, value in (given or {}).items():
        if name not in limits:
            raise MonitoringError(
                f"no threshold for {name!r}",
                fix=f"thresholds apply to {', '.join(limits)} (p-value statistics use alpha)",
            )
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise MonitoringError(
                f"threshold {name}={value!r} is not a positive number", fix="give one above 0"
            )
        limits[name] = float(value)
    return limits


def check(correction: str, alpha: float, min_rows: int) -> None:
    if correction not in get_args(Correction):
        raise MonitoringError(
            f"unknown correction {correction!r}",
            fix="use 'bh' (Benjamini-Hochberg), 'bonferroni' or 'none'",
        )
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise MonitoringError(f"alpha={alpha!r} is not in (0, 1)", fix="use e.g. alpha=0.05")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise MonitoringError(
            f"min_rows={min_rows!r} is not a positive integer",
            fix="give the smallest window worth judging, e.g. 1000",
        )


def reference(given: Any) -> Reference:
    if isinstance(given, Reference):
        return given
    if isinstance(given, Profile):
        return Reference.from_profile(given)
    if isinstance(given, pd.DataFrame | pa.Table):
        return Reference.from_data(given)
    raise MonitoringError(
        f"cannot compare against a {type(given).__name__}",
        fix="give a Profile, a Reference, a pandas DataFrame or a pyarrow Table",
    )


def current(given: Any) -> dict[str, pd.Series[Any]]:
    if isinstance(given, pd.DataFrame | pa.Table):
        return columns_of(given)
    raise MonitoringError(
        f"cannot read a current window from a {type(given).__name__}",
        fix="give a pandas DataFrame or a pyarrow Table",
    )


def columns(names: Iterable[str] | None, ref: Reference, window: Mapping[str, Any]) -> list[str]:
    """The columns to compare: the given ones (each on at least one side), or all of both."""
    if names is None:
        return [*ref.columns, *(name for name in window if name not in ref.columns)]
    chosen = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in chosen if n not in ref.columns and n not in window]
    if unknown:
        raise MonitoringError(
            f"no column {', '.join(map(repr, unknown))} on either side",
            fix="check the names against the reference and the window",
        )
    return chosen
