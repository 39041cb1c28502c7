"""The Google Workspace sandbox's Calendar checked with ``google-api-python-client`` (built
from the ``calendar.v3`` discovery document it ships, pointed at the sandbox): an event with
attendees and a Meet link, a full list ending in ``nextSyncToken``, an incremental list with
it (a change and a deletion as ``cancelled``), and a token the calendar no longer honours
answered ``410`` with ``fullSyncRequired``, for that calendar only.
"""
import json
import urllib.request
import uuid

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from test_google_sandbox_gmail import _token

CALENDAR = "https://www.googleapis.com/auth/calendar"
READONLY = "https://www.googleapis.com/auth/calendar.readonly"


def _calendar(google_url, token):
    return build(
        "calendar",
        "v3",
        credentials=Credentials(token=token),
        static_discovery=True,
        # the endpoint replaces the root URL and the service path (calendar/v3/)
        client_options={"api_endpoint": google_url + "/calendar/v3/"},
        cache_discovery=False,
    )


def _event(summary, hour):
    return {
        "summary": summary,
        "start": {"dateTime": f"2027-01-10T{hour:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"2027-01-10T{hour + 1:02d}:00:00+01:00", "timeZone": "Europe/Berlin"},
        "attendees": [{"email": "grace@acme.example"}],
    }


def test_events_with_meet_links_and_incremental_sync(google_url):
    user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
    cal = _calendar(google_url, _token(google_url, user, CALENDAR))
    body = _event("Planning", 9)
    body["conferenceData"] = {"createRequest": {"requestId": uuid.uuid4().hex,
                                                "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    made = cal.events().insert(calendarId="primary", body=body, conferenceDataVersion=1).execute()
    assert made["status"] == "confirmed"
    assert made["hangoutLink"].startswith("https://meet.google.com/")
    assert made["conferenceData"]["entryPoints"][0]["entryPointType"] == "video"
    assert made["attendees"][0]["responseStatus"] == "needsAction"
    second = cal.events().insert(calendarId="primary", body=_event("Review", 14)).execute()
    assert "hangoutLink" not in second

    full = cal.events().list(calendarId="primary", maxResults=1).execute()
    assert len(full["items"]) == 1 and "nextPageToken" in full
    rest = cal.events().list(calendarId="primary", pageToken=full["nextPageToken"]).execute()
    assert [e["id"] for e in full["items"] + rest["items"]] == [made["id"], second["id"]]
    token = rest["nextSyncToken"]

    cal.events().patch(calendarId="primary", eventId=made["id"], body={"summary": "Planning (moved)"}).execute()
    cal.events().delete(calendarId="primary", eventId=second["id"]).execute()
    changes = cal.events().list(calendarId="primary", syncToken=token).execute()
    by_id = {e["id"]: e for e in changes["items"]}
    assert by_id[made["id"]]["summary"] == "Planning (moved)"
    assert by_id[second["id"]]["status"] == "cancelled"
    assert cal.events().list(calendarId="primary", syncToken=changes["nextSyncToken"]).execute()["items"] == []

    # Google stops honouring this calendar's tokens: 410, a full sync required; others' live on.
    other = f"grace{uuid.uuid4().hex[:6]}@sandbox.example"
    other_cal = _calendar(google_url, _token(google_url, other, READONLY))
    other_token = other_cal.events().list(calendarId="primary").execute()["nextSyncToken"]
    req = urllib.request.Request(
        f"{google_url}/_sandbox/google/calendar/{user}/expire-sync-tokens", data=b"", method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()
    with pytest.raises(HttpError) as e:
        cal.events().list(calendarId="primary", syncToken=changes["nextSyncToken"]).execute()
    assert e.value.resp.status == 410
    assert json.loads(e.value.content)["error"]["errors"][0]["reason"] == "fullSyncRequired"
    assert other_cal.events().list(calendarId="primary", syncToken=other_token).execute()["items"] == []

    # A read-only token cannot write; a time range without an end is refused.
    with pytest.raises(HttpError) as e:
        other_cal.events().insert(calendarId="primary", body=_event("x", 9)).execute()
    assert json.loads(e.value.content)["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    with pytest.raises(HttpError) as e:
        cal.events().insert(calendarId="primary", body={"summary": "no end", "start": {"date": "2027-01-10"}}).execute()
    assert e.value.resp.status == 400


def test_push_channels_on_events(google_url):
    """A channel gets a ``sync`` message at once and an ``exists`` message per change, with
    its token; a stopped channel is told nothing more, and the sandbox lists the stop."""
    import http.server
    import queue
    import threading

    got = queue.Queue()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.put({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
        cal = _calendar(google_url, _token(google_url, user, CALENDAR))
        channel_id = str(uuid.uuid4())
        ch = cal.events().watch(calendarId="primary", body={
            "id": channel_id, "type": "web_hook", "token": "secret-of-the-fleet",
            "address": f"http://127.0.0.1:{server.server_port}/push"}).execute()
        assert ch["kind"] == "api#channel" and ch["id"] == channel_id
        first = got.get(timeout=10)
        assert first["x-goog-resource-state"] == "sync"
        assert first["x-goog-channel-token"] == "secret-of-the-fleet"
        assert first["x-goog-message-number"] == "1"

        cal.events().insert(calendarId="primary", body=_event("Pushed", 11)).execute()
        change = got.get(timeout=10)
        assert change["x-goog-resource-state"] == "exists"
        assert change["x-goog-resource-id"] == ch["resourceId"]
        assert change["x-goog-channel-id"] == channel_id

        cal.channels().stop(body={"id": channel_id, "resourceId": ch["resourceId"]}).execute()
        cal.events().insert(calendarId="primary", body=_event("Unheard", 12)).execute()
        with urllib.request.urlopen(f"{google_url}/_sandbox/google/channels", timeout=10) as resp:
            report = json.load(resp)
        assert {"id": channel_id, "resourceId": ch["resourceId"]} in report["stops"]
        assert all(c["id"] != channel_id for c in report["channels"])
        assert got.empty(), "a stopped channel was told of a change"
        with pytest.raises(HttpError) as e:
            cal.channels().stop(body={"id": channel_id, "resourceId": ch["resourceId"]}).execute()
        assert e.value.resp.status == 404
    finally:
        server.shutdown()
