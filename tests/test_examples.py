"""The shipped examples stay true: the config loads and documents every option."""

import yaml
from pydantic import BaseModel

from collector.configfile import load_config
from examples.generate_trace import generate
from schemas.config import CollectorConfig
from tests.paths import EXAMPLES


def _keys(model: type[BaseModel], data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(documented key, expected key) pairs for each nested section."""
    missing = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            missing.append(key)
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += _keys(annotation, data[name], f"{key}.")
    return missing


def test_example_config_loads_and_documents_every_option():
    config = load_config(EXAMPLES / "collector.yaml")
    data = yaml.safe_load((EXAMPLES / "collector.yaml").read_text())
    assert _keys(CollectorConfig, data) == []
    for source in data["sources"]:
        assert set(source) == {"path", "start_at", "timezone"}
    defaults = CollectorConfig()
    assert config.ledger == defaults.ledger
    assert config.ingest == defaults.ingest
    assert config.quarantine == defaults.quarantine
    assert config.content == defaults.content
    assert config.dimensions == defaults.dimensions


def test_example_trace_is_what_the_generator_writes(tmp_path):
    out = tmp_path / "trace.jsonl"
    generate(out)
    assert out.read_bytes() == (EXAMPLES / "trace.jsonl").read_bytes()
