"""Rendering a report to files: ``<dir>/<kind>/<label>.md`` and ``.html`` with chart PNGs beside
them (``<label>-cost.png``...), referenced by relative path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector import files
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
    files.make_dirs(folder)
    written = []
    for chart in rendered.charts:
        path = folder / rendered.chart_file(chart)
        with files.open_private(path, "wb") as out:
            out.write(chart.png)
        written.append(path)
    images = [(chart.title, rendered.chart_file(chart)) for chart in rendered.charts]
    renderers = {"md": markdown.render, "html": html.render}
    for suffix in FORMATS[formats]:
        path = folder / f"{period.label}.{suffix}"
        with files.open_private(path, "w", encoding="utf-8") as out:
            out.write(renderers[suffix](rendered.report, images))
        written.append(path)
    return written
