"""The allow-list of variable names is derived from the Rust sources; these tests pin down
that the derivation sees what the binaries really read (so an empty or wrong list cannot
make the manifest checks pass by accident)."""

import deploy_checks as dc


def test_every_binary_reads_the_runtime_config():
    variables = dc.config_variables()
    assert "BAC_DATABASE_URL" in variables and "OTEL_EXPORTER_OTLP_ENDPOINT" in variables
    for binary in dc.SERVICES:
        missing = variables - dc.allowed_env(binary)
        assert not missing, f"{binary}: {sorted(missing)}"


def test_the_gateway_reads_the_service_urls_and_only_it():
    urls = {f"BAC_{s.upper()}_GRPC_URL" for s in dc.service_schemas() if s != "gateway"}
    assert "BAC_GOOGLE_WORKSPACE_GRPC_URL" in urls and len(urls) == 5
    assert urls <= dc.allowed_env("bac-gateway")
    for binary in dc.SERVICES:
        if binary != "bac-gateway":
            assert not urls & dc.allowed_env(binary), binary


def test_the_sandbox_reads_its_own_variables():
    allowed = dc.allowed_env("bac-sandbox")
    assert {"BAC_SANDBOX_ODOO_ADDR", "BAC_SANDBOX_ODOO_DB", "BAC_SANDBOX_ODOO_VERSION"} <= allowed
    assert "BAC_SANDBOX_ODOO_ADDR" not in dc.allowed_env("bac-odoo")


def test_crate_closure_follows_the_manifests():
    assert dc.crate_closure("bac-odoo")[:1] == ("bac-odoo",)
    assert "bac-runtime" in dc.crate_closure("bac-odoo")
    assert "bac-gateway" not in dc.crate_closure("bac-odoo")


def test_exported_metrics_are_found():
    exported = dc.exported_metrics()
    for name in ("bac_http_requests_total", "bac_grpc_requests_total", "bac_grpc_request_duration_seconds",
                 "bac_upstream_quota_remaining_ratio", "bac_outbox_lag_seconds"):
        assert name in exported, name
    assert dc.known_metric("bac_grpc_request_duration_seconds_bucket")
    assert not dc.known_metric("bac_grpc_request_duration_second_bucket")
