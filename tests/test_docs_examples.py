"""The Python examples of the user docs run as a reader would run them: in order, in one
interpreter, in an empty directory. A block that needs a running daemon or packages the tests
do not install is marked ``<!-- syntax only: why -->`` and only compiled."""

import json
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from markdown_it import MarkdownIt

from tests.collector.test_trace import row
from tests.paths import ROOT

PAGE = ROOT / "docs" / "send-from-your-app.md"

STAND_INS = textwrap.dedent(
    '''
    """What the page takes from the reader's app: an OpenAI client, its messages, and
    langchain-openai's ChatOpenAI (here a langchain-core chat model of the same name)."""
    import sys
    import types
    from types import SimpleNamespace

    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    messages = [{"role": "user", "content": "Where is my order?"}]
    response = SimpleNamespace(
        model="gpt-4o-mini-2024-07-18",
        usage=SimpleNamespace(prompt_tokens=1200, completion_tokens=300),
    )
    client = SimpleNamespace(
        chat=SimpleNamespace(completions=SimpleNamespace(create=lambda **_: response))
    )


    class ChatOpenAI(BaseChatModel):
        model: str

        @property
        def _llm_type(self):
            return "openai-chat"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            usage = {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}
            message = AIMessage("It ships today.", usage_metadata=usage)
            return ChatResult(generations=[ChatGeneration(message=message)])


    sys.modules["langchain_openai"] = types.ModuleType("langchain_openai")
    sys.modules["langchain_openai"].ChatOpenAI = ChatOpenAI
    '''
)

RUNNER = textwrap.dedent(
    """
    import json, pathlib, sys
    blocks = json.loads(sys.stdin.read())
    namespace = {"__name__": "__main__"}
    exec(blocks.pop(0), namespace)
    trace_file = pathlib.Path("logs/trace.jsonl")
    lines = []
    for block in blocks:
        exec(block, namespace)
        lines.append(trace_file.read_bytes().count(b"\\n") if trace_file.exists() else 0)
    print(json.dumps(lines))
    """
)


def python_blocks(page) -> list[tuple[str, bool]]:
    """(code, runs) of each Python block: runs unless a ``syntax only`` comment precedes it."""
    tokens = MarkdownIt().parse(page.read_text(encoding="utf-8"))
    blocks = []
    for before, token in zip([None, *tokens], tokens, strict=False):
        if token.type == "fence" and token.info.strip() == "python":
            marked = before is not None and before.type == "html_block"
            blocks.append((token.content, not (marked and "syntax only" in before.content)))
    return blocks


def test_the_page_has_examples_to_run_and_to_compile():
    runs = Counter(runs for _, runs in python_blocks(PAGE))
    assert runs == {True: 4, False: 3}


@pytest.mark.parametrize(
    "code", [code for code, runs in python_blocks(PAGE) if not runs], ids=lambda c: c[:40]
)
def test_the_syntax_only_examples_compile(code):
    compile(code, str(PAGE), "exec")


def test_the_examples_run_and_write_what_the_collector_reads(tmp_path):
    blocks = [STAND_INS, *(code for code, runs in python_blocks(PAGE) if runs)]
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1, 2, 3, 4]  # each example wrote its line
    got = [row(line) for line in (tmp_path / "logs" / "trace.jsonl").read_bytes().splitlines()]
    assert [(r["model"], r["input_tokens"], r["tenant_id"]) for r in got] == [
        ("gpt-4o-mini", 1200, "acme"),
        ("gpt-4o-mini-2024-07-18", 1200, "acme"),
        ("claude-sonnet-4-5", 900, None),
        ("gpt-4o-mini", 12, "acme"),
    ]
    assert got[3]["provider"] == "openai"
    assert all(r["status"] == "ok" and r["cost_usd"] > 0 for r in got)
