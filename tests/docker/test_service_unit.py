"""docker/llm-collector.service: the keys a production unit needs, and `systemd-analyze verify`
(when systemd is on the machine) finding nothing to warn about."""

import shutil
import subprocess

import pytest

from tests.paths import ROOT

UNIT = ROOT / "docker" / "llm-collector.service"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of key -> values (systemd allows a key several times, e.g. Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_has_restart_user_state_signals_and_hardening():
    unit = parse(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] in ("simple", "notify")
    assert service["Restart"] == "on-failure"
    assert service["User"] == "llm-collector"
    assert service["StateDirectory"] == "llm-collector"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert service["TimeoutStopSec"] == "10"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["EnvironmentFile"] == "-/etc/llm-collector/env"
    assert service["ReadOnlyPaths"].startswith("-/")
    assert " run --config " in service["ExecStart"]
    assert (
        "LLM_COLLECTOR_LEDGER__PATH=/var/lib/llm-collector/ledger.db"
        in unit["Service"]["Environment"]
    )
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    # verify checks that ExecStart's program exists: point it at the installed command.
    program = shutil.which("llm-collector")
    assert program is not None
    unit = tmp_path / "llm-collector.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/llm-collector", program))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # unknown keys are only warnings
