"""The dashboards: generated, valid, reading only what the collector writes, choosing the bucket
from the retention the collector is configured with, and never averaging percentiles."""

import json
import re

import yaml

from alerting.rules import load_rules
from schemas.rules import BudgetRule
from tests.docker.docker_stack import DOCKER, GRAFANA, ROOT, compose, container_config

TITLES = {
    "overview.json": "LLM: Overview",
    "latency.json": "LLM: Latency",
    "cost.json": "LLM: Cost and usage",
    "quality.json": "LLM: Quality",
    "errors.json": "LLM: Errors",
}
SYSTEM_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
MEASUREMENT_FIELDS = re.compile(
    r'r\._measurement == ("\w+"|measurement) and \(?((?:r\._field == "\w+"(?: or )?)+)'
)


def committed() -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def string_literals(text: str) -> list[str]:
    return re.findall(r'"(\w+)"', text)


def test_committed_dashboards_are_the_generators_output(generator):
    built = generator.build()
    assert sorted(built) == sorted(TITLES)
    for name, board in built.items():
        text = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert text == generator.render(board), (
            f"run python docker/grafana/build_dashboards.py ({name})"
        )


def test_dashboards_are_whole_and_use_the_provisioned_datasource():
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    )["datasources"][0]
    boards = committed()
    assert {name: b["title"] for name, b in boards.items()} == TITLES
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0
            assert panel["targets"], panel["title"]
            sources = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
            assert {s["uid"] for s in sources} == {datasource["uid"]}
            assert {s["type"] for s in sources} == {datasource["type"]} == {"influxdb"}


def _measurement_fields(query: str) -> list[tuple[str, str]]:
    pairs = []
    for measurement, fields in MEASUREMENT_FIELDS.findall(query):
        names = (
            ["llm_call", "llm_rollup"] if measurement == "measurement" else [measurement.strip('"')]
        )
        pairs += [(m, f) for m in names for f in string_literals(fields)]
    return pairs


def test_queries_use_only_measurements_and_fields_the_collector_writes(queries, written):
    checked = set()
    for key, query in queries.items():
        pairs = _measurement_fields(query)
        assert len({f for _, f in pairs}) == len(set(re.findall(r'_field == "(\w+)"', query)))
        for measurement, name in pairs:
            assert name in written.fields.get(measurement, set()), (key, measurement, name)
        checked.update(pairs)
        line = re.search(r"^measurement = (.*)$", query, re.M)
        if line:
            assert set(string_literals(line.group(1))) - {"raw"} == {"llm_call", "llm_rollup"}
    assert {("llm_call", "latency_ms"), ("llm_rollup", "latency_p99"), ("llm_score", "value")} <= (
        checked
    )
    assert {("llm_rollup", "quality_mean"), ("llm_call", "cost_usd")} <= checked


def test_queries_read_only_buckets_the_collector_writes(queries, written):
    seen = set()
    for query in queries.values():
        chained = re.search(r"^bucket = (.*)$", query, re.M)
        if chained:
            seen.update(re.findall(r'(?:^|then |else )"(\w+)"', chained.group(1)))
        seen.update(re.findall(r'from\(bucket: "(\w+)"\)', query))
    assert seen == written.buckets == {"llm_raw", "llm_1h", "llm_1d", "llm_1mo"}


def test_queries_use_only_tags_the_collector_writes(queries, written):
    tags = set().union(*written.tags.values())
    fields = set().union(*written.fields.values())
    for key, query in queries.items():
        defined = set()
        for record in re.findall(r"identity: \{([^}]*)\}", query):
            defined.update(re.findall(r"(\w+):", record))
        referenced = set(re.findall(r"\br\.(\w+)", query)) - SYSTEM_COLUMNS
        assert referenced <= tags | fields | defined, (key, referenced - tags - fields - defined)
        grouped = {
            c for cols in re.findall(r"columns: \[([^\]]*)\]", query) for c in string_literals(cols)
        }
        assert grouped - SYSTEM_COLUMNS <= tags, key
        named = set(re.findall(r'tag: "(\w+)"', query)) | set(re.findall(r"\$\{(\w+):", query))
        assert named <= tags, key


def test_the_bucket_follows_the_configured_retention(queries):
    config = container_config()
    chain = re.search(r"^tier = (.*)$", queries["overview/1:Requests/A"], re.M).group(1)
    limits = re.findall(r'age <= int\(v: (\w+)\) then "(\w+)"', chain)
    expected = {"raw": "1w", "1h": "30d", "1d": "365d"}
    assert [(tier, period) for period, tier in limits] == list(expected.items())
    assert chain.endswith('else "1mo"')
    retention = config.tiers.retention
    assert {t: retention[t].days for t in expected} == {"raw": 7, "1h": 30, "1d": 365}
    assert retention["1mo"] is None
    buckets = re.search(r"^bucket = (.*)$", queries["overview/1:Requests/A"], re.M).group(1)
    pairs = dict(re.findall(r'tier == "(\w+)" then "(\w+)"', buckets))
    assert pairs == {t: config.influx.buckets.for_tier(t) for t in ("raw", "1h", "1d")}
    assert buckets.endswith(f'else "{config.influx.buckets.for_tier("1mo")}"')


def test_every_panel_reads_where_the_prelude_points_or_says_why_not(queries):
    """Raw-only panels (score names, the quality distribution, today's budget) say so."""
    for board in committed().values():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if "tier = " not in target["query"]:
                    assert re.search(r"raw|today", panel["description"], re.I), panel["title"]


def test_tier_percentiles_are_only_ever_the_highest_group_value(queries):
    percentile_queries = [q for q in queries.values() if "latency_p" in q]
    assert len(percentile_queries) >= 8
    for query in percentile_queries:
        rolled = query.split("rolled = () =>", 1)[1]
        functions = set(re.findall(r"fn: (\w+)", rolled)) | set(
            re.findall(r"\|> (\w+)\(\)", rolled)
        )
        assert functions <= {"max", "group"}, functions
        raw = query.split("rolled = () =>", 1)[0]
        assert "quantile(q:" in raw and "latency_ms" in raw


def test_variables_are_the_tag_values_of_the_bucket_read():
    for board in committed().values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert sorted(variables) == ["instance", "model", "task_type", "tenant_id"]
        for name, variable in variables.items():
            assert variable["type"] == "query" and variable["refresh"] == 2
            assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
            assert f'schema.tagValues(bucket: bucket, tag: "{name}"' in variable["query"]


def _pipelines(query: str) -> list[str]:
    """Each branch that reads a bucket (``raw = () => ...``, ``rolled = () => ...``), or the
    whole query."""
    branches = re.findall(r"^\w+ = \(\) => (.*?)(?=^\S)", query + "\nend", re.M | re.S)
    return branches or [query]


AGGREGATES = re.compile(
    r"\|> (aggregateWindow|sum|count|mean|max|quantile|reduce|histogram|window)\("
)


def test_every_query_sums_across_instances_and_filters_by_the_instance_variable(queries):
    """Grouping by the panel's own columns before any aggregate drops the instance tag from
    the group key: two collectors' points are added up, never drawn as two series."""
    panels = {k: q for k, q in queries.items() if "variable:" not in k and "from(bucket" in q}
    assert len(panels) >= 40
    for key, query in panels.items():
        assert '(if exists r.instance then r.instance else "") =~ /^${instance:regex}$/' in query
        for pipeline in _pipelines(query):
            first = AGGREGATES.search(pipeline)
            assert first is not None, key
            assert "|> group(" in pipeline[: first.start()], (key, first.group(1))
            for columns in re.findall(r"group\(columns: \[([^\]]*)\]\)", pipeline):
                assert "instance" not in columns, key


def test_budget_panels_come_from_the_daily_budget_rules():
    rules = load_rules(ROOT / "examples" / "rules.yaml").rules
    budgets = [r for r in rules if isinstance(r, BudgetRule) and r.period == "day"]
    assert budgets
    panels = [p for p in committed()["cost.json"]["panels"] if p["type"] == "bargauge"]
    assert len(panels) == len(budgets)
    for rule, panel in zip(budgets, panels, strict=True):
        defaults = panel["fieldConfig"]["defaults"]
        levels = [s["value"] for s in defaults["thresholds"]["steps"][1:]]
        assert levels == [rule.budget * level for level in rule.warn_at]
        assert defaults["max"] == rule.budget
        query = panel["targets"][0]["query"]
        assert f'r._field == "{rule.metric}"' in query
        assert f"|> group(columns: {json.dumps(rule.group_by)})".replace(", ", ", ") in query


def test_grafana_finds_the_dashboards_where_compose_mounts_them():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "llm.yaml").read_text())[
        "providers"
    ][0]
    mounts = dict(m.split(":")[:2] for m in compose()["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert (DOCKER / "grafana" / "dashboards").is_dir()
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
