"""Which ledger tables a module's SQL reads and writes, found in its source text (for
tests/test_architecture.py).

Every string the module builds is read as SQL: literals, f-strings, ``+`` concatenations,
``%`` and ``.format`` templates and ``sep.join([...])``, each with the parts computed at run time
marked. SQL keywords match in any case; a table name may be quoted (``"t"``, ```t```), bracketed
(``[t]``) or ``main.``-prefixed, and the tables of a ``FROM a, b`` list and of every JOIN count.
Where SQL names its table at run time (a computed part where a table goes, or a string ending
where a table would follow), the scan reports the expression that computes it.
Bare string statements (docstrings) are prose, not SQL, and are skipped.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

FIELD = "\x00"
"""Stands in a built string for a part computed at run time."""
END = "(the string ends where the table goes)"
"""The expression reported for SQL whose table is appended elsewhere."""


@dataclass
class Template:
    """A built string: its literal text with `FIELD` for each computed part, and those parts."""

    text: str
    fields: list[ast.expr] = field(default_factory=list)

    def __add__(self, other: Template) -> Template:
        return Template(self.text + other.text, self.fields + other.fields)


def _computed(expr: ast.expr) -> Template:
    return Template(FIELD, [expr])


def _part(expr: ast.expr) -> Template:
    """A string part: its text when it is built from literals, else computed."""
    built = _build(expr)
    return built if built is not None else _computed(expr)


_PERCENT = re.compile(r"%%|%(?:\((\w+)\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[a-zA-Z]")
_BRACES = re.compile(r"\{\{|\}\}|\{([^{}!:]*)(?:![rsa])?(?::[^{}]*)?\}")


def _substitute(
    template: Template, pattern: re.Pattern[str], part: Callable[[re.Match[str], int], Template]
) -> Template:
    """``template`` with each match of ``pattern`` in its literal text replaced by ``part(match,
    n)``, n counting the matches that take an argument (``%%``, ``{{`` and ``}}`` do not)."""
    out, taken = Template(""), 0
    for number, piece in enumerate(template.text.split(FIELD)):
        if number:
            out += _computed(template.fields[number - 1])
        position = 0
        for match in pattern.finditer(piece):
            out += Template(piece[position : match.start()])
            if match[0] in ("%%", "{{", "}}"):
                out += Template(match[0][0])
            else:
                out += part(match, taken)
                taken += 1
            position = match.end()
        out += Template(piece[position:])
    return out


def _percent(node: ast.BinOp, template: Template) -> Template:
    args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]

    def part(match: re.Match[str], number: int) -> Template:
        named = match[1] is not None
        return _computed(node.right) if named or number >= len(args) else _part(args[number])

    return _substitute(template, _PERCENT, part)


def _format(node: ast.Call, template: Template) -> Template:
    keywords = {k.arg: k.value for k in node.keywords if k.arg}

    def part(match: re.Match[str], number: int) -> Template:
        name = match[1].split(".")[0].split("[")[0]
        if name in keywords:
            return _part(keywords[name])
        index = number if name == "" else int(name) if name.isdigit() else len(node.args)
        return _part(node.args[index]) if index < len(node.args) else _computed(node)

    return _substitute(template, _BRACES, part)


def _build(node: ast.expr) -> Template | None:
    """The string ``node`` builds, or None when it builds none from literals."""
    if isinstance(node, ast.Constant):
        return Template(node.value) if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        out = Template("")
        for value in node.values:
            out += _part(value.value if isinstance(value, ast.FormattedValue) else value)
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _build(node.left), _build(node.right)
        if left is None and right is None:
            return None
        return (left or _computed(node.left)) + (right or _computed(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = _build(node.left)
        return None if left is None else _percent(node, left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        base = _build(node.func.value)
        if base is None:
            return None
        if node.func.attr == "format":
            return _format(node, base)
        listed = node.args[0] if node.args else None
        if node.func.attr == "join" and isinstance(listed, ast.List | ast.Tuple):
            out = Template("")
            for number, element in enumerate(listed.elts):
                out += (base if number else Template("")) + _part(element)
            return out
    return None


def strings(tree: ast.AST) -> Iterator[Template]:
    """Every string the module builds (a built one whole, then the strings inside its computed
    parts), but bare string statements: docstrings."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant | ast.JoinedStr):
            continue  # a docstring
        built = _build(node) if isinstance(node, ast.expr) else None
        if built is not None:
            yield built
            stack.extend(built.fields)  # strings inside the computed parts
        else:
            stack.extend(ast.iter_child_nodes(node))


_TABLE = (
    r"(?:(?:main|\"main\"|`main`|\[main\])\s*\.\s*)?"
    r"(?P<table>\"\w+\"|`\w+`|\[\w+\]|\w+|\x00|\Z)"
)
"""A table: quoted, bracketed or ``main.``-prefixed; `FIELD` when it is computed, the empty
string when the text ends there."""
_NAME = r"(?:\s*(?=[\"`\[\x00])|\s+|\s*(?=\Z))" + _TABLE
"""A table right after its keyword."""
_WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|DELETE\s+FROM"
    r"|UPDATE(?:\s+OR\s+\w+)?(?!\s+SET\b)|(?:ALTER|DROP)\s+TABLE(?:\s+IF\s+EXISTS)?"
    r"|CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX(?:\s+IF\s+NOT\s+EXISTS)?\s+\S+\s+ON)" + _NAME,
    re.IGNORECASE,
)
_READ = re.compile(r"\b(?:FROM|JOIN)" + _NAME, re.IGNORECASE)
_NEXT_IN_LIST = re.compile(r"(?:\s+(?:AS\s+)?\w+)?\s*,\s*" + _TABLE, re.IGNORECASE)
"""One more table of a ``FROM a [alias], b`` list, right after the previous one."""


@dataclass
class References:
    """The tables a module's SQL writes and reads, and the computed parts that name one."""

    write: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    computed: set[str] = field(default_factory=set)
    """Each expression (as source) that computes a table's name, or `END`."""


_STATEMENT = re.compile(
    r"\s*(?:SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|WITH)\b", re.IGNORECASE
)


def _tables(pattern: re.Pattern[str], template: Template, found: References) -> Iterator[str]:
    """The names at the table positions ``pattern`` finds; computed ones go to ``found`` when
    the string is SQL: it starts with a statement, or its keyword is in upper case (a fragment
    of SQL), unlike prose such as ``f"events from {path}"``."""
    statement = _STATEMENT.match(template.text) is not None
    positions = [i for i, char in enumerate(template.text) if char == FIELD]
    for match in pattern.finditer(template.text):
        keyword = template.text[match.start() : match.start("table")]
        sql = statement or keyword.split()[0].isupper()
        yield from _name(match, template, positions, found, sql)
        if pattern is _READ:
            end = match.end()
            while more := _NEXT_IN_LIST.match(template.text, end):
                yield from _name(more, template, positions, found, sql)
                end = more.end()


def _name(
    match: re.Match[str],
    template: Template,
    positions: list[int],
    found: References,
    sql: bool,
) -> Iterator[str]:
    table = match["table"]
    if table not in (FIELD, ""):
        yield table.strip('"`[]').lower()
    elif sql and table == FIELD:
        found.computed.add(ast.unparse(template.fields[positions.index(match.start("table"))]))
    elif sql:
        found.computed.add(END)


def scan(source: str) -> References:
    """The tables a module's source writes and reads in SQL."""
    found = References()
    for template in strings(ast.parse(source)):
        found.write.update(_tables(_WRITE, template, found))
        found.read.update(_tables(_READ, template, found))
    return found
