"""Validating data against a keel Schema: a 1,000,000 x 20 batch, and one 20-field record.

    taskset -c 1 .venv/bin/python bench/bench_validation.py [--rows N] [--records N]

Batch: keel's vectorized validate() on a frame the benchmark generates (6 float, 5 int, 2 bool,
3 category, 2 string and 2 timestamp columns with ranges, allowed values, patterns, NaN/null
rules and one custom check; about 4 % of rows invalid), in ``warn`` mode (the report only) and in
``drop`` mode (report, valid frame and quarantine file). Baseline in the same run: the same rules
checked row by row with ``DataFrame.apply(axis=1)`` on a 20,000-row slice, scaled to rows/s
(pandera is not installed). Single record: keel's RecordValidator on a 20-field record with the
same rules (no custom check, then with one), against a pydantic v2 model of the same record.
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import time
import warnings
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic

from _common import fmt, machine, median_seconds
from keel.data import Check, DataValidationWarning, Field, RecordValidator, Schema, validate

COUNTRIES = ["FR", "DE", "ES", "IT", "NL", "BE", "PL", "SE"]
CHANNELS = ["web", "app", "store", "phone"]
TIERS = ["free", "basic", "pro", "enterprise"]
PLANS = ["monthly", "yearly"]
START = pd.Timestamp("2020-01-01", tz="UTC")
END = pd.Timestamp("2026-01-01", tz="UTC")


def short_code(values: pd.Series[Any]) -> Any:
    return values.str.len() <= 12


SCHEMA = Schema(
    (
        *(Field(f"f{i}", "float", min=-5.0, max=5.0) for i in range(4)),
        Field("f4", "float", nullable=True, min=0.0),
        Field("f5", "float", nullable=True, allow_nan=True),
        *(Field(f"i{i}", "int", min=0, max=999) for i in range(4)),
        Field("i4", "int", allowed=[1, 2, 3, 4, 5]),
        Field("b0", "bool"),
        Field("b1", "bool"),
        Field("country", "category", allowed=COUNTRIES),
        Field("channel", "category", allowed=CHANNELS),
        Field("tier", "category", allowed=TIERS, nullable=True),
        Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}"),
        Field("plan", "string", allowed=PLANS, checks=[Check("short", short_code)]),
        Field("signup", "timestamp", min=START, max=END),
        Field("last_seen", "timestamp", min=START, nullable=True),
    )
)


def make_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """A frame for SCHEMA with about 0.2 % bad values per rule-bearing column."""
    rng = np.random.default_rng(seed)

    def bad(share: float = 0.002) -> np.ndarray[Any, Any]:
        return rng.random(rows) < share

    data: dict[str, Any] = {}
    for i in range(4):
        values = rng.normal(0, 1.5, rows)
        values[bad()] = 9.0
        data[f"f{i}"] = values
    f4 = rng.exponential(1.0, rows)
    f4[bad(0.05)] = np.nan
    f4[bad()] = -1.0
    data["f4"] = f4
    f5 = rng.normal(size=rows)
    f5[bad(0.01)] = np.nan
    data["f5"] = f5
    for i in range(4):
        ints = rng.integers(0, 1000, rows)
        ints[bad()] = 5000
        data[f"i{i}"] = ints
    i4 = rng.integers(1, 6, rows)
    i4[bad()] = 9
    data["i4"] = i4
    data["b0"] = rng.random(rows) < 0.5
    data["b1"] = rng.random(rows) < 0.1
    for name, values in (("country", COUNTRIES), ("channel", CHANNELS), ("tier", TIERS)):
        codes = rng.integers(0, len(values), rows)
        column = pd.Categorical.from_codes(codes, [*values, "XX"])
        column[bad()] = "XX"
        data[name] = column
    data["tier"][bad(0.05)] = np.nan
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    prefixes = np.char.add(np.char.add(letters[rng.integers(0, 26, 1000)], letters[:1]), "X")
    skus = np.char.add(np.char.add(prefixes, "-"), rng.integers(1000, 10000, 1000).astype(str))
    skus[:3] = ["bad", "AB-12", "ABC-12345"]
    sku = skus[rng.integers(0, 1000, rows)]
    data["sku"] = pd.Series(sku, dtype="str")
    plans = np.array([*PLANS, "weekly"])
    data["plan"] = pd.Series(plans[np.where(bad(), 2, rng.integers(0, 2, rows))])
    span = int((END - START).value)
    data["signup"] = pd.to_datetime(START.value + rng.integers(0, span, rows), utc=True)
    # naive: read as UTC by every validator
    last = pd.Series(pd.to_datetime(START.value + rng.integers(-span // 50, span, rows)))
    last[bad(0.05)] = pd.NaT
    data["last_seen"] = last
    return pd.DataFrame(data)


def naive_row_check(row: pd.Series[Any]) -> bool:
    """The same rules, one row at a time: what a validator without vectorization does."""
    for field in SCHEMA.fields:
        value = row[field.name]
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            if not field.nullable and not field.allow_nan:
                return False
            continue
        if isinstance(value, pd.Timestamp) and value.tzinfo is None:
            value = value.tz_localize("UTC")
        if field.min is not None and value < field.min:
            return False
        if field.max is not None and value > field.max:
            return False
        if field.allowed is not None and value not in field.allowed:
            return False
        if field.pattern is not None and not re.fullmatch(field.pattern, value):
            return False
        if field.dtype == "float" and not field.allow_nan and math.isinf(value):
            return False
    return len(row["plan"]) <= 12


RECORD: dict[str, Any] = {
    **{f"f{i}": 0.5 + i for i in range(4)},
    "f4": 1.25,
    "f5": None,
    **{f"i{i}": 10 * i + 1 for i in range(4)},
    "i4": 3,
    "b0": True,
    "b1": False,
    "country": "FR",
    "channel": "web",
    "tier": "pro",
    "sku": "ABC-1234",
    "plan": "monthly",
    "signup": "2024-05-01T12:30:00+00:00",
    "last_seen": "2025-01-02T08:00:00Z",
}
BAD_RECORD = {**RECORD, "f0": 9.5, "i4": 7, "country": "XX", "sku": "bad"}

Unit = Annotated[float, pydantic.Field(ge=-5.0, le=5.0)]
Count = Annotated[int, pydantic.Field(ge=0, le=999)]


class PydanticRecord(pydantic.BaseModel):
    """The same record and rules as a pydantic v2 model (the baseline)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    f0: Unit
    f1: Unit
    f2: Unit
    f3: Unit
    f4: Annotated[float | None, pydantic.Field(ge=0.0)]
    f5: float | None
    i0: Count
    i1: Count
    i2: Count
    i3: Count
    i4: Literal[1, 2, 3, 4, 5]
    b0: pydantic.StrictBool
    b1: pydantic.StrictBool
    country: Literal["FR", "DE", "ES", "IT", "NL", "BE", "PL", "SE"]
    channel: Literal["web", "app", "store", "phone"]
    tier: Literal["free", "basic", "pro", "enterprise"] | None
    sku: Annotated[str, pydantic.Field(pattern=r"^[A-Z]{3}-\d{4}$")]
    plan: Literal["monthly", "yearly"]
    signup: Annotated[datetime, pydantic.Field(ge=START.to_pydatetime(), le=END.to_pydatetime())]
    last_seen: Annotated[datetime | None, pydantic.Field(ge=datetime(2020, 1, 1, tzinfo=UTC))]


def per_call(action: Any, calls: int, repeat: int = 5) -> float:
    def run() -> None:
        for _ in range(calls):
            action()

    return median_seconds(run, repeat) / calls


def bench_batch(rows: int) -> None:
    start = time.perf_counter()
    frame = make_frame(rows)
    print(f"generated a {rows:,} x {frame.shape[1]} frame in {fmt(time.perf_counter() - start)}")
    warnings.simplefilter("ignore", DataValidationWarning)
    report = validate(frame, SCHEMA, mode="warn").report
    print(
        f"  {report.invalid_count:,} invalid rows ({report.invalid_count / rows:.2%}), "
        f"{len(report.failures)} failing rules"
    )
    warn = median_seconds(lambda: validate(frame, SCHEMA, mode="warn"), repeat=5)
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as quarantine:
        drop = median_seconds(
            lambda: validate(frame, SCHEMA, mode="drop", quarantine_dir=quarantine), repeat=3
        )
    sample = frame.iloc[:20_000]
    naive = median_seconds(lambda: sample.apply(naive_row_check, axis=1), repeat=1)
    naive_rate = len(sample) / naive
    print(
        f"  keel validate (report)      {fmt(warn):>9}  {rows / warn / 1e6:6.2f} M rows/s"
        f"  x{rows / warn / naive_rate:,.0f} vs baseline"
    )
    print(
        f"  keel validate (drop)        {fmt(drop):>9}  {rows / drop / 1e6:6.2f} M rows/s"
        f"  x{rows / drop / naive_rate:,.0f} vs baseline"
    )
    print(
        f"  baseline apply(axis=1)      {fmt(naive):>9}  {naive_rate / 1e6:6.3f} M rows/s"
        f"  (20,000-row slice; {fmt(naive * rows / len(sample))} scaled to {rows:,} rows)"
    )


def bench_record(calls: int) -> None:
    series_check = RecordValidator(SCHEMA)
    scalar_check = RecordValidator(with_check(Check("short", short_code, scalar=short_value)))
    no_check = RecordValidator(with_check(None))
    for validator in (series_check, scalar_check, no_check):
        assert validator.validate(RECORD) == []
        assert len(validator.validate(BAD_RECORD)) == 4
    PydanticRecord.model_validate(RECORD)
    lines = [
        ("keel, valid record", per_call(lambda: no_check.validate(RECORD), calls)),
        ("keel, 4 bad fields", per_call(lambda: no_check.validate(BAD_RECORD), calls)),
        ("keel + scalar check", per_call(lambda: scalar_check.validate(RECORD), calls)),
        ("keel + Series check", per_call(lambda: series_check.validate(RECORD), calls // 10)),
        ("pydantic, valid record", per_call(lambda: PydanticRecord.model_validate(RECORD), calls)),
    ]
    for label, seconds in lines:
        print(f"  {label:<24} {seconds * 1e6:7.2f} µs/record")


def short_value(value: str) -> bool:
    return len(value) <= 12


def with_check(check: Check | None) -> Schema:
    """SCHEMA with the custom check of 'plan' replaced (None: removed)."""
    data = SCHEMA.to_dict()
    plan = next(f for f in data["fields"] if f["name"] == "plan")
    plan["checks"] = [] if check is None else ["short"]
    return Schema.from_dict(data, checks={} if check is None else {"short": check})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    print(machine())
    print(f"pandas {pd.__version__}, numpy {np.__version__}, pydantic {pydantic.VERSION}")
    print(f"batch validation, {len(SCHEMA.fields)} columns:")
    bench_batch(args.rows)
    print(f"single-record validation, {len(SCHEMA.fields)} fields:")
    bench_record(args.records)


if __name__ == "__main__":
    main()
