"""``llm-collector status`` beside a running daemon: firing alerts from the ledger, and the
jobs' last and next runs from the daemon's /healthz."""

import json
from datetime import datetime

from click.testing import CliRunner

from collector.cli.main import main
from tests.collector.daemon_harness import firing


def status(config, *args):
    result = CliRunner().invoke(main, ["status", "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_status_shows_firing_alerts_and_the_daemons_jobs(tmp_path):
    with firing(tmp_path):
        state = json.loads(status(tmp_path / "collector.yaml", "--json"))
        text = status(tmp_path / "collector.yaml")
    [alert] = state["firing_alerts"]
    assert (alert["rule"], alert["labels"]["alertname"], alert["value"]) == ("Errors", "Errors", 1)
    daemon = state["daemon"]
    assert daemon["status"] in ("ok", "unhealthy")
    evaluate = daemon["jobs"]["evaluate"]
    assert evaluate["interval_s"] == 0.2
    last, upcoming = (datetime.fromisoformat(evaluate[k]) for k in ("last_run", "next_run"))
    assert 0 <= (upcoming - last).total_seconds() <= 1
    assert {"rollup", "expire", "deliver", "status"} <= set(daemon["jobs"])
    assert "firing alerts: 1" in text and "Errors" in text
    assert "evaluate" in text and "0.2 s" in text


def test_status_without_a_daemon_says_so(tmp_path):
    with firing(tmp_path):
        pass  # a ledger with a firing alert, and the daemon gone
    state = json.loads(status(tmp_path / "collector.yaml", "--json"))
    assert state["firing_alerts"][0]["rule"] == "Errors"
    assert state["daemon"]["error"].startswith("no daemon answering at http://127.0.0.1:")


def test_another_service_on_the_port_is_named_not_a_crash(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from collector.cli.status import daemon_jobs
    from schemas.config import CollectorConfig

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>no such page</html>")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = CollectorConfig(server={"listen": f"127.0.0.1:{server.server_port}"})
        answer = daemon_jobs(config)
    finally:
        server.shutdown()
    assert answer["error"].startswith(
        f"no daemon answering at http://127.0.0.1:{server.server_port}"
    )
