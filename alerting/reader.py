"""The read interface the daemon hands the alert engine: metric windows, nothing else.

Alerting never imports the collector; anything that answers these two questions (the ledger,
or a fake in a test) can drive the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from schemas.rules import Rule

Group = tuple[str | None, ...]
"""The values of a rule's ``group_by`` dimensions, in order (``()`` without group_by)."""


class Sample(NamedTuple):
    """One group's aggregate over a window and the number of events behind it."""

    value: float | None
    requests: int


class MetricsReader(Protocol):
    """Aggregates over ``[start_us, end_us)`` of the raw events, filtered and grouped."""

    def refresh(self, now_us: int, rules: Sequence[Rule]) -> None:
        """Called once at the start of each pass, before any window ending at ``now_us``."""
        ...

    def window(
        self,
        metric: str,
        aggregate: str,
        start_us: int,
        end_us: int,
        where: Mapping[str, str],
        group_by: Sequence[str],
    ) -> dict[Group, Sample]:
        """Groups with at least one event; ``value`` is None when no event carries the metric."""
        ...

    def events(self, start_us: int, end_us: int, where: Mapping[str, str]) -> int:
        """How many events (calls and scores) match ``where`` in the range."""
        ...
