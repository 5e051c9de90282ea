"""Session fixtures for the docker/ tests: the dashboards, their Flux, and the Flux checker run
once over every query."""

import json

import pytest

from tests.docker.docker_stack import GRAFANA, container_config, load_generator, written_by
from tests.docker.flux_checker import BROKEN, check


def dashboard_queries() -> dict[str, str]:
    """id -> Flux, for every panel target and variable of the committed dashboards."""
    queries = {}
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                queries[f"{path.stem}/{panel['id']}:{panel['title']}/{target['refId']}"] = target[
                    "query"
                ]
        for variable in board["templating"]["list"]:
            queries[f"{path.stem}/variable:{variable['name']}"] = variable["query"]
    return queries


@pytest.fixture(scope="session")
def generator():
    return load_generator()


@pytest.fixture(scope="session")
def queries():
    return dashboard_queries()


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    return written_by(container_config(), tmp_path_factory.mktemp("written"))


@pytest.fixture(scope="session")
def flux_diagnostics(queries):
    """id -> diagnostics from the WASM Flux checker, for the dashboards and `BROKEN`."""
    return check({**queries, **BROKEN})
