"""``llm-collector rollup`` and ``summary --tier`` as a user runs them, on the example trace."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from collector.tiers.raw_summary import METRIC_KEYS
from tests.paths import EXAMPLES

SPAN = ("--since", "2026-11-01", "--until", "2026-12-01")


def cli(*args, cwd):
    command = [sys.executable, "-c", "from collector.cli.main import main; main()", *args]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rolled(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rollup")
    shutil.copy(EXAMPLES / "trace.jsonl", workdir / "trace.jsonl")
    (workdir / "collector.yaml").write_text(
        "timezone: Europe/Berlin\nsources: [{path: 'trace*.jsonl'}]\n"
        "ledger: {path: state/ledger.db}\nquarantine: {path: state/quarantine.jsonl}\n"
    )
    cli("ingest", "--json", cwd=workdir)
    first = json.loads(cli("rollup", "--json", "--until", "2026-12-01", cwd=workdir))
    again = json.loads(cli("rollup", "--json", cwd=workdir))
    return workdir, first, again


def test_rollup_rolls_everything_ended_once(rolled):
    _, first, again = rolled
    assert first["1h"]["windows"] >= 48
    assert first["1d"]["windows"] >= 2
    assert first["1mo"]["windows"] == 1
    assert all(first[tier]["rows"] >= first[tier]["windows"] for tier in first)
    assert {tier: counts["windows"] for tier, counts in again.items()} == {
        "1h": 0,
        "1d": 0,
        "1mo": 0,
    }


def close(mine, theirs, rel):
    """Approximately equal; None (nothing priced or timed, e.g. score events only) only to None."""
    if theirs is None:
        return mine is None
    return mine == pytest.approx(theirs, rel=rel)


def test_summary_from_each_tier_has_the_raw_keys_and_sums(rolled):
    workdir, _, _ = rolled
    raw = json.loads(cli("summary", "--json", "--tier", "raw", "--by", "model", *SPAN, cwd=workdir))
    for tier in ("1h", "1d", "1mo"):
        got = json.loads(
            cli("summary", "--json", "--tier", tier, "--by", "model", *SPAN, cwd=workdir)
        )
        assert list(got["totals"]) == list(METRIC_KEYS)
        mine_all, raw_all = [got["totals"], *got["groups"]], [raw["totals"], *raw["groups"]]
        for mine, theirs in zip(mine_all, raw_all, strict=True):
            assert mine.get("model") == theirs.get("model")
            for key in ("requests", "errors", "total_tokens", "unpriced_requests", "quality_count"):
                assert mine[key] == theirs[key]
            assert close(mine["cost_usd"], theirs["cost_usd"], rel=1e-9)
            assert mine["latency_ms_max"] == theirs["latency_ms_max"]
            assert close(mine["latency_ms_p95"], theirs["latency_ms_p95"], rel=0.05)


def test_summary_refuses_a_dimension_the_tiers_lack(rolled):
    workdir, _, _ = rolled
    command = [sys.executable, "-c", "from collector.cli.main import main; main()"]
    result = subprocess.run(
        [*command, "summary", "--tier", "1d", "--by", "tenant_id", *SPAN],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "use --tier raw" in result.stderr


def test_summary_without_tier_reads_raw_events_that_are_still_there(rolled):
    workdir, _, _ = rolled
    assert "(raw)" in cli("summary", "--since", "2020-01-01", cwd=workdir)
