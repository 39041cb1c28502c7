//! Gmail's messages as `gmail.v1`'s discovery document describes them:
//! `POST /gmail/v1/users/{userId}/messages/send` (a `Message` with `raw`, an RFC 5322 message
//! in base64url), `GET /gmail/v1/users/{userId}/messages` (`maxResults`, `pageToken`, `q`,
//! `labelIds`; newest first) and `GET .../messages/{id}` (`format`: `minimal`, `full`, `raw`,
//! `metadata`). `userId` is `me` or the token's own user (a service account acts for the
//! user it asked a token for); the scopes are the ones the document lists per method.
//! Sent messages are kept per user, labelled `SENT`; the sandbox parses only the headers it
//! needs (recipients, subject), which is where Gmail refuses a message too.
//!
//! Every change of a mailbox gets the next history id: `GET .../profile` says the current
//! one, `GET .../history?startHistoryId=` lists the changes after it (`messagesAdded`,
//! `messagesDeleted`) and answers `404` for a start older than the history Gmail keeps, which
//! `POST /_sandbox/google/gmail/{user}/expire-history` forgets at once. `DELETE
//! .../messages/{id}` deletes; `POST /_sandbox/google/gmail/{user}/deliver` (`{"raw": "<RFC
//! 5322 text>"}`) delivers a message to the user's inbox, as mail from outside arrives.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::{OAuthServer, SandboxClock};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::{google_error, has_scope, scope_insufficient, unauthenticated};

const FULL: &str = "https://mail.google.com/";
const MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
const SEND: &str = "https://www.googleapis.com/auth/gmail.send";
const COMPOSE: &str = "https://www.googleapis.com/auth/gmail.compose";
const READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
const METADATA: &str = "https://www.googleapis.com/auth/gmail.metadata";

/// One stored message.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    thread_id: String,
    labels: Vec<String>,
    raw: Vec<u8>,
    internal_ms: i64,
    history_id: u64,
}

/// A mailbox's change log.
#[derive(Debug, Default)]
struct History {
    /// The last history id given (0: none yet; ids start at 1000).
    last: u64,
    /// (history id, "added" | "deleted", message id, thread id, labels).
    records: Vec<(u64, &'static str, String, String, Vec<String>)>,
    /// Starts below this are too old: 404.
    floor: u64,
}

impl History {
    fn next(&mut self) -> u64 {
        self.last = self.last.max(999) + 1;
        self.last
    }
}

/// The mailboxes of the domain.
#[derive(Clone)]
pub struct Gmail {
    oauth: OAuthServer,
    clock: SandboxClock,
    boxes: Arc<Mutex<HashMap<String, Vec<Message>>>>,
    history: Arc<Mutex<HashMap<String, History>>>,
}

impl Gmail {
    pub fn new(oauth: OAuthServer, clock: SandboxClock) -> Gmail {
        Gmail {
            oauth,
            clock,
            boxes: Arc::default(),
            history: Arc::default(),
        }
    }

    /// Stores a message in `user`'s mailbox with the next history id; the message.
    fn store(
        &self,
        user: &str,
        raw: Vec<u8>,
        labels: Vec<String>,
        thread: Option<&str>,
    ) -> Option<Message> {
        let mut boxes = self.boxes.lock().ok()?;
        let mut history = self.history.lock().ok()?;
        let mailbox = boxes.entry(user.to_string()).or_default();
        let h = history.entry(user.to_string()).or_default();
        let id = new_id();
        let thread_id = thread
            .filter(|t| mailbox.iter().any(|m| m.thread_id == *t))
            .map(str::to_string)
            .unwrap_or_else(|| id.clone());
        let history_id = h.next();
        h.records.push((
            history_id,
            "added",
            id.clone(),
            thread_id.clone(),
            labels.clone(),
        ));
        let m = Message {
            id,
            thread_id,
            labels,
            raw,
            internal_ms: self.clock.now() * 1000,
            history_id,
        };
        mailbox.push(m.clone());
        Some(m)
    }

    /// The mailbox a call may use, its token's scopes checked: the user, or Google's answer.
    fn mailbox(
        &self,
        headers: &HeaderMap,
        user_id: &str,
        scopes: &[&str],
        method: &str,
    ) -> Result<String, Response> {
        let Some(token) = self.oauth.check_bearer(headers) else {
            return Err(unauthenticated());
        };
        if !has_scope(&token.scope, scopes) {
            return Err(scope_insufficient("gmail.googleapis.com", method));
        }
        let user = if user_id == "me" {
            token.subject.clone()
        } else {
            user_id.to_string()
        };
        if user != token.subject {
            return Err(google_error(
                StatusCode::FORBIDDEN,
                &format!("Delegation denied for {}", token.subject),
                "forbidden",
                Value::Null,
            ));
        }
        Ok(user)
    }
}

pub fn router(gmail: Gmail) -> Router {
    Router::new()
        .route("/gmail/v1/users/:user/messages/send", post(send))
        .route("/gmail/v1/users/:user/messages", get(list))
        .route(
            "/gmail/v1/users/:user/messages/:id",
            get(get_one).delete(delete_one),
        )
        .route("/gmail/v1/users/:user/profile", get(profile))
        .route("/gmail/v1/users/:user/history", get(history))
        .route("/_sandbox/google/gmail/:user", get(mailbox_dump))
        .route("/_sandbox/google/gmail/:user/deliver", post(deliver))
        .route(
            "/_sandbox/google/gmail/:user/expire-history",
            post(expire_history),
        )
        .with_state(gmail)
}

/// The header fields of an RFC 5322 message (unfolded), and where its body starts.
fn header_fields(raw: &[u8]) -> (Vec<(String, String)>, usize) {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            return (fields, offset);
        }
        if l.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (fields, raw.len())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn decode_raw(raw: &str) -> Option<Vec<u8>> {
    let trimmed = raw.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>() >> 4)
}

async fn send(
    State(g): State<Gmail>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match g.mailbox(
        &headers,
        &user,
        &[SEND, COMPOSE, MODIFY, FULL],
        "caribou.api.proto.MailboxService.SendMessage",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        );
    };
    let Some(raw) = v["raw"].as_str() else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            "invalidArgument",
            Value::Null,
        );
    };
    let Some(bytes) = decode_raw(raw) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Invalid value for ByteString: raw",
            "invalid",
            Value::Null,
        );
    };
    let (fields, _) = header_fields(&bytes);
    let has_recipient = ["To", "Cc", "Bcc"]
        .iter()
        .any(|h| field(&fields, h).is_some_and(|v| v.contains('@')));
    if !has_recipient {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Recipient address required",
            "invalidArgument",
            Value::Null,
        );
    }
    let Some(m) = g.store(&user, bytes, vec!["SENT".into()], v["threadId"].as_str()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    Json(json!({"id": m.id, "threadId": m.thread_id, "labelIds": m.labels})).into_response()
}

fn not_found() -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "Requested entity was not found.",
        "notFound",
        Value::Null,
    )
}

/// `GET .../profile`: the address and the current history id.
async fn profile(State(g): State<Gmail>, Path(user): Path<String>, headers: HeaderMap) -> Response {
    let user = match g.mailbox(
        &headers,
        &user,
        &[READONLY, MODIFY, FULL, METADATA, COMPOSE],
        "caribou.api.proto.MailboxService.GetProfile",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let total = g
        .boxes
        .lock()
        .map(|b| b.get(&user).map_or(0, Vec::len))
        .unwrap_or(0);
    let last = g
        .history
        .lock()
        .map(|h| h.get(&user).map_or(999, |h| h.last.max(999)))
        .unwrap_or(999);
    Json(
        json!({"emailAddress": user, "messagesTotal": total, "threadsTotal": total,
                "historyId": last.to_string()}),
    )
    .into_response()
}

/// `GET .../history`: the changes after `startHistoryId`, oldest first, paged.
async fn history(
    State(g): State<Gmail>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match g.mailbox(
        &headers,
        &user,
        &[READONLY, MODIFY, FULL, METADATA],
        "caribou.api.proto.HistoryService.ListHistory",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(Ok(start)) = q.get("startHistoryId").map(|s| s.parse::<u64>()) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Missing or invalid startHistoryId",
            "invalidArgument",
            Value::Null,
        );
    };
    let max = q
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let from = q
        .get("pageToken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let Ok(all) = g.history.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let h = all.get(&user);
    let (last, floor) = h.map_or((999, 0), |h| (h.last.max(999), h.floor));
    if start < floor {
        return not_found();
    }
    let after: Vec<&(u64, &'static str, String, String, Vec<String>)> = h
        .map(|h| h.records.iter().filter(|r| r.0 > start).collect())
        .unwrap_or_default();
    let page: Vec<Value> = after
        .iter()
        .skip(from)
        .take(max)
        .map(|(id, kind, mid, tid, labels)| {
            let m = json!({"id": mid, "threadId": tid, "labelIds": labels});
            let key = if *kind == "added" {
                "messagesAdded"
            } else {
                "messagesDeleted"
            };
            json!({"id": id.to_string(), "messages": [{"id": mid, "threadId": tid}],
                   key: [{"message": m}]})
        })
        .collect();
    let mut out = json!({"historyId": last.to_string()});
    if !page.is_empty() {
        out["history"] = json!(page);
    }
    if from + max < after.len() {
        out["nextPageToken"] = json!((from + max).to_string());
    }
    Json(out).into_response()
}

/// `DELETE .../messages/{id}`: gone at once (not to the trash), a `messagesDeleted` record.
async fn delete_one(
    State(g): State<Gmail>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let user = match g.mailbox(
        &headers,
        &user,
        &[FULL],
        "caribou.api.proto.MailboxService.DeleteMessage",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (Ok(mut boxes), Ok(mut history)) = (g.boxes.lock(), g.history.lock()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(mailbox) = boxes.get_mut(&user) else {
        return not_found();
    };
    let Some(at) = mailbox.iter().position(|m| m.id == id) else {
        return not_found();
    };
    let m = mailbox.remove(at);
    let h = history.entry(user).or_default();
    let hid = h.next();
    h.records
        .push((hid, "deleted", m.id, m.thread_id, m.labels));
    StatusCode::NO_CONTENT.into_response()
}

/// Admin: `{"raw": "<RFC 5322 text>"}` arrives in the user's inbox.
async fn deliver(
    State(g): State<Gmail>,
    Path(user): Path<String>,
    Json(v): Json<Value>,
) -> Response {
    let Some(raw) = v["raw"].as_str() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match g.store(
        &user,
        raw.as_bytes().to_vec(),
        vec!["INBOX".into(), "UNREAD".into()],
        None,
    ) {
        Some(m) => Json(
            json!({"id": m.id, "threadId": m.thread_id, "historyId": m.history_id.to_string()}),
        )
        .into_response(),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Admin: every history id given so far is too old from now on.
async fn expire_history(State(g): State<Gmail>, Path(user): Path<String>) -> StatusCode {
    match g.history.lock() {
        Ok(mut all) => {
            let h = all.entry(user).or_default();
            h.floor = h.last.max(999) + 1;
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Gmail's search operators the sandbox understands: `subject:`, `to:`, `from:`, free words
/// (anywhere in the headers).
fn matches(m: &Message, q: &str) -> bool {
    let (fields, _) = header_fields(&m.raw);
    q.split_whitespace().all(|term| {
        let (name, want) = match term.split_once(':') {
            Some((n, w)) if ["subject", "to", "from"].contains(&n) => (Some(n), w),
            _ => (None, term),
        };
        let want = want.trim_matches('"').to_lowercase();
        match name {
            Some(n) => field(&fields, n).is_some_and(|v| v.to_lowercase().contains(&want)),
            None => fields.iter().any(|(_, v)| v.to_lowercase().contains(&want)),
        }
    })
}

async fn list(
    State(g): State<Gmail>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match g.mailbox(
        &headers,
        &user,
        &[READONLY, MODIFY, FULL, METADATA],
        "caribou.api.proto.MailboxService.ListMessages",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let max = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid maxResults",
                "invalid",
                Value::Null,
            )
        }
    };
    let from = match q.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid pageToken",
                "invalid",
                Value::Null,
            )
        }
    };
    let query = q.get("q").cloned().unwrap_or_default();
    let label = q.get("labelIds").cloned();
    let Ok(boxes) = g.boxes.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let all: Vec<&Message> = boxes
        .get(&user)
        .map(|b| b.iter().rev().collect())
        .unwrap_or_default();
    let hits: Vec<&Message> = all
        .into_iter()
        .filter(|m| label.as_ref().is_none_or(|l| m.labels.contains(l)))
        .filter(|m| matches(m, &query))
        .collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(from)
        .take(max)
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
        .collect();
    let mut out = json!({"resultSizeEstimate": hits.len()});
    if !page.is_empty() {
        out["messages"] = json!(page);
    }
    if from + max < hits.len() {
        out["nextPageToken"] = json!((from + max).to_string());
    }
    Json(out).into_response()
}

async fn get_one(
    State(g): State<Gmail>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let format = q.get("format").map(String::as_str).unwrap_or("full");
    if !["minimal", "full", "raw", "metadata"].contains(&format) {
        return google_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid value at 'format' ({format})"),
            "invalid",
            Value::Null,
        );
    }
    // the metadata scope reads headers only
    let scopes: &[&str] = if matches!(format, "metadata" | "minimal") {
        &[READONLY, MODIFY, FULL, METADATA]
    } else {
        &[READONLY, MODIFY, FULL]
    };
    let user = match g.mailbox(
        &headers,
        &user,
        scopes,
        "caribou.api.proto.MailboxService.GetMessage",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(boxes) = g.boxes.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(m) = boxes.get(&user).and_then(|b| b.iter().find(|m| m.id == id)) else {
        return google_error(
            StatusCode::NOT_FOUND,
            "Requested entity was not found.",
            "notFound",
            Value::Null,
        );
    };
    Json(render(m, format)).into_response()
}

fn render(m: &Message, format: &str) -> Value {
    let (fields, body_at) = header_fields(&m.raw);
    let body = &m.raw[body_at.min(m.raw.len())..];
    let snippet: String = String::from_utf8_lossy(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(100)
        .collect();
    let mut out = json!({
        "id": m.id, "threadId": m.thread_id, "labelIds": m.labels, "snippet": snippet,
        "sizeEstimate": m.raw.len(), "historyId": m.history_id.to_string(),
        "internalDate": m.internal_ms.to_string(),
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE.encode(b);
    match format {
        "raw" => out["raw"] = json!(b64(&m.raw)),
        "full" | "metadata" => {
            let headers: Vec<Value> = fields
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let mime = field(&fields, "Content-Type")
                .and_then(|c| c.split(';').next())
                .unwrap_or("text/plain")
                .trim()
                .to_string();
            let mut payload = json!({"partId": "", "mimeType": mime, "filename": "",
                                     "headers": headers, "body": {"size": body.len()}});
            if format == "full" {
                payload["body"]["data"] = json!(b64(body));
            }
            out["payload"] = payload;
        }
        _ => {}
    }
    out
}

/// What a user's mailbox holds, as the sandbox stores it (tests read it): the messages with
/// their decoded raw text.
async fn mailbox_dump(State(g): State<Gmail>, Path(user): Path<String>) -> Json<Value> {
    let list: Vec<Value> = g
        .boxes
        .lock()
        .map(|b| {
            b.get(&user)
                .map(|msgs| {
                    msgs.iter()
                        .map(|m| {
                            json!({"id": m.id, "threadId": m.thread_id, "labelIds": m.labels,
                                   "raw": String::from_utf8_lossy(&m.raw)})
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Json(json!({"user": user, "messages": list}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_the_body_follows_the_blank_line() {
        let raw = b"To: a@b.c,\r\n  d@e.f\r\nSubject: Hi\r\n\r\nHello\r\n";
        let (f, at) = header_fields(raw);
        assert_eq!(field(&f, "to"), Some("a@b.c, d@e.f"));
        assert_eq!(field(&f, "Subject"), Some("Hi"));
        assert_eq!(&raw[at..], b"Hello\r\n");
        assert!(decode_raw("VG86IGFAYi5j").is_some());
        assert!(decode_raw("***").is_none());
    }
}
