"""The report page: self-contained, escaped, well-formed, and saying so when it has nothing."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from keel.monitoring._report_html import render_report
from monitoring.report_samples import empty_report, full_report

HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}


class TagBalance(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"  # self-closed SVG shapes never go on the stack

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def parsed(page: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    return parser


@pytest.mark.parametrize("report", [full_report(), empty_report()], ids=["full", "empty"])
def test_the_page_is_well_formed_and_needs_nothing_from_outside(report: object) -> None:
    page = render_report(report)  # type: ignore[arg-type]
    parser = parsed(page)
    assert parser.errors == []
    assert parser.open == []
    assert parser.scripts == 0
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "@import" not in page
    assert "<link" not in page
    assert "url(" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_user_strings_are_escaped_everywhere() -> None:
    page = render_report(full_report(endpoint=HOSTILE, column=HOSTILE))
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parsed(page).scripts == 0
    assert parsed(page).errors == []


def test_every_section_is_drawn_for_a_full_report() -> None:
    page = render_report(full_report())
    for anchor in ("alerts", "drift", "columns", "quality", "predictions", "performance", "slo"):
        assert f'id="{anchor}"' in page
    assert "latest window: drift" in page
    assert "1 alerts firing" in page
    assert page.count("<svg") >= 8  # strip, heat map, 2 bars, 3 score lines, performance, budget
    assert "alpha 0.05" in page
    assert "threshold 0.2" in page
    assert "estimated (CBPE)" in page
    assert "null_rate: alert in 2 windows" in page
    # columns appear in the order the data sorted them: the drifted one first
    assert page.index("<h3>age") < page.index("<h3>plan")
    # firing alerts come first, as the data orders them
    assert page.index(">firing<") < page.index(">resolved<")


def test_an_endpoint_without_windows_says_so_in_every_section() -> None:
    page = render_report(empty_report())
    assert "latest window: no windows" in page
    for sentence in (
        "No alerts for this endpoint in this range.",
        "No monitoring windows in this range yet",
        "No column has been compared yet.",
        "No data-quality results yet.",
        "No prediction-drift results yet.",
        "No labels and no estimates in this range yet",
        "No SLOs recorded for this endpoint.",
    ):
        assert sentence in page
    assert "<svg" not in page  # no empty chart anywhere
