"""Text from data in Slack messages (Slack's escaping rules).

``&``, ``<`` and ``>`` are Slack's control characters in mrkdwn and in a message's ``text``
(mentions such as ``<!channel>``, links such as ``<url|text>``), so text that comes from data
is sent with them as HTML entities. ``plain_text`` objects (headers, button labels) parse no
control sequences and take text as it is. Formatting marks (``*``, ``_``, ``~``) can style a
value but reach no one, and are left.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """``text`` shown literally in mrkdwn: ``&`` ``<`` ``>`` as ``&amp;`` ``&lt;`` ``&gt;``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
