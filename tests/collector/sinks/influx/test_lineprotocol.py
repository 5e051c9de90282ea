"""Line protocol: tag values every server reads back as documented, and no point out of range.

The round trips go through the real write path (`InfluxWriter`, influxdb-client, gzip) into
VictoriaMetrics and back out of its export API. InfluxDB 2.x itself cannot run here; what it
does with backslashes is in the module docstring of `collector.sinks.influx.lineprotocol` (its Go
parser).
"""

import itertools
import logging
import unicodedata
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.clock import TimeRange
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import Pricer
from collector.ledger.events import CALL_COLUMNS, SCORE_COLUMNS
from collector.sinks.influx.lineprotocol import LineEncoder, tag_value
from collector.sinks.influx.writer import InfluxWriter
from schemas.config import ALLOWED_DIMENSIONS, ContentConfig, InfluxConfig, TimestampsConfig
from tests.collector.victoria import VictoriaMetrics, export

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY_US = 86_400_000_000
TAG_DIMENSIONS = tuple(d for d in ALLOWED_DIMENSIONS if d != "status")
"""Dimensions copied from the line as written (status is normalised to ok/error)."""


def us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def as_stored(written: str) -> str:
    """What every server holds for a dimension value, as docs/influxdb-grafana.md says: a control
    character, and a backslash at the end or before a backslash, comma, space or ``=``, become
    U+FFFD; everything else is unchanged."""
    out = []
    for i, char in enumerate(written):
        last = i + 1 == len(written)
        bad_backslash = char == "\\" and (last or written[i + 1] in "\\, =")
        out.append("\ufffd" if bad_backslash or unicodedata.category(char) == "Cc" else char)
    return "".join(out)


# ----- tag values, unit by unit -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("a b,c=d", r"a\ b\,c\=d"),
        ("C:\\models\\v2", "C:\\models\\v2"),  # backslash before a letter: as is
        ("C:\\", "C:\ufffd"),  # InfluxDB 2.x cannot end a tag value with it
        ("\\", "\ufffd"),
        ("\\\\server", "\ufffd\\server"),  # InfluxDB 2.x and the others disagree on \\
        ("a\\,b", "a\ufffd\\,b"),
        ("a\\ b", "a\ufffd\\ b"),
        ("a\\=b", "a\ufffd\\=b"),
        ("line\nbreak\ttab\x00nul", "line\ufffdbreak\ufffdtab\ufffdnul"),
        ('quote"d', 'quote"d'),
        ("résumé 😀 \u2028", "résumé\\ 😀\\ \u2028"),
    ],
)
def test_a_tag_value_is_escaped_and_repaired(value, encoded):
    assert tag_value(value) == encoded
    assert as_stored(value) == encoded.replace("\\ ", " ").replace("\\,", ",").replace("\\=", "=")


# ----- times out of range are never encoded -------------------------------------------------

NOW_US = us(T0)


def call_row(ts_us: int, model: str = "gpt-4o-mini") -> tuple:
    row = dict.fromkeys(CALL_COLUMNS)
    row |= {"ts_us": ts_us, "model": model, "status": "ok", "input_tokens": 5, "cost_usd": 0.1}
    return tuple(row[c] for c in CALL_COLUMNS)


def score_row(ts_us: int) -> tuple:
    row = dict.fromkeys(SCORE_COLUMNS) | {"ts_us": ts_us, "name": "q", "value": 0.5}
    return tuple(row[c] for c in SCORE_COLUMNS)


def encoder(**timestamps) -> LineEncoder:
    times = TimeRange.from_config(TimestampsConfig(**timestamps), lambda: NOW_US)
    return LineEncoder(["model"], "host-a", times)


OUT_OF_RANGE = [
    us(datetime(3000, 1, 1, tzinfo=UTC)),
    us(datetime(1900, 1, 1, tzinfo=UTC)),
    -1,
    NOW_US + DAY_US + 1,
]


@pytest.mark.parametrize("ts_us", OUT_OF_RANGE)
def test_a_row_out_of_range_gives_no_point(ts_us, caplog):
    lines = encoder()
    with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.lineprotocol"):
        assert lines.call(1, call_row(ts_us)) is None
        assert lines.score(2, score_row(ts_us)) is None
        assert lines.rollup("1h", ts_us, {"model": "m"}, {"requests": 1}) is None
    assert lines.out_of_range == 3
    first = caplog.records[0].getMessage()
    assert first.startswith("not sending calls row 1 to InfluxDB: its time ")
    assert "ingest.timestamps" in first


def test_the_ends_of_the_range_are_encoded():
    lines = encoder(earliest="2020-01-01")
    for ts_us in (us(datetime(2020, 1, 1, tzinfo=UTC)), NOW_US + DAY_US):
        assert lines.call(7, call_row(ts_us)).endswith(f" {ts_us * 1000 + 7}")
        assert lines.score(7, score_row(ts_us)).endswith(f" {ts_us * 1000 + 7}")
        assert lines.rollup("1d", ts_us, {}, {"requests": 1}).endswith(f" {ts_us * 1000}")
    assert lines.out_of_range == 0


def test_skipped_rows_are_logged_the_1st_10th_and_100th_time(caplog):
    lines = encoder()
    with caplog.at_level(logging.WARNING, logger="collector.sinks.influx.lineprotocol"):
        for row_id in range(1, 151):
            assert lines.call(row_id, call_row(OUT_OF_RANGE[0])) is None
    assert lines.out_of_range == 150
    assert [r.getMessage().split(" to InfluxDB")[0] for r in caplog.records] == [
        "not sending calls row 1",
        "not sending calls row 10",
        "not sending calls row 100",
    ]
    assert caplog.records[-1].getMessage().endswith("(100 such points so far)")


# ----- round trips through VictoriaMetrics --------------------------------------------------


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    with VictoriaMetrics(tmp_path_factory.mktemp("vm")) as server:
        yield server


@pytest.fixture(scope="module")
def writer(vm):
    influx = InfluxWriter(InfluxConfig(url=vm.url, org="llm", token="t", create_buckets=False))
    yield influx
    influx.close()


PARSER = LineParser(Pricer({}), ContentPolicy(ContentConfig()))
ENCODER = LineEncoder(ALLOWED_DIMENSIONS, "host-a")
IDS = itertools.count(1)


def round_trip(vm, writer, values: list[str]) -> dict[int, dict[str, str]]:
    """Each value written as every dimension of one call; the labels VictoriaMetrics stored,
    by the call's unique ``input_tokens``."""
    sent = {}
    lines = []
    for value in values:
        point_id = next(IDS)
        event = {"timestamp": (T0 + timedelta(seconds=point_id)).isoformat(), "model": value}
        event |= dict.fromkeys(TAG_DIMENSIONS, value) | {"input_tokens": point_id}
        parsed = PARSER.parse(orjson.dumps(event), ZoneInfo("UTC"), 1)
        assert parsed.kind == "call"
        lines.append(ENCODER.call(point_id, parsed.row))
        sent[point_id] = value
    writer.write("llm_raw", lines)
    found = {int(p.value): p.labels for p in export(vm.url, "llm_call_input_tokens")}
    return {point_id: found.get(point_id) for point_id in sent}


def expected_labels(written: str) -> dict[str, str]:
    stored = as_stored(written)
    labels = dict.fromkeys(TAG_DIMENSIONS, stored) if stored else {}
    return labels | {"status": "error", "instance": "host-a"}  # error_type set: an error


TRICKY = [
    "C:\\",
    "\\",
    "\\\\",
    "ends with two \\\\",
    "\\\\unc\\share",
    "a\\,b",
    "a\\ b",
    "a\\=b",
    "x\\\\,y",
    "tab\tnl\ncr\rnul\x00del\x7fnel\x85",
    "back\\\nslash-newline",
    " leading and trailing ",
    "   ",
    "=,= ,",
    '"quoted"',
    "#not a comment",
    "résumé 😀 \u2028 \u00a0 \ufffd",
]


def test_tricky_dimension_values_arrive_as_documented(vm, writer):
    stored = round_trip(vm, writer, TRICKY)
    for (point_id, labels), written in zip(stored.items(), TRICKY, strict=True):
        assert labels == expected_labels(written), (point_id, written)
    assert stored[next(iter(stored))]["model"] == "C:\ufffd"


def test_ordinary_values_with_backslashes_arrive_unchanged(vm, writer):
    values = ["C:\\models\\v2", "a\\b c", "regex \\d+\\s", "gpt-4o-mini", "team=ml, eu"]
    stored = round_trip(vm, writer, values)
    for labels, written in zip(stored.values(), values, strict=True):
        assert labels["model"] == written
        assert labels["agent_name"] == written


DIMENSION_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from('\\\\\\, =\n\t\x00\x85"'),
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(DIMENSION_TEXT, min_size=1, max_size=8))
@example(["C:\\", "\\\\", "a\\ b\\"])
def test_any_dimension_value_the_parser_accepts_arrives_as_documented(vm, writer, values):
    stored = round_trip(vm, writer, values)
    for labels, written in zip(stored.values(), values, strict=True):
        assert labels == expected_labels(written), written
