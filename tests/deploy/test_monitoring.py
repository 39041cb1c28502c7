"""Alert rules, their copies, the Grafana dashboard and the OTel collector config."""

from __future__ import annotations

import json

import yaml

import deploy_checks as dc

DOCUMENTED_ALERTS = {"BacHighErrorRate", "BacHighLatency", "BacApiQuotaExhaustion", "BacSyncFailures"}
# Alerts of the fleet's own beyond the four the overview documents.
FLEET_ALERTS = {"BacOutboxEventsParked"}


def load(path):
    return yaml.safe_load((dc.ROOT / path).read_text())


def test_the_four_documented_alerts():
    rules = [r for g in load("deploy/prometheus/alerts.yml")["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == DOCUMENTED_ALERTS | FLEET_ALERTS
    by_name = {}
    for r in rules:
        by_name.setdefault(r["alert"], []).append(r)
    for r in by_name["BacHighErrorRate"]:
        assert "> 0.05" in r["expr"] and r["for"] == "5m"
    for r in by_name["BacHighLatency"]:
        assert "histogram_quantile(0.99" in r["expr"] and "> 1" in r["expr"] and r["for"] == "5m"
    assert "< 0.10" in by_name["BacApiQuotaExhaustion"][0]["expr"]
    sync = by_name["BacSyncFailures"][0]
    assert 'bac_sync_runs_total{status="failed"}' in sync["expr"]
    assert "sync-runs" in sync["annotations"]["description"]
    parked = by_name["BacOutboxEventsParked"][0]
    assert "bac_outbox_parked" in parked["expr"] and "parked-events" in parked["annotations"]["description"]


def test_alerts_use_metrics_the_binaries_export():
    for g in load("deploy/prometheus/alerts.yml")["groups"]:
        for r in g["rules"]:
            names = dc.metric_names_in(r["expr"])
            assert names, r["alert"]
            unknown = {n for n in names if not dc.known_metric(n)}
            assert not unknown, f"{r['alert']}: {unknown}"


def test_rule_copies_agree(k8s_outputs):
    source = load("deploy/prometheus/alerts.yml")["groups"]
    component = load("k8s/components/prometheus-operator/prometheusrule.yaml")
    assert component["spec"]["groups"] == source, "run deploy/prometheus/sync-rule-copies"
    assert load("helm/bac-platform/files/alerts.yml")["groups"] == source, "run deploy/prometheus/sync-rule-copies"
    for target in ("kustomize-prod", "helm-all-enabled"):
        (rule,) = dc.by_kind(k8s_outputs[target], "PrometheusRule")
        assert rule["spec"]["groups"] == source, target


def test_dashboard_shows_what_the_overview_promises():
    dash = json.loads((dc.ROOT / "deploy/grafana/dashboards/bac-fleet.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for e in exprs:
        unknown = {n for n in dc.metric_names_in(e) if not dc.known_metric(n)}
        assert not unknown, f"{e}: {unknown}"
    text = "\n".join(exprs)
    for needle in ("rate(bac_http_requests_total", "rate(bac_grpc_requests_total",  # request rate
                   'status=~"5.."', 'code=~"2|4|13|14|15"',  # error rate
                   "histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
                   "bac_upstream_quota_remaining_ratio", "bac_sync_runs_total", "bac_outbox_lag_seconds"):
        assert needle in text, needle
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "service"} <= variables


def test_grafana_provisioning_points_at_the_dashboard():
    provider = load("deploy/grafana/provisioning/dashboards/bac.yml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    (ds,) = load("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert ds["uid"] == "prometheus" and ds["url"] == "http://prometheus:9090"


def test_otel_collector_pipelines_use_defined_components():
    cfg = load("deploy/otel-collector/config.yaml")
    for name, pipeline in cfg["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in cfg[kind], f"{name}: {kind} {component} is not defined"
    assert cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"]


def test_compose_prometheus_scrapes_every_service():
    cfg = load("deploy/prometheus/prometheus.yml")
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    for binary, offset in dc.SERVICES.items():
        assert jobs[binary] == [f"{binary}:{9100 + offset}"]
