"""Human durations in the configuration: ``500ms``, ``15s``, ``5m``, ``2h``, ``7d``, ``1w``."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("15s", timedelta(seconds=15)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 2 h ", timedelta(hours=2)),
        ("0ms", timedelta(0)),
        (30, timedelta(seconds=30)),
        (0.25, timedelta(milliseconds=250)),
        (0, timedelta(0)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("5 minutes", "is not a duration"),
        ("5", "is not a duration"),
        ("m5", "is not a duration"),
        ("-5s", "is not a duration"),
        ("5y", "is not a duration"),
        ("", "is not a duration"),
        (None, "is not a duration"),
        (True, "is not a duration"),  # YAML yes/true is not one second
        ([5], "is not a duration"),
        (-1, "cannot be negative"),
        (float("inf"), "not a usable duration"),
        (float("nan"), "not a usable duration"),
        (1e300, "not a usable duration"),
        ("99999999999w", "not a usable duration"),
    ],
)
def test_parse_rejects_with_a_hint(value, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        parse_duration(value)
    if "is not a duration" in str(info.value):
        assert "500ms, 15s, 5m, 2h, 7d or 1w" in str(info.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=15), "15s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=120), "2h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=14), "2w"),
        (timedelta(days=10), "10d"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(0), "0ms"),
    ],
)
def test_format_is_the_shortest_exact_spelling(value, text):
    assert format_duration(value) == text
    assert parse_duration(text) == value


@given(st.integers(min_value=0, max_value=10**11))
def test_format_then_parse_round_trips_whole_milliseconds(milliseconds):
    value = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(value)) == value


class _Model(BaseModel):
    every: Duration


def test_duration_field_validates_and_serializes():
    model = _Model(every="5m")
    assert model.every == timedelta(minutes=5)
    assert model.model_dump(mode="json") == {"every": "5m"}
    assert _Model.model_validate_json('{"every": 2}').every == timedelta(seconds=2)
    with pytest.raises(ValidationError) as info:
        _Model(every="soon")
    assert info.value.errors()[0]["loc"] == ("every",)
    assert "'soon' is not a duration" in str(info.value)
    with pytest.raises(ValidationError):
        _Model(every=float("inf"))
