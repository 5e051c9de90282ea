"""A report as Markdown (the archived ``.md`` and, without images, the email's text part)."""

from __future__ import annotations

from collections.abc import Sequence

from reports.layout import Section, sections, subtitle, title
from reports.model import Report

NO_DATA = "No calls or scores were recorded in this period."


def render(report: Report, images: Sequence[tuple[str, str]] = ()) -> str:
    """Markdown; ``images`` are (alt text, path) of the charts, left out when empty."""
    lines = [f"# {title(report)}", "", subtitle(report), ""]
    if not report.has_data:
        return "\n".join([*lines, NO_DATA, ""])
    for section in sections(report):
        if section.charts and not images:
            continue
        lines += _section(section, images)
    return "\n".join(lines)


def _section(section: Section, images: Sequence[tuple[str, str]]) -> list[str]:
    lines = [f"## {section.title}", ""]
    for paragraph in section.paragraphs:
        lines += [f"> **Warning:** {paragraph}" if section.warning else paragraph, ""]
    if section.headers:
        lines.append("| " + " | ".join(section.headers) + " |")
        numbers = len(section.headers) - section.text_columns
        lines.append("|" + "|".join(["---"] * section.text_columns + ["---:"] * numbers) + "|")
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows]
        lines.append("")
    if section.charts:
        lines += [f"![{alt}]({path})\n" for alt, path in images]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
