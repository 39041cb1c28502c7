//! The gRPC face of bac-google-workspace: `bac.google_workspace.v1.GoogleWorkspaceService`.
//! Sends, creates and uploads take the engine's one write path (the entity's adapter, the
//! create-intent ledger, then the mirror and its `bac.google_workspace.<entity>.v1` event);
//! reads go straight to Google, acting as the request's user.
use bac_proto::google_workspace::v1::{
    google_workspace_service_server::GoogleWorkspaceService, Answer, CalendarEvent, ChatMessage,
    CreateChatMessageRequest, CreateDocumentRequest, CreateEventRequest, CreateFormRequest,
    CreatePresentationRequest, CreateSpreadsheetRequest, CreateTaskRequest, Document, DriveFile,
    Form, FormResponse, ListChatMessagesRequest, ListChatMessagesResponse, ListEventsRequest,
    ListEventsResponse, ListFilesRequest, ListFilesResponse, ListFormResponsesRequest,
    ListFormResponsesResponse, ListMessagesRequest, ListMessagesResponse, ListTasksRequest,
    ListTasksResponse, ListUsersRequest, ListUsersResponse, Presentation, Row, SendMessageRequest,
    SentMessage, Spreadsheet, Task, UpdateValuesRequest, UpdatedValues, UploadFileRequest,
};
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use base64::Engine as _;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use crate::{
    client::{Api, GoogleCall, GoogleClient},
    connector::{auth_of, Auth},
    mime, transform as tf,
};

#[derive(Clone)]
pub struct GoogleApi {
    client: GoogleClient,
    connections: ConnectionStore,
    engine: bac_sync::SyncEngine,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::InvalidRequest, msg)
}

fn internal(what: &str) -> ServiceError {
    ServiceError::internal("google-workspace", format!("Google answered no {what}"))
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

fn intent_of(given: &str) -> Result<String, ServiceError> {
    Ok(bac_connector::intent_of("google-workspace", given)?.0)
}

/// A request's page size: `default` when it names none, at most `max`.
fn page_size(asked: u32, default: u32, max: u32) -> Result<u32, ServiceError> {
    bac_connector::page_size("google-workspace", asked, default, max)
}

/// A page token as Google gives them (opaque, printable).
fn check_token(t: &str) -> Result<(), ServiceError> {
    if t.len() > 2048 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("page_token is not one Google gave"));
    }
    Ok(())
}

/// A calendar id: `primary` or an address (`ada@example.com`,
/// `...@group.calendar.google.com`).
fn calendar_path(id: &str) -> Result<String, ServiceError> {
    let id = if id.is_empty() { "primary" } else { id };
    if id != "primary"
        && !(id.contains('@')
            && id.len() <= 320
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@.-_+".contains(&b)))
    {
        return Err(bad("calendar_id must be primary or a calendar's address"));
    }
    Ok(format!("/calendar/v3/calendars/{id}/events"))
}

/// A Drive file id (Docs, Sheets, Slides and Forms ids are Drive's).
fn check_file_id(what: &str, id: &str) -> Result<(), ServiceError> {
    if id.is_empty()
        || id.len() > 200
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(format!("{what} is not a Google file id")));
    }
    Ok(())
}

/// Rows as JSON for the engine and Sheets; at most 100,000 cells of 50,000 characters (a
/// cell's limit in Sheets).
fn rows_json(rows: &[Row]) -> Result<Value, ServiceError> {
    let cells: usize = rows.iter().map(|r| r.cells.len()).sum();
    if cells > 100_000 {
        return Err(bad("at most 100000 cells a request"));
    }
    if rows
        .iter()
        .flat_map(|r| &r.cells)
        .any(|c| c.chars().count() > 50_000)
    {
        return Err(bad("a cell holds at most 50000 characters"));
    }
    Ok(json!(rows
        .iter()
        .map(|r| r.cells.clone())
        .collect::<Vec<_>>()))
}

fn text_of(raw: &Value, k: &str) -> String {
    raw[k].as_str().unwrap_or("").to_string()
}

fn strings_of(raw: &Value, k: &str) -> Vec<String> {
    raw[k]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// A Chat space's resource name (`spaces/AAAA...`).
fn check_space(space: &str) -> Result<(), ServiceError> {
    match space.strip_prefix("spaces/") {
        Some(id)
            if !id.is_empty()
                && id.len() <= 190
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(())
        }
        _ => Err(bad(
            "space must be a Chat space's name such as spaces/AAAAabcdefg",
        )),
    }
}

fn chat_message(raw: &Value, connection_id: &str) -> ChatMessage {
    ChatMessage {
        name: text_of(raw, "name"),
        space: text_of(raw, "space"),
        thread: text_of(raw, "thread"),
        text: text_of(raw, "text"),
        sender: text_of(raw, "sender"),
        created_at: tf::timestamp(&raw["createTime"]),
        connection_id: connection_id.to_string(),
    }
}

fn task(raw: &Value, user: &str, connection_id: &str) -> Task {
    Task {
        id: text_of(raw, "id"),
        title: text_of(raw, "title"),
        notes: text_of(raw, "notes"),
        due: text_of(raw, "due"),
        status: text_of(raw, "status"),
        updated: tf::timestamp(&raw["updated"]),
        user: user.to_string(),
        connection_id: connection_id.to_string(),
    }
}

/// Drive allows files up to 5 TB; what one request may carry here is the gateway's body
/// limit, so this bounds only the gRPC side.
const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

impl GoogleApi {
    pub fn new(
        client: GoogleClient,
        connections: ConnectionStore,
        engine: bac_sync::SyncEngine,
    ) -> Self {
        GoogleApi {
            client,
            connections,
            engine,
        }
    }

    async fn connection(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<ConnectionRecord, ServiceError> {
        self.connections.resolve(&ctx.tenant_id, id).await
    }

    async fn create(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        values: &Value,
        intent: &str,
    ) -> Result<Value, ServiceError> {
        let created = self
            .engine
            .create(rec, entity, values, intent)
            .await
            .map_err(|e| e.service_error().clone())?;
        Ok(created.raw)
    }
}

impl GoogleApi {
    /// `values.update` or `values.append`.
    async fn values(
        &self,
        request: Request<UpdateValuesRequest>,
        append: bool,
    ) -> Result<Response<UpdatedValues>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_file_id("spreadsheet_id", &req.spreadsheet_id)?;
        if req.range.trim().is_empty() || req.range.len() > 500 || req.range.contains(['\r', '\n'])
        {
            return Err(bad("range must be A1 notation such as Sheet1!A1:C3").into());
        }
        if req.rows.is_empty() {
            return Err(bad("rows is required: the rows to write").into());
        }
        let rows = rows_json(&req.rows)?;
        let input = match req.value_input_option.as_str() {
            "" => "USER_ENTERED",
            o @ ("RAW" | "USER_ENTERED") => o,
            _ => return Err(bad("value_input_option must be RAW or USER_ENTERED").into()),
        };
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let a = crate::office::write_values(
            &self.client,
            &rec,
            &user,
            &req.spreadsheet_id,
            &req.range,
            &rows,
            input,
            append,
        )
        .await?;
        let n = |k: &str| a[k].as_u64().unwrap_or(0) as u32;
        Ok(Response::new(UpdatedValues {
            spreadsheet_id: req.spreadsheet_id,
            updated_range: text_of(&a, "updated_range"),
            updated_rows: n("updated_rows"),
            updated_columns: n("updated_columns"),
            updated_cells: n("updated_cells"),
        }))
    }
}

#[tonic::async_trait]
impl GoogleWorkspaceService for GoogleApi {
    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> Result<Response<SentMessage>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        // the message is checked whole before anything is recorded
        mime::build(&req, "check@example.com", "check@bac")?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        // a service account without `user` sends as `from`: that is whose mailbox it is
        let asked = match (req.user.trim(), auth_of(&rec.config)) {
            ("", Auth::ServiceAccount) => req.from.trim(),
            (u, _) => u,
        };
        let user = self.client.acting_user(&rec, asked)?;
        let values = json!({
            "user": user,
            "request": serde_json::to_value(&req).map_err(|e| ServiceError::internal("google-workspace", e))?,
        });
        let raw = self.create(&rec, "gmail_message", &values, &intent).await?;
        let text = |k: &str| raw[k].as_str().unwrap_or("").to_string();
        tracing::info!(message_id = %text("id"), connection = %rec.id, "gmail message sent");
        Ok(Response::new(SentMessage {
            id: text("id"),
            thread_id: text("threadId"),
            label_ids: raw["labelIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(String::from))
                .collect(),
            user: text("user"),
            message_id_header: text("message_id_header"),
            connection_id: rec.id.clone(),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 20, 100)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(
            Api::Gmail,
            format!("/gmail/v1/users/{user}/messages"),
            "gmail/messages.list",
        )
        .query("maxResults", size.to_string());
        if !req.q.is_empty() {
            call = call.query("q", req.q.clone());
        }
        for l in &req.label_ids {
            if l.is_empty() || l.len() > 100 || !l.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("label_ids must be Gmail label ids such as INBOX").into());
            }
            call = call.query("labelIds", l.clone());
        }
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let list = self.client.call(&rec, &user, &call).await?;
        let mut messages = Vec::new();
        for m in list.body["messages"].as_array().into_iter().flatten() {
            let Some(id) = m["id"].as_str() else { continue };
            let get = GoogleCall::get(
                Api::Gmail,
                format!("/gmail/v1/users/{user}/messages/{id}"),
                "gmail/messages.get",
            )
            .query("format", "metadata")
            .query("metadataHeaders", "From")
            .query("metadataHeaders", "To")
            .query("metadataHeaders", "Subject");
            match self.client.call(&rec, &user, &get).await {
                Ok(a) => messages.push(tf::message(&a.body)),
                // deleted between the list and the read
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Response::new(ListMessagesResponse {
            messages,
            next_page_token: list.body["nextPageToken"].as_str().unwrap_or("").into(),
            result_size_estimate: list.body["resultSizeEstimate"].as_u64().unwrap_or(0) as u32,
        }))
    }

    async fn create_event(
        &self,
        request: Request<CreateEventRequest>,
    ) -> Result<Response<CalendarEvent>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let ev = req.event.clone().ok_or_else(|| bad("event is required"))?;
        if ev.summary.trim().is_empty() {
            return Err(bad("event.summary is required").into());
        }
        let (Some(start), Some(end)) = (&ev.start, &ev.end) else {
            return Err(bad("event.start and event.end are required (RFC 3339 times)").into());
        };
        if (end.seconds, end.nanos) <= (start.seconds, start.nanos) {
            return Err(bad("event.end must be after event.start").into());
        }
        if !ev.time_zone.is_empty() && ev.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(
                bad("event.time_zone must be an IANA time zone such as Asia/Kolkata").into(),
            );
        }
        for (i, a) in ev.attendees.iter().enumerate() {
            if mime::addresses("attendees", &a.email).map(|l| l.len()).ok() != Some(1) {
                return Err(bad(format!(
                    "event.attendees[{i}].email is not an email address"
                ))
                .into());
            }
        }
        if !req.calendar_id.is_empty() && req.calendar_id != "primary" {
            return Err(bad(
                "events are created on the user's primary calendar: leave calendar_id empty or primary, and choose the calendar with user",
            )
            .into());
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = tf::event_values(&ev, &user, req.add_meet, &req.send_updates);
        let raw = self
            .create(&rec, "calendar_event", &values, &intent)
            .await?;
        if raw.get("id").is_none() {
            return Err(internal("event").into());
        }
        Ok(Response::new(tf::event(&raw, &user, &rec.id)))
    }

    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_token(&req.page_token)?;
        let path = calendar_path(&req.calendar_id)?;
        let size = page_size(req.page_size, 250, 2500)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(Api::Calendar, path, "calendar/events.list")
            .query("maxResults", size.to_string());
        for (name, v) in [("timeMin", &req.time_min), ("timeMax", &req.time_max)] {
            if !v.is_empty() {
                if chrono::DateTime::parse_from_rfc3339(v).is_err() {
                    return Err(bad(format!("{name} must be an RFC 3339 time")).into());
                }
                call = call.query(name, v.clone());
            }
        }
        if !req.time_min.is_empty() || !req.time_max.is_empty() {
            call = call
                .query("singleEvents", "true")
                .query("orderBy", "startTime");
        }
        if !req.q.is_empty() {
            call = call.query("q", req.q.clone());
        }
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        let cal = if req.calendar_id.is_empty() || req.calendar_id == "primary" {
            user.clone()
        } else {
            req.calendar_id.clone()
        };
        Ok(Response::new(ListEventsResponse {
            events: a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| tf::event(e, &cal, &rec.id))
                .collect(),
            next_page_token: a.body["nextPageToken"].as_str().unwrap_or("").into(),
        }))
    }

    async fn upload_file(
        &self,
        request: Request<UploadFileRequest>,
    ) -> Result<Response<DriveFile>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.name.trim().is_empty() || req.name.len() > 1000 {
            return Err(bad("name is required (at most 1000 characters)").into());
        }
        if req.content.is_empty() {
            return Err(bad("content is required (the file's bytes, base64 in REST)").into());
        }
        if req.content.len() > MAX_UPLOAD_BYTES {
            return Err(bad(format!("content is larger than {MAX_UPLOAD_BYTES} bytes")).into());
        }
        if !req.mime_type.is_empty()
            && (!req.mime_type.contains('/') || req.mime_type.contains(['\r', '\n']))
        {
            return Err(bad("mime_type must be a MIME type such as application/pdf").into());
        }
        for p in &req.parent_ids {
            if p.is_empty()
                || p.len() > 200
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("parent_ids must be Drive folder ids").into());
            }
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = json!({
            "user": user,
            "name": req.name,
            "mime_type": req.mime_type,
            "parent_ids": req.parent_ids,
            "description": req.description,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&req.content),
        });
        let raw = self.create(&rec, "drive_file", &values, &intent).await?;
        if raw.get("id").is_none() {
            return Err(internal("file").into());
        }
        Ok(Response::new(tf::file(&raw, &user, &rec.id)))
    }

    async fn list_files(
        &self,
        request: Request<ListFilesRequest>,
    ) -> Result<Response<ListFilesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 100, 1000)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(Api::Drive, "/drive/v3/files", "drive/files.list")
            .query("pageSize", size.to_string())
            .query(
                "fields",
                format!("nextPageToken,files({})", crate::upload::FILE_FIELDS),
            );
        if !req.q.is_empty() {
            call = call.query("q", req.q.clone());
        }
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        Ok(Response::new(ListFilesResponse {
            files: a.body["files"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| tf::file(f, &user, &rec.id))
                .collect(),
            next_page_token: a.body["nextPageToken"].as_str().unwrap_or("").into(),
        }))
    }

    async fn create_document(
        &self,
        request: Request<CreateDocumentRequest>,
    ) -> Result<Response<Document>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.title.trim().is_empty() {
            return Err(bad("title is required").into());
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = json!({"user": user, "title": req.title, "content": req.content});
        let raw = self.create(&rec, "document", &values, &intent).await?;
        Ok(Response::new(Document {
            id: text_of(&raw, "id"),
            title: text_of(&raw, "title"),
            revision_id: text_of(&raw, "revision_id"),
            url: text_of(&raw, "url"),
            user,
            connection_id: rec.id.clone(),
        }))
    }

    async fn create_spreadsheet(
        &self,
        request: Request<CreateSpreadsheetRequest>,
    ) -> Result<Response<Spreadsheet>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.title.trim().is_empty() {
            return Err(bad("title is required").into());
        }
        if req
            .sheet_titles
            .iter()
            .any(|t| t.trim().is_empty() || t.chars().count() > 100)
        {
            return Err(bad("sheet_titles must be names of 1 to 100 characters").into());
        }
        let rows = rows_json(&req.rows)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = json!({"user": user, "title": req.title, "sheet_titles": req.sheet_titles,
                            "rows": rows});
        let raw = self.create(&rec, "spreadsheet", &values, &intent).await?;
        Ok(Response::new(Spreadsheet {
            id: text_of(&raw, "id"),
            title: text_of(&raw, "title"),
            url: text_of(&raw, "url"),
            sheet_titles: strings_of(&raw, "sheet_titles"),
            user,
            connection_id: rec.id.clone(),
        }))
    }

    async fn update_values(
        &self,
        request: Request<UpdateValuesRequest>,
    ) -> Result<Response<UpdatedValues>, Status> {
        self.values(request, false).await
    }

    async fn append_values(
        &self,
        request: Request<UpdateValuesRequest>,
    ) -> Result<Response<UpdatedValues>, Status> {
        self.values(request, true).await
    }

    async fn create_presentation(
        &self,
        request: Request<CreatePresentationRequest>,
    ) -> Result<Response<Presentation>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.title.trim().is_empty() {
            return Err(bad("title is required").into());
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let slides: Vec<Value> = req
            .slides
            .iter()
            .map(|s| json!({"title": s.title, "body": s.body}))
            .collect();
        let values = json!({"user": user, "title": req.title, "slides": slides});
        let raw = self.create(&rec, "presentation", &values, &intent).await?;
        Ok(Response::new(Presentation {
            id: text_of(&raw, "id"),
            title: text_of(&raw, "title"),
            url: text_of(&raw, "url"),
            slide_ids: strings_of(&raw, "slide_ids"),
            user,
            connection_id: rec.id.clone(),
        }))
    }

    async fn create_form(
        &self,
        request: Request<CreateFormRequest>,
    ) -> Result<Response<Form>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.title.trim().is_empty() {
            return Err(bad("title is required").into());
        }
        for (i, q) in req.questions.iter().enumerate() {
            if q.title.trim().is_empty() {
                return Err(bad(format!("questions[{i}].title is required")).into());
            }
            let choice = matches!(q.kind.as_str(), "choice" | "checkbox");
            if choice && (q.options.is_empty() || q.options.iter().any(|o| o.trim().is_empty())) {
                return Err(bad(format!(
                    "questions[{i}].options must list the answers a {} question offers",
                    q.kind
                ))
                .into());
            }
            if !choice && !q.options.is_empty() {
                return Err(bad(format!(
                    "questions[{i}].options belong to choice and checkbox questions"
                ))
                .into());
            }
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let questions: Vec<Value> = req
            .questions
            .iter()
            .map(|q| json!({"title": q.title, "kind": q.kind, "options": q.options, "required": q.required}))
            .collect();
        let values = json!({"user": user, "title": req.title, "description": req.description,
                            "questions": questions});
        let raw = self.create(&rec, "form", &values, &intent).await?;
        Ok(Response::new(Form {
            id: text_of(&raw, "id"),
            title: text_of(&raw, "title"),
            responder_url: text_of(&raw, "responder_url"),
            question_ids: strings_of(&raw, "question_ids"),
            user,
            connection_id: rec.id.clone(),
        }))
    }

    async fn list_form_responses(
        &self,
        request: Request<ListFormResponsesRequest>,
    ) -> Result<Response<ListFormResponsesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_file_id("form_id", &req.form_id)?;
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 100, 5000)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(
            Api::Forms,
            format!("/v1/forms/{}/responses", req.form_id),
            "forms/responses.list",
        )
        .query("pageSize", size.to_string());
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        let responses = a.body["responses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut answers: Vec<Answer> = r["answers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(qid, ans)| Answer {
                        question_id: qid.clone(),
                        values: ans["textAnswers"]["answers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v["value"].as_str().map(String::from))
                            .collect(),
                    })
                    .collect();
                answers.sort_by(|a, b| a.question_id.cmp(&b.question_id));
                FormResponse {
                    id: text_of(r, "responseId"),
                    created_at: tf::timestamp(&r["createTime"]),
                    submitted_at: tf::timestamp(&r["lastSubmittedTime"]),
                    respondent_email: text_of(r, "respondentEmail"),
                    answers,
                }
            })
            .collect();
        Ok(Response::new(ListFormResponsesResponse {
            responses,
            next_page_token: text_of(&a.body, "nextPageToken"),
        }))
    }

    async fn create_chat_message(
        &self,
        request: Request<CreateChatMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_space(&req.space)?;
        if req.text.trim().is_empty() || req.text.chars().count() > 4096 {
            return Err(bad("text is required (at most 4096 characters)").into());
        }
        if !req
            .thread_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(bad("thread_key may hold letters, digits, '_', '.' and '-'").into());
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = json!({"user": user, "space": req.space, "text": req.text,
                            "thread_key": req.thread_key});
        let raw = self.create(&rec, "chat_message", &values, &intent).await?;
        Ok(Response::new(chat_message(&raw, &rec.id)))
    }

    async fn list_chat_messages(
        &self,
        request: Request<ListChatMessagesRequest>,
    ) -> Result<Response<ListChatMessagesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_space(&req.space)?;
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 25, 1000)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(
            Api::Chat,
            format!("/v1/{}/messages", req.space),
            "chat/spaces.messages.list",
        )
        .query("pageSize", size.to_string());
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        Ok(Response::new(ListChatMessagesResponse {
            messages: a.body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    chat_message(
                        &json!({"name": m["name"], "space": req.space, "thread": m["thread"]["name"],
                                "text": m["text"], "sender": m["sender"]["name"],
                                "createTime": m["createTime"]}),
                        &rec.id,
                    )
                })
                .collect(),
            next_page_token: text_of(&a.body, "nextPageToken"),
        }))
    }

    async fn create_task(
        &self,
        request: Request<CreateTaskRequest>,
    ) -> Result<Response<Task>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.title.trim().is_empty() || req.title.chars().count() > 1024 {
            return Err(bad("title is required (at most 1024 characters)").into());
        }
        if !req.due.is_empty() && chrono::DateTime::parse_from_rfc3339(&req.due).is_err() {
            return Err(bad("due must be an RFC 3339 time").into());
        }
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let values = json!({"user": user, "title": req.title, "notes": req.notes, "due": req.due});
        let raw = self.create(&rec, "task", &values, &intent).await?;
        Ok(Response::new(task(&raw, &user, &rec.id)))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 20, 100)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(
            Api::Tasks,
            "/tasks/v1/lists/@default/tasks",
            "tasks/tasks.list",
        )
        .query("maxResults", size.to_string())
        .query("showCompleted", req.show_completed.to_string());
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        Ok(Response::new(ListTasksResponse {
            tasks: a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| task(t, &user, &rec.id))
                .collect(),
            next_page_token: text_of(&a.body, "nextPageToken"),
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        check_token(&req.page_token)?;
        let size = page_size(req.page_size, 100, 500)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let user = self.client.acting_user(&rec, &req.user)?;
        let mut call = GoogleCall::get(
            Api::Directory,
            "/admin/directory/v1/users",
            "directory/users.list",
        )
        .query("customer", "my_customer")
        .query("maxResults", size.to_string())
        .query("orderBy", "email");
        if !req.query.is_empty() {
            call = call.query("query", req.query.clone());
        }
        if !req.page_token.is_empty() {
            call = call.query("pageToken", req.page_token.clone());
        }
        let a = self.client.call(&rec, &user, &call).await?;
        Ok(Response::new(ListUsersResponse {
            users: a.body["users"]
                .as_array()
                .into_iter()
                .flatten()
                .map(tf::user)
                .collect(),
            next_page_token: a.body["nextPageToken"].as_str().unwrap_or("").into(),
        }))
    }
}
