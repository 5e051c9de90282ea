"""The report's charts as PNG bytes: cost per bucket, p95 latency, requests by model.

matplotlib with the Agg backend (no display), imported only when a chart is drawn so that the
command line starts fast.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from reports.model import OTHER, Report

MODELS_SHOWN = 6
_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")


@dataclass(frozen=True)
class Chart:
    """One chart: ``name`` makes its file name and Content-ID, ``title`` its alt text."""

    name: str
    title: str
    png: bytes


def draw(report: Report) -> list[Chart]:
    """The three charts of a report with data; none for an empty period."""
    if not report.has_data:
        return []
    import matplotlib

    matplotlib.use("Agg")
    series = report.series
    unit = "hour" if report.period.kind == "daily" else "day"
    return [
        _chart("cost", f"Cost per {unit} (USD)", lambda ax: _bars(ax, series.labels, series.cost)),
        _chart("p95", f"p95 latency per {unit} (ms)", lambda ax: _line(ax, series)),
        _chart("requests", f"Requests per {unit} by model", lambda ax: _stack(ax, series)),
    ]


def _chart(name: str, title: str, plot: Any) -> Chart:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 2.6), dpi=100)
    ax = figure.add_subplot()
    plot(ax)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=7)
    figure.subplots_adjust(left=0.08, right=0.74 if ax.get_legend() else 0.98, bottom=0.12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Chart(name, title, buffer.getvalue())


def _ticks(ax: Any, labels: list[str]) -> None:
    """At most ~12 x labels, so 24 hours or 31 days stay legible (ticks are costly to draw)."""
    step = max(1, -(-len(labels) // 12))
    ax.set_xticks(range(0, len(labels), step), labels[::step])


def _bars(ax: Any, labels: list[str], values: list[float]) -> None:
    ax.bar(range(len(values)), values, color=_COLOURS[0])
    _ticks(ax, labels)


def _line(ax: Any, series: Any) -> None:
    points = [(i, v) for i, v in enumerate(series.p95) if v is not None]
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, color=_COLOURS[3])
    _ticks(ax, series.labels)
    ax.set_ylim(bottom=0)


def _stack(ax: Any, series: Any) -> None:
    models = list(series.requests_by_model.items())
    shown = models[:MODELS_SHOWN]
    if len(models) > MODELS_SHOWN:
        rest = [sum(counts) for counts in zip(*(c for _, c in models[MODELS_SHOWN:]), strict=True)]
        shown.append((OTHER, rest))
    bottom = [0] * len(series.labels)
    for index, (model, counts) in enumerate(shown):
        colour = _COLOURS[index % len(_COLOURS)]
        ax.bar(range(len(counts)), counts, bottom=bottom, label=model, color=colour)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _ticks(ax, series.labels)
    if shown:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
