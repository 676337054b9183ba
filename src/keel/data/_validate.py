"""Batch validation: a pandas DataFrame or an Arrow Table checked against a :class:`Schema`.

    result = validate(frame, schema, mode="drop", quarantine_dir="quarantine/")
    result.valid              # the rows that passed, same type as the input
    result.quarantine_path    # Parquet file of the rows that did not, with their reasons
    print(result.report.summary())

Every rule runs column at a time on NumPy arrays or with ``pyarrow.compute`` (RE2 for patterns),
never one Python call per row. Two fallbacks are slower but still per column: an object column
holding values of mixed types is classified with ``Series.map(type)`` (see ``_columns``), and a
pattern RE2 cannot compile (look-arounds, back-references) runs through Python's ``re``.

Problems come in two sizes. *Column problems* (``report.problems``) concern the whole frame: a
required column is missing, an unexpected column is present (``extra="forbid"``), or a column's
storage cannot hold the field's type at all (text in an int field, for instance). *Rule failures*
(``report.failures``) concern rows: a null, a value of the wrong type inside an object column, a
fractional value in an int field, NaN/Inf, out of range, not allowed, no pattern match, a failed
custom check. A missing nullable column is accepted (as in a record, where the key may be absent)
and listed in ``report.missing_optional``.

Row indexes in a report are the frame's index labels for pandas and positions for Arrow. The
report types live in ``_report``; reading a column into arrays lives in ``_columns``.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from keel.data._columns import (
    ARROW_ERRORS,
    NS_PER,
    Column,
    Mask,
    is_text,
    raw_column,
    read,
    take,
)
from keel.data._report import (
    ColumnProblem,
    DataValidationWarning,
    Frame,
    RuleFailure,
    ValidationReport,
    ValidationResult,
)
from keel.data._schema import Field, Schema, SchemaDiff, compile_pattern
from keel.errors import DataValidationError, SchemaError, SchemaMismatch

Mode = Literal["raise", "drop", "warn"]
Extra = Literal["ignore", "forbid"]

REASONS_COLUMN = "_keel_reasons"
ROW_COLUMN = "_keel_row"
_EXAMPLES = 5


# -- entry points ----------------------------------------------------------------------------------


def validate(
    data: Frame,
    schema: Schema,
    mode: Mode = "raise",
    quarantine_dir: str | Path | None = None,
    *,
    extra: Extra = "forbid",
) -> ValidationResult[Frame]:
    """Check ``data`` against ``schema``; what happens to failures depends on ``mode``.

    * ``raise``: raise :class:`DataValidationError` (its ``report`` attribute holds the report)
      if anything failed, else return the data unchanged;
    * ``drop``: return the valid rows; write the invalid ones, with a ``_keel_reasons`` list
      column (``"column:rule"``) and a ``_keel_row`` position column, to a new Parquet file in
      ``quarantine_dir``. Column problems make every row invalid, so they raise instead;
    * ``warn``: return all rows and emit one :class:`DataValidationWarning` with the summary.

    ``extra="forbid"`` makes columns the schema does not declare a column problem;
    ``extra="ignore"`` only lists them in ``report.extra_columns``.
    """
    if mode not in ("raise", "drop", "warn"):
        raise ValueError(f"mode must be 'raise', 'drop' or 'warn', not {mode!r}")
    if extra not in ("ignore", "forbid"):
        raise ValueError(f"extra must be 'ignore' or 'forbid', not {extra!r}")
    if mode == "drop" and quarantine_dir is None:
        raise ValueError("mode='drop' needs a quarantine_dir for the invalid rows")
    report, masks = _evaluate(data, schema, extra)
    if report.ok:
        return ValidationResult(data, report)
    if mode == "warn":
        warnings.warn(report.summary(), DataValidationWarning, stacklevel=2)
        return ValidationResult(data, report)
    if mode == "raise" or report.problems:
        raise DataValidationError(f"data does not match its schema: {report.summary()}", report)
    assert quarantine_dir is not None
    path = _quarantine(data, report.invalid_rows, masks, Path(quarantine_dir))
    keep = ~report.invalid_rows
    valid = data[keep] if isinstance(data, pd.DataFrame) else data.filter(pa.array(keep))
    return ValidationResult(valid, report, path)


def check_matches(frame: pd.DataFrame, schema: Schema, what: str = "input") -> None:
    """Refuse ``frame`` with :class:`SchemaMismatch` if it no longer fits ``schema`` (a model's
    signature): a required column is missing, a column's type does not widen to the declared one
    (int -> float and category -> string do), or a column holds nulls the schema refuses.
    Columns the schema does not use are fine, and so is an absent nullable column."""
    diff = Schema.from_frame(frame).diff(schema)  # old: what the data is; new: what is expected
    problems = [f"missing column '{f.name}' ({f.dtype})" for f in diff.added if not f.nullable]
    problems += SchemaDiff(retyped=diff.retyped).breaking
    if problems:
        raise SchemaMismatch(what, problems)


def conform(frame: pd.DataFrame, schema: Schema, what: str = "input") -> pd.DataFrame:
    """``frame`` checked with :func:`check_matches` and reduced to the schema's columns in the
    schema's order (columns the schema does not use are left out; absent nullable ones stay
    absent), ready for a model trained on that schema."""
    check_matches(frame, schema, what)
    present = set(frame.columns)
    return frame[[name for name in schema.names if name in present]]


# -- evaluation ------------------------------------------------------------------------------------


def _evaluate(
    data: pd.DataFrame | pa.Table, schema: Schema, extra: Extra
) -> tuple[ValidationReport, list[tuple[str, Mask]]]:
    index: pd.Index[Any] | None = None
    if isinstance(data, pd.DataFrame):
        names, size, index = [str(c) for c in data.columns], len(data), data.index
    elif isinstance(data, pa.Table):
        names, size = list(data.column_names), data.num_rows
    else:
        raise TypeError(f"validate takes a pandas DataFrame or an Arrow Table, not {type(data)}")
    problems: list[ColumnProblem] = []
    declared = set(schema.names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    problems += [
        ColumnProblem(n, "duplicate_column", f"column '{n}' appears twice") for n in repeated
    ]
    extras = tuple(n for n in names if n not in declared)
    if extra == "forbid":
        problems += [
            ColumnProblem(n, "extra_column", f"column '{n}' is not in the schema") for n in extras
        ]
    failures: list[RuleFailure] = []
    masks: list[tuple[str, Mask]] = []
    missing_optional: list[str] = []
    invalid = np.zeros(size, dtype=bool)
    for field in schema.fields:
        if field.name not in names:
            if field.nullable:
                missing_optional.append(field.name)
            else:
                problems.append(
                    ColumnProblem(
                        field.name,
                        "missing_column",
                        f"column '{field.name}' ({field.dtype}, required) is missing",
                    )
                )
            continue
        if field.name in repeated:
            continue
        raw = raw_column(data, names.index(field.name))
        column = read(raw, field, size)
        if isinstance(column, str):
            problems.append(
                ColumnProblem(field.name, "column_dtype", f"column '{field.name}' {column}")
            )
            continue
        for rule, mask in _rule_masks(column, field, raw):
            count = int(np.count_nonzero(mask))
            if not count:
                continue
            invalid |= mask
            masks.append((f"{field.name}:{rule}", mask))
            idx = np.flatnonzero(mask)[:_EXAMPLES]
            failures.append(
                RuleFailure(
                    field.name,
                    rule,
                    count,
                    tuple(idx.tolist() if index is None else index[idx].tolist()),
                    tuple(take(raw, idx)),
                    field.describe_rule(rule),
                )
            )
    report = ValidationReport(
        size, tuple(problems), tuple(failures), invalid, extras, tuple(missing_optional)
    )
    return report, masks


def _or(a: Mask | None, b: Mask | None) -> Mask | None:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _rule_masks(
    column: Column, field: Field, raw: pd.Series[Any] | pa.ChunkedArray
) -> list[tuple[str, Mask]]:
    """(rule, mask of failing rows) for every rule of ``field``; each row fails at most one of
    ``null``/``dtype``/``finite`` and value rules only see rows that passed those."""
    masks: list[tuple[str, Mask]] = []
    if column.kind == "null":
        if not field.nullable:
            masks.append(("null", np.ones(column.size, dtype=bool)))
        return masks
    null, wrong, values = column.null, column.wrong, column.values
    if null is not None and not field.nullable:
        masks.append(("null", null))
    if field.dtype == "int" and column.kind == "float" and values is not None:
        fractional = (values != np.trunc(values)) | np.isinf(values)
        if null is not None:
            fractional &= ~null
        wrong = _or(wrong, fractional)
    if wrong is not None:
        masks.append(("dtype", wrong))
    absent = _or(null, wrong)
    if field.dtype == "float" and column.kind == "float" and not field.allow_nan:
        assert values is not None
        nonfinite = ~np.isfinite(values)
        if absent is not None:
            nonfinite &= ~absent
        masks.append(("finite", nonfinite))
        absent = _or(absent, nonfinite)
    present = None if absent is None else ~absent

    def keep(mask: Mask) -> Mask:
        return mask if present is None else mask & present

    if column.kind in ("int", "float", "bool", "time"):
        assert values is not None
        for rule, bound in (("min", field.min), ("max", field.max)):
            if bound is None:
                continue
            limit = _time_limit(bound, column.unit, rule) if column.kind == "time" else bound
            masks.append((rule, keep(values < limit if rule == "min" else values > limit)))
        if field.allowed is not None:
            masks.append(("allowed", keep(~np.isin(values, np.asarray(field.allowed)))))
    else:
        if field.allowed is not None:
            allowed = tuple(field.allowed)
            masks.append(("allowed", keep(_text_rule(column, lambda a: _is_in(a, allowed)))))
        if field.pattern is not None:
            pattern = field.pattern
            masks.append(("pattern", keep(_text_rule(column, lambda a: _fullmatch(a, pattern)))))
    for check in field.custom_checks:
        series = raw if isinstance(raw, pd.Series) else raw.to_pandas()
        masks.append(
            (f"check:{check.name}", keep(~_run_check(field, check.name, check.fn, series)))
        )
    return masks


def _time_limit(bound: object, unit: str, rule: str) -> int:
    assert isinstance(bound, pd.Timestamp)
    nanos, per = int(bound.value), NS_PER[unit]
    return -(-nanos // per) if rule == "min" else nanos // per


def _text_rule(column: Column, rule: Callable[[pa.Array], Mask]) -> Mask:
    """``rule`` (a pass mask over an Arrow string array) over every row of a text column; for a
    dictionary it runs once per category."""
    if column.dictionary is None:
        return ~rule(column.text)
    assert column.codes is not None
    lookup: Mask = np.append(rule(column.dictionary), True)  # code -1 (null) -> True
    failing: Mask = ~lookup[column.codes]
    return failing


def _is_in(values: pa.Array, allowed: tuple[Any, ...]) -> Mask:
    result = pc.is_in(values, value_set=pa.array(allowed, type=values.type))
    return np.asarray(pc.fill_null(result, True).to_numpy(zero_copy_only=False))


def _fullmatch(values: pa.Array, pattern: str) -> Mask:
    try:
        result = pc.match_substring_regex(values, pattern=f"^(?:{pattern})$")
    except ARROW_ERRORS:  # a pattern RE2 cannot run: Python's re, one call per value
        match = compile_pattern(pattern).fullmatch
        return np.array([v is None or match(v) is not None for v in values.to_pylist()], bool)
    return np.asarray(pc.fill_null(result, True).to_numpy(zero_copy_only=False))


def _run_check(field: Field, name: str, fn: Callable[..., Any], series: pd.Series[Any]) -> Mask:
    try:
        result = fn(series)
    except Exception as error:
        raise SchemaError(
            f"field '{field.name}': custom check '{name}' raised {type(error).__name__}: {error}"
        ) from error
    if isinstance(result, pd.Series):
        ok = result.to_numpy(dtype=bool, na_value=False)
    else:
        ok = np.asarray(result)
    if not isinstance(ok, np.ndarray) or ok.shape != (len(series),) or ok.dtype != np.bool_:
        raise SchemaError(
            f"field '{field.name}': custom check '{name}' must return one boolean per row, "
            f"got {ok.dtype} of shape {ok.shape} for {len(series)} rows"
        )
    return ok


# -- quarantine ------------------------------------------------------------------------------------


def _quarantine(
    data: pd.DataFrame | pa.Table, invalid: Mask, masks: list[tuple[str, Mask]], directory: Path
) -> Path:
    """Write the invalid rows with their reasons to a new Parquet file; return its path."""
    idx = np.flatnonzero(invalid)
    matrix = np.column_stack([mask[idx] for _, mask in masks])
    _, which = np.nonzero(matrix)  # row-major: grouped by row, rules in schema order
    offsets = np.concatenate([[0], np.cumsum(matrix.sum(axis=1))]).astype(np.int32)
    labels = np.array([label for label, _ in masks], dtype=object)
    reasons = pa.ListArray.from_arrays(pa.array(offsets), pa.array(labels[which], pa.string()))
    if isinstance(data, pd.DataFrame):
        table = _arrow_for_quarantine(data.iloc[idx])
    else:
        table = data.take(pa.array(idx))
    table = table.append_column(ROW_COLUMN, pa.array(idx, pa.int64()))
    table = table.append_column(REASONS_COLUMN, reasons)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"quarantine-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    partial = path.with_suffix(".parquet.partial")
    # Dictionary pages pay off for text, not for floats and timestamps (and cost half the time).
    text = [f.name for f in table.schema if is_text(f.type) or pa.types.is_dictionary(f.type)]
    pq.write_table(table, partial, use_dictionary=text)
    os.replace(partial, path)
    return path


def _arrow_for_quarantine(rows: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(rows, preserve_index=True)
    except ARROW_ERRORS:
        # Object columns of mixed types cannot be stored as they are: keep their text.
        rows = rows.copy()
        for position in range(rows.shape[1]):
            column = rows.iloc[:, position]
            if column.dtype == object:
                rows.iloc[:, position] = column.map(str, na_action="ignore")
        return pa.Table.from_pandas(rows, preserve_index=True)
