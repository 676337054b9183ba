"""The one time-zone rule of the feature store.

Every timestamp the feature store compares (event timestamps of feature rows, label timestamps,
materialization windows) is compared in UTC. Time-zone-aware values are converted to UTC.
Values without a zone are refused with a :class:`TimestampError` naming the column, unless the
project declares ``[features] naive_timestamps = "utc"``, in which case they are taken to be UTC
(never the machine's local zone, which would make results depend on where the code runs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from keel.errors import TimestampError

NaiveRule = Literal["reject", "utc"]


def to_utc(series: pd.Series[Any], column: str, naive: NaiveRule) -> pd.Series[Any]:
    """``series`` as ``datetime64[ns, UTC]``; refuses naive values under the ``reject`` rule and
    anything that is not a timestamp."""
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        present = series.dropna()
        if series.dtype == object and present.empty:  # only nulls: no zone to check
            empty: pd.Series[Any] = pd.to_datetime(series, utc=True).astype("datetime64[ns, UTC]")
            return empty
        if series.dtype == object and isinstance(present.iloc[0], datetime):
            series = pd.to_datetime(series, utc=False)
        else:
            raise TimestampError(column, f"holds {series.dtype}, not timestamps")
    if getattr(series.dt, "tz", None) is None:
        if naive == "reject":
            raise TimestampError(
                column,
                "has no time zone; give timestamps a zone (e.g. tz_localize('UTC')) or set "
                '[features] naive_timestamps = "utc" to take naive values as UTC',
            )
        localized: pd.Series[Any] = series.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
        return localized
    converted: pd.Series[Any] = series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return converted


def instant_to_utc(
    value: datetime | pd.Timestamp | str, name: str, naive: NaiveRule
) -> pd.Timestamp:
    """One point in time (a materialization bound, a request time) in UTC, by the same rule."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        if naive == "reject":
            raise TimestampError(name, f"{value!r} has no time zone")
        return stamp.tz_localize(UTC)
    return stamp.tz_convert(UTC)
