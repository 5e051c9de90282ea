"""The outbox and bucket set-up against a local HTTP server that answers like InfluxDB 2.x.

The server records every request (gzip bodies decompressed) and plays scripted answers to
``/api/v2/write``: 429/503 with Retry-After, 500, 400 with InfluxDB's JSON error, 401. It also
serves the buckets and orgs API as InfluxDB does, so the requests `influxdb-client` sends for
`InfluxWriter.apply_buckets` can be checked. The outbox runs on an injected clock: no sleeps.
"""

import gzip
import json
import logging
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from collector.cli.main import main
from collector.ingest.pipeline import build_tailer
from collector.ingest.tailing import Source, TailEnd
from collector.ledger import events
from collector.ledger.connection import Ledger
from collector.ledger.events import CALL_COLUMNS
from collector.retrying import Backoff
from collector.sinks.influx.lineprotocol import LineEncoder
from collector.sinks.influx.outbox import Outbox, dead_letters, raw_feeds
from collector.sinks.influx.shipping import Shipper
from collector.sinks.influx.writer import InfluxWriter, Refused, RetryLater
from schemas.config import CollectorConfig, InfluxConfig, TiersConfig
from schemas.errors import PermanentError, RetryableError

TOKEN = "s3cr3t-T0KEN-never-in-logs"
INSTANCE = "collector-1"
ORG = {"id": "0f1e2d3c4b5a6978", "name": "llm"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
DAY = 86400
TIER_RETENTION = {"llm_raw": 7 * DAY, "llm_1h": 30 * DAY, "llm_1d": 365 * DAY, "llm_1mo": 0}


# ----- a server that answers like InfluxDB 2.x --------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    body: bytes  # decompressed when sent gzip'd

    def json(self):
        return json.loads(self.body)

    def lines(self):
        return self.body.decode().split("\n")


def reply(status, body=None, **headers):
    payload = b"" if body is None else json.dumps(body).encode()
    if body is not None:
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
    return status, {k.replace("_", "-"): str(v) for k, v in headers.items()}, payload


def influx_error(status, code, message, **headers):
    return reply(status, {"code": code, "message": message}, **headers)


@dataclass
class InfluxStub:
    requests: list = field(default_factory=list)
    write_script: deque = field(default_factory=deque)
    buckets: dict = field(default_factory=dict)  # name -> bucket JSON

    def script(self, *responses):
        """Answers for the next writes, in order (a callable is called, while the write
        waits, for its answer); afterwards every write gets 204."""
        self.write_script.extend(responses)

    def writes(self):
        return [r for r in self.requests if r.path == "/api/v2/write"]

    def add_bucket(self, name, every_seconds, rules=None):
        number = len(self.buckets) + 1
        self.buckets[name] = {
            "id": f"{number:016x}",
            "orgID": ORG["id"],
            "type": "user",
            "name": name,
            "retentionRules": rules if rules is not None else _rules(every_seconds),
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
            "labels": [],
            "links": {"self": f"/api/v2/buckets/{number:016x}", "org": f"/api/v2/orgs/{ORG['id']}"},
        }
        return self.buckets[name]

    def answer(self, r: Request):
        self.requests.append(r)
        if r.method == "POST" and r.path == "/api/v2/write":
            answer = self.write_script.popleft() if self.write_script else reply(204)
            return answer() if callable(answer) else answer
        if r.path in ("/ping", "/health"):
            return reply(204)
        if r.method == "GET" and r.path == "/api/v2/orgs":
            name = r.query.get("org", [None])[0]
            if name in (None, ORG["name"]):
                return reply(200, {"orgs": [ORG]})
            return influx_error(404, "not found", f'organization name "{name}" not found')
        if r.method == "GET" and r.path == "/api/v2/buckets":
            name = r.query.get("name", [None])[0]
            found = [b for b in self.buckets.values() if name in (None, b["name"])]
            return reply(200, {"links": {"self": "/api/v2/buckets"}, "buckets": found})
        if r.method == "POST" and r.path == "/api/v2/buckets":
            data = r.json()
            if data["name"] in self.buckets:
                message = f"bucket with name {data['name']} already exists"
                return influx_error(422, "conflict", message)
            if data.get("orgID") != ORG["id"]:
                return influx_error(400, "invalid", "orgID is invalid")
            bucket = self.add_bucket(data["name"], None, rules=data.get("retentionRules", []))
            return reply(201, bucket)
        if r.method == "PATCH" and r.path.startswith("/api/v2/buckets/"):
            bucket_id = r.path.rsplit("/", 1)[1]
            bucket = next((b for b in self.buckets.values() if b["id"] == bucket_id), None)
            if bucket is None:
                return influx_error(404, "not found", "bucket not found")
            data = r.json()
            if "retentionRules" in data:
                bucket["retentionRules"] = data["retentionRules"]
            return reply(200, bucket)
        return influx_error(404, "not found", "path not found")


def _rules(every_seconds):
    return [{"type": "expire", "everySeconds": every_seconds, "shardGroupDurationSeconds": 3600}]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as InfluxDB
    disable_nagle_algorithm = True  # headers and body go in two writes

    def _handle(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        url = urlsplit(self.path)
        request = Request(self.command, url.path, parse_qs(url.query), headers, body)
        with self.server.lock:
            status, reply_headers, payload = self.server.stub.answer(request)
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.stub = InfluxStub()
    server.lock = threading.Lock()
    server.stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# ----- an outbox on a real ledger, with an injected clock -----------------------------------


class FakeClock:
    def __init__(self, now=5000.0):
        self.now = now

    def __call__(self):
        return self.now


def iso(ts):
    return ts.isoformat().replace("+00:00", "Z")


def ts_us(ts):
    return (ts - EPOCH) // timedelta(microseconds=1)


def call(i, **extra):
    event = {
        "timestamp": iso(T0 + timedelta(milliseconds=i * 250, microseconds=7)),
        "model": "gpt-4o-mini",
        "provider": "openai",
        "task_type": "chat",
        "input_tokens": 100 + i,
        "output_tokens": 10,
        "cost_usd": 0.001,
        "latency_ms": 12.5,
        "user_id": "user-42",
        "trace_id": f"trace-{i}",
        "call_id": f"call-{i:04d}",
    }
    event.update(extra)
    return event


def config_dict(tmp_path, url, **influx):
    return {
        "sources": [],
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
        "ingest": {"parse_workers": 0},
        "tiers": {"retention": {"raw": "forever"}},
        "influx": {
            "url": url,
            "org": ORG["name"],
            "token": TOKEN,
            "batch_size": 10,
            "instance": INSTANCE,
            **influx,
        },
    }


def config_file(tmp_path, url, **influx):
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, url, **influx)))
    return str(path)


class Rig:
    """Trace file -> real tailer -> real ledger -> Outbox -> InfluxWriter -> the stub."""

    def __init__(self, tmp_path, url, batch_size=10):
        self.config = CollectorConfig(**config_dict(tmp_path, url, batch_size=batch_size))
        self.trace = tmp_path / "trace.jsonl"
        self.trace.touch()
        self.ledger = Ledger(self.config.ledger.path)
        self.clock = FakeClock()
        self.writer = InfluxWriter(self.config.influx)
        encoder = LineEncoder(self.config.dimensions, self.config.influx.instance)
        self.feeds = raw_feeds("llm_raw", encoder, None)
        self.outbox = Outbox(
            self.ledger, self.writer, self.feeds, batch_size=batch_size, clock=self.clock
        )
        self.tailer = build_tailer(
            self.config, self.ledger, [Source(str(self.trace), ZoneInfo("UTC"))]
        )
        self.tailer.scan()

    def add(self, events):
        with self.trace.open("ab") as file:
            file.writelines(orjson.dumps(e) + b"\n" for e in events)
        self.tailer.poll(TailEnd.IF_COMPLETE)

    def cursor(self, name="influx:calls"):
        return self.outbox.cursor(next(f for f in self.feeds if f.name == name))

    def drain(self, limit=100):
        """drain_once until nothing is pending, moving the clock to each retry time."""
        sent = 0
        for _ in range(limit):
            if not sum(self.outbox.pending().values()):
                return sent
            self.clock.now = max(self.clock.now, self.outbox.stats.retry_at)
            sent += self.outbox.drain_once()
        raise AssertionError(f"still pending: {self.outbox.pending()}")

    def close(self):
        self.tailer.close()
        self.writer.close()
        self.ledger.close()


@pytest.fixture
def rig(tmp_path, stub):
    rig = Rig(tmp_path, stub.url)
    yield rig
    rig.close()


def tokens_sent(request):
    """input_tokens of each line in a write body, in order."""
    return [int(line.split("input_tokens=")[1].split("i")[0]) for line in request.lines()]


# ----- the write request ---------------------------------------------------------------------


def test_a_batch_is_one_gzip_line_protocol_write_with_the_token(rig, stub):
    rig.add(
        [call(i) for i in range(12)]
        + [
            call(
                99, model="acme-finetune-v3", provider="self-hosted", status="error", cost_usd=None
            )
        ]
    )

    assert rig.outbox.drain_once() == 10
    assert rig.outbox.drain_once() == 3
    assert rig.outbox.drain_once() == 0

    first, second = stub.writes()
    assert first.method == "POST"
    assert first.query == {"org": ["llm"], "bucket": ["llm_raw"], "precision": ["ns"]}
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["authorization"] == f"Token {TOKEN}"
    assert tokens_sent(first) == list(range(100, 110))
    assert tokens_sent(second) == [110, 111, 199]
    stamp = ts_us(T0) * 1000 + 1  # ledger row 1; row ids break same-instant ties
    assert first.lines()[0] == (
        "llm_call,instance=collector-1,model=gpt-4o-mini,provider=openai,status=ok,task_type=chat "
        "input_tokens=100i,output_tokens=10i,total_tokens=110i,cost_usd=0.001,"
        f"latency_ms=12.5,error=0i {stamp + 7000}"
    )
    assert second.lines()[-1].startswith(
        "llm_call,instance=collector-1,model=acme-finetune-v3,provider=self-hosted,status=error,"
        "task_type=chat "
        "input_tokens=199i,output_tokens=10i,total_tokens=209i,latency_ms=12.5,error=1i,"
        "unpriced=1i "
    )
    assert b"user-42" not in first.body + second.body  # ids are never tags nor fields
    assert b"trace-" not in first.body + second.body
    assert rig.cursor() == 13
    assert rig.outbox.pending() == {"influx:calls": 0, "influx:scores": 0}
    assert rig.outbox.stats.sent_points == 13


def test_scores_go_out_as_llm_score_with_name_and_dimension_tags(rig, stub):
    rig.add(
        [
            {
                "type": "score",
                "timestamp": iso(T0),
                "name": "user_feedback",
                "value": 0.75,
                "model": "gpt-4o-mini",
                "task_type": "chat",
                "trace_id": "trace-1",
                "scenario": "checkout",
            }
        ]
    )

    assert rig.outbox.drain_once() == 1

    (write,) = stub.writes()
    assert write.lines() == [
        f"llm_score,instance=collector-1,model=gpt-4o-mini,name=user_feedback,task_type=chat"
        f" value=0.75 "
        f"{ts_us(T0) * 1000 + 1}"
    ]
    assert rig.cursor("influx:scores") == 1


# ----- Retry-After, backoff, dead letters ---------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "wait"),
    [
        (influx_error(429, "too many requests", "rate limited", Retry_After=7), 7),
        (influx_error(503, "unavailable", "shutting down", Retry_After=3), 3),
    ],
)
def test_retry_after_is_honoured_then_the_same_batch_is_sent_again(rig, stub, answer, wait):
    stub.script(answer)
    rig.add([call(i) for i in range(10)])
    start = rig.clock.now

    assert rig.outbox.drain_once() == 0
    assert rig.outbox.stats.retry_at == start + wait
    assert str(answer[0]) in rig.outbox.stats.last_error

    rig.clock.now = start + wait - 0.001
    assert rig.outbox.drain_once() == 0
    assert len(stub.writes()) == 1  # nothing sent before the server's time
    assert rig.cursor() == 0

    rig.clock.now = start + wait
    assert rig.outbox.drain_once() == 10
    refused, accepted = stub.writes()
    assert accepted.body == refused.body
    assert rig.cursor() == 10
    assert rig.outbox.stats.last_error is None
    assert dead_letters(rig.ledger) == []


@pytest.mark.parametrize(
    ("max_backoff", "cap"), [({}, 60), ({"max_backoff": "5m"}, 300)], ids=["default", "5m"]
)
def test_a_retry_after_past_the_backoff_maximum_is_capped_and_the_status_says_so(
    tmp_path, rig, stub, caplog, max_backoff, cap
):
    """A 429 asking for a day waits the backoff maximum, not a day, with a healthy server."""
    shipper = Shipper(CollectorConfig(**config_dict(tmp_path, stub.url, **max_backoff)))
    shipper.outbox.clock = rig.clock  # the injected clock: no sleeping
    stub.script(influx_error(429, "too many requests", "quota exceeded", Retry_After=86400))
    rig.add([call(i) for i in range(10)])
    start = rig.clock.now
    try:
        with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.outbox"):
            assert shipper._drain_some() == 0
        assert shipper.outbox.stats.retry_at == start + cap
        said = f"server asked to wait 86400 s; waiting {cap} s (influx.max_backoff)"
        assert f"retry_after_capped='{said}'" in shipper.status()
        assert f"retrying in {cap}.0 s (Retry-After 86400 s cut to influx.max_backoff)" in (
            caplog.text
        )

        rig.clock.now = start + cap - 0.001
        assert shipper._drain_some() == 0
        assert len(stub.writes()) == 1  # still waiting: no request

        rig.clock.now = start + cap
        assert shipper._drain_some() == 10  # the healthy server takes it: 204
        refused, accepted = stub.writes()
        assert accepted.body == refused.body
        assert rig.cursor() == 10
        assert "retry_after_capped" not in shipper.status()
        assert "last_error" not in shipper.status()
    finally:
        shipper.close()


@given(
    cap=st.floats(min_value=1, max_value=3600),
    answers=st.lists(st.none() | st.floats(min_value=0, max_value=1e7), max_size=30),
)
def test_no_wait_exceeds_the_cap_and_a_shorter_retry_after_is_kept_exactly(cap, answers):
    backoff = Backoff(cap=cap)
    for retry_after in answers:
        delay = backoff.next(retry_after)
        assert 0 <= delay <= cap
        if retry_after is not None and retry_after <= cap:
            assert delay == retry_after


def test_5xx_backs_off_exponentially_up_to_the_cap_and_success_resets_it(rig, stub):
    delays = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    stub.script(*[influx_error(500, "internal error", "boom")] * len(delays))
    rig.add([call(i) for i in range(10)])

    for delay in delays:
        before = rig.clock.now
        assert rig.outbox.drain_once() == 0
        assert rig.outbox.stats.retry_at == before + delay
        rig.clock.now = before + delay / 2
        assert rig.outbox.drain_once() == 0  # waiting: no request
        rig.clock.now = rig.outbox.stats.retry_at
    assert len(stub.writes()) == len(delays)  # one request per attempt, no hidden retries
    assert rig.outbox.stats.failed_attempts == len(delays)

    assert rig.outbox.drain_once() == 10
    assert len({w.body for w in stub.writes()}) == 1  # always the same batch
    assert rig.cursor() == 10

    stub.script(influx_error(502, "bad gateway", "proxy"))
    rig.add([call(i) for i in range(10, 20)])
    before = rig.clock.now
    assert rig.outbox.drain_once() == 0
    assert rig.outbox.stats.retry_at == before + 1  # backoff starts over


def test_a_400_is_dead_lettered_with_the_servers_message_and_the_queue_goes_on(tmp_path, rig, stub):
    refusal = "partial write: field type conflict"
    stub.script(reply(204), influx_error(400, "invalid", refusal), reply(204))
    rig.add([call(i) for i in range(30)])

    assert rig.outbox.drain_once() == 10
    assert rig.outbox.drain_once() == 0
    assert rig.outbox.drain_once() == 10  # not blocked, no delay

    (letter,) = dead_letters(rig.ledger)
    assert letter["cursor"] == "influx:calls"
    assert (letter["first_position"], letter["last_position"]) == (11, 20)
    assert letter["status"] == 400
    assert letter["message"] == f"HTTP 400: {refusal}"
    assert rig.cursor() == 30
    assert rig.outbox.stats.dead_letters == 1
    assert rig.outbox.stats.retry_at == 0
    _, refused, third = stub.writes()
    assert tokens_sent(refused) == list(range(110, 120))
    assert tokens_sent(third) == list(range(120, 130))

    # refused again: the letter stays, with the new message
    stub.script(influx_error(422, "unprocessable entity", "still conflicting"))
    assert rig.outbox.retry_dead_letters() == (0, 1)
    (letter,) = dead_letters(rig.ledger)
    assert (letter["status"], letter["message"]) == (422, "HTTP 422: still conflicting")
    assert letter["retried_us"] is not None

    # `influx dead-letters --retry`: accepted this time, and removed
    result = CliRunner().invoke(
        main, ["influx", "dead-letters", "--retry", "--config", config_file(tmp_path, stub.url)]
    )
    assert result.exit_code == 0, result.output
    assert "sent 1 dead letter(s); 0 refused again" in result.output
    assert "no dead letters" in result.output
    assert dead_letters(rig.ledger) == []
    resent = stub.writes()[-1]
    assert resent.body == refused.body  # the very batch that was refused
    assert len(stub.writes()) == 5
    assert rig.cursor() == 30


def test_a_refused_batch_after_a_gap_in_the_rows_is_set_aside_once(rig, stub):
    """Positions have gaps (retention takes late events, rollup sequences are shared by the
    tiers): the cursor moves past a refused batch from where the batch began."""
    rig.add([call(i) for i in range(10)])
    rig.drain()
    rig.add([call(i) for i in range(10, 20)])
    with rig.ledger.transaction() as db:
        events.delete(db, "calls", "id IN (11, 12)", ())
    refused = influx_error(400, "invalid", "partial write: field type conflict")
    stub.script(refused, refused, refused)
    for _ in range(3):
        rig.outbox.drain_once()
    [letter] = dead_letters(rig.ledger)
    assert (letter["first_position"], letter["last_position"]) == (13, 20)
    assert rig.cursor() == 20
    assert len(stub.writes()) == 2


def test_dead_letters_lists_the_refused_batches(tmp_path, rig, stub):
    stub.script(influx_error(400, "invalid", "unable to parse 'llm_call x': bad timestamp"))
    rig.add([call(i) for i in range(5)])
    rig.outbox.drain_once()

    result = CliRunner().invoke(
        main, ["influx", "dead-letters", "--config", config_file(tmp_path, stub.url)]
    )

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "influx:calls" in text and "1..5" in text and "400" in text
    assert "bad timestamp" in text
    assert len(stub.writes()) == 1  # listing sends nothing


def test_retrying_dead_letters_while_the_server_is_busy_keeps_them(tmp_path, rig, stub):
    stub.script(
        influx_error(400, "invalid", "partial write: field type conflict"),
        influx_error(503, "unavailable", "shutting down", Retry_After=5),
    )
    rig.add([call(i) for i in range(5)])
    rig.outbox.drain_once()
    command = ["influx", "dead-letters", "--retry", "--config", config_file(tmp_path, stub.url)]

    result = CliRunner().invoke(main, command)

    assert result.exit_code == 1  # a message, not a traceback
    assert not isinstance(result.exception, RetryLater)
    text = " ".join(result.output.split())
    assert "HTTP 503: shutting down" in text and "dead letters are kept" in text
    assert [letter["status"] for letter in dead_letters(rig.ledger)] == [400]

    result = CliRunner().invoke(main, command)

    assert result.exit_code == 0, result.output
    assert dead_letters(rig.ledger) == []


@pytest.mark.parametrize(
    "answer",
    [
        influx_error(401, "unauthorized", "unauthorized access"),
        influx_error(403, "forbidden", "insufficient permissions for write"),
        influx_error(404, "not found", 'bucket "llm_raw" not found'),
    ],
)
def test_a_refused_token_or_missing_bucket_waits_instead_of_dead_lettering(rig, stub, answer):
    stub.script(answer)
    rig.add([call(i) for i in range(10)])
    start = rig.clock.now

    assert rig.outbox.drain_once() == 0

    assert dead_letters(rig.ledger) == []
    assert rig.cursor() == 0
    assert rig.outbox.stats.retry_at == start + 1
    assert json.loads(answer[2])["message"] in rig.outbox.stats.last_error
    rig.clock.now = rig.outbox.stats.retry_at  # the operator fixed it
    assert rig.outbox.drain_once() == 10
    assert rig.cursor() == 10


def test_the_token_never_appears_in_logs_or_error_messages(tmp_path, rig, stub, caplog):
    caplog.set_level(logging.DEBUG)
    stub.script(
        influx_error(401, "unauthorized", "unauthorized access"),
        influx_error(400, "invalid", "partial write: field type conflict"),
        influx_error(500, "internal error", "boom"),
        influx_error(429, "too many requests", "slow down", Retry_After=2),
    )
    errors = []
    for _ in range(4):
        try:
            rig.writer.write("llm_raw", ["llm_call,model=m input_tokens=1i 1"])
        except (RetryLater, Refused) as error:
            errors.append(error)
    with socket.socket() as closed:  # bound, never listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        dead = InfluxWriter(InfluxConfig(url=dead_url, org="llm", token=TOKEN))
        try:
            dead.write("llm_raw", ["llm_call,model=m input_tokens=1i 1"])
        except RetryLater as error:
            errors.append(error)
        finally:
            dead.close()
    assert [type(e) for e in errors] == [RetryLater, Refused, RetryLater, RetryLater, RetryLater]

    stub.script(
        influx_error(401, "unauthorized", "unauthorized access"),
        influx_error(400, "invalid", "partial write: field type conflict"),
    )
    rig.add([call(i) for i in range(20)])
    rig.drain()
    CliRunner().invoke(
        main, ["influx", "dead-letters", "--config", config_file(tmp_path, stub.url)]
    )

    assert all(w.headers["authorization"] == f"Token {TOKEN}" for w in stub.writes())
    assert "unauthorized access" in caplog.text  # the outbox did log the failures
    assert "field type conflict" in caplog.text
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert f"{dead_url} unreachable" in str(errors[-1])
    assert all(TOKEN not in letter["message"] for letter in dead_letters(rig.ledger))
    assert TOKEN not in repr(rig.config.masked())


# ----- deterministic timestamps ---------------------------------------------------------------


def test_the_writers_errors_are_the_shared_retryable_and_permanent_kinds(writer, stub):
    """Every delivery path keeps its work on a `RetryableError` and sets it aside on a
    `PermanentError`: the InfluxDB writer's errors are those."""
    stub.script(
        influx_error(429, "too many requests", "slow down", Retry_After=7),
        influx_error(422, "unprocessable entity", "points beyond retention"),
    )
    point = ["llm_call,model=m input_tokens=1i 1"]
    with pytest.raises(RetryableError) as busy:
        writer.write("llm_raw", point)
    assert busy.value.after == 7
    with pytest.raises(PermanentError) as refused:
        writer.write("llm_raw", point)
    assert refused.value.status == 422
    assert str(refused.value) == "HTTP 422: points beyond retention"


def test_same_instant_same_tag_events_get_distinct_timestamps(rig, stub):
    instant = T0 + timedelta(seconds=3, microseconds=456_789)
    rig.add([call(1, timestamp=iso(instant)), call(2, timestamp=iso(instant))])

    rig.drain()

    (write,) = stub.writes()
    (series_a, stamp_a), (series_b, stamp_b) = (line.rsplit(" ", 1) for line in write.lines())
    assert series_a.split(" ")[0] == series_b.split(" ")[0]  # same measurement and tags
    assert stamp_a != stamp_b
    assert int(stamp_a) // 1000 == int(stamp_b) // 1000 == ts_us(instant)


def test_a_replayed_batch_is_byte_identical(tmp_path, rig, stub):
    rig.add([call(i) for i in range(25)])
    rig.add(
        [
            {"type": "score", "timestamp": iso(T0), "name": "q", "value": 0.5, "task_type": "chat"},
            {"type": "score", "timestamp": iso(T0), "name": "q", "value": 0.9, "task_type": "chat"},
        ]
    )
    rig.drain()
    first = [w.body for w in stub.writes()]
    assert len(first) == 4  # calls 10 + 10 + 5, then the two scores

    result = CliRunner().invoke(
        main,
        [
            "influx",
            "backfill",
            "--since",
            "2025-01-01",
            "--config",
            config_file(tmp_path, stub.url),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "queued: 27 points pending" in result.output
    rig.drain()

    again = [w.body for w in stub.writes()[4:]]
    assert again == first  # byte for byte, batch for batch: a replay overwrites itself


def test_a_backfill_while_a_batch_is_in_flight_is_not_undone_by_its_acknowledgement(
    tmp_path, rig, stub
):
    """The cursor moves by compare-and-set: the acknowledged batch does not move a cursor that
    a backfill rewound meanwhile, so the backfill's points all go out."""
    rig.add([call(i) for i in range(10)])
    rig.drain()
    rig.add([call(i) for i in range(10, 20)])

    def backfill_meanwhile():
        arguments = ["influx", "backfill", "--since", "2025-01-01"]
        result = CliRunner().invoke(main, [*arguments, "--config", config_file(tmp_path, stub.url)])
        assert result.exit_code == 0, result.output
        return reply(204)

    stub.script(backfill_meanwhile)
    rig.drain()
    sent = [tokens_sent(write) for write in stub.writes()]
    assert sent == [list(range(100, 110)), list(range(110, 120))] * 2
    assert rig.cursor() == 20


# ----- rows out of the accepted time range, stored before it existed ----------------------

FAR_OFF = (datetime(3000, 1, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC))


def store_far_off_calls(rig, moments=FAR_OFF):
    """Copies of the first call at year 3000 and 1900, as an older collector stored them."""
    columns = ", ".join(c for c in CALL_COLUMNS if c != "ts_us")
    with rig.ledger.transaction() as db:
        for moment in moments:
            db.execute(
                f"INSERT INTO calls (ts_us, {columns}) SELECT ?, {columns} FROM calls WHERE id = 1",
                (ts_us(moment),),
            )


def stamps_sent(request):
    return [int(line.rsplit(" ", 1)[1]) // 1000 for line in request.lines()]


def test_a_row_out_of_range_is_skipped_and_its_batch_goes_out(rig, stub, caplog):
    rig.add([call(i) for i in range(4)])
    store_far_off_calls(rig)  # rows 5 and 6
    rig.add([call(i) for i in range(4, 8)])

    with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.lineprotocol"):
        assert rig.outbox.drain_once() == 8

    (write,) = stub.writes()
    assert tokens_sent(write) == list(range(100, 108))
    assert all(ts_us(T0) <= stamp < ts_us(T0 + timedelta(days=1)) for stamp in stamps_sent(write))
    assert dead_letters(rig.ledger) == []
    assert rig.cursor() == 10
    assert rig.outbox.pending() == {"influx:calls": 0, "influx:scores": 0}
    assert rig.outbox.stats.skipped_out_of_range == 2
    assert rig.outbox.stats.skipped_expired == 0
    assert "not sending calls row 5 to InfluxDB: its time 3000-01-01T00:00:00Z" in caplog.text


def test_expired_and_out_of_range_rows_are_counted_apart_and_the_status_shows_both(rig, stub):
    """Raw retention 7 days at T0 + 1 day: the 1900 row and one 30 days old are expired (too
    old for the bucket); the year-3000 row is out of range."""
    rig.add([call(i) for i in range(4)])
    store_far_off_calls(rig)  # rows 5 (3000) and 6 (1900)
    store_far_off_calls(rig, [T0 - timedelta(days=30)])  # row 7
    shipper = Shipper(rig.config)
    encoder = LineEncoder(rig.config.dimensions, rig.config.influx.instance)
    now_us = ts_us(T0 + timedelta(days=1))
    shipper.outbox.feeds = raw_feeds("llm_raw", encoder, timedelta(days=7), lambda: now_us)
    try:
        assert shipper._drain_some() == 4
        assert shipper.outbox.stats.skipped_expired == 2
        assert shipper.outbox.stats.skipped_out_of_range == 1
        assert " skipped_expired=2 skipped_out_of_range=1" in shipper.status()
    finally:
        shipper.close()
    (write,) = stub.writes()
    assert tokens_sent(write) == list(range(100, 104))


def test_a_dead_letter_poisoned_by_a_far_off_row_is_sent_without_it(tmp_path, rig, stub):
    """What an older collector left behind: the whole batch refused for one year-3000 point."""
    rig.add([call(i) for i in range(4)])
    store_far_off_calls(rig)
    with rig.ledger.transaction() as db:
        db.execute(
            "INSERT INTO dead_letters (cursor, first_position, last_position, status, message,"
            " created_us) VALUES ('influx:calls', 1, 6, 400, 'HTTP 400: time outside range', 0)"
        )
        db.execute("UPDATE sink_cursors SET position = 6 WHERE name = 'influx:calls'")

    result = CliRunner().invoke(
        main, ["influx", "dead-letters", "--retry", "--config", config_file(tmp_path, stub.url)]
    )

    assert result.exit_code == 0, result.output
    assert "sent 1 dead letter(s); 0 refused again" in result.output
    (write,) = stub.writes()
    assert tokens_sent(write) == [100, 101, 102, 103]
    assert dead_letters(rig.ledger) == []


# ----- bucket set-up: the requests InfluxDB 2.x receives --------------------------------------


@pytest.fixture
def writer(stub):
    writer = InfluxWriter(InfluxConfig(url=stub.url, org=ORG["name"], token=TOKEN))
    yield writer
    writer.close()


def bucket_posts(stub):
    return [r for r in stub.requests if r.method == "POST" and r.path == "/api/v2/buckets"]


def bucket_patches(stub):
    return [r for r in stub.requests if r.method == "PATCH"]


def retention_of(stub, name):
    return [rule["everySeconds"] for rule in stub.buckets[name]["retentionRules"]]


def test_setup_creates_the_missing_tier_buckets_with_their_retention(stub, writer):
    plans = writer.plan_buckets(TiersConfig().retention)

    assert [(p.tier, p.bucket, p.action) for p in plans] == [
        ("raw", "llm_raw", "create"),
        ("1h", "llm_1h", "create"),
        ("1d", "llm_1d", "create"),
        ("1mo", "llm_1mo", "create"),
    ]
    writer.apply_buckets(plans, apply_retention=False)

    lookups = [r for r in stub.requests if r.method == "GET" and r.path == "/api/v2/buckets"]
    assert [r.query["name"] for r in lookups] == [[n] for n in TIER_RETENTION]
    assert any(r.path == "/api/v2/orgs" and r.query == {"org": ["llm"]} for r in stub.requests)
    bodies = [r.json() for r in bucket_posts(stub)]
    assert [b["name"] for b in bodies] == list(TIER_RETENTION)
    for body in bodies:
        assert body["orgID"] == ORG["id"]  # the org name resolved to its id
        assert body["retentionRules"] == [
            {"type": "expire", "everySeconds": TIER_RETENTION[body["name"]]}
        ]
    assert all(r.headers["authorization"] == f"Token {TOKEN}" for r in stub.requests)
    assert {name: retention_of(stub, name) for name in stub.buckets} == {
        name: [seconds] for name, seconds in TIER_RETENTION.items()
    }

    again = writer.plan_buckets(TiersConfig().retention)
    assert [p.action for p in again] == ["exists"] * 4
    writer.apply_buckets(again, apply_retention=True)
    assert len(bucket_posts(stub)) == 4 and bucket_patches(stub) == []


@pytest.mark.parametrize("forever", [_rules(0), []], ids=["everySeconds-0", "no-rules"])
def test_an_existing_bucket_keeps_its_retention_unless_asked(stub, writer, forever):
    stub.add_bucket("llm_raw", 7 * DAY)
    stub.add_bucket("llm_1h", 1 * DAY)  # differs from tiers.retention.1h (30d)
    stub.add_bucket("llm_1mo", None, rules=forever)  # forever, as configured

    plans = writer.plan_buckets(TiersConfig().retention)
    assert [(p.bucket, p.action) for p in plans] == [
        ("llm_raw", "exists"),
        ("llm_1h", "retention differs"),
        ("llm_1d", "create"),
        ("llm_1mo", "exists"),
    ]
    writer.apply_buckets(plans, apply_retention=False)

    assert [r.json()["name"] for r in bucket_posts(stub)] == ["llm_1d"]
    assert bucket_patches(stub) == []
    assert retention_of(stub, "llm_1h") == [DAY]

    writer.apply_buckets(writer.plan_buckets(TiersConfig().retention), apply_retention=True)

    (patch,) = bucket_patches(stub)
    assert patch.path == f"/api/v2/buckets/{stub.buckets['llm_1h']['id']}"
    assert patch.json()["name"] == "llm_1h"
    assert patch.json()["retentionRules"] == [{"type": "expire", "everySeconds": 30 * DAY}]
    assert retention_of(stub, "llm_1h") == [30 * DAY]
    assert len(bucket_posts(stub)) == 1


def test_influx_setup_command(tmp_path, stub):
    stub.add_bucket("team_1h", 2 * DAY)
    buckets = {"raw": "team_raw", "1h": "team_1h", "1d": "team_1d", "1mo": "team_1mo"}
    path = tmp_path / "collector.yaml"
    config = config_dict(tmp_path, stub.url, buckets=buckets)
    config["tiers"] = {"retention": {"raw": "3d", "1h": "14d", "1d": "400d", "1mo": "forever"}}
    path.write_text(yaml.safe_dump(config))
    runner = CliRunner()

    result = runner.invoke(main, ["influx", "setup", "--config", str(path)])

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "team_raw" in text and "created" in text
    assert "retention differs (left alone)" in text
    created = {r.json()["name"]: r.json()["retentionRules"] for r in bucket_posts(stub)}
    assert created == {
        "team_raw": [{"type": "expire", "everySeconds": 3 * DAY}],
        "team_1d": [{"type": "expire", "everySeconds": 400 * DAY}],
        "team_1mo": [{"type": "expire", "everySeconds": 0}],
    }
    assert retention_of(stub, "team_1h") == [2 * DAY]

    result = runner.invoke(main, ["influx", "setup", "--apply-retention", "--config", str(path)])

    assert result.exit_code == 0, result.output
    assert "retention updated" in result.output
    assert retention_of(stub, "team_1h") == [14 * DAY]

    config["influx"]["org"] = "no-such-org"
    path.write_text(yaml.safe_dump(config))
    stub.buckets.clear()
    result = runner.invoke(main, ["influx", "setup", "--config", str(path)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"InfluxDB at {stub.url}" in text and "no-such-org" in text
    assert TOKEN not in result.output
