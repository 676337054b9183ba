"""Inline SVG charts of the monitoring report, drawn in Python (no JavaScript, no fonts).

Each function returns one ``<svg>`` element as text; every label in it goes through
:func:`html.escape`, since column names, categories and metric names come from users' data.
Colours mean the same everywhere: grey the reference, blue the current window, green ok,
red drift, amber an estimate or a warning.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from keel.monitoring._report_bins import Distribution
from keel.monitoring._report_data import ColumnSeries, WindowVerdict

REFERENCE, CURRENT = "#b6c2d1", "#2563eb"
OK, DRIFT, MUTED, WARN = "#16a34a", "#dc2626", "#9ca3af", "#d97706"
STATUS_COLOURS = {
    "ok": OK,
    "no_drift": OK,
    "drift": DRIFT,
    "alert": DRIFT,
    "degraded": DRIFT,
    "burning": DRIFT,
    "exhausted": DRIFT,
    "firing": DRIFT,
    "acknowledged": WARN,
    "resolved": OK,
    "none": OK,  # a concept-drift check that found nothing
    "concept_drift": DRIFT,
    "covariate_shift_with_degradation": DRIFT,
    "degradation": DRIFT,
}
_FONT = 'font-family="system-ui,sans-serif"'


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, MUTED)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def when(seconds: float) -> str:
    """A window bound as UTC ``MM-DD HH:MM`` (the year is in the report's header)."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%m-%d %H:%M")


def bars(dist: Distribution, width: int = 380, height: int = 150) -> str:
    """Reference shares as wide grey bars, the current window's as narrower blue bars over
    them: where blue overshoots or falls short of grey, the distribution moved."""
    left, right, bottom, top = 34, 22, 34, 8  # room on the right for the last edge's label
    count = max(len(dist.labels), 1)
    inner_w, inner_h = width - left - right, height - bottom - top
    peak = max([*dist.reference, *dist.current, 0.01])
    slot = inner_w / count
    parts = [_axis_y(left, top, inner_h, peak, width - right)]
    for i, label in enumerate(dist.labels):
        x = left + i * slot
        for share, inset, colour, side in (
            (dist.reference[i], 0.08, REFERENCE, "reference"),
            (dist.current[i], 0.3, CURRENT, "current"),
        ):
            h = inner_h * share / peak
            parts.append(
                f'<rect x="{x + slot * inset:.1f}" y="{top + inner_h - h:.1f}" '
                f'width="{slot * (1 - 2 * inset):.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{esc(label)}: {side} {share:.1%}</title></rect>"
            )
    step = max(1, math.ceil(count / 5))  # at most ~5 labels, so they never overlap
    for i in range(0, count, step):
        if dist.kind == "numeric":  # a bin's lower edge under its left side reads as an axis
            label, x = dist.labels[i].split("\u2013")[0], left + i * slot
        else:
            label, x = _clip(dist.labels[i], 10), left + (i + 0.5) * slot
        parts.append(_text(x, height - bottom + 13, label, anchor="middle"))
    return _svg(width, height, parts, f"distribution of {dist.column}")


def verdict_strip(windows: Sequence[WindowVerdict], width: int = 760, height: int = 22) -> str:
    """One cell per window coloured by its verdict, oldest left, the first and last window's
    start and end under it."""
    if not windows:
        return ""
    cell = width / len(windows)
    labels = [
        _text(0, height + 12, when(windows[0].start)),
        _text(width, height + 12, when(windows[-1].end), anchor="end"),
    ]
    parts = labels + [
        f'<rect x="{i * cell:.1f}" y="0" width="{max(cell - 1, 0.5):.1f}" height="{height}" '
        f'fill="{status_colour(w.status)}"><title>{esc(when(w.start))}\u2013{esc(when(w.end))}: '
        f"{esc(w.status)}, {w.rows} rows, {len(w.drifted_columns)} drifted</title></rect>"
        for i, w in enumerate(windows)
    ]
    return _svg(width, height + 16, parts, "window verdicts")


def heat_colour(value: float | None) -> str:
    """Drift strength to colour: pale green below 1 (no drift), amber at 1, dark red from 3."""
    if value is None:
        return "#eef0f3"
    if value < 1:
        return _mix((232, 245, 233), (253, 230, 138), max(value, 0.0))
    return _mix((251, 146, 60), (153, 27, 27), min((value - 1) / 2, 1.0))


def heatmap(columns: Sequence[ColumnSeries], windows: Sequence[WindowVerdict]) -> str:
    """Columns (rows, most drifted on top) by windows, coloured by drift strength; a drifted
    cell carries a white dot so the marking survives a grey-scale print."""
    ends = [w.end for w in windows]
    label_w, cell_h = 150, 22
    cell_w = max(4.0, min(56.0, 900 / max(len(ends), 1)))
    width = int(label_w + cell_w * len(ends) + 8)
    height = cell_h * len(columns) + 26
    parts = []
    for row, column in enumerate(columns):
        y = row * cell_h
        label = _text(label_w - 6, y + 14, _clip(column.name, 22), anchor="end")
        # the whole name on hover, since long ones are clipped to fit the label column
        parts.append(label.replace("</text>", f"<title>{esc(column.name)}</title></text>"))
        by_end = {p.window_end: p for p in column.points}
        for i, end in enumerate(ends):
            point = by_end.get(end)
            x = label_w + i * cell_w
            strength = point.strength if point else None
            value = "n/a" if point is None else point.status
            if point and point.value is not None:
                value = f"{column.statistic} {point.value:.3g}, {point.status}"
                if point.p_value is not None:
                    value += f", p={point.p_value:.2g}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                f'fill="{heat_colour(strength)}"><title>{esc(column.name)} @ {esc(when(end))}: '
                f"{esc(value)}</title></rect>"
            )
            if point and point.status == "drift":
                parts.append(
                    f'<circle cx="{x + cell_w / 2 - 0.5:.1f}" cy="{y + cell_h / 2 - 0.5}" '
                    f'r="{min(cell_w, cell_h) / 5:.1f}" fill="#fff"/>'
                )
    if ends:
        y = len(columns) * cell_h + 16
        parts.append(_text(label_w, y, when(ends[0])))
        if len(ends) > 1:
            parts.append(_text(width - 8, y, when(ends[-1]), anchor="end"))
    return _svg(width, height, parts, "drift heat map")


@dataclass(frozen=True)
class Line:
    """One line of a :func:`line_chart`: (x, y) points, y None for a gap; an optional band of
    (x, low, high)."""

    label: str
    colour: str
    points: Sequence[tuple[float, float | None]]
    band: Sequence[tuple[float, float, float]] = ()
    dashed: bool = False


def line_chart(
    lines: Sequence[Line],
    x_range: tuple[float, float],
    *,
    limit: float | None = None,
    limit_label: str = "",
    y_floor: float | None = None,
    flag_above: bool = True,
    width: int = 380,
    height: int = 140,
    title: str = "",
) -> str:
    """Lines over time with an optional horizontal ``limit`` (a threshold, alpha, a validation
    value) drawn dashed red; with ``flag_above``, points above it are drawn as red dots."""
    left, right, top, bottom = 42, 8, 10, 22
    ys = [y for line in lines for _, y in line.points if y is not None]
    ys += [v for line in lines for _, lo, hi in line.band for v in (lo, hi)]
    if limit is not None:
        ys.append(limit)
    low, high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if y_floor is not None:
        low = min(low, y_floor)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    if y_floor is not None and low < y_floor <= min(ys, default=y_floor):
        low = y_floor  # -log10 p is never negative: no axis below 0
    x0, x1 = x_range if x_range[1] > x_range[0] else (x_range[0] - 1, x_range[0] + 1)
    inner_w, inner_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + inner_w * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + inner_h * (1 - (y - low) / (high - low))

    parts = [
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fafbfc" '
        'stroke="#e5e7eb"/>',
        _text(left - 4, top + 8, f"{high:.3g}", anchor="end"),
        _text(left - 4, top + inner_h, f"{low:.3g}", anchor="end"),
        _text(left, height - 6, when(x0)),
        _text(width - right, height - 6, when(x1), anchor="end"),
    ]
    for line in lines:
        if line.band:
            upper = " ".join(f"{px(x):.1f},{py(hi):.1f}" for x, _, hi in line.band)
            lower = " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(line.band))
            parts.append(
                f'<polygon points="{upper} {lower}" fill="{line.colour}" opacity="0.18">'
                f"<title>{esc(line.label)} band</title></polygon>"
            )
    if limit is not None:
        parts.append(
            f'<line x1="{left}" x2="{left + inner_w}" y1="{py(limit):.1f}" y2="{py(limit):.1f}" '
            f'stroke="{DRIFT}" stroke-dasharray="4 3"/>'
        )
        parts.append(
            _text(left + inner_w - 2, py(limit) - 3, limit_label, anchor="end", fill=DRIFT)
        )
    for line in lines:
        for segment in _segments(line.points):
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in segment)
            dash = ' stroke-dasharray="5 3"' if line.dashed else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{line.colour}" '
                f'stroke-width="1.8"{dash}/>'
            )
        for x, y in line.points:
            if y is None:
                continue
            past = flag_above and limit is not None and not line.dashed and y > limit
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{3 if past else 2}" '
                f'fill="{DRIFT if past else line.colour}"><title>{esc(line.label)} '
                f"{esc(when(x))}: {y:.4g}</title></circle>"
            )
    return _svg(width, height, parts, title)


def budget_bar(remaining: float | None, width: int = 240, height: int = 16) -> str:
    """Error budget left as a bar: full green, shrinking to amber then red below a quarter."""
    share = 0.0 if remaining is None else max(0.0, min(remaining, 1.0))
    colour = MUTED if remaining is None else OK if share > 0.5 else WARN if share > 0.25 else DRIFT
    parts = [
        f'<rect width="{width}" height="{height}" rx="3" fill="#eef0f3"/>',
        f'<rect width="{width * share:.1f}" height="{height}" rx="3" fill="{colour}"/>',
    ]
    return _svg(width, height, parts, "error budget remaining")


def _segments(
    points: Sequence[tuple[float, float | None]],
) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value: a window without one breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if len(run) > 1]


def _axis_y(left: int, top: int, inner_h: int, peak: float, width: int) -> str:
    base = top + inner_h
    return (
        f'<line x1="{left}" x2="{width}" y1="{base}" y2="{base}" stroke="#d1d5db"/>'
        + _text(left - 4, top + 8, f"{peak:.0%}", anchor="end")
        + _text(left - 4, base, "0", anchor="end")
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = "#4b5563") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" {_FONT} fill="{fill}" '
        f'text-anchor="{anchor}">{esc(text)}</text>'
    )


def _svg(width: int, height: int, parts: Sequence[str], title: str) -> str:
    return (
        # Inline SVG in HTML needs no namespace: leaving it out keeps the file free of any URL.
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
        + "".join(parts)
        + "</svg>"
    )


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], share: float) -> str:
    r, g, bl = (round(x + (y - x) * share) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"
