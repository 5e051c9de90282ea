"""End to end into InfluxDB's write API: a trace into the ledger and VictoriaMetrics.

`python bench/influx_e2e.py [--lines N] [--trace FILE]` starts VictoriaMetrics (Debian package
`victoria-metrics`) on a free loopback port, runs `llm-collector ingest` with an `influx`
section pointing at it (ingest returns once the last point is acknowledged), then counts the
points that landed through VictoriaMetrics' export API. Prints events/s end to end, points
landed of events ingested, and the collector's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from ingest import _command, generate

TARGET_EVENTS_PER_S = 100_000
TARGET_RSS_MB = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit("victoria-metrics did not come up")


def count_points(url: str, metric: str) -> int:
    urllib.request.urlopen(f"{url}/internal/force_flush").read()
    request = urllib.request.Request(
        f"{url}/api/v1/export", data=f'match[]={{__name__="{metric}"}}'.encode()
    )
    total = 0
    with urllib.request.urlopen(request, timeout=120) as response:
        for line in response:
            total += len(orjson.loads(line)["values"])
    return total


def run(trace: Path, work: Path, url: str) -> tuple[float, float, dict[str, int]]:
    config = work / "e2e.yaml"
    config.write_text(
        f"sources: []\nledger: {{path: {work / 'ledger.db'}}}\n"
        f"quarantine: {{path: {work / 'quarantine.jsonl'}}}\n"
        "tiers: {retention: {raw: forever}}\n"
        f"influx: {{url: '{url}', org: llm, token: bench, create_buckets: false}}\n"
    )
    command = [*_command(), "ingest", "--json", "--config", str(config), str(trace)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    output = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"ingest failed: {child.stderr.read().decode()[-3000:] if child.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024, orjson.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--trace", type=Path, help="reuse this trace instead of generating")
    parser.add_argument("--seed", type=int, default=20250602)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    server = None
    try:
        trace = args.trace or work / "trace.jsonl"
        if args.trace is None:
            generate(args.lines, args.seed, trace)
        server, url = start_victoria(work)
        seconds, rss, counts = run(trace, work, url)
        events = counts["events"]
        landed = count_points(url, "llm_call_error") + count_points(url, "llm_score_value")
        rate = events / seconds
        print(f"\n{'metric':<28}{'value':>22}  target")
        print(
            f"{'end to end (acknowledged)':<28}{rate:>15,.0f} ev/s  >= {TARGET_EVENTS_PER_S:,}"
            f"  {'PASS' if rate >= TARGET_EVENTS_PER_S else 'MISS'}"
        )
        print(f"{'wall clock':<28}{seconds:>20,.2f} s")
        print(
            f"{'points landed':<28}{landed:>13,} of {events:,}"
            f"  {'PASS' if landed == events else 'MISS'}"
        )
        print(
            f"{'peak RSS (collector)':<28}{rss:>19,.1f} MB  <= {TARGET_RSS_MB} MB"
            f"  {'PASS' if rss <= TARGET_RSS_MB else 'MISS'}"
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
