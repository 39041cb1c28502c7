"""The Teams sandbox checked with Microsoft's Bot Framework SDK (botframework-connector): the
activities it posts to a bot carry tokens that the SDK's own channel validation accepts
(issuer, signature against the published OpenID metadata and keys, the key's endorsement for
msteams, the ``serviceurl`` claim), and refuses when forged or expired. bac-messaging's
verification is tested against the same requests in bac-e2e's messaging_teams_bot."""
import asyncio

import pytest
from botframework.connector.auth import ChannelValidation, SimpleCredentialProvider
from conftest import post_json

APP_ID = "4f1c0c5e-6f3a-4e0b-9d2a-1b2c3d4e5f60"


def post_activity(teams_url, endpoint, **extra):
    body = {"url": endpoint, "app_id": APP_ID, "text": "hello", **extra}
    return post_json(f"{teams_url}/_sandbox/teams/activities", body)


def validate(teams_url, auth, activity):
    ChannelValidation.open_id_metadata_endpoint = f"{teams_url}/v1/.well-known/openidconfiguration"
    return asyncio.run(
        ChannelValidation.authenticate_channel_token_with_service_url(
            auth, SimpleCredentialProvider(APP_ID, ""), activity["serviceUrl"], activity["channelId"]
        )
    )


def test_an_activity_token_passes_the_sdks_channel_validation(teams_url, receiver):
    post_activity(teams_url, receiver.url, text="What is the status of INV-7?")
    auth, activity = receiver.received[-1]
    assert auth.startswith("Bearer ")
    identity = validate(teams_url, auth, activity)
    assert identity.is_authenticated
    assert identity.get_claim_value("aud") == APP_ID
    assert activity["channelId"] == "msteams" and activity["recipient"]["id"] == f"28:{APP_ID}"


@pytest.mark.parametrize("how", ["forged", "expired", "other_audience"])
def test_a_wrongly_signed_activity_fails_it(teams_url, receiver, how):
    post_activity(teams_url, receiver.url, signature=how)
    auth, activity = receiver.received[-1]
    with pytest.raises(Exception):
        validate(teams_url, auth, activity)
