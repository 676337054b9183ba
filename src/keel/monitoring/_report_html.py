"""The monitoring report as one self-contained HTML file: inline CSS and SVG, no scripts.

    html_text = render_report(gather_report(workspace, "churn", now=time.time()))

The page needs nothing but itself: no JavaScript, no stylesheet or font to fetch, so it opens
from an e-mail attachment or an air-gapped machine, and reads the same printed. Every string
from users' data (endpoint, columns, categories, alert summaries) is escaped on the way in.
Sections follow the order a person on call reads them: is anything wrong (header, alerts),
where (heat map, columns by severity), and what it costs (data quality, predictions,
performance, SLOs). An empty section says why it is empty instead of drawing an empty chart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from keel.monitoring._alert_store import Alert
from keel.monitoring._report_charts import (
    CURRENT,
    REFERENCE,
    WARN,
    Line,
    bars,
    budget_bar,
    esc,
    heat_colour,
    heatmap,
    line_chart,
    status_colour,
    verdict_strip,
)
from keel.monitoring._report_data import ColumnSeries, PerformanceSeries, ReportData
from keel.monitoring._results import MonitorResult

#: columns drawn open; the rest sit in a <details> block, still in the file
OPEN_COLUMNS = 12

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#1f2937;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif}
main{max-width:1320px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:0;display:flex;gap:8px;align-items:center;overflow-wrap:anywhere}
section{background:#fff;border:1px solid #e3e7ee;border-radius:8px;padding:16px 18px;margin:14px 0}
.meta{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:6px 18px;margin:10px 0}
.meta div{overflow-wrap:anywhere}.meta b{display:block;color:#6b7280;font-weight:500;font-size:12px}
.badges{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}
.badge{display:inline-block;border-radius:999px;padding:2px 10px;color:#fff;font-size:12px;
font-weight:600;white-space:nowrap}
.big{font-size:14px;padding:5px 14px}
.empty{color:#6b7280;font-style:italic;margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:#6b7280;font-weight:600;border-bottom:1px solid #e3e7ee;padding:5px 8px}
td{border-bottom:1px solid #f0f2f5;padding:5px 8px;vertical-align:top;overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:12px}
.card{border:1px solid #e3e7ee;border-radius:8px;padding:10px 12px}
.card.drift{border-left:4px solid #dc2626}
.sub{color:#6b7280;font-size:12px;margin:2px 0 6px}
.legend{display:flex;gap:14px;align-items:center;color:#4b5563;font-size:12px;margin:6px 0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;
margin-right:4px}
nav{display:flex;gap:14px;font-size:13px;margin-top:8px}nav a{color:#2563eb;text-decoration:none}
details summary{cursor:pointer;color:#2563eb;margin:10px 0}
.scroll{overflow-x:auto}
svg{max-width:100%;height:auto;display:block}
"""


def render_report(data: ReportData) -> str:
    """The whole page for ``data`` (see the module doc)."""
    body = "".join(
        (
            _header(data),
            _alerts(data.alerts),
            _heatmap(data),
            _columns(data),
            _quality(data.quality),
            _predictions(data),
            _performance(data),
            _slo(data.slo),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Monitoring report: {esc(data.endpoint)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def badge(text: str, status: str | None = None, *, big: bool = False) -> str:
    size = " big" if big else ""
    colour = status_colour(status if status is not None else text)
    return f'<span class="badge{size}" style="background:{colour}">{esc(text)}</span>'


def _date(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _header(data: ReportData) -> str:
    latest = data.latest
    verdict = latest.status if latest else "no windows"
    drifted = len(latest.drifted_columns) if latest else 0
    compared = sum(1 for c in data.columns if c.latest and c.latest.value is not None)
    firing = data.firing
    summary = [
        badge(f"latest window: {verdict.replace('_', ' ')}", verdict, big=True),
        badge(
            f"{drifted} of {compared} columns drifted",
            "drift" if drifted else "ok" if latest else "none",
            big=True,
        ),
        badge(f"{firing} alerts firing", "firing" if firing else "ok", big=True),
        badge(f"{len(data.windows)} windows", "none", big=True),
    ]
    correction = f", {data.correction} correction" if data.correction else ""
    alpha = f"alpha {data.alpha:g}{correction}" if data.alpha is not None else "n/a"
    meta = [
        ("endpoint", data.endpoint),
        ("model", data.model),
        ("reference snapshot", data.reference or "unknown"),
        ("significance", alpha),
        ("from", _date(data.since)),
        ("to", _date(data.until)),
        ("latest window", f"{_date(latest.start)} · {latest.rows:,} rows" if latest else "none"),
        ("generated", _date(data.generated_at)),
    ]
    links = ("alerts", "drift", "columns", "quality", "predictions", "performance", "slo")
    strip = verdict_strip(data.windows)
    return (
        f"<section><h1>Monitoring report · {esc(data.endpoint)}</h1>"
        f'<div class="badges">{"".join(summary)}</div>'
        '<div class="meta">'
        + "".join(f"<div><b>{esc(k)}</b>{esc(v)}</div>" for k, v in meta)
        + "</div>"
        + (f'<div class="sub">window verdicts, oldest left</div>{strip}' if strip else "")
        + "<nav>"
        + "".join(f'<a href="#{name}">{name}</a>' for name in links)
        + "</nav></section>"
    )


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>'


def _empty(sentence: str) -> str:
    return f'<p class="empty">{esc(sentence)}</p>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
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


def _number(value: float | None, digits: int = 4) -> str:
    return "\u2013" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return _section("alerts", "Alerts", _empty("No alerts for this endpoint in this range."))
    rows = [
        [
            badge(a.state),
            esc(a.severity),
            esc(a.rule),
            esc(a.subject or "\u2013"),
            esc(a.summary),
            _number(a.value),
            _number(a.threshold),
            esc(_date(a.started_at)),
        ]
        for a in alerts
    ]
    headers = ["state", "severity", "rule", "subject", "summary", "value", "threshold", "started"]
    return _section("alerts", "Alerts", _table(headers, rows, {5, 6}))


def _legend() -> str:
    stops = [(0.0, "0"), (0.5, ""), (1.0, "1 = limit"), (2.0, "2"), (3.0, "≥3")]
    swatches = "".join(
        f'<span><span class="sw" style="background:{heat_colour(v)}"></span>{esc(label)}</span>'
        for v, label in stops
    )
    return (
        f'<div class="legend">drift strength: {swatches}'
        f'<span><span class="sw" style="background:{heat_colour(None)}"></span>not computed'
        "</span><span>● drifted</span></div>"
    )


def _heatmap(data: ReportData) -> str:
    if not data.windows or not data.columns:
        return _section(
            "drift",
            "Input drift",
            _empty(
                "No monitoring windows in this range yet: run `keel monitor run` once the "
                "endpoint has served traffic."
            ),
        )
    note = (
        '<p class="sub">Each column against the reference, per window, by its default '
        "statistic. Strength 1 is the decision limit (p-values: log p / log alpha; "
        "thresholds: value / threshold). Most drifted columns on top.</p>"
    )
    chart = heatmap(data.columns, data.windows)
    return _section("drift", "Input drift", note + _legend() + f'<div class="scroll">{chart}</div>')


def _score_line(column: ColumnSeries, x_range: tuple[float, float]) -> str:
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
        limit, label, name = column.limit, f"threshold {_number(column.limit)}", column.statistic
    if not any(y is not None for _, y in points):
        return _empty("No window of this column had enough data to be compared.")
    line = Line(name, CURRENT, points)
    return f'<div class="sub">{esc(name)} per window</div>' + line_chart(
        [line], x_range, limit=limit, limit_label=label, y_floor=0.0, title=name
    )


def _column_card(column: ColumnSeries, data: ReportData, x_range: tuple[float, float]) -> str:
    latest = column.latest
    status = latest.status if latest else "none"
    facts = ""
    if latest is not None and latest.value is not None:
        facts = f"{column.statistic} = {latest.value:.3g}"
        if latest.p_value is not None:
            facts += f", p = {latest.p_value:.2g}"
    facts += f" · drifted in {column.drifted_windows} of {len(column.points)} windows"
    dist = data.distributions.get(column.name)
    shape = (
        f'<div class="sub">latest window: {dist.current_rows:,} values vs '
        f"{dist.reference_rows:,} reference</div>" + bars(dist)
        if dist is not None
        else _empty("No distribution to draw (no values in the latest window).")
    )
    css = "card drift" if status == "drift" else "card"
    return (
        f'<div class="{css}"><h3>{esc(column.name)} {badge(status.replace("_", " "), status)}'
        f'</h3><div class="sub">{esc(facts)}</div>{shape}{_score_line(column, x_range)}</div>'
    )


def _x_range(data: ReportData) -> tuple[float, float]:
    if data.windows:
        return data.windows[0].end, data.windows[-1].end
    return data.since, data.until


def _columns(data: ReportData) -> str:
    if not data.columns:
        return _section("columns", "Columns", _empty("No column has been compared yet."))
    legend = (
        '<div class="legend">'
        f'<span><span class="sw" style="background:{REFERENCE}"></span>reference</span>'
        f'<span><span class="sw" style="background:{CURRENT}"></span>latest window</span>'
        "<span>shares of each side; most drifted columns first</span></div>"
    )
    x_range = _x_range(data)
    cards = [_column_card(column, data, x_range) for column in data.columns]
    shown = f'<div class="grid">{"".join(cards[:OPEN_COLUMNS])}</div>'
    if len(cards) > OPEN_COLUMNS:
        rest = len(cards) - OPEN_COLUMNS
        shown += (
            f"<details><summary>{rest} more columns</summary>"
            f'<div class="grid">{"".join(cards[OPEN_COLUMNS:])}</div></details>'
        )
    return _section("columns", "Columns: reference vs current", legend + shown)


def _quality_value(result: MonitorResult) -> tuple[str, str]:
    if result.statistic == "null_rate":
        before = result.details.get("reference")
        value = "\u2013" if result.value is None else f"{result.value:.1%}"
        return value, "\u2013" if before is None else f"{before:.1%} (reference)"
    if result.statistic == "volume":
        z = result.details.get("z")
        return _number(result.value, 6), "\u2013" if z is None else f"z = {z:.2f}"
    return _number(result.value), _number(result.threshold)


def _quality(found: Sequence[MonitorResult]) -> str:
    if not found:
        return _section("quality", "Data quality", _empty("No data-quality results yet."))
    ordered = sorted(found, key=lambda r: (r.status != "alert", r.subject, r.statistic))
    rows = []
    for r in ordered:
        value, compared = _quality_value(r)
        rows.append([esc(r.subject or "(window)"), esc(r.statistic), value, esc(compared),
                     badge(r.status.replace("_", " "), r.status)])  # fmt: skip
    note = f'<p class="sub">Latest window ending {esc(_date(found[0].window_end))}.</p>'
    table = _table(["column", "check", "value", "compared with", "status"], rows, {2})
    return _section("quality", "Data quality", note + table)


def _predictions(data: ReportData) -> str:
    if not data.prediction_verdicts:
        return _section(
            "predictions", "Prediction drift", _empty("No prediction-drift results yet.")
        )
    latest = data.prediction_verdicts[-1]
    head = (
        f'<div class="badges">{badge("latest: " + latest.status.replace("_", " "), latest.status)}'
        "</div>"
        '<p class="sub">The model\'s answers per window against its answers on its validation '
        "data.</p>" + verdict_strip(data.prediction_verdicts)
    )
    x_range = _x_range(data)
    cards = "".join(
        f'<div class="card"><h3>{esc(c.name)} '
        f"{badge(c.latest.status if c.latest else 'none')}</h3>{_score_line(c, x_range)}</div>"
        for c in data.predictions
    )
    return _section("predictions", "Prediction drift", head + f'<div class="grid">{cards}</div>')


def _performance_card(series: PerformanceSeries, x_range: tuple[float, float]) -> str:
    lines = []
    if series.realised:
        lines.append(Line("realised", CURRENT, [(p.window_end, p.value) for p in series.realised]))
    if series.estimated:
        band = [
            (p.window_end, p.low, p.high)
            for p in series.estimated
            if p.low is not None and p.high is not None
        ]
        points = [(p.window_end, p.value) for p in series.estimated]
        lines.append(Line("estimated", WARN, points, band=band, dashed=True))
    everything = [*series.realised, *series.estimated]
    reference = next((p.reference for p in everything if p.reference is not None), None)
    if not any(p.value is not None for p in everything):
        chart = _empty("Not enough rows in any window to compute this metric.")
    else:
        chart = line_chart(
            lines, x_range, limit=reference, limit_label="validation", flag_above=False,
            title=series.metric,
        )  # fmt: skip
    degraded = any(p.status == "degraded" for p in everything[-2:])
    status = "degraded" if degraded else "ok"
    return (
        f'<div class="card"><h3>{esc(series.metric)} · v{series.model_version} '
        f"{badge(status)}</h3>{chart}</div>"
    )


def _performance(data: ReportData) -> str:
    if not data.performance:
        return _section(
            "performance",
            "Performance",
            _empty("No labels and no estimates in this range yet: performance appears once "
                   "feedback arrives (or, for classifiers, once probabilities are logged)."),
        )  # fmt: skip
    legend = (
        '<div class="legend">'
        f'<span><span class="sw" style="background:{CURRENT}"></span>realised (labels)</span>'
        f'<span><span class="sw" style="background:{WARN}"></span>estimated (CBPE) with band'
        '</span><span style="color:#dc2626">- - validation value</span></div>'
    )
    x_range = _x_range(data)
    cards = "".join(_performance_card(s, x_range) for s in data.performance)
    return _section("performance", "Performance", legend + f'<div class="grid">{cards}</div>')


def _slo(found: Sequence[MonitorResult]) -> str:
    if not found:
        return _section(
            "slo", "Service-level objectives", _empty("No SLOs recorded for this endpoint.")
        )
    rows = []
    for r in found:
        if r.statistic == "budget_remaining":
            value = "\u2013" if r.value is None else f"{r.value:.1%} " + budget_bar(r.value)
            target = r.details.get("target")
            what = f"budget remaining (objective {target:g})" if target else "budget remaining"
        else:
            value, what = (
                _number(r.value),
                f"burn rate {r.statistic} (factor {_number(r.threshold)})",
            )
        rows.append([esc(r.subject), esc(what), value, badge(r.status.replace("_", " "), r.status)])
    table = _table(["objective", "measure", "value", "status"], rows, set())
    return _section("slo", "Service-level objectives", table)
