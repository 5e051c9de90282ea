"""Reading a rules file, with errors that name the file, the rule and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.rules import RulesFile

_KINDS = ("threshold", "change", "budget", "absence")


class RulesError(Exception):
    """The rules file cannot be used; one line per problem, each naming file, rule and field."""


def load_rules(path: Path | str) -> RulesFile:
    """Parse and validate ``path``; RulesError says what is wrong and where."""
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise RulesError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise RulesError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RulesError(f"{path}: the top level must be a mapping with a 'rules' list")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as error:
        raise RulesError(describe(error, path, data)) from None


def describe(error: ValidationError, path: Path, data: dict[str, Any]) -> str:
    """One line per problem: ``file: rule NAME: field: message``."""
    lines = [f"{path}: {error.error_count()} problem(s) in the rules:"]
    listed = data.get("rules")
    raw_rules: list[Any] = listed if isinstance(listed, list) else []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        where = "(top level)"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            where = _rule_name(raw_rules, loc[1])
            loc = loc[3:] if len(loc) > 2 and loc[2] in _KINDS else loc[2:]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if loc:
            message = f"{'.'.join(str(part) for part in loc)}: {message}"
        lines.append(f"  {path}: {where}: {message}")
    return "\n".join(lines)


def _rule_name(rules: list[Any], index: int) -> str:
    rule = rules[index] if index < len(rules) else None
    if isinstance(rule, dict) and isinstance(rule.get("name"), str):
        return f"rule {rule['name']}"
    return f"rule #{index + 1}"
