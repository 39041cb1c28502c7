//! Docs, Sheets, Slides, Forms, Chat and Tasks: what the fleet creates in them, each a create of the
//! engine's write path (one event on `bac.google_workspace.<entity>.v1`, the intent ledger
//! keeping the answer so a retry does not create a second file). Google creates each with
//! little (a title); the content follows in the API's `batchUpdate` (Docs, Slides, Forms) or
//! a values write (Sheets), as Google requires.
use std::sync::Arc;

use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{
    mapping::rules::{fields, optional, rename},
    EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncError,
};
use serde_json::{json, Value};

use crate::client::{path_segment, Api, GoogleCall, GoogleClient};

/// The entities created here.
pub const ENTITIES: &[&str] = &[
    "document",
    "spreadsheet",
    "presentation",
    "form",
    "chat_message",
    "task",
];

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::InvalidRequest, msg)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Rows of cells as Sheets' `values`.
pub fn values_of(rows: &Value) -> Value {
    json!(rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>())
}

/// A Doc with `content` written into its body.
async fn create_document(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
) -> Result<Value, ServiceError> {
    let created = client
        .call(
            rec,
            user,
            &GoogleCall::post(
                Api::Docs,
                "/v1/documents",
                json!({"title": text(v, "title")}),
                "docs/documents.create",
            ),
        )
        .await?
        .body;
    let id = text(&created, "documentId");
    if id.is_empty() {
        return Err(ServiceError::internal(
            "google-workspace",
            "Docs answered no documentId",
        ));
    }
    let mut revision = text(&created, "revisionId");
    let content = text(v, "content");
    if !content.is_empty() {
        let answer = client
            .call(
                rec,
                user,
                &GoogleCall::post(
                    Api::Docs,
                    format!("/v1/documents/{}:batchUpdate", path_segment(&id)),
                    json!({"requests": [{"insertText": {"endOfSegmentLocation": {}, "text": content}}]}),
                    "docs/documents.batchUpdate",
                ),
            )
            .await?
            .body;
        if let Some(r) = answer["writeControl"]["requiredRevisionId"].as_str() {
            revision = r.to_string();
        }
    }
    Ok(
        json!({"id": id, "title": created["title"], "revision_id": revision, "user": user,
              "url": format!("https://docs.google.com/document/d/{id}/edit")}),
    )
}

/// A sheet's name in A1 notation: quoted (`'Q4 plan'`) unless it is a plain word.
pub fn a1_sheet(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "''"))
    }
}

/// A Sheet with its sheets and, when given, its first rows.
async fn create_spreadsheet(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
) -> Result<Value, ServiceError> {
    let titles: Vec<String> = v["sheet_titles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    let mut body = json!({"properties": {"title": text(v, "title")}});
    if !titles.is_empty() {
        body["sheets"] = json!(titles
            .iter()
            .map(|t| json!({"properties": {"title": t}}))
            .collect::<Vec<_>>());
    }
    let created = client
        .call(
            rec,
            user,
            &GoogleCall::post(
                Api::Sheets,
                "/v4/spreadsheets",
                body,
                "sheets/spreadsheets.create",
            ),
        )
        .await?
        .body;
    let id = text(&created, "spreadsheetId");
    if id.is_empty() {
        return Err(ServiceError::internal(
            "google-workspace",
            "Sheets answered no spreadsheetId",
        ));
    }
    let sheets: Vec<String> = created["sheets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["properties"]["title"].as_str().map(String::from))
        .collect();
    if v["rows"].as_array().is_some_and(|r| !r.is_empty()) {
        let first = sheets.first().cloned().unwrap_or_else(|| "Sheet1".into());
        write_values(
            client,
            rec,
            user,
            &id,
            &format!("{}!A1", a1_sheet(&first)),
            &v["rows"],
            "USER_ENTERED",
            false,
        )
        .await?;
    }
    Ok(
        json!({"id": id, "title": created["properties"]["title"], "sheet_titles": sheets,
              "user": user, "url": created["spreadsheetUrl"].as_str().map(String::from)
                  .unwrap_or_else(|| format!("https://docs.google.com/spreadsheets/d/{id}/edit"))}),
    )
}

/// `values.update` (or `values.append`) of `rows` at `range`; Google's answer as
/// `{spreadsheet_id, updated_range, updated_rows, updated_columns, updated_cells}`.
#[allow(clippy::too_many_arguments)]
pub async fn write_values(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    spreadsheet_id: &str,
    range: &str,
    rows: &Value,
    input: &str,
    append: bool,
) -> Result<Value, ServiceError> {
    let path = format!(
        "/v4/spreadsheets/{}/values/{}{}",
        path_segment(spreadsheet_id),
        path_segment(range),
        if append { ":append" } else { "" }
    );
    let body = json!({"range": range, "majorDimension": "ROWS", "values": values_of(rows)});
    let mut call = if append {
        GoogleCall::post(Api::Sheets, path, body, "sheets/values.append")
            .query("insertDataOption", "INSERT_ROWS")
    } else {
        GoogleCall {
            method: http::Method::PUT,
            idempotent: true,
            ..GoogleCall::post(Api::Sheets, path, body, "sheets/values.update")
        }
    };
    call = call.query("valueInputOption", input);
    let a = client.call(rec, user, &call).await?.body;
    let u = if append { &a["updates"] } else { &a };
    Ok(
        json!({"spreadsheet_id": spreadsheet_id, "updated_range": u["updatedRange"],
              "updated_rows": u["updatedRows"], "updated_columns": u["updatedColumns"],
              "updated_cells": u["updatedCells"]}),
    )
}

/// A presentation with a slide per entry, each with a title box and a body box.
async fn create_presentation(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
) -> Result<Value, ServiceError> {
    let created = client
        .call(
            rec,
            user,
            &GoogleCall::post(
                Api::Slides,
                "/v1/presentations",
                json!({"title": text(v, "title")}),
                "slides/presentations.create",
            ),
        )
        .await?
        .body;
    let id = text(&created, "presentationId");
    if id.is_empty() {
        return Err(ServiceError::internal(
            "google-workspace",
            "Slides answered no presentationId",
        ));
    }
    let mut slide_ids: Vec<String> = created["slides"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["objectId"].as_str().map(String::from))
        .collect();
    let mut requests = Vec::new();
    let emu = |pt: f64| json!({"magnitude": pt * 12700.0, "unit": "EMU"});
    for (n, slide) in v["slides"].as_array().into_iter().flatten().enumerate() {
        let sid = format!("bac_slide_{n}");
        requests.push(json!({"createSlide": {"objectId": sid}}));
        for (part, y, h) in [("title", 40.0, 60.0), ("body", 120.0, 240.0)] {
            let content = text(slide, part);
            if content.is_empty() {
                continue;
            }
            let box_id = format!("{sid}_{part}");
            requests.push(
                json!({"createShape": {"objectId": box_id, "shapeType": "TEXT_BOX",
                "elementProperties": {"pageObjectId": sid,
                    "size": {"width": emu(620.0), "height": emu(h)},
                    "transform": {"scaleX": 1, "scaleY": 1, "translateX": 50.0 * 12700.0,
                                  "translateY": y * 12700.0, "unit": "EMU"}}}}),
            );
            requests.push(json!({"insertText": {"objectId": box_id, "text": content}}));
        }
        slide_ids.push(sid);
    }
    if !requests.is_empty() {
        client
            .call(
                rec,
                user,
                &GoogleCall::post(
                    Api::Slides,
                    format!("/v1/presentations/{}:batchUpdate", path_segment(&id)),
                    json!({"requests": requests}),
                    "slides/presentations.batchUpdate",
                ),
            )
            .await?;
    }
    Ok(
        json!({"id": id, "title": created["title"], "slide_ids": slide_ids, "user": user,
              "url": format!("https://docs.google.com/presentation/d/{id}/edit")}),
    )
}

/// A form: its title at creation (all Google takes then), its description and questions
/// through `batchUpdate`.
async fn create_form(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
) -> Result<Value, ServiceError> {
    let created = client
        .call(
            rec,
            user,
            &GoogleCall::post(
                Api::Forms,
                "/v1/forms",
                json!({"info": {"title": text(v, "title"), "documentTitle": text(v, "title")}}),
                "forms/forms.create",
            ),
        )
        .await?
        .body;
    let id = text(&created, "formId");
    if id.is_empty() {
        return Err(ServiceError::internal(
            "google-workspace",
            "Forms answered no formId",
        ));
    }
    let mut requests = Vec::new();
    let description = text(v, "description");
    if !description.is_empty() {
        requests.push(
            json!({"updateFormInfo": {"info": {"description": description},
                                                "updateMask": "description"}}),
        );
    }
    let questions = v["questions"].as_array().cloned().unwrap_or_default();
    for (i, q) in questions.iter().enumerate() {
        let options: Vec<Value> = q["options"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| json!({"value": o}))
            .collect();
        let question = match q["kind"].as_str().unwrap_or("") {
            "paragraph" => json!({"textQuestion": {"paragraph": true}}),
            "choice" => json!({"choiceQuestion": {"type": "RADIO", "options": options}}),
            "checkbox" => json!({"choiceQuestion": {"type": "CHECKBOX", "options": options}}),
            _ => json!({"textQuestion": {"paragraph": false}}),
        };
        let mut question = question;
        question["required"] = json!(q["required"] == true);
        requests.push(json!({"createItem": {
            "item": {"title": q["title"], "questionItem": {"question": question}},
            "location": {"index": i}}}));
    }
    let mut question_ids = Vec::new();
    if !requests.is_empty() {
        let answer = client
            .call(
                rec,
                user,
                &GoogleCall::post(
                    Api::Forms,
                    format!("/v1/forms/{}:batchUpdate", path_segment(&id)),
                    json!({"requests": requests}),
                    "forms/forms.batchUpdate",
                ),
            )
            .await?
            .body;
        for r in answer["replies"].as_array().into_iter().flatten() {
            if let Some(q) = r["createItem"]["questionId"][0].as_str() {
                question_ids.push(q.to_string());
            }
        }
    }
    Ok(
        json!({"id": id, "title": created["info"]["title"], "question_ids": question_ids,
              "user": user, "responder_url": created["responderUri"]}),
    )
}

/// A Chat message in a space; Chat's `requestId` (from the intent) makes a retry answer the
/// first message.
async fn create_chat_message(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
    intent_id: &str,
) -> Result<Value, ServiceError> {
    let space = text(v, "space");
    let request_id = crate::sync::event_id_of(&rec.id, intent_id);
    let mut call = GoogleCall::post(
        Api::Chat,
        format!("/v1/{space}/messages"),
        json!({"text": text(v, "text")}),
        "chat/spaces.messages.create",
    )
    .query("requestId", request_id);
    let key = text(v, "thread_key");
    if !key.is_empty() {
        call = call
            .query("threadKey", key)
            .query("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
    }
    let m = client.call(rec, user, &call).await?.body;
    Ok(
        json!({"id": m["name"], "name": m["name"], "space": space, "thread": m["thread"]["name"],
              "text": m["text"], "sender": m["sender"]["name"], "createTime": m["createTime"],
              "user": user}),
    )
}

/// A task in the user's default list.
async fn create_task(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    v: &Value,
) -> Result<Value, ServiceError> {
    let mut body = json!({"title": text(v, "title")});
    for k in ["notes", "due"] {
        let x = text(v, k);
        if !x.is_empty() {
            body[k] = json!(x);
        }
    }
    let t = client
        .call(
            rec,
            user,
            &GoogleCall::post(
                Api::Tasks,
                "/tasks/v1/lists/@default/tasks",
                body,
                "tasks/tasks.insert",
            ),
        )
        .await?
        .body;
    let mut t = t;
    t["user"] = json!(user);
    Ok(t)
}

/// One adapter per created kind.
pub struct Created {
    entity: &'static str,
    client: GoogleClient,
}

#[async_trait]
impl EntityAdapter for Created {
    fn entity(&self) -> &'static str {
        self.entity
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::parse(&fields(vec![
            rename("id", "id"),
            optional("title", "title"),
            rename("user", "user"),
            optional("url", "url"),
            optional("responder_url", "responder_url"),
            optional("text", "text"),
            optional("space", "space"),
            optional("thread", "thread"),
            optional("notes", "notes"),
            optional("due", "due"),
            optional("status", "status"),
        ]))
        .unwrap_or_else(|_| Mapping::identity(&["id"]))
    }

    fn refetchable(&self) -> bool {
        false
    }

    /// Created, not read back: nothing to pull (Drive's changes feed sees the files).
    async fn pull(&self, _conn: &ConnectionRecord, _req: &PullRequest) -> Result<Page, SyncError> {
        Ok(Page {
            records: Vec::new(),
            position: json!({}),
            done: true,
            cursor: Value::Null,
        })
    }

    async fn remote_ids(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(None)
    }

    async fn fetch(
        &self,
        _conn: &ConnectionRecord,
        _remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        Ok(None)
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let user = self
            .client
            .acting_user(
                conn,
                values.get("user").and_then(Value::as_str).unwrap_or(""),
            )
            .map_err(SyncError::Permanent)?;
        let needs = if self.entity == "chat_message" {
            "text"
        } else {
            "title"
        };
        if text(values, needs).trim().is_empty() {
            return Err(SyncError::Permanent(bad(format!("{needs} is required"))));
        }
        let raw = match self.entity {
            "chat_message" => {
                create_chat_message(&self.client, conn, &user, values, intent_id).await
            }
            "task" => create_task(&self.client, conn, &user, values).await,
            "document" => create_document(&self.client, conn, &user, values).await,
            "spreadsheet" => create_spreadsheet(&self.client, conn, &user, values).await,
            "presentation" => create_presentation(&self.client, conn, &user, values).await,
            _ => create_form(&self.client, conn, &user, values).await,
        }
        .map_err(SyncError::from_service)?;
        Ok(RemoteRecord {
            id: text(&raw, "id"),
            version: None,
            raw,
            deleted: false,
        })
    }

    async fn update(
        &self,
        _c: &ConnectionRecord,
        _r: &str,
        _v: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        Err(SyncError::Permanent(bad(format!(
            "a {} is changed through its own routes, not as a synced record",
            self.entity
        ))))
    }

    async fn delete(&self, _c: &ConnectionRecord, _r: &str) -> Result<(), SyncError> {
        Err(SyncError::Permanent(bad(format!(
            "a {} is deleted in Drive (drive_file)",
            self.entity
        ))))
    }
}

pub fn adapters(client: &GoogleClient) -> Vec<Arc<dyn EntityAdapter>> {
    ENTITIES
        .iter()
        .map(|e| {
            Arc::new(Created {
                entity: e,
                client: client.clone(),
            }) as Arc<dyn EntityAdapter>
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_travel_as_one_path_segment() {
        assert_eq!(path_segment("'Q4 plan'!A1:C3"), "%27Q4%20plan%27!A1:C3");
        assert_eq!(path_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(a1_sheet("Sheet1"), "Sheet1");
        assert_eq!(a1_sheet("Q4 plan"), "'Q4 plan'");
        assert_eq!(a1_sheet("Ada's"), "'Ada''s'");
    }
}
