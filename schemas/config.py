"""The collector's configuration: one YAML file plus ``LLM_COLLECTOR_*`` environment overrides.

Every option has a default, so an empty file (or none) is a working local setup; the annotated
copy of every option lives in ``examples/collector.yaml`` and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.durations import Duration

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


class SourceConfig(_Section):
    """One glob of trace files to tail."""

    path: str = Field(description="Glob of JSON-lines trace files, re-scanned for new files.")
    start_at: Literal["beginning", "end"] = "beginning"
    timezone: TimeZoneName = "UTC"


class LedgerConfig(_Section):
    path: Path = Path("data/ledger.db")


class QuarantineConfig(_Section):
    path: Path = Path("data/quarantine.jsonl")
    keep_bytes: int = Field(4096, ge=64, description="How much of a bad line is kept.")


class IngestConfig(_Section):
    max_line_bytes: int = Field(1024 * 1024, ge=1024)
    parse_workers: int | None = Field(
        None, ge=0, description="Processes parsing big backlogs; default one per core, 0 = inline."
    )
    poll_interval: Duration = Field("500ms")
    rescan_interval: Duration = Field("5s")
    status_interval: Duration = Field("60s")


class PriceOverride(_Section):
    """USD per million tokens; cache prices default to the input price."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class PricingConfig(_Section):
    overrides: dict[str, PriceOverride] = {}


class ContentConfig(_Section):
    store: bool = False
    redact: bool = True
    hash: bool = False

    @model_validator(mode="after")
    def _one_treatment(self) -> ContentConfig:
        if self.hash and self.redact and "redact" in self.model_fields_set:
            raise ValueError("choose one of redact: true or hash: true, not both")
        return self


class CollectorConfig(BaseSettings):
    """The whole configuration; environment variables override the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        # Not True: merging the default sections into the input would mark every default as
        # set by the user, so `content: {hash: true}` would clash with the default redact.
        nested_model_default_partial_update=False,
    )

    timezone: TimeZoneName = "UTC"
    sources: list[SourceConfig] = [SourceConfig(path="logs/trace*.jsonl")]
    ledger: LedgerConfig = LedgerConfig()
    quarantine: QuarantineConfig = QuarantineConfig()
    ingest: IngestConfig = IngestConfig()
    dimensions: list[str] = ["model", "provider", "task_type", "status"]
    pricing: PricingConfig = PricingConfig()
    content: ContentConfig = ContentConfig()

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
        return self.model_dump(mode="json")
