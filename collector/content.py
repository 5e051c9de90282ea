"""What happens to prompt and response text: dropped (default), redacted, or hashed."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from schemas.config import ContentConfig

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d\b")


def redact(text: str) -> str:
    """Masks e-mail addresses, card numbers and phone numbers (cards first: they look alike)."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub("[card]", text)
    return _PHONE.sub(_phone_or_keep, text)


def _phone_or_keep(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match[0])
    return "[phone]" if 9 <= digits <= 15 else match[0]


class ContentPolicy:
    """Applies the ``content`` section of the configuration to one prompt or response."""

    def __init__(self, config: ContentConfig) -> None:
        self._store = config.store
        self._hash = config.hash

    def keep(self, value: Any) -> str | None:
        """The text to store for ``value``, or None when content is not stored."""
        if not self._store or value is None:
            return None
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if self._hash:
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return redact(text)
