"""The one time-zone rule: compared in UTC, naive values refused unless taken as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from keel.errors import TimestampError
from keel.features._time import instant_to_utc, to_utc

NOON_UTC = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def test_aware_values_in_another_zone_become_the_same_instants_in_utc() -> None:
    local = pd.Series([NOON_UTC, NOON_UTC + pd.Timedelta(hours=1)]).dt.tz_convert("America/Lima")
    converted = to_utc(local, "when", "reject")
    assert str(converted.dt.tz) == "UTC"
    assert converted.tolist() == [NOON_UTC, NOON_UTC + pd.Timedelta(hours=1)]


def test_naive_values_are_refused_under_the_reject_rule_naming_the_column() -> None:
    with pytest.raises(TimestampError, match="'when': has no time zone") as raised:
        to_utc(pd.Series([pd.Timestamp("2026-03-01 12:00")]), "when", "reject")
    assert raised.value.column == "when"


def test_naive_values_are_taken_as_utc_not_local_time_under_the_utc_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the machine's zone must not matter
    converted = to_utc(pd.Series([pd.Timestamp("2026-03-01 12:00")]), "when", "utc")
    assert converted.tolist() == [NOON_UTC]


def test_values_are_returned_at_nanosecond_resolution() -> None:
    seconds = pd.Series([NOON_UTC]).astype("datetime64[s, UTC]")
    assert to_utc(seconds, "when", "reject").dtype == "datetime64[ns, UTC]"


def test_object_column_of_aware_datetimes_is_accepted() -> None:
    values = pd.Series(
        [datetime(2026, 3, 1, 13, tzinfo=timezone(timedelta(hours=1)))], dtype=object
    )
    assert to_utc(values, "when", "reject").tolist() == [NOON_UTC]


@pytest.mark.parametrize("values", [[1, 2], ["2026-03-01", "2026-03-02"]])
def test_values_that_are_not_timestamps_are_refused(values: list[object]) -> None:
    with pytest.raises(TimestampError, match="not timestamps"):
        to_utc(pd.Series(values), "when", "utc")


def test_an_aware_instant_is_converted_to_utc() -> None:
    stamp = datetime(2026, 3, 1, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert instant_to_utc(stamp, "start", "reject") == NOON_UTC


def test_a_naive_instant_is_refused_under_the_reject_rule_naming_it() -> None:
    with pytest.raises(TimestampError, match="'start'.*has no time zone"):
        instant_to_utc("2026-03-01 12:00", "start", "reject")


def test_a_naive_instant_is_taken_as_utc_under_the_utc_rule() -> None:
    stamp = instant_to_utc(datetime(2026, 3, 1, 12), "start", "utc")
    assert stamp == NOON_UTC
    assert stamp.tzinfo == UTC
