"""The daemon's rollup job with an injected clock: windows roll once closed plus the grace,
and what closed while the daemon was stopped is caught up on start."""

import asyncio
from datetime import datetime

from collector.daemon.service import Daemon
from collector.ledger.connection import Batch, Ledger
from collector.tiers.marks import mark_written
from collector.tiers.windows import HOUR_US
from schemas.config import CollectorConfig
from tests.collector.rollup_harness import BERLIN, call, us

H10 = us(2026, 3, 31, 10, zone=BERLIN)


def config(tmp_path):
    (tmp_path / "logs").mkdir(exist_ok=True)
    return CollectorConfig(
        timezone="Europe/Berlin",
        sources=[{"path": str(tmp_path / "logs" / "*.jsonl")}],
        ledger={"path": tmp_path / "ledger.db"},
        quarantine={"path": tmp_path / "quarantine.jsonl"},
        ingest={"parse_workers": 0},
        tiers={"grace": "5m"},
    )


def ingest(tmp_path, hour, count):
    """``count`` calls in the hour ``hour`` hours after 10:00, committed as ingest does."""
    ledger = Ledger(tmp_path / "ledger.db")
    stream = ledger.add_stream("test", f"trace-{hour}.jsonl", 1, hour, 0, b"")
    start = H10 + hour * HOUR_US
    ledger.commit(
        stream, Batch(calls=[call(start + i * 1000) for i in range(count)]), 1, mark_written
    )
    ledger.close()


def run_once(tmp_path, now_us):
    """Start the daemon at ``now_us``, wait for its first rollup, stop it."""
    daemon = Daemon(config(tmp_path), clock=lambda: datetime.fromtimestamp(now_us / 1e6, BERLIN))

    async def main():
        task = asyncio.create_task(daemon.main())
        await asyncio.sleep(0)  # main() runs up to its first await: the jobs are scheduled
        await asyncio.wait_for(daemon.tiers.rolled.wait(), 30)
        daemon.request_stop()
        await task

    asyncio.run(main())


def hourly(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    rows = ledger.db.execute(
        "SELECT window_start_us, requests FROM rollups WHERE tier = '1h' ORDER BY 1"
    ).fetchall()
    days = ledger.db.execute("SELECT count(*) FROM rollups WHERE tier = '1d'").fetchone()[0]
    ledger.close()
    return [((start - H10) // HOUR_US, n) for start, n in rows], days


def test_stopped_across_window_closes_then_caught_up_on_start(tmp_path):
    ingest(tmp_path, 0, 3)
    run_once(tmp_path, H10 + HOUR_US // 2)  # 10:30: the 10:00 hour is still open
    assert hourly(tmp_path) == ([], 0)
    for hour in (1, 2, 3):  # written while the daemon was down
        ingest(tmp_path, hour, hour + 1)
    run_once(tmp_path, H10 + 4 * HOUR_US + 3 * 60_000_000)  # 14:03: 13:00 waits for its grace
    assert hourly(tmp_path) == ([(0, 3), (1, 2), (2, 3)], 0)
    run_once(tmp_path, us(2026, 4, 1, 0, 6, zone=BERLIN))
    assert hourly(tmp_path) == ([(0, 3), (1, 2), (2, 3), (3, 4)], 1)
