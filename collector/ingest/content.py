"""What happens to prompt and response text and the other content fields of a trace line:
dropped (default), redacted, or hashed, alike in the ledger and the quarantine file."""

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
# US social security numbers, 123-45-6789 (with spaces or none they are masked as a phone).
_SSN = re.compile(r"(?<![\w.-])\d{3}-\d{2}-\d{4}(?![\w-])")
# Not followed by ":<digit>": a date before a time of day ("2026-11-20 12:30") is no phone.
_PHONE = re.compile(r"(?<![\w+(])(?:\+|\(\+?)?\d[\d ().-]{7,}\d\b(?!:\d)")


CONTENT_FIELDS = frozenset(
    {
        "prompt",
        "response",
        "messages",
        "input",
        "output",
        "completion",
        "choices",
        "content",
        "instructions",
        "system_prompt",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
    }
)
"""Top-level fields holding what was asked or answered (OpenAI, Anthropic, Langfuse,
OpenTelemetry GenAI names); ``gen_ai.prompt.0.content`` and the like count too."""
_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")
# What may be left of an address or of a card, phone or SSN number at the end of cut text.
_CUT_TOKEN = re.compile(r"(?:[\w.+-]*@[\w.-]*|[\d +().-]*\d[\d +().-]*)\Z")
_CUT_WINDOW = 64
# A key and its string value in raw text, also one cut short by the end of the text.
_KEY_STRING = re.compile(r'"([\w.]*)"(\s*:\s*)"(?:[^"\\]|\\.)*\\?(?:"|\Z)')


def redact(text: str) -> str:
    """Masks e-mail addresses, card, social security and phone numbers (in that order: cards
    and SSNs look like phone numbers)."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_card_or_keep, text)
    text = _SSN.sub("[ssn]", text)
    return _PHONE.sub(_phone_or_keep, text)


def is_content(field: str) -> bool:
    return field in CONTENT_FIELDS or field.startswith(_CONTENT_PREFIXES)


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

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with its content fields as `keep` leaves them: dropped, redacted or hashed."""
        if not data:  # the usual line: every field is a known one
            return data
        kept: dict[str, Any] = {}
        for field, value in data.items():
            if is_content(field):
                value = self.keep(value)
                if value is None:
                    continue
            kept[field] = value
        return kept

    def scrub(self, text: str, head: bool) -> tuple[str, bool]:
        """Text that is not a JSON object (cannot be `apply`-ed), with PII redacted and, unless
        content is stored, content strings masked; and whether it was touched at all. ``head``:
        the text is the start of a longer line, so what a number or address left at its end
        is dropped (cut in two, it cannot be recognised)."""
        as_text = self._store and not self._hash
        if as_text and not self._redact:
            return text, False
        if head:
            text = _without_cut_token(text)
        if not as_text:
            text = _KEY_STRING.sub(_mask_content, text)
        return redact(text), True


def _without_cut_token(text: str) -> str:
    """Looked for in the last characters only: the pattern backtracks over long runs."""
    found = _CUT_TOKEN.search(text[-_CUT_WINDOW:])
    return text[: len(text) - len(found[0])] if found else text


def _mask_content(match: re.Match[str]) -> str:
    """Masks content keys' strings, nested message parts' ``content`` and ``text`` too."""
    key = match[1]
    if is_content(key) or key == "text":
        return f'"{key}"{match[2]}"[removed]"'
    return match[0]
