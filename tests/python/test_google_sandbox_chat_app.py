"""Google Chat's events to a Chat app, as the Google sandbox sends them, checked with Google's
own auth library (google-auth, as Google's Chat app samples verify a request): the bearer
token verifies against the published keys of chat@system.gserviceaccount.com for the app's
project number, and a forged or expired one does not. bac-messaging's verification is tested
against the same requests in bac-e2e's messaging_chat_app."""
import google.auth.exceptions
import google.auth.transport.requests
import jwt.exceptions
import pytest
from conftest import post_json
from google.oauth2 import id_token

PROJECT = "123456789012"
CHAT_ISSUER = "chat@system.gserviceaccount.com"


def send(google_url, endpoint, **extra):
    body = {"url": endpoint, "project_number": PROJECT, "text": "status of INV-7?", **extra}
    return post_json(f"{google_url}/_sandbox/chat/events", body)


def verify(google_url, auth):
    return id_token.verify_token(
        auth.removeprefix("Bearer "),
        google.auth.transport.requests.Request(),
        audience=PROJECT,
        certs_url=f"{google_url}/service_accounts/v1/jwk/{CHAT_ISSUER}",
    )


def test_a_chat_event_token_verifies_with_google_auth(google_url, receiver):
    send(google_url, receiver.url)
    auth, event = receiver.received[-1]
    claims = verify(google_url, auth)
    assert claims["iss"] == CHAT_ISSUER and claims["aud"] == PROJECT
    assert event["type"] == "MESSAGE" and event["message"]["argumentText"] == " status of INV-7?"


@pytest.mark.parametrize("how", ["forged", "expired", "other_audience"])
def test_a_wrongly_signed_event_does_not(google_url, receiver, how):
    send(google_url, receiver.url, signature=how)
    auth, _ = receiver.received[-1]
    # google-auth verifies a JWKS through PyJWT, which raises its own errors
    with pytest.raises((ValueError, google.auth.exceptions.GoogleAuthError, jwt.exceptions.PyJWTError)):
        verify(google_url, auth)
