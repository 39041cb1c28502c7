"""The Zoho sandbox checked with Zoho's own Python SDK for CRM (``zohocrmsdk8-0``): its
environment pointed at one of the sandbox's data centres, a self-client's refresh token, and
leads created, listed, read and refused as the SDK sends and parses them (the SDK first reads
the organisation, the current user, the modules and the fields, as it does against Zoho).
"""
import json
import urllib.request
import uuid

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.record import (
    ActionWrapper,
    APIException,
    BodyWrapper,
    GetRecordsParam,
    Record,
    RecordOperations,
    ResponseWrapper,
    SuccessResponse,
)
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig


def _post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def _init(zoho_url, tmp_path, dc="eu"):
    base = f"{zoho_url}/{dc}"
    client_id = f"1000.SDK{uuid.uuid4().hex[:8]}"
    refresh = f"1000.sdk.{uuid.uuid4().hex}"
    status = _post(
        f"{base}/_sandbox/oauth/grants",
        {
            "client_id": client_id,
            "client_secret": "sdk-secret",
            "refresh_token": refresh,
            "scope": "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.org.READ,ZohoCRM.users.READ",
        },
    )
    assert status == 201
    environment = DataCenter.Environment(base, f"{base}/oauth/v2/token", base)
    token = OAuthToken(client_id=client_id, client_secret="sdk-secret", refresh_token=refresh)
    Initializer.initialize(
        environment=environment,
        token=token,
        store=FileStore(str(tmp_path / "tokens.txt")),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path),
    )


def test_the_crm_sdk_creates_lists_and_reads_leads(zoho_url, tmp_path):
    _init(zoho_url, tmp_path)
    leads = RecordOperations("Leads")

    record = Record()
    record.add_key_value("Last_Name", "Lovelace")
    record.add_key_value("First_Name", "Ada")
    record.add_key_value("Company", "Analytical Engines")
    record.add_key_value("Email", "ada@engines.example")
    record.add_key_value("Annual_Revenue", 125000.5)
    body = BodyWrapper()
    body.set_data([record])
    resp = leads.create_records(body, HeaderMap())
    assert resp.get_status_code() == 201
    wrapper = resp.get_object()
    assert isinstance(wrapper, ActionWrapper)
    created = wrapper.get_data()[0]
    assert isinstance(created, SuccessResponse), created
    assert created.get_status().get_value() == "success"
    assert created.get_message().get_value() == "record added"
    lead_id = created.get_details()["id"]

    params = ParameterMap()
    params.add(GetRecordsParam.fields, "Last_Name,First_Name,Company,Email,Annual_Revenue")
    params.add(GetRecordsParam.per_page, 200)
    resp = leads.get_records(params, HeaderMap())
    assert resp.get_status_code() == 200
    wrapper = resp.get_object()
    assert isinstance(wrapper, ResponseWrapper)
    mine = [r for r in wrapper.get_data() if str(r.get_id()) == str(lead_id)]
    assert len(mine) == 1
    assert mine[0].get_key_value("Company") == "Analytical Engines"
    assert mine[0].get_key_value("Annual_Revenue") == 125000.5
    assert wrapper.get_info().get_more_records() is False

    resp = leads.get_record(int(lead_id), ParameterMap(), HeaderMap())
    assert resp.get_status_code() == 200
    one = resp.get_object().get_data()[0]
    assert one.get_key_value("Last_Name") == "Lovelace"
    assert one.get_key_value("Email") == "ada@engines.example"
    assert one.get_created_time() is not None


def test_the_crm_sdk_reads_zohos_refusals(zoho_url, tmp_path):
    _init(zoho_url, tmp_path, dc="in")
    record = Record()
    record.add_key_value("First_Name", "No last name")
    body = BodyWrapper()
    body.set_data([record])
    resp = RecordOperations("Contacts").create_records(body, HeaderMap())
    assert resp.get_status_code() == 400
    refused = resp.get_object().get_data()[0]
    assert isinstance(refused, APIException), refused
    assert refused.get_code().get_value() == "MANDATORY_NOT_FOUND"
    assert refused.get_details()["api_name"] == "Last_Name"
