"""What happens to prompt and response text: dropped (default), redacted, or hashed."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from schemas.config import ContentConfig

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 4-4-4-4(-3) or 4-6-5 groups, or 15-19 digits in a row; a decimal's digits are not a card.
_CARD = re.compile(
    r"(?<![\w.])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ -]?)\d{6}\2\d{5}"
    r"|\d{15,19})\b"
)
# Not followed by ":<digit>": a date before a time of day ("2026-11-20 12:30") is no phone.
_PHONE = re.compile(r"(?<![\w+(])(?:\+|\(\+?)?\d[\d ().-]{7,}\d\b(?!:\d)")


def redact(text: str) -> str:
    """Masks e-mail addresses, card numbers and phone numbers (cards first: they look alike)."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_card_or_keep, text)
    return _PHONE.sub(_phone_or_keep, text)


def _card_or_keep(match: re.Match[str]) -> str:
    """Only numbers that pass the Luhn check every card number carries are cards."""
    digits = [int(c) for c in reversed(match[0]) if c.isdigit()]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return "[card]" if total % 10 == 0 else match[0]


def _phone_or_keep(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match[0])
    return "[phone]" if 9 <= digits <= 15 else match[0]


class ContentPolicy:
    """Applies the ``content`` section of the configuration to one prompt or response."""

    def __init__(self, config: ContentConfig) -> None:
        self._store = config.store
        self._hash = config.hash
        self._redact = config.redact

    def keep(self, value: Any) -> str | None:
        """The text to store for ``value``, or None when content is not stored."""
        if not self._store or value is None:
            return None
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if self._hash:
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return redact(text) if self._redact else text
