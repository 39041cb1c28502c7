//! Google Workspace's entities for the sync engine (where a Google record becomes an
//! event on `bac.google_workspace.<entity>.v1`):
//!
//! - `calendar_event`: a partition per synced user (their primary calendar), incremental
//!   with Calendar's `syncToken`; a `410 fullSyncRequired` restarts that user's calendar
//!   from a full listing, no other user's. Creates choose the event id from the intent
//!   (base32hex of its hash), so a retried insert is Google's `409 duplicate` and reads the
//!   first event back.
//! - `drive_file`: a partition per synced user, incremental with Drive's changes feed
//!   (`pageToken`, `newStartPageToken`); a full run lists the files and takes the start token
//!   first, so nothing changed during it is missed.
//! - `directory_user`: the domain's users (Admin SDK), listed whole each run (the Directory
//!   has no change feed); deletions are the ids no longer listed.
//! - `gmail_message`: a partition per synced user's mailbox, incremental with Gmail's
//!   `historyId` (`history.list`: added messages read with their headers, deleted ones as
//!   tombstones); a `404` for a history Gmail no longer keeps lists that mailbox again.
//!   Sends are creates (the answer kept in the intent ledger, so a retry does not send twice).
use std::sync::Arc;

use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{
    mapping::rules::{datetime, fields, optional, rename},
    EntityAdapter, Mapping, Mode, Page, PullRequest, RemoteRecord, SyncError, Version,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::Digest;

use crate::{
    client::{Api, GoogleCall, GoogleClient},
    connector::{subject_of, synced_users},
    mime,
    upload::{self, NewFile, FILE_FIELDS},
};

pub const ENTITIES: &[&str] = &[
    "calendar_event",
    "drive_file",
    "directory_user",
    "gmail_message",
];

fn bad(msg: impl Into<String>) -> SyncError {
    SyncError::Permanent(ServiceError::new(
        "google-workspace",
        ErrorCode::InvalidRequest,
        msg,
    ))
}

fn from_service(e: ServiceError) -> SyncError {
    SyncError::from_service(e)
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `user/id`: a partitioned record's id, unique across the connection's users.
fn split_id(remote_id: &str) -> Result<(&str, &str), SyncError> {
    remote_id
        .split_once('/')
        .filter(|(u, id)| u.contains('@') && !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            bad(format!(
                "'{remote_id}' is not a record id of the form user/id"
            ))
        })
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The event id of an intent: Google lets a client choose it (base32hex, 5-1024 characters;
/// lower-case hex is base32hex), so a retried insert finds the first.
pub fn event_id_of(connection_id: &str, intent_id: &str) -> String {
    let d = sha2::Sha256::digest(format!("{connection_id}/{intent_id}").as_bytes());
    format!("bac{}", hex::encode(&d[..16]))
}

// ---------------------------------------------------------------------------- Calendar

pub struct CalendarEvents {
    client: GoogleClient,
}

fn event_record(user: &str, mut e: Value) -> Option<RemoteRecord> {
    let id = e.get("id")?.as_str()?.to_string();
    let deleted = e["status"] == "cancelled";
    e["user"] = json!(user);
    Some(RemoteRecord {
        id: format!("{user}/{id}"),
        version: time(&e["updated"]).map(Version::Time),
        raw: e,
        deleted,
    })
}

/// Google's event body from canonical values (`summary`, `start`, `end`, `time_zone`,
/// `attendees`, ...); only the fields given.
pub fn event_body(v: &Value) -> Result<Value, SyncError> {
    let mut b = json!({});
    for (canon, google) in [
        ("summary", "summary"),
        ("description", "description"),
        ("location", "location"),
    ] {
        if let Some(s) = v.get(canon).and_then(Value::as_str) {
            b[google] = json!(s);
        }
    }
    let tz = v.get("time_zone").and_then(Value::as_str).unwrap_or("");
    for key in ["start", "end"] {
        if let Some(t) = v.get(key).and_then(Value::as_str) {
            if time(&json!(t)).is_none() {
                return Err(bad(format!("{key} must be an RFC 3339 time")));
            }
            b[key] = json!({"dateTime": t});
            if !tz.is_empty() {
                b[key]["timeZone"] = json!(tz);
            }
        }
    }
    if let Some(list) = v.get("attendees").and_then(Value::as_array) {
        let mut out = Vec::new();
        for a in list {
            let email = a.get("email").and_then(Value::as_str).unwrap_or("");
            if !email.contains('@') {
                return Err(bad("every attendee needs an email"));
            }
            let mut g = json!({"email": email});
            if let Some(n) = a
                .get("display_name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                g["displayName"] = json!(n);
            }
            if a.get("optional") == Some(&Value::Bool(true)) {
                g["optional"] = json!(true);
            }
            out.push(g);
        }
        b["attendees"] = json!(out);
    }
    Ok(b)
}

impl CalendarEvents {
    fn path(id: Option<&str>) -> String {
        match id {
            Some(id) => format!("/calendar/v3/calendars/primary/events/{id}"),
            None => "/calendar/v3/calendars/primary/events".into(),
        }
    }
}

#[async_trait]
impl EntityAdapter for CalendarEvents {
    fn entity(&self) -> &'static str {
        "calendar_event"
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::parse(&fields(vec![
            rename("id", "id"),
            rename("user", "user"),
            optional("summary", "summary"),
            optional("description", "description"),
            optional("location", "location"),
            datetime("start", "start.dateTime", "rfc3339"),
            datetime("end", "end.dateTime", "rfc3339"),
            optional("time_zone", "start.timeZone"),
            optional("all_day_start", "start.date"),
            rename("status", "status"),
            optional("meet_link", "hangoutLink"),
            optional("html_link", "htmlLink"),
            optional("organizer", "organizer.email"),
            optional("attendees", "attendees"),
            datetime("updated", "updated", "rfc3339"),
        ]))
        .unwrap_or_else(|_| Mapping::identity(&["id"]))
    }

    async fn partitions(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(Some(synced_users(&conn.config)))
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let user = req.partition.as_str();
        let sync_token = match req.mode {
            Mode::Full => None,
            Mode::Incremental => req
                .cursor
                .as_ref()
                .and_then(|c| c.get("sync_token"))
                .and_then(Value::as_str)
                .map(String::from),
        };
        let pos = req.position.clone().unwrap_or(json!({}));
        // a 410 earlier in this run turned it into a full listing
        let full = pos["full"] == true || sync_token.is_none();
        let mut call = GoogleCall::get(Api::Calendar, Self::path(None), "calendar/events.list")
            .query("maxResults", req.page_size.clamp(1, 2500).to_string());
        if full {
            call = call.query("showDeleted", "true");
        } else if let Some(t) = &sync_token {
            call = call.query("syncToken", t.clone());
        }
        if let Some(p) = pos["page_token"].as_str() {
            call = call.query("pageToken", p);
        }
        let answer = match self.client.call(conn, user, &call).await {
            Ok(a) => a,
            Err(e) if !full && e.upstream_code.as_deref() == Some("fullSyncRequired") => {
                tracing::info!(connection = %conn.id, user, "Calendar says the sync token is gone: a full resync of this calendar");
                return Ok(Page {
                    records: Vec::new(),
                    position: json!({"full": true}),
                    done: false,
                    cursor: Value::Null,
                });
            }
            Err(e) => return Err(from_service(e)),
        };
        let records: Vec<RemoteRecord> = answer.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| event_record(user, e.clone()))
            .collect();
        if let Some(next) = answer.body["nextPageToken"].as_str() {
            return Ok(Page {
                records,
                position: json!({"full": full, "page_token": next}),
                done: false,
                cursor: Value::Null,
            });
        }
        let token = answer.body["nextSyncToken"]
            .as_str()
            .ok_or_else(|| bad("Calendar's last page gave no nextSyncToken"))?;
        Ok(Page {
            records,
            position: json!({"full": full}),
            done: true,
            cursor: json!({"sync_token": token}),
        })
    }

    async fn remote_ids(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(None)
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        let (user, id) = split_id(remote_id)?;
        let call = GoogleCall::get(Api::Calendar, Self::path(Some(id)), "calendar/events.get");
        match self.client.call(conn, user, &call).await {
            Ok(a) => Ok(event_record(user, a.body)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(from_service(e)),
        }
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
        let mut body = event_body(values)?;
        for required in ["summary", "start", "end"] {
            if body.get(required).is_none() {
                return Err(bad(format!("{required} is required")));
            }
        }
        let id = event_id_of(&conn.id, intent_id);
        body["id"] = json!(id);
        let meet = values.get("add_meet") == Some(&Value::Bool(true));
        if meet {
            body["conferenceData"] = json!({"createRequest": {"requestId": id,
                "conferenceSolutionKey": {"type": "hangoutsMeet"}}});
        }
        let mut call = GoogleCall::post(
            Api::Calendar,
            Self::path(None),
            body,
            "calendar/events.insert",
        )
        .query(
            "sendUpdates",
            values
                .get("send_updates")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("all"),
        );
        if meet {
            call = call.query("conferenceDataVersion", "1");
        }
        match self.client.call(conn, &user, &call).await {
            Ok(a) => event_record(&user, a.body).ok_or_else(|| bad("Calendar answered no event")),
            Err(e)
                if e.code == ErrorCode::AlreadyExists
                    || e.upstream_code.as_deref() == Some("duplicate") =>
            {
                // a retried insert: the first one is the answer
                self.fetch(conn, &format!("{user}/{id}"))
                    .await?
                    .ok_or_else(|| bad("the event of this intent was deleted"))
            }
            Err(e) => Err(from_service(e)),
        }
    }

    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        let (user, id) = split_id(remote_id)?;
        let call = GoogleCall {
            method: http::Method::PATCH,
            idempotent: true,
            ..GoogleCall::post(
                Api::Calendar,
                Self::path(Some(id)),
                event_body(values)?,
                "calendar/events.patch",
            )
        };
        let a = self
            .client
            .call(conn, user, &call)
            .await
            .map_err(from_service)?;
        event_record(user, a.body).ok_or_else(|| bad("Calendar answered no event"))
    }

    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError> {
        let (user, id) = split_id(remote_id)?;
        let call = GoogleCall {
            method: http::Method::DELETE,
            ..GoogleCall::get(
                Api::Calendar,
                Self::path(Some(id)),
                "calendar/events.delete",
            )
        };
        match self.client.call(conn, user, &call).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(from_service(e)),
        }
    }
}

// ---------------------------------------------------------------------------- Drive

pub struct DriveFiles {
    client: GoogleClient,
}

fn file_record(user: &str, mut f: Value, removed: bool) -> Option<RemoteRecord> {
    let id = f.get("id")?.as_str()?.to_string();
    let deleted = removed || f["trashed"] == true;
    f["user"] = json!(user);
    Some(RemoteRecord {
        id: format!("{user}/{id}"),
        version: time(&f["modifiedTime"]).map(Version::Time),
        raw: f,
        deleted,
    })
}

#[async_trait]
impl EntityAdapter for DriveFiles {
    fn entity(&self) -> &'static str {
        "drive_file"
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::parse(&fields(vec![
            rename("id", "id"),
            rename("user", "user"),
            rename("name", "name"),
            optional("mime_type", "mimeType"),
            optional("size", "size"),
            optional("parent_ids", "parents"),
            optional("web_view_link", "webViewLink"),
            optional("md5_checksum", "md5Checksum"),
            optional("description", "description"),
            datetime("modified_time", "modifiedTime", "rfc3339"),
        ]))
        .unwrap_or_else(|_| Mapping::identity(&["id"]))
    }

    async fn partitions(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(Some(synced_users(&conn.config)))
    }

    fn refetchable(&self) -> bool {
        // an upload has no key of the caller's to find it by: its answer is kept instead
        false
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let user = req.partition.as_str();
        let cursor = match req.mode {
            Mode::Full => None,
            Mode::Incremental => req
                .cursor
                .as_ref()
                .and_then(|c| c.get("page_token"))
                .and_then(Value::as_str)
                .map(String::from),
        };
        let mut pos = req.position.clone().unwrap_or(json!({}));
        let size = req.page_size.clamp(1, 1000).to_string();
        match cursor {
            None => {
                // a full listing; the changes feed's start is taken first
                if pos["start"].as_str().is_none() {
                    let a = self
                        .client
                        .call(
                            conn,
                            user,
                            &GoogleCall::get(
                                Api::Drive,
                                "/drive/v3/changes/startPageToken",
                                "drive/changes.getStartPageToken",
                            ),
                        )
                        .await
                        .map_err(from_service)?;
                    pos["start"] = json!(text(&a.body, "startPageToken"));
                }
                let mut call = GoogleCall::get(Api::Drive, "/drive/v3/files", "drive/files.list")
                    .query("pageSize", size)
                    .query("q", "trashed = false")
                    .query("fields", format!("nextPageToken,files({FILE_FIELDS})"));
                if let Some(p) = pos["page_token"].as_str() {
                    call = call.query("pageToken", p);
                }
                let a = self
                    .client
                    .call(conn, user, &call)
                    .await
                    .map_err(from_service)?;
                let records = a.body["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| file_record(user, f.clone(), false))
                    .collect();
                match a.body["nextPageToken"].as_str() {
                    Some(next) => {
                        pos["page_token"] = json!(next);
                        Ok(Page {
                            records,
                            position: pos,
                            done: false,
                            cursor: Value::Null,
                        })
                    }
                    None => Ok(Page {
                        records,
                        cursor: json!({"page_token": pos["start"]}),
                        position: pos,
                        done: true,
                    }),
                }
            }
            Some(start) => {
                let token = pos["page_token"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or(start);
                let call = GoogleCall::get(Api::Drive, "/drive/v3/changes", "drive/changes.list")
                    .query("pageToken", token)
                    .query("pageSize", size)
                    .query(
                        "fields",
                        format!("nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))"),
                    );
                let a = self
                    .client
                    .call(conn, user, &call)
                    .await
                    .map_err(from_service)?;
                let records = a.body["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        let removed = c["removed"] == true;
                        let file = match c.get("file") {
                            Some(f) if f.is_object() => f.clone(),
                            _ => json!({"id": c["fileId"]}),
                        };
                        file_record(user, file, removed)
                    })
                    .collect();
                if let Some(next) = a.body["nextPageToken"].as_str() {
                    return Ok(Page {
                        records,
                        position: json!({"page_token": next}),
                        done: false,
                        cursor: Value::Null,
                    });
                }
                let new_start = a.body["newStartPageToken"]
                    .as_str()
                    .ok_or_else(|| bad("Drive's last changes page gave no newStartPageToken"))?;
                Ok(Page {
                    records,
                    position: json!({}),
                    done: true,
                    cursor: json!({"page_token": new_start}),
                })
            }
        }
    }

    async fn remote_ids(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(None)
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        let (user, id) = split_id(remote_id)?;
        let call = GoogleCall::get(
            Api::Drive,
            format!("/drive/v3/files/{id}"),
            "drive/files.get",
        )
        .query("fields", FILE_FIELDS);
        match self.client.call(conn, user, &call).await {
            Ok(a) => Ok(file_record(user, a.body, false)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(from_service(e)),
        }
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        _intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let user = self
            .client
            .acting_user(
                conn,
                values.get("user").and_then(Value::as_str).unwrap_or(""),
            )
            .map_err(SyncError::Permanent)?;
        let content = values
            .get("content_base64")
            .and_then(Value::as_str)
            .and_then(|c| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(c).ok()
            })
            .ok_or_else(|| bad("content is required"))?;
        let file = NewFile {
            name: text(values, "name"),
            mime_type: Some(text(values, "mime_type"))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "application/octet-stream".into()),
            parents: values
                .get("parent_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            description: text(values, "description"),
            content,
        };
        let body = self
            .client
            .calls()
            .tracked(
                conn,
                "drive/files.create",
                upload::upload(&self.client, conn, &user, &file),
            )
            .await
            .map_err(from_service)?;
        file_record(&user, body, false).ok_or_else(|| bad("Drive answered no file"))
    }

    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        let (user, id) = split_id(remote_id)?;
        let mut body = json!({});
        for (canon, google) in [("name", "name"), ("description", "description")] {
            if let Some(s) = values.get(canon).and_then(Value::as_str) {
                body[google] = json!(s);
            }
        }
        let call = GoogleCall {
            method: http::Method::PATCH,
            idempotent: true,
            ..GoogleCall::post(
                Api::Drive,
                format!("/drive/v3/files/{id}"),
                body,
                "drive/files.update",
            )
        }
        .query("fields", FILE_FIELDS);
        let a = self
            .client
            .call(conn, user, &call)
            .await
            .map_err(from_service)?;
        file_record(user, a.body, false).ok_or_else(|| bad("Drive answered no file"))
    }

    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError> {
        let (user, id) = split_id(remote_id)?;
        let call = GoogleCall {
            method: http::Method::DELETE,
            ..GoogleCall::get(
                Api::Drive,
                format!("/drive/v3/files/{id}"),
                "drive/files.delete",
            )
        };
        match self.client.call(conn, user, &call).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(from_service(e)),
        }
    }
}

// ---------------------------------------------------------------------------- Directory

pub struct DirectoryUsers {
    client: GoogleClient,
}

fn user_record(u: Value) -> Option<RemoteRecord> {
    let id = u.get("id")?.as_str()?.to_string();
    Some(RemoteRecord {
        id,
        version: u
            .get("etag")
            .and_then(Value::as_str)
            .map(|e| Version::Tag(e.to_string())),
        raw: u,
        deleted: false,
    })
}

impl DirectoryUsers {
    async fn page(
        &self,
        conn: &ConnectionRecord,
        token: Option<&str>,
        size: usize,
    ) -> Result<(Vec<Value>, Option<String>), ServiceError> {
        let admin = subject_of(&conn.config).to_string();
        let mut call = GoogleCall::get(
            Api::Directory,
            "/admin/directory/v1/users",
            "directory/users.list",
        )
        .query("customer", "my_customer")
        .query("maxResults", size.clamp(1, 500).to_string())
        .query("orderBy", "email");
        if let Some(t) = token {
            call = call.query("pageToken", t);
        }
        let a = self.client.call(conn, &admin, &call).await?;
        Ok((
            a.body["users"].as_array().cloned().unwrap_or_default(),
            a.body["nextPageToken"].as_str().map(String::from),
        ))
    }
}

#[async_trait]
impl EntityAdapter for DirectoryUsers {
    fn entity(&self) -> &'static str {
        "directory_user"
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::parse(&fields(vec![
            rename("id", "id"),
            rename("primary_email", "primaryEmail"),
            optional("given_name", "name.givenName"),
            optional("family_name", "name.familyName"),
            optional("full_name", "name.fullName"),
            rename("is_admin", "isAdmin"),
            rename("suspended", "suspended"),
            optional("org_unit_path", "orgUnitPath"),
            datetime("creation_time", "creationTime", "rfc3339"),
        ]))
        .unwrap_or_else(|_| Mapping::identity(&["id"]))
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let token = req
            .position
            .as_ref()
            .and_then(|p| p.get("page_token"))
            .and_then(Value::as_str);
        let (users, next) = self
            .page(conn, token, req.page_size)
            .await
            .map_err(from_service)?;
        let records = users.into_iter().filter_map(user_record).collect();
        Ok(match next {
            Some(n) => Page {
                records,
                position: json!({"page_token": n}),
                done: false,
                cursor: Value::Null,
            },
            None => Page {
                records,
                position: json!({}),
                done: true,
                cursor: json!({"listed_at": Utc::now().to_rfc3339()}),
            },
        })
    }

    async fn remote_ids(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (users, next) = self
                .page(conn, token.as_deref(), 500)
                .await
                .map_err(from_service)?;
            ids.extend(
                users
                    .iter()
                    .filter_map(|u| u["id"].as_str().map(String::from)),
            );
            match next {
                Some(n) => token = Some(n),
                None => return Ok(Some(ids)),
            }
        }
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        if remote_id.is_empty()
            || !remote_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@.-_".contains(&b))
        {
            return Err(bad("not a Directory user id"));
        }
        let admin = subject_of(&conn.config).to_string();
        let call = GoogleCall::get(
            Api::Directory,
            format!("/admin/directory/v1/users/{remote_id}"),
            "directory/users.get",
        );
        match self.client.call(conn, &admin, &call).await {
            Ok(a) => Ok(user_record(a.body)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(from_service(e)),
        }
    }

    async fn create(
        &self,
        _c: &ConnectionRecord,
        _v: &Value,
        _i: &str,
    ) -> Result<RemoteRecord, SyncError> {
        Err(read_only("directory_user"))
    }

    async fn update(
        &self,
        _c: &ConnectionRecord,
        _r: &str,
        _v: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        Err(read_only("directory_user"))
    }

    async fn delete(&self, _c: &ConnectionRecord, _r: &str) -> Result<(), SyncError> {
        Err(read_only("directory_user"))
    }
}

fn read_only(entity: &str) -> SyncError {
    SyncError::Permanent(ServiceError::new(
        "google-workspace",
        ErrorCode::InvalidRequest,
        format!("{entity} is synced one way: the fleet reads the Directory, it does not change it"),
    ))
}

// ---------------------------------------------------------------------------- Gmail

pub struct GmailMessages {
    client: GoogleClient,
}

/// A message read with `format=metadata` as a record: its headers flattened (`from`, `to`,
/// `subject`, `message_id_header`), versioned by its history id.
fn message_record(user: &str, m: &Value) -> Option<RemoteRecord> {
    let id = m.get("id")?.as_str()?.to_string();
    let header = |name: &str| {
        m["payload"]["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| {
                h["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h["value"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let raw = json!({
        "id": id, "threadId": m["threadId"], "labelIds": m["labelIds"], "user": user,
        "from": mime::header_addresses(&header("From")),
        "to": mime::header_addresses(&header("To")), "subject": header("Subject"),
        "message_id_header": header("Message-ID").trim_matches(['<', '>']),
        "snippet": m["snippet"], "internalDate": m["internalDate"],
    });
    Some(RemoteRecord {
        id: format!("{user}/{id}"),
        version: m["historyId"]
            .as_str()
            .and_then(|h| h.parse::<i64>().ok())
            .map(Version::Sequence),
        raw,
        deleted: false,
    })
}

impl GmailMessages {
    async fn metadata(
        &self,
        conn: &ConnectionRecord,
        user: &str,
        id: &str,
    ) -> Result<Option<RemoteRecord>, ServiceError> {
        let call = GoogleCall::get(
            Api::Gmail,
            format!("/gmail/v1/users/{user}/messages/{id}"),
            "gmail/messages.get",
        )
        .query("format", "metadata")
        .query("metadataHeaders", "From")
        .query("metadataHeaders", "To")
        .query("metadataHeaders", "Subject")
        .query("metadataHeaders", "Message-ID");
        match self.client.call(conn, user, &call).await {
            Ok(a) => Ok(message_record(user, &a.body)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The mailbox's current history id (where the next incremental run starts).
    async fn current(&self, conn: &ConnectionRecord, user: &str) -> Result<String, ServiceError> {
        let a = self
            .client
            .call(
                conn,
                user,
                &GoogleCall::get(
                    Api::Gmail,
                    format!("/gmail/v1/users/{user}/profile"),
                    "gmail/users.getProfile",
                ),
            )
            .await?;
        Ok(text(&a.body, "historyId"))
    }

    /// One page of the whole mailbox (a full run, or after history was lost).
    async fn list_page(
        &self,
        conn: &ConnectionRecord,
        user: &str,
        req: &PullRequest,
        mut pos: Value,
    ) -> Result<Page, SyncError> {
        if pos["start"].as_str().is_none() {
            pos["start"] = json!(self.current(conn, user).await.map_err(from_service)?);
        }
        let mut call = GoogleCall::get(
            Api::Gmail,
            format!("/gmail/v1/users/{user}/messages"),
            "gmail/messages.list",
        )
        .query("maxResults", req.page_size.clamp(1, 500).to_string());
        if let Some(p) = pos["page_token"].as_str() {
            call = call.query("pageToken", p);
        }
        let a = self
            .client
            .call(conn, user, &call)
            .await
            .map_err(from_service)?;
        let mut records = Vec::new();
        for m in a.body["messages"].as_array().into_iter().flatten() {
            if let Some(id) = m["id"].as_str() {
                if let Some(r) = self.metadata(conn, user, id).await.map_err(from_service)? {
                    records.push(r);
                }
            }
        }
        match a.body["nextPageToken"].as_str() {
            Some(next) => {
                pos["page_token"] = json!(next);
                Ok(Page {
                    records,
                    position: pos,
                    done: false,
                    cursor: Value::Null,
                })
            }
            None => Ok(Page {
                records,
                cursor: json!({"history_id": pos["start"]}),
                position: pos,
                done: true,
            }),
        }
    }
}

#[async_trait]
impl EntityAdapter for GmailMessages {
    fn entity(&self) -> &'static str {
        "gmail_message"
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::parse(&fields(vec![
            rename("id", "id"),
            optional("thread_id", "threadId"),
            optional("label_ids", "labelIds"),
            rename("user", "user"),
            optional("from", "from"),
            optional("to", "to"),
            optional("subject", "subject"),
            optional("snippet", "snippet"),
            optional("message_id_header", "message_id_header"),
        ]))
        .unwrap_or_else(|_| Mapping::identity(&["id"]))
    }

    async fn partitions(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(Some(synced_users(&conn.config)))
    }

    fn refetchable(&self) -> bool {
        // a sent message's answer is kept, so a retried send answers it without a read
        false
    }

    /// A full run lists the mailbox (taking the history id first); an incremental one reads
    /// the history since the cursor: added messages are read, deleted ones are tombstones.
    /// A history start Gmail no longer keeps (404) lists this mailbox again, no other.
    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let user = req.partition.as_str();
        let pos = req.position.clone().unwrap_or(json!({}));
        let start = match req.mode {
            Mode::Full => None,
            Mode::Incremental => req
                .cursor
                .as_ref()
                .and_then(|c| c.get("history_id"))
                .and_then(Value::as_str)
                .map(String::from),
        };
        let Some(start) = start.filter(|_| pos["full"] != true) else {
            let mut pos = pos;
            pos["full"] = json!(true);
            return self.list_page(conn, user, req, pos).await;
        };
        let mut call = GoogleCall::get(
            Api::Gmail,
            format!("/gmail/v1/users/{user}/history"),
            "gmail/history.list",
        )
        .query("startHistoryId", start)
        .query("maxResults", req.page_size.clamp(1, 500).to_string());
        if let Some(p) = pos["page_token"].as_str() {
            call = call.query("pageToken", p);
        }
        let a = match self.client.call(conn, user, &call).await {
            Ok(a) => a,
            Err(e) if e.code == ErrorCode::NotFound => {
                tracing::info!(connection = %conn.id, user, "Gmail no longer keeps the history since the cursor: this mailbox is listed again");
                return Ok(Page {
                    records: Vec::new(),
                    position: json!({"full": true}),
                    done: false,
                    cursor: Value::Null,
                });
            }
            Err(e) => return Err(from_service(e)),
        };
        let mut records = Vec::new();
        for h in a.body["history"].as_array().into_iter().flatten() {
            for added in h["messagesAdded"].as_array().into_iter().flatten() {
                if let Some(id) = added["message"]["id"].as_str() {
                    // gone again since: its deletion follows in the history
                    if let Some(r) = self.metadata(conn, user, id).await.map_err(from_service)? {
                        records.push(r);
                    }
                }
            }
            for deleted in h["messagesDeleted"].as_array().into_iter().flatten() {
                if let Some(id) = deleted["message"]["id"].as_str() {
                    records.push(RemoteRecord {
                        id: format!("{user}/{id}"),
                        version: None,
                        raw: json!({"id": id, "user": user}),
                        deleted: true,
                    });
                }
            }
        }
        if let Some(next) = a.body["nextPageToken"].as_str() {
            return Ok(Page {
                records,
                position: json!({"page_token": next}),
                done: false,
                cursor: Value::Null,
            });
        }
        Ok(Page {
            records,
            position: json!({}),
            done: true,
            cursor: json!({"history_id": text(&a.body, "historyId")}),
        })
    }

    async fn remote_ids(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(None)
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        let (user, id) = split_id(remote_id)?;
        self.metadata(conn, user, id).await.map_err(from_service)
    }

    /// Sends the message, then reads it back as a pull would, so the next pull finds
    /// nothing new in it.
    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let req: bac_proto::google_workspace::v1::SendMessageRequest =
            serde_json::from_value(values.get("request").cloned().unwrap_or(Value::Null))
                .map_err(|e| bad(format!("the message: {e}")))?;
        let user = self
            .client
            .acting_user(
                conn,
                values.get("user").and_then(Value::as_str).unwrap_or(""),
            )
            .map_err(SyncError::Permanent)?;
        let message_id = format!("{}@bac.integrations", event_id_of(&conn.id, intent_id));
        let built = mime::build(&req, &user, &message_id).map_err(SyncError::Permanent)?;
        let call = GoogleCall::post(
            Api::Gmail,
            format!("/gmail/v1/users/{user}/messages/send"),
            json!({"raw": mime::raw(&built)}),
            "gmail/messages.send",
        );
        let a = self
            .client
            .call(conn, &user, &call)
            .await
            .map_err(from_service)?;
        let id = text(&a.body, "id");
        if id.is_empty() {
            return Err(bad("Gmail answered no message id"));
        }
        match self.metadata(conn, &user, &id).await {
            Ok(Some(r)) => Ok(r),
            // sent; the read back failed: the answer Gmail gave is the record
            _ => Ok(RemoteRecord {
                id: format!("{user}/{id}"),
                version: None,
                raw: json!({
                    "id": id, "threadId": a.body["threadId"], "labelIds": a.body["labelIds"],
                    "user": user, "to": req.to, "subject": req.subject,
                    "message_id_header": message_id,
                }),
                deleted: false,
            }),
        }
    }

    async fn update(
        &self,
        _c: &ConnectionRecord,
        _r: &str,
        _v: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        Err(bad("a message cannot be changed"))
    }

    async fn delete(&self, _c: &ConnectionRecord, _r: &str) -> Result<(), SyncError> {
        Err(bad("the fleet does not delete mail"))
    }
}

pub fn adapters(client: &GoogleClient) -> Vec<Arc<dyn EntityAdapter>> {
    vec![
        Arc::new(CalendarEvents {
            client: client.clone(),
        }),
        Arc::new(DriveFiles {
            client: client.clone(),
        }),
        Arc::new(DirectoryUsers {
            client: client.clone(),
        }),
        Arc::new(GmailMessages {
            client: client.clone(),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_makes_a_valid_event_id_the_same_every_time() {
        let a = event_id_of("con_1", "intent-1");
        assert_eq!(a, event_id_of("con_1", "intent-1"));
        assert_ne!(a, event_id_of("con_2", "intent-1"));
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)));
        assert!((5..=1024).contains(&a.len()));
    }

    #[test]
    fn canonical_events_become_googles_body() {
        let b = event_body(
            &json!({"summary": "Review", "start": "2026-12-10T10:00:00+05:30",
            "end": "2026-12-10T11:00:00+05:30", "time_zone": "Asia/Kolkata",
            "attendees": [{"email": "ada@example.com", "optional": true}]}),
        )
        .unwrap();
        assert_eq!(b["start"]["timeZone"], "Asia/Kolkata");
        assert_eq!(b["attendees"][0]["optional"], true);
        assert!(event_body(&json!({"start": "tomorrow"})).is_err());
        assert!(event_body(&json!({"attendees": [{"name": "x"}]})).is_err());
    }

    #[test]
    fn partitioned_ids_name_their_user() {
        assert_eq!(
            split_id("ada@example.com/abc").unwrap(),
            ("ada@example.com", "abc")
        );
        assert!(split_id("abc").is_err());
        assert!(split_id("ada@example.com/a/b").is_err());
    }
}
