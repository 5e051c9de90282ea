"""The daemon's HTTP endpoint on its own event loop: ``GET /healthz`` and ``GET /metrics``.

A few lines of HTTP/1.1 over `asyncio.start_server` (one request per connection) are all two
read-only routes need; the checks themselves touch SQLite and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from collector.daemon.health import Health
from collector.daemon.metrics import DaemonMetrics

log = logging.getLogger("collector.http")

READ_TIMEOUT = 5.0
MAX_REQUEST_BYTES = 16 * 1024
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
Response = tuple[int, str, bytes]


class HttpServer:
    """Serves the health verdict and the Prometheus exposition until `close`."""

    def __init__(self, health: Health, metrics: DaemonMetrics) -> None:
        self.health = health
        self.metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0: any free port); OSError when it cannot."""
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST_BYTES)
        log.info("serving /healthz and /metrics on http://%s:%d", host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, path = _request_line(head)
            status, content_type, body = await self._route(method, path)
            writer.write(
                _response(status, content_type, b"" if method == "HEAD" else body, len(body))
            )
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that went away or spoke something else: nothing to answer
        except asyncio.LimitOverrunError:
            writer.write(_response(400, "text/plain", b"request too large\n"))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"only GET and HEAD\n"
        if path == "/healthz":
            healthy, body = await asyncio.to_thread(self.health.check)
            data = orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
            return (200 if healthy else 503), "application/json", data
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, await asyncio.to_thread(self.metrics.exposition)
        return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"


def _request_line(head: bytes) -> tuple[str, str]:
    """(method, path without the query) of ``METHOD /path HTTP/1.x``; ValueError otherwise."""
    method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(version)
    return method, target.split("?", 1)[0]


def _response(status: int, content_type: str, body: bytes, length: int | None = None) -> bytes:
    reason = _REASONS.get(status, "Bad Request")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
