"""The Google Workspace sandbox checked with Google's own Python client
(``google-api-python-client``, built from the Gmail discovery document it ships, its
``api_endpoint`` pointed at the sandbox): a MIME message with a text and an HTML part and an
attachment is sent, listed, searched and read back as Gmail returns it, and Google's refusals
(a token without the method's scope, a message without recipients, another user's mailbox)
parse as ``HttpError`` with Google's error body.
"""
import base64
import email
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

SEND = "https://www.googleapis.com/auth/gmail.send"
READ = "https://www.googleapis.com/auth/gmail.readonly"


def _token(google_url, user, scope):
    """An access token for ``user`` with ``scope``: a refresh grant registered through the
    sandbox kit's admin route, redeemed at Google's token endpoint."""
    refresh = f"1//rt-{uuid.uuid4().hex}"
    client = f"{uuid.uuid4().hex[:12]}.apps.googleusercontent.com"
    req = urllib.request.Request(
        f"{google_url}/_sandbox/oauth/grants",
        data=json.dumps({"client_id": client, "refresh_token": refresh, "scope": scope, "subject": user}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    form = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "client_id": client, "refresh_token": refresh}
    ).encode()
    with urllib.request.urlopen(f"{google_url}/token", data=form, timeout=10) as resp:
        return json.load(resp)["access_token"]


def _gmail(google_url, token):
    return build(
        "gmail",
        "v1",
        credentials=Credentials(token=token),
        static_discovery=True,
        client_options={"api_endpoint": google_url + "/"},
        cache_discovery=False,
    )


def _message(sender, to, subject):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m.set_content("Hello Ada,\nthe plain part.")
    m.add_alternative("<p>Hello Ada, <b>the HTML part</b>.</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4 sandbox", maintype="application", subtype="pdf", filename="terms.pdf")
    return base64.urlsafe_b64encode(m.as_bytes()).decode()


def test_gmail_send_list_and_get_through_googles_client(google_url):
    user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
    token = _token(google_url, user, f"{SEND} {READ}")
    gmail = _gmail(google_url, token)
    raw = _message(user, "grace@acme.example", "Quarterly report")
    sent = gmail.users().messages().send(userId="me", body={"raw": raw}).execute()
    assert sent["labelIds"] == ["SENT"]
    assert sent["id"] and sent["threadId"] == sent["id"]

    listed = gmail.users().messages().list(userId="me", q="subject:Quarterly").execute()
    assert [m["id"] for m in listed["messages"]] == [sent["id"]]
    assert listed["resultSizeEstimate"] == 1
    assert gmail.users().messages().list(userId="me", q="subject:nothing").execute()["resultSizeEstimate"] == 0

    got = gmail.users().messages().get(userId=user, id=sent["id"], format="raw").execute()
    parsed = email.message_from_bytes(base64.urlsafe_b64decode(got["raw"]))
    assert parsed["To"] == "grace@acme.example"
    assert parsed["Subject"] == "Quarterly report"
    parts = {p.get_content_type(): p for p in parsed.walk()}
    assert "the plain part" in parts["text/plain"].get_payload(decode=True).decode()
    assert "the HTML part" in parts["text/html"].get_payload(decode=True).decode()
    assert parts["application/pdf"].get_filename() == "terms.pdf"

    meta = gmail.users().messages().get(userId="me", id=sent["id"], format="metadata").execute()
    headers = {h["name"]: h["value"] for h in meta["payload"]["headers"]}
    assert headers["Subject"] == "Quarterly report"
    assert meta["payload"]["mimeType"] == "multipart/mixed"


def test_googles_refusals_parse_as_http_errors(google_url):
    user = f"grace{uuid.uuid4().hex[:6]}@sandbox.example"
    send_only = _gmail(google_url, _token(google_url, user, SEND))
    with pytest.raises(HttpError) as e:
        send_only.users().messages().list(userId="me").execute()
    assert e.value.resp.status == 403
    body = json.loads(e.value.content)
    assert body["error"]["status"] == "PERMISSION_DENIED"
    assert body["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"

    nobody = base64.urlsafe_b64encode(b"Subject: no one\r\n\r\nbody").decode()
    with pytest.raises(HttpError) as e:
        send_only.users().messages().send(userId="me", body={"raw": nobody}).execute()
    assert e.value.resp.status == 400
    assert "Recipient address required" in str(e.value)

    with pytest.raises(HttpError) as e:
        send_only.users().messages().send(
            userId="someone-else@sandbox.example", body={"raw": _message(user, "a@b.example", "x")}
        ).execute()
    assert e.value.resp.status == 403

    # a token Google does not know: 401 with Google's body (the client would refresh here)
    req = urllib.request.Request(
        f"{google_url}/gmail/v1/users/me/messages", headers={"Authorization": "Bearer not-a-token"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    assert json.load(e.value)["error"]["status"] == "UNAUTHENTICATED"
