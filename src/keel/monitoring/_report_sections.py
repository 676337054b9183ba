"""The report's lower sections: data quality, prediction drift, performance, SLOs.

Each returns one ``<section>``, or the same section holding a sentence saying why it is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.monitoring._report_charts import (
    CURRENT,
    WARN,
    Line,
    budget_bar,
    esc,
    line_chart,
    verdict_strip,
)
from keel.monitoring._report_data import PerformanceSeries, QualityAlerts, ReportData
from keel.monitoring._report_markup import (
    date_text,
    empty,
    number,
    score_line,
    section,
    status_badge,
    table,
    x_range_of,
)
from keel.monitoring._results import MonitorResult


def _quality_value(result: MonitorResult) -> tuple[str, str]:
    if result.statistic == "null_rate":
        before = result.details.get("reference")
        value = "\u2013" if result.value is None else f"{result.value:.1%}"
        return value, "\u2013" if before is None else f"{before:.1%} (reference)"
    if result.statistic == "volume":
        z = result.details.get("z")
        return number(result.value, 6), "\u2013" if z is None else f"z = {z:.2f}"
    return number(result.value), number(result.threshold)


def quality_section(found: Sequence[MonitorResult], history: Sequence[QualityAlerts]) -> str:
    if not found:
        return section("quality", "Data quality", empty("No data-quality results yet."))
    earlier = ""
    if history:
        items = "".join(
            f"<li>{esc(q.subject or '(window)')} {esc(q.statistic)}: alert in {q.windows} "
            f"window{'s' * (q.windows != 1)}, last ending {esc(date_text(q.last_end))}</li>"
            for q in history
        )
        earlier = f'<p class="sub">Alerts in this range:</p><ul class="sub">{items}</ul>'

    ordered = sorted(found, key=lambda r: (r.status != "alert", r.subject, r.statistic))
    rows = []
    for r in ordered:
        value, compared = _quality_value(r)
        rows.append([esc(r.subject or "(window)"), esc(r.statistic), value, esc(compared),
                     status_badge(r.status)])  # fmt: skip
    note = f'<p class="sub">Latest window ending {esc(date_text(found[0].window_end))}.</p>'
    listing = table(["column", "check", "value", "compared with", "status"], rows, {2})
    return section("quality", "Data quality", note + listing + earlier)


def predictions_section(data: ReportData) -> str:
    if not data.prediction_verdicts:
        return section("predictions", "Prediction drift", empty("No prediction-drift results yet."))
    latest = data.prediction_verdicts[-1]
    head = (
        f'<div class="badges">latest window: {status_badge(latest.status)}</div>'
        '<p class="sub">The model\'s answers per window against its answers on its validation '
        "data.</p>" + verdict_strip(data.prediction_verdicts)
    )
    x_range = x_range_of(data)
    cards = "".join(
        f'<div class="card"><h3>{esc(c.name)} '
        f"{status_badge(c.latest.status if c.latest else 'unknown')}</h3>"
        f"{score_line(c, x_range)}</div>"
        for c in data.predictions
    )
    return section("predictions", "Prediction drift", head + f'<div class="grid">{cards}</div>')


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
    chart = line_chart(
        lines, x_range, limit=reference, limit_label="validation", flag_above=False,
        title=series.metric,
    )  # fmt: skip
    valued = [p for p in (series.realised or series.estimated) if p.value is not None]
    status = (
        "no validation value"
        if reference is None
        else valued[-1].status
        if valued
        else "not_enough_data"
    )
    return (
        f'<div class="card"><h3>{esc(series.metric)} · v{series.model_version} '
        f"{status_badge(status)}</h3>{chart}</div>"
    )


def performance_section(data: ReportData) -> str:
    if not data.performance:
        return section(
            "performance",
            "Performance",
            empty("No labels and no estimates in this range yet: performance appears once "
                   "feedback arrives (or, for classifiers, once probabilities are logged)."),
        )  # fmt: skip
    legend = (
        '<div class="legend">'
        f'<span><span class="sw" style="background:{CURRENT}"></span>realised (labels)</span>'
        f'<span><span class="sw" style="background:{WARN}"></span>estimated (CBPE) with band'
        '</span><span style="color:#dc2626">- - validation value</span></div>'
    )
    x_range = x_range_of(data)
    drawn = [s for s in data.performance if _has_values(s)]
    cards = "".join(_performance_card(s, x_range) for s in drawn)
    # A metric that never had a value (not enough rows, or not one for this task) is named,
    # not drawn as an empty chart.
    never = sorted(
        {f"{s.metric} (v{s.model_version})" for s in data.performance}
        - {f"{s.metric} (v{s.model_version})" for s in drawn}
    )
    missing = empty(f"Not computed in any window: {', '.join(never)}.") if never else ""
    grid = f'<div class="grid">{cards}</div>' if cards else ""
    return section("performance", "Performance", legend + grid + missing + _concept(data.concept))


def _concept(found: Sequence[MonitorResult]) -> str:
    """The latest concept-drift finding per version: did the model get worse at the same
    inputs (concept drift), or at new ones (covariate shift)?"""
    if not found:
        return ""
    rows = [
        [
            f"v{r.model_version}",
            esc(r.subject),
            status_badge(r.status),
            number(r.value),
            number(r.threshold),
            esc(date_text(r.window_end)),
            esc(r.details.get("note") or ""),
        ]
        for r in found
    ]
    headers = ["version", "metric", "finding", "realised", "validation", "window end", "note"]
    return "<h3>Concept drift</h3>" + table(headers, rows, {3, 4})


def _has_values(series: PerformanceSeries) -> bool:
    return any(p.value is not None for p in (*series.realised, *series.estimated))


def slo_section(found: Sequence[MonitorResult]) -> str:
    if not found:
        return section(
            "slo", "Service-level objectives", empty("No SLOs recorded for this endpoint.")
        )
    rows = []
    for r in found:
        if r.statistic == "budget_remaining":
            value = "\u2013" if r.value is None else f"{r.value:.1%} " + budget_bar(r.value)
            target = r.details.get("target")
            what = f"budget remaining (objective {target:g})" if target else "budget remaining"
        else:
            value, what = (
                number(r.value),
                f"burn rate {r.statistic} (factor {number(r.threshold)})",
            )
        rows.append([esc(r.subject), esc(what), value, status_badge(r.status)])
    listing = table(["objective", "measure", "value", "status"], rows, set())
    return section("slo", "Service-level objectives", listing)
