"""Pieces of HTML the report's sections share: badges, tables, empty states, score lines.

Every function takes plain values and escapes what it prints; callers pass cells of
:func:`table` already as markup (a badge, an escaped string).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from keel.monitoring._report_charts import (
    CURRENT,
    Line,
    esc,
    line_chart,
    status_colour,
)
from keel.monitoring._report_data import ColumnSeries, ReportData


def badge(text: str, status: str | None = None, *, big: bool = False) -> str:
    size = " big" if big else ""
    colour = status_colour(status if status is not None else text)
    return f'<span class="badge{size}" style="background:{colour}">{esc(text)}</span>'


def status_badge(status: str) -> str:
    """A status as a badge of its colour, in words (``not_enough_data``: "not enough data")."""
    return badge(status.replace("_", " "), status)


def date_text(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>'


def empty(sentence: str) -> str:
    return f'<p class="empty">{esc(sentence)}</p>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def number(value: float | None, digits: int = 4) -> str:
    return "\u2013" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def score_line(column: ColumnSeries, x_range: tuple[float, float]) -> str:
    """The column's default statistic over time: -log10 p for p-value statistics (up is
    worse, like the threshold ones), with its limit."""
    if column.kind == "p_value":
        points = [
            (p.window_end, None if p.p_value is None else -math.log10(max(p.p_value, 1e-300)))
            for p in column.points
        ]
        limit = -math.log10(column.limit) if column.limit else None
        label, name = (
            f"alpha {column.limit:g}" if column.limit else "",
            f"\u2212log10 p ({column.statistic})",
        )
    else:
        points = [(p.window_end, p.value) for p in column.points]
        limit, label, name = column.limit, f"threshold {number(column.limit)}", column.statistic
    if not any(y is not None for _, y in points):
        return empty("No window of this column had enough data to be compared.")
    line = Line(name, CURRENT, points)
    return f'<div class="sub">{esc(name)} per window</div>' + line_chart(
        [line], x_range, limit=limit, limit_label=label, y_floor=0.0, title=name
    )


def x_range_of(data: ReportData) -> tuple[float, float]:
    if data.windows:
        return data.windows[0].end, data.windows[-1].end
    return data.since, data.until
