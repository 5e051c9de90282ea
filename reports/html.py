"""A report as HTML for mail clients: inline CSS only, tables, no scripts; charts as ``<img>``
whose source is a ``cid:`` (email) or a path beside the file (archive)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from reports.layout import Section, sections, subtitle, title
from reports.markdown import NO_DATA
from reports.model import Report

_BODY = (
    "margin:0;padding:24px;background:#f4f5f7;color:#1d1d1f;"
    "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px"
)
_CARD = "max-width:760px;margin:0 auto;background:#ffffff;padding:24px;border-radius:6px"
_TABLE = "border-collapse:collapse;width:100%;margin:8px 0 16px 0;font-size:13px"
_TH = "text-align:{align};padding:6px 8px;border-bottom:2px solid #d0d4da;background:#eef1f5"
_TD = "text-align:{align};padding:5px 8px;border-bottom:1px solid #e6e8eb"
_WARN = "padding:10px 12px;background:#fff4e5;border-left:4px solid #f2a900;margin:8px 0"


def render(report: Report, images: Sequence[tuple[str, str]] = ()) -> str:
    """A whole HTML document; ``images`` are (alt text, src) of the charts."""
    parts = [
        f'<h1 style="font-size:20px;margin:0 0 4px 0">{escape(title(report))}</h1>',
        f'<p style="color:#5f6368;margin:0 0 16px 0">{escape(subtitle(report))}</p>',
    ]
    if not report.has_data:
        parts.append(f"<p>{escape(NO_DATA)}</p>")
    else:
        parts += [_section(section, images) for section in sections(report)]
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title(report))}</title></head>"
        f'<body style="{_BODY}"><div style="{_CARD}">{"".join(parts)}</div></body></html>\n'
    )


def _section(section: Section, images: Sequence[tuple[str, str]]) -> str:
    out = [f'<h2 style="font-size:16px;margin:20px 0 6px 0">{escape(section.title)}</h2>']
    style = f' style="{_WARN}"' if section.warning else ""
    out += [f"<p{style}>{escape(p)}</p>" for p in section.paragraphs]
    if section.headers:
        out.append(_table(section))
    if section.charts:
        out += [
            f'<img src="{escape(src)}" alt="{escape(alt)}" width="720"'
            ' style="display:block;width:100%;max-width:720px;height:auto;margin:6px 0">'
            for alt, src in images
        ]
    return "".join(out)


def _table(section: Section) -> str:
    def align(index: int) -> str:
        return "left" if index < section.text_columns else "right"

    head = "".join(
        f'<th style="{_TH.format(align=align(i))}">{escape(h)}</th>'
        for i, h in enumerate(section.headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="{_TD.format(align=align(i))}">{escape(c)}</td>' for i, c in enumerate(row)
        )
        + "</tr>"
        for row in section.rows
    )
    return f'<table style="{_TABLE}"><tr>{head}</tr>{body}</table>'
