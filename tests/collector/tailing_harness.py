"""Shared by the tailing tests: trace lines with unique call ids, a fake clock, a tailer on a
real SQLite ledger in a temp dir, and readers of what ended up in the ledger."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from collector.ingest.pipeline import build_tailer, configured_sources
from collector.ingest.tailing import Tailer
from collector.ledger.connection import Ledger
from schemas.config import CollectorConfig

ROTATE_WAIT = 5.0
_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_MODELS = (
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
)


def event(n: int, **extra) -> dict:
    """A realistic llm_call; the timestamp (first) and call_id are unique per ``n``."""
    model, provider = _MODELS[n % len(_MODELS)]
    data = {
        "timestamp": (_T0 + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z"),
        "model": model,
        "provider": provider,
        "task_type": "chat",
        "input_tokens": 100 + n % 900,
        "output_tokens": 10 + n % 90,
        "cost_usd": 0.0001 * (n % 50),
        "latency_ms": 50.0 + n % 3000,
        "tenant_id": f"tenant-{n % 7}",
        "call_id": f"c{n:08d}",
    }
    data.update(extra)
    return data


def line(n: int, ending: bytes = b"\n", **extra) -> bytes:
    return orjson.dumps(event(n, **extra)) + ending


def lines(numbers, ending: bytes = b"\n") -> bytes:
    return b"".join(line(n, ending) for n in numbers)


def cid(n: int) -> str:
    return f"c{n:08d}"


def cids(numbers) -> Counter:
    return Counter(cid(n) for n in numbers)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


class Clock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(root: Path, pattern: str, start_at: str = "beginning", **ingest):
    ingest.setdefault("rescan_interval", f"{ROTATE_WAIT}s")
    return CollectorConfig(
        sources=[{"path": str(root / pattern), "start_at": start_at}],
        ledger={"path": root / "state" / "ledger.db"},
        quarantine={"path": root / "state" / "quarantine.jsonl", "keep_bytes": 256},
        ingest=ingest,
    )


def make_tailer(config: CollectorConfig, ledger: Ledger, clock: Clock) -> Tailer:
    """`collector.ingest.pipeline.build_tailer` with the fake clock."""
    return build_tailer(config, ledger, configured_sources(config), clock=clock)


class Rig:
    """One source directory, one ledger, one tailer (replaceable to simulate a restart)."""

    def __init__(self, root: Path, pattern: str = "logs/trace.jsonl", **options) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.trace = self.logs / "trace.jsonl"
        self.config = make_config(root, pattern, **options)
        self.clock = Clock()
        self.ledger = Ledger(self.config.ledger.path)
        self.tailer = make_tailer(self.config, self.ledger, self.clock)

    def cycle(self) -> None:
        """One daemon tick: rescan, then read."""
        self.tailer.scan()
        self.tailer.poll()

    def restart(self) -> None:
        """Stop the tailer and the ledger connection, start new ones on the same files."""
        self.tailer.close()
        self.tailer.quarantine.close()
        self.ledger.close()
        self.ledger = Ledger(self.config.ledger.path)
        self.tailer = make_tailer(self.config, self.ledger, self.clock)

    def close(self) -> None:
        self.tailer.close()
        self.tailer.quarantine.close()
        self.ledger.close()

    def call_ids(self) -> Counter:
        return Counter(row[0] for row in self.ledger.db.execute("SELECT call_id FROM calls"))

    def call_ids_of(self, path: Path) -> Counter:
        """Call ids read from the stream now known under ``path``."""
        rows = self.ledger.db.execute(
            "SELECT c.call_id FROM calls c JOIN streams s ON s.id = c.stream_id WHERE s.path = ?",
            (str(path),),
        )
        return Counter(row[0] for row in rows)

    def streams(self) -> dict[str, tuple[str, int]]:
        """path -> (state, offset) of every stream ever followed."""
        rows = self.ledger.db.execute("SELECT path, state, offset FROM streams ORDER BY id")
        return {path: (state, offset) for path, state, offset in rows}

    def quarantined(self) -> list[dict]:
        path = self.config.quarantine.path
        if not path.exists():
            return []
        return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]

    def totals(self) -> dict[str, int]:
        """The ledger's counters, checked to add up and to match the calls table."""
        totals = self.ledger.totals()
        assert totals["lines"] == totals["events"] + totals["quarantined"] + totals["skipped"]
        (calls,) = self.ledger.db.execute("SELECT count(*) FROM calls").fetchone()
        (scores,) = self.ledger.db.execute("SELECT count(*) FROM scores").fetchone()
        assert totals["events"] == calls + scores
        return totals
