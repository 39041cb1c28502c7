"""Google Chat's events to a Chat app, as the Google sandbox sends them, checked with Google's
own auth library (google-auth, as Google's Chat app samples verify a request): the bearer
token verifies against the published keys of chat@system.gserviceaccount.com for the app's
project number, and a forged or expired one does not. bac-messaging's verification is tested
against the same requests in bac-e2e's messaging_chat_app."""
import http.server
import json
import threading
import urllib.request

import google.auth.exceptions
import jwt.exceptions
import google.auth.transport.requests
import pytest
from google.oauth2 import id_token

PROJECT = "123456789012"
CHAT_ISSUER = "chat@system.gserviceaccount.com"


class _Capture(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        _Capture.received.append((self.headers.get("authorization", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture()
def app_endpoint():
    _Capture.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/chat"
    server.shutdown()


def send(google_url, endpoint, **extra):
    body = {"url": endpoint, "project_number": PROJECT, "text": "status of INV-7?", **extra}
    req = urllib.request.Request(
        f"{google_url}/_sandbox/chat/events",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def verify(google_url, auth):
    return id_token.verify_token(
        auth.removeprefix("Bearer "),
        google.auth.transport.requests.Request(),
        audience=PROJECT,
        certs_url=f"{google_url}/service_accounts/v1/jwk/{CHAT_ISSUER}",
    )


def test_a_chat_event_token_verifies_with_google_auth(google_url, app_endpoint):
    send(google_url, app_endpoint)
    auth, event = _Capture.received[-1]
    claims = verify(google_url, auth)
    assert claims["iss"] == CHAT_ISSUER and claims["aud"] == PROJECT
    assert event["type"] == "MESSAGE" and event["message"]["argumentText"] == " status of INV-7?"


@pytest.mark.parametrize("how", ["forged", "expired", "other_audience"])
def test_a_wrongly_signed_event_does_not(google_url, app_endpoint, how):
    send(google_url, app_endpoint, signature=how)
    auth, _ = _Capture.received[-1]
    # google-auth verifies a JWKS through PyJWT, which raises its own errors
    with pytest.raises((ValueError, google.auth.exceptions.GoogleAuthError, jwt.exceptions.PyJWTError)):
        verify(google_url, auth)
