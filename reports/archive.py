"""Rendering a report to files: ``<dir>/<kind>/<label>.md`` and ``.html`` with chart PNGs beside
them (``<label>-cost.png``...), referenced by relative path.

What is created here is private to the user (0600 files, 0700 directories), as everything the
collector creates: reports show usage per tenant. Reports never import the collector, so this
is its own copy of those few lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reports import html, markdown
from reports.charts import Chart
from reports.model import Report

FORMATS = {"md": ("md",), "html": ("html",), "both": ("md", "html")}


@dataclass(frozen=True)
class Rendered:
    """A report with its charts drawn, ready to be written or mailed."""

    report: Report
    charts: list[Chart]

    def chart_file(self, chart: Chart) -> str:
        return f"{self.report.period.label}-{chart.name}.png"


def write(rendered: Rendered, output_dir: Path, formats: str = "both") -> list[Path]:
    """Write the report's files (replacing older ones of the same period); the paths written."""
    period = rendered.report.period
    folder = output_dir / period.kind
    _make_dirs(folder)
    written = []
    for chart in rendered.charts:
        path = folder / rendered.chart_file(chart)
        with _open_private(path, "wb") as out:
            out.write(chart.png)
        written.append(path)
    images = [(chart.title, rendered.chart_file(chart)) for chart in rendered.charts]
    renderers = {"md": markdown.render, "html": html.render}
    for suffix in FORMATS[formats]:
        path = folder / f"{period.label}.{suffix}"
        with _open_private(path, "w", encoding="utf-8") as out:
            out.write(renderers[suffix](rendered.report, images))
        written.append(path)
    return written


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents as 0700; existing ones keep their mode."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _open_private(path: Path, mode: str, **options: Any) -> IO[Any]:
    """``open(path, mode)``; a file it creates is 0600."""
    return open(path, mode, opener=lambda name, flags: os.open(name, flags, 0o600), **options)
