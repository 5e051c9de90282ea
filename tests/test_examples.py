"""The shipped examples stay true: the config loads and shows every option, optional ones too."""

import os
import re

import pytest
import yaml

from collector.configfile import load_config
from examples.generate_trace import generate
from schemas.config import CollectorConfig
from tests.config_options import option_paths, set_paths
from tests.paths import EXAMPLES

OFF = re.compile(r"^(?P<key> *[\w.-]+:) (null|\[\])(?P<comment> +#.*)?$")
"""An optional part that is off: ``key: null`` or ``key: []``."""


def turn_on(text: str) -> str:
    """The example with every commented-out part turned on, as its header tells a user to.

    A part is the ``#  `` lines right below a ``key: null`` / ``key: []`` line, their ``#`` at
    the key's indentation: the ``null`` / ``[]`` goes, and so does each line's ``#``.
    """
    lines = text.splitlines()
    out, block = [], None
    for number, line in enumerate(lines):
        if block is not None and line.startswith(block + "#  "):
            out.append(block + line[len(block) + 1 :])
            continue
        block = None
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if (off := OFF.match(line)) and following.startswith(_indent(line) + "#  "):
            out.append(off["key"])
            block = _indent(line)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The examples alone: no LLM_COLLECTOR_* variable from the outside."""
    for name in list(os.environ):
        if name.startswith("LLM_COLLECTOR_"):
            monkeypatch.delenv(name)


def test_example_config_loads_with_the_defaults():
    config = load_config(EXAMPLES / "collector.yaml")
    defaults = CollectorConfig()
    assert config.ledger == defaults.ledger
    assert config.ingest == defaults.ingest
    assert config.quarantine == defaults.quarantine
    assert config.content == defaults.content
    assert config.dimensions == defaults.dimensions
    assert config.tiers == defaults.tiers
    assert config.alerting == defaults.alerting
    assert config.reports == defaults.reports
    assert config.server == defaults.server
    assert config.influx is None
    assert config.receivers.otlp is None


def test_example_config_with_every_part_turned_on_loads_and_shows_every_option(tmp_path):
    enabled = tmp_path / "collector.yaml"
    enabled.write_text(turn_on((EXAMPLES / "collector.yaml").read_text()))
    config = load_config(enabled)
    assert config.influx is not None and config.influx.instance == "web-1"
    assert config.receivers.otlp is not None and config.receivers.otlp.listen == "127.0.0.1:4318"
    kinds = [
        next(k for k in ("slack", "email", "console") if getattr(r, k))
        for r in config.alerting.receivers
    ]
    assert kinds == ["slack", "slack", "email", "console"]
    assert sorted(config.reports.schedules()) == ["daily", "monthly", "weekly"]
    shown = set_paths(CollectorConfig, yaml.safe_load(enabled.read_text()))
    missing = sorted(option_paths(CollectorConfig) - shown)
    assert missing == [], f"examples/collector.yaml does not show {', '.join(missing)}"


def test_turning_on_removes_only_the_hash_of_the_part_below_an_off_key():
    text = (
        "a: null\n#  url: x\n#  # a note\n# prose\n"
        "b:\n  c: []\n  #  - {d: 1}\n  # prose\n  e: null   # not followed by a part\n"
    )
    assert turn_on(text) == (
        "a:\n  url: x\n  # a note\n# prose\n"
        "b:\n  c:\n    - {d: 1}\n  # prose\n  e: null   # not followed by a part\n"
    )


def test_a_missing_option_is_named(tmp_path):
    text = turn_on((EXAMPLES / "collector.yaml").read_text())
    without = "\n".join(line for line in text.splitlines() if "base_url:" not in line)
    shown = set_paths(CollectorConfig, yaml.safe_load(without))
    assert option_paths(CollectorConfig) - shown == {"alerting.receivers[].slack.base_url"}


def test_example_trace_is_what_the_generator_writes(tmp_path):
    out = tmp_path / "trace.jsonl"
    generate(out)
    assert out.read_bytes() == (EXAMPLES / "trace.jsonl").read_bytes()
