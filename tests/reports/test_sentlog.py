"""The sent-log's writes commit on their own: inside a caller's transaction they are refused,
since they would commit its half-done work."""

import pytest

from alerting.db import TransactionMisuse, transaction
from collector.ledger.connection import Ledger
from reports import sentlog
from reports.sentlog import Channel

T0 = 1_795_000_000_000_000
KEY = ("daily", "2026-11-20")


@pytest.fixture
def db(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield ledger.db
    ledger.close()


def test_a_period_is_queued_once_and_its_channels_marked(db):
    assert sentlog.open_once(db, *KEY, [Channel.FILES, Channel.EMAIL], T0)
    assert not sentlog.open_once(db, *KEY, [Channel.FILES], T0 + 1)
    sentlog.mark_sent(db, KEY, Channel.FILES, T0)
    sentlog.mark_failed(db, KEY, Channel.EMAIL, "smtp down", T0 + 60_000_000)
    assert sentlog.due(db, T0) == {}
    assert sentlog.due(db, T0 + 60_000_000) == {KEY: [Channel.EMAIL]}


WRITES = {
    "open_once": lambda db: sentlog.open_once(db, *KEY, [Channel.FILES], T0),
    "mark_sent": lambda db: sentlog.mark_sent(db, KEY, Channel.FILES, T0),
    "mark_failed": lambda db: sentlog.mark_failed(db, KEY, Channel.FILES, "down", T0),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_sent_log_write_inside_a_transaction_is_refused(db, write):
    with pytest.raises(TransactionMisuse, match="commits on its own"), transaction(db):
        db.execute("INSERT INTO report_log VALUES ('weekly', 'w', 'files', 0, 0, NULL, 0, NULL)")
        write(db)
    assert db.execute("SELECT count(*) FROM report_log").fetchone() == (0,)
