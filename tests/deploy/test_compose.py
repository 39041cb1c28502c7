"""docker-compose.yml (as `docker compose config` renders it) and the Dockerfile."""

from __future__ import annotations

import re

import deploy_checks as dc

INFRA = {"postgres", "kafka", "vault", "otel-collector", "prometheus", "grafana"}


def test_the_whole_fleet_and_its_infrastructure(compose):
    services = compose["services"]
    assert INFRA | dc.BINARIES | {"bootstrap"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["vault"]["image"].startswith(("openbao/openbao:", "hashicorp/vault:"))
    assert "-dev" in services["vault"]["entrypoint"]
    assert services["postgres"]["image"].startswith("postgres:")
    prometheus_mounts = {v["target"] for v in services["prometheus"]["volumes"]}
    assert "/etc/prometheus/alerts.yml" in prometheus_mounts
    grafana_mounts = {v["target"] for v in services["grafana"]["volumes"]}
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= grafana_mounts


def test_fleet_services_env_health_and_dependencies(compose):
    services = compose["services"]
    for binary, offset in dc.SERVICES.items():
        s = services[binary]
        assert s["command"] == [f"/usr/local/bin/{binary}"]
        env = s["environment"]
        assert env["BAC_GRPC_ADDR"] == f"0.0.0.0:{50050 + offset}"
        assert env["BAC_HTTP_ADDR"] == f"0.0.0.0:{9100 + offset}"
        assert env["BAC_KAFKA_BROKERS"] == "kafka:9092"
        assert env["BAC_VAULT_ADDR"] == "http://vault:8200"
        assert env["BAC_DATABASE_URL"].startswith("postgres://postgres@postgres:5432/")
        test = " ".join(s["healthcheck"]["test"])
        assert f"/dev/tcp/127.0.0.1/{9100 + offset}" in test and "/readyz" in test, binary
        for dep in ("postgres", "kafka", "vault"):
            assert s["depends_on"][dep]["condition"] == "service_healthy", (binary, dep)
        assert s["read_only"] is True and s["cap_drop"] == ["ALL"]
    gateway = services["bac-gateway"]
    for binary in dc.SERVICES:
        if binary != "bac-gateway":
            assert gateway["depends_on"][binary]["condition"] == "service_healthy"
            var = f"BAC_{binary.removeprefix('bac-').replace('-', '_').upper()}_GRPC_URL"
            assert gateway["environment"][var] == f"http://{binary}:{50050 + dc.SERVICES[binary]}"
    assert "/healthz" in " ".join(services["bac-sandbox"]["healthcheck"]["test"])


def test_published_ports_follow_the_dev_port_plan(compose):
    published = {}
    for name, s in compose["services"].items():
        for p in s.get("ports", []):
            assert p.get("host_ip") == "127.0.0.1", f"{name} publishes {p} beyond localhost"
            published[int(p["published"])] = name
    assert published[8080] == "bac-gateway"
    assert published[7001] == "bac-sandbox"
    for binary, offset in dc.SERVICES.items():
        assert published[9100 + offset] == binary
        assert published[50050 + offset] == binary


def test_bootstrap_runs_after_the_fleet(compose):
    b = compose["services"]["bootstrap"]
    assert b["labels"]["bac.binary"] == "bac-gateway"
    for dep in ("bac-gateway", "bac-odoo", "bac-sandbox"):
        assert b["depends_on"][dep]["condition"] == "service_healthy"
    assert b["environment"] == compose["services"]["bac-gateway"]["environment"]


def test_compose_env_vars_are_read_by_the_binaries(compose):
    assert dc.check_compose_env_names(compose) == []


def test_compose_holds_only_the_dev_mode_vault_token(compose):
    """The only secret-like value is the root token of the in-memory dev OpenBao (the same as
    scripts/dev-up's); no passwords (Postgres trusts the compose network)."""
    vault_cmd = " ".join(compose["services"]["vault"]["entrypoint"])
    token = re.search(r"-dev-root-token-id=(\S+)", vault_cmd).group(1)
    assert token == "bac-dev-root"
    for name, s in compose["services"].items():
        env = s.get("environment") or {}
        for key, value in env.items():
            if dc.SECRET_NAME.search(key):
                assert (key == "BAC_VAULT_TOKEN" and value == token) or key == "BAC_DATABASE_URL", (name, key)
            for pattern, what in dc.SECRET_VALUE_PATTERNS:
                assert not pattern.search(str(value)), f"{name}: {key} contains a {what}"


def test_compose_check_catches_a_typo(compose):
    broken = {"services": {"bac-odoo": dict(compose["services"]["bac-odoo"])}}
    broken["services"]["bac-odoo"]["environment"] = {**broken["services"]["bac-odoo"]["environment"], "BAC_VAULT_ADR": "x"}
    assert dc.check_compose_env_names(broken) == ["compose bac-odoo: BAC_VAULT_ADR is not read by bac-odoo"]


def test_dockerfile_builds_every_binary_into_a_non_root_image():
    text = (dc.ROOT / "deploy/docker/Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M)
    assert stages == ["chef", "planner", "builder", "runtime"]
    assert "cargo chef cook" in text and "--recipe-path recipe.json" in text
    for binary in dc.BINARIES:
        assert binary in text, binary
    runtime = text[text.index("AS runtime"):]
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0].isdigit(), "numeric USER so runAsNonRoot can be verified"
    lines = [l.strip() for l in (dc.ROOT / ".dockerignore").read_text().splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    assert lines[0] == "*", "the build context is an allow-list"
    assert {"!Cargo.toml", "!Cargo.lock", "!crates/", "!proto/"} <= set(lines)
