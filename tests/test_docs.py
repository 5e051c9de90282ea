"""The generated reference pages: checked in as `python docs/generate.py` writes them, and
complete (every option, every command)."""

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest
from pydantic import BaseModel, ConfigDict

from collector.cli.main import main
from schemas.config import CollectorConfig
from tests.config_options import option_paths
from tests.paths import ROOT

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """docs/generate.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_checked_in_pages_are_what_the_generator_writes(generator):
    pages = generator.pages()
    assert sorted(path.name for path in pages) == ["cli.md", "configuration.md"]
    for path, text in pages.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"docs/{path.name} is out of date: run python docs/generate.py"
        )


def row(page: str, option: str) -> list[str]:
    """The cells after the option's name in its table row."""
    (line,) = [line for line in page.splitlines() if line.startswith(f"| `{option}` |")]
    return [cell.strip() for cell in line.strip("|").split(" | ")[1:4]]


def test_every_option_has_a_row_with_type_default_and_environment_variable(generator):
    page = generator.configuration_page()
    for path in option_paths(CollectorConfig):
        assert any(f"`{path}{shape}`" in page for shape in ("", "[]", ".<name>")), path
    assert row(page, "ingest.timestamps.ahead") == [
        "duration",
        "`1d`",
        "`LLM_COLLECTOR_INGEST__TIMESTAMPS__AHEAD`",
    ]
    assert row(page, "alerting.receivers[].slack.timeout") == [
        "duration",
        "`10s`",
        "in `LLM_COLLECTOR_ALERTING__RECEIVERS` (JSON)",
    ]
    assert row(page, "influx.url") == ["string", "required", "`LLM_COLLECTOR_INFLUX__URL`"]


def test_secrets_are_marked(generator):
    page = generator.configuration_page()
    secrets = [line.split("`")[1] for line in page.splitlines() if "**secret**" in line]
    assert sorted(secrets) == [
        "alerting.receivers[].email.password",
        "alerting.receivers[].slack.bot_token",
        "alerting.receivers[].slack.webhook_url",
        "influx.token",
        "receivers.otlp.token",
    ]


def test_an_option_without_a_docstring_stops_the_generator(generator):
    class Undocumented(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        documented: int = 1
        """Has one."""
        forgotten: int = 2

    with pytest.raises(ValueError, match=r"x\.forgotten: the option has no docstring"):
        list(generator._sections(Undocumented, generator.Place("x", None), {}))


def test_every_command_and_option_is_on_the_cli_page(generator):
    page = generator.cli_page()

    def walk(command: click.Command, ctx: click.Context) -> None:
        assert f"## `{ctx.command_path}`" in page
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and param.name != "help":
                assert f"`{param.opts[0]}" in page, (ctx.command_path, param.opts)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, click.Context(sub, info_name=name, parent=ctx))

    walk(main, click.Context(main, info_name="llm-collector"))
    assert "| `--tier [raw\\|1h\\|1d\\|1mo]` |" in page


LINK = re.compile(r"\]\(([^)#\s]+\.(?:md|yaml|png))(?:#([\w-]+))?\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    "page",
    [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "bench" / "README.md",
        *DOCS.glob("*.md"),
    ],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_links_between_pages_reach_a_file_and_heading(page):
    for target, anchor in LINK.findall(page.read_text(encoding="utf-8")):
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(path), f"{page.name}: {target}#{anchor}"


CODE_LINK = re.compile(r"\bdocs/([\w./-]+?\.md)(?:#([\w-]+))?")
"""A page of docs/ (and a heading's anchor) named in the code: in a message, a docstring or a
comment."""


def links_in_code() -> list[tuple[str, str, str]]:
    """(file:line, page, anchor) of every link to docs/ in the packages' modules."""
    found = []
    for package in ("collector", "alerting", "reports", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                where = f"{path.relative_to(ROOT)}:{number}"
                found += [(where, page, anchor) for page, anchor in CODE_LINK.findall(line)]
    return found


def test_links_in_code_are_found():
    text = 'raise X("restore it (see docs/operations.md#backups) or docs/cli.md.")'
    assert CODE_LINK.findall(text) == [("operations.md", "backups"), ("cli.md", "")]
    assert any(anchor for _, _, anchor in links_in_code())


@pytest.mark.parametrize(("where", "page", "anchor"), links_in_code(), ids=lambda v: v)
def test_links_in_code_reach_a_page_and_heading(where, page, anchor):
    path = DOCS / page
    assert path.is_file(), f"{where}: docs/{page} does not exist"
    if anchor:
        assert anchor in anchors(path), f"{where}: docs/{page} has no heading #{anchor}"
