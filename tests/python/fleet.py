"""Starts a private fleet (Odoo sandbox, the five services, the gateway) from target/debug
against the test infrastructure that scripts/test exports (BAC_TEST_DATABASE_URL,
BAC_TEST_KAFKA_BROKERS, BAC_TEST_VAULT_ADDR, BAC_TEST_VAULT_TOKEN), for black-box tests
written in Python (schemathesis)."""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("BAC_BIN_DIR", WORKSPACE / "target" / "debug"))
SERVICES = ["google-workspace", "odoo", "zoho", "tally", "messaging"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, procs, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


class Fleet:
    def __init__(self, log_dir):
        missing = [v for v in ("BAC_TEST_DATABASE_URL", "BAC_TEST_KAFKA_BROKERS",
                               "BAC_TEST_VAULT_ADDR", "BAC_TEST_VAULT_TOKEN") if v not in os.environ]
        if missing:
            raise RuntimeError(f"run through scripts/test (missing {', '.join(missing)})")
        base = os.environ["BAC_TEST_DATABASE_URL"].rsplit("/", 1)[0]
        self.db_url = f"{base}/bac_test_py_{uuid.uuid4().hex[:12]}"
        self.env = dict(os.environ)
        self.env.update({
            "BAC_DATABASE_URL": self.db_url,
            "BAC_KAFKA_BROKERS": os.environ["BAC_TEST_KAFKA_BROKERS"],
            "BAC_VAULT_ADDR": os.environ["BAC_TEST_VAULT_ADDR"],
            "BAC_VAULT_TOKEN": os.environ["BAC_TEST_VAULT_TOKEN"],
            "BAC_LOG": "info",
            # The sandbox stands on loopback, which upstream calls may reach only when opened.
            "BAC_UPSTREAM_ALLOW_CIDRS": "127.0.0.1/32",
            # schemathesis sends many requests with one key.
            "BAC_RATE_LIMIT_PER_KEY": "100000",
            "BAC_RATE_LIMIT_PER_TENANT": "100000",
            # schemathesis also sends requests without a valid key, many of them.
            "BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE": "100000",
        })
        self.log_dir = Path(log_dir)
        self.procs = []
        self.api = None
        self.key = None

    def _start(self, name, binary, extra):
        env = dict(self.env)
        env.update(extra)
        log = open(self.log_dir / f"{name}.log", "wb")
        p = subprocess.Popen([str(BIN / binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        return p

    def start(self):
        sandbox_port = free_port()
        self._start("bac-sandbox", "bac-sandbox", {"BAC_SANDBOX_ODOO_ADDR": f"127.0.0.1:{sandbox_port}"})
        self.sandbox = f"http://127.0.0.1:{sandbox_port}"
        urls = {}
        for svc in SERVICES:
            grpc, http = free_port(), free_port()
            self._start(f"bac-{svc}", f"bac-{svc}", {
                "BAC_GRPC_ADDR": f"127.0.0.1:{grpc}", "BAC_HTTP_ADDR": f"127.0.0.1:{http}"})
            urls[svc] = f"http://127.0.0.1:{grpc}"
            wait_http(f"http://127.0.0.1:{http}/healthz", self.procs)
        boot = subprocess.run(
            [str(BIN / "bac-gateway"), "bootstrap", "--tenant", "schemathesis",
             "--email", "admin@schemathesis.local"],
            env=self.env, capture_output=True, check=True)
        self.key = boot.stdout.decode().strip()
        api, grpc, http = free_port(), free_port(), free_port()
        gw_env = {"BAC_API_ADDR": f"127.0.0.1:{api}", "BAC_GRPC_ADDR": f"127.0.0.1:{grpc}",
                  "BAC_HTTP_ADDR": f"127.0.0.1:{http}"}
        for svc, url in urls.items():
            gw_env[f"BAC_{svc.upper().replace('-', '_')}_GRPC_URL"] = url
        self._start("bac-gateway", "bac-gateway", gw_env)
        wait_http(f"http://127.0.0.1:{http}/readyz", self.procs)
        self.api = f"http://127.0.0.1:{api}"
        return self

    def call(self, method, path, body=None):
        req = urllib.request.Request(
            self.api + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
