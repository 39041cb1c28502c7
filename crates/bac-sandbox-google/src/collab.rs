//! Google Chat's messages (`chat.v1`: `spaces.messages.create` with `requestId`, which makes
//! a retried create answer the first message, and `spaces.messages.list`, `spaces.list`) and
//! Google Tasks (`tasks.v1`: `tasklists.list`, `tasks.insert`, `tasks.list` with
//! `showCompleted` and paging) as their discovery documents describe them. A Chat space has
//! members and only they post in it; tests make spaces with `POST
//! /_sandbox/google/chat/spaces` (`{"displayName", "members": [emails]}`).
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
use serde_json::{json, Value};

use crate::google_error;

const CHAT_CREATE: &[&str] = &[
    "https://www.googleapis.com/auth/chat.messages",
    "https://www.googleapis.com/auth/chat.messages.create",
];
const CHAT_READ: &[&str] = &[
    "https://www.googleapis.com/auth/chat.messages",
    "https://www.googleapis.com/auth/chat.messages.readonly",
];
const SPACES_READ: &[&str] = &[
    "https://www.googleapis.com/auth/chat.spaces",
    "https://www.googleapis.com/auth/chat.spaces.readonly",
];
const TASKS: &[&str] = &["https://www.googleapis.com/auth/tasks"];
const TASKS_READ: &[&str] = &[
    "https://www.googleapis.com/auth/tasks",
    "https://www.googleapis.com/auth/tasks.readonly",
];

#[derive(Debug, Default)]
struct Store {
    /// space id -> (display name, members, messages)
    spaces: HashMap<String, (String, Vec<String>, Vec<Value>)>,
    /// (space, requestId) -> message name
    requests: HashMap<(String, String), String>,
    /// user -> tasks of their default list
    tasks: HashMap<String, Vec<Value>>,
}

#[derive(Clone)]
pub struct Collab {
    oauth: OAuthServer,
    clock: SandboxClock,
    store: Arc<Mutex<Store>>,
}

fn bad(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "badRequest", Value::Null)
}

fn not_found(what: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        &format!("{what} not found."),
        "notFound",
        Value::Null,
    )
}

impl Collab {
    pub fn new(oauth: OAuthServer, clock: SandboxClock) -> Collab {
        Collab {
            oauth,
            clock,
            store: Arc::default(),
        }
    }

    fn caller(
        &self,
        headers: &HeaderMap,
        scopes: &[&str],
        service: &str,
        method: &str,
    ) -> Result<String, Response> {
        crate::authorized(&self.oauth, headers, scopes, service, method)
    }

    fn now(&self) -> String {
        chrono::DateTime::from_timestamp(self.clock.now(), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    }
}

/// Admin: a space with its members.
async fn new_space(State(c): State<Collab>, Json(v): Json<Value>) -> Response {
    let members: Vec<String> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect();
    let id = format!("AAAA{:011x}", rand::random::<u64>() >> 20);
    let name = v["displayName"].as_str().unwrap_or("Space").to_string();
    if let Ok(mut s) = c.store.lock() {
        s.spaces
            .insert(id.clone(), (name.clone(), members, Vec::new()));
    }
    (
        StatusCode::CREATED,
        Json(json!({"name": format!("spaces/{id}"), "displayName": name, "spaceType": "SPACE"})),
    )
        .into_response()
}

async fn spaces(State(c): State<Collab>, headers: HeaderMap) -> Response {
    let user = match c.caller(
        &headers,
        SPACES_READ,
        "chat.googleapis.com",
        "google.chat.v1.ChatService.ListSpaces",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(s) = c.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let list: Vec<Value> = s
        .spaces
        .iter()
        .filter(|(_, (_, members, _))| members.contains(&user))
        .map(|(id, (name, _, _))| json!({"name": format!("spaces/{id}"), "displayName": name, "spaceType": "SPACE"}))
        .collect();
    Json(json!({"spaces": list})).into_response()
}

/// `POST|GET /v1/spaces/{space}/messages`.
async fn messages(
    State(c): State<Collab>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(space): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let create = method == axum::http::Method::POST;
    let (scopes, rpc) = if create {
        (CHAT_CREATE, "google.chat.v1.ChatService.CreateMessage")
    } else {
        (CHAT_READ, "google.chat.v1.ChatService.ListMessages")
    };
    let user = match c.caller(&headers, scopes, "chat.googleapis.com", rpc) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = c.now();
    let Ok(mut s) = c.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, members, _)) = s.spaces.get(&space) else {
        return not_found(&format!("Space spaces/{space}"));
    };
    if !members.contains(&user) {
        return google_error(
            StatusCode::FORBIDDEN,
            "The caller does not have permission",
            "forbidden",
            Value::Null,
        );
    }
    if !create {
        let size = q
            .get("pageSize")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(25)
            .clamp(1, 1000);
        let from = q
            .get("pageToken")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(0);
        let all = &s.spaces[&space].2;
        let page: Vec<Value> = all.iter().skip(from).take(size).cloned().collect();
        let mut out = json!({"messages": page});
        if from + size < all.len() {
            out["nextPageToken"] = json!((from + size).to_string());
        }
        return Json(out).into_response();
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad("Invalid JSON payload received."),
    };
    let Some(text) = v["text"].as_str().filter(|t| !t.is_empty()) else {
        return bad("Message cannot be empty. Discarding empty message.");
    };
    if text.chars().count() > 4096 {
        return bad("Message text is longer than 4096 characters.");
    }
    if let Some(r) = q.get("requestId") {
        if let Some(name) = s.requests.get(&(space.clone(), r.clone())) {
            let found = s.spaces[&space]
                .2
                .iter()
                .find(|m| m["name"] == *name)
                .cloned();
            if let Some(m) = found {
                return Json(m).into_response();
            }
        }
    }
    let id = format!(
        "{:016x}.{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let name = format!("spaces/{space}/messages/{id}");
    let thread = match q.get("threadKey") {
        Some(k) => format!("spaces/{space}/threads/{k}"),
        None => format!(
            "spaces/{space}/threads/{:011x}",
            rand::random::<u64>() >> 20
        ),
    };
    let message = json!({"name": name, "sender": {"name": format!("users/{user}"), "type": "HUMAN"},
        "createTime": now, "text": text, "thread": {"name": thread},
        "space": {"name": format!("spaces/{space}"), "type": "ROOM"}, "argumentText": text});
    if let Some(r) = q.get("requestId") {
        s.requests.insert((space.clone(), r.clone()), name);
    }
    if let Some(sp) = s.spaces.get_mut(&space) {
        sp.2.push(message.clone());
    }
    Json(message).into_response()
}

async fn task_lists(State(c): State<Collab>, headers: HeaderMap) -> Response {
    if let Err(r) = c.caller(
        &headers,
        TASKS_READ,
        "tasks.googleapis.com",
        "google.apps.tasks.v1.TasksService.ListTaskLists",
    ) {
        return r;
    }
    Json(json!({"kind": "tasks#taskLists", "items": [
        {"kind": "tasks#taskList", "id": "@default", "title": "My Tasks", "updated": c.now()}]}))
    .into_response()
}

/// `POST|GET /tasks/v1/lists/{tasklist}/tasks` (the default list: `@default`).
async fn tasks(
    State(c): State<Collab>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(list): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let insert = method == axum::http::Method::POST;
    let (scopes, rpc) = if insert {
        (TASKS, "google.apps.tasks.v1.TasksService.InsertTask")
    } else {
        (TASKS_READ, "google.apps.tasks.v1.TasksService.ListTasks")
    };
    let user = match c.caller(&headers, scopes, "tasks.googleapis.com", rpc) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if list != "@default" {
        return not_found("Task list");
    }
    let now = c.now();
    let Ok(mut s) = c.store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mine = s.tasks.entry(user).or_default();
    if !insert {
        let show_completed = q.get("showCompleted").map(String::as_str) != Some("false");
        let size = q
            .get("maxResults")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(20)
            .clamp(1, 100);
        let from = q
            .get("pageToken")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(0);
        let hits: Vec<&Value> = mine
            .iter()
            .filter(|t| show_completed || t["status"] != "completed")
            .collect();
        let mut out = json!({"kind": "tasks#tasks", "items": hits.iter().skip(from).take(size).collect::<Vec<_>>()});
        if from + size < hits.len() {
            out["nextPageToken"] = json!((from + size).to_string());
        }
        return Json(out).into_response();
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad("Invalid JSON payload received."),
    };
    let title = v["title"].as_str().unwrap_or("");
    if title.chars().count() > 1024 {
        return bad("Invalid value for: title is too long");
    }
    if let Some(due) = v.get("due").and_then(Value::as_str) {
        if chrono::DateTime::parse_from_rfc3339(due).is_err() {
            return bad("Invalid value for: due");
        }
    }
    let status = v["status"].as_str().unwrap_or("needsAction");
    if !["needsAction", "completed"].contains(&status) {
        return bad("Invalid value for: status");
    }
    let id = format!("{:022x}", rand::random::<u128>() >> 40);
    let mut task = json!({"kind": "tasks#task", "id": id, "etag": format!("\"{}\"", rand::random::<u32>()),
        "title": title, "updated": now, "status": status, "position": format!("{:020}", mine.len()),
        "selfLink": format!("https://www.googleapis.com/tasks/v1/lists/@default/tasks/{id}")});
    for k in ["notes", "due"] {
        if let Some(x) = v.get(k).filter(|x| x.is_string()) {
            task[k] = x.clone();
        }
    }
    mine.push(task.clone());
    Json(task).into_response()
}

pub fn router(c: Collab) -> Router {
    Router::new()
        .route("/v1/spaces", get(spaces))
        .route("/v1/spaces/:space/messages", get(messages).post(messages))
        .route("/_sandbox/google/chat/spaces", post(new_space))
        .route("/tasks/v1/users/@me/lists", get(task_lists))
        .route("/tasks/v1/lists/:list/tasks", get(tasks).post(tasks))
        .with_state(c)
}
