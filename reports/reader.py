"""The read interface the daemon hands the reports: tier rows and the alerts of a period.

Reports never import the collector: anything that answers these questions (the ledger, or a
fake in a test) can drive them. Cells are opaque mergeable aggregates; the reader turns one
into the figures of ``llm-collector summary`` (``metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from alerting.history import AlertEpisode


class Cell(Protocol):
    """A mergeable aggregate of calls: sums, extremes and a latency sketch."""

    requests: int
    cost_usd: float

    def merge(self, other: Any) -> None:
        """Add another cell's calls to this one."""
        ...


Row = tuple[int, tuple[Any, ...], Cell]
"""(window start in UTC microseconds, the values of the asked dimensions, the cell)."""

Figures = dict[str, Any]
"""The figures of ``llm-collector summary --json`` by name (``requests``, ``cost_usd``, ...):
numbers, None where undefined (no latency without calls). Read by names chosen at run time."""


class ReportReader(Protocol):
    """Rows of a tier over a span, falling back to finer data where the tier is not rolled."""

    dimensions: Sequence[str]
    """The dimensions the tiers are grouped by; only these can be asked for."""

    def rows(self, start_us: int, end_us: int, tier: str, by: Sequence[str]) -> Iterable[Row]:
        """Rows whose window starts in ``[start, end)``; ``tier`` is 1h, 1d or 1mo."""
        ...

    def empty(self) -> Cell:
        """A cell of no calls, to merge into."""
        ...

    def metrics(self, cell: Cell) -> Figures:
        """The figures of ``llm-collector summary --json`` (requests, cost_usd, ...)."""
        ...

    def alerts(self, start_us: int, end_us: int) -> list[AlertEpisode]:
        """Alerts firing at some time in ``[start, end)``, by the time they fired."""
        ...
