"""Text from data in Slack messages (Slack's escaping rules).

``&``, ``<`` and ``>`` are Slack's control characters in mrkdwn and in a message's ``text``
(mentions such as ``<!channel>``, links such as ``<url|text>``), so text that comes from data
is sent with them as HTML entities. ``plain_text`` objects (headers, button labels) parse no
control sequences and take text as it is. Formatting marks (``*``, ``_``, ``~``) can style a
value but reach no one, and are left.
"""

from __future__ import annotations

from typing import Any, Protocol

SlackMessage = dict[str, Any]
"""The JSON body of a Slack message: ``text`` and ``attachments`` of Block Kit blocks."""


class SlackContent(Protocol):
    """Anything the Slack notifier can send: an alert notification, a report digest."""

    def slack(self) -> SlackMessage:
        """The message: ``text`` (the fallback) and ``attachments``."""
        ...


def escape(text: str) -> str:
    """``text`` shown literally in mrkdwn: ``&`` ``<`` ``>`` as ``&amp;`` ``&lt;`` ``&gt;``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
