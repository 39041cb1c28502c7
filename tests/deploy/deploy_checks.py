"""What tests/deploy checks, as functions over parsed objects, so the tests can also prove
that each check catches a broken manifest.

Sources of truth:
- the environment variables a binary reads are the string literals "BAC_..."/"OTEL_..." in
  the Rust sources (crates/<crate>/src) of its crate and of the fleet crates it depends on;
  a literal with "{}" (the gateway's format!("BAC_{}_GRPC_URL", ...)) is expanded with every
  service's schema name (ServiceKind::key in bac-runtime's config.rs, "-" -> "_");
- the metrics the fleet exports are the names passed to counter!/gauge!/histogram!.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRATES = ROOT / "crates"
TOOLS_BIN = ROOT / ".tools" / "bin"


def tool(name: str) -> str | None:
    """A validation tool: the pinned one in .tools/bin, else from PATH (scripts/validate-deploy
    puts its tools folder first); None when scripts/install-deploy-tools has not run."""
    local = TOOLS_BIN / name
    return str(local) if local.exists() else shutil.which(name)

# The six services of the fleet and the sandbox, with their port plan (README, config.rs):
# gRPC 50050 + offset, admin HTTP 9100 + offset, the gateway's REST API on 8080.
SERVICES = {
    "bac-gateway": 0,
    "bac-google-workspace": 1,
    "bac-odoo": 2,
    "bac-zoho": 3,
    "bac-tally": 4,
    "bac-messaging": 5,
}
BINARIES = set(SERVICES) | {"bac-sandbox"}
IMAGE_NAME = "bac-fleet"

# Metrics the alerts or dashboard may name before a binary exports them (none today).
FUTURE_METRICS: set[str] = set()

ENV_LITERAL = re.compile(r'"((?:BAC|OTEL)_[A-Z0-9_]*(?:\{\}[A-Z0-9_]*)*)"')
METRIC_MACRO = re.compile(r'(?:counter|gauge|histogram)!\(\s*"(bac_[a-z0-9_]+)"')
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|DATABASE_URL|API_KEY|PRIVATE)", re.I)
# Values that look like credentials wherever they appear.
SECRET_VALUE_PATTERNS = [
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "URL with a password"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "private key"),
    (re.compile(r"\bbac_[a-z0-9]{10}_[A-Za-z0-9]{32}\b"), "BAC API key"),
    (re.compile(r"\b(hvs|hvb|s)\.[A-Za-z0-9]{24,}\b"), "Vault token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "AWS access key"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"), "Slack token"),
]


# ----------------------------------------------------------------------------------------
# what the binaries read and export


@lru_cache(maxsize=None)
def service_schemas() -> tuple[str, ...]:
    """Schema names of ServiceKind (gateway, google_workspace, odoo, ...)."""
    text = (CRATES / "bac-runtime/src/config.rs").read_text()
    match = re.search(r"pub fn key\(self\)[^{]*\{(.*?)\n    \}", text, re.S)
    assert match, "ServiceKind::key not found in crates/bac-runtime/src/config.rs"
    keys = re.findall(r'=>\s*"([a-z-]+)"', match.group(1))
    assert len(keys) >= 6, f"ServiceKind::key lists too few services: {keys}"
    return tuple(k.replace("-", "_") for k in keys)


@lru_cache(maxsize=None)
def crate_closure(crate: str) -> tuple[str, ...]:
    """The crate and the workspace crates it depends on ([dependencies] only)."""
    seen: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.append(name)
        manifest = (CRATES / name / "Cargo.toml").read_text()
        section = re.search(r"^\[dependencies\]\n(.*?)(?=^\[|\Z)", manifest, re.S | re.M)
        if not section:
            return
        for dep in re.findall(r"^(bac-[a-z0-9-]+)\s*[.=]", section.group(1), re.M):
            if (CRATES / dep).is_dir():
                visit(dep)

    visit(crate)
    return tuple(seen)


def env_literals(sources: Iterable[Path]) -> set[str]:
    names: set[str] = set()
    for path in sources:
        for literal in ENV_LITERAL.findall(path.read_text()):
            if "{}" in literal:
                names.update(literal.replace("{}", s.upper()) for s in service_schemas())
            else:
                names.add(literal)
    return names


@lru_cache(maxsize=None)
def allowed_env(binary: str) -> frozenset[str]:
    """Every BAC_*/OTEL_* variable name the binary's code (and its fleet deps) mentions."""
    assert binary in BINARIES, f"unknown binary {binary}"
    files: list[Path] = []
    for crate in crate_closure(binary):
        files.extend(sorted((CRATES / crate / "src").rglob("*.rs")))
    return frozenset(env_literals(files))


@lru_cache(maxsize=None)
def config_variables() -> frozenset[str]:
    """bac_runtime::Config::VARIABLES, the list every binary reads."""
    text = (CRATES / "bac-runtime/src/config.rs").read_text()
    match = re.search(r"pub const VARIABLES[^=]*=\s*&\[(.*?)\];", text, re.S)
    assert match, "Config::VARIABLES not found"
    return frozenset(re.findall(r'"([A-Z0-9_]+)"', match.group(1)))


@lru_cache(maxsize=None)
def exported_metrics() -> frozenset[str]:
    names: set[str] = set()
    for path in CRATES.glob("*/src/**/*.rs"):
        names.update(METRIC_MACRO.findall(path.read_text()))
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(bac_[a-z0-9_]+)", expr))


def known_metric(name: str) -> bool:
    exported = exported_metrics() | FUTURE_METRICS
    if name in exported:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return True
    return False


# ----------------------------------------------------------------------------------------
# rendered objects


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(kind: str, out_dir: Path) -> Path:
    """Renders one target with the tools of .tools/bin (when validate-deploy did not)."""
    out = out_dir / f"{kind}.yaml"
    kubectl, helm, compose = tool("kubectl"), tool("helm"), tool("docker-compose")
    if kind.startswith("kustomize-"):
        cmd = [kubectl, "kustomize", str(ROOT / "k8s/overlays" / kind.removeprefix("kustomize-"))]
    elif kind == "helm-default":
        cmd = [helm, "template", "bac", str(ROOT / "helm/bac-platform"), "--namespace", "bac"]
    elif kind == "helm-all-enabled":
        cmd = [helm, "template", "bac", str(ROOT / "helm/bac-platform"), "--namespace", "bac",
               "-f", str(ROOT / "helm/bac-platform/ci/all-enabled-values.yaml")]
    elif kind == "compose":
        cmd = [compose, "-f", str(ROOT / "docker-compose.yml"), "config"]
    else:
        raise ValueError(kind)
    if cmd[0] is None:
        raise RuntimeError("validation tools missing: run scripts/install-deploy-tools")
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr}")
    out.write_text(result.stdout)
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def name_of(doc: dict[str, Any]) -> str:
    return doc["metadata"]["name"]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def binary_of(container: dict[str, Any]) -> str | None:
    """The fleet binary a container runs (its command), None for a foreign image."""
    image = container.get("image", "")
    if IMAGE_NAME not in image.split("/")[-1].split(":")[0]:
        return None
    command = container.get("command") or container.get("args") or []
    assert command, f"container {container.get('name')} of the fleet image has no command"
    return Path(command[0]).name


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


# ----------------------------------------------------------------------------------------
# checks: each returns a list of problems (empty = fine)


def k8s_env_names(docs: list[dict[str, Any]], container: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Variable names a container gets: env entries and keys of envFrom ConfigMaps."""
    problems: list[str] = []
    names = {e["name"] for e in container.get("env", [])}
    configmaps = {name_of(c): c for c in by_kind(docs, "ConfigMap")}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            if ref not in configmaps:
                problems.append(f"{container['name']}: envFrom ConfigMap {ref} is not in the manifests")
                continue
            names.update(prefix + key for key in configmaps[ref].get("data", {}))
        else:
            problems.append(f"{container['name']}: envFrom {list(source)} cannot be checked (use env with secretKeyRef)")
    return names, problems


def check_env_names(docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for deployment in by_kind(docs, "Deployment"):
        for container in containers(deployment):
            binary = binary_of(container)
            if binary is None:
                continue
            if binary not in BINARIES:
                problems.append(f"{name_of(deployment)}: runs unknown binary {binary}")
                continue
            names, more = k8s_env_names(docs, container)
            problems += more
            for name in sorted(names - allowed_env(binary)):
                problems.append(f"{name_of(deployment)}/{container['name']}: {name} is not read by {binary}")
    return problems


def check_compose_env_names(compose: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for service_name, service in compose["services"].items():
        if IMAGE_NAME not in str(service.get("image", "")):
            continue
        binary = (service.get("labels") or {}).get("bac.binary")
        if binary is None:
            command = service.get("command") or []
            binary = Path(command[0]).name if command else None
        if binary not in BINARIES:
            problems.append(f"compose {service_name}: cannot tell which binary it runs ({binary})")
            continue
        env = service.get("environment") or {}
        names = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        for name in sorted(names - allowed_env(binary)):
            problems.append(f"compose {service_name}: {name} is not read by {binary}")
    return problems


def check_probes_limits_security(docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for deployment in by_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        for c in containers(deployment):
            where = f"{name_of(deployment)}/{c['name']}"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if not c.get(probe):
                    problems.append(f"{where}: no {probe}")
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in resources.get(kind, {}):
                        problems.append(f"{where}: no {kind}.{res}")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser", 0)) == 0:
                problems.append(f"{where}: runs as uid 0")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def check_no_secret_values(docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "Secret":
            problems.append(f"Secret {name}: secret objects (and their values) do not belong in the manifests")
        if kind == "ConfigMap":
            for key in doc.get("data", {}) or {}:
                if SECRET_NAME.search(key):
                    problems.append(f"ConfigMap {name}: {key} looks secret; reference a Secret instead")
        if kind == "Deployment":
            for c in containers(doc):
                for e in c.get("env", []):
                    if SECRET_NAME.search(e["name"]) and "value" in e:
                        problems.append(f"Deployment {name}/{c['name']}: {e['name']} has a literal value; use secretKeyRef")
        for path, value in walk_strings(doc):
            for pattern, what in SECRET_VALUE_PATTERNS:
                if pattern.search(value):
                    problems.append(f"{kind} {name}: {path} contains a {what}")
    return problems
