"""``POST /v1/traces`` over HTTP (aiohttp, on the daemon's event loop): OTLP/HTTP in protobuf or
JSON, gzip accepted, answered in the request's encoding once its spans are committed.

Requests are parsed and stored one at a time on the receiver's own thread (and ledger
connection); a few are read ahead, the rest wait unread (TCP pushes back on their senders). A
full InfluxDB outbox answers 429 and a stopping daemon 503, both with Retry-After: OTLP
exporters retry those.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.errors import describe
from collector.receivers.otlp.receiver import Outcome, Receiver
from collector.receivers.otlp.spans import Undecodable
from collector.retrying import EXPECTED
from schemas.config import OtlpReceiverConfig
from schemas.errors import CollectorError

log = logging.getLogger("collector.otlp")
T = TypeVar("T")

PATH = "/v1/traces"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
RETRY_AFTER_S = 2
"""What a 429 or 503 asks the sender to wait: OTLP exporters give up after their time-out
(10 s by default), so a few short waits."""
READ_AHEAD = 4
"""Requests read (at most ``max_request_bytes`` each) while one is being stored."""
SHUTDOWN_WAIT_S = 5.0
"""How long closing waits for the requests in progress to be answered."""
SHOWN_REASONS = 3
"""Rejected spans named in a partial success's message."""


class ReceiverError(CollectorError):
    """The receiver cannot start (its port, its token file); the message says what to do."""


class ReceiverCounts:
    """Spans by what became of them and requests by HTTP status, since the daemon started."""

    def __init__(self) -> None:
        self._spans: Counter[str] = Counter()
        self._requests: Counter[int] = Counter()
        self._lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._spans.update(
                accepted=outcome.accepted,
                duplicates=outcome.duplicates,
                rejected=len(outcome.rejected),
                skipped=outcome.skipped,
            )

    def answered(self, status: int) -> None:
        with self._lock:
            self._requests[status] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{"spans": {accepted, duplicates, rejected, skipped}, "requests": {status: n}}."""
        with self._lock:
            spans = {kind: self._spans[kind] for kind in ("accepted", "duplicates", "rejected")}
            spans["skipped"] = self._spans["skipped"]
            return {"spans": spans, "requests": {str(k): v for k, v in self._requests.items()}}


class OtlpServer:
    """Serves ``POST /v1/traces`` for a `Receiver` until `close`."""

    def __init__(
        self,
        receiver: Receiver,
        config: OtlpReceiverConfig,
        *,
        paused: Callable[[], bool],
        stopping: Callable[[], bool],
    ) -> None:
        """``paused``: the InfluxDB outbox is full (answer 429); ``stopping``: the daemon
        stops (answer 503). Reads the token now: `ReceiverError` when its file cannot be."""
        self.receiver = receiver
        self.config = config
        self.paused = paused
        self.stopping = stopping
        self.counts = ReceiverCounts()
        try:
            token = config.secret_token()
        except ValueError as error:
            raise ReceiverError(f"cannot start the OTLP receiver: {error}") from None
        self._authorization = None if token is None else f"Bearer {token}".encode()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="otlp")
        self._slots = asyncio.Semaphore(READ_AHEAD)
        self._errors_seen: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Listen on ``receivers.otlp.listen``; `ReceiverError` saying what to do when it
        cannot."""
        app = web.Application(client_max_size=self.config.max_request_bytes)
        app.router.add_post(PATH, self._traces)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_WAIT_S
        )
        await runner.setup()
        host, port = self.config.address()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ReceiverError(
                f"cannot serve the OTLP receiver on {self.config.listen}:"
                f" {error.strerror or error}; set receivers.otlp.listen to a free host:port"
            ) from None
        self._runner, self._site = runner, site
        log.info("receiving OTLP traces on http://%s:%d%s", host, self.port, PATH)

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose for port 0)."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening, answer the requests in progress (up to `SHUTDOWN_WAIT_S`), then let
        the receiver's thread go once it is done with the request in hand."""
        if self._runner is not None:
            await self._runner.cleanup()
        self._thread.shutdown(wait=False)

    def state(self) -> dict[str, Any]:
        """What /healthz shows of the receiver."""
        return {"listen": self.config.listen, **self.counts.snapshot()}

    def status(self) -> str:
        """The daemon's status line: spans by outcome and requests by HTTP status."""
        counts = self.counts.snapshot()
        spans = " ".join(f"{kind}={n}" for kind, n in counts["spans"].items())
        requests = " ".join(f"http_{code}={n}" for code, n in sorted(counts["requests"].items()))
        return f"spans {spans} requests {requests or 'none'}"

    async def expire_keys(self) -> None:
        """The scheduled job: forget the keys of spans older than a retry can come."""
        expired = await self._on_thread(self.receiver.expire_keys)
        if expired:
            log.info("forgot the keys of %d OTLP spans received before the raw retention", expired)

    async def _traces(self, request: web.Request) -> web.Response:
        try:
            response = await self._answer(request)
        except Exception as error:
            self._log_failure(error)
            response = _status(500, "internal error; see the collector's log", _kind(request))
        self.counts.answered(response.status)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        kind = _kind(request)
        if not self._authorized(request):
            answer = _status(401, "missing or wrong bearer token", kind)
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        if kind is None:
            return _status(
                415, f"Content-Type must be {PROTOBUF} or {JSON}, not {request.content_type}", None
            )
        if self.stopping():
            return _retry_later(503, "the collector is stopping", kind)
        if self.paused():
            return _retry_later(429, "the collector's InfluxDB outbox is full", kind)
        limit = self.config.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            return _too_large(limit, kind)
        async with self._slots:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _too_large(limit, kind)
            except RequestPayloadError as error:  # a gzip body that does not decompress
                return _unreadable(request, error, kind)
            return await self._store(body, kind)

    async def _store(self, body: bytes, kind: str) -> web.Response:
        try:
            outcome = await self._on_thread(partial(self._parse_and_store, body, kind))
        except Undecodable as error:
            return _status(400, str(error), kind)
        except EXPECTED as error:  # a full disk, a locked ledger: nothing stored
            problem = describe(error, self.receiver.ledger.path)
            log.error("storing an OTLP request failed: %s; its sender retries", problem)
            return _retry_later(503, "the collector cannot store spans right now", kind)
        if outcome is None:
            return _retry_later(503, "the collector is stopping", kind)
        self.counts.add(outcome)
        return _exported(outcome, kind)

    def _parse_and_store(self, body: bytes, kind: str) -> Outcome:
        return self.receiver.store(self.receiver.parse(body, kind))

    async def _on_thread(self, work: Callable[[], T]) -> T | None:
        """``work()`` on the receiver's thread, after the run in hand; None once closed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.receiver.run_now, work)

    def _authorized(self, request: web.Request) -> bool:
        if self._authorization is None:
            return True
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self._authorization)

    def _log_failure(self, error: Exception) -> None:
        """The traceback the first time an error happens, one line each time after."""
        what = f"{type(error).__name__}: {error}"
        if what in self._errors_seen:
            log.error("an OTLP request failed (500) again: %s", what)
            return
        self._errors_seen.add(what)
        log.error("an OTLP request failed (500); the receiver goes on", exc_info=error)


def _kind(request: web.Request) -> str | None:
    """The request's encoding (`PROTOBUF` or `JSON`), None for any other content type."""
    content_type = request.content_type.lower()
    return content_type if content_type in (PROTOBUF, JSON) else None


def _encoded(message: Message, kind: str) -> web.Response:
    if kind == JSON:
        text = json_format.MessageToJson(message, indent=None)
        return web.Response(body=text.encode(), content_type=JSON)
    return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)


def _status(code: int, message: str, kind: str | None) -> web.Response:
    """An error answer: a ``google.rpc.Status`` in the request's encoding, as OTLP asks (text
    for a request in neither)."""
    if kind is None:
        return web.Response(status=code, text=message + "\n")
    answer = _encoded(Status(message=message), kind)
    answer.set_status(code)
    return answer


def _retry_later(code: int, message: str, kind: str) -> web.Response:
    answer = _status(code, f"{message}; retry in {RETRY_AFTER_S} s", kind)
    answer.headers["Retry-After"] = str(RETRY_AFTER_S)
    return answer


def _unreadable(request: web.Request, error: RequestPayloadError, kind: str) -> web.Response:
    """A 400 that closes the connection: the rest of the body cannot be told from the next
    request. Its body is marked read, or aiohttp would read on and log the error again."""
    request.content.feed_eof()
    answer = _status(400, f"cannot read the body: {str(error).splitlines()[-1].strip()}", kind)
    answer.force_close()
    return answer


def _too_large(limit: int, kind: str) -> web.Response:
    return _status(413, f"the body is larger than receivers.otlp.max_request_bytes ({limit})", kind)


def _exported(outcome: Outcome, kind: str) -> web.Response:
    """The ExportTraceServiceResponse; a partial success names the first rejected spans."""
    response = ExportTraceServiceResponse()
    if outcome.rejected:
        reasons = [f"{label}: {reason}" for label, reason in outcome.rejected[:SHOWN_REASONS]]
        more = len(outcome.rejected) - SHOWN_REASONS
        response.partial_success.rejected_spans = len(outcome.rejected)
        response.partial_success.error_message = (
            f"{len(outcome.rejected)} span(s) rejected and quarantined: "
            + "; ".join(reasons)
            + (f" (+{more} more)" if more > 0 else "")
        )
    return _encoded(response, kind)
