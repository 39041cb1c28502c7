"""The promises of the Kubernetes manifests, checked on every rendered target: both kustomize
overlays and the Helm chart (defaults, and every option switched on)."""

from __future__ import annotations

import copy

import deploy_checks as dc


def deployments_by_binary(docs):
    result = {}
    for d in dc.by_kind(docs, "Deployment"):
        binaries = {dc.binary_of(c) for c in dc.containers(d)} - {None}
        assert len(binaries) == 1, f"{dc.name_of(d)} runs {binaries}"
        result[binaries.pop()] = d
    return result


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_six_deployments_with_three_replicas(k8s_outputs, target):
    deployments = deployments_by_binary(k8s_outputs[target])
    assert set(deployments) == set(dc.SERVICES)
    for binary, d in deployments.items():
        spec = d["spec"]
        assert spec["replicas"] == 3, f"{binary}: replicas {spec['replicas']}"
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, binary
        assert dc.selector_matches(spec["selector"]["matchLabels"], pod_labels(d)), binary


def test_containers_have_probes_limits_and_security_context(k8s_outputs, target):
    assert dc.check_probes_limits_security(k8s_outputs[target]) == []


def test_probes_follow_the_port_plan(k8s_outputs, target):
    """Integration services: gRPC readiness probe on their gRPC port (grpc.health.v1, service
    "" = readiness); the gateway (an HTTP edge): HTTP /readyz. Liveness and startup use the
    admin port's /healthz, which does not depend on Postgres/Kafka/Vault."""
    for binary, d in deployments_by_binary(k8s_outputs[target]).items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        offset = dc.SERVICES[binary]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["grpc"] == 50050 + offset, binary
        assert ports["admin"] == 9100 + offset, binary
        if binary == "bac-gateway":
            assert ports["http"] == 8080
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        else:
            assert c["readinessProbe"]["grpc"]["port"] == ports["grpc"], binary
        for probe in ("livenessProbe", "startupProbe"):
            assert c[probe]["httpGet"]["path"] == "/healthz", (binary, probe)
            assert c[probe]["httpGet"]["port"] in ("admin", ports["admin"]), (binary, probe)


def test_graceful_termination_covers_the_drain(k8s_outputs, target):
    docs = k8s_outputs[target]
    for binary, d in deployments_by_binary(docs).items():
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        names, _ = dc.k8s_env_names(docs, c)
        assert "BAC_SHUTDOWN_GRACE_SECS" in names, binary
        configmaps = {dc.name_of(cm): cm.get("data", {}) for cm in dc.by_kind(docs, "ConfigMap")}
        grace = None
        for source in c.get("envFrom", []):
            grace = configmaps[source["configMapRef"]["name"]].get("BAC_SHUTDOWN_GRACE_SECS", grace)
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + int(grace), binary


def test_topology_spread_over_nodes_and_zones(k8s_outputs, target):
    for binary, d in deployments_by_binary(k8s_outputs[target]).items():
        constraints = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, binary
        for c in constraints:
            assert dc.selector_matches(c["labelSelector"]["matchLabels"], pod_labels(d)), binary


def test_hpa_and_pdb_per_service(k8s_outputs, target):
    docs = k8s_outputs[target]
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in dc.by_kind(docs, "HorizontalPodAutoscaler")}
    pdbs = dc.by_kind(docs, "PodDisruptionBudget")
    for binary, d in deployments_by_binary(docs).items():
        hpa = hpas.get(dc.name_of(d))
        assert hpa is not None, f"{binary}: no HPA"
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 3
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
        resources = {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
        assert resources == {"cpu", "memory"}, binary
        matching = [p for p in pdbs if dc.selector_matches(p["spec"]["selector"]["matchLabels"], pod_labels(d))]
        assert len(matching) == 1, f"{binary}: {len(matching)} PDBs"
        assert matching[0]["apiVersion"] == "policy/v1"
        assert matching[0]["spec"]["minAvailable"] == 2


def test_services_accounts_and_network_policies(k8s_outputs, target):
    docs = k8s_outputs[target]
    services = dc.by_kind(docs, "Service")
    accounts = {dc.name_of(a) for a in dc.by_kind(docs, "ServiceAccount")}
    policies = dc.by_kind(docs, "NetworkPolicy")
    for binary, d in deployments_by_binary(docs).items():
        mine = [s for s in services if dc.selector_matches(s["spec"].get("selector", {}), pod_labels(d))]
        cluster_ip = [s for s in mine if s["spec"].get("clusterIP") != "None"]
        headless = [s for s in mine if s["spec"].get("clusterIP") == "None"]
        assert len(cluster_ip) == 1 and len(headless) == 1, f"{binary}: services {[dc.name_of(s) for s in mine]}"
        assert {p["name"] for p in headless[0]["spec"]["ports"]} == {"grpc"}
        assert dc.name_of(cluster_ip[0]).endswith(binary.removeprefix("bac-"))
        pod = d["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in accounts, binary
        policy = [p for p in policies if dc.selector_matches(p["spec"]["podSelector"]["matchLabels"], pod_labels(d))]
        assert len(policy) == 1, f"{binary}: {len(policy)} NetworkPolicies"
        spec = policy[0]["spec"]
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        open_ingress = [r for r in spec["ingress"] if not r.get("from")]
        if binary == "bac-gateway":
            assert [p["port"] for r in open_ingress for p in r["ports"]] == [8080]
        else:
            assert open_ingress == [], f"{binary} takes traffic from outside the fleet"
        egress_ports = {p["port"] for r in spec["egress"] for p in r.get("ports", [])}
        assert {53, 5432, 9092, 8200} <= egress_ports, binary


def test_gateway_ingress(k8s_outputs, target):
    docs = k8s_outputs[target]
    ingresses = dc.by_kind(docs, "Ingress")
    assert len(ingresses) == 1
    service_names = {dc.name_of(s) for s in dc.by_kind(docs, "Service")}
    for rule in ingresses[0]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] in service_names
            assert path["backend"]["service"]["name"].endswith("gateway")


def test_no_secret_values(k8s_outputs, target):
    docs = k8s_outputs[target]
    assert dc.check_no_secret_values(docs) == []
    for binary, d in deployments_by_binary(docs).items():
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["BAC_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url", binary


def test_env_vars_are_read_by_the_binaries(k8s_outputs, target):
    assert dc.check_env_names(k8s_outputs[target]) == []


def test_every_service_gets_its_port_plan_addresses(k8s_outputs, target):
    docs = k8s_outputs[target]
    configmaps = {dc.name_of(cm): cm.get("data", {}) for cm in dc.by_kind(docs, "ConfigMap")}
    for binary, d in deployments_by_binary(docs).items():
        env = {}
        for source in d["spec"]["template"]["spec"]["containers"][0]["envFrom"]:
            env.update(configmaps[source["configMapRef"]["name"]])
        offset = dc.SERVICES[binary]
        assert env["BAC_GRPC_ADDR"] == f"0.0.0.0:{50050 + offset}"
        assert env["BAC_HTTP_ADDR"] == f"0.0.0.0:{9100 + offset}"
        if binary == "bac-gateway":
            for other, off in dc.SERVICES.items():
                if other == "bac-gateway":
                    continue
                var = f"BAC_{other.removeprefix('bac-').replace('-', '_').upper()}_GRPC_URL"
                # Every pod of the service, through its headless Service (client-side balancing).
                assert env[var] == f"dns:///{other}-headless:{50050 + off}", var


def test_monitoring_objects_in_prod_and_helm(k8s_outputs, target):
    docs = k8s_outputs[target]
    expected = target in ("kustomize-prod", "helm-all-enabled")
    assert bool(dc.by_kind(docs, "PrometheusRule")) == expected
    assert bool(dc.by_kind(docs, "ServiceMonitor")) == expected
    for monitor in dc.by_kind(docs, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["admin"]
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"


# -- the checks catch broken manifests -------------------------------------------------------


def test_checks_catch_a_typo_a_missing_probe_and_a_secret(k8s_outputs):
    docs = copy.deepcopy(k8s_outputs["kustomize-prod"])
    odoo = next(d for d in dc.by_kind(docs, "Deployment") if dc.name_of(d) == "bac-odoo")
    c = odoo["spec"]["template"]["spec"]["containers"][0]
    c["env"].append({"name": "BAC_KAFKA_BROKER", "value": "kafka:9092"})
    c["env"].append({"name": "BAC_ODOO_GRPC_URL", "value": "http://x:1"})  # the gateway's, not odoo's
    del c["livenessProbe"]
    c["securityContext"]["readOnlyRootFilesystem"] = False
    c["env"].append({"name": "BAC_VAULT_TOKEN", "value": "not-a-reference"})
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"a": "b"}})
    cm = next(d for d in dc.by_kind(docs, "ConfigMap") if dc.name_of(d).startswith("bac-common"))
    cm["data"]["BAC_DATABASE_URL"] = "postgres://bac:hunter2@db:5432/bac"

    env_problems = "\n".join(dc.check_env_names(docs))
    assert "BAC_KAFKA_BROKER is not read by bac-odoo" in env_problems
    assert "BAC_ODOO_GRPC_URL is not read by bac-odoo" in env_problems
    probe_problems = "\n".join(dc.check_probes_limits_security(docs))
    assert "bac-odoo/bac-odoo: no livenessProbe" in probe_problems
    assert "readOnlyRootFilesystem is not true" in probe_problems
    secret_problems = "\n".join(dc.check_no_secret_values(docs))
    assert "BAC_VAULT_TOKEN has a literal value" in secret_problems
    assert "Secret x" in secret_problems
    assert "URL with a password" in secret_problems
    assert "BAC_DATABASE_URL looks secret" in secret_problems
