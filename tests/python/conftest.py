"""pytest fixtures for the bac-sandbox Python tests.

If ``BAC_SANDBOX_ODOO_URL`` is set (e.g. ``http://127.0.0.1:7001``) the tests run
against that server. Otherwise the built binary (``target/debug/bac-sandbox``, or
``BAC_SANDBOX_BIN``) is started on a free port and stopped after the session.
Build it first with ``cargo build -p bac-sandbox``.
"""
import http.server
import json
import os
import threading
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"bac-sandbox exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
        time.sleep(0.1)
    raise RuntimeError(f"bac-sandbox at {url} not healthy after {timeout}s: {last_error}")


@pytest.fixture(scope="session")
def odoo_url():
    """Base URL of a running Odoo sandbox.

    Its database and credentials are ``BAC_SANDBOX_ODOO_DB`` / ``_LOGIN`` / ``_PASSWORD``
    (default ``demo`` and admin/admin).
    """
    url = os.environ.get("BAC_SANDBOX_ODOO_URL")
    if url:
        url = url.rstrip("/")
        _wait_healthy(url, None)
        yield url
        return

    binary = Path(os.environ.get("BAC_SANDBOX_BIN", WORKSPACE / "target" / "debug" / "bac-sandbox"))
    if not binary.is_file():
        raise RuntimeError(
            f"bac-sandbox binary not found at {binary}: run `cargo build -p bac-sandbox` "
            "or set BAC_SANDBOX_BIN / BAC_SANDBOX_ODOO_URL"
        )
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "BAC_SANDBOX_ODOO_ADDR": f"127.0.0.1:{port}",
            # the tests read the same variables (with the same defaults)
            "BAC_SANDBOX_ODOO_DB": os.environ.get("BAC_SANDBOX_ODOO_DB", "demo"),
            "BAC_SANDBOX_ODOO_LOGIN": os.environ.get("BAC_SANDBOX_ODOO_LOGIN", "admin"),
            "BAC_SANDBOX_ODOO_PASSWORD": os.environ.get("BAC_SANDBOX_ODOO_PASSWORD", "admin"),
            "BAC_SANDBOX_ODOO_VERSION": "17.0",
        }
    )
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _provider_sandbox(url_var, addr_var, name):
    """Base URL of a running provider sandbox: ``url_var`` names a running one; otherwise the
    built binary is started with that provider's listener (``addr_var``) on a free port."""
    url = os.environ.get(url_var)
    if url:
        yield url.rstrip("/")
        return
    binary = Path(os.environ.get("BAC_SANDBOX_BIN", WORKSPACE / "target" / "debug" / "bac-sandbox"))
    if not binary.is_file():
        raise RuntimeError(f"bac-sandbox binary not found at {binary}: run `cargo build -p bac-sandbox`")
    odoo_port, port = _free_port(), _free_port()
    env = dict(os.environ)
    env.update({"BAC_SANDBOX_ODOO_ADDR": f"127.0.0.1:{odoo_port}", addr_var: f"127.0.0.1:{port}"})
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_healthy(f"http://127.0.0.1:{odoo_port}", proc)
        if name in ("slack", "teams"):
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="session")
def tally_url():
    """The Tally sandbox, TallyPrime's XML server (``BAC_SANDBOX_TALLY_URL``)."""
    yield from _provider_sandbox("BAC_SANDBOX_TALLY_URL", "BAC_SANDBOX_TALLY_ADDR", "tally")


@pytest.fixture(scope="session")
def zoho_url():
    """The Zoho sandbox (data centres under ``/<dc>/``; ``BAC_SANDBOX_ZOHO_URL``)."""
    yield from _provider_sandbox("BAC_SANDBOX_ZOHO_URL", "BAC_SANDBOX_ZOHO_ADDR", "zoho")


@pytest.fixture(scope="session")
def google_url():
    """The Google Workspace sandbox (every Google host on one listener; ``BAC_SANDBOX_GOOGLE_URL``)."""
    yield from _provider_sandbox("BAC_SANDBOX_GOOGLE_URL", "BAC_SANDBOX_GOOGLE_ADDR", "google")


@pytest.fixture(scope="session")
def slack_url():
    """The Slack sandbox (the Web API under ``/api/``; ``BAC_SANDBOX_SLACK_URL``)."""
    yield from _provider_sandbox("BAC_SANDBOX_SLACK_URL", "BAC_SANDBOX_SLACK_ADDR", "slack")


@pytest.fixture(scope="session")
def teams_url():
    """The Teams sandbox, the Bot Framework's side of a bot (``BAC_SANDBOX_TEAMS_URL``)."""
    yield from _provider_sandbox("BAC_SANDBOX_TEAMS_URL", "BAC_SANDBOX_TEAMS_ADDR", "teams")


class _Received(http.server.BaseHTTPRequestHandler):
    """Keeps each POST's Authorization header and JSON body; answers 200 `{}`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.append((self.headers.get("authorization", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    """An HTTP endpoint a sandbox posts signed requests to (a bot's, a Chat app's): ``.url``,
    and ``.received``, the ``(authorization, body)`` of each request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Received)
    server.received = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/messages"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def post_json(url, body):
    """POSTs ``body`` as JSON; the JSON answer."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())
