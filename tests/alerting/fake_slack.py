"""A local HTTP server answering like Slack, from a script of responses, recording requests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSlack:
    """Answers each POST with the next scripted (status, headers, body); then 200 ``ok``.
    After `hold` it answers nothing until `release` (a hung Slack)."""

    def __init__(self, script: list[tuple[int, dict, str]] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[tuple[float, str, dict]] = []
        self.arrived = threading.Event()
        self.counted = threading.Condition()
        self.gate = threading.Event()
        self.gate.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"form": raw}
                with owner.counted:
                    owner.requests.append((time.monotonic(), self.path, body))
                    owner.counted.notify_all()
                owner.arrived.set()
                owner.gate.wait()
                status, headers, answer = owner.script.pop(0) if owner.script else (200, {}, "ok")
                data = answer.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Whether ``count`` requests arrived within ``timeout`` seconds (held ones too)."""
        with self.counted:
            return self.counted.wait_for(lambda: len(self.requests) >= count, timeout)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
