"""Prompt, response and other content fields: dropped, PII-redacted, or hashed."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ingest.content import ContentPolicy, redact
from schemas.config import ContentConfig


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe@example.com today", "write to [email] today"),
        ("a+tag@sub.example.co.uk, b_c@x-y.org", "[email], [email]"),
        ("<bob@example.org>", "<[email]>"),
        ("user@localhost is not an address", "user@localhost is not an address"),
    ],
)
def test_emails(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +49 30 1234 5678 now", "call [phone] now"),
        ("call +1-555-123-4567.", "call [phone]."),
        ("(555) 123-4567", "[phone]"),
        ("(+49) 30 12345678", "[phone]"),
        ("0151 23456789", "[phone]"),
        ("+442079460958", "[phone]"),
        ("call 030 12345678: it is urgent", "call [phone]: it is urgent"),
    ],
)
def test_phone_numbers(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("4111-1111-1111-1111", "[card]"),
        ("4111111111111111", "[card]"),
        ("5555 5555 5555 4444", "[card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("378282246310005", "[card]"),
        ("6011111111111117 and 4012888888881881", "[card] and [card]"),
    ],
)
def test_card_numbers(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 219-09-9999 on file", "SSN [ssn] on file"),
        ("078-05-1120", "[ssn]"),
        ('{"ssn":"219-09-9999"}', '{"ssn":"[ssn]"}'),
        ("219 09 9999", "[phone]"),  # without dashes it looks like a phone number: masked too
        ("+1-219-09-9999", "[phone]"),
    ],
)
def test_social_security_numbers(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-11-20 at 12:30",
        "2026-11-20 12:30:00",
        "2026-11-20T12:30:00Z",
        "2026-11-20T12:30:00.123456+01:00",
        "20.11.2026 12:30",
        "11/20/2026",
        "from 2026-11-20 to 2026-11-27",
        "12:30:45",
        "23:59",
        "order 12345 shipped",
        "room 101, floor 3",
        "version 1.2.3",
        "pi is 3.14159",
        "pi is 3.14159265358979323846",  # a decimal's digits are not a card
        "price $1,299.99",
        "year 2025 and 2026",
        "ZIP 10115",
        "4111 1111 1111 1112",  # fails the Luhn check: not a card
        "no digits at all",
        "",
    ],
)
def test_dates_times_and_short_numbers_untouched(text):
    assert redact(text) == text


def test_mixed_text():
    text = (
        "On 2026-11-20 12:30 Jane (jane@example.com, +49 170 1234567) paid 49.90 EUR "
        "with 4111 1111 1111 1111, order 12345."
    )
    assert redact(text) == (
        "On 2026-11-20 12:30 Jane ([email], [phone]) paid 49.90 EUR with [card], order 12345."
    )


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=80))
def test_text_without_digits_or_at_signs_is_untouched(text):
    if "@" not in text:
        assert redact(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_redaction_is_idempotent(text):
    once = redact(text)
    assert redact(once) == once


# ----- the policy ----------------------------------------------------------------------------


def test_default_policy_drops_content():
    policy = ContentPolicy(ContentConfig())
    assert policy.keep("mail me at a@b.com") is None
    assert policy.keep([{"role": "user", "content": "hi"}]) is None


def test_store_redacts_strings_and_structured_content():
    policy = ContentPolicy(ContentConfig(store=True))
    assert policy.keep("mail me at a@b.com") == "mail me at [email]"
    assert policy.keep(None) is None
    assert policy.keep({"q": "a@b.com"}) == '{"q":"[email]"}'
    assert policy.keep(42) == "42"


def test_store_without_redaction_keeps_text():
    policy = ContentPolicy(ContentConfig(store=True, redact=False))
    assert policy.keep("mail me at a@b.com") == "mail me at a@b.com"


def test_hash_policy():
    policy = ContentPolicy(ContentConfig(store=True, hash=True))
    text = "mail me at a@b.com"
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert policy.keep(text) == digest
    assert policy.keep(text) == policy.keep(text)  # stable: equal prompts can be counted
    assert policy.keep("other") != digest
    structured = [{"role": "user", "content": "é"}]
    expected = hashlib.sha256('[{"role":"user","content":"é"}]'.encode()).hexdigest()
    assert policy.keep(structured) == "sha256:" + expected


EVENT = {
    "model": "m",
    "messages": [{"role": "user", "content": "I am bob@example.org"}],
    "gen_ai.prompt.0.content": "SSN 219-09-9999",
    "gen_ai.system": "openai",
    "config": {"temperature": 0.2},
}


def test_apply_drops_every_content_field_by_default():
    assert ContentPolicy(ContentConfig()).apply(EVENT) == {
        "model": "m",
        "gen_ai.system": "openai",  # the provider, not content
        "config": {"temperature": 0.2},
    }


def test_apply_treats_every_content_field_as_keep_does():
    policy = ContentPolicy(ContentConfig(store=True))
    kept = policy.apply(EVENT)
    assert kept["messages"] == '[{"role":"user","content":"I am [email]"}]'
    assert kept["gen_ai.prompt.0.content"] == "SSN [ssn]"
    assert kept["config"] == {"temperature": 0.2}


def test_hash_and_redact_both_requested_is_a_configuration_error():
    with pytest.raises(ValueError, match="choose one of redact"):
        ContentConfig(store=True, hash=True, redact=True)
