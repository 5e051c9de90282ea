"""Runs tests/docker/flux_check.mjs (the WASM Flux language server) over a batch of queries."""

import json
import re
import shutil
import subprocess

import pytest

from tests.docker.docker_stack import ROOT

CHECKER = ROOT / "tests" / "docker" / "flux_check.mjs"
LSP_PACKAGE = ROOT / "tests" / "docker" / "node_modules" / "@influxdata" / "flux-lsp-browser"
SAMPLES = {
    "model": r"(gpt-4o-mini|openrouter\/meta-llama\/llama-3\.1-8b)",
    "task_type": "chat_reply",
    "tenant_id": ".*",
    "instance": r"(host-a|web-2\.eu)",
}
"""What Grafana puts for ``${name:regex}`` (its escapeRegex escapes ``/`` and ``.``, not ``-``):
two models, one task, All tenants (a custom allValue is put in as it is), two instances."""
BROKEN = {
    "broken:unknown-function": 'from(bucket: "llm_raw")\n  |> rangee(start: -1h)',
    "broken:wrong-type": "from(bucket: 7) |> range(start: v.timeRangeStart)",
    "broken:unbalanced": 'from(bucket: "llm_raw" |> range(start: v.timeRangeStart)',
    "broken:bad-argument": (
        'from(bucket: "llm_raw") |> range(start: v.timeRangeStart)\n'
        "  |> aggregateWindow(every: v.windowPeriod, function: sum)"
    ),
}
"""Queries the checker must refuse: proof that a passing run means something."""


def substitute(query: str) -> str:
    """The query as Grafana sends it, with the dashboard variables set to sample values."""

    def value(match: re.Match) -> str:
        return SAMPLES[match.group(1)]

    return re.sub(r"\$\{(\w+):regex\}", value, query)


def check(queries: dict[str, str]) -> dict[str, list[dict]]:
    """id -> diagnostics (line, character, severity, message) for each query, in one run."""
    node = shutil.which("node")
    if node is None or not LSP_PACKAGE.is_dir():
        pytest.fail(
            "the Flux checker needs node and `npm ci --prefix tests/docker` (make test does it)"
        )
    batch = [{"id": k, "query": substitute(q)} for k, q in queries.items()]
    done = subprocess.run(
        [node, str(CHECKER)], input=json.dumps(batch), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return {item["id"]: item["diagnostics"] for item in json.loads(done.stdout)}
