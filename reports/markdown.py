"""A report as Markdown (the archived ``.md`` and, without images, the email's text part)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from reports.layout import Section, sections, subtitle, title
from reports.model import Report

NO_DATA = "No calls or scores were recorded in this period."
_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")


def render(report: Report, images: Sequence[tuple[str, str]] = ()) -> str:
    """Markdown; ``images`` are (alt text, path) of the charts, left out when empty."""
    lines = [f"# {text(title(report))}", "", text(subtitle(report)), ""]
    if not report.has_data:
        return "\n".join([*lines, NO_DATA, ""])
    for section in sections(report):
        if section.charts and not images:
            continue
        lines += _section(section, images)
    return "\n".join(lines)


def text(raw: str) -> str:
    """``raw`` (names from the data among it) as literal Markdown on one line: the characters
    that make HTML, entities, links, code, emphasis or a table cell's end are
    backslash-escaped, and line breaks become spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(raw.splitlines()))


def _section(section: Section, images: Sequence[tuple[str, str]]) -> list[str]:
    lines = [f"## {text(section.title)}", ""]
    for paragraph in section.paragraphs:
        lines += [f"> **Warning:** {text(paragraph)}" if section.warning else text(paragraph), ""]
    if section.headers:
        lines.append("| " + " | ".join(text(h) for h in section.headers) + " |")
        numbers = len(section.headers) - section.text_columns
        lines.append("|" + "|".join(["---"] * section.text_columns + ["---:"] * numbers) + "|")
        lines += ["| " + " | ".join(text(c) for c in row) + " |" for row in section.rows]
        lines.append("")
    if section.charts:
        lines += [f"![{alt}]({path})\n" for alt, path in images]
    return lines
