"""The ``alerting`` configuration section: rules file, receivers, the route tree, silences."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from schemas.durations import Duration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


class SlackReceiver(_Section):
    """An incoming webhook, or a bot token and a channel for ``chat.postMessage``."""

    webhook_url: SecretStr | None = None
    bot_token: SecretStr | None = None
    channel: str | None = None
    base_url: str = Field("https://slack.com/api/", description="Web API root (bot token).")
    timeout: Duration = Field("10s")

    @model_validator(mode="after")
    def _one_way(self) -> SlackReceiver:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("set webhook_url, or bot_token and channel")
        if self.bot_token is not None and not self.channel:
            raise ValueError("a bot_token needs a channel")
        return self


class EmailReceiver(_Section):
    """SMTP with STARTTLS (port 587) or implicit TLS (``tls: true``, port 465)."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    to: list[str] = Field(min_length=1)
    ca_file: Path | None = None
    timeout: Duration = Field("10s")
    allow_plaintext_auth: bool = Field(
        False,
        description="Allow AUTH with neither starttls nor tls: the password crosses the"
        " network in clear (only for a local relay).",
    )

    @property
    def plaintext_auth(self) -> bool:
        """Whether the password would be sent over a connection without TLS."""
        return self.username is not None and not (self.tls or self.starttls)

    @model_validator(mode="after")
    def _one_tls(self) -> EmailReceiver:
        if self.tls and self.starttls and "starttls" in self.model_fields_set:
            raise ValueError("choose starttls: true or tls: true, not both")
        if self.tls:
            self.starttls = False
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class ConsoleReceiver(_Section):
    """Prints notifications to the daemon's log; the default when no receiver is set."""


class Receiver(_Section):
    """A named destination with exactly one of slack, email or console."""

    name: str
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None
    console: ConsoleReceiver | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Receiver:
        given = [kind for kind in ("slack", "email", "console") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"receiver {self.name}: give exactly one of slack, email, console")
        if self.email and self.email.plaintext_auth and not self.email.allow_plaintext_auth:
            raise ValueError(
                f"receiver {self.name}: email.username without starttls or tls would send the"
                " password in clear; enable starttls or tls, or set allow_plaintext_auth: true"
            )
        return self


class _RouteSettings(_Section):
    """Where and how alerts are sent; unset settings are inherited from the parent route."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool | None = None


class Route(_RouteSettings):
    """A child route: alerts whose labels equal ``match``; the first match wins unless it
    says ``continue: true``."""

    match: dict[str, str] = {}
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = []


class RootRoute(_RouteSettings):
    """The top of the route tree, taking every alert; its settings are the defaults."""

    receiver: str | None = "console"
    group_by: list[str] | None = ["alertname"]
    group_wait: Duration | None = timedelta(seconds=30)
    group_interval: Duration | None = timedelta(minutes=5)
    repeat_interval: Duration | None = timedelta(hours=4)
    send_resolved: bool | None = True
    routes: list[Route] = []


class Silence(_Section):
    """Alerts whose labels equal all ``matchers`` are not notified between the two times."""

    matchers: dict[str, str] = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime
    comment: str = ""


class AlertingConfig(_Section):
    """Alert rules and where their notifications go."""

    rules_file: Path | None = None
    evaluation_interval: Duration = Field("15s")
    delivery_interval: Duration = Field("1s")
    retry_interval: Duration = Field("30s")
    external_url: str | None = None
    receivers: list[Receiver] = []
    route: RootRoute = RootRoute()
    silences: list[Silence] = []

    @model_validator(mode="after")
    def _known_receivers(self) -> AlertingConfig:
        names = [receiver.name for receiver in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("two receivers share a name")
        known = set(names) | ({"console"} if "console" not in names else set())
        for route in _walk(self.route):
            if route.receiver is not None and route.receiver not in known:
                raise ValueError(
                    f"route receiver {route.receiver!r} is not defined under receivers"
                )
        return self

    def receiver(self, name: str) -> Receiver:
        """A receiver by name; ``console`` exists even when not listed."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        if name == "console":
            return Receiver(name="console", console=ConsoleReceiver())
        raise KeyError(name)


def _walk(route: RootRoute | Route) -> list[RootRoute | Route]:
    return [route, *(child for sub in route.routes for child in _walk(sub))]
