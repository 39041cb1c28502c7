"""The Teams sandbox checked with Microsoft's Bot Framework SDK (botframework-connector): the
activities it posts to a bot carry tokens that the SDK's own channel validation accepts
(issuer, signature against the published OpenID metadata and keys, the key's endorsement for
msteams, the ``serviceurl`` claim), and refuses when forged or expired. bac-messaging's
verification is tested against the same requests in bac-e2e's messaging_teams_bot."""
import asyncio
import http.server
import json
import threading
import urllib.request

import pytest
from botframework.connector.auth import ChannelValidation, SimpleCredentialProvider

APP_ID = "4f1c0c5e-6f3a-4e0b-9d2a-1b2c3d4e5f60"


class _Capture(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        _Capture.received.append((self.headers.get("authorization", ""), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def bot_endpoint():
    _Capture.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/messages"
    server.shutdown()


def post_activity(teams_url, endpoint, **extra):
    body = {"url": endpoint, "app_id": APP_ID, "text": "hello", **extra}
    req = urllib.request.Request(
        f"{teams_url}/_sandbox/teams/activities",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def validate(teams_url, auth, activity):
    ChannelValidation.open_id_metadata_endpoint = f"{teams_url}/v1/.well-known/openidconfiguration"
    return asyncio.run(
        ChannelValidation.authenticate_channel_token_with_service_url(
            auth, SimpleCredentialProvider(APP_ID, ""), activity["serviceUrl"], activity["channelId"]
        )
    )


def test_an_activity_token_passes_the_sdks_channel_validation(teams_url, bot_endpoint):
    post_activity(teams_url, bot_endpoint, text="What is the status of INV-7?")
    auth, activity = _Capture.received[-1]
    assert auth.startswith("Bearer ")
    identity = validate(teams_url, auth, activity)
    assert identity.is_authenticated
    assert identity.get_claim_value("aud") == APP_ID
    assert activity["channelId"] == "msteams" and activity["recipient"]["id"] == f"28:{APP_ID}"


@pytest.mark.parametrize("how", ["forged", "expired", "other_audience"])
def test_a_wrongly_signed_activity_fails_it(teams_url, bot_endpoint, how):
    post_activity(teams_url, bot_endpoint, signature=how)
    auth, activity = _Capture.received[-1]
    with pytest.raises(Exception):
        validate(teams_url, auth, activity)
