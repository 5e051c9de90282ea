r"""InfluxDB line protocol for ledger rows: ``llm_call``, ``llm_score`` and ``llm_rollup``.

Timestamps are deterministic: the event's microsecond plus its ledger row id modulo 1000 as
nanoseconds. Two calls at the same instant with the same tags are therefore two points (InfluxDB
identifies a point by measurement + tags + time), and a re-sent batch overwrites itself instead
of adding copies. Only the configured dimensions become tags, plus ``instance``: the collector
that wrote the point, so that collectors sharing a bucket never overwrite each other's points.
A row whose time is outside the accepted range (`TimeRange`) is never encoded: InfluxDB would
refuse the whole batch.

Tag values are written so that InfluxDB 1.x, 2.x and 3.x and VictoriaMetrics all read the same
value. They disagree on backslashes (InfluxDB 2.x keeps ``\\`` as two characters, the others
read one) and InfluxDB 2.x cannot end a tag value with a backslash at all (``\`` before the
separator escapes it, ``\\`` is a parse error that refuses the batch). So a backslash at the
end of a value or before another backslash, a comma, a space or ``=``, and a control
character, arrive as U+FFFD; every other character, backslashes included, arrives unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from collector.clock import DEFAULT_RANGE, TimeRange, iso_us
from collector.ledger.events import CALL_COLUMNS, SCORE_COLUMNS
from schemas.events import CONTROL_CHARACTERS, REPLACEMENT

log = logging.getLogger(__name__)

_NOT_IN_A_TAG = re.compile(rf"[{CONTROL_CHARACTERS}]|\\(?=[\\, =]|\Z)")
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": r"\\"})

CALL_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
CALL_FLOAT_FIELDS = ("cost_usd", "latency_ms", "quality_score")


def tag_value(value: Any) -> str:
    """A tag value escaped for line protocol, as every server reads it back (see above)."""
    text = str(value)
    if "\\" in text or not text.isprintable():
        text = _NOT_IN_A_TAG.sub(REPLACEMENT, text)
    return text.translate(_TAG_ESCAPES)


def _tags(pairs: Iterable[tuple[str, Any]]) -> str:
    """``,k=v`` for each non-empty value, keys sorted as InfluxDB prefers."""
    return "".join(
        f",{key}={tag_value(value)}" for key, value in sorted(pairs) if value not in (None, "")
    )


def _timestamp_ns(ts_us: int, row_id: int) -> int:
    return ts_us * 1000 + row_id % 1000


class LineEncoder:
    """Encodes rows with the configured dimensions and this collector's instance as tags.

    A row whose time is out of range (stored before the range was enforced, or before it was
    narrowed) gives None instead of a point, and is counted in ``out_of_range``.
    """

    def __init__(
        self, dimensions: Sequence[str], instance: str, times: TimeRange = DEFAULT_RANGE
    ) -> None:
        self.dimensions = tuple(dimensions)
        self.instance = ("instance", instance)
        self.times = times
        self.out_of_range = 0
        self._next_warning = 1
        self._call_tag_index = [(d, CALL_COLUMNS.index(d)) for d in self.dimensions]
        self._call_ints = [(f, CALL_COLUMNS.index(f)) for f in CALL_INT_FIELDS]
        self._call_floats = [(f, CALL_COLUMNS.index(f)) for f in CALL_FLOAT_FIELDS]
        self._status = CALL_COLUMNS.index("status")
        self._score_tags = [
            (d, SCORE_COLUMNS.index(d)) for d in self.dimensions if d in SCORE_COLUMNS
        ]
        # Few distinct tag sets (that is what dimensions are for): escape each once.
        self._call_tags = lru_cache(maxsize=65536)(self._encode_call_tags)

    def _encode_call_tags(self, values: tuple[Any, ...]) -> str:
        return _tags([self.instance, *zip(self.dimensions, values, strict=True)])

    def _refused(self, what: str, ts_us: int) -> bool:
        """True when ``ts_us`` is out of range: counted, and logged the 1st, 10th, 100th... time."""
        problem = self.times.outside(ts_us)
        if problem is None:
            return False
        self.out_of_range += 1
        if self.out_of_range == self._next_warning:
            self._next_warning *= 10
            log.warning(
                "not sending %s to InfluxDB: its time %s %s (%d such points so far)",
                what,
                iso_us(ts_us),
                problem,
                self.out_of_range,
            )
        return True

    def call(self, row_id: int, row: Sequence[Any]) -> str | None:
        """One ``llm_call`` point from a `CALL_COLUMNS` row."""
        if self._refused(f"calls row {row_id}", row[0]):
            return None
        tags = self._call_tags(tuple([row[i] for _, i in self._call_tag_index]))
        fields = [f"{name}={row[i]}i" for name, i in self._call_ints if row[i] is not None]
        fields += [f"{name}={row[i]!r}" for name, i in self._call_floats if row[i] is not None]
        fields.append(f"error={int(row[self._status] == 'error')}i")
        if row[CALL_COLUMNS.index("cost_usd")] is None:
            fields.append("unpriced=1i")
        return f"llm_call{tags} {','.join(fields)} {_timestamp_ns(row[0], row_id)}"

    def score(self, row_id: int, row: Sequence[Any]) -> str | None:
        """One ``llm_score`` point from a `SCORE_COLUMNS` row; the score's name is a tag."""
        if self._refused(f"scores row {row_id}", row[0]):
            return None
        pairs = [self.instance, ("name", row[SCORE_COLUMNS.index("name")])]
        pairs += [(name, row[i]) for name, i in self._score_tags]
        value = float(row[SCORE_COLUMNS.index("value")])
        return f"llm_score{_tags(pairs)} value={value!r} {_timestamp_ns(row[0], row_id)}"

    def rollup(
        self, tier: str, window_start_us: int, dims: dict[str, Any], metrics: dict[str, Any]
    ) -> str | None:
        """One ``llm_rollup`` point at the window's start; its tags are the group's dimensions."""
        if self._refused(f"the {tier} rollup", window_start_us):
            return None
        dimensions = ((d, dims.get(d)) for d in self.dimensions)
        tags = _tags([self.instance, ("tier", tier), *dimensions])
        fields = []
        for name, value in sorted(metrics.items()):
            if value is None:
                continue
            if isinstance(value, bool):
                fields.append(f"{name}={int(value)}i")
            elif isinstance(value, int):
                fields.append(f"{name}={value}i")
            elif isinstance(value, float):
                fields.append(f"{name}={value!r}")
            else:
                fields.append(f'{name}="{str(value).translate(_STRING_ESCAPES)}"')
        return f"llm_rollup{tags} {','.join(fields)} {window_start_us * 1000}"
