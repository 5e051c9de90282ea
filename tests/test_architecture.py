"""The architecture, checked: who imports whom (import-linter's contracts in pyproject.toml),
and who touches which ledger table (the SQL in every module's string literals).

Each table has one owner package: only its modules write the table (INSERT, UPDATE, DELETE,
CREATE, ALTER). Other packages call the owner's functions; the few named in `READERS` may read
the table in SQL of their own, because what they read is a query they compose rule by rule or
tier by tier (see `READERS`).
"""

import ast
import re
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

from collector.ledger.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "collector", "alerting", "reports")

OWNERS = {
    "streams": "collector.ledger",
    "source_looks": "collector.ledger",
    "calls": "collector.ledger",
    "scores": "collector.ledger",
    "sequences": "collector.ledger",
    "rollups": "collector.tiers",
    "rollup_pending": "collector.tiers",
    "rollup_dirty": "collector.tiers",
    "tier_state": "collector.tiers",
    "sink_cursors": "collector.sinks.influx",
    "dead_letters": "collector.sinks.influx",
    "alert_state": "alerting",
    "alert_rules": "alerting",
    "notifications": "alerting",
    "notify_groups": "alerting",
    "silences": "alerting",
    "report_log": "reports",
}
"""Each table's owner: the package whose modules alone write it (and its migrations)."""

_RAW_READERS = (
    "collector.tiers",  # the raw rows are the tiers' source: 1h rolls and summaries over raw
    "collector.readers.alerts",  # the alert engine's windows: one grouped query per rule
)
READERS = {
    "calls": _RAW_READERS,
    "scores": _RAW_READERS,
    "rollups": ("collector.readers.alerts",),  # alert spans older than raw, from the 1h tier
}
"""Packages besides the owner that may read a table in SQL of their own (never write it)."""

HISTORY = {("collector.tiers.schema", "sequences")}
"""Writes outside the owner that are migration history: schema v3 created ``sequences`` along
with the rollup tables, and a script once run never changes."""

DYNAMIC_TABLES = ("collector.ledger.events",)
"""The only modules whose SQL may name its table at run time (``FROM {table}``): the scan
cannot tell which table that is, so the owner keeps it in one place."""

_TABLE = r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(\w+|\x00)"
_WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|ALTER\s+TABLE"
    r"|DROP\s+TABLE|CREATE\s+TABLE|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\w+"
    r"\s+ON)\s+" + _TABLE
)
_READ = re.compile(r"\b(?:FROM|JOIN)\s+" + _TABLE)
"""SQL keywords are upper case in this code base; ``\\x00`` stands for an f-string's field."""


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal; an f-string whole, each replacement field a ``\\x00``."""
    parts = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts.update(id(value) for value in node.values)
            found.append(
                "".join(v.value if isinstance(v, ast.Constant) else "\x00" for v in node.values)
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            found.append(node.value)
    return found


def _references() -> dict[str, dict[str, set[str]]]:
    """{module: {"write": tables, "read": tables}} over every module of ours."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"write": set(), "read": set()})
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module(path)
            for text in _strings(ast.parse(path.read_text(), str(path))):
                found[module]["write"].update(_WRITE.findall(text))
                found[module]["read"].update(_READ.findall(text))
    return found


REFERENCES = _references()


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_import_contracts_hold(capfd):
    status = lint_imports(str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert status == 0, capfd.readouterr().out


def test_every_table_the_migrations_create_has_an_owner():
    created = {name for script in MIGRATIONS for name in re.findall(r"CREATE TABLE (\w+)", script)}
    assert created == set(OWNERS)


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_only_the_owner_writes_a_table(table):
    writers = {m for m, refs in REFERENCES.items() if table in refs["write"]}
    strangers = {m for m in writers if not _within(m, (OWNERS[table],))} - {
        module for module, written in HISTORY if written == table
    }
    assert not strangers, f"{sorted(strangers)} write {OWNERS[table]}'s {table}: call its API"


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_only_the_owner_and_its_named_readers_read_a_table(table):
    allowed = (OWNERS[table], *READERS.get(table, ()))
    readers = {m for m, refs in REFERENCES.items() if table in refs["read"]}
    strangers = {m for m in readers if not _within(m, allowed)}
    assert not strangers, f"{sorted(strangers)} read {OWNERS[table]}'s {table}: call its API"


def test_the_history_exceptions_are_still_needed():
    assert all(table in REFERENCES[module]["write"] for module, table in HISTORY)


def test_only_the_event_tables_module_names_its_tables_at_run_time():
    dynamic = {m for m, refs in REFERENCES.items() if "\x00" in refs["write"] | refs["read"]}
    assert dynamic <= set(DYNAMIC_TABLES)


def test_migrations_compose_the_owners_scripts_only():
    """`collector.ledger.migrations` holds no SQL of its own: each script lives with its
    table's owner."""
    assert REFERENCES["collector.ledger.migrations"] == {"write": set(), "read": set()}


def _ignored_imports() -> list[str]:
    """The imports pyproject.toml's import contracts let through."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [rule for c in contracts["contracts"] for rule in c.get("ignore_imports", [])]


@pytest.mark.parametrize("rule", _ignored_imports())
def test_the_imports_the_contracts_let_through_reach_data_only(rule):
    """The layers contract lets `collector.ledger.migrations` import every owner's migration
    scripts: no cycle, only while a script module imports nothing of ours."""
    importer, module = rule.split(" -> ")
    assert importer == "collector.ledger.migrations"
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(), str(path))
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
        )
    }
    assert imported <= {"__future__"}
