"""The Google Workspace sandbox's Chat messages and Tasks checked with
``google-api-python-client`` (``chat.v1`` and ``tasks.v1`` as shipped): a message posted to a
space, once for a repeated ``requestId``, listed; a member-only space refusing a stranger; a
task inserted and listed; the task lists; a missing scope refused.
"""
import json
import urllib.request
import uuid

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from test_google_sandbox_gmail import _token

CHAT = "https://www.googleapis.com/auth/chat.messages"
TASKS = "https://www.googleapis.com/auth/tasks"


def _service(google_url, name, version, token):
    return build(name, version, credentials=Credentials(token=token), static_discovery=True,
                 client_options={"api_endpoint": google_url + "/"}, cache_discovery=False)


def _space(google_url, members):
    req = urllib.request.Request(
        f"{google_url}/_sandbox/google/chat/spaces",
        data=json.dumps({"displayName": "Sales", "members": members}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["name"]


def test_a_message_is_posted_once_per_request_id_and_listed(google_url):
    user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
    chat = _service(google_url, "chat", "v1", _token(google_url, user, CHAT))
    space = _space(google_url, [user])
    first = chat.spaces().messages().create(parent=space, body={"text": "Deal closed"},
                                            requestId="r-1", threadKey="acme").execute()
    assert first["name"].startswith(space + "/messages/")
    assert first["thread"]["name"] == space + "/threads/acme"
    again = chat.spaces().messages().create(parent=space, body={"text": "Deal closed"},
                                            requestId="r-1").execute()
    assert again["name"] == first["name"]
    listed = chat.spaces().messages().list(parent=space).execute()
    assert [m["text"] for m in listed["messages"]] == ["Deal closed"]
    stranger = _service(google_url, "chat", "v1",
                        _token(google_url, f"eve{uuid.uuid4().hex[:6]}@sandbox.example", CHAT))
    with pytest.raises(HttpError) as err:
        stranger.spaces().messages().create(parent=space, body={"text": "hi"}).execute()
    assert err.value.resp.status == 403
    with pytest.raises(HttpError) as err:
        chat.spaces().messages().create(parent=space, body={"text": ""}).execute()
    assert err.value.resp.status == 400


def test_tasks_are_inserted_and_listed(google_url):
    user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
    tasks = _service(google_url, "tasks", "v1", _token(google_url, user, TASKS))
    lists = tasks.tasklists().list().execute()
    assert lists["items"][0]["id"] == "@default"
    made = tasks.tasks().insert(tasklist="@default", body={
        "title": "Call Acme back", "notes": "renewal", "due": "2026-12-20T00:00:00.000Z"}).execute()
    assert made["status"] == "needsAction" and made["title"] == "Call Acme back"
    tasks.tasks().insert(tasklist="@default", body={"title": "Done already", "status": "completed"}).execute()
    open_only = tasks.tasks().list(tasklist="@default", showCompleted=False).execute()
    assert [t["title"] for t in open_only["items"]] == ["Call Acme back"]
    with pytest.raises(HttpError) as err:
        tasks.tasks().insert(tasklist="@default", body={"title": "x", "due": "tomorrow"}).execute()
    assert err.value.resp.status == 400
    reader = _service(google_url, "tasks", "v1", _token(google_url, user, CHAT))
    with pytest.raises(HttpError) as err:
        reader.tasks().list(tasklist="@default").execute()
    assert err.value.resp.status == 403
