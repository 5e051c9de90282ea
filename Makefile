# The two set-up commands of the README, and helpers for development.
PYTHON ?= python3
SINCE ?= 2026-11-18
UNTIL ?= 2026-11-20

.PHONY: demo test lint bench

# Install, ingest the example trace into the embedded SQLite ledger, print a summary.
demo:
	$(PYTHON) -m pip install -q .
	llm-collector ingest --config examples/collector.yaml
	llm-collector summary --config examples/collector.yaml --since $(SINCE) --until $(UNTIL) --by model

# Install what the tests need and run them all (what CI runs). VictoriaMetrics is the real
# server behind /api/v2/write in the InfluxDB tests (InfluxDB 2.x itself is not packaged here);
# headless Chromium renders the report HTML in the reports tests; the WASM Flux checker (npm
# @influxdata/flux-lsp-browser) type-checks the Grafana dashboards' queries.
test:
	@command -v victoria-metrics >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; }
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -d tests/docker/node_modules/@influxdata/flux-lsp-browser || \
		npm ci --prefix tests/docker --no-audit --no-fund --loglevel=error
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -n 2 -q

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .

bench:
	$(PYTHON) bench/ingest.py
