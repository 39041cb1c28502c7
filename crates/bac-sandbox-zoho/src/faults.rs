//! Fault injection for the Zoho sandbox, on the sandbox kit's rules
//! ([`bac_sandbox_kit::faults`]), per data centre: a call is described by its product
//! (`protocol`: `accounts`, `crm`, `books`, `inventory`, `desk`, `people`, `mail`), the
//! resource (`model`: `Leads`, `invoices`, `tickets`, `token`...) and the HTTP method
//! (`method`: `get`, `post`...). Failures are answered in the product's own dialect: a 429
//! with `Retry-After` and Zoho's `TOO_MANY_REQUESTS`, a 5xx with Zoho's `INTERNAL_ERROR`,
//! `session_expired` as the product's invalid-token 401. Admin routes:
//! `GET|POST|DELETE /<dc>/_sandbox/zoho/faults`, `GET|DELETE /<dc>/_sandbox/zoho/calls`.
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json, Router,
};
use bac_sandbox_kit::faults::{self, Call, Failure, Faults};
use serde_json::{json, Value};

/// What rules may name as `protocol`.
pub const PROTOCOLS: &[&str] = &[
    "accounts",
    "crm",
    "books",
    "inventory",
    "desk",
    "people",
    "mail",
];

pub fn new() -> Arc<Faults> {
    Arc::new(Faults::new(PROTOCOLS, &[]))
}

/// The admin routes of a data centre (`/_sandbox/zoho/faults`, `/_sandbox/zoho/calls`).
pub fn routes(faults: Arc<Faults>) -> Router {
    faults::routes("/_sandbox/zoho", faults)
}

/// The product, resource and method of a request path inside a data centre.
fn describe(path: &str) -> Option<(&'static str, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let at = |i: usize| parts.get(i).copied().unwrap_or("").to_string();
    Some(match parts.first().copied()? {
        "_sandbox" => return None,
        "oauth" => ("accounts", at(parts.len() - 1)),
        // /crm/v8/Leads/123
        "crm" => ("crm", at(2)),
        // /books/v3/invoices
        "books" => ("books", at(2)),
        "inventory" => ("inventory", at(2)),
        // /desk/api/v1/tickets
        "desk" => ("desk", at(3)),
        // /people/people/api/forms/employee/getRecords
        "people" => ("people", at(4)),
        // /mail/api/accounts/1/messages
        "mail" => (
            "mail",
            parts.last().map(|s| s.to_string()).unwrap_or_default(),
        ),
        _ => return None,
    })
}

/// A product's invalid-token answer.
fn expired(protocol: &str) -> Response {
    let body = match protocol {
        "books" | "inventory" => {
            json!({"code": 57, "message": "You are not authorized to perform this operation"})
        }
        "desk" => {
            json!({"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."})
        }
        "people" => {
            json!({"response": {"message": "Error occurred", "errors": {"code": 7218, "message": "Invalid OAuthtoken"}, "status": 1}})
        }
        "mail" => {
            json!({"status": {"code": 401, "description": "Invalid Input"}, "data": {"errorCode": "INVALID_OAUTHTOKEN", "moreInfo": "Invalid OAuth token"}})
        }
        _ => {
            json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
        }
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn failure(f: Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body: Value = if f.status == 429 {
        json!({"code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many requests", "status": "error"})
    } else {
        json!({"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error", "status": "error"})
    };
    let mut resp = (status, Json(body)).into_response();
    if let Some(secs) = f.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}

/// Middleware of a data centre: counts the call and applies the matching rules.
pub async fn apply(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let Some((protocol, model)) = describe(req.uri().path()) else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_ascii_lowercase();
    let decision = faults.decide(&Call {
        protocol,
        model: Some(model.as_str()).filter(|m| !m.is_empty()),
        method: Some(method.as_str()),
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if decision.session_expired {
        return expired(protocol);
    }
    match (decision.failure, decision.lose_response) {
        (Some(f), false) => failure(f),
        (f, true) => {
            // it happens, then the answer is lost on the way back
            let _ = next.run(req).await;
            failure(f.unwrap_or(Failure {
                status: 502,
                retry_after: None,
            }))
        }
        (None, false) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn calls_are_described_by_product_resource_and_method() {
        assert_eq!(
            super::describe("/crm/v8/Leads/123"),
            Some(("crm", "Leads".to_string()))
        );
        assert_eq!(
            super::describe("/desk/api/v1/tickets/search"),
            Some(("desk", "tickets".to_string()))
        );
        assert_eq!(
            super::describe("/people/people/api/forms/employee/getRecords"),
            Some(("people", "employee".to_string()))
        );
        assert_eq!(
            super::describe("/oauth/v2/token"),
            Some(("accounts", "token".to_string()))
        );
        assert_eq!(super::describe("/_sandbox/zoho/credits"), None);
    }
}
