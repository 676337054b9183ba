"""Formatting shared by the commands: JSON for machines, rich tables for people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keel.errors import KeelError

# Metrics summaries list these first, when a run or version logged them.
KEY_METRICS = ("roc_auc", "auc", "accuracy", "f1", "rmse", "mae", "r2")
# How many metrics a one-line summary shows before "…".
SUMMARY_METRICS = 4


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, and nothing else (dataclasses, paths and other
    objects are rendered with ``str``)."""
    text = orjson.dumps(
        data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    ).decode()
    typer.echo(text)


def error_line(error: BaseException) -> str:
    """One line for stderr: ``error: <message>`` with any line breaks folded."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"error: {message}"


def local_time(timestamp: float | None) -> str:
    """An epoch timestamp as local ISO time to the second ('' for None)."""
    if timestamp is None:
        return ""
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def duration(started: float, ended: float | None) -> str:
    if ended is None:
        return ""
    seconds = max(ended - started, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def metric_summary(metrics: Mapping[str, float], first: Iterable[str] = ()) -> str:
    """A few metrics as ``key=value``: those named in ``first``, then the rest by name."""
    keys = [k for k in first if k in metrics]
    keys += [k for k in sorted(metrics) if k not in keys]
    shown = [f"{k}={number(metrics[k])}" for k in keys[:SUMMARY_METRICS]]
    if len(keys) > SUMMARY_METRICS:
        shown.append("…")
    return " ".join(shown)


def table(*columns: str, title: str | None = None) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def add_row(target: Table, *cells: object) -> None:
    """Add a row of plain values: none of them is read as rich markup."""
    target.add_row(*(escape(str(cell)) if cell is not None else "" for cell in cells))


def mapping_table(title: str, values: Mapping[str, Any], *, value: str = "value") -> Table:
    result = table("name", value, title=title)
    for key, item in sorted(values.items()):
        add_row(result, key, number(item) if isinstance(item, float) else item)
    return result


def print_fields(out: Console, fields: Iterable[tuple[str, object]]) -> None:
    """``label: value`` lines, skipping empty values."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", overflow="fold")
    grid.add_column(overflow="fold")
    for label, item in fields:
        if item is None or item == "":
            continue
        grid.add_row(escape(label), escape(str(item)))
    out.print(grid)


def print_tables(out: Console, *tables: Table) -> None:
    """Print the tables that have rows, each preceded by a blank line."""
    for each in tables:
        if each.row_count:
            out.print()
            out.print(each)


def write_text(path: str, text: str) -> None:
    """Write a file the user named, as a one-line KeelError when that fails."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise KeelError(f"cannot write {path}: {error.strerror or error}") from None


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise KeelError(f"cannot read {path}: {reason}") from None
