"""Helm-specific checks: NOTES.txt renders, values.schema.json rejects what it should."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

import deploy_checks as dc

CHART = dc.ROOT / "helm/bac-platform"


def helm(*args, check=True):
    exe = dc.tool("helm")
    if exe is None:
        pytest.fail("helm not found: run scripts/install-deploy-tools")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=check, cwd=dc.ROOT)


def render_notes(tmp_path, *values_args):
    """helm renders NOTES.txt only on install; render it as a ConfigMap of a chart copy."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates/NOTES.txt").read_text()
    (chart / "templates/NOTES.txt").unlink()
    body = "".join("    " + line if line.strip() else line for line in notes.splitlines(True))
    (chart / "templates/notes-render.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n" + body)
    out = helm("template", "bac", str(chart), "-n", "bac", "--show-only", "templates/notes-render.yaml", *values_args)
    return yaml.safe_load(out.stdout)["data"]["notes"]


def test_notes_tell_how_to_finish_the_install(tmp_path):
    notes = render_notes(tmp_path)
    for service in dc.SERVICES:
        assert f"create secret generic {service}" in notes, service
    assert "vault-role-id" in notes
    assert "deploy/bac-gateway" in notes and "bac-gateway bootstrap --tenant demo" in notes
    assert "https://bac.example.com/api/v1/integrations/connections" in notes
    assert "<no value>" not in notes


def test_notes_follow_the_values(tmp_path):
    notes = render_notes(tmp_path, "--set", "ingress.enabled=false", "--set", "vault.auth=token")
    assert "port-forward svc/bac-gateway 8080:8080" in notes
    assert "vault-token" in notes and "vault-role-id" not in notes


@pytest.mark.parametrize("bad", [
    "services.odoo.env.BAC_typo=1",          # not a BAC_/OTEL_ name
    "services.odoo.replicaz=3",              # unknown key
    "vault.auth=kubernetes",                 # not supported by the binaries yet
    "log.format=xml",
    "kafka.topicReplication=0",
])
def test_values_schema_rejects(bad):
    result = helm("template", "bac", str(CHART), "--set", bad, check=False)
    assert result.returncode != 0, bad
    assert "values don't meet the specifications of the schema" in result.stderr or "schema" in result.stderr


def test_disabling_a_service_removes_it_everywhere():
    out = helm("template", "bac", str(CHART), "-n", "bac", "--set", "services.tally.enabled=false").stdout
    docs = dc.load_yaml_docs(out)
    assert not [d for d in docs if "tally" in dc.name_of(d)]
    gateway_cm = next(d for d in dc.by_kind(docs, "ConfigMap") if dc.name_of(d) == "bac-gateway")
    assert "BAC_TALLY_GRPC_URL" not in gateway_cm["data"]
    assert len(dc.by_kind(docs, "Deployment")) == 5
