"""Shared by the report tests: a ledger of seeded random calls and scores in Europe/Berlin,
partly rolled into the tiers, and the plain computations a report's numbers must equal."""

from __future__ import annotations

import random
import ssl
import statistics
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import trustme
from aiosmtpd.controller import Controller

from collector.readers.reports import LedgerReportReader
from reports.archive import Rendered
from reports.charts import draw
from reports.gather import gather
from reports.model import Report
from reports.periods import Period
from tests.alerting.test_email import Inbox, authenticate, free_port
from tests.collector.rollup_harness import Tiers, call, score, us

BERLIN = ZoneInfo("Europe/Berlin")
DIMS = ["model", "provider", "task_type", "status", "tenant_id"]
MODELS = {"m-big": ("acme", 0.02), "m-mid": ("acme", 0.005), "m-small": ("beta", 0.001)}
UNPRICED = "m-custom"


def local_us(*args) -> int:
    return us(*args, zone=BERLIN)


def make_events(start_us: int, end_us: int, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """Calls (every 5-15 minutes, a few unpriced and failing) and quality scores."""
    rng = random.Random(seed)
    calls, scores = [], []
    ts = start_us
    while ts < end_us:
        model = rng.choice([*MODELS, *MODELS, UNPRICED])
        provider, price = MODELS.get(model, ("self", None))
        tokens_in, tokens_out = rng.randint(100, 4000), rng.randint(10, 800)
        calls.append(
            {
                "ts_us": ts,
                "model": model,
                "provider": provider,
                "task_type": rng.choice(["chat", "extract", "summarize"]),
                "tenant_id": rng.choice(["acme", "globex", "initech", "umbrella"]),
                "status": "error" if rng.random() < 0.06 else "ok",
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
                "cache_read_tokens": rng.randint(0, tokens_in // 2),
                "cost_usd": None if price is None else price * (tokens_in + 4 * tokens_out) / 1000,
                "price_source": None if price is None else 1,
                "latency_ms": round(rng.lognormvariate(6.5, 0.6), 1),
                "quality_score": round(rng.random(), 2) if rng.random() < 0.3 else None,
            }
        )
        if rng.random() < 0.2:
            scores.append({"ts_us": ts + 1, "value": round(rng.random(), 2), "model": model})
        ts += rng.randint(5, 15) * 60_000_000
    return calls, scores


def ledger_with(tmp_path, calls: list[dict], scores: list[dict]) -> Tiers:
    tiers = Tiers(tmp_path, zone=BERLIN, dims=DIMS)
    tiers.add(
        calls=[call(c["ts_us"], **{k: v for k, v in c.items() if k != "ts_us"}) for c in calls],
        scores=[score(s["ts_us"], s["value"], model=s["model"]) for s in scores],
    )
    return tiers


def reader_of(tiers: Tiers) -> LedgerReportReader:
    return LedgerReportReader(tiers.db, BERLIN, DIMS)


def expected(calls: list[dict], scores: list[dict], start_us: int, end_us: int) -> dict:
    """The figures of one span, computed plainly from the events."""
    inside = [c for c in calls if start_us <= c["ts_us"] < end_us]
    priced = [c["cost_usd"] for c in inside if c["cost_usd"] is not None]
    latencies = [c["latency_ms"] for c in inside]
    quality = [c["quality_score"] for c in inside if c["quality_score"] is not None]
    quality += [s["value"] for s in scores if start_us <= s["ts_us"] < end_us]
    return {
        "requests": len(inside),
        "input_tokens": sum(c["input_tokens"] for c in inside),
        "output_tokens": sum(c["output_tokens"] for c in inside),
        "cache_read_tokens": sum(c["cache_read_tokens"] for c in inside),
        "cost_usd": sum(priced) if priced else None,
        "unpriced_requests": len(inside) - len(priced),
        "error_rate": sum(c["status"] == "error" for c in inside) / len(inside),
        "latency_ms_mean": statistics.fmean(latencies),
        "latencies": latencies,
        "quality_mean": statistics.fmean(quality),
    }


def when(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def rendered_day(tmp_path) -> Rendered:
    """The drawn daily report of 2026-11-20 over two days of events (a ledger under tmp_path)."""
    calls, scores = make_events(local_us(2026, 11, 19), local_us(2026, 11, 21))
    tiers = ledger_with(tmp_path, calls, scores)
    report = gather(reader_of(tiers), Period.containing("daily", date(2026, 11, 20), BERLIN), 5)
    tiers.close()
    return Rendered(report, draw(report))


HOSTILE_MODEL = "<script>alert(1)</script> <!channel> *x* [y](http://evil.example) | & z"
HOSTILE_TENANT = "acme|evil\n# heading"


def hostile_day(tmp_path) -> Report:
    """The daily report of 2026-11-20 with a model and a tenant named to break Markdown, HTML
    and Slack: the model costs most, and some of its calls are unpriced."""
    calls, scores = make_events(local_us(2026, 11, 19), local_us(2026, 11, 21))
    for index, row in enumerate(calls[::4]):
        priced = index % 5 != 0
        row.update(model=HOSTILE_MODEL, tenant_id=HOSTILE_TENANT)
        row.update(cost_usd=5.0 if priced else None, price_source=1 if priced else None)
    tiers = ledger_with(tmp_path, calls, scores)
    report = gather(reader_of(tiers), Period.containing("daily", date(2026, 11, 20), BERLIN), 5)
    tiers.close()
    return report


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port that needs STARTTLS and AUTH
    (alerts / s3cret) with a trustme certificate; it can be stopped and started again."""

    def __init__(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.tls)
        self.ca_file = tmp_path / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.tls,
            require_starttls=True,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=True,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def receiver(self) -> dict:
        """The ``email`` settings of a receiver that sends through this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": "alerts",
            "password": "s3cret",
            "sender": "reports@example.com",
            "to": ["alerts-only@example.com"],
            "ca_file": str(self.ca_file),
            "timeout": "3s",
        }
