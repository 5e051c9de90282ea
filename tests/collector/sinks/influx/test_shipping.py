"""The daemon's InfluxDB side pauses reading when the outbox is full, and says so once."""

import logging
import socket
from zoneinfo import ZoneInfo

from collector.ingest.pipeline import build_tailer
from collector.ingest.tailing import Source, TailEnd
from collector.ledger.connection import Ledger
from collector.sinks.influx.shipping import Shipper
from schemas.config import CollectorConfig


def unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_for(tmp_path, max_pending):
    return CollectorConfig(
        ledger={"path": tmp_path / "ledger.db"},
        quarantine={"path": tmp_path / "q.jsonl"},
        ingest={"parse_workers": 0},
        tiers={"retention": {"raw": "forever"}},
        influx={
            "url": f"http://127.0.0.1:{unused_port()}",
            "org": "llm",
            "token": "s3cret-token-value",
            "create_buckets": False,
            "max_pending": max_pending,
            "timeout": "1s",
        },
    )


def ingest(config, tmp_path, count):
    trace = tmp_path / "trace.jsonl"
    with trace.open("a") as out:
        for n in range(count):
            out.write(f'{{"timestamp": {1763600000 + n}, "model": "m", "call_id": "c{n}"}}\n')
    ledger = Ledger(config.ledger.path)
    tailer = build_tailer(config, ledger, [Source(str(trace), ZoneInfo("UTC"))])
    tailer.scan()
    tailer.poll(TailEnd.IF_COMPLETE)
    tailer.close()
    ledger.close()


def test_reading_pauses_at_the_bound_and_warns_once_per_level(tmp_path, caplog):
    config = config_for(tmp_path, max_pending=1000)
    shipper = Shipper(config)  # cursors start at the ledger's (empty) end
    try:
        ingest(config, tmp_path, 850)
        assert shipper._drain_some() == 0  # nobody listens: nothing acknowledged
        with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.writer"):
            assert not shipper.reading_paused()
            assert not shipper.reading_paused()
        assert [r.message for r in caplog.records if "85% full" in r.message] != []
        assert len([r for r in caplog.records if "full" in r.message]) == 1
        ingest(config, tmp_path, 200)
        shipper._drain_some()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.writer"):
            assert shipper.reading_paused()
            assert shipper.reading_paused()
        assert len([r for r in caplog.records if "reading paused" in r.message]) == 1
        assert "outbox_pending=1050" in shipper.status()
        assert "s3cret" not in caplog.text
        assert "s3cret" not in shipper.status()
    finally:
        shipper.close()
