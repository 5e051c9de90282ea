"""VictoriaMetrics as the real server behind ``/api/v2/write`` in the InfluxDB sink tests.

`VictoriaMetrics` starts ``victoria-metrics`` on a free loopback port with its own storage dir,
waits for ``/health``, and stops it with SIGTERM; it can be started again on the same port and
storage (a server restart). `export` reads points back through ``/api/v1/export`` after a
``/internal/force_flush``. VictoriaMetrics ignores the bucket, keeps milliseconds, keeps
same-timestamp duplicates (unless started with ``-dedup.minScrapeInterval``), and names each
series ``<measurement>_<field>``.
"""

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

BINARY_NAMES = ("victoria-metrics", "/usr/bin/victoria-metrics")
START_TIMEOUT = 15.0


class Point(NamedTuple):
    labels: dict
    value: float
    ts_ms: int

    def key(self):
        """Hashable (labels, timestamp, value), for comparing multisets of points."""
        return (tuple(sorted(self.labels.items())), self.ts_ms, self.value)


def binary() -> str:
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "victoria-metrics is not installed: it is the real server behind /api/v2/write in the "
        "InfluxDB tests. `make test` installs it (Debian package victoria-metrics: "
        "apt-get install victoria-metrics).",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


class VictoriaMetrics:
    """One server process; ``with VictoriaMetrics(dir) as vm:`` starts it and always stops it."""

    def __init__(
        self, directory: Path, port: int | None = None, flags: tuple[str, ...] = ()
    ) -> None:
        self.directory = Path(directory)
        self.flags = flags
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage = self.directory / "data"
        self.log_path = self.directory / "victoria.log"
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start (again, on the same port and storage after a `stop`); returns the base URL."""
        executable = binary()
        attempts = 1 if self.port is not None else 3  # a fresh free port may be taken meanwhile
        for _ in range(attempts):
            port = self.port or free_port()
            if self._launch(executable, port):
                self.port = port
                return self.url
        pytest.fail(f"victoria-metrics did not start:\n{self._log_tail()}", pytrace=False)

    def _launch(self, executable: str, port: int) -> bool:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                executable,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={self.storage}",
                "-retentionPeriod=100y",  # the test traces are in the past
                "-loggerLevel=ERROR",
                *self.flags,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # e.g. the port was taken: try another
                self.process = None
                return False
            try:
                if _get(f"http://127.0.0.1:{port}/health", timeout=1.0).strip() == b"OK":
                    return True
            except OSError:
                pass
            time.sleep(0.05)  # waiting for the server to come up
        self.stop()
        return False

    def stop(self) -> None:
        """SIGTERM and wait (VictoriaMetrics flushes what it holds); SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "VictoriaMetrics":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flush(url: str) -> None:
    _get(f"{url}/internal/force_flush")


def export(url: str, metric: str) -> list[Point]:
    """Every stored sample of ``metric`` (e.g. ``llm_call_input_tokens``), all series."""
    return export_matching(url, f'{{__name__="{metric}"}}')


def export_matching(url: str, selector: str) -> list[Point]:
    flush(url)
    query = urllib.parse.urlencode({"match[]": selector, "start": "0"})
    points = []
    for line in _get(f"{url}/api/v1/export?{query}", timeout=30).splitlines():
        if not line.strip():
            continue
        series = json.loads(line)
        labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
        points += [
            Point(labels, value, ts)
            for value, ts in zip(series["values"], series["timestamps"], strict=True)
        ]
    return points


def metric_names(url: str) -> set[str]:
    flush(url)
    body = json.loads(_get(f"{url}/api/v1/label/__name__/values?start=0"))
    return set(body["data"])
