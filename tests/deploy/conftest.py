"""Fixtures of tests/deploy: the rendered manifests.

scripts/validate-deploy renders every target once into a folder and passes it as
DEPLOY_RENDERED_DIR; run alone (`.venv/bin/pytest tests/deploy`), the tests render them
with the tools in .tools/bin (run scripts/install-deploy-tools first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import deploy_checks as dc

K8S_TARGETS = ["kustomize-dev", "kustomize-prod", "helm-default", "helm-all-enabled"]


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("DEPLOY_RENDERED_DIR")
    if given:
        return Path(given)
    missing = [t for t in ("kubectl", "helm", "docker-compose") if dc.tool(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found (PATH, {dc.TOOLS_BIN}): run scripts/install-deploy-tools")
    out = tmp_path_factory.mktemp("rendered")
    for target in K8S_TARGETS + ["compose"]:
        dc.render(target, out)
    return out


@pytest.fixture(scope="session")
def k8s_outputs(rendered_dir: Path) -> dict[str, list[dict]]:
    outputs = {}
    for target in K8S_TARGETS:
        path = rendered_dir / f"{target}.yaml"
        assert path.is_file(), f"{path} was not rendered"
        outputs[target] = dc.load_yaml_docs(path.read_text())
    return outputs


@pytest.fixture(scope="session")
def compose(rendered_dir: Path) -> dict:
    return yaml.safe_load((rendered_dir / "compose.yaml").read_text())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target", K8S_TARGETS)
