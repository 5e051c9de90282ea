"""Epoch microseconds in exact integer arithmetic: float seconds lose microseconds far from
1970, which moved the end of a silence set for a far date."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.clock import from_us, to_us, us
from alerting.silences import Silences
from collector.ledger.connection import Ledger
from schemas.alerting import Silence

EPOCH_DAY = date(1970, 1, 1).toordinal()
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def exact_us(moment: datetime) -> int:
    """Microseconds since the epoch, counted field by field (no datetime arithmetic)."""
    days = moment.toordinal() - EPOCH_DAY
    seconds = (moment.hour * 60 + moment.minute) * 60 + moment.second
    return (days * 86_400 + seconds) * 1_000_000 + moment.microsecond


@given(moment=st.datetimes(timezones=st.just(UTC)))
def test_to_us_and_from_us_are_exact_over_the_whole_range(moment):
    assert to_us(moment) == exact_us(moment)
    assert from_us(to_us(moment)) == moment
    assert to_us(moment.replace(tzinfo=None)) == exact_us(moment)  # naive is UTC


@given(delta=st.timedeltas(min_value=timedelta(0)))
def test_us_of_a_duration_is_exact(delta):
    assert us(delta) == (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    ledger = Ledger(tmp_path_factory.mktemp("silences") / "l.db")
    yield ledger.db
    ledger.close()


@given(end=moments)
def test_a_configured_silence_ends_at_its_exact_microsecond(db, end):
    silences = Silences([Silence(matchers={"alertname": "Errors"}, ends_at=end)])
    labels = {"alertname": "Errors"}
    assert silences.cover(db, labels, exact_us(end) - 1)
    assert not silences.cover(db, labels, exact_us(end))
