"""Loading the configuration: the YAML file, the environment, and errors that say where."""

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.configfile import ConfigError, load_config
from collector.ledger.events import SCORE_COLUMNS
from collector.sinks.influx.lineprotocol import LineEncoder
from schemas.config import ALLOWED_DIMENSIONS, CollectorConfig, InfluxConfig, PriceOverride


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No LLM_COLLECTOR_* variable from the outside, and a directory without collector.yaml."""
    for name in list(os.environ):
        if name.startswith("LLM_COLLECTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path, text, name="collector.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# ----- defaults and files ----------------------------------------------------------------------


def test_missing_default_file_gives_defaults(tmp_path):
    config = load_config()
    assert config == CollectorConfig()
    assert config.ledger.path == Path("data/ledger.db")
    assert config.timezone == "UTC"
    assert config.dimensions == ["model", "provider", "task_type", "status"]
    assert config.content.store is False
    assert [s.path for s in config.sources] == ["logs/trace*.jsonl"]


def test_default_file_in_the_working_directory_is_read(tmp_path):
    write(tmp_path, "ledger: {path: here.db}\n")
    assert load_config().ledger.path == Path("here.db")


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == CollectorConfig()
    assert load_config(write(tmp_path, "# only a comment\n")) == CollectorConfig()


def test_missing_named_file_is_an_error(tmp_path):
    message = error_of(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in message
    assert "no such configuration file" in message


def test_config_variable_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "ledger: {path: from-env-file.db}\n", name="elsewhere.yaml")
    monkeypatch.setenv("LLM_COLLECTOR_CONFIG", str(path))
    assert load_config().ledger.path == Path("from-env-file.db")
    # the command-line option beats the variable
    other = write(tmp_path, "ledger: {path: explicit.db}\n", name="explicit.yaml")
    assert load_config(other).ledger.path == Path("explicit.db")


def test_config_variable_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COLLECTOR_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert f"{tmp_path / 'missing.yaml'}: no such configuration file" in str(info.value)


def test_full_file(tmp_path):
    path = write(
        tmp_path,
        """
timezone: Europe/Berlin
sources:
  - path: "logs/*.jsonl"
    start_at: end
    timezone: America/New_York
ledger: {path: state/ledger.db}
quarantine: {path: state/bad.jsonl, keep_bytes: 128}
ingest: {max_line_bytes: 2048, poll_interval: 2s, rescan_interval: 1m}
dimensions: [model, tenant_id, agent_name]
pricing:
  overrides:
    in-house-7b: {input: 0.1, output: 0.2}
content: {store: true, hash: true}
""",
    )
    config = load_config(path)
    assert config.timezone == "Europe/Berlin"
    source = config.sources[0]
    assert (source.path, source.start_at, source.timezone) == (
        "logs/*.jsonl",
        "end",
        "America/New_York",
    )
    assert config.ledger.path == Path("state/ledger.db")
    assert (config.quarantine.path, config.quarantine.keep_bytes) == (Path("state/bad.jsonl"), 128)
    assert config.ingest.max_line_bytes == 2048
    assert config.ingest.poll_interval == timedelta(seconds=2)
    assert config.ingest.rescan_interval == timedelta(minutes=1)
    assert config.dimensions == ["model", "tenant_id", "agent_name"]
    assert config.pricing.overrides == {"in-house-7b": PriceOverride(input=0.1, output=0.2)}
    assert (config.content.store, config.content.hash) == (True, True)
    dumped = config.masked()
    assert dumped["ingest"]["poll_interval"] == "2s"
    assert dumped["ingest"]["rescan_interval"] == "1m"


def test_the_accepted_timestamps_default_to_1970_until_a_day_ahead(tmp_path):
    timestamps = load_config(write(tmp_path, "")).ingest.timestamps
    assert timestamps.earliest == datetime(1970, 1, 1, tzinfo=UTC)
    assert timestamps.ahead == timedelta(days=1)
    assert CollectorConfig().masked()["ingest"]["timestamps"] == {
        "earliest": "1970-01-01T00:00:00Z",
        "ahead": "1d",
    }


@pytest.mark.parametrize(
    ("earliest", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),  # a YAML date: its UTC midnight
        ("2024-03-01T06:00:00", datetime(2024, 3, 1, 6, tzinfo=UTC)),  # naive: UTC
        ("2024-03-01T06:00:00+02:00", datetime(2024, 3, 1, 4, tzinfo=UTC)),
        ("'2024-03-01T06:00:00Z'", datetime(2024, 3, 1, 6, tzinfo=UTC)),
        ("1677-09-22", datetime(1677, 9, 22, tzinfo=UTC)),  # InfluxDB's first whole day
    ],
)
def test_the_earliest_timestamp_is_an_instant(tmp_path, earliest, expected):
    text = f"ingest:\n  timestamps: {{earliest: {earliest}, ahead: 2h}}\n"
    timestamps = load_config(write(tmp_path, text)).ingest.timestamps
    assert timestamps.earliest == expected
    assert timestamps.earliest.utcoffset() is not None
    assert timestamps.ahead == timedelta(hours=2)


def test_the_accepted_timestamps_come_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COLLECTOR_INGEST__TIMESTAMPS__AHEAD", "30m")
    monkeypatch.setenv("LLM_COLLECTOR_INGEST__TIMESTAMPS__EARLIEST", "2025-01-01T00:00:00Z")
    ingest = load_config(write(tmp_path, "ingest: {timestamps: {ahead: 2h}}\n")).ingest
    assert ingest.timestamps.ahead == timedelta(minutes=30)
    assert ingest.timestamps.earliest == datetime(2025, 1, 1, tzinfo=UTC)


# ----- errors name the file, the key and the fix ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ("sourcs:\n  - path: x\n", "sourcs", "sources"),
        ("ledger: {pth: x}\n", "ledger.pth", "path"),
        ("quarantine: {keepbytes: 100}\n", "quarantine.keepbytes", "keep_bytes"),
        ("sources:\n  - path: x\n    timzone: UTC\n", "sources.0.timzone", "timezone"),
        ("ingest: {poll_intervall: 1s}\n", "ingest.poll_intervall", "poll_interval"),
        ("content: {stor: true}\n", "content.stor", "store"),
        (
            "pricing:\n  overrides:\n    my-model: {input: 1, output: 2, cahce_read: 3}\n",
            "pricing.overrides.my-model.cahce_read",
            "cache_read",
        ),
        ("dimension: [model]\n", "dimension", "dimensions"),
    ],
)
def test_typo_names_file_key_and_right_name(tmp_path, text, key, suggestion):
    path = write(tmp_path, text)
    message = error_of(path)
    assert f"{path}: {key}: unknown option; did you mean {suggestion!r}?" in message


def test_unknown_key_without_a_close_match_still_names_it(tmp_path):
    path = write(tmp_path, "ledger: {zzzzzz: 1}\n")
    message = error_of(path)
    assert f"{path}: ledger.zzzzzz: unknown option" in message
    assert "did you mean" not in message


def test_every_problem_is_listed(tmp_path):
    path = write(tmp_path, "sourcs: []\nledger: {pth: x}\ntimezone: Nowhere/Land\n")
    message = error_of(path)
    assert "3 problem(s)" in message
    assert "sourcs" in message
    assert "ledger.pth" in message
    assert "Nowhere/Land" in message


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("ingest: {max_line_bytes: lots}\n", "ingest.max_line_bytes", "valid integer"),
        ("ingest: {max_line_bytes: 10}\n", "ingest.max_line_bytes", "greater than or equal"),
        ("ingest: {poll_interval: soon}\n", "ingest.poll_interval", "'soon' is not a duration"),
        ("ingest: {poll_interval: -5}\n", "ingest.poll_interval", "cannot be negative"),
        ("ingest: {poll_interval: .inf}\n", "ingest.poll_interval", "not a usable duration"),
        ("quarantine: {keep_bytes: [1]}\n", "quarantine.keep_bytes", "valid integer"),
        ("sources: {path: x}\n", "sources", "valid list"),
        ("sources: [{start_at: end}]\n", "sources.0.path", "Field required"),
        ("sources: [{path: x, start_at: middle}]\n", "sources.0.start_at", "'beginning' or 'end'"),
        ("ledger: x.db\n", "ledger", "dictionary"),
        ("content: {store: maybe}\n", "content.store", "valid boolean"),
        (
            "pricing: {overrides: {m: {input: -1, output: 1}}}\n",
            "pricing.overrides.m.input",
            "greater than or equal to 0",
        ),
        ("pricing: {overrides: {m: {input: 1}}}\n", "pricing.overrides.m.output", "required"),
        ("content: {store: true, hash: true, redact: true}\n", "content", "choose one of"),
        (
            "ingest: {timestamps: {earliest: 1600-01-01}}\n",
            "ingest.timestamps.earliest",
            "must be 1677-09-22 or later",
        ),
        (
            "ingest: {timestamps: {earliest: last tuesday}}\n",
            "ingest.timestamps.earliest",
            "valid datetime",
        ),
        ("ingest: {timestamps: {ahead: 400d}}\n", "ingest.timestamps.ahead", "at most 365d"),
        ("ingest: {timestamps: {ahead: soon}}\n", "ingest.timestamps.ahead", "not a duration"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    message = error_of(path)
    line = next(x for x in message.splitlines() if f"{path}: {key}:" in x)
    assert fragment in line, line


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("timezone: Europe/Berln\n", "timezone"),
        ("timezone: CEST\n", "timezone"),
        ("timezone: ../../etc/passwd\n", "timezone"),
        ("sources: [{path: x, timezone: Mars/Olympus}]\n", "sources.0.timezone"),
    ],
)
def test_unknown_time_zone(tmp_path, text, key):
    path = write(tmp_path, text)
    message = error_of(path)
    assert f"{path}: {key}: unknown time zone" in message
    assert "IANA" in message


@pytest.mark.parametrize("forbidden", ["user_id", "session_id", "trace_id", "call_id"])
def test_forbidden_dimension_named_with_the_reason(tmp_path, forbidden):
    path = write(tmp_path, f"dimensions: [model, {forbidden}]\n")
    message = error_of(path)
    assert f"{path}: dimensions: {forbidden} cannot be a dimension" in message
    assert "cardinality" in message
    for allowed in ALLOWED_DIMENSIONS:
        assert allowed in message


def test_duplicate_dimension(tmp_path):
    assert "listed twice" in error_of(write(tmp_path, "dimensions: [model, model]\n"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("- a\n- b\n", "must be a mapping"), ("a: [\n", "not valid YAML"), ("42\n", "mapping")],
)
def test_file_that_is_not_a_mapping(tmp_path, text, fragment):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(str(path))
    assert fragment in message


# ----- the environment ---------------------------------------------------------------------------


def test_environment_beats_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "ledger: {path: file.db}\ningest: {max_line_bytes: 4096}\n")
    monkeypatch.setenv("LLM_COLLECTOR_LEDGER__PATH", "env.db")
    monkeypatch.setenv("LLM_COLLECTOR_INGEST__POLL_INTERVAL", "3s")
    config = load_config(path)
    assert config.ledger.path == Path("env.db")
    # the rest of each section still comes from the file
    assert config.ingest.max_line_bytes == 4096
    assert config.ingest.poll_interval == timedelta(seconds=3)


def test_environment_without_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COLLECTOR_LEDGER__PATH", "env.db")
    monkeypatch.setenv("LLM_COLLECTOR_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("LLM_COLLECTOR_DIMENSIONS", '["model", "tenant_id"]')
    config = load_config()
    assert config.ledger.path == Path("env.db")
    assert config.timezone == "Europe/Berlin"
    assert config.dimensions == ["model", "tenant_id"]


def test_invalid_environment_value_names_the_variable(tmp_path, monkeypatch):
    path = write(tmp_path, "ingest: {max_line_bytes: 4096}\n")
    monkeypatch.setenv("LLM_COLLECTOR_INGEST__MAX_LINE_BYTES", "lots")
    message = error_of(path)
    assert "environment LLM_COLLECTOR_INGEST__MAX_LINE_BYTES: ingest.max_line_bytes:" in message
    assert str(path) not in message


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("LLM_COLLECTOR_TIMEZONE", "Nowhere/X", "timezone: unknown time zone"),
        ("LLM_COLLECTOR_DIMENSIONS", '["model", "user_id"]', "user_id cannot be a dimension"),
        ("LLM_COLLECTOR_INGEST__POLL_INTERVAL", "whenever", "not a duration"),
        ("LLM_COLLECTOR_SOURCES", '[{"path": "a", "timezone": "X/Y"}]', "sources.0.timezone"),
        ("LLM_COLLECTOR_LEDGER", '{"pth": "z"}', "did you mean 'path'"),
    ],
)
def test_invalid_environment_values(tmp_path, monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    message = error_of(write(tmp_path, ""))
    assert f"environment {name}:" in message
    assert fragment in message


def test_environment_value_that_is_not_json_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COLLECTOR_DIMENSIONS", "model,tenant_id")
    message = error_of(write(tmp_path, ""))
    assert "LLM_COLLECTOR_DIMENSIONS" in message
    assert "dimensions" in message


def test_file_error_is_still_blamed_on_the_file_when_env_sets_something_else(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COLLECTOR_LEDGER__PATH", "env.db")
    path = write(tmp_path, "ledger: {pth: x}\n")
    message = error_of(path)
    assert f"{path}: ledger.pth: unknown option" in message


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("content: {store: true, hash: true}\n", {}),
        ("content: {store: true, hash: true, redact: false}\n", {}),
        ("", {"LLM_COLLECTOR_CONTENT__STORE": "true", "LLM_COLLECTOR_CONTENT__HASH": "true"}),
    ],
)
def test_hash_alone_is_allowed_although_redact_defaults_to_true(tmp_path, monkeypatch, text, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    content = load_config(write(tmp_path, text)).content
    assert (content.store, content.hash) == (True, True)


def test_a_yaml_error_says_where_without_quoting_the_line(tmp_path):
    text = (
        "alerting:\n  receivers:\n    - name: team\n"
        "      email: {password: `Sup3rS3cret!, host: x}\n"
    )
    message = error_of(write(tmp_path, text))
    assert "not valid YAML: line 4, column" in message
    assert "Sup3rS3cret" not in message


# ----- influx.instance and influx.max_backoff ------------------------------------------------

INFLUX = "influx: {url: http://127.0.0.1:8086, org: llm, token: t"


def test_the_instance_tag_defaults_to_the_host_name_and_can_be_set(tmp_path, monkeypatch):
    assert load_config(write(tmp_path, INFLUX + "}\n")).influx.instance == socket.gethostname()
    path = write(tmp_path, INFLUX + ", instance: eu-west-1.collector-2}\n")
    assert load_config(path).influx.instance == "eu-west-1.collector-2"
    monkeypatch.setenv("LLM_COLLECTOR_INFLUX__INSTANCE", "from-env")
    assert load_config(path).influx.instance == "from-env"


@pytest.mark.parametrize(
    "value", ["''", "'two words'", "'a,b'", "'x=y'", "-leading-dash", "'tab\\there'", "x" * 129]
)
def test_an_instance_that_is_no_sane_tag_value_is_refused(tmp_path, value):
    path = write(tmp_path, INFLUX + f", instance: {value}}}\n")
    line = next(x for x in error_of(path).splitlines() if f"{path}: influx.instance:" in x)
    assert "is not a usable instance tag" in line


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True))
def test_an_accepted_instance_needs_no_escaping_in_line_protocol(instance):
    config = InfluxConfig(url="http://x", org="llm", token="t", instance=instance)
    line = LineEncoder([], config.instance).score(1, score_row())
    assert line.startswith(f"llm_score,instance={instance},name=q value=")


def score_row():
    row = dict.fromkeys(SCORE_COLUMNS)
    row.update(ts_us=1, name="q", value=0.5)
    return [row[c] for c in SCORE_COLUMNS]


def test_max_backoff_defaults_to_a_minute_and_must_be_a_second_at_least(tmp_path):
    assert load_config(write(tmp_path, INFLUX + "}\n")).influx.max_backoff == timedelta(minutes=1)
    path = write(tmp_path, INFLUX + ", max_backoff: 500ms}\n")
    assert f"{path}: influx.max_backoff: must be at least 1s" in error_of(path)
