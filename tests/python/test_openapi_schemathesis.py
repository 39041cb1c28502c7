"""schemathesis against the gateway's own OpenAPI document with every check: no 5xx, every
answer as documented, schema-valid requests accepted and invalid ones refused. Needs the
infrastructure scripts/test starts."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet import Fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet-logs"))
    try:
        f.start()
        status, body = f.call("POST", "/api/v1/integrations/connections", {
            "integration": "odoo", "name": "sandbox",
            "config": {"url": f.sandbox, "database": "demo", "username": "admin"},
            "credentials": {"password": "admin"}})
        assert status == 201, body
        yield f
    finally:
        f.stop()
        for log in sorted(Path(f.log_dir).glob("*.log")):
            text = log.read_text(errors="replace")
            if "panicked" in text:
                print(f"--- {log.name}\n{text[-4000:]}", file=sys.stderr)


def test_the_documented_api_holds_under_generated_requests(fleet, tmp_path):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(schemathesis), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", f"{fleet.api}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {fleet.key}",
        # Every check (schemathesis' default when none is named, so that schemathesis.toml
        # can turn one off per operation: those whose acceptance depends on state, each
        # documented on the operation), positive and negative data.
        "--max-examples", os.environ.get("BAC_SCHEMATHESIS_EXAMPLES", "25"),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--workers", "2",
        "--seed", "42",
        "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    Path(os.environ.get("BAC_SCHEMATHESIS_OUT", str(tmp_path / "schemathesis.txt"))).write_text(run.stdout)
    print(run.stdout[-20000:])
    print(run.stderr[-5000:], file=sys.stderr)
    assert run.returncode == 0, "schemathesis found failures (see output above)"
    # The run must have tested the operations, not skipped them all.
    assert "passed" in run.stdout.lower()


def test_docs_page_renders(fleet):
    import urllib.request
    with urllib.request.urlopen(f"{fleet.api}/api/v1/docs", timeout=10) as resp:
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        html = resp.read().decode()
    # Redoc from the gateway itself, and every request the page makes kept on this origin.
    assert '<script src="/api/v1/docs/redoc.standalone.js' in html
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    # Without JavaScript: the same document rendered on the server.
    assert "/api/v1/integrations/permissions/grant" in html
    assert "ErrorBody" in html
    with urllib.request.urlopen(f"{fleet.api}/api/v1/docs/redoc.standalone.js", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/javascript")


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed (scripts/install-deps installs Debian's chromium)")


def test_reference_page_shows_the_lead_body_in_chromium(fleet, tmp_path):
    """Headless Chromium renders /api/v1/docs (Redoc, no outside request) and the lead
    operation shows its request body's fields: what a reader of the reference sees."""
    cmd = [
        chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=30000", "--dump-dom", f"{fleet.api}/api/v1/docs",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    dom = run.stdout
    Path(os.environ.get("BAC_DOCS_DOM", str(tmp_path / "dom.html"))).write_text(dom)
    assert run.returncode == 0, run.stderr[-3000:]
    # What Redoc rendered, not the <noscript> copy.
    rendered = re.sub(r"<noscript>.*?</noscript>", "", dom, flags=re.S)
    assert "redoc-wrap" in rendered, rendered[:2000]
    # The operation's section in the middle panel (the side menu names it too).
    start = rendered.find('data-section-id="operation/odoo_create_lead"')
    assert start >= 0, "Redoc did not render the odoo_create_lead operation"
    end = rendered.find('data-section-id="operation/', start + 40)
    section = rendered[start:end if end > 0 else None]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))
    assert "Create a CRM lead" in text and "/api/v1/odoo/crm/leads" in text, text[:500]
    body = text[text.index("Request Body schema"):text.index("Responses")]
    for field in ("name", "partner_name", "email", "expected_revenue", "priority"):
        assert f" {field} " in body, f"the lead body's field {field} is not shown: {body}"
    assert "very_high" in body and "required" in body, body
