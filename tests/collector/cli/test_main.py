"""The command line as a user runs it: the real console script on real files."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from collector.tiers.raw_summary import METRIC_KEYS
from tests.paths import EXAMPLES


def cli(*args, cwd, env=None, check=True):
    command = [sys.executable, "-c", "from collector.cli.main import main; main()", *args]
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(EXAMPLES / "trace.jsonl", tmp_path / "trace.jsonl")
    (tmp_path / "collector.yaml").write_text(
        "sources: [{path: 'trace*.jsonl'}]\nledger: {path: state/ledger.db}\n"
        "quarantine: {path: state/quarantine.jsonl}\n"
    )
    return tmp_path


def test_ingest_counts_and_never_twice(workdir):
    first = json.loads(cli("ingest", "--json", cwd=workdir).stdout)
    lines = (workdir / "trace.jsonl").read_bytes().count(b"\n")
    assert first == {"lines": lines, "events": 4042, "quarantined": 5, "skipped": 0}
    again = json.loads(cli("ingest", "--json", cwd=workdir).stdout)
    assert again == {"lines": 0, "events": 0, "quarantined": 0, "skipped": 0}
    explicit = json.loads(cli("ingest", "--json", "trace.jsonl", cwd=workdir).stdout)
    assert explicit["events"] == 0
    quarantine = (workdir / "state/quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 5
    assert {"source", "offset", "reason", "line"} <= set(json.loads(quarantine[0]))


def test_ingest_appended_lines_only(workdir):
    cli("ingest", "--json", cwd=workdir)
    with (workdir / "trace.jsonl").open("a") as trace:
        trace.write('{"timestamp": "2026-11-20T00:00:00Z", "model": "gpt-4o", "call_id": "new"}\n')
    result = json.loads(cli("ingest", "--json", cwd=workdir).stdout)
    assert result == {"lines": 1, "events": 1, "quarantined": 0, "skipped": 0}


def test_summary_json_has_the_documented_keys(workdir):
    cli("ingest", cwd=workdir)
    result = json.loads(
        cli(
            "summary",
            "--since",
            "2026-11-18",
            "--until",
            "2026-11-20",
            "--by",
            "model,task_type",
            "--json",
            cwd=workdir,
        ).stdout
    )
    assert list(result["totals"]) == list(METRIC_KEYS)
    assert result["totals"]["requests"] == 4000
    assert sum(g["requests"] for g in result["groups"]) == 4000
    assert all({"model", "task_type"} <= set(g) for g in result["groups"])
    table = cli("summary", "--since", "2026-11-18", "--until", "2026-11-20", cwd=workdir).stdout
    assert "4,000" in table


def test_summary_rejects_bad_arguments(workdir):
    cli("ingest", cwd=workdir)
    bad_time = cli("summary", "--since", "last tuesday", cwd=workdir, check=False)
    assert bad_time.returncode == 2
    assert "not a time" in bad_time.stderr
    bad_dim = cli("summary", "--by", "user_id", cwd=workdir, check=False)
    assert bad_dim.returncode == 2
    assert "cannot group by user_id" in bad_dim.stderr
    backwards = cli(
        "summary", "--since", "2026-11-20", "--until", "2026-11-18", cwd=workdir, check=False
    )
    assert backwards.returncode == 2
    assert "2026-11-20 is not before 2026-11-18" in backwards.stderr


def test_wrong_input_is_a_clear_error_not_a_traceback(workdir):
    zone = cli("ingest", "--timezone", "Bad/Zone", "x.jsonl", cwd=workdir, check=False)
    assert zone.returncode == 2
    assert "'Bad/Zone' is not a time zone" in zone.stderr
    missing = cli("ingest", "nothing-here.jsonl", cwd=workdir)
    assert "no file matches nothing-here.jsonl" in missing.stderr
    cli("ingest", cwd=workdir)
    unwritable = cli(
        "export",
        "--since",
        "2026-11-19",
        "--until",
        "2026-11-20",
        "--out",
        str(workdir / "no" / "dir" / "x.csv"),
        cwd=workdir,
        check=False,
    )
    assert unwritable.returncode == 1
    assert "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr


def test_config_check_names_file_and_key(workdir):
    (workdir / "bad.yaml").write_text("ledger: {pth: x}\n")
    result = cli("config", "check", "--config", "bad.yaml", cwd=workdir, check=False)
    assert result.returncode == 1
    assert "bad.yaml: ledger.pth: unknown option; did you mean 'path'?" in result.stderr
    good = cli("config", "check", cwd=workdir, env={"LLM_COLLECTOR_TIMEZONE": "Europe/Berlin"})
    assert "timezone: Europe/Berlin" in good.stdout
    assert "path: state/ledger.db" in good.stdout


def test_status_shows_lag_totals_and_no_influx(workdir):
    cli("ingest", cwd=workdir)
    with (workdir / "trace.jsonl").open("a") as trace:
        trace.write('{"timestamp": "2026-11-20T00:00:00Z", "model": "gpt-4o"}\n')
    state = json.loads(cli("status", "--json", cwd=workdir).stdout)
    assert [f["lag_bytes"] for f in state["files"]] == [57]
    assert state["totals"]["events"] == 4042
    assert state["influx"] is None
    table = cli("status", cwd=workdir).stdout
    assert "influx: not configured" in table


def test_config_check_validates_the_rules_file(workdir):
    (workdir / "rules.yaml").write_text(
        "rules:\n  - name: Slow\n    kind: threshold\n    metric: latency_ms\n"
        "    aggregate: p95\n    window: 5m\n    op: '>'\n    threshold: 2000\n    fro: 2m\n"
    )
    (workdir / "with-rules.yaml").write_text("alerting: {rules_file: rules.yaml}\n")
    result = cli("config", "check", "--config", "with-rules.yaml", cwd=workdir, check=False)
    assert result.returncode == 1
    assert "rules.yaml" in result.stderr
    assert "Slow" in result.stderr
    assert "fro" in result.stderr
