"""The OTLP receiver's throughput: spans acknowledged (after commit) per second.

`python bench/otlp.py [--spans N] [--batch 512] [--clients 4] [--exporter] [--victoria]`
starts `llm-collector run` with a `receivers.otlp` section on a fresh ledger (no trace files;
with `--victoria` also an `influx` section pointing at VictoriaMetrics), then sends N gen_ai
chat spans in requests of `--batch` spans from `--clients` threads, each over one keep-alive
connection: protobuf bodies encoded beforehand by the OpenTelemetry exporter's own encoder, or
with `--exporter` the real `OTLPSpanExporter` (protobuf, gzip) encoding as it sends. It prints
spans/s acknowledged, the daemon's CPU time per span, and checks that the ledger holds every
span once.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, first

from collector.ledger import events
from collector.ledger.connection import Ledger
from collector.ledger.events import CALL_COLUMNS

TARGET_SPANS_PER_S = 20_000
MODELS = (
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
)
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_spans(count: int) -> list[ReadableSpan]:
    """``count`` finished chat spans over the hour before now, made with the SDK."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench.otlp")
    start = time.time_ns() - 3600 * 10**9
    step = 3600 * 10**9 // max(count, 1)
    for i in range(count):
        model, provider_name = MODELS[i % len(MODELS)]
        begin = start + i * step
        span = tracer.start_span(f"chat {model}", start_time=begin)
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name,
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 200 + i % 1000,
                "gen_ai.usage.output_tokens": 20 + i % 300,
                "tenant_id": f"tenant-{i % 12}",
            }
        )
        span.end(end_time=begin + (300 + i % 2000) * 1_000_000)
    return list(exporter.get_finished_spans())


def start_victoria(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        sys.exit("victoria-metrics is not installed: apt-get install victoria-metrics")
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={work / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: _answers(f"{url}/health"), 30):
        server.kill()
        sys.exit("victoria-metrics did not come up")
    return server, url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def start_daemon(work: Path, otlp_port: int, influx_url: str | None) -> subprocess.Popen[bytes]:
    port = free_port()
    config = work / "collector.yaml"
    influx = f"influx: {{url: '{influx_url}', org: llm, token: bench}}\n" if influx_url else ""
    config.write_text(
        f"sources: []\nledger: {{path: '{work / 'ledger.db'}'}}\n"
        f"quarantine: {{path: '{work / 'quarantine.jsonl'}'}}\n"
        "ingest: {status_interval: 10s}\n"
        f"server: {{listen: '127.0.0.1:{port}'}}\n"
        f"receivers: {{otlp: {{listen: '127.0.0.1:{otlp_port}'}}}}\n" + influx
    )
    log = (work / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from collector.cli.main import main; main()",
            "run",
            "--config",
            str(config),
        ],
        stdout=log,
        stderr=log,
    )
    if not wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60):
        daemon.kill()
        sys.exit(f"the daemon did not start; see {work / 'daemon.log'}")
    return daemon


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def send_bodies(port: int, bodies: list[bytes], clients: int) -> list[str]:
    """POST each body once, over ``clients`` keep-alive connections; the problems found."""
    problems: list[str] = []
    lock = threading.Lock()
    queue = iter(range(len(bodies)))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/x-protobuf"}
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                break
            connection.request("POST", "/v1/traces", bodies[index], headers)
            answer = connection.getresponse()
            body = answer.read()
            rejected = ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans
            if answer.status != 200 or rejected:
                with lock:
                    problems.append(f"request {index}: {answer.status}, {rejected} rejected")
        connection.close()

    run_threads(client, clients)
    return problems


def send_with_exporter(port: int, batches: list[list[ReadableSpan]], clients: int) -> list[str]:
    """Export each batch once with the real exporter (protobuf, gzip), one per client."""
    problems: list[str] = []
    lock = threading.Lock()
    queue = iter(range(len(batches)))

    def client() -> None:
        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{port}/v1/traces", compression=Compression.Gzip
        )
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                break
            if exporter.export(batches[index]) != SpanExportResult.SUCCESS:
                with lock:
                    problems.append(f"batch {index} failed")
        exporter.shutdown()

    run_threads(client, clients)
    return problems


def run_threads(target, count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def ledger_counts(path: Path) -> tuple[int, int]:
    """Call rows in the ledger, and how many distinct call ids (span ids) they hold."""
    ledger = Ledger(path, readonly=True)
    try:
        position = 1 + CALL_COLUMNS.index("call_id")  # rows_after puts the row id first
        ids = [row[position] for row in events.rows_after(ledger.db, "calls", 0, 10**9)]
        return len(ids), len(set(ids))
    finally:
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--exporter", action="store_true", help="send with OTLPSpanExporter")
    parser.add_argument("--victoria", action="store_true", help="with an InfluxDB sink")
    parser.add_argument("--out", type=Path, help="keep the ledger, config and log here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    work.mkdir(parents=True, exist_ok=True)
    made = time.perf_counter()
    spans = make_spans(args.spans)
    batches = [spans[i : i + args.batch] for i in range(0, len(spans), args.batch)]
    bodies = [] if args.exporter else [encode_spans(b).SerializeToString() for b in batches]
    made = time.perf_counter() - made
    print(f"{len(spans):,} spans in {len(batches):,} requests made in {made:.1f} s")
    victoria, influx_url = start_victoria(work) if args.victoria else (None, None)
    otlp_port = free_port()
    daemon = start_daemon(work, otlp_port, influx_url)
    try:
        cpu_before, bench_before = cpu_seconds(daemon.pid), time.process_time()
        started = time.perf_counter()
        if args.exporter:
            problems = send_with_exporter(otlp_port, batches, args.clients)
        else:
            problems = send_bodies(otlp_port, bodies, args.clients)
        seconds = time.perf_counter() - started
        daemon_cpu = cpu_seconds(daemon.pid) - cpu_before
        bench_cpu = time.process_time() - bench_before
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        if victoria is not None:
            victoria.send_signal(signal.SIGTERM)
            victoria.wait(timeout=30)
    rows, distinct = ledger_counts(work / "ledger.db")
    rate = len(spans) / seconds
    sender = "OTLPSpanExporter (gzip)" if args.exporter else "pre-encoded protobuf bodies"
    print(
        f"sent by {sender}, {args.clients} keep-alive client(s), batches of {args.batch}"
        f"{', InfluxDB sink: VictoriaMetrics' if args.victoria else ', ledger only'}\n"
    )
    print(f"{'metric':<34}{'value':>22}  target")
    verdict = "PASS" if rate >= TARGET_SPANS_PER_S else "MISS"
    target = f">= {TARGET_SPANS_PER_S:,}  {verdict}"
    print(f"{'acknowledged (after commit)':<34}{rate:>15,.0f} spans/s  {target}")
    print(f"{'wall clock':<34}{seconds:>20,.2f} s")
    print(f"{'daemon CPU (usr+sys, all threads)':<34}{daemon_cpu:>20,.2f} s")
    print(f"{'daemon CPU per span':<34}{daemon_cpu / len(spans) * 1e6:>19,.1f} µs")
    print(f"{'spans per daemon CPU-s':<34}{len(spans) / daemon_cpu:>15,.0f} spans/s")
    print(f"{'bench (sender) CPU':<34}{bench_cpu:>20,.2f} s")
    print(f"{'ledger rows (distinct call ids)':<34}{rows:>13,} ({distinct:,})  {len(spans):,} sent")
    if problems or rows != len(spans) or distinct != len(spans):
        sys.exit(f"FAILED: {len(problems)} request problem(s) {problems[:3]}; rows {rows}")
    if args.out is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
