"""Human durations in configuration: ``500ms``, ``15s``, ``5m``, ``2h``, ``7d``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: Any) -> timedelta:
    """A timedelta from a number of seconds or a string such as ``5m``; ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(value, value)
    if isinstance(value, str) and (match := _PATTERN.match(value)):
        return _seconds(float(match[1]) * _UNITS[match[2]], value)
    raise ValueError(f"{value!r} is not a duration; write e.g. 500ms, 15s, 5m, 2h, 7d or 1w")


def _seconds(seconds: float, value: Any) -> timedelta:
    """A ValueError (which validation reports) rather than OverflowError for .inf or 10**12w."""
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"{value!r} is not a usable duration (too long or not a number)") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of a duration, the inverse of `parse_duration`."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
