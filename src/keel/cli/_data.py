"""``keel data``: snapshot a data set, show snapshots, compare two of them, and validate a file
against a schema."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import typer
from rich.console import Console

from keel.cli._context import console, open_workspace, state
from keel.cli._output import (
    add_row,
    local_time,
    number,
    print_fields,
    print_json,
    print_tables,
    table,
)
from keel.data import (
    ColumnChange,
    ColumnProfile,
    DataValidationWarning,
    Schema,
    Snapshot,
    SnapshotDiff,
    ValidationReport,
    validate,
)
from keel.data._report import show as show_value
from keel.data._validate import Mode
from keel.errors import DataError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
# Leading characters of a fingerprint shown in tables (any 8 or more are accepted as a ref).
SHORT = 16
# Top values shown per column in `keel data show`.
SHOWN_VALUES = 3
# Where `keel data validate --mode drop` writes invalid rows, under the project directory.
QUARANTINE_DIR = Path(".keel", "quarantine")


def build() -> typer.Typer:
    group = typer.Typer(
        no_args_is_help=True, help="Data snapshots: immutable data sets, profiles, lineage."
    )
    group.command("snapshot")(snapshot)
    group.command("show")(show)
    group.command("diff")(diff)
    group.command("validate")(validate_file)
    return group


def snapshot(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH", help="A Parquet file, a CSV file or a directory of Parquet files."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="The snapshot's name.")],
    parent: Annotated[
        list[str] | None,
        typer.Option(help="A snapshot this data was derived from (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store the data at PATH as an immutable snapshot with its schema, profile and lineage."""
    created = open_workspace(ctx).snapshots.create(path, name, parents=parent or [])
    if as_json:
        print_json(created.to_dict())
        return
    console(ctx).print(
        f"snapshot {created.fingerprint} '{created.name}': "
        f"{created.num_rows} rows x {len(created.columns)} columns",
        markup=False,
    )


def show(
    ctx: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[REF]",
            help="A fingerprint (or 8+ leading characters) or a name; none lists snapshots.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List snapshots, or show one: its schema, column profile and lineage."""
    snapshots = open_workspace(ctx).snapshots
    out = console(ctx)
    if ref is None:
        listed = snapshots.list()
        if as_json:
            print_json([_summary(s) for s in listed])
        elif not listed:
            out.print("no snapshots")
        else:
            out.print(_list_table(listed))
        return
    found = snapshots.get(ref)
    if as_json:
        print_json(found.to_dict())
        return
    _print_snapshot(out, found)


def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="The reference snapshot.")],
    b: Annotated[str, typer.Argument(metavar="B", help="The snapshot compared with it.")],
    as_json: JsonFlag = False,
) -> None:
    """What changed from snapshot A to snapshot B: columns, types and column profiles."""
    result = open_workspace(ctx).snapshots.diff(a, b)
    if as_json:
        print_json(result.to_dict())
        return
    _print_diff(console(ctx), result)


def validate_file(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="A Parquet (.parquet, .pq) or CSV file.")
    ],
    schema_file: Annotated[
        Path,
        typer.Option(
            "--schema", metavar="SCHEMA_FILE", help="The schema, as a .yaml, .yml or .json file."
        ),
    ],
    mode: Annotated[
        Mode,
        typer.Option(
            help="raise: exit 1 on any invalid row; drop: quarantine invalid rows (exit 1 if a "
            "whole column is wrong); warn: report them and exit 0."
        ),
    ] = "raise",
    quarantine_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where --mode drop writes invalid rows (default: the project's .keel/quarantine).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the data at PATH against a schema file: types, nulls and every field rule."""
    schema = Schema.load(schema_file)
    frame = _read_frame(path)
    if mode == "drop" and quarantine_dir is None:
        quarantine_dir = state(ctx).target_dir / QUARANTINE_DIR
    with warnings.catch_warnings():
        # --mode warn reports through the table below, not through Python's warnings.
        warnings.simplefilter("ignore", DataValidationWarning)
        result = validate(frame, schema, mode, quarantine_dir)
    if as_json:
        quarantine = None if result.quarantine_path is None else str(result.quarantine_path)
        print_json({**result.report.to_dict(), "quarantine_path": quarantine})
        return
    out = console(ctx)
    _print_report(out, result.report)
    if result.quarantine_path is not None:
        out.print()
        count = result.report.invalid_count
        out.print(
            f"quarantined {count} row{'s' if count != 1 else ''} to {result.quarantine_path}",
            markup=False,
        )


# -- reading files ---------------------------------------------------------------------------------


def _read_frame(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file as pandas reads it (a pandas-written index comes back as the
    index, so row labels in the report are the file's own)."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise DataError(f"cannot validate {path}: only .parquet, .pq and .csv files are read")
    if not path.is_file():
        raise DataError(f"cannot validate {path}: no such file")
    try:
        read = pyarrow.csv.read_csv if suffix == ".csv" else pq.read_table
        frame: pd.DataFrame = read(path).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    return frame


# -- formatting ------------------------------------------------------------------------------------


def _summary(item: Snapshot) -> dict[str, Any]:
    return {
        "fingerprint": item.fingerprint,
        "name": item.name,
        "num_rows": item.num_rows,
        "columns": item.columns,
        "artifact": {"digest": item.artifact.digest, "size": item.artifact.size},
        "created_at": item.created_at,
        "created_by": item.created_by,
    }


def _list_table(listed: list[Snapshot]) -> Any:
    result = table("fingerprint", "name", "rows", "columns", "created", "by")
    for item in listed:
        add_row(
            result,
            item.fingerprint[:SHORT],
            item.name,
            item.num_rows,
            len(item.columns),
            local_time(item.created_at),
            item.created_by,
        )
    return result


def _print_snapshot(out: Console, item: Snapshot) -> None:
    lineage = item.lineage
    code = lineage.get("code") or {}
    code_text = code.get("commit") or "not in a git tree"
    if code.get("dirty_hash"):
        code_text += f" + uncommitted changes {code['dirty_hash'][:12]}"
    print_fields(
        out,
        [
            ("snapshot", item.fingerprint),
            ("name", item.name),
            ("rows", item.num_rows),
            ("created", local_time(item.created_at)),
            ("by", item.created_by),
            ("artifact", f"sha256:{item.artifact.digest} ({item.artifact.size} bytes)"),
            ("code", code_text),
            ("parents", ", ".join(lineage.get("parents") or [])),
            ("sources", ", ".join(lineage.get("sources") or [])),
        ],
    )
    headers = ("column", "type", "nulls", "count", "min", "max", "mean", "std", "p50", "values")
    columns = table(*headers, title="Columns")
    for field in item.schema.fields:
        column = item.profile.get(field.name)
        add_row(columns, field.name, _type(field.dtype, field.nullable), *_stats(column))
    out.print()
    out.print(columns)


def _type(dtype: str, nullable: bool) -> str:
    return f"{dtype}?" if nullable else dtype


def _stats(column: ColumnProfile | None) -> list[object]:
    if column is None:
        return [""] * 8
    values = ""
    if column.frequencies is not None:
        shown = [f"{v}={n}" for v, n in column.frequencies.top[:SHOWN_VALUES]]
        rest = column.frequencies.distinct - len(shown)
        values = " ".join(shown) + (f" (+{rest} more)" if rest > 0 else "")
    median = (column.quantiles or {}).get("p50")
    return [
        column.nulls,
        column.count,
        _value(column.min),
        _value(column.max),
        number(column.mean),
        number(column.std),
        number(median),
        values,
    ]


def _value(value: object) -> object:
    return number(value) if isinstance(value, float) else value


def _print_diff(out: Console, result: SnapshotDiff) -> None:
    rows_a, rows_b = result.profile.num_rows
    out.print(
        f"{result.a.name} {result.a.fingerprint[:SHORT]} ({rows_a} rows) -> "
        f"{result.b.name} {result.b.fingerprint[:SHORT]} ({rows_b} rows)",
        markup=False,
    )
    changes = result.schema.describe()
    out.print()
    if changes:
        out.print("Schema changes:")
        for line in changes:
            out.print(f"  {line}", markup=False)
    else:
        out.print("Schema: unchanged")
    columns = table(
        "column", "count", "null rate", "mean", "std", "psi", "distribution", title="Columns"
    )
    for change in result.profile.columns:
        add_row(
            columns,
            change.name,
            _pair(*change.count),
            _pair(*(_percent(r) for r in change.null_rate)),
            _pair(*(number(m) for m in change.mean)) if change.mean else "",
            _pair(*(number(s) for s in change.std)) if change.std else "",
            number(change.psi),
            _distribution(change),
        )
    if columns.row_count:
        out.print()
        out.print(columns)


def _pair(old: object, new: object) -> str:
    return f"{old}" if old == new else f"{old} -> {new}"


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.1%}"


def _distribution(change: ColumnChange) -> str:
    parts: list[str] = []
    if change.psi is None and change.quantile_shift:
        median = change.quantile_shift.get("p50")
        if median is not None:
            parts.append(f"median shift {number(median)}")
    if change.new_values:
        parts.append("new: " + ", ".join(str(v) for v in change.new_values[:SHOWN_VALUES]))
    if change.gone_values:
        parts.append("gone: " + ", ".join(str(v) for v in change.gone_values[:SHOWN_VALUES]))
    return "; ".join(parts)


def _print_report(out: Console, report: ValidationReport) -> None:
    out.print(report.summary().splitlines()[0], markup=False)
    problems = table("column", "rule", "problem", title="Column problems")
    for problem in report.problems:
        add_row(problems, problem.column, problem.rule, problem.message)
    failures = table("column", "rule", "failing rows", "examples", title="Rule failures")
    for failure in report.failures:
        examples = ", ".join(
            f"row {row}: {show_value(value)}"
            for row, value in zip(failure.rows, failure.values, strict=True)
        )
        add_row(failures, failure.column, failure.rule, f"{failure.count:,}", examples)
    print_tables(out, problems, failures)
