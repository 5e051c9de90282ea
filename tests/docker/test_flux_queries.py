"""Every Flux query of the dashboards parses and type-checks in the WASM Flux language server
(@influxdata/flux-lsp-browser), with Grafana's ``v`` record and the dashboard variables bound."""

from tests.docker.flux_checker import BROKEN


def test_every_dashboard_query_type_checks(queries, flux_diagnostics):
    assert len(queries) >= 50
    problems = {k: d for k, d in flux_diagnostics.items() if k in queries and d}
    assert problems == {}
    assert set(queries) <= set(flux_diagnostics)


def test_the_checker_refuses_broken_queries(flux_diagnostics):
    messages = {k: [d["message"] for d in flux_diagnostics[k]] for k in BROKEN}
    assert "undefined identifier rangee" in messages["broken:unknown-function"]
    assert "expected string but found int (argument bucket)" in messages["broken:wrong-type"]
    assert "expected RPAREN, got EOF" in messages["broken:unbalanced"]
    assert any("unexpected argument function" in m for m in messages["broken:bad-argument"])
    assert all(d["severity"] == 1 for k in BROKEN for d in flux_diagnostics[k])


def test_diagnostics_point_into_the_query_as_written(flux_diagnostics):
    """The `v` binding the checker adds does not shift the reported lines."""
    (where,) = [d for d in flux_diagnostics["broken:unknown-function"] if "rangee" in d["message"]]
    assert (where["line"], where["character"]) == (1, 5)
