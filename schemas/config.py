"""The collector's configuration: one YAML file plus ``LLM_COLLECTOR_*`` environment overrides.

Every option has a default, so an empty file (or none) is a working local setup. Each option is
documented by its attribute docstring, from which ``docs/generate.py`` writes
``docs/configuration.md``; ``examples/collector.yaml`` shows every option, and tests keep the
three in step.
"""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.alerting import AlertingConfig
from schemas.durations import Duration, format_duration, parse_duration
from schemas.reports import ReportsConfig
from schemas.section import SECTION_CONFIG

ENV_PREFIX = "LLM_COLLECTOR_"
ALLOWED_DIMENSIONS = (
    "model",
    "provider",
    "task_type",
    "operation",
    "status",
    "error_type",
    "tenant_id",
    "agent_name",
)
"""Event fields that may become grouping dimensions (and InfluxDB tags).

User, session, trace and call ids are left out on purpose: one series per id would explode the
series cardinality of every store downstream.
"""


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


class _Section(BaseModel):
    model_config = SECTION_CONFIG


class SourceConfig(_Section):
    """One glob of trace files to tail."""

    path: str
    """Glob of JSON-lines trace files, re-expanded every ``ingest.rescan_interval`` so that
    files appearing later (and rotated files) are picked up."""
    start_at: Literal["beginning", "end"] = "beginning"
    """Files present when the collector first looks at this source: read from their beginning,
    or only what is written after that (``end``); later files are always read whole."""
    timezone: TimeZoneName = "UTC"
    """Zone (IANA name) of timestamps written without an offset in these files."""


class LedgerConfig(_Section):
    """The embedded SQLite ledger: events, read positions, rollups, outboxes, alert state."""

    path: Path = Path("data/ledger.db")
    """The ledger file, created when missing (with its directory, private to the user)."""


class QuarantineConfig(_Section):
    """Lines that fail validation: one JSON object each (source, offset, reason, the line)."""

    path: Path = Path("data/quarantine.jsonl")
    """The quarantine file (JSON lines), created when missing."""
    keep_bytes: int = Field(4096, ge=64)
    """How much of a rejected line is kept, after the content policy is applied."""


INFLUX_EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)
"""The first whole day InfluxDB can store (its times are int64 nanoseconds since 1970)."""
MAX_AHEAD = timedelta(days=365)


class TimestampsConfig(_Section):
    """Event times the collector accepts; a line outside them is quarantined with the reason.

    InfluxDB refuses far-off times (year 3000 overflows its nanoseconds), and one such point
    used to make its whole batch a dead letter.
    """

    earliest: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """Events before this instant are quarantined (a date or an ISO time, UTC without an
    offset; 1677-09-22 at the earliest)."""
    ahead: Duration = timedelta(days=1)
    """Events later than the clock at parse time plus this are quarantined (clock skew; at
    most 365d)."""

    @field_validator("earliest")
    @classmethod
    def _storable(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value < INFLUX_EARLIEST:
            raise ValueError(f"must be {INFLUX_EARLIEST.date()} or later (InfluxDB cannot hold it)")
        return value

    @field_validator("ahead")
    @classmethod
    def _clock_skew(cls, value: timedelta) -> timedelta:
        if value > MAX_AHEAD:
            raise ValueError("at most 365d: further ahead is a wrong clock, not clock skew")
        return value


class IngestConfig(_Section):
    """How trace files are read."""

    max_line_bytes: int = Field(1024 * 1024, ge=1024)
    """Longer lines are quarantined without being held in memory."""
    parse_workers: int | None = Field(None, ge=0)
    """Processes that parse big backlogs (chunks of 2,000 lines or more) while the main process
    writes; null = one per CPU core, 0 = parse inline."""
    poll_interval: Duration = timedelta(milliseconds=500)
    """How often the daemon reads new lines."""
    rescan_interval: Duration = timedelta(seconds=5)
    """How often globs are re-expanded; also how long a rotated file is still read."""
    status_interval: Duration = timedelta(seconds=60)
    """How often the daemon logs its one-line status."""
    retry_max_interval: Duration = timedelta(seconds=30)
    """After an error (a full disk, an unwritable quarantine file) reading retries after
    ``poll_interval``, the wait doubling up to this; one log line per retry, nothing lost."""
    timestamps: TimestampsConfig = TimestampsConfig()


class PriceOverride(_Section):
    """USD per million tokens; cache prices default to the input price."""

    input: float = Field(ge=0)
    """Input tokens (cached ones included unless ``cache_read`` is set), USD per million."""
    output: float = Field(ge=0)
    """Output tokens, USD per million."""
    cache_read: float | None = Field(None, ge=0)
    """Tokens read from the prompt cache, USD per million; null = the input price."""
    cache_write: float | None = Field(None, ge=0)
    """Tokens written to the prompt cache, USD per million; null = the input price."""


class PricingConfig(_Section):
    """How calls without ``cost_usd`` are priced: these overrides, then genai-prices."""

    overrides: dict[str, PriceOverride] = {}
    """Prices by model name, for models genai-prices does not know or that you pay differently
    for; they win over genai-prices."""


class ContentConfig(_Section):
    """Prompts, responses and the other content fields of a line, in the ledger and the
    quarantine file."""

    store: bool = False
    """Keep content at all; false drops it."""
    redact: bool = True
    """With ``store``: mask e-mail addresses, card, US social security and phone numbers."""
    hash: bool = False
    """With ``store``: keep a ``sha256:`` hash instead of the text (not with ``redact``)."""

    @model_validator(mode="after")
    def _one_treatment(self) -> ContentConfig:
        if self.hash and self.redact and "redact" in self.model_fields_set:
            raise ValueError("choose one of redact: true or hash: true, not both")
        return self


TIERS = ("raw", "1h", "1d", "1mo")
"""Storage tiers, finest first: raw events, then hourly, daily and monthly rollups."""


def _retention(value: Any) -> timedelta | None:
    if value is None or value == "forever":
        return None
    return parse_duration(value)


Retention = Annotated[
    timedelta | None,
    BeforeValidator(_retention),
    PlainSerializer(lambda v: "forever" if v is None else format_duration(v), return_type=str),
]


class TiersConfig(_Section):
    """How long each tier is kept, and how long a closed window waits for late events."""

    retention: dict[str, Retention] = {
        "raw": timedelta(days=7),
        "1h": timedelta(days=30),
        "1d": timedelta(days=365),
        "1mo": None,
    }
    """How long each tier (raw, 1h, 1d, 1mo) is kept in the ledger, and the retention of its
    InfluxDB bucket when created; ``forever`` keeps it. A tier is kept at least as long as the
    tier it is rolled from."""
    grace: Duration = timedelta(minutes=5)
    """A window is rolled up once it has ended plus this long; later events roll it again."""

    @field_validator("retention")
    @classmethod
    def _every_tier(cls, value: dict[str, timedelta | None]) -> dict[str, timedelta | None]:
        unknown = set(value) - set(TIERS)
        if unknown:
            raise ValueError(
                f"unknown tier {', '.join(sorted(unknown))}; tiers are {', '.join(TIERS)}"
            )
        defaults = {"raw": timedelta(days=7), "1h": timedelta(days=30), "1d": timedelta(days=365)}
        return {tier: value.get(tier, defaults.get(tier)) for tier in TIERS}


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{value!r} is not host:port; write e.g. 127.0.0.1:9464 (0.0.0.0:9464 for every"
            " interface, port 0 for any free port)"
        )
    return value


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ServerConfig(_Section):
    """The daemon's HTTP endpoint: ``/healthz`` and ``/metrics`` (Prometheus)."""

    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:9464"
    """host:port to listen on; ``0.0.0.0:9464`` for every interface (containers), port 0 for
    any free port (the daemon logs which)."""
    enabled: bool = True
    """false: no HTTP endpoint at all."""
    metrics_max_label_values: int = Field(100, ge=1)
    """Values per dimension label on /metrics (the first seen since start); calls with later
    values are counted under the value ``other``, so totals stay exact."""

    def address(self) -> tuple[str, int]:
        """(host, port); brackets around an IPv6 host are removed."""
        return _host_port(self.listen)


class OtlpReceiverConfig(_Section):
    """The OTLP/HTTP receiver: applications instrumented with OpenTelemetry send their traces to
    ``POST /v1/traces`` (protobuf or OTLP JSON, gzip accepted); every span that is an LLM call
    (the GenAI semantic conventions) becomes an ``llm_call`` event, answered once it is
    committed to the ledger. See [operations](operations.md#the-otlp-receiver)."""

    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:4318"
    """host:port to listen on (4318 is OTLP/HTTP's port); ``0.0.0.0:4318`` for every
    interface, port 0 for any free port (the daemon logs which)."""
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    """Largest request body, counted after gzip decompression too; a larger one gets 413."""
    token: SecretStr | None = None
    """A bearer token the senders must give (``Authorization: Bearer ...``); null = no
    authentication (keep ``listen`` on loopback then). Better given as
    LLM_COLLECTOR_RECEIVERS__OTLP__TOKEN or ``token_file``."""
    token_file: Path | None = None
    """A file holding the token (a Docker or systemd secret), read at start-up."""
    tenant_attribute: str = "tenant_id"
    """The span or resource attribute whose value becomes the event's ``tenant_id``."""

    @model_validator(mode="after")
    def _one_token_source(self) -> OtlpReceiverConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self

    def address(self) -> tuple[str, int]:
        """(host, port); brackets around an IPv6 host are removed."""
        return _host_port(self.listen)

    def secret_token(self) -> str | None:
        """The token, read from ``token_file`` when that is how it is given; None without one.
        An unreadable or empty file is a ValueError naming it."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(
                f"receivers.otlp.token_file {self.token_file}: {error.strerror}"
            ) from None
        if not token:
            raise ValueError(f"receivers.otlp.token_file {self.token_file} is empty")
        return token


class ReceiversConfig(_Section):
    """Endpoints the daemon serves for applications that send their calls instead of writing
    trace files."""

    otlp: OtlpReceiverConfig | None = None


class InfluxBuckets(_Section):
    """One bucket per tier; each is created with the tier's retention when missing."""

    raw: str = "llm_raw"
    """Bucket of the raw points (``llm_call``, ``llm_score``)."""
    hourly: str = Field("llm_1h", alias="1h")
    """Bucket of the hourly rollups."""
    daily: str = Field("llm_1d", alias="1d")
    """Bucket of the daily rollups."""
    monthly: str = Field("llm_1mo", alias="1mo")
    """Bucket of the monthly rollups."""

    def for_tier(self, tier: str) -> str:
        return {"raw": self.raw, "1h": self.hourly, "1d": self.daily, "1mo": self.monthly}[tier]


_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _check_instance(value: str) -> str:
    if not _INSTANCE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a usable instance tag: letters, digits and . _ : -, starting"
            " with a letter or digit, at most 128 characters (the default is this host's name:"
            " set influx.instance)"
        )
    return value


def _check_backoff(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s (a wait between attempts to write)")
    return value


class InfluxConfig(_Section):
    """InfluxDB 2.x; without this section the collector runs on the ledger alone."""

    url: str
    """The server, e.g. ``http://127.0.0.1:8086``."""
    org: str
    """The organisation (by name) that holds the buckets."""
    token: SecretStr | None = None
    """The API token; better given as LLM_COLLECTOR_INFLUX__TOKEN or ``token_file``."""
    token_file: Path | None = None
    """A file holding the token (a Docker or systemd secret), read at start-up."""
    buckets: InfluxBuckets = InfluxBuckets()
    batch_size: int = Field(5000, ge=1, le=100_000)
    """Points per write request (gzip'd)."""
    verify_tls: bool = True
    """Check the server's TLS certificate."""
    timeout: Duration = timedelta(seconds=10)
    """One request's time limit."""
    max_pending: int = Field(2_000_000, ge=1000)
    """Points waiting for InfluxDB before reading the trace files pauses (a warning at 80%)."""
    create_buckets: bool = True
    """Create missing buckets at start-up (the token needs read and write on buckets)."""
    instance: Annotated[str, AfterValidator(_check_instance)] = Field(
        default_factory=socket.gethostname
    )
    """The ``instance`` tag on every point (default: this host's name), so that collectors
    sharing buckets never overwrite each other's points; stable and unique per collector."""
    max_backoff: Annotated[Duration, AfterValidator(_check_backoff)] = timedelta(seconds=60)
    """Longest wait between attempts to write; a server's longer Retry-After is cut to it."""

    @model_validator(mode="after")
    def _token_source(self) -> InfluxConfig:
        if self.token is None and self.token_file is None:
            raise ValueError("set token (or LLM_COLLECTOR_INFLUX__TOKEN) or token_file")
        return self

    def secret_token(self) -> str:
        """The token, read from ``token_file`` when that is how it is given."""
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(f"influx.token_file {self.token_file}: {error.strerror}") from None


class CollectorConfig(BaseSettings):
    """The whole configuration; environment variables override the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        # Not True: merging the default sections into the input would mark every default as
        # set by the user, so `content: {hash: true}` would clash with the default redact.
        nested_model_default_partial_update=False,
        use_attribute_docstrings=True,
    )

    timezone: TimeZoneName = "UTC"
    """Calendar and reporting time zone (IANA name): ``today``, daily and monthly windows,
    budgets and report schedules use it."""
    sources: list[SourceConfig] = [SourceConfig(path="logs/trace*.jsonl")]
    """Trace files to read; several sources are allowed."""
    ledger: LedgerConfig = LedgerConfig()
    quarantine: QuarantineConfig = QuarantineConfig()
    ingest: IngestConfig = IngestConfig()
    dimensions: list[str] = ["model", "provider", "task_type", "status"]
    """Event fields to group by (and to tag InfluxDB points with): model, provider, task_type,
    operation, status, error_type, tenant_id, agent_name; never ids."""
    pricing: PricingConfig = PricingConfig()
    content: ContentConfig = ContentConfig()
    tiers: TiersConfig = TiersConfig()
    influx: InfluxConfig | None = None
    alerting: AlertingConfig = AlertingConfig()
    reports: ReportsConfig = ReportsConfig()
    server: ServerConfig = ServerConfig()
    receivers: ReceiversConfig = ReceiversConfig()

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in ALLOWED_DIMENSIONS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} cannot be a dimension; choose from "
                f"{', '.join(ALLOWED_DIMENSIONS)} (ids would explode series cardinality)"
            )
        if len(set(value)) != len(value):
            raise ValueError("a dimension is listed twice")
        return value

    @model_validator(mode="after")
    def _report_receivers(self) -> CollectorConfig:
        self.reports.check_receivers(self.alerting)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs, so the environment must come first to win.
        return (env_settings, init_settings)

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets replaced by ``********``."""
        return self.model_dump(mode="json", by_alias=True)
