"""A report as an email: plain text and HTML alternatives, the charts inline by Content-ID.

The structure is multipart/alternative [text/plain, multipart/related [text/html, image/png
...]], which mail clients show as the HTML with its images, or the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid

from reports import html, markdown
from reports.archive import Rendered
from reports.layout import title


def message(rendered: Rendered, sender: str, to: Sequence[str]) -> EmailMessage:
    """The email of a report, from ``sender`` to ``to``."""
    mail = EmailMessage()
    mail["Subject"] = title(rendered.report)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail.set_content(markdown.render(rendered.report))
    ids = [make_msgid(idstring=chart.name, domain="llm-collector") for chart in rendered.charts]
    images = [
        (chart.title, f"cid:{cid[1:-1]}") for chart, cid in zip(rendered.charts, ids, strict=True)
    ]
    mail.add_alternative(html.render(rendered.report, images), subtype="html")
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    for chart, cid in zip(rendered.charts, ids, strict=True):
        html_part.add_related(
            chart.png, "image", "png", cid=cid, filename=rendered.chart_file(chart)
        )
    return mail
