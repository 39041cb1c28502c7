"""The Tally sandbox checked with a Tally client from PyPI: ``tallyprime`` 0.0.1, a third-party
reading of Tally's XML protocol (Tally publishes no client library; this one says its alter
and delete paths are unverified, so they are not relied on here). Its envelopes are not the
fleet's: the old ``Import Data`` form for masters, TallyPrime's ``Import``/``Data`` form for
vouchers with an ``Action`` attribute, collections by ``NATIVEMETHOD``, objects by name, the
Day Book as data. The sandbox answers them as the client expects, and its refusals reach the
client as Tally's line errors. (The fleet's own envelopes are tested in bac-e2e's tally_sync.)"""
import json
import urllib.parse
import urllib.request
import uuid

import pytest
from tallyprime import TallyClient
from tallyprime.exceptions import TallyImportError


def client(tally_url):
    u = urllib.parse.urlparse(tally_url)
    return TallyClient(u.hostname, u.port, company="Demo Company")


def stats(tally_url):
    with urllib.request.urlopen(tally_url + "/_sandbox/tally/stats", timeout=10) as resp:
        return json.loads(resp.read())


def test_companies_and_ledgers_read_as_tallyprime_reads_them(tally_url):
    with client(tally_url) as tally:
        companies = tally.companies.pull_all()
        assert "Demo Company" in companies.raw
        ledgers = tally.ledgers.pull_all()
        assert 'NAME="HDFC Bank"' in ledgers.raw
        assert "<PARENT" in ledgers.raw, "NATIVEMETHOD Parent is fetched"
        cash = tally.ledgers.pull("Cash")
        assert "Cash-in-Hand" in cash.raw


def test_a_ledger_and_a_voucher_created_by_tallyprime(tally_url):
    name = f"Globex {uuid.uuid4().hex[:6]}"
    before = stats(tally_url)
    with client(tally_url) as tally:
        made = tally.ledgers.create({"NAME": name, "PARENT": "Sundry Debtors"})
        assert made.ok and made.created == 1 and made.last_m_id > 0
        narration = f"Paid by {name}"
        sale = tally.vouchers.receipt.create(
            {
                "DATE": "20261205",
                "NARRATION": narration,
                "ALLLEDGERENTRIES.LIST": [
                    {"LEDGERNAME": "Cash", "ISDEEMEDPOSITIVE": "Yes", "AMOUNT": "-250.00"},
                    {"LEDGERNAME": name, "ISDEEMEDPOSITIVE": "No", "AMOUNT": "250.00"},
                ],
            }
        )
        assert sale.ok and sale.created == 1 and sale.last_vch_id > 0
        day = tally.vouchers.receipt.pull("20261201", "20261231")
        assert narration in day.raw
        assert "<REQUESTDATA>" in day.raw, "the Day Book comes in the import format"
    after = stats(tally_url)
    assert after["ledgers"] == before["ledgers"] + 1
    assert after["vouchers"] == before["vouchers"] + 1


def test_tallys_line_errors_reach_tallyprime(tally_url):
    with client(tally_url) as tally:
        with pytest.raises(TallyImportError) as refused:
            tally.vouchers.sales.create(
                {
                    "DATE": "20261205",
                    "ALLLEDGERENTRIES.LIST": [
                        {"LEDGERNAME": "Nope", "ISDEEMEDPOSITIVE": "Yes", "AMOUNT": "-10.00"},
                        {"LEDGERNAME": "Sales", "ISDEEMEDPOSITIVE": "No", "AMOUNT": "10.00"},
                    ],
                }
            )
        assert refused.value.line_errors == ["Ledger 'Nope' does not exist!"]
        with pytest.raises(TallyImportError) as unbalanced:
            tally.vouchers.sales.create(
                {
                    "DATE": "20261205",
                    "ALLLEDGERENTRIES.LIST": [
                        {"LEDGERNAME": "Cash", "ISDEEMEDPOSITIVE": "Yes", "AMOUNT": "-10.00"},
                        {"LEDGERNAME": "Sales", "ISDEEMEDPOSITIVE": "No", "AMOUNT": "12.00"},
                    ],
                }
            )
        assert unbalanced.value.line_errors[0].startswith("Voucher totals do not match!")
        with pytest.raises(TallyImportError) as duplicate:
            tally.ledgers.create({"NAME": "Cash", "PARENT": "Cash-in-Hand"})
        assert duplicate.value.line_errors == ["Ledger 'Cash' already exists!"]
