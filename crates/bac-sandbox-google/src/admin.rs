//! The Admin SDK Directory's users as `admin.directory_v1`'s discovery document describes
//! them: list (`customer=my_customer` or `domain`, `maxResults`, `pageToken`, `orderBy`,
//! `query` with `email:`/`givenName:`/`familyName:` prefixes or free text, `showDeleted`),
//! get by id or primary email, insert, delete. The sandbox holds one domain's users: those an
//! administrator adds, and every user a token was issued for (created as it is used).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use bac_sandbox_kit::{OAuthServer, SandboxClock};
use serde_json::{json, Value};

use crate::google_error;

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const USER_READONLY: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";

#[derive(Debug, Clone)]
struct User {
    body: serde_json::Map<String, Value>,
    deleted: bool,
}

#[derive(Clone)]
pub struct Directory {
    oauth: OAuthServer,
    clock: SandboxClock,
    /// By primary email.
    users: Arc<Mutex<BTreeMap<String, User>>>,
}

impl Directory {
    pub fn new(oauth: OAuthServer, clock: SandboxClock) -> Directory {
        Directory {
            oauth,
            clock,
            users: Arc::default(),
        }
    }

    fn caller(&self, headers: &HeaderMap, write: bool, method: &str) -> Result<String, Response> {
        let scopes: &[&str] = if write {
            &[USER]
        } else {
            &[USER, USER_READONLY]
        };
        crate::authorized(&self.oauth, headers, scopes, "admin.googleapis.com", method)
    }

    fn user_body(
        &self,
        email: &str,
        given: &str,
        family: &str,
        admin: bool,
    ) -> serde_json::Map<String, Value> {
        let id = format!(
            "1{:020}",
            rand::random::<u64>() % 10_000_000_000_000_000_000
        );
        let now = chrono::DateTime::from_timestamp(self.clock.now(), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let v = json!({
            "kind": "admin#directory#user", "id": id, "primaryEmail": email,
            "name": {"givenName": given, "familyName": family,
                     "fullName": format!("{given} {family}").trim().to_string()},
            "isAdmin": admin, "isDelegatedAdmin": false, "suspended": false, "archived": false,
            "orgUnitPath": "/", "customerId": "C0sandbox", "isMailboxSetup": true,
            "creationTime": now, "lastLoginTime": "1970-01-01T00:00:00.000Z",
            "emails": [{"address": email, "primary": true}],
        });
        v.as_object().cloned().unwrap_or_default()
    }

    /// The caller is a user of the domain too (the administrator a service account acts
    /// for): created on first sight.
    fn ensure(&self, email: &str) {
        if let Ok(mut u) = self.users.lock() {
            if !u.contains_key(email) {
                let local = email.split('@').next().unwrap_or(email).to_string();
                let body = self.user_body(email, &local, "", true);
                u.insert(
                    email.to_string(),
                    User {
                        body,
                        deleted: false,
                    },
                );
            }
        }
    }
}

pub fn router(d: Directory) -> Router {
    Router::new()
        .route("/admin/directory/v1/users", get(list).post(insert))
        .route(
            "/admin/directory/v1/users/:key",
            get(get_one).delete(delete_one),
        )
        .with_state(d)
}

fn bad(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "invalid", Value::Null)
}

fn not_found(key: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        &format!("Resource Not Found: {key}"),
        "notFound",
        Value::Null,
    )
}

/// The Directory's user query, the part the sandbox reads: `email:`, `givenName:`,
/// `familyName:` prefixes (a trailing `*` allowed) and free words.
fn query_matches(u: &User, q: &str) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or("").to_lowercase();
    let email = text(&u.body["primaryEmail"]);
    let given = text(&u.body["name"]["givenName"]);
    let family = text(&u.body["name"]["familyName"]);
    q.split_whitespace().all(|term| {
        let (k, want) = term.split_once(':').unwrap_or(("", term));
        let want = want.trim_matches('\'').trim_end_matches('*').to_lowercase();
        match k {
            "email" => email.starts_with(&want),
            "givenName" => given.starts_with(&want),
            "familyName" => family.starts_with(&want),
            _ => email.contains(&want) || given.contains(&want) || family.contains(&want),
        }
    })
}

async fn list(
    State(d): State<Directory>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match d.caller(&headers, false, "directory.users.list") {
        Ok(c) => c,
        Err(r) => return r,
    };
    d.ensure(&caller);
    if !q.contains_key("customer") && !q.contains_key("domain") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "badRequest",
            Value::Null,
        );
    }
    let max = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return bad("Invalid Input: maxResults"),
    };
    let from = match q.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid Input: pageToken"),
    };
    let deleted = q.get("showDeleted").map(String::as_str) == Some("true");
    let Ok(users) = d.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut hits: Vec<&User> = users
        .values()
        .filter(|u| u.deleted == deleted)
        .filter(|u| q.get("query").is_none_or(|qq| query_matches(u, qq)))
        .collect();
    match q.get("orderBy").map(String::as_str) {
        None | Some("email") => {}
        Some("givenName") => hits.sort_by_key(|u| {
            u.body["name"]["givenName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }),
        Some("familyName") => hits.sort_by_key(|u| {
            u.body["name"]["familyName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }),
        Some(_) => return bad("Invalid Input: orderBy"),
    }
    if q.get("sortOrder").map(String::as_str) == Some("DESCENDING") {
        hits.reverse();
    }
    let page: Vec<Value> = hits
        .iter()
        .skip(from)
        .take(max)
        .map(|u| Value::Object(u.body.clone()))
        .collect();
    let mut out = json!({"kind": "admin#directory#users", "etag": "\"sandbox\""});
    if !page.is_empty() {
        out["users"] = json!(page);
    }
    if from + max < hits.len() {
        out["nextPageToken"] = json!((from + max).to_string());
    }
    Json(out).into_response()
}

fn find<'a>(users: &'a BTreeMap<String, User>, key: &str) -> Option<&'a User> {
    users
        .get(key)
        .or_else(|| users.values().find(|u| u.body["id"] == key))
        .filter(|u| !u.deleted)
}

async fn get_one(
    State(d): State<Directory>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match d.caller(&headers, false, "directory.users.get") {
        Ok(c) => c,
        Err(r) => return r,
    };
    d.ensure(&caller);
    let Ok(users) = d.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match find(&users, &key) {
        Some(u) => Json(Value::Object(u.body.clone())).into_response(),
        None => not_found(&key),
    }
}

async fn insert(
    State(d): State<Directory>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = d.caller(&headers, true, "directory.users.insert") {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        );
    };
    let Some(email) = v["primaryEmail"].as_str().filter(|e| e.contains('@')) else {
        return bad("Invalid Input: primary_user_email");
    };
    let (Some(given), Some(family)) = (
        v["name"]["givenName"].as_str(),
        v["name"]["familyName"].as_str(),
    ) else {
        return bad("Invalid Given/Family Name: GivenName");
    };
    if v["password"].as_str().is_none_or(|p| p.len() < 8) {
        return bad("Invalid Password");
    }
    let Ok(mut users) = d.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if users.get(email).is_some_and(|u| !u.deleted) {
        return google_error(
            StatusCode::CONFLICT,
            "Entity already exists.",
            "duplicate",
            Value::Null,
        );
    }
    let body = d.user_body(email, given, family, false);
    users.insert(
        email.to_string(),
        User {
            body: body.clone(),
            deleted: false,
        },
    );
    Json(Value::Object(body)).into_response()
}

async fn delete_one(
    State(d): State<Directory>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = d.caller(&headers, true, "directory.users.delete") {
        return r;
    }
    let Ok(mut users) = d.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let email =
        find(&users, &key).and_then(|u| u.body["primaryEmail"].as_str().map(str::to_string));
    match email.and_then(|e| users.get_mut(&e)) {
        Some(u) => {
            u.deleted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&key),
    }
}
