"""A local HTTP server answering ``POST /v1/chat/completions`` like OpenAI, recording requests.

A request for `FAILING_MODEL` gets OpenAI's error response (HTTP 400, ``invalid_request_error``);
any other model a completion with a ``usage`` block and the model's dated name.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAILING_MODEL = "gpt-4o-mini-fails"
DATED_SUFFIX = "-2024-07-18"
"""Appended to the requested model in answers, as OpenAI answers with the version it ran."""
ANSWER = "Fine."


@dataclass(frozen=True)
class Usage:
    """The token counts every answer reports."""

    prompt_tokens: int = 1200
    completion_tokens: int = 300
    cached_tokens: int = 1024


class FakeOpenAI:
    """Answers chat completions on 127.0.0.1; `requests` holds each request's JSON body."""

    def __init__(self, usage: Usage | None = None) -> None:
        self.usage = usage or Usage()
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                owner.requests.append(body)
                if self.path != "/v1/chat/completions":
                    self._answer(404, _error("not_found_error", f"no route {self.path}"))
                elif body.get("model") == FAILING_MODEL:
                    self._answer(400, _error("invalid_request_error", "model_not_found"))
                else:
                    self._answer(200, owner.completion(body["model"]))

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """What ``openai.OpenAI(base_url=...)`` takes."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def completion(self, model: str) -> dict[str, Any]:
        usage = self.usage
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1_790_000_000,
            "model": model + DATED_SUFFIX,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": f"fake OpenAI: {code}", "type": kind, "param": None, "code": code}}
