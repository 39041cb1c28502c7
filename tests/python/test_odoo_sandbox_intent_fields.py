"""The fields bac-odoo stamps its intent ids in (docs/odoo.md) exist on the sandbox's models
with Odoo's own names and types, checked through ``odoorpc`` like any Odoo client would."""
import os
import uuid
from urllib.parse import urlparse

import odoorpc
import pytest

DB = os.environ.get("BAC_SANDBOX_ODOO_DB", "demo")
LOGIN = os.environ.get("BAC_SANDBOX_ODOO_LOGIN", "admin")
PASSWORD = os.environ.get("BAC_SANDBOX_ODOO_PASSWORD", "admin")

# model -> (intent field without x_bac_intent_id, its label in stock Odoo)
INTENT_FIELDS = {
    "crm.lead": ("referred", "Referred By"),
    "res.partner": ("ref", "Reference"),
    "sale.order": ("origin", "Source Document"),
    "account.move": ("invoice_origin", "Origin"),
    "product.product": ("barcode", "Barcode"),
    "hr.employee": ("identification_id", "Identification No"),
}


@pytest.fixture()
def odoo(odoo_url):
    parsed = urlparse(odoo_url)
    client = odoorpc.ODOO(parsed.hostname, port=parsed.port or 80, protocol="jsonrpc")
    client.login(DB, LOGIN, PASSWORD)
    return client


@pytest.mark.parametrize("model", sorted(INTENT_FIELDS))
def test_intent_fields_are_char_fields(odoo, model):
    field, label = INTENT_FIELDS[model]
    fields = odoo.env[model].fields_get([field], attributes=["type", "string"])
    assert fields[field] == {"type": "char", "string": label}


def test_a_lead_is_found_by_its_intent_id(odoo):
    intent = str(uuid.uuid4())
    Lead = odoo.env["crm.lead"]
    lead_id = Lead.create({"name": "Intent lead", "referred": intent})
    assert Lead.search([("referred", "=", intent)]) == [lead_id]
    # crm.lead has no invented `ref` field any more
    assert "ref" not in Lead.fields_get(attributes=["type"])
