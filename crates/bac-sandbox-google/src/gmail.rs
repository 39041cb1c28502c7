//! Gmail's messages as `gmail.v1`'s discovery document describes them:
//! `POST /gmail/v1/users/{userId}/messages/send` (a `Message` with `raw`, an RFC 5322 message
//! in base64url), `GET /gmail/v1/users/{userId}/messages` (`maxResults`, `pageToken`, `q`,
//! `labelIds`; newest first) and `GET .../messages/{id}` (`format`: `minimal`, `full`, `raw`,
//! `metadata`). `userId` is `me` or the token's own user (a service account acts for the
//! user it asked a token for); the scopes are the ones the document lists per method.
//! Sent messages are kept per user, labelled `SENT`; the sandbox parses only the headers it
//! needs (recipients, subject), which is where Gmail refuses a message too.
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

/// The mailboxes of the domain.
#[derive(Clone)]
pub struct Gmail {
    oauth: OAuthServer,
    clock: SandboxClock,
    boxes: Arc<Mutex<HashMap<String, Vec<Message>>>>,
}

impl Gmail {
    pub fn new(oauth: OAuthServer, clock: SandboxClock) -> Gmail {
        Gmail {
            oauth,
            clock,
            boxes: Arc::default(),
        }
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
        .route("/gmail/v1/users/:user/messages/:id", get(get_one))
        .route("/_sandbox/google/gmail/:user", get(mailbox_dump))
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
    let Ok(mut boxes) = g.boxes.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mailbox = boxes.entry(user).or_default();
    let id = new_id();
    let thread_id = v["threadId"]
        .as_str()
        .filter(|t| mailbox.iter().any(|m| m.thread_id == *t))
        .map(str::to_string)
        .unwrap_or_else(|| id.clone());
    let history_id = mailbox.len() as u64 + 1000;
    mailbox.push(Message {
        id: id.clone(),
        thread_id: thread_id.clone(),
        labels: vec!["SENT".into()],
        raw: bytes,
        internal_ms: g.clock.now() * 1000,
        history_id,
    });
    Json(json!({"id": id, "threadId": thread_id, "labelIds": ["SENT"]})).into_response()
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
