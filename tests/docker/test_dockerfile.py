"""The Dockerfile: non-root, the ledger on a volume, /healthz as its health check (which really
tells 200 from 503), and a build context that holds what it copies."""

import fnmatch
import http.server
import json
import subprocess
import sys
import threading
from contextlib import contextmanager

from tests.docker.docker_stack import DOCKER, ROOT, container_config

STAGE_BASE = "python:3.12-slim"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    parsed = [tuple(ln.split(None, 1)) for ln in lines]
    last_from = max(i for i, (op, _) in enumerate(parsed) if op == "FROM")
    return [(op, " ".join(args.split())) for op, args in parsed[last_from:]]


def only(op: str) -> str:
    (args,) = [a for o, a in instructions() if o == op]
    return args


def test_runs_as_a_dedicated_user_from_a_slim_base():
    ops = [op for op, _ in instructions()]
    assert only("FROM") == STAGE_BASE
    assert only("USER") not in {"root", "0"}
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "RUN")
    assert ops[-1] == "CMD"


def test_ledger_volume_port_signal_and_command():
    config = container_config()
    assert json.loads(only("VOLUME")) == [str(config.ledger.path.parent)]
    assert only("EXPOSE") == "9464"
    assert only("STOPSIGNAL") == "SIGTERM"
    assert json.loads(only("CMD")) == [
        "llm-collector",
        "run",
        "--config",
        "/etc/llm-collector/collector.yaml",
    ]
    assert only("WORKDIR") == str(config.ledger.path.parent)


def healthcheck_command() -> list[str]:
    args = only("HEALTHCHECK")
    assert "--interval=30s" in args and "--timeout=5s" in args
    return json.loads(args[args.index("CMD ") + 4 :])


@contextmanager
def health_server(status: int):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert "http://127.0.0.1:9464/healthz" in code
    code = code.replace(":9464/", f":{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20).returncode


def test_healthcheck_passes_on_200_and_fails_on_503_or_silence():
    with health_server(200) as port:
        assert run_healthcheck(port) == 0
    with health_server(503) as port:
        assert run_healthcheck(port) != 0
    assert run_healthcheck(port) != 0  # nothing listens any more


def included(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last match wins)."""
    keep = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, bare) for p in prefixes):
            keep = negated
    return keep


def test_build_context_holds_what_the_dockerfile_copies():
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    patterns = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    sources = [
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert "examples/rules.yaml" in sources and "docker/collector.yaml" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert included(source, patterns), source
    for secret in ("docker/.env", "data/ledger.db", "tests/docker/node_modules/x", ".git/HEAD"):
        assert not included(secret, patterns), secret
    packages = ["schemas", "collector", "alerting", "reports"]
    assert all(f"COPY {p} {p}" in dockerfile for p in packages)
