"""Per-step, per-group aggregates (requests, values, sum, min, max) in sliding numpy arrays.

The alert cache keeps one grid per series and resolution: a window's aggregate is then a sum
over a slice instead of a scan of the raw rows behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FIELDS = 5  # requests, values, sum, min, max
_REQUESTS, _VALUES, _SUM, _MIN, _MAX = range(_FIELDS)
_FUTURE_STEPS = 120
"""Steps ahead of now kept in place, for events stamped slightly in the future."""


@dataclass(frozen=True)
class Totals:
    """Per group column over a range of steps: events, values present, their sum, min, max."""

    requests: np.ndarray
    values: np.ndarray
    sums: np.ndarray
    minima: np.ndarray
    maxima: np.ndarray


class Grid:
    """Aggregates for steps ``[base, base + length)`` of ``step_s`` seconds, by group column.

    Steps older than ``span`` behind the newest ``advance`` fall off; rows further ahead than
    the array reaches wait in ``future`` until it does.
    """

    def __init__(self, step_s: int, span_steps: int) -> None:
        self.step_s = step_s
        self.span = span_steps
        self.length = span_steps + max(span_steps // 4, 60) + _FUTURE_STEPS
        self.base = 0
        self.columns = 0
        self.data = self._empty(self.length, 4)
        self.future: list[np.ndarray] = []

    @staticmethod
    def _empty(length: int, columns: int) -> np.ndarray:
        data = np.zeros((_FIELDS, length, columns))
        data[_MIN].fill(np.inf)
        data[_MAX].fill(-np.inf)
        return data

    def start(self, now_step: int) -> None:
        """Place the array so that it covers the span before ``now_step``."""
        self.base = now_step - self.span
        self.data = self._empty(self.length, self.data.shape[2])
        self.future.clear()

    def advance(self, now_step: int) -> None:
        """Slide so ``now_step`` and ``_FUTURE_STEPS`` after it are inside the array."""
        if now_step + _FUTURE_STEPS < self.base + self.length:
            return
        drop = now_step - self.span - self.base
        waiting, self.future = self.future, []
        if drop >= self.length:
            self.start(now_step)
        else:
            fresh = self._empty(drop, self.data.shape[2])
            self.data = np.concatenate([self.data[:, drop:, :], fresh], axis=1)
            self.base += drop
        for batch in waiting:
            self.add(batch)

    def ensure_columns(self, columns: int) -> None:
        capacity = self.data.shape[2]
        if columns > capacity:
            grown = self._empty(self.length, max(columns, capacity * 2))
            grown[:, :, :capacity] = self.data
            self.data = grown
        self.columns = max(self.columns, columns)

    def add(self, rows: np.ndarray) -> None:
        """Aggregated rows ``(step, column, requests, values, sum, min, max)``, one per line.

        Rows older than the array are dropped (no window reaches them); rows beyond it wait.
        """
        index = rows[:, 0].astype(np.int64) - self.base
        ahead = index >= self.length
        if ahead.any():
            self.future.append(rows[ahead])
        keep = (index >= 0) & ~ahead
        at = (index[keep], rows[keep, 1].astype(np.int64))
        for field in (_REQUESTS, _VALUES, _SUM):
            np.add.at(self.data[field], at, rows[keep, 2 + field])
        np.minimum.at(self.data[_MIN], at, rows[keep, 2 + _MIN])
        np.maximum.at(self.data[_MAX], at, rows[keep, 2 + _MAX])

    def covers(self, first_step: int) -> bool:
        return first_step >= self.base

    def totals(self, first_step: int, end_step: int) -> Totals:
        """Aggregates of steps ``[first_step, end_step)`` per group column."""
        lo = max(first_step - self.base, 0)
        hi = max(min(end_step - self.base, self.length), lo)
        block = self.data[:, lo:hi, : self.columns]
        return Totals(
            block[_REQUESTS].sum(axis=0),
            block[_VALUES].sum(axis=0),
            block[_SUM].sum(axis=0),
            block[_MIN].min(axis=0, initial=np.inf),
            block[_MAX].max(axis=0, initial=-np.inf),
        )


def combine(first: Totals, second: Totals) -> Totals:
    """Two ranges' aggregates as one (the shorter column list is padded with empty groups)."""
    width = max(len(first.requests), len(second.requests))

    def pad(values: np.ndarray, fill: float) -> np.ndarray:
        return np.pad(values, (0, width - len(values)), constant_values=fill)

    return Totals(
        pad(first.requests, 0) + pad(second.requests, 0),
        pad(first.values, 0) + pad(second.values, 0),
        pad(first.sums, 0) + pad(second.sums, 0),
        np.minimum(pad(first.minima, np.inf), pad(second.minima, np.inf)),
        np.maximum(pad(first.maxima, -np.inf), pad(second.maxima, -np.inf)),
    )
