//! Google's per-user quotas, as faults tests set: `POST /_sandbox/google/quota` with
//! `{"user", "calls", "reason", "retry_after_secs"}` makes that user's next `calls` API calls
//! answer `403` with `reason` (`userRateLimitExceeded`, `rateLimitExceeded`; `429` for
//! `RESOURCE_EXHAUSTED`), as Google answers a user or project over its quota; other users
//! are served. `GET /_sandbox/google/quota` reports what each user was served and refused.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use bac_sandbox_kit::OAuthServer;
use serde_json::{json, Value};

use crate::google_error;

#[derive(Debug, Clone)]
struct Rule {
    calls: u64,
    reason: String,
    retry_after_secs: Option<u64>,
}

#[derive(Debug, Default)]
struct Ledger {
    rules: HashMap<String, Rule>,
    served: HashMap<String, u64>,
    refused: HashMap<String, u64>,
}

#[derive(Clone)]
pub struct Quota {
    oauth: OAuthServer,
    state: Arc<Mutex<Ledger>>,
}

impl Quota {
    pub fn new(oauth: OAuthServer) -> Quota {
        Quota {
            oauth,
            state: Arc::default(),
        }
    }
}

/// Paths that are not Google's APIs (the token endpoint, consent, the sandbox's own).
fn exempt(path: &str) -> bool {
    path.starts_with("/_sandbox")
        || path == "/token"
        || path.starts_with("/o/oauth2")
        || path == "/revoke"
        || path == "/healthz"
}

/// The middleware: a call of a user whose rule has calls left is refused as Google refuses.
pub async fn check(State(q): State<Quota>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(user) = q.oauth.check_bearer(req.headers()).map(|t| t.subject) else {
        return next.run(req).await;
    };
    let refused = q.state.lock().ok().and_then(|mut s| {
        let rule = s.rules.get_mut(&user).filter(|r| r.calls > 0).map(|r| {
            r.calls -= 1;
            r.clone()
        });
        match rule {
            Some(r) => {
                *s.refused.entry(user.clone()).or_default() += 1;
                Some(r)
            }
            None => {
                *s.served.entry(user.clone()).or_default() += 1;
                None
            }
        }
    });
    let Some(rule) = refused else {
        return next.run(req).await;
    };
    let (status, message) = match rule.reason.as_str() {
        "RESOURCE_EXHAUSTED" => (
            StatusCode::TOO_MANY_REQUESTS,
            "Resource has been exhausted (e.g. check quota).",
        ),
        "rateLimitExceeded" => (StatusCode::FORBIDDEN, "Rate Limit Exceeded"),
        _ => (StatusCode::FORBIDDEN, "User Rate Limit Exceeded"),
    };
    let mut resp = google_error(status, message, &rule.reason, Value::Null);
    if let Some(s) = rule.retry_after_secs {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}

async fn set(State(q): State<Quota>, Json(v): Json<Value>) -> Response {
    let (Some(user), Some(calls)) = (v["user"].as_str(), v["calls"].as_u64()) else {
        return (StatusCode::BAD_REQUEST, "user and calls are required").into_response();
    };
    let rule = Rule {
        calls,
        reason: v["reason"]
            .as_str()
            .unwrap_or("userRateLimitExceeded")
            .to_string(),
        retry_after_secs: v["retry_after_secs"].as_u64(),
    };
    match q.state.lock() {
        Ok(mut s) => {
            s.rules.insert(user.to_string(), rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn report(State(q): State<Quota>) -> Json<Value> {
    Json(
        q.state
            .lock()
            .map(|s| json!({"served": s.served, "refused": s.refused}))
            .unwrap_or_default(),
    )
}

pub fn router(q: Quota) -> Router {
    Router::new()
        .route("/_sandbox/google/quota", post(set).get(report))
        .with_state(q)
}
