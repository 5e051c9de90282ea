"""The rules file: the shipped defaults load; typos and impossible combinations are named."""

import pytest

from alerting.rules import RulesError, load_rules
from schemas.rules import BudgetRule, ChangeRule, ThresholdRule
from tests.paths import EXAMPLES


def error_of(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return str(info.value).replace(str(path), "FILE")


def test_shipped_rules_load_with_defaults_from_the_issue():
    rules = {rule.name: rule for rule in load_rules(EXAMPLES / "rules.yaml").rules}
    p95 = rules["HighP95Latency"]
    assert isinstance(p95, ThresholdRule)
    assert (p95.aggregate, p95.op, p95.threshold, p95.for_.total_seconds()) == (
        "p95",
        ">",
        2000,
        120,
    )
    assert rules["HighP99Latency"].threshold == 10000
    assert rules["HighFailureRate"].threshold == 0.8
    assert rules["HighErrorRate"].threshold == 0.05
    spike = rules["RequestSpike"]
    assert isinstance(spike, ChangeRule) and spike.ratio == 3
    assert rules["TokenSpike"].ratio == 5
    assert rules["HourlyCostHigh"].threshold == 10
    budget = rules["TenantDailyBudget"]
    assert isinstance(budget, BudgetRule)
    assert (budget.budget, budget.warn_at, budget.projected) == (100, [0.8, 1.0], True)
    assert rules["RateLimitErrors"].where == {"error_type": "rate_limit"}
    assert rules["LowQuality"].threshold == 0.8
    assert rules["UnpricedRequests"].threshold == 0
    assert rules["CollectorSilent"].window.total_seconds() == 900


def test_unknown_key_names_file_rule_and_field(tmp_path):
    message = error_of(
        tmp_path,
        "rules:\n  - {name: Slow, kind: threshold, metric: errors, threshold: 1, treshold: 2}\n",
    )
    assert message.splitlines()[1] == "  FILE: rule Slow: treshold: unknown key"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{name: A, kind: threshold, metric: requests, aggregate: p95, threshold: 1}",
            "rule A: aggregate: p95 does not apply to requests; use one of count, rate_per_s",
        ),
        (
            "{name: A, kind: threshold, metric: latency, threshold: 1}",
            "rule A: metric: Input should be",
        ),
        ("{name: A, kind: absence, group_by: [model]}", "rule A: group_by: unknown key"),
        ("{name: A, kind: budget, metric: latency_ms, budget: 1}", "rule A: metric: Input should"),
        ("{name: A, kind: budget, budget: 0}", "rule A: budget: Input should be greater than 0"),
        (
            "{name: A, kind: threshold, metric: errors, threshold: 1, group_by: [user_id]}",
            "rule A: group_by: cannot group by user_id",
        ),
        (
            "{name: A, kind: threshold, metric: errors, threshold: 1, where: {trace_id: x}}",
            "rule A: where: cannot filter on trace_id",
        ),
        ("{name: A, kind: change, metric: requests, ratio: 1}", "rule A: ratio: 1 fires on no"),
        (
            "{name: A, kind: change, metric: requests, ratio: 2, baseline: {offset: null}}",
            "rule A: baseline: give offset, trailing, or both",
        ),
        ("{name: A, kind: threshold, metric: errors, threshold: 1, for: soon}", "rule A: for: "),
        ("{name: A, kind: spike, metric: errors}", "rule A: Input tag 'spike'"),
        ("{name: A, kind: absence, labels: {severity: x}}", "rule A: labels: severity is set"),
    ],
)
def test_impossible_rules_are_named(tmp_path, rule, expected):
    message = error_of(tmp_path, f"rules:\n  - {rule}\n")
    assert expected in message.splitlines()[1]


def test_duplicate_names_are_refused(tmp_path):
    message = error_of(
        tmp_path, "rules:\n  - {name: A, kind: absence}\n  - {name: A, kind: absence}\n"
    )
    assert "two rules are named A" in message
