"""The reports' reader over the ledger answers the `ReportReader` interface reports rely on."""

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.ledger.connection import Ledger
from collector.readers.reports import LedgerReportReader


@dataclass
class ForeignCell:
    requests: int = 1
    cost_usd: float = 0.5

    def merge(self, other: Any) -> None:
        self.requests += other.requests


@pytest.fixture
def reader(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield LedgerReportReader(ledger.db, ZoneInfo("UTC"), ["model"])
    ledger.close()


def test_figures_of_its_own_cells(reader):
    cell = reader.empty()
    assert reader.metrics(cell)["requests"] == 0


def test_a_cell_another_reader_made_is_refused_by_name(reader):
    with pytest.raises(TypeError, match="not a cell of the ledger's reader: ForeignCell"):
        reader.metrics(ForeignCell())
