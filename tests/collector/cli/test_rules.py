"""``llm-collector rules check``: OK with a count per kind, or exit 1 naming file, rule, field."""

from click.testing import CliRunner

from collector.cli.main import main
from tests.paths import EXAMPLES


def test_rules_check_accepts_the_shipped_rules():
    result = CliRunner().invoke(main, ["rules", "check", str(EXAMPLES / "rules.yaml")])
    assert result.exit_code == 0
    assert result.output.endswith(
        "rules.yaml: 12 rule(s) OK (1 absence, 1 budget, 2 change, 8 threshold)\n"
    )


def test_rules_check_names_the_problem(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - {name: Quiet, kind: absence, window: 0s}\n")
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}: rule Quiet: window: the window must be longer than zero" in result.output


def test_rules_test_on_a_rules_file_names_what_is_missing():
    result = CliRunner().invoke(main, ["rules", "test", str(EXAMPLES / "rules.yaml")])
    assert result.exit_code == 1
    assert "not a rule test file: rule_files: Field required; tests: Field required;" in (
        result.output
    )
    assert "rules: unknown key" in result.output and "pydantic" not in result.output
