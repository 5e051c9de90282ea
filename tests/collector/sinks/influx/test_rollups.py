"""Rollup rows reach InfluxDB's write API as ``llm_rollup`` points, per tier, once per window."""

import json
import subprocess
import sys

from tests.collector.victoria import VictoriaMetrics, export
from tests.paths import EXAMPLES

CLI = [sys.executable, "-c", "from collector.cli.main import main; main()"]


def run(*args, cwd):
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rollups_go_out_per_tier_once_per_window(tmp_path):
    with VictoriaMetrics(tmp_path / "vm") as vm:
        (tmp_path / "c.yaml").write_text(
            f"sources: [{{path: '{EXAMPLES / 'trace.jsonl'}'}}]\n"
            "ledger: {path: l.db}\nquarantine: {path: q.jsonl}\n"
            "tiers: {retention: {raw: forever}}\n"
            f"influx: {{url: '{vm.url}', org: llm, token: t, create_buckets: false}}\n"
        )
        run("ingest", "--config", "c.yaml", cwd=tmp_path)
        rolled = json.loads(
            run("rollup", "--config", "c.yaml", "--until", "2026-12-01", "--json", cwd=tmp_path)
        )
        run("ingest", "--config", "c.yaml", cwd=tmp_path)  # waits until the outbox is empty
        state = json.loads(run("status", "--config", "c.yaml", "--json", cwd=tmp_path))
        assert set(state["influx"]["pending"].values()) == {0}
        rollup_rows = sum(counts["rows"] for counts in rolled.values())
        assert state["influx"]["acknowledged_points"] == 4042 + rollup_rows  # calls + scores
        assert 0 <= state["influx"]["last_acknowledged_age_s"] < 60
        for tier in ("1h", "1d", "1mo"):
            points = [p for p in export(vm.url, "llm_rollup_count") if p.labels["tier"] == tier]
            assert len(points) == rolled[tier]["rows"]
            assert sum(p.value for p in points) == 4000  # every call, once per tier
            assert {"model", "provider", "task_type", "status"} <= set(points[0].labels)
        sketches = export(vm.url, "llm_rollup_latency_p95")
        assert sketches and all(p.value > 0 for p in sketches)
