"""``llm-collector rules check``: validate an alert rules file."""

from __future__ import annotations

from pathlib import Path

import click

from alerting.rules import RulesError, load_rules


@click.group()
def rules() -> None:
    """Alert rules files."""


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def rules_check(path: Path) -> None:
    """Validate FILE; exit 1 with one line per problem (file, rule, field)."""
    try:
        loaded = load_rules(path)
    except RulesError as error:
        raise click.ClickException(str(error)) from None
    kinds: dict[str, int] = {}
    for rule in loaded.rules:
        kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
    detail = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    click.echo(f"{path}: {len(loaded.rules)} rule(s) OK ({detail or 'none'})")
