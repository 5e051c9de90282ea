"""The OTLP receiver in a real `llm-collector run`: the real OpenTelemetry exporter (protobuf,
gzip or not) and plain HTTP (OTLP JSON) send gen_ai spans; `summary` then shows their counts,
cost and latency, a retried export counts once, a `kill -9` while an exporter sends loses and
doubles nothing, bad requests get their status while the daemon serves on, and a full InfluxDB
outbox answers 429 with Retry-After."""

import gzip
import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import zlib

import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.daemon_harness import (
    Daemon,
    command,
    free_port,
    health,
    query,
    samples,
    total,
    wait_for,
    write_config,
)
from tests.collector.receivers.otlp_bodies import Recorder, json_body, protobuf_body
from tests.collector.receivers.receiver_harness import (
    JSON,
    PROTOBUF,
    chat_spans,
    model_less_span,
    other_span,
)

TOKEN = "otlp-test-token-4f1d"


def receiver_config(tmp_path, port, otlp_port, otlp="", extra=""):
    return write_config(
        tmp_path,
        port,
        f"receivers: {{otlp: {{listen: '127.0.0.1:{otlp_port}'{otlp}}}}}\n" + extra,
    )


def exporter(otlp_port, compression=Compression.NoCompression, timeout=10.0, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{otlp_port}/v1/traces",
        compression=compression,
        timeout=timeout,
        headers=headers,
    )


def post(otlp_port, body, content_type=PROTOBUF, **headers):
    """(status, headers, body) of a plain HTTP POST to /v1/traces."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{otlp_port}/v1/traces",
        data=body,
        headers={"Content-Type": content_type, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def cli_json(config, *args):
    done = subprocess.run(
        command(*args, "--config", str(config), "--json"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def call_ids(tmp_path):
    return [row[0] for row in query(tmp_path, "SELECT call_id FROM calls")]


def started(daemon, port):
    assert wait_for(lambda: health(port)[0] in (200, 503), process=daemon), daemon.output()


def test_exported_spans_are_summarised_like_the_spans_and_a_retry_counts_once(tmp_path):
    port, otlp_port = free_port(), free_port()
    config = receiver_config(tmp_path, port, otlp_port)
    recorder = Recorder(**{"service.name": "checkout-bot"})
    sent = chat_spans(recorder, 60)
    other_span(recorder)
    spans = recorder.spans()
    plain, zipped, as_json = spans[:20], spans[20:40], spans[40:]
    daemon = Daemon(config)
    try:
        started(daemon, port)
        assert exporter(otlp_port).export(plain) == SpanExportResult.SUCCESS
        gzipped = exporter(otlp_port, Compression.Gzip)
        assert gzipped.export(zipped) == SpanExportResult.SUCCESS
        assert gzipped.export(zipped) == SpanExportResult.SUCCESS  # a retry: counted once
        status, headers, answer = post(
            otlp_port, orjson.dumps(json_body(encode_spans(as_json))), JSON
        )
        assert (status, headers["Content-Type"].split(";")[0], answer) == (200, JSON, b"{}")
        assert len(call_ids(tmp_path)) == 60
        summary = cli_json(config, "summary", "--since", "-2h")["totals"]
        by_model = cli_json(config, "summary", "--since", "-2h", "--by", "model")["groups"]
        state = cli_json(config, "status")
        text = subprocess.run(
            command("status", "--config", str(config)), capture_output=True, text=True
        ).stdout
        metrics = samples(port)
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output()
    assert sorted(call_ids(tmp_path)) == sorted(s.call_id for s in sent)
    latencies = [s.latency_ms for s in sent]
    assert summary["requests"] == 60
    assert summary["input_tokens"] == sum(s.input_tokens for s in sent)
    assert summary["output_tokens"] == sum(s.output_tokens for s in sent)
    assert summary["cost_usd"] == pytest.approx(sum(s.cost_usd for s in sent))
    assert summary["latency_ms_mean"] == pytest.approx(sum(latencies) / 60)
    assert summary["latency_ms_max"] == pytest.approx(max(latencies))
    assert {g["model"]: g["requests"] for g in by_model} == {
        "gpt-4o-mini": 30,
        "claude-sonnet-4-5": 30,
    }
    assert state["receivers"] == {
        "otlp": {"spans": 61, "accepted": 60, "rejected": 0, "skipped": 1}
    }
    assert state["daemon"]["jobs"]["expire_keys"]["interval_s"] == 3600
    running = state["daemon"]["receivers"]["otlp"]
    assert running["spans"] == {"accepted": 60, "duplicates": 20, "rejected": 0, "skipped": 1}
    assert running["requests"] == {"200": 4}
    shown = " ".join(text.split())  # as printed, whatever the terminal's width
    assert "receiver otlp: 60 spans accepted, 0 rejected (quarantined), 1 skipped" in shown
    assert (
        f"since the daemon started (127.0.0.1:{otlp_port}): 60 accepted, 20 duplicates,"
        " 0 rejected, 1 skipped; requests 2xx 4"
    ) in shown
    assert total(metrics, "llm_requests_total") == 60
    assert total(metrics, "llm_collector_otlp_spans_total", outcome="duplicates") == 20
    assert total(metrics, "llm_collector_otlp_requests_total", code="200") == 4


def test_kill_9_while_an_exporter_sends_then_restart_counts_every_span_once(tmp_path):
    port, otlp_port = free_port(), free_port()
    config = receiver_config(tmp_path, port, otlp_port)
    recorder = Recorder()
    sent = chat_spans(recorder, 1200)
    spans = recorder.spans()
    batches = [spans[i : i + 10] for i in range(0, 1200, 10)]
    results: list = []

    def export_all():  # the SDK's exporter, retrying through the kill and the restart
        client = exporter(otlp_port, Compression.Gzip, timeout=60.0)
        results.extend(client.export(batch) for batch in batches)

    first = Daemon(config)
    started(first, port)
    lost = send_without_reading_the_answer(otlp_port, protobuf_body(batches[0]))
    assert wait_for(lambda: len(call_ids(tmp_path)) == 10, process=first), first.output()
    lost.close()  # committed, its answer never read: the exporter sends it again below
    sender = threading.Thread(target=export_all)
    sender.start()
    second = None
    try:
        assert wait_for(lambda: len(call_ids(tmp_path)) >= 100, process=first), first.output()
        first.signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        assert len(call_ids(tmp_path)) < 1200  # killed while spans were still coming
        second = Daemon(config)
        sender.join(timeout=120)
        assert not sender.is_alive()
    finally:
        if second is not None:
            code, _ = second.stop()
            assert code == 0, second.output()
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    ids = call_ids(tmp_path)
    assert len(ids) == 1200
    assert sorted(ids) == sorted(s.call_id for s in sent)


def send_without_reading_the_answer(otlp_port, body):
    """A request whose answer is lost (the sender died, a time-out); the open connection."""
    connection = http.client.HTTPConnection("127.0.0.1", otlp_port, timeout=10)
    connection.request("POST", "/v1/traces", body, {"Content-Type": PROTOBUF})
    return connection


def bomb() -> bytes:
    """512 MiB of zeros, gzip'd to half a megabyte."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(512)) + packer.flush()


def peak_memory_kib(daemon) -> int:
    status = open(f"/proc/{daemon.process.pid}/status").read()  # noqa: SIM115
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])


def test_bad_requests_get_their_status_and_the_daemon_serves_on(tmp_path):
    port, otlp_port = free_port(), free_port()
    config = receiver_config(tmp_path, port, otlp_port, otlp=f", token: {TOKEN}")
    recorder = Recorder()
    sent = chat_spans(recorder, 3)
    rejected_id = model_less_span(recorder)
    body = protobuf_body(recorder.spans())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    daemon = Daemon(config)
    try:
        started(daemon, port)
        assert post(otlp_port, body)[0] == 401
        assert post(otlp_port, body, Authorization="Bearer guessed")[0] == 401
        assert post(otlp_port, b"\x0a\xff\xff garbage", **auth)[0] == 400
        assert post(otlp_port, body, "text/plain", **auth)[0] == 415
        before = peak_memory_kib(daemon)
        assert post(otlp_port, bytes(50 * 1024 * 1024), **auth)[0] == 413
        status, _, answer = post(otlp_port, bomb(), **auth, **{"Content-Encoding": "gzip"})
        assert status == 413
        assert "max_request_bytes (4194304)" in Status.FromString(answer).message
        grown_mib = (peak_memory_kib(daemon) - before) / 1024
        assert grown_mib < 64, f"the daemon's peak memory grew {grown_mib:.0f} MiB"
        status, _, answer = post(
            otlp_port, gzip.compress(body), **auth, **{"Content-Encoding": "gzip"}
        )
        partial = ExportTraceServiceResponse.FromString(answer).partial_success
        assert (status, partial.rejected_spans) == (200, 1)
        assert rejected_id in partial.error_message
        good = exporter(otlp_port, Compression.Gzip, token=TOKEN).export(recorder.spans())
        assert good == SpanExportResult.SUCCESS  # the retry: duplicates, one more rejection
        assert daemon.process.poll() is None
        assert health(port)[0] == 200
        running = health(port)[1]["receivers"]["otlp"]
    finally:
        code, _ = daemon.stop()
    assert code == 0
    assert sorted(call_ids(tmp_path)) == sorted(s.call_id for s in sent)
    assert running["requests"] == {"401": 2, "400": 1, "415": 1, "413": 2, "200": 2}
    assert running["spans"] == {"accepted": 3, "duplicates": 3, "rejected": 2, "skipped": 0}
    entries = [
        orjson.loads(line) for line in (tmp_path / "quarantine.jsonl").read_bytes().splitlines()
    ]
    assert [(e["source"], e["reason"]) for e in entries] == [
        ("otlp", "model: required for an llm_call event")
    ] * 2
    output = daemon.output()
    assert TOKEN not in output
    assert "Traceback" not in output


def chat_spans_of(first: int):
    recorder = Recorder()
    chat_spans(recorder, 5, first=first)
    return recorder.spans()


def test_a_full_outbox_answers_429_with_retry_after(tmp_path):
    port, otlp_port = free_port(), free_port()
    with socket.socket() as dead:  # InfluxDB: a port bound but never listening
        dead.bind(("127.0.0.1", 0))
        influx = (
            f"influx: {{url: 'http://127.0.0.1:{dead.getsockname()[1]}', org: llm,"
            " token: t, max_pending: 1000, create_buckets: false}\n"
        )
        config = receiver_config(tmp_path, port, otlp_port, extra=influx)
        recorder = Recorder()
        chat_spans(recorder, 1000)
        spans = recorder.spans()
        probe = Recorder()
        other_span(probe)
        daemon = Daemon(config)
        try:
            started(daemon, port)
            for half in (spans[:500], spans[500:]):
                assert post(otlp_port, protobuf_body(half))[0] == 200
            assert wait_for(
                lambda: post(otlp_port, protobuf_body(probe.spans()))[0] == 429, process=daemon
            ), daemon.output()
            status, headers, answer = post(otlp_port, protobuf_body(chat_spans_of(1000)))
            reasons = health(port)[1]["reasons"]
        finally:
            daemon.stop()
    assert (status, headers["Retry-After"]) == (429, "2")
    assert "InfluxDB outbox is full" in Status.FromString(answer).message
    assert any("reading paused" in reason for reason in reasons)
    assert len(call_ids(tmp_path)) == 1000  # the refused spans wait at their sender


def test_a_port_in_use_stops_the_daemon_at_start_saying_what_to_do(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = receiver_config(tmp_path, port, taken.getsockname()[1])
        done = subprocess.run(
            command("run", "--config", str(config)), capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert "cannot serve the OTLP receiver on 127.0.0.1:" in done.stderr
    assert "set receivers.otlp.listen to a free host:port" in done.stderr
    assert "Traceback" not in done.stderr
