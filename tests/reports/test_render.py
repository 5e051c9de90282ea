"""The archived files: Markdown and HTML with chart PNGs beside them; the HTML renders in
headless Chromium (a real browser) to a page that is not blank, and each chart is an image;
names from the data stay text in both."""

import io
import os
import re
import shutil
import stat
import subprocess
from html import escape

import numpy as np
import pytest
from markdown_it import MarkdownIt
from matplotlib import image

from reports import html, markdown
from reports.archive import write
from tests.reports.report_harness import HOSTILE_MODEL, HOSTILE_TENANT, hostile_day, rendered_day


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rendered = rendered_day(tmp_path_factory.mktemp("ledger"))
    out = tmp_path_factory.mktemp("out")
    return rendered, out, write(rendered, out)


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: the report HTML is checked in a real browser. "
            "`make test` installs it (Debian package chromium).",
            pytrace=False,
        )
    return found


def pixels(png: bytes) -> np.ndarray:
    return image.imread(io.BytesIO(png), format="png")[..., :3]


def distinct_colours(rgb: np.ndarray) -> int:
    return len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))


def test_files_are_written_per_period_with_charts_beside_them(files):
    _, out, written = files
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == [
        "daily/2026-11-20-cost.png",
        "daily/2026-11-20-p95.png",
        "daily/2026-11-20-requests.png",
        "daily/2026-11-20.html",
        "daily/2026-11-20.md",
    ]
    markdown = (out / "daily" / "2026-11-20.md").read_text()
    assert "![Cost per hour (USD)](2026-11-20-cost.png)" in markdown
    page = (out / "daily" / "2026-11-20.html").read_text()
    assert re.findall(r'<img src="([^"]+)"', page) == [
        "2026-11-20-cost.png",
        "2026-11-20-p95.png",
        "2026-11-20-requests.png",
    ]
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_report_files_and_folders_are_private(files, tmp_path):
    rendered, _, _ = files
    previous = os.umask(0o022)  # without care, files would come out 0644
    try:
        written = write(rendered, tmp_path / "reports")
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(path.stat().st_mode) for path in written} == {0o600}
    for folder in (tmp_path / "reports", tmp_path / "reports" / "daily"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_charts_are_non_empty_images(files):
    rendered, _, _ = files
    assert [c.name for c in rendered.charts] == ["cost", "p95", "requests"]
    for chart in rendered.charts:
        rgb = pixels(chart.png)
        assert rgb.shape[0] > 100 and rgb.shape[1] > 300
        assert distinct_colours(rgb) > 20, chart.name
        assert (rgb.mean(axis=2) < 0.9).mean() > 0.02, chart.name  # ink, not a white page


def test_html_renders_in_headless_chromium(files, tmp_path):
    _, out, _ = files
    shot = tmp_path / "shot.png"
    page = (out / "daily" / "2026-11-20.html").resolve()
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=900,1600",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    rgb = pixels(shot.read_bytes())
    assert rgb.shape[:2] == (1600, 900)
    assert distinct_colours(rgb) > 200  # text, tables and the charts' colours
    dark = rgb.mean(axis=2) < 0.5
    assert dark.mean() > 0.01  # text is drawn
    bars = (np.abs(rgb - np.array([0x4C, 0x78, 0xA8]) / 255).sum(axis=2) < 0.05).sum()
    assert bars > 1000  # the cost chart's bars (loaded from the file beside the page)


def test_html_uses_only_inline_styles(files):
    rendered, _, _ = files
    page = html.render(rendered.report, [("a", "cid:x")])
    assert "<style" not in page and "class=" not in page
    assert 'src="cid:x"' in page


def _cells_and_paragraphs(markdown_text: str) -> tuple[list[list[str]], list[str]]:
    """The rows of every table (header rows too) and the paragraphs, as the text a CommonMark
    reader shows: anything that is not plain text (HTML, a link, emphasis) shows as <type>."""
    rows: list[list[str]] = []
    paragraphs: list[str] = []
    in_cell = False
    for token in MarkdownIt("commonmark").enable("table").parse(markdown_text):
        if token.type == "tr_open":
            rows.append([])
        in_cell = token.type in ("th_open", "td_open") or (in_cell and token.type == "inline")
        if token.type != "inline":
            continue
        shown = "".join(
            c.content if c.type == "text" else f"<{c.type}>" for c in token.children or []
        )
        (rows[-1] if in_cell else paragraphs).append(shown)
    return rows, paragraphs


def test_names_from_the_data_stay_text_in_the_markdown_and_the_html(tmp_path):
    report = hostile_day(tmp_path)
    text = markdown.render(report)
    assert "<script>" not in text and "<!channel>" not in text
    rows, paragraphs = _cells_and_paragraphs(text)
    cells = [cell for row in rows for cell in row]
    assert HOSTILE_MODEL in cells  # reads back as itself: no HTML, link or emphasis
    assert " ".join(HOSTILE_TENANT.splitlines()) in cells  # one cell, one line
    assert any(f"{HOSTILE_MODEL} (" in p for p in paragraphs)  # the unpriced models
    widths = {len(row) for row in rows}
    assert widths <= {4, 5, 6, 9}, widths  # no row broken or widened by a name
    assert "<script>" not in MarkdownIt("commonmark").enable("table").render(text)
    page = html.render(report)
    assert "<script>" not in page
    assert escape(HOSTILE_MODEL) in page
    assert escape(HOSTILE_TENANT) in page
