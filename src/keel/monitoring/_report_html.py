"""The monitoring report as one self-contained HTML file: inline CSS and SVG, no scripts.

    html_text = render_report(gather_report(workspace, "churn", now=time.time()))

The page needs nothing but itself: no JavaScript, no stylesheet or font to fetch, so it opens
from an e-mail attachment or an air-gapped machine, and reads the same printed. Every string
from users' data (endpoint, columns, categories, alert summaries) is escaped on the way in.
Sections follow the order a person on call reads them: is anything wrong (header, alerts),
where (heat map, columns by severity), and what it costs (data quality, predictions,
performance, SLOs). An empty section says why it is empty instead of drawing an empty chart.

This module draws the page, its header and the drift sections; ``_report_sections`` the
others, ``_report_markup`` the pieces they share, ``_report_charts`` the SVG.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.monitoring._alert_store import Alert
from keel.monitoring._report_charts import (
    CURRENT,
    REFERENCE,
    bars,
    esc,
    heat_colour,
    heatmap,
    verdict_strip,
)
from keel.monitoring._report_data import ColumnSeries, ReportData
from keel.monitoring._report_markup import (
    badge,
    date_text,
    empty,
    number,
    score_line,
    section,
    status_badge,
    table,
    x_range_of,
)
from keel.monitoring._report_sections import (
    performance_section,
    predictions_section,
    quality_section,
    slo_section,
)

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
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
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
            quality_section(data.quality, data.quality_alerts),
            predictions_section(data),
            performance_section(data),
            slo_section(data.slo),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Monitoring report: {esc(data.endpoint)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _header(data: ReportData) -> str:
    latest = data.latest
    verdict = latest.status if latest else "no windows"
    drifted = len(latest.drifted_columns) if latest else 0
    compared = sum(1 for c in data.columns if c.latest and c.latest.value is not None)
    firing = data.firing
    summary = [
        badge(f"latest window: {verdict.replace('_', ' ')}", verdict, big=True),
        badge(
            f"{drifted} of {compared} columns drifted" if compared else "no column compared",
            "drift" if drifted else "ok" if compared else "unknown",
            big=True,
        ),
        badge(f"{firing} alerts firing", "firing" if firing else "ok", big=True),
        badge(f"{len(data.windows)} windows", "unknown", big=True),
    ]
    correction = f", {data.correction} correction" if data.correction else ""
    alpha = f"alpha {data.alpha:g}{correction}" if data.alpha is not None else "n/a"
    meta = [
        ("endpoint", data.endpoint),
        ("model", data.model),
        ("reference snapshot", data.reference or "unknown"),
        ("significance", alpha),
        ("from", date_text(data.since)),
        ("to", date_text(data.until)),
        (
            "latest window",
            f"{date_text(latest.start)} · {latest.rows:,} rows" if latest else "none",
        ),
        ("generated", date_text(data.generated_at)),
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


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return section("alerts", "Alerts", empty("No alerts for this endpoint in this range."))
    rows = [
        [
            badge(a.state),
            esc(a.severity),
            esc(a.rule),
            esc(a.subject or "\u2013"),
            esc(a.summary),
            number(a.value),
            number(a.threshold),
            esc(date_text(a.started_at)),
        ]
        for a in alerts
    ]
    headers = ["state", "severity", "rule", "subject", "summary", "value", "threshold", "started"]
    return section("alerts", "Alerts", table(headers, rows, {5, 6}))


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
        return section(
            "drift",
            "Input drift",
            empty(
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
    return section("drift", "Input drift", note + _legend() + f'<div class="scroll">{chart}</div>')


def _column_card(column: ColumnSeries, data: ReportData, x_range: tuple[float, float]) -> str:
    latest = column.latest
    status = latest.status if latest else "unknown"
    facts = []
    if latest is not None and latest.value is not None:
        p_value = "" if latest.p_value is None else f", p = {latest.p_value:.2g}"
        facts.append(f"{column.statistic} = {latest.value:.3g}{p_value}")
    facts.append(f"drifted in {column.drifted_windows} of {len(column.points)} windows")
    dist = data.distributions.get(column.name)
    shape = (
        f'<div class="sub">latest window: {dist.current_rows:,} values vs '
        f"{dist.reference_rows:,} reference</div>" + bars(dist)
        if dist is not None
        else empty("No distribution to draw (no values in the latest window).")
    )
    css = "card drift" if status == "drift" else "card"
    return (
        f'<div class="{css}"><h3>{esc(column.name)} {status_badge(status)}'
        f'</h3><div class="sub">{esc(" · ".join(facts))}</div>{shape}'
        f"{score_line(column, x_range)}</div>"
    )


def _columns(data: ReportData) -> str:
    if not data.columns:
        return section("columns", "Columns", empty("No column has been compared yet."))
    legend = (
        '<div class="legend">'
        f'<span><span class="sw" style="background:{REFERENCE}"></span>reference</span>'
        f'<span><span class="sw" style="background:{CURRENT}"></span>latest window</span>'
        "<span>shares of each side; most drifted columns first</span></div>"
    )
    x_range = x_range_of(data)
    cards = [_column_card(column, data, x_range) for column in data.columns]
    shown = f'<div class="grid">{"".join(cards[:OPEN_COLUMNS])}</div>'
    if len(cards) > OPEN_COLUMNS:
        rest = len(cards) - OPEN_COLUMNS
        shown += (
            f"<details><summary>{rest} more columns</summary>"
            f'<div class="grid">{"".join(cards[OPEN_COLUMNS:])}</div></details>'
        )
    return section("columns", "Columns: reference vs current", legend + shown)
