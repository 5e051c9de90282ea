"""The ``alerting`` configuration section: rules file, receivers, the route tree, silences."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from schemas.durations import Duration
from schemas.section import SECTION_CONFIG


class _Section(BaseModel):
    model_config = SECTION_CONFIG


class SlackReceiver(_Section):
    """An incoming webhook, or a bot token and a channel for ``chat.postMessage``."""

    webhook_url: SecretStr | None = None
    """An incoming webhook URL (``https://hooks.slack.com/services/...``)."""
    bot_token: SecretStr | None = None
    """A bot token (``xoxb-...``) for ``chat.postMessage``, instead of a webhook."""
    channel: str | None = None
    """The channel a bot token posts to (``#oncall`` or an id)."""
    base_url: str = "https://slack.com/api/"
    """Root of Slack's Web API, for ``chat.postMessage`` with a bot token (a proxy or a test
    server)."""
    timeout: Duration = timedelta(seconds=10)
    """One request's time limit; a message that timed out is sent again after
    ``alerting.retry_interval``."""

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
    """The SMTP server."""
    port: int = Field(587, ge=1, le=65535)
    """Its port: 587 for STARTTLS, 465 for implicit TLS, 25 for a local relay."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS."""
    tls: bool = False
    """Implicit TLS from the first byte (port 465) instead of STARTTLS."""
    username: str | None = None
    """AUTH user; needs ``password``, and ``starttls`` or ``tls``."""
    password: SecretStr | None = None
    """AUTH password."""
    sender: str
    """The From address."""
    to: list[str] = Field(min_length=1)
    """Recipients of alert notifications (reports name their own)."""
    ca_file: Path | None = None
    """A CA bundle (PEM) to trust, for a server with a private certificate."""
    timeout: Duration = timedelta(seconds=10)
    """Time limit of the connection and of each SMTP command."""
    allow_plaintext_auth: bool = False
    """Allow AUTH with neither ``starttls`` nor ``tls``: the password crosses the network in
    clear (only for a relay on localhost)."""

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
    """The name routes, ``notify test`` and ``reports`` refer to."""
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
    """The receiver of the alerts this route takes."""
    group_by: list[str] | None = None
    """Alerts with equal values of these labels go out together in one message."""
    group_wait: Duration | None = None
    """How long a new group waits for more alerts before its first message."""
    group_interval: Duration | None = None
    """How long after a group's message before the next one with changes."""
    repeat_interval: Duration | None = None
    """How often a still-firing alert is sent again."""
    send_resolved: bool | None = None
    """Also tell the receiver when an alert resolves (only receivers told it fired)."""


class Route(_RouteSettings):
    """A child route: alerts whose labels equal ``match``; the first match wins unless it
    says ``continue: true``."""

    match: dict[str, str] = {}
    """Labels and the values they must equal for this route to take an alert."""
    continue_: bool = Field(False, alias="continue")
    """Let the following sibling routes take the alert too."""
    routes: list[Route] = []
    """Child routes of this one, matched in order."""


class RootRoute(_RouteSettings):
    """The top of the route tree, taking every alert; its settings are the defaults."""

    receiver: str | None = "console"
    """The receiver of every alert no child route takes."""
    group_by: list[str] | None = ["alertname"]
    """Alerts with equal values of these labels go out together in one message."""
    group_wait: Duration | None = timedelta(seconds=30)
    """How long a new group waits for more alerts before its first message."""
    group_interval: Duration | None = timedelta(minutes=5)
    """How long after a group's message before the next one with changes."""
    repeat_interval: Duration | None = timedelta(hours=4)
    """How often a still-firing alert is sent again."""
    send_resolved: bool | None = True
    """Also tell the receiver when an alert resolves (only receivers told it fired)."""
    routes: list[Route] = []
    """Child routes: the first whose ``match`` equals the alert's labels takes it (and the
    next ones too when it says ``continue: true``); unset settings are inherited."""


class Silence(_Section):
    """Alerts whose labels equal all ``matchers`` are not notified between the two times."""

    matchers: dict[str, str] = Field(min_length=1)
    """Labels and the values they must equal."""
    starts_at: datetime | None = None
    """When the silence begins; null = now."""
    ends_at: datetime
    """When it ends (ISO time)."""
    comment: str = ""
    """Why, for whoever reads ``silence list``."""


class AlertingConfig(_Section):
    """Alert rules and where their notifications go."""

    rules_file: Path | None = None
    """The rules file (``examples/rules.yaml`` holds the shipped defaults); null = no
    alerting."""
    evaluation_interval: Duration = timedelta(seconds=15)
    """How often every rule is evaluated."""
    delivery_interval: Duration = timedelta(seconds=1)
    """How often the notification outbox is checked for messages that are due."""
    retry_interval: Duration = timedelta(seconds=30)
    """How long a receiver that failed (down, refused, timed out) is left before the next
    attempt."""
    external_url: str | None = None
    """A dashboard link put in every message (a button in Slack)."""
    receivers: list[Receiver] = []
    """Where notifications can go; ``console`` (the daemon's stdout) always exists."""
    route: RootRoute = RootRoute()
    silences: list[Silence] = []
    """Alerts matching a silence are evaluated but not notified until it ends (the CLI adds
    more: ``llm-collector silence add``)."""

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
