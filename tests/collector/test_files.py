"""What the collector creates is private (0600 files, 0700 directories) under a umask that
would make it readable by everyone; what already exists keeps its mode."""

import os
import stat

import pytest
from click.testing import CliRunner

from collector import files
from collector.cli.main import main
from collector.ledger.connection import Ledger

LINES = (
    b'{"timestamp": "2026-11-20T10:00:00Z", "model": "m", "tenant_id": "acme"}\n'
    b'{"timestamp": "2026-11-20T10:00:01Z", "model": ["m"], "prompt": "SSN 219-09-9999"}\n'
)


@pytest.fixture(autouse=True)
def open_umask():
    """The common default umask: without care, files come out 0644 and directories 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_missing_directories_are_made_private_and_existing_ones_keep_their_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    files.make_dirs(shared / "a" / "b")
    assert (mode(shared), mode(shared / "a"), mode(shared / "a" / "b")) == (0o755, 0o700, 0o700)
    files.make_dirs(shared / "a" / "b")  # exists: nothing happens
    assert mode(shared / "a" / "b") == 0o700


def test_the_ledger_and_its_wal_and_shm_files_are_private(tmp_path):
    ledger = Ledger(tmp_path / "state" / "ledger.db")
    try:
        with ledger.transaction() as db:
            db.execute(
                "INSERT INTO calls (ts_us, model, status, stream_id) VALUES (1, 'm', 'ok', 1)"
            )
        found = {p.name: mode(p) for p in (tmp_path / "state").iterdir()}
    finally:
        ledger.close()
    assert found == {"ledger.db": 0o600, "ledger.db-wal": 0o600, "ledger.db-shm": 0o600}
    assert mode(tmp_path / "state") == 0o700


def test_an_existing_ledger_keeps_its_mode(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    path.chmod(0o640)  # a group that reads it, chosen by the user
    Ledger(path).close()
    assert mode(path) == 0o640


def test_quarantine_backup_and_export_are_private(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "trace.jsonl").write_bytes(LINES)
    state = tmp_path / "var" / "state"
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"sources: [{{path: '{tmp_path}/logs/*.jsonl'}}]\n"
        f"ledger: {{path: '{state}/ledger.db'}}\n"
        f"quarantine: {{path: '{state}/bad/quarantine.jsonl'}}\n"
    )
    (tmp_path / "backups").mkdir()
    for args in (
        ["ingest"],
        ["backup", str(tmp_path / "backups" / "ledger.db")],
        ["export", "--since", "2026-11-20", "--until", "2026-11-21", "--out", str(tmp_path / "x")],
    ):
        result = CliRunner().invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
    assert mode(state / "bad" / "quarantine.jsonl") == 0o600
    assert mode(tmp_path / "backups" / "ledger.db") == 0o600
    assert mode(tmp_path / "x") == 0o600
    assert [mode(d) for d in (tmp_path / "var", state, state / "bad")] == [0o700] * 3
    assert mode(tmp_path / "backups") == 0o755  # the user's directory, not ours
