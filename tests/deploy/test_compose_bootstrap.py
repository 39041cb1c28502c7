"""deploy/compose/bootstrap.sh against a stand-in gateway and OpenBao on 127.0.0.1 (no
Docker here): it bootstraps once, reuses a working key, creates the sandbox connection once,
and puts the sandbox password back after a dev-mode OpenBao restart."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import deploy_checks as dc

SCRIPT = dc.ROOT / "deploy/compose/bootstrap.sh"
VAULT_TOKEN = "bac-dev-root"


class FakeFleet:
    def __init__(self, key_dir: Path) -> None:
        # keys minted by the stand-in `bac-gateway bootstrap` (one file each) are valid
        self.key_dir = key_dir
        self.connections: list[dict] = []
        self.secrets: dict[str, dict] = {}
        self.created_bodies: list[dict] = []
        self.vault_writes = 0


def make_handler(fleet: FakeFleet):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def reply(self, status: int, body: dict | None = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ")
            return auth.startswith("Bearer ") and re.fullmatch(r"bac_[a-z]{10}_[0-9]{32}", key) is not None \
                and (fleet.key_dir / key).exists()

        def body(self) -> dict:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if self.path == "/api/v1/integrations/connections":
                if not self.authorized():
                    return self.reply(401, {"error": "unauthenticated"})
                return self.reply(200, {"connections": [
                    {k: c[k] for k in ("created_at", "id", "integration", "name")} for c in fleet.connections]})
            self.reply(404)

        def do_POST(self):
            if self.path == "/api/v1/integrations/connections":
                if not self.authorized():
                    return self.reply(401)
                body = self.body()
                fleet.created_bodies.append(body)
                conn = {"id": f"con_{len(fleet.connections) + 1:04d}", "integration": body["integration"],
                        "name": body["name"], "created_at": "2026-01-01T00:00:00Z", "config": body["config"]}
                fleet.connections.append(conn)
                fleet.secrets[conn["id"]] = body["credentials"]
                return self.reply(201, {**conn, "credentials_set": sorted(body["credentials"])})
            m = re.fullmatch(r"/api/v1/integrations/connections/(con_\d+)/test", self.path)
            if m:
                if not self.authorized():
                    return self.reply(401)
                ok = fleet.secrets.get(m.group(1), {}).get("password") == "admin"
                return self.reply(200, {"connection_id": m.group(1), "ok": ok})
            m = re.fullmatch(r"/v1/secret/data/bac/demo/odoo/(con_\d+)", self.path)
            if m:
                if self.headers.get("X-Vault-Token") != VAULT_TOKEN:
                    return self.reply(403)
                fleet.secrets[m.group(1)] = self.body()["data"]
                fleet.vault_writes += 1
                return self.reply(200, {"data": {"version": fleet.vault_writes}})
            self.reply(404)

    return Handler


@pytest.fixture()
def fleet(tmp_path: Path):
    key_dir = tmp_path / "minted"
    key_dir.mkdir()
    state = FakeFleet(key_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    # A stand-in for `bac-gateway bootstrap`: mints a key the fake gateway accepts.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "bootstrap-calls"
    fake = bin_dir / "bac-gateway"
    fake.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
[[ "$*" == 'bootstrap --tenant demo --tenant-name Demo Company --email admin@demo.local' ]] || exit 64
echo x >>{calls}
n=$(wc -l <{calls})
key=$(printf 'bac_abcdefghij_%032d' "$n")
touch "{key_dir}/$key"
printf '%s\\n' "$key"
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def run():
        state_dir = tmp_path / "state"
        state_dir.mkdir(exist_ok=True)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
               "BAC_VAULT_ADDR": url, "BAC_VAULT_TOKEN": VAULT_TOKEN}
        result = subprocess.run(["bash", str(SCRIPT), url, "http://bac-sandbox:7001", str(state_dir)],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result

    state.run = run
    state.calls = calls
    state.key_file = tmp_path / "state" / "api-key"
    yield state
    server.shutdown()
    server.server_close()


def bootstrap_count(fleet) -> int:
    return len(fleet.calls.read_text().splitlines()) if fleet.calls.exists() else 0


def test_first_run_bootstraps_and_creates_the_sandbox_connection(fleet):
    out = fleet.run()
    assert bootstrap_count(fleet) == 1
    key = fleet.key_file.read_text().strip()
    assert stat.S_IMODE(fleet.key_file.stat().st_mode) == 0o600
    assert f"export BAC_API_KEY={key}" in out.stdout
    for line in ("export BAC_GATEWAY_URL=http://127.0.0.1:8080", "export KAFKA_BROKERS=127.0.0.1:9094",
                 "export VAULT_ADDR=http://127.0.0.1:8200", f"export VAULT_TOKEN={VAULT_TOKEN}"):
        assert line in out.stdout
    (body,) = fleet.created_bodies
    assert body == {"integration": "odoo", "name": "Odoo sandbox",
                    "config": {"url": "http://bac-sandbox:7001", "database": "demo", "username": "admin"},
                    "credentials": {"password": "admin"}}


def test_second_run_changes_nothing(fleet):
    fleet.run()
    out = fleet.run()
    assert bootstrap_count(fleet) == 1
    assert len(fleet.connections) == 1 and fleet.vault_writes == 0
    assert "still works" in out.stderr and "exists and works" in out.stderr


def test_a_restarted_dev_openbao_gets_the_sandbox_password_back(fleet):
    fleet.run()
    fleet.secrets.clear()  # OpenBao dev mode restarted: in-memory secrets are gone
    fleet.run()
    assert fleet.vault_writes == 1
    assert fleet.secrets["con_0001"] == {"password": "admin"}
    assert bootstrap_count(fleet) == 1 and len(fleet.connections) == 1


def test_a_rejected_key_is_replaced(fleet):
    fleet.run()
    old = fleet.key_file.read_text().strip()
    (fleet.key_dir / old).unlink()  # e.g. the database was reset
    fleet.run()
    assert bootstrap_count(fleet) == 2
    assert fleet.key_file.read_text().strip() != old
    assert len(fleet.connections) == 1
