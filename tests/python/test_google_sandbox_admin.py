"""The Google Workspace sandbox's Directory users checked with ``google-api-python-client``
(``admin.directory_v1``, pointed at the sandbox): an administrator inserts users, lists them
with paging, a query and an order, reads one by email and by id, deletes one; the refusals
(no customer or domain, a read-only token writing, a duplicate) parse as ``HttpError``.
"""
import json
import uuid

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from test_google_sandbox_gmail import _token

USER = "https://www.googleapis.com/auth/admin.directory.user"
READONLY = "https://www.googleapis.com/auth/admin.directory.user.readonly"


def _directory(google_url, token):
    return build(
        "admin",
        "directory_v1",
        credentials=Credentials(token=token),
        static_discovery=True,
        client_options={"api_endpoint": google_url + "/"},
        cache_discovery=False,
    )


def test_directory_users(google_url):
    domain = f"d{uuid.uuid4().hex[:6]}.example"
    admin = f"admin@{domain}"
    d = _directory(google_url, _token(google_url, admin, USER))
    for given, family in [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")]:
        made = d.users().insert(body={
            "primaryEmail": f"{given.lower()}@{domain}",
            "name": {"givenName": given, "familyName": family},
            "password": "correct horse battery"}).execute()
        assert made["primaryEmail"] == f"{given.lower()}@{domain}"
    first = d.users().list(customer="my_customer", maxResults=2, query="email:a*").execute()
    assert len(first["users"]) == 2 and "nextPageToken" in first
    mine = d.users().list(domain=domain, query=domain, orderBy="familyName").execute()
    assert [u["name"]["familyName"] for u in mine["users"] if u["name"]["familyName"]] == ["Hopper", "Lovelace", "Turing"]
    grace = d.users().get(userKey=f"grace@{domain}").execute()
    assert d.users().get(userKey=grace["id"]).execute()["primaryEmail"] == f"grace@{domain}"
    d.users().delete(userKey=grace["id"]).execute()
    with pytest.raises(HttpError) as e:
        d.users().get(userKey=f"grace@{domain}").execute()
    assert e.value.resp.status == 404

    with pytest.raises(HttpError) as e:
        d.users().list().execute()
    assert e.value.resp.status == 400
    with pytest.raises(HttpError) as e:
        d.users().insert(body={"primaryEmail": f"ada@{domain}", "name": {"givenName": "A", "familyName": "L"},
                               "password": "long enough"}).execute()
    assert e.value.resp.status == 409
    ro = _directory(google_url, _token(google_url, admin, READONLY))
    with pytest.raises(HttpError) as e:
        ro.users().delete(userKey=f"ada@{domain}").execute()
    assert json.loads(e.value.content)["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
