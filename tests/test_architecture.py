"""The architecture, checked: who imports whom (import-linter's contracts in pyproject.toml),
and who touches which ledger table (the SQL in every module's strings, tests/sql_tables.py).

Each table has one owner: only it writes the table (INSERT, UPDATE, DELETE, CREATE, ALTER, ...)
and keeps its migration scripts. Other modules call the owner's functions; the few named in
`READERS` may read the table in SQL of their own, because what they read is a query they
compose rule by rule or tier by tier. docs/design.md shows the same table.
"""

import ast
import logging
import re
import tomllib
from collections.abc import Iterable

import pytest
from importlinter.cli import lint_imports
from markdown_it import MarkdownIt

from collector.ledger import events
from collector.ledger.migrations import MIGRATIONS
from tests.paths import ROOT
from tests.sql_tables import END, References, scan

PACKAGES = ("schemas", "collector", "alerting", "reports", "bench")
"""What the scan reads: every module of ours, the benchmarks included."""

OWNERS = {
    "streams": "collector.ledger.connection",
    "source_looks": "collector.ledger.connection",
    "calls": "collector.ledger.events",
    "scores": "collector.ledger.events",
    "sequences": "collector.ledger.sequences",
    "rollups": "collector.tiers",
    "rollup_pending": "collector.tiers",
    "rollup_dirty": "collector.tiers",
    "tier_state": "collector.tiers",
    "sink_cursors": "collector.sinks.influx.outbox",
    "dead_letters": "collector.sinks.influx.outbox",
    "alert_state": "alerting.store",
    "alert_rules": "alerting.store",
    "notifications": "alerting.store",
    "notify_groups": "alerting.store",
    "silences": "alerting.store",
    "report_log": "reports.sentlog",
    "otlp_spans": "collector.receivers.otlp.store",
}
"""Each table's owner: the module (or, for the tiers, the package) that alone writes it."""

_RAW_READERS = (
    "collector.tiers",  # the raw rows are the tiers' source: 1h rolls and summaries over raw
    "collector.readers.alerts",  # the alert engine's windows: one grouped query per rule
)
READERS = {
    "calls": _RAW_READERS,
    "scores": _RAW_READERS,
    "rollups": ("collector.readers.alerts",),  # alert spans older than raw, from the 1h tier
}
"""Modules or packages besides the owner that may read a table in SQL of their own."""

SCRIPTS = {
    "collector.ledger.schema": "collector.ledger",
    "collector.tiers.schema": "collector.tiers",
    "collector.sinks.influx.schema": "collector.sinks.influx",
    "collector.receivers.otlp.schema": "collector.receivers.otlp",
}
"""The modules that hold only migration scripts, and the package whose tables they create
(`alerting.store` and `reports.sentlog` keep their scripts themselves)."""

HISTORY = {("collector.tiers.schema", "sequences")}
"""Writes outside the owner that are migration history: schema v3 created ``sequences`` along
with the rollup tables, and a script once run never changes."""

CHECKED_TABLES = {"collector.ledger.events": ("table_name", events.TABLES)}
"""The only modules whose SQL names its table at run time, the function every such name goes
through, and the closed set of tables that function lets through."""


def _module(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(module: str, owners: Iterable[str]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _may_write(module: str, table: str) -> bool:
    return (
        _within(module, (OWNERS[table],))
        or (module in SCRIPTS and _within(OWNERS[table], (SCRIPTS[module],)))
        or (module, table) in HISTORY
    )


def _resolved(module: str, found: References) -> tuple[References, list[str]]:
    """``found`` with the tables named through the module's checker added (as read and
    written), and the computed table names nothing vouches for."""
    checker, tables = CHECKED_TABLES.get(module, (None, ()))
    unchecked = [
        expr
        for expr in sorted(found.computed)
        if expr == END or checker is None or not re.fullmatch(rf"{checker}\(.*\)", expr)
    ]
    if len(unchecked) < len(found.computed):
        found.write.update(tables)
        found.read.update(tables)
    return found, unchecked


def violations(module: str, source: str) -> list[str]:
    """What the module's SQL does against the rules above, one line each."""
    found, unchecked = _resolved(module, scan(source))
    problems = [
        f"{module} names a table at run time ({expr}): name it in the SQL, or go through a"
        " checked function listed in CHECKED_TABLES"
        for expr in unchecked
    ]
    for table in sorted(found.write & set(OWNERS)):
        if not _may_write(module, table):
            problems.append(f"{module} writes {table}: call its owner {OWNERS[table]}")
    for table in sorted(found.read & set(OWNERS)):
        if not _within(module, (OWNERS[table], *READERS.get(table, ()), *SCRIPTS)):
            problems.append(f"{module} reads {table}: call its owner {OWNERS[table]}")
    return problems


SOURCES = {
    _module(path): path.read_text(encoding="utf-8")
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def test_the_import_contracts_hold(capfd):
    loggers = logging.Logger.manager.loggerDict.values()
    disabled = {logger: logger.disabled for logger in loggers if isinstance(logger, logging.Logger)}
    try:
        status = lint_imports(str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:  # import-linter's logging set-up disables every logger that exists: undo it
        for logger, was_disabled in disabled.items():
            logger.disabled = was_disabled
    assert status == 0, capfd.readouterr().out


def test_every_table_the_migrations_create_has_an_owner():
    created = {name for script in MIGRATIONS for name in re.findall(r"CREATE TABLE (\w+)", script)}
    assert created == set(OWNERS)


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_a_module_touches_only_the_tables_it_owns_or_may_read(module):
    assert violations(module, SOURCES[module]) == []


def test_the_exceptions_are_still_needed():
    for module, table in HISTORY:
        assert table in scan(SOURCES[module]).write
    for module in CHECKED_TABLES:
        assert scan(SOURCES[module]).computed


@pytest.mark.parametrize("table", ["calls", "scores"])
def test_the_event_tables_checker_lets_its_tables_through(table):
    assert events.table_name(table) == table


@pytest.mark.parametrize("table", ["alert_state", "calls; DROP TABLE streams", "CALLS", ""])
def test_the_event_tables_checker_refuses_any_other_name(table):
    with pytest.raises(ValueError, match="is not an event table"):
        events.table_name(table)


def test_the_script_modules_are_those_the_migrations_compose():
    """`collector.ledger.migrations` holds no SQL of its own: each script lives with its
    table's owner, and `SCRIPTS` names the modules that hold nothing else."""
    assert scan(SOURCES["collector.ledger.migrations"]) == References()
    tree = ast.parse(SOURCES["collector.ledger.migrations"])
    composed = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
    }
    assert composed == {*SCRIPTS, "alerting.store", "reports.sentlog"}


def _design_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The table under docs/design.md's "Tables and their owners": {table: (owner, readers)},
    each the backquoted names of its cell."""
    tokens = MarkdownIt().enable("table").parse((ROOT / "docs" / "design.md").read_text())
    heading = next(i for i, t in enumerate(tokens) if t.content == "Tables and their owners")
    start = next(i for i, t in enumerate(tokens) if i > heading and t.type == "table_open")
    end = next(i for i, t in enumerate(tokens) if i > start and t.type == "table_close")
    rows: list[list[list[str]]] = []
    for before, token in zip(tokens[start : end - 1], tokens[start + 1 : end], strict=True):
        if token.type == "tr_open":
            rows.append([])
        elif before.type in ("th_open", "td_open"):
            rows[-1].append(re.findall(r"`([\w.]+)`", token.content))
    header, *body = rows
    assert header == [[], [], []], "docs/design.md: columns table | owner | also read by"
    return {table[0]: (owner[0], tuple(readers)) for table, owner, readers in body}


def test_the_design_page_shows_the_owners_and_readers():
    shown = _design_table()
    assert shown == {table: (owner, READERS.get(table, ())) for table, owner in OWNERS.items()}


# The scan itself: every way a table's name can hide in a string

UPSERT = "INSERT INTO sequences (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET value = 1"


BYPASSES = {
    "concatenated literals": 'db.execute("DELETE FROM " + "alert_state")',
    "a concatenated variable": 'db.execute("SELECT count(*) FROM " + table)',
    "lower case": 'db.execute("delete from silences where id = ?", (1,))',
    "percent formatting": 'db.execute("DELETE FROM %s" % t)',
    "str.format": 'db.execute("UPDATE {} SET ends_us = ?".format(t), (0,))',
    "str.format by name": 'db.execute("DELETE FROM {t}".format(t=name))',
    "an f-string": 'db.execute(f"DELETE FROM {t} WHERE id = ?", (1,))',
    "a double-quoted name": "db.execute('INSERT INTO \"notifications\" (id) VALUES (1)')",
    "a backquoted name": 'db.execute("DELETE FROM `silences`")',
    "a main. prefix": 'db.execute("DELETE FROM main.notify_groups")',
    "a quoted main. prefix": 'db.execute(\'UPDATE "main"."alert_rules" SET error = NULL\')',
    "a bracketed name": 'db.execute("SELECT * FROM [report_log]")',
    "the second of a list": 'db.execute("WITH x AS (SELECT 1) SELECT 1 FROM x, dead_letters")',
    "an aliased list": 'db.execute("WITH x AS (SELECT 1) SELECT 1 FROM x AS a,dead_letters d")',
    "a join": 'db.execute("WITH x AS (SELECT 1) SELECT 1 FROM x JOIN report_log USING (y)")',
    "a table appended later": 'sql = "DELETE FROM "\ndb.execute(sql + name)',
    "a joined list": 'db.execute(" ".join(["DELETE FROM", name]))',
    "a fragment added to a query": 'q = "SELECT 1"\nq += " FROM " + name',
    "a prefixed fragment": 'q = "SELECT 1"\nq += " FROM main." + name',
    "lower case, formatted": 'db.execute("delete from %s" % t)',
    "insert or replace": 'db.execute("INSERT OR REPLACE INTO tier_state VALUES (1, 2)")',
    "replace into": 'db.execute("REPLACE INTO streams VALUES (1)")',
    "an index on a table": 'db.execute("CREATE INDEX IF NOT EXISTS x ON silences (id)")',
}


@pytest.mark.parametrize("source", BYPASSES.values(), ids=BYPASSES.keys())
def test_a_table_hidden_in_a_string_is_caught(source):
    assert violations("collector.cli.sneaky", source)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("alerting.engine", 'db.execute("DELETE FROM alert_state")'),
        ("reports.gather", 'db.execute("SELECT * FROM report_log")'),
        ("collector.ledger.connection", 'db.execute("DELETE FROM calls")'),
        ("collector.sinks.influx.build", 'db.execute("UPDATE sink_cursors SET position = 0")'),
        ("bench.rollup", 'db.execute("INSERT INTO rollup_dirty VALUES (1, 2)")'),
        ("collector.tiers.summary", 'db.execute("SELECT * FROM streams")'),
        ("collector.ledger.events", 'db.execute(f"SELECT * FROM {name}")'),
        ("collector.ledger.events", 'db.execute("SELECT * FROM " + table_name(t) + " x, " + t)'),
    ],
)
def test_only_the_owner_module_may_touch_a_table(module, source):
    assert violations(module, source)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("collector.ledger.sequences", f"db.execute({UPSERT!r})"),
        ("collector.ledger.sequences", 'db.execute("UPDATE OR IGNORE sequences SET value = 1")'),
        ("collector.ledger.events", 'db.execute(f"DELETE FROM {table_name(table)} WHERE x")'),
        ("collector.readers.alerts.reader", 'db.execute(f"SELECT {cols} FROM calls c, scores")'),
        ("collector.cli.status", 'print(f"{n} events from {path}")\nmsg["From"] = sender'),
        ("collector.cli.status", 'def f():\n    """Deletes from silences, reads from calls."""'),
    ],
)
def test_what_the_rules_allow_passes(module, source):
    """The owner's and readers' own SQL, the checked run-time names, prose and docstrings."""
    assert violations(module, source) == []


def test_an_upserts_set_is_no_table():
    assert scan(f"db.execute({UPSERT!r})") == References(write={"sequences"})


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
    assert module in SCRIPTS
    tree = ast.parse(SOURCES[module])
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
        )
    }
    assert imported <= {"__future__"}
