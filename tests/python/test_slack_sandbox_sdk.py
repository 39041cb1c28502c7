"""The Slack sandbox checked with Slack's official Python SDK (slack_sdk): the Web API
methods the fleet calls answer as slack_sdk expects them (ok, ts, errors as SlackApiError,
429 with Retry-After), OAuth v2's code exchange, and the sandbox's request signatures are the
ones slack_sdk's SignatureVerifier accepts (the fleet's verification is tested against these
requests, and against slack_sdk's own signatures, in bac-e2e's messaging_slack)."""
import json
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.signature import SignatureVerifier

BOT_TOKEN = "xoxb-0000000001-0000000002-sandboxbottoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def admin(url, path, body):
    req = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def client(slack_url, token=BOT_TOKEN):
    return WebClient(token=token, base_url=f"{slack_url}/api/")


def test_messages_blocks_and_threads_as_slack_sdk_reads_them(slack_url):
    web = client(slack_url)
    me = web.auth_test()
    assert me["ok"] and me["team_id"] == "T0SANDBOX1" and me["bot_id"]
    text = f"Invoice INV-{uuid.uuid4().hex[:6]} paid"
    parent = web.chat_postMessage(
        channel="#general", text=text, blocks=[SectionBlock(text=f"*{text}*")]
    )
    assert parent["ok"] and parent["channel"] == "C0GENERAL1"
    assert parent["message"]["blocks"][0]["type"] == "section"
    reply = web.chat_postMessage(channel="C0GENERAL1", text="Receipt sent", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    thread = web.conversations_replies(channel="C0GENERAL1", ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == [text, "Receipt sent"]
    history = web.conversations_history(channel="C0GENERAL1", limit=10)
    assert history["messages"][0]["ts"] == parent["ts"], "newest first, replies not listed"


def test_refusals_are_slack_api_errors(slack_url):
    with pytest.raises(SlackApiError) as e:
        client(slack_url, token="xoxb-not-a-token-of-this-workspace").auth_test()
    assert e.value.response["error"] == "invalid_auth"
    web = client(slack_url)
    for kwargs, error in [
        ({"channel": "#leadership", "text": "x"}, "not_in_channel"),
        ({"channel": "#nowhere", "text": "x"}, "channel_not_found"),
        ({"channel": "#general"}, "no_text"),
    ]:
        with pytest.raises(SlackApiError) as e:
            web.chat_postMessage(**kwargs)
        assert e.value.response["error"] == error, kwargs


def test_rate_limits_answer_429_with_retry_after(slack_url):
    admin(
        slack_url,
        "/_sandbox/slack/faults",
        {"model": "chat.postMessage", "status": 429, "retry_after": 7, "for_calls": 1},
    )
    with pytest.raises(SlackApiError) as e:
        client(slack_url).chat_postMessage(channel="#alerts", text="slow down")
    assert e.value.response.status_code == 429
    assert e.value.response["error"] == "ratelimited"
    assert e.value.response.headers["retry-after"] in ("7", ["7"])
    assert client(slack_url).chat_postMessage(channel="#alerts", text="now")["ok"]


def test_oauth_v2_access_redeems_a_code_once(slack_url):
    client_id = f"1111.{uuid.uuid4().int % 10**8}"
    redirect = "https://bac.example/api/v1/integrations/oauth/callback"
    admin(
        slack_url,
        "/_sandbox/oauth/clients",
        {"client_id": client_id, "client_secret": "cs", "redirect_uris": [redirect]},
    )
    query = urllib.parse.urlencode(
        {"client_id": client_id, "scope": "chat:write,commands", "redirect_uri": redirect,
         "state": "s1", "response_type": "code"}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect_answer:
        opener.open(f"{slack_url}/oauth/v2/authorize?{query}", timeout=10)
    location = redirect_answer.value.headers["location"]
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    assert params["state"] == ["s1"]
    code = params["code"][0]
    web = WebClient(base_url=f"{slack_url}/api/")
    token = web.oauth_v2_access(client_id=client_id, client_secret="cs", code=code, redirect_uri=redirect)
    assert token["token_type"] == "bot" and token["team"]["id"] == "T0SANDBOX1"
    assert client(slack_url, token=token["access_token"]).auth_test()["ok"]
    with pytest.raises(SlackApiError) as e:
        web.oauth_v2_access(client_id=client_id, client_secret="cs", code=code, redirect_uri=redirect)
    assert e.value.response["error"] == "invalid_code"


def test_the_sandbox_signs_requests_as_slack_sdk_verifies_them(slack_url):
    body = "token=x&team_id=T0SANDBOX1&command=%2Finvoice&text=INV-7"
    now = int(time.time())
    headers = admin(slack_url, "/_sandbox/slack/sign", {"body": body, "timestamp": now})
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert headers["x-slack-signature"] == verifier.generate_signature(timestamp=str(now), body=body)
    assert verifier.is_valid(body=body, timestamp=headers["x-slack-request-timestamp"],
                             signature=headers["x-slack-signature"])
    assert not SignatureVerifier("another-secret").is_valid(
        body=body, timestamp=str(now), signature=headers["x-slack-signature"])
