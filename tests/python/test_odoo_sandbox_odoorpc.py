"""The Odoo sandbox checked with the official ``odoorpc`` client (JSON-RPC)."""
import os
import uuid
from urllib.parse import urlparse

import odoorpc
import pytest

# Credentials of the sandbox under test (the defaults match a sandbox started by conftest.py).
DB = os.environ.get("BAC_SANDBOX_ODOO_DB", "demo")
LOGIN = os.environ.get("BAC_SANDBOX_ODOO_LOGIN", "admin")
PASSWORD = os.environ.get("BAC_SANDBOX_ODOO_PASSWORD", "admin")


def _connect(url):
    parsed = urlparse(url)
    return odoorpc.ODOO(parsed.hostname, port=parsed.port or 80, protocol="jsonrpc")


@pytest.fixture()
def odoo(odoo_url):
    client = _connect(odoo_url)
    client.login(DB, LOGIN, PASSWORD)
    return client


def test_version(odoo_url):
    client = _connect(odoo_url)
    assert client.version == "17.0"
    assert client.db.list() == [DB]


def test_login_sets_env(odoo):
    assert odoo.env.uid == 2
    assert odoo.env.db == DB
    assert odoo.env.context["lang"] == "en_US"
    assert odoo.env.context["uid"] == 2
    assert odoo.env.user.login == LOGIN
    assert "crm.lead" in odoo.env
    assert "crm.nope" not in odoo.env


def test_bad_credentials_raise_rpc_error(odoo_url):
    client = _connect(odoo_url)
    with pytest.raises(odoorpc.error.RPCError):
        client.login(DB, LOGIN, PASSWORD + "-wrong")
    with pytest.raises(odoorpc.error.RPCError):
        client.login(DB, "nobody-" + LOGIN, PASSWORD)


def test_unknown_database_raises_rpc_error(odoo_url):
    client = _connect(odoo_url)
    with pytest.raises(odoorpc.error.RPCError) as info:
        client.login("no_such_db", LOGIN, PASSWORD)
    assert 'database "no_such_db" does not exist' in str(info.value)


def test_crud_round_trip(odoo):
    Lead = odoo.env["crm.lead"]
    tag = uuid.uuid4().hex[:8]
    lead_id = Lead.create(
        {
            "name": f"Website inquiry {tag}",
            "partner_name": "Acme",
            "email_from": f"jane.{tag}@acme.example",
            "expected_revenue": 1200.5,
            "priority": "2",
        }
    )
    assert isinstance(lead_id, int)
    other_id = Lead.create({"name": f"Cold call {tag}", "phone": "+1 555 0100"})

    # search with '|' and ilike
    found = Lead.search(["|", ("email_from", "ilike", f"JANE.{tag}"), ("name", "ilike", f"cold call {tag}")])
    assert sorted(found) == sorted([lead_id, other_id])
    assert Lead.search_count([("name", "ilike", tag)]) == 2
    # default crm.lead order: priority desc, id desc
    assert Lead.search([("name", "ilike", tag)]) == [lead_id, other_id]
    assert Lead.search([("name", "ilike", tag)], order="id desc") == [other_id, lead_id]
    assert Lead.search([("name", "ilike", tag)], limit=1, offset=1, order="id asc") == [other_id]

    rows = Lead.read([lead_id], ["name", "email_from", "expected_revenue", "priority", "stage_id", "phone"])
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == lead_id
    assert row["name"] == f"Website inquiry {tag}"
    assert row["expected_revenue"] == 1200.5
    assert row["priority"] == "2"
    assert row["phone"] is False  # empty fields read as False
    assert row["stage_id"][1] == "New"
    assert set(row) == {"id", "name", "email_from", "expected_revenue", "priority", "stage_id", "phone"}

    rows = Lead.search_read([("id", "=", other_id)], ["name", "type", "active"])
    assert rows == [{"id": other_id, "name": f"Cold call {tag}", "type": "lead", "active": True}]

    # browse() reads through fields_get + read(load='_classic_write')
    lead = Lead.browse(lead_id)
    assert lead.name == f"Website inquiry {tag}"
    assert lead.partner_name == "Acme"
    assert lead.stage_id.name == "New"
    assert lead.user_id.login == LOGIN
    created = lead.create_date

    # write through the model and through a record attribute (auto_commit)
    assert Lead.write([lead_id], {"priority": "3", "phone": "+33 1 23 45 67 89"}) is True
    lead = Lead.browse(lead_id)
    assert lead.priority == "3"
    lead.description = "<p>Called back</p>"
    assert Lead.read([lead_id], ["description"])[0]["description"] == "<p>Called back</p>"
    assert lead.write_date >= created

    # unlink
    assert Lead.unlink([other_id]) is True
    assert Lead.search_count([("name", "ilike", tag)]) == 1
    assert Lead.read([other_id], ["name"]) == []
    Lead.browse(lead_id).unlink()
    assert Lead.search([("name", "ilike", tag)]) == []


def test_server_errors_are_rpc_errors(odoo):
    Lead = odoo.env["crm.lead"]
    with pytest.raises(odoorpc.error.RPCError) as info:
        Lead.create({"partner_name": "no name"})
    assert info.value.info["data"]["name"] == "odoo.exceptions.ValidationError"
    with pytest.raises(odoorpc.error.RPCError) as info:
        Lead.create({"name": "x", "nope": 1})
    assert info.value.info["data"]["name"] == "builtins.ValueError"
    assert "Invalid field 'nope' on model 'crm.lead'" in str(info.value)
    with pytest.raises(odoorpc.error.RPCError) as info:
        Lead.create({"name": "x", "priority": "9"})
    assert "Wrong value for crm.lead.priority" in str(info.value)
    with pytest.raises(odoorpc.error.RPCError) as info:
        Lead.search([("name", "=")])
    assert info.value.info["data"]["name"] == "builtins.ValueError"
    with pytest.raises(odoorpc.error.RPCError) as info:
        odoo.execute("crm.foo", "search", [])
    assert info.value.info["data"]["name"] == "odoo.exceptions.UserError"
    assert info.value.info["code"] == 200
    assert info.value.info["message"] == "Odoo Server Error"


def test_web_session_api(odoo_url):
    """The web client's cookie-session API, through odoorpc's low-level json()."""
    client = _connect(odoo_url)
    data = client.json("/web/session/authenticate", {"db": DB, "login": LOGIN, "password": PASSWORD})
    info = data["result"]
    assert info["uid"] == 2
    assert info["db"] == DB
    assert info["user_context"]["uid"] == 2
    assert info["server_version"] == "17.0"
    # the session cookie is kept by odoorpc's opener
    data = client.json(
        "/web/dataset/call_kw",
        {"model": "crm.lead", "method": "search_count", "args": [[]], "kwargs": {}},
    )
    assert isinstance(data["result"], int)
    with pytest.raises(odoorpc.error.RPCError) as info:
        client.json(
            "/web/dataset/call_kw",
            {"model": "crm.foo", "method": "search", "args": [[]], "kwargs": {}},
        )
    assert info.value.info["data"]["name"] == "builtins.KeyError"
    client.json("/web/session/destroy", {})
    with pytest.raises(odoorpc.error.RPCError) as info:
        client.json(
            "/web/dataset/call_kw",
            {"model": "crm.lead", "method": "search_count", "args": [[]], "kwargs": {}},
        )
    assert info.value.info["code"] == 100
