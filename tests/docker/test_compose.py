"""docker-compose.yml, .env.example, the Grafana datasource and the collector's container config
agree with each other. Docker's engine does not run here: these read the files (CONTRIBUTING.md says
how to check the stack by hand)."""

import re
from datetime import timedelta
from pathlib import PurePosixPath

import yaml

from schemas.durations import parse_duration
from tests.docker.docker_stack import (
    DOCKER,
    GRAFANA,
    VARIABLE,
    collector_environment,
    compose,
    container_config,
    env_example,
)

SERVICES = {"influxdb", "grafana", "collector", "mailpit"}
VOLUMES = {"influxdb-data", "influxdb-config", "grafana-data", "ledger"}


def mounts(service: str) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) of a service's short-syntax volumes."""
    found = {}
    for entry in compose()["services"][service]["volumes"]:
        source, target, *mode = re.split(r":(?![^{]*\})", entry)  # not the one in ${A:-b}
        found[target] = (source, mode[0] if mode else "rw")
    return found


def variable(value: str) -> str:
    """The name of the one ``${NAME}`` a value is made of."""
    match = VARIABLE.fullmatch(value)
    assert match, value
    return match.group(1)


def test_services_volumes_and_start_order():
    stack = compose()
    services = stack["services"]
    assert set(services) == SERVICES
    assert set(stack["volumes"]) == VOLUMES
    used = {
        target[0]
        for name in SERVICES - {"mailpit"}
        for target in mounts(name).values()
        if not target[0].startswith((".", "$"))
    }
    assert used == VOLUMES
    assert services["grafana"]["depends_on"] == {"influxdb": {"condition": "service_healthy"}}
    assert services["collector"]["depends_on"] == {
        "influxdb": {"condition": "service_healthy"},
        "mailpit": {"condition": "service_healthy"},
    }
    assert services["collector"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_health_checks():
    services = compose()["services"]
    assert services["influxdb"]["healthcheck"]["test"] == ["CMD", "influx", "ping"]
    assert "http://127.0.0.1:3000/api/health" in services["grafana"]["healthcheck"]["test"][1]
    assert services["mailpit"]["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]
    assert "healthcheck" not in services["collector"]  # the image's HEALTHCHECK on /healthz
    for name in SERVICES - {"collector"}:
        check = services[name]["healthcheck"]
        assert parse_duration(check["interval"]) <= timedelta(seconds=10)
        assert check["retries"] * parse_duration(check["interval"]) <= timedelta(minutes=2)


def test_every_variable_has_an_entry_in_env_example_and_every_entry_is_used():
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    grafana_reads = {"INFLUXDB_ORG", "INFLUXDB_TOKEN"}
    example = env_example()
    assert used == set(example)
    assert all(example.values())
    assert len(example["INFLUXDB_PASSWORD"]) >= 8  # InfluxDB's setup refuses shorter ones
    assert grafana_reads <= set(compose()["services"]["grafana"]["environment"])


def test_influxdb_setup_matches_the_collector():
    config = container_config()
    setup = compose()["services"]["influxdb"]["environment"]
    assert setup["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert {k: variable(setup[f"DOCKER_INFLUXDB_INIT_{k}"]) for k in ("USERNAME", "PASSWORD")} == {
        "USERNAME": "INFLUXDB_USERNAME",
        "PASSWORD": "INFLUXDB_PASSWORD",
    }
    assert setup["DOCKER_INFLUXDB_INIT_BUCKET"] == config.influx.buckets.raw
    raw_retention = parse_duration(setup["DOCKER_INFLUXDB_INIT_RETENTION"])
    assert raw_retention == config.tiers.retention["raw"]
    collector = compose()["services"]["collector"]["environment"]
    assert variable(setup["DOCKER_INFLUXDB_INIT_ORG"]) == variable(
        collector["LLM_COLLECTOR_INFLUX__ORG"]
    )
    assert variable(setup["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]) == variable(
        collector["LLM_COLLECTOR_INFLUX__TOKEN"]
    )
    assert config.influx.org == env_example()["INFLUXDB_ORG"]
    assert config.influx.secret_token() == env_example()["INFLUXDB_TOKEN"]
    assert config.influx.create_buckets  # the tier buckets are the collector's to create
    assert config.influx.url == "http://influxdb:8086"


def test_the_container_config_loads_and_points_at_the_mounts():
    config = container_config()
    collector = mounts("collector")
    trace_dir = PurePosixPath(config.sources[0].path).parent
    assert collector[str(trace_dir)] == ("${TRACE_DIR:-./traces}", "ro")
    assert collector[str(config.ledger.path.parent)] == ("ledger", "rw")
    assert config.quarantine.path.parent == config.ledger.path.parent
    env = collector_environment()
    assert collector[env["LLM_COLLECTOR_CONFIG"]] == ("./collector.yaml", "ro")
    assert env["LLM_COLLECTOR_SERVER__LISTEN"] == "0.0.0.0:9464"  # the Dockerfile's ENV
    assert config.server.address() == ("0.0.0.0", 9464)
    ports = compose()["services"]["collector"]["ports"]
    assert ports == ["127.0.0.1:${COLLECTOR_PORT:-9464}:9464"]


def test_mail_goes_to_mailpit():
    config = container_config()
    (mail,) = [r for r in config.alerting.receivers if r.name == "mail"]
    assert (mail.email.host, mail.email.port) == ("mailpit", 1025)
    assert not mail.email.starttls and not mail.email.tls  # Mailpit speaks plain SMTP
    assert config.alerting.route.receiver == "mail"
    assert config.reports.email_receiver == "mail"


def test_grafana_datasource_is_flux_on_the_influxdb_service():
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    )["datasources"][0]
    grafana_env = compose()["services"]["grafana"]["environment"]
    assert datasource["url"] == "http://influxdb:8086"
    assert datasource["jsonData"]["version"] == "Flux"
    assert datasource["jsonData"]["defaultBucket"] == container_config().influx.buckets.raw
    assert variable(datasource["jsonData"]["organization"]) in grafana_env
    assert variable(datasource["secureJsonData"]["token"]) in grafana_env
    assert variable(grafana_env["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"


def test_the_collector_tags_its_points_with_a_fixed_instance():
    """The default, the host name, is in a container its id: new on every recreate, each new
    one would start new series. collector.yaml names the instance instead."""
    data = yaml.safe_load((DOCKER / "collector.yaml").read_text(encoding="utf-8"))
    assert data["influx"]["instance"] == container_config().influx.instance == "collector-1"
