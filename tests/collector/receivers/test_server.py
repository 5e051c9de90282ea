"""``POST /v1/traces`` in process: the real aiohttp server and receiver on a ledger in a
temporary directory, asked by a real HTTP client. Every answer OTLP defines (200 with or without
a partial success, in the request's encoding; 400, 401, 404, 405, 413, 415, 429, 503, 500), and
the server goes on serving after each."""

import asyncio
import contextlib
import gzip
import logging
import re
import sqlite3
import zlib

import aiohttp
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.receivers.otlp.server import RETRY_AFTER_S, OtlpServer, ReceiverError
from tests.collector.receivers.otlp_bodies import Recorder, json_body, protobuf_body
from tests.collector.receivers.receiver_harness import (
    JSON,
    PROTOBUF,
    Rig,
    chat_spans,
    model_less_span,
)

LIMIT = 64 * 1024
TOKEN = "s3cret-token-for-tests"


class Flags:
    paused = False
    stopping = False


@contextlib.asynccontextmanager
async def serving(rig: Rig, flags: Flags | None = None):
    flags = flags or Flags()
    otlp = rig.config.receivers.otlp
    server = OtlpServer(
        rig.receiver, otlp, paused=lambda: flags.paused, stopping=lambda: flags.stopping
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession(base, auto_decompress=False) as session:
            yield server, session
    finally:
        await server.close()


@pytest.fixture
def rig(tmp_path):
    made = Rig(tmp_path, receivers={"otlp": {"listen": "127.0.0.1:0", "max_request_bytes": LIMIT}})
    yield made
    made.receiver.close()


def message(body: bytes, content_type: str) -> str:
    """The message of an error answer: a google.rpc.Status in protobuf or JSON, or text."""
    if content_type.startswith(PROTOBUF):
        return Status.FromString(body).message
    if content_type.startswith(JSON):
        return orjson.loads(body)["message"]
    return body.decode()


def spans(count: int = 3, rejected: bool = False):
    recorder = Recorder()
    sent = chat_spans(recorder, count)
    if rejected:
        model_less_span(recorder)
    return sent, recorder.spans()


async def post(session, body: bytes, content_type: str = PROTOBUF, **headers):
    async with session.post(
        "/v1/traces", data=body, headers={"Content-Type": content_type, **headers}
    ) as answer:
        return answer.status, answer.headers, await answer.read()


def test_protobuf_and_json_are_answered_in_their_own_encoding(rig):
    sent, made = spans(4)

    async def exchange():
        async with serving(rig) as (_, session):
            as_protobuf = await post(session, protobuf_body(made[:2]))
            as_json = orjson.dumps(json_body(encode_spans(made[2:])))
            return as_protobuf, await post(session, as_json, "application/json; charset=utf-8")

    (status, headers, body), (json_status, json_headers, json_answer) = asyncio.run(exchange())
    assert (status, headers["Content-Type"]) == (200, PROTOBUF)
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert (json_status, json_headers["Content-Type"].split(";")[0]) == (200, JSON)
    assert orjson.loads(json_answer) == {}
    assert rig.call_ids() == sorted(s.call_id for s in sent)


def test_gzip_bodies_are_accepted(rig):
    sent, made = spans(3)

    async def exchange():
        async with serving(rig) as (_, session):
            return await post(session, gzip.compress(protobuf_body(made)), **GZIP)

    assert asyncio.run(exchange())[0] == 200
    assert rig.call_ids() == sorted(s.call_id for s in sent)


GZIP = {"Content-Encoding": "gzip"}


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
def test_rejected_spans_make_a_partial_success_naming_them(rig, encoding):
    sent, made = spans(2, rejected=True)
    body = (
        protobuf_body(made) if encoding == PROTOBUF else orjson.dumps(json_body(encode_spans(made)))
    )

    async def exchange():
        async with serving(rig) as (_, session):
            return await post(session, body, encoding)

    status, _, answer = asyncio.run(exchange())
    assert status == 200
    if encoding == PROTOBUF:
        partial = ExportTraceServiceResponse.FromString(answer).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        partial = orjson.loads(answer)["partialSuccess"]
        rejected, message = int(partial["rejectedSpans"]), partial["errorMessage"]
    assert rejected == 1
    assert message.startswith("1 span(s) rejected and quarantined: span 'chat' (trace ")
    assert message.endswith(": model: required for an llm_call event")
    assert rig.call_ids() == sorted(s.call_id for s in sent)
    assert [e["source"] for e in rig.quarantined()] == ["otlp"]


def bomb() -> bytes:
    """256 MiB of zeros, gzip'd to a quarter of a megabyte."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(256)) + packer.flush()


BAD = {
    "garbage protobuf": ({"data": b"\xff\xfe garbage"}, 400, "not an OTLP protobuf"),
    "garbage JSON": ({"data": b"{nope", "content_type": JSON}, 400, "invalid JSON"),
    "a gzip body that is not gzip": ({"data": b"not gzip", "headers": GZIP}, 400, "cannot read"),
    "another content type": ({"data": b"x", "content_type": "text/plain"}, 415, "must be"),
    "a body over the limit": ({"data": bytes(LIMIT + 1)}, 413, "max_request_bytes"),
    "a 50 MB body": ({"data": bytes(50 * 1024 * 1024)}, 413, "max_request_bytes"),
    "a gzip bomb": ({"data": bomb(), "headers": GZIP}, 413, "max_request_bytes"),
}


@pytest.mark.parametrize("request_", BAD.values(), ids=BAD.keys())
def test_a_bad_request_gets_its_status_and_the_server_goes_on(rig, request_, caplog):
    given, expected, text = request_
    sent, made = spans(2)

    async def exchange():
        async with serving(rig) as (_, session):
            kind = given.get("content_type", PROTOBUF)
            bad = await post(session, given["data"], kind, **given.get("headers", {}))
            return bad, await post(session, protobuf_body(made))

    with caplog.at_level(logging.WARNING):
        (status, headers, body), (good, _, _) = asyncio.run(exchange())
    assert status == expected
    assert text in message(body, headers["Content-Type"])
    assert caplog.records == []  # the sender's fault: nothing for the collector's log
    assert good == 200
    assert rig.call_ids() == sorted(s.call_id for s in sent)


def test_other_paths_and_methods(rig):
    async def exchange():
        async with (
            serving(rig) as (_, session),
            session.post("/v1/metrics", data=b"") as missing,
            session.get("/v1/traces") as wrong_method,
        ):
            return missing.status, wrong_method.status

    assert asyncio.run(exchange()) == (404, 405)


@pytest.mark.parametrize("given", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_without_the_right_bearer_token_nothing_is_stored(tmp_path, given):
    rig = Rig(tmp_path, receivers={"otlp": {"listen": "127.0.0.1:0", "token": TOKEN}})
    _, made = spans(2)

    async def exchange():
        async with serving(rig) as (_, session):
            headers = {} if given is None else {"Authorization": given}
            refused = await post(session, protobuf_body(made), **headers)
            right = {"Authorization": f"Bearer {TOKEN}"}
            return refused, await post(session, protobuf_body(made), **right)

    (status, headers, body), (accepted, _, _) = asyncio.run(exchange())
    assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")
    assert TOKEN not in body.decode(errors="replace")
    assert accepted == 200
    assert len(rig.call_ids()) == 2
    rig.receiver.close()


def test_the_token_can_come_from_a_file_and_an_unreadable_file_stops_the_start(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    rig = Rig(tmp_path, receivers={"otlp": {"listen": "127.0.0.1:0", "token_file": str(secret)}})
    otlp = rig.config.receivers.otlp
    server = OtlpServer(rig.receiver, otlp, paused=bool, stopping=bool)
    assert server._authorization == f"Bearer {TOKEN}".encode()
    secret.unlink()
    with pytest.raises(ReceiverError, match=re.escape(f"receivers.otlp.token_file {secret}")):
        OtlpServer(rig.receiver, otlp, paused=bool, stopping=bool)
    rig.receiver.close()


@pytest.mark.parametrize(("flag", "status"), [("paused", 429), ("stopping", 503)])
def test_a_full_outbox_or_a_stop_asks_to_retry_later_and_stores_nothing(rig, flag, status):
    flags = Flags()
    setattr(flags, flag, True)
    _, made = spans(2)

    async def exchange():
        async with serving(rig, flags) as (_, session):
            refused = await post(session, protobuf_body(made))
            setattr(flags, flag, False)
            return refused, await post(session, protobuf_body(made))

    (got, headers, body), (later, _, _) = asyncio.run(exchange())
    assert (got, headers["Retry-After"]) == (status, str(RETRY_AFTER_S))
    assert "retry in" in message(body, headers["Content-Type"])
    assert later == 200
    assert len(rig.call_ids()) == 2


def test_a_ledger_that_cannot_be_written_answers_503_and_the_retry_stores_once(rig):
    sent, made = spans(2)
    rig.receiver.ledger.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(rig.config.ledger.path, isolation_level=None)

    async def exchange():
        async with serving(rig) as (_, session):
            other.execute("BEGIN IMMEDIATE")
            refused = await post(session, protobuf_body(made))
            other.execute("ROLLBACK")
            return refused, await post(session, protobuf_body(made))

    (status, headers, _), (retried, _, _) = asyncio.run(exchange())
    other.close()
    assert (status, headers["Retry-After"]) == (503, str(RETRY_AFTER_S))
    assert retried == 200
    assert rig.call_ids() == sorted(s.call_id for s in sent)


def test_a_failing_handler_answers_500_logs_the_traceback_once_and_goes_on(
    rig, monkeypatch, caplog
):
    sent, made = spans(2)

    def broken(*_args):
        raise RuntimeError("a bug")

    async def exchange():
        async with serving(rig) as (_, session):
            with monkeypatch.context() as patch:
                patch.setattr(rig.receiver.parser, "parse_object", broken)
                failed = [await post(session, protobuf_body(made)) for _ in range(3)]
            return failed, await post(session, protobuf_body(made))

    # import-linter's run (tests/test_architecture.py) disables the loggers that exist then
    monkeypatch.setattr(logging.getLogger("collector.otlp"), "disabled", False)
    with caplog.at_level(logging.ERROR, logger="collector.otlp"):
        failed, (good, _, _) = asyncio.run(exchange())
    assert [status for status, _, _ in failed] == [500, 500, 500]
    records = [r for r in caplog.records if r.name == "collector.otlp"]
    assert [r.exc_info is not None for r in records] == [True, False, False]
    assert "RuntimeError: a bug" in records[1].getMessage()
    assert good == 200
    assert rig.call_ids() == sorted(s.call_id for s in sent)


def test_counts_by_outcome_and_status(rig):
    _, made = spans(2, rejected=True)

    async def exchange():
        async with serving(rig) as (server, session):
            await post(session, protobuf_body(made))
            await post(session, protobuf_body(made))
            await post(session, b"x", "text/plain")
            return server.state(), server.status()

    state, line = asyncio.run(exchange())
    assert state["spans"] == {"accepted": 2, "duplicates": 2, "rejected": 2, "skipped": 0}
    assert state["requests"] == {"200": 2, "415": 1}
    assert line == (
        "spans accepted=2 duplicates=2 rejected=2 skipped=0 requests http_200=2 http_415=1"
    )


def test_a_port_in_use_is_an_error_saying_what_to_do(rig):
    async def twice():
        async with serving(rig) as (server, _):
            otlp = rig.config.receivers.otlp.model_copy(
                update={"listen": f"127.0.0.1:{server.port}"}
            )
            second = OtlpServer(rig.receiver, otlp, paused=bool, stopping=bool)
            with pytest.raises(ReceiverError, match=r"set receivers\.otlp\.listen to a free"):
                await second.start()

    asyncio.run(twice())
