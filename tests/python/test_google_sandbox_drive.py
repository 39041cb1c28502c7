"""The Google Workspace sandbox's Drive checked with ``google-api-python-client`` (built from
the ``drive.v3`` discovery document it ships; its ``http`` pointed at the sandbox, since the
client builds upload URLs on Google's https root): a multipart and a resumable upload through
the client, search, download, the changes feed with a removal, and a resumable upload cut off
in the middle that resumes from the last byte the sandbox acknowledged.
"""
import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import uuid

import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.http import MediaIoBaseUpload

from test_google_sandbox_gmail import _token

DRIVE = "https://www.googleapis.com/auth/drive"


class _ToSandbox(httplib2.Http):
    """Sends what the client addresses to Google's hosts to the sandbox (plain http)."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        # 308 is Resume Incomplete here, not a redirect (as googleapiclient's build_http says)
        self.redirect_codes = self.redirect_codes - {308}

    def request(self, uri, *args, **kwargs):
        if "/drive/v3/" in uri:
            uri = self.base + uri[uri.index("/", uri.index("//") + 2):]
        return super().request(uri, *args, **kwargs)


def _drive(google_url, token):
    http = google_auth_httplib2.AuthorizedHttp(Credentials(token=token), http=_ToSandbox(google_url))
    return build("drive", "v3", http=http, static_discovery=True, cache_discovery=False)


def test_uploads_search_download_and_changes(google_url):
    user = f"ada{uuid.uuid4().hex[:6]}@sandbox.example"
    token = _token(google_url, user, DRIVE)
    drive = _drive(google_url, token)
    start = drive.changes().getStartPageToken().execute()["startPageToken"]

    small = drive.files().create(
        body={"name": "notes.txt"},
        media_body=MediaIoBaseUpload(io.BytesIO(b"hello drive"), mimetype="text/plain"),
    ).execute()
    assert small["name"] == "notes.txt" and small["mimeType"] == "text/plain"

    data = os.urandom(3 * 1024 * 1024 + 17)
    big = drive.files().create(
        body={"name": "report.bin"},
        media_body=MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream",
                                     chunksize=1024 * 1024, resumable=True),
    ).execute()
    assert big["size"] == str(len(data))

    found = drive.files().list(q="name contains 'report' and trashed = false").execute()
    assert [f["id"] for f in found["files"]] == [big["id"]]
    content = drive.files().get_media(fileId=big["id"]).execute()
    assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()

    drive.files().delete(fileId=small["id"]).execute()
    changes = drive.changes().list(pageToken=start).execute()
    by_file = {c["fileId"]: c for c in changes["changes"]}
    assert by_file[big["id"]]["removed"] is False
    assert by_file[small["id"]]["removed"] is True
    later = drive.changes().list(pageToken=changes["newStartPageToken"]).execute()
    assert later["changes"] == []


def _put(url, token, body, content_range):
    req = urllib.request.Request(url, data=body, method="PUT", headers={
        "Authorization": f"Bearer {token}", "Content-Range": content_range})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_an_interrupted_resumable_upload_resumes_from_the_last_acknowledged_byte(google_url):
    user = f"grace{uuid.uuid4().hex[:6]}@sandbox.example"
    token = _token(google_url, user, DRIVE)
    data = os.urandom(8 * 1024 * 1024)
    total = len(data)
    req = urllib.request.Request(
        f"{google_url}/upload/drive/v3/files?uploadType=resumable",
        data=json.dumps({"name": "video.bin"}).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "X-Upload-Content-Length": str(total)})
    with urllib.request.urlopen(req, timeout=10) as resp:
        session = resp.headers["Location"]

    first = 3 * 1024 * 1024
    status, headers, _ = _put(session, token, data[:first], f"bytes 0-{first - 1}/{total}")
    assert status == 308 and headers["Range"] == f"bytes=0-{first - 1}"
    # the connection drops; the client asks where the upload stands and goes on from there
    status, headers, _ = _put(session, token, b"", f"bytes */{total}")
    assert status == 308
    held = int(headers["Range"].split("-")[1]) + 1
    assert held == first
    status, _, body = _put(session, token, data[held:], f"bytes {held}-{total - 1}/{total}")
    assert status == 200
    made = json.loads(body)
    assert made["size"] == str(total)

    drive = _drive(google_url, token)
    content = drive.files().get_media(fileId=made["id"]).execute()
    assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()
