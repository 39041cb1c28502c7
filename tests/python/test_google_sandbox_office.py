"""The Google Workspace sandbox's Docs, Sheets, Slides and Forms checked with
``google-api-python-client`` (each built from the discovery document it ships, pointed at the
sandbox): a document written with ``batchUpdate`` and read back, a spreadsheet's values
updated, appended and read, a presentation's slide with text, a form's question answered and
its responses listed; and Google's refusals (a missing scope, a missing valueInputOption, a
form created with items, an unknown document).
"""
import json
import urllib.request
import uuid

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from test_google_sandbox_gmail import _token

DOCS = "https://www.googleapis.com/auth/documents"
SHEETS = "https://www.googleapis.com/auth/spreadsheets"
SLIDES = "https://www.googleapis.com/auth/presentations"
FORMS = "https://www.googleapis.com/auth/forms.body https://www.googleapis.com/auth/forms.responses.readonly"


def _service(google_url, name, version, token):
    return build(
        name,
        version,
        credentials=Credentials(token=token),
        static_discovery=True,
        # these services have no service path: the endpoint is the root URL
        client_options={"api_endpoint": google_url + "/"},
        cache_discovery=False,
    )


def _user():
    return f"ada{uuid.uuid4().hex[:6]}@sandbox.example"


def test_a_document_is_written_and_read_back(google_url):
    docs = _service(google_url, "docs", "v1", _token(google_url, _user(), DOCS))
    doc = docs.documents().create(body={"title": "Proposal"}).execute()
    assert doc["title"] == "Proposal" and doc["documentId"]
    answer = docs.documents().batchUpdate(
        documentId=doc["documentId"],
        body={"requests": [
            {"insertText": {"endOfSegmentLocation": {}, "text": "Scope of work"}},
            {"insertText": {"location": {"index": 1}, "text": "Draft: "}},
            {"replaceAllText": {"containsText": {"text": "work", "matchCase": True}, "replaceText": "services"}},
        ]},
    ).execute()
    assert answer["replies"][2]["replaceAllText"]["occurrencesChanged"] == 1
    got = docs.documents().get(documentId=doc["documentId"]).execute()
    text = "".join(
        e["textRun"]["content"]
        for c in got["body"]["content"] if "paragraph" in c
        for e in c["paragraph"]["elements"]
    )
    assert text == "Draft: Scope of services\n"
    with pytest.raises(HttpError) as err:
        docs.documents().get(documentId="nope").execute()
    assert err.value.resp.status == 404


def test_spreadsheet_values_are_updated_appended_and_read(google_url):
    sheets = _service(google_url, "sheets", "v4", _token(google_url, _user(), SHEETS))
    made = sheets.spreadsheets().create(body={"properties": {"title": "Pipeline"},
                                              "sheets": [{"properties": {"title": "Q4 plan"}}]}).execute()
    sid = made["spreadsheetId"]
    assert made["sheets"][0]["properties"]["title"] == "Q4 plan"
    values = sheets.spreadsheets().values()
    up = values.update(spreadsheetId=sid, range="'Q4 plan'!A1", valueInputOption="RAW",
                       body={"values": [["Customer", "Amount"], ["Acme", "5000"]]}).execute()
    assert up["updatedCells"] == 4 and up["updatedRange"] == "'Q4 plan'!A1:B2"
    ap = values.append(spreadsheetId=sid, range="'Q4 plan'!A1", valueInputOption="USER_ENTERED",
                       body={"values": [["Globex", "1200"]]}).execute()
    assert ap["updates"]["updatedRange"] == "'Q4 plan'!A3:B3"
    got = values.get(spreadsheetId=sid, range="'Q4 plan'!A1:B3").execute()
    assert got["values"] == [["Customer", "Amount"], ["Acme", "5000"], ["Globex", "1200"]]
    # Google requires valueInputOption on writes
    with pytest.raises(HttpError) as err:
        values.update(spreadsheetId=sid, range="A1", body={"values": [["x"]]}).execute()
    assert err.value.resp.status == 400


def test_a_presentation_gets_a_slide_with_text(google_url):
    slides = _service(google_url, "slides", "v1", _token(google_url, _user(), SLIDES))
    deck = slides.presentations().create(body={"title": "Kick-off"}).execute()
    pid = deck["presentationId"]
    emu = {"magnitude": 3000000, "unit": "EMU"}
    answer = slides.presentations().batchUpdate(presentationId=pid, body={"requests": [
        {"createSlide": {"objectId": "agenda"}},
        {"createShape": {"objectId": "agenda_title", "shapeType": "TEXT_BOX",
                         "elementProperties": {"pageObjectId": "agenda",
                                               "size": {"width": emu, "height": emu}}}},
        {"insertText": {"objectId": "agenda_title", "text": "Agenda"}},
    ]}).execute()
    assert answer["replies"][0]["createSlide"]["objectId"] == "agenda"
    got = slides.presentations().get(presentationId=pid).execute()
    slide = next(s for s in got["slides"] if s["objectId"] == "agenda")
    runs = slide["pageElements"][0]["shape"]["text"]["textElements"]
    assert runs[0]["textRun"]["content"] == "Agenda"
    # the same object id twice is refused, and nothing of the batch applies
    with pytest.raises(HttpError) as err:
        slides.presentations().batchUpdate(presentationId=pid, body={"requests": [
            {"createSlide": {"objectId": "other"}}, {"createSlide": {"objectId": "agenda"}}]}).execute()
    assert err.value.resp.status == 400
    assert "other" not in [s["objectId"] for s in slides.presentations().get(presentationId=pid).execute()["slides"]]


def test_a_form_question_is_answered_and_the_responses_listed(google_url):
    forms = _service(google_url, "forms", "v1", _token(google_url, _user(), FORMS))
    # items are added by batchUpdate, never at creation, as Google says
    with pytest.raises(HttpError) as err:
        forms.forms().create(body={"info": {"title": "Feedback"}, "items": []}).execute()
    assert err.value.resp.status == 400
    form = forms.forms().create(body={"info": {"title": "Feedback"}}).execute()
    fid = form["formId"]
    assert form["responderUri"].startswith("https://docs.google.com/forms/")
    answer = forms.forms().batchUpdate(formId=fid, body={"requests": [{"createItem": {
        "item": {"title": "How did we do?", "questionItem": {"question": {
            "required": True,
            "choiceQuestion": {"type": "RADIO", "options": [{"value": "Well"}, {"value": "Badly"}]}}}},
        "location": {"index": 0}}}]}).execute()
    qid = answer["replies"][0]["createItem"]["questionId"][0]
    req = urllib.request.Request(
        f"{google_url}/_sandbox/google/forms/{fid}/responses",
        data=json.dumps({"answers": {qid: ["Well"]}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    listed = forms.forms().responses().list(formId=fid).execute()
    answers = listed["responses"][0]["answers"][qid]["textAnswers"]["answers"]
    assert answers == [{"value": "Well"}]


def test_a_token_without_the_scope_is_refused(google_url):
    docs = _service(google_url, "docs", "v1", _token(google_url, _user(), SHEETS))
    with pytest.raises(HttpError) as err:
        docs.documents().create(body={"title": "x"}).execute()
    assert err.value.resp.status == 403
    assert b"ACCESS_TOKEN_SCOPE_INSUFFICIENT" in err.value.content


def test_document_content_is_deleted_by_range(google_url):
    docs = _service(google_url, "docs", "v1", _token(google_url, _user(), DOCS))
    did = docs.documents().create(body={"title": "Notes"}).execute()["documentId"]
    docs.documents().batchUpdate(documentId=did, body={"requests": [
        {"insertText": {"endOfSegmentLocation": {}, "text": "Hello brave world"}},
        # indices count from 1: "brave " is 7..13
        {"deleteContentRange": {"range": {"startIndex": 7, "endIndex": 13}}},
    ]}).execute()
    got = docs.documents().get(documentId=did).execute()
    runs = [e["textRun"]["content"] for c in got["body"]["content"] if "paragraph" in c
            for e in c["paragraph"]["elements"]]
    assert "".join(runs) == "Hello world\n"
    # the segment's final newline cannot be deleted; nothing of the batch applies
    with pytest.raises(HttpError) as err:
        docs.documents().batchUpdate(documentId=did, body={"requests": [
            {"insertText": {"location": {"index": 1}, "text": "x"}},
            {"deleteContentRange": {"range": {"startIndex": 1, "endIndex": 14}}},
        ]}).execute()
    assert err.value.resp.status == 400
    assert json.loads(err.value.content)["error"]["status"] == "INVALID_ARGUMENT"
    assert "requests[1]" in json.loads(err.value.content)["error"]["message"]


def test_a_form_response_is_read_by_id(google_url):
    forms = _service(google_url, "forms", "v1", _token(google_url, _user(), FORMS))
    fid = forms.forms().create(body={"info": {"title": "Survey"}}).execute()["formId"]
    answer = forms.forms().batchUpdate(formId=fid, body={"requests": [{"createItem": {
        "item": {"title": "Your name", "questionItem": {"question": {"textQuestion": {}}}},
        "location": {"index": 0}}}]}).execute()
    qid = answer["replies"][0]["createItem"]["questionId"][0]
    req = urllib.request.Request(
        f"{google_url}/_sandbox/google/forms/{fid}/responses",
        data=json.dumps({"answers": {qid: ["Ada"]}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        rid = json.loads(resp.read())["responseId"]
    got = forms.forms().responses().get(formId=fid, responseId=rid).execute()
    assert got["responseId"] == rid and got["createTime"] and got["lastSubmittedTime"]
    assert got["answers"][qid]["textAnswers"]["answers"] == [{"value": "Ada"}]
    with pytest.raises(HttpError) as err:
        forms.forms().responses().get(formId=fid, responseId="nope").execute()
    assert err.value.resp.status == 404
    # a token with only the form's body scope cannot read responses
    body_only = _service(google_url, "forms", "v1",
                         _token(google_url, _user(), "https://www.googleapis.com/auth/forms.body"))
    with pytest.raises(HttpError) as err:
        body_only.forms().responses().list(formId=fid).execute()
    assert err.value.resp.status == 403
