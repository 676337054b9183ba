"""The report of a real monitored endpoint, rendered by headless Chromium: a picture, not blank.

Chromium is Debian's ``chromium`` package (.ci/run installs it). Without it the test is skipped
with the reason, unless KEEL_REQUIRE_SERVICES=1, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest

from keel import Workspace
from keel.monitoring._report_data import gather_report
from keel.monitoring._report_html import render_report
from monitoring.report_helpers import monitored_history
from monitoring.test_runner import endpoint as endpoint  # the fixture, re-exported

WIDTH, HEIGHT = 1400, 2400


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("KEEL_REQUIRE_SERVICES") == "1":
            pytest.fail("headless Chromium is not installed (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (Debian package: chromium)")
    return found


def screenshot(browser: str, page: Path, png: Path) -> None:
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def png_colours(png: Path) -> tuple[tuple[int, int], Counter[bytes]]:
    """The (width, height) of an 8-bit RGB PNG and how many pixels have each colour: a
    minimal decoder (IDAT chunks, zlib, the five scanline filters), since keel has no image
    library to lean on."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour_type) == (8, 2), "Chromium writes 8-bit RGB screenshots"
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride, previous = width * 3, bytearray(width * 3)
    colours: Counter[bytes] = Counter()
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        _unfilter(kind, row, previous)
        colours.update(bytes(row[x : x + 3]) for x in range(0, stride, 3))
        previous = row
    return (width, height), colours


def _unfilter(kind: int, row: bytearray, up: bytearray) -> None:
    if kind == 2:  # Up
        row[:] = bytes((a + b) & 0xFF for a, b in zip(row, up, strict=True))
        return
    for i in range(len(row)):
        left = row[i - 3] if i >= 3 else 0
        if kind == 1:  # Sub
            row[i] = (row[i] + left) & 0xFF
        elif kind == 3:  # Average
            row[i] = (row[i] + (left + up[i]) // 2) & 0xFF
        elif kind == 4:  # Paeth
            corner = up[i - 3] if i >= 3 else 0
            guess = left + up[i] - corner
            da, db, dc = abs(guess - left), abs(guess - up[i]), abs(guess - corner)
            best = left if da <= db and da <= dc else up[i] if db <= dc else corner
            row[i] = (row[i] + best) & 0xFF


# Only SQLite: what is checked here is the picture, the same from either metadata backend.
@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_chromium_draws_the_report_of_a_drifting_endpoint(
    workspace: Workspace, endpoint: str, tmp_path: Path
) -> None:
    browser = chromium()
    monitored_history(workspace)
    page = tmp_path / "report.html"
    page.write_text(render_report(gather_report(workspace, endpoint, now=time.time())))
    started = time.perf_counter()
    screenshot(browser, page, tmp_path / "report.png")
    size, colours = png_colours(tmp_path / "report.png")
    assert size == (WIDTH, HEIGHT)
    # A blank page is one colour; charts, badges and anti-aliased text are hundreds, and the
    # page background covers well under nine tenths of the picture.
    assert len(colours) > 100
    background = colours.most_common(1)[0][1]
    assert background < 0.9 * WIDTH * HEIGHT
    print(f"{len(colours)} colours, {time.perf_counter() - started:.1f} s")
