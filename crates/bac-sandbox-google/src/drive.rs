//! Google Drive's files and changes as `drive.v3`'s discovery document describes them:
//! `files.create` as metadata only (`POST /drive/v3/files`), a multipart upload and a
//! resumable upload (`POST /upload/drive/v3/files?uploadType=multipart|resumable`; a
//! resumable session takes `PUT`s with `Content-Range`, answers `308` with the `Range` it
//! holds until the last byte, and says how much it holds to `Content-Range: bytes */total`,
//! so an interrupted upload resumes from the last acknowledged byte), `files.list` (`q` with
//! `name`, `mimeType`, `trashed`, `pageSize`, `pageToken`), `files.get` (`alt=media` for the
//! content), `files.delete`, and the changes feed (`changes/startPageToken`, `changes` with
//! `pageToken`, removals as `removed: true`). Files belong to the token's user.
//!
//! Tests interrupt uploads with `POST /_sandbox/google/drive/interrupt` (`{"chunk": n,
//! "keep_bytes": k}`: the n-th chunk `PUT` from now keeps its first k bytes, rounded down to
//! 256 KiB as Google keeps them, and is answered `503`, as a transfer cut off midway) and read
//! what each session received with `GET /_sandbox/google/drive/uploads`.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::{OAuthServer, SandboxClock};
use serde_json::{json, Map, Value};

use crate::{google_error, has_scope, scope_insufficient, unauthenticated};

const DRIVE: &str = "https://www.googleapis.com/auth/drive";
const FILE: &str = "https://www.googleapis.com/auth/drive.file";
const READONLY: &str = "https://www.googleapis.com/auth/drive.readonly";

/// A resumable session can hold at most this much (the sandbox keeps content in memory).
const MAX_UPLOAD: u64 = 256 * 1024 * 1024;

/// The largest request body of the upload routes (one chunk, or a simple upload).
const CHUNK_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
struct File {
    meta: Map<String, Value>,
    content: Vec<u8>,
    seq: u64,
    removed: bool,
}

#[derive(Debug)]
struct Session {
    owner: String,
    meta: Map<String, Value>,
    total: Option<u64>,
    received: Vec<u8>,
}

#[derive(Debug, Default)]
struct Store {
    /// Per user: file id -> file.
    files: HashMap<String, BTreeMap<String, File>>,
    seq: HashMap<String, u64>,
    sessions: HashMap<String, Session>,
    /// (chunks to let through before the cut, bytes the cut chunk keeps).
    interrupt: Option<(u32, u64)>,
    /// Every chunk `PUT` and status query: what it said and what the session then held.
    log: Vec<Value>,
}

#[derive(Clone)]
pub struct Drive {
    oauth: OAuthServer,
    clock: SandboxClock,
    store: Arc<Mutex<Store>>,
    push: crate::push::Channels,
}

impl Drive {
    pub fn new(oauth: OAuthServer, clock: SandboxClock, push: crate::push::Channels) -> Drive {
        Drive {
            oauth,
            clock,
            store: Arc::default(),
            push,
        }
    }

    fn user(&self, headers: &HeaderMap, write: bool, method: &str) -> Result<String, Response> {
        let Some(token) = self.oauth.check_bearer(headers) else {
            return Err(unauthenticated());
        };
        let scopes: &[&str] = if write {
            &[DRIVE, FILE]
        } else {
            &[DRIVE, FILE, READONLY]
        };
        if !has_scope(&token.scope, scopes) {
            return Err(scope_insufficient("drive.googleapis.com", method));
        }
        Ok(token.subject)
    }

    fn now(&self) -> String {
        chrono::DateTime::from_timestamp(self.clock.now(), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    /// Stores a new file of `owner`; its metadata as Drive answers it.
    fn store_file(&self, owner: &str, meta: Map<String, Value>, content: Vec<u8>) -> Value {
        let id = format!("1{:032x}", rand::random::<u128>() >> 4);
        let now = self.now();
        let mut m = meta;
        m.insert("kind".into(), json!("drive#file"));
        m.insert("id".into(), json!(id));
        if !m.contains_key("name") {
            m.insert("name".into(), json!("Untitled"));
        }
        if !m.contains_key("mimeType") {
            m.insert("mimeType".into(), json!("application/octet-stream"));
        }
        m.insert("size".into(), json!(content.len().to_string()));
        m.insert("createdTime".into(), json!(now));
        m.insert("modifiedTime".into(), json!(now));
        m.insert("trashed".into(), json!(false));
        let Ok(mut s) = self.store.lock() else {
            return Value::Object(m);
        };
        let seq = {
            let n = s.seq.entry(owner.to_string()).or_default();
            *n += 1;
            *n
        };
        s.files.entry(owner.to_string()).or_default().insert(
            id,
            File {
                meta: m.clone(),
                content,
                seq,
                removed: false,
            },
        );
        drop(s);
        self.push.changed(&format!("drive:{owner}"));
        Value::Object(m)
    }
}

pub fn router(drive: Drive) -> Router {
    Router::new()
        .route("/drive/v3/files", post(create_meta).get(list))
        .route("/drive/v3/files/:id", get(get_one).delete(delete_one))
        .route(
            "/upload/drive/v3/files",
            post(upload)
                .put(resume)
                // a request carries a chunk (or a small file) of an upload, not the whole cap
                .layer(axum::extract::DefaultBodyLimit::max(CHUNK_LIMIT)),
        )
        .route("/drive/v3/changes/startPageToken", get(start_token))
        .route("/drive/v3/changes", get(changes))
        .route("/drive/v3/changes/watch", post(watch))
        .route("/drive/v3/channels/stop", post(stop))
        .route("/_sandbox/google/drive/interrupt", post(interrupt))
        .route("/_sandbox/google/drive/uploads", get(uploads))
        .with_state(drive)
}

fn bad(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "invalid", Value::Null)
}

fn not_found(id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        &format!("File not found: {id}."),
        "notFound",
        Value::Null,
    )
}

fn meta_of(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        )),
    }
}

type Params = Query<HashMap<String, String>>;

async fn create_meta(
    State(d): State<Drive>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match d.user(&headers, true, "google.apps.drive.v3.DriveFiles.Create") {
        Ok(u) => u,
        Err(r) => return r,
    };
    match meta_of(&body) {
        Ok(m) => Json(d.store_file(&user, m, Vec::new())).into_response(),
        Err(r) => r,
    }
}

/// The parts of a `multipart/related` body: (headers text, content).
fn related_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<(String, &'a [u8])> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let text_positions: Vec<usize> = body
        .windows(delim.len())
        .enumerate()
        .filter(|(_, w)| *w == delim.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in text_positions.windows(2) {
        let part = &body[pair[0] + delim.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, 4))
            .or_else(|| part.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
        if let Some((at, n)) = split {
            let head = String::from_utf8_lossy(&part[..at]).to_string();
            let mut content = &part[at + n..];
            content = content.strip_suffix(b"\r\n").unwrap_or(content);
            out.push((head, content));
        }
    }
    out
}

async fn upload(
    State(d): State<Drive>,
    headers: HeaderMap,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Response {
    let user = match d.user(&headers, true, "google.apps.drive.v3.DriveFiles.Create") {
        Ok(u) => u,
        Err(r) => return r,
    };
    match q.get("uploadType").map(String::as_str) {
        Some("media") => {
            let mime = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream");
            let mut m = Map::new();
            m.insert("mimeType".into(), json!(mime));
            Json(d.store_file(&user, m, body.to_vec())).into_response()
        }
        Some("multipart") => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let Some(boundary) = ct
                .split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_string())
            else {
                return bad("Multipart upload needs a multipart/related body with a boundary.");
            };
            let parts = related_parts(&body, &boundary);
            let [(_, meta), (head, content)] = parts.as_slice() else {
                return bad("A multipart upload has two parts: the metadata and the media.");
            };
            let mut m = match meta_of(meta) {
                Ok(m) => m,
                Err(r) => return r,
            };
            if !m.contains_key("mimeType") {
                if let Some(t) = head.lines().find_map(|l| {
                    l.strip_prefix("Content-Type:")
                        .or_else(|| l.strip_prefix("content-type:"))
                }) {
                    m.insert("mimeType".into(), json!(t.trim()));
                }
            }
            Json(d.store_file(&user, m, content.to_vec())).into_response()
        }
        Some("resumable") => {
            let m = match meta_of(&body) {
                Ok(m) => m,
                Err(r) => return r,
            };
            let total = headers
                .get("x-upload-content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if total.is_some_and(|t| t > MAX_UPLOAD) {
                return google_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The upload is larger than this sandbox holds.",
                    "uploadTooLarge",
                    Value::Null,
                );
            }
            let upload_id = format!("{:032x}", rand::random::<u128>());
            if let Ok(mut s) = d.store.lock() {
                s.sessions.insert(
                    upload_id.clone(),
                    Session {
                        owner: user,
                        meta: m,
                        total,
                        received: Vec::new(),
                    },
                );
            }
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let location = format!(
                "http://{host}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}"
            );
            (StatusCode::OK, [(header::LOCATION, location)], "").into_response()
        }
        _ => bad("uploadType must be media, multipart or resumable."),
    }
}

/// The bytes a `PUT` carries (first, last) and the upload's total, if it says.
type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// `Content-Range: bytes a-b/total`, `bytes */total` (a status query) or `bytes a-b/*`.
fn content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    if range == "*" {
        return Some((None, total));
    }
    let (a, b) = range.split_once('-')?;
    Some((Some((a.parse().ok()?, b.parse().ok()?)), total))
}

/// The `308 Resume Incomplete` a session answers while it lacks bytes.
/// `{"chunk": n (1: the next), "keep_bytes": k}`.
async fn interrupt(State(d): State<Drive>, Json(i): Json<Value>) -> StatusCode {
    let (Some(chunk), Some(keep)) = (i["chunk"].as_u64(), i["keep_bytes"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    match d.store.lock() {
        Ok(mut s) => {
            s.interrupt = Some(((chunk as u32).saturating_sub(1), keep));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn uploads(State(d): State<Drive>) -> Json<Value> {
    Json(json!({"log": d.store.lock().map(|s| s.log.clone()).unwrap_or_default()}))
}

fn incomplete(received: u64) -> Response {
    let mut r = Response::builder().status(StatusCode::PERMANENT_REDIRECT);
    if received > 0 {
        r = r.header(header::RANGE, format!("bytes=0-{}", received - 1));
    }
    r.body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn resume(
    State(d): State<Drive>,
    headers: HeaderMap,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Response {
    let Some(upload_id) = q.get("upload_id") else {
        return bad("upload_id is required");
    };
    let range = match headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match content_range(v) {
            Some(r) => Some(r),
            None => return bad("Invalid Content-Range header."),
        },
        // a whole upload in one PUT
        None => Some((
            (!body.is_empty()).then(|| (0, body.len() as u64 - 1)),
            Some(body.len() as u64),
        )),
    };
    let Ok(mut s) = d.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(session) = s.sessions.get_mut(upload_id) else {
        return not_found(upload_id);
    };
    let (span, total) = range.unwrap_or((None, None));
    if let Some(t) = total {
        if t > MAX_UPLOAD || session.total.is_some_and(|known| known != t) {
            return bad("The upload's total size changed.");
        }
        session.total = Some(t);
    }
    let mut cut = false;
    if let Some((from, to)) = span {
        let have = session.received.len() as u64;
        if to < from || to - from + 1 != body.len() as u64 || from > have {
            return bad("Content-Range does not match the bytes sent or skips bytes.");
        }
        let mut body = &body[..];
        match s.interrupt {
            Some((0, keep)) => {
                s.interrupt = None;
                cut = true;
                let keep = (keep - keep % (256 * 1024)).min(body.len() as u64) as usize;
                body = &body[..keep];
            }
            Some((n, keep)) => s.interrupt = Some((n - 1, keep)),
            None => {}
        }
        let Some(session) = s.sessions.get_mut(upload_id) else {
            return not_found(upload_id);
        };
        // a chunk sent again after a lost answer overlaps what is held: keep the new tail
        let skip = (have - from) as usize;
        if skip < body.len() {
            session.received.extend_from_slice(&body[skip..]);
        }
    }
    let Some(session) = s.sessions.get_mut(upload_id) else {
        return not_found(upload_id);
    };
    let held = session.received.len() as u64;
    let entry = json!({"upload_id": upload_id, "from": span.map(|r| r.0), "to": span.map(|r| r.1),
                       "held": held, "cut": cut});
    s.log.push(entry);
    if cut {
        return google_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Backend Error",
            "backendError",
            Value::Null,
        );
    }
    let Some(session) = s.sessions.get_mut(upload_id) else {
        return not_found(upload_id);
    };
    match session.total {
        Some(t) if held == t => {
            let Some(done) = s.sessions.remove(upload_id) else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            drop(s);
            Json(d.store_file(&done.owner, done.meta, done.received)).into_response()
        }
        _ => incomplete(held),
    }
}

/// Drive's query language, the part the sandbox reads: `name = 'x'`, `name contains 'x'`,
/// `mimeType = 'x'`, `trashed = false`, joined by `and`.
fn matches(f: &File, q: &str) -> Result<bool, ()> {
    for clause in q.split(" and ").map(str::trim).filter(|c| !c.is_empty()) {
        let value = |c: &str| c.split('\'').nth(1).map(str::to_string);
        let ok = if let Some(rest) = clause.strip_prefix("name contains ") {
            let v = value(rest).ok_or(())?;
            f.meta["name"].as_str().is_some_and(|n| n.contains(&v))
        } else if let Some(rest) = clause.strip_prefix("name = ") {
            f.meta["name"].as_str() == value(rest).as_deref()
        } else if let Some(rest) = clause.strip_prefix("mimeType = ") {
            f.meta["mimeType"].as_str() == value(rest).as_deref()
        } else if clause == "trashed = false" {
            f.meta["trashed"] != json!(true)
        } else {
            return Err(());
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(d): State<Drive>, headers: HeaderMap, Query(q): Params) -> Response {
    let user = match d.user(&headers, false, "google.apps.drive.v3.DriveFiles.List") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let size = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return bad("Invalid pageSize"),
    };
    let from = match q.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid pageToken"),
    };
    let query = q.get("q").cloned().unwrap_or_default();
    let Ok(s) = d.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut hits = Vec::new();
    for f in s.files.get(&user).map(|m| m.values()).into_iter().flatten() {
        if f.removed {
            continue;
        }
        match matches(f, &query) {
            Ok(true) => hits.push(f),
            Ok(false) => {}
            Err(()) => return bad("Invalid Value"),
        }
    }
    let files: Vec<Value> = hits
        .iter()
        .skip(from)
        .take(size)
        .map(|f| Value::Object(f.meta.clone()))
        .collect();
    let mut out = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": files});
    if from + size < hits.len() {
        out["nextPageToken"] = json!((from + size).to_string());
    }
    Json(out).into_response()
}

async fn get_one(
    State(d): State<Drive>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let user = match d.user(&headers, false, "google.apps.drive.v3.DriveFiles.Get") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(s) = d.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(f) = s
        .files
        .get(&user)
        .and_then(|m| m.get(&id))
        .filter(|f| !f.removed)
    else {
        return not_found(&id);
    };
    if q.get("alt").map(String::as_str) == Some("media") {
        let mime = f.meta["mimeType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string();
        return ([(header::CONTENT_TYPE, mime)], f.content.clone()).into_response();
    }
    Json(Value::Object(f.meta.clone())).into_response()
}

async fn delete_one(
    State(d): State<Drive>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match d.user(&headers, true, "google.apps.drive.v3.DriveFiles.Delete") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(mut s) = d.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let seq = {
        let n = s.seq.entry(user.clone()).or_default();
        *n += 1;
        *n
    };
    match s
        .files
        .get_mut(&user)
        .and_then(|m| m.get_mut(&id))
        .filter(|f| !f.removed)
    {
        Some(f) => {
            f.removed = true;
            f.seq = seq;
            drop(s);
            d.push.changed(&format!("drive:{user}"));
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&id),
    }
}

/// `changes.watch`: a push channel on the user's changes (from `pageToken` on).
async fn watch(
    State(d): State<Drive>,
    headers: HeaderMap,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Response {
    let user = match d.user(&headers, false, "google.apps.drive.v3.DriveChanges.Watch") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(token) = q.get("pageToken") else {
        return bad("The pageToken parameter is required.");
    };
    let uri = format!("https://www.googleapis.com/drive/v3/changes?alt=json&pageToken={token}");
    d.push.open(&format!("drive:{user}"), &uri, &body)
}

/// `channels.stop`.
async fn stop(State(d): State<Drive>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if d.oauth.check_bearer(&headers).is_none() {
        return unauthenticated();
    }
    d.push.stop(&body)
}

async fn start_token(State(d): State<Drive>, headers: HeaderMap) -> Response {
    let user = match d.user(
        &headers,
        false,
        "google.apps.drive.v3.DriveChanges.GetStartPageToken",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let seq = d
        .store
        .lock()
        .map(|s| s.seq.get(&user).copied().unwrap_or(0))
        .unwrap_or(0);
    Json(json!({"kind": "drive#startPageToken", "startPageToken": (seq + 1).to_string()}))
        .into_response()
}

async fn changes(State(d): State<Drive>, headers: HeaderMap, Query(q): Params) -> Response {
    let user = match d.user(&headers, false, "google.apps.drive.v3.DriveChanges.List") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(Ok(token)) = q.get("pageToken").map(|t| t.parse::<u64>()) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "The pageToken parameter is required and must be a token Drive gave.",
            "required",
            Value::Null,
        );
    };
    let size = q
        .get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let Ok(s) = d.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let current = s.seq.get(&user).copied().unwrap_or(0);
    let mut changed: Vec<&File> = s
        .files
        .get(&user)
        .map(|m| m.values().filter(|f| f.seq >= token).collect())
        .unwrap_or_default();
    changed.sort_by_key(|f| f.seq);
    let page: Vec<&File> = changed.iter().take(size).copied().collect();
    let items: Vec<Value> = page
        .iter()
        .map(|f| {
            let mut c = json!({"kind": "drive#change", "changeType": "file",
                               "fileId": f.meta["id"], "removed": f.removed, "time": d.now()});
            if !f.removed {
                c["file"] = Value::Object(f.meta.clone());
            }
            c
        })
        .collect();
    let mut out = json!({"kind": "drive#changeList", "changes": items});
    match page.last() {
        Some(last) if changed.len() > page.len() => {
            out["nextPageToken"] = json!((last.seq + 1).to_string())
        }
        _ => out["newStartPageToken"] = json!((current + 1).to_string()),
    }
    Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_and_related_parts_read_as_google_sends_them() {
        assert_eq!(
            content_range("bytes 0-99/1000"),
            Some((Some((0, 99)), Some(1000)))
        );
        assert_eq!(content_range("bytes */1000"), Some((None, Some(1000))));
        assert_eq!(content_range("bytes 0-9/*"), Some((Some((0, 9)), None)));
        assert!(content_range("items 1-2/3").is_none());
        let body = b"--b\r\nContent-Type: application/json\r\n\r\n{\"name\":\"a\"}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--";
        let parts = related_parts(body, "b");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].1, b"hello");
    }
}
