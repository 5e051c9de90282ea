"""What the tests of docker/ share: the stack's files, the compose variables, the collector's
configuration as the container reads it, and what that collector really writes to InfluxDB."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import orjson
import yaml

from collector.configfile import load_config
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import Pricer
from collector.ledger.connection import Batch, Ledger
from collector.sinks.influx.build import build_outbox
from collector.tiers.marks import mark_written
from collector.tiers.rollup import Roller
from schemas.config import CollectorConfig
from tests.paths import ROOT

DOCKER = ROOT / "docker"
GRAFANA = DOCKER / "grafana"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
"""``${NAME}`` or ``${NAME:-default}`` in the compose file."""


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    """NAME=value lines of .env.example."""
    entries = {}
    for line in (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip()
    return entries


def interpolate(text: str, env: dict[str, str]) -> str:
    """What docker compose makes of ``${NAME}`` / ``${NAME:-default}`` given ``env``."""
    return VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def collector_environment() -> dict[str, str]:
    """The collector container's environment: the Dockerfile's ENV, then compose's."""
    env = env_example()
    service = compose()["services"]["collector"]
    values = dict(dockerfile_env())
    values.update({k: interpolate(str(v), env) for k, v in service["environment"].items()})
    return values


def dockerfile_env() -> dict[str, str]:
    """ENV settings of the Dockerfile's last stage (``ENV A=1 \\ B=2`` form)."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    last_stage = text.split("\nFROM ")[-1]
    pairs = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            pairs.update(dict(p.split("=", 1) for p in line[4:].split()))
    return pairs


@contextmanager
def environment(values: dict[str, str]):
    """Only ``values`` among the LLM_COLLECTOR_* variables, for the block."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("LLM_COLLECTOR_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


def container_config() -> CollectorConfig:
    """docker/collector.yaml read by the real loader with the container's environment."""
    env = {k: v for k, v in collector_environment().items() if k.startswith("LLM_COLLECTOR_")}
    with environment(env):
        return load_config(DOCKER / "collector.yaml")


def load_generator() -> ModuleType:
    """docker/grafana/build_dashboards.py as a module (docker/ is not a package)."""
    path = GRAFANA / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("build_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ----- what the collector writes -----------------------------------------------------------


@dataclass
class Written:
    """Buckets, and per measurement its tag keys and field names, from real line protocol."""

    buckets: set[str] = field(default_factory=set)
    tags: dict[str, set[str]] = field(default_factory=dict)
    fields: dict[str, set[str]] = field(default_factory=dict)

    def add(self, bucket: str, line: str) -> None:
        series, field_set, _ = re.split(r"(?<!\\) ", line)
        measurement, *tags = re.split(r"(?<!\\),", series)
        self.buckets.add(bucket)
        self.tags.setdefault(measurement, set()).update(t.split("=", 1)[0] for t in tags)
        names = (f.split("=", 1)[0] for f in re.split(r",(?=\w+=)", field_set))
        self.fields.setdefault(measurement, set()).update(names)


def _trace_lines() -> list[bytes]:
    """Calls with every field set (one unpriced, one failed) and a score, two hours ago."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    base = {
        "timestamp": when,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "task_type": "chat_reply",
        "operation": "chat",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 400,
        "cache_write_tokens": 100,
        "reasoning_tokens": 50,
        "cost_usd": 0.0021,
        "latency_ms": 812.5,
        "tenant_id": "acme",
        "agent_name": "helper",
        "user_id": "u1",
        "trace_id": "t1",
        "quality_score": 0.9,
    }
    events = [
        base,
        {**base, "model": "acme-finetune-v3", "provider": "self-hosted", "cost_usd": None},
        {**base, "status": "error", "error_type": "rate_limit", "trace_id": "t2"},
        {
            "type": "score",
            "timestamp": when,
            "name": "user_feedback",
            "value": 1.0,
            "trace_id": "t1",
            "task_type": "chat_reply",
            "model": "gpt-4o-mini",
            "tenant_id": "acme",
            "scenario": "refund",
        },
    ]
    return [orjson.dumps({k: v for k, v in e.items() if v is not None}) for e in events]


def written_by(config: CollectorConfig, workdir: Path) -> Written:
    """Parse, store and roll up a small trace with the collector's own code, then encode the
    ledger through the outbox's feeds exactly as they would go to InfluxDB."""
    ledger = Ledger(workdir / "ledger.db")
    parser = LineParser(Pricer(config.pricing.overrides), ContentPolicy(config.content))
    stream = ledger.add_stream("docker-test", "trace.jsonl", 1, 1, 0, b"")
    parsed = [parser.parse(line, ZoneInfo("UTC"), stream.id) for line in _trace_lines()]
    batch = Batch(
        calls=[p.row for p in parsed if p.kind == "call"],
        scores=[p.row for p in parsed if p.kind == "score"],
    )
    ledger.commit(stream, batch, 1, mark_written)
    Roller(ledger.db, ZoneInfo(config.timezone), config.dimensions).roll(4_102_444_800_000_000)
    outbox = build_outbox(config, ledger)
    assert outbox is not None
    written = Written()
    for feed in outbox.feeds:
        for _, line in feed.fetch(ledger, 0, 1000):
            assert isinstance(line, str), line
            written.add(feed.bucket, line)
    outbox.writer.close()
    ledger.close()
    return written
