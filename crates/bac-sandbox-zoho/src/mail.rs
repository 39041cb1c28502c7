//! Zoho Mail's account list and send-mail call (`/api/accounts`, `/api/accounts/<accountId>/
//! messages` on Mail's host, served at `/<dc>/mail`), with Mail's envelope:
//! `{"status": {"code", "description"}, "data": ...}` for answers and errors alike, errors
//! naming an `errorCode` and `moreInfo`. One account per data centre, the configured user's;
//! what it sends is kept for the admin route `GET /_sandbox/zoho/mail/sent` instead of leaving.
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::Stored;
use serde_json::{json, Map, Value};

use crate::{
    apps::{self, Apps, Denials, Fields, PathId, Table},
    DataCenter,
};

fn error(status: StatusCode, code: &str, more: &str) -> Response {
    (
        status,
        Json(
            json!({"status": {"code": status.as_u16(), "description": "Invalid Input"},
                    "data": {"errorCode": code, "moreInfo": more}}),
        ),
    )
        .into_response()
}

fn invalid_input(more: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_INPUT", more)
}

const DENIALS: Denials = Denials {
    invalid_token: || {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_OAUTHTOKEN",
            "Invalid OAuth token",
        )
    },
    scope: || {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_OAUTHSCOPE",
            "Invalid OAuth scope",
        )
    },
};

fn success(data: Value) -> Response {
    Json(json!({"status": {"code": 200, "description": "success"}, "data": data})).into_response()
}

/// Routes relative to Mail's host (the data centre nests them under `/mail`).
pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route("/api/accounts", get(accounts))
        .route("/api/accounts/:account_id/messages", post(send))
        .with_state(dc)
}

async fn accounts(State(dc): State<DataCenter>, headers: HeaderMap) -> Response {
    if let Err(r) = apps::admit(&dc, &headers, &["ZohoMail.accounts.READ"], &DENIALS) {
        return r;
    }
    let (account, email) = dc.apps.with(|a| (a.mail_account(), a.user_email.clone()));
    success(json!([{
        "accountId": account,
        "accountName": email,
        "primaryEmailAddress": email,
        "displayName": "Sandbox Admin",
        "sendMailDetails": [{"fromAddress": email, "displayName": "Sandbox Admin", "sendMailId": "1"}],
    }]))
}

/// A comma-separated address list whose every address has an `@`.
fn addresses(b: &Fields, key: &str, required: bool) -> Result<String, Response> {
    let Ok(value) = b.text(key) else {
        return Err(invalid_input(&format!("{key} must be a string")));
    };
    let value = value.unwrap_or_default();
    if value.trim().is_empty() {
        if required {
            return Err(invalid_input(&format!("{key} is required")));
        }
        return Ok(String::new());
    }
    if !value.split(',').all(apps::is_address) {
        return Err(invalid_input(&format!("{key} has an invalid address")));
    }
    Ok(value)
}

/// A text field among `allowed` values (case as Mail takes them), or its default.
fn choice(b: &Fields, key: &str, allowed: &[&str], default: &str) -> Result<String, Response> {
    match b.text(key) {
        Ok(None) => Ok(default.to_string()),
        Ok(Some(v)) if allowed.iter().any(|a| a.eq_ignore_ascii_case(&v)) => Ok(v.to_lowercase()),
        _ => Err(invalid_input(&format!(
            "{key} must be one of {}",
            allowed.join(", ")
        ))),
    }
}

async fn send(
    State(dc): State<DataCenter>,
    headers: HeaderMap,
    account: PathId,
    body: Bytes,
) -> Response {
    if let Err(r) = apps::admit(&dc, &headers, &["ZohoMail.messages.CREATE"], &DENIALS) {
        return r;
    }
    let account = apps::path_id(account);
    let (own_account, own_address) = dc.apps.with(|a| (a.mail_account(), a.user_email.clone()));
    if account != own_account {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ACCOUNT",
            "accountId is not an account of this user",
        );
    }
    let Some(body) = apps::json_object(&body) else {
        return invalid_input("the body is not a JSON object");
    };
    let b = Fields::new(&body, "");
    let from = match b.text("fromAddress") {
        Ok(Some(f)) if !f.trim().is_empty() => f,
        Ok(_) => return invalid_input("fromAddress is required"),
        Err(_) => return invalid_input("fromAddress must be a string"),
    };
    if !from.trim().eq_ignore_ascii_case(&own_address) {
        return invalid_input("fromAddress is not an address of this account");
    }
    let mut message = Map::new();
    message.insert("accountId".into(), json!(account));
    message.insert("fromAddress".into(), json!(from));
    for (key, required) in [
        ("toAddress", true),
        ("ccAddress", false),
        ("bccAddress", false),
    ] {
        match addresses(&b, key, required) {
            Ok(v) => {
                message.insert(key.into(), json!(v));
            }
            Err(r) => return r,
        }
    }
    for key in ["subject", "content"] {
        match b.text(key) {
            Ok(v) => {
                message.insert(key.into(), json!(v.unwrap_or_default()));
            }
            Err(_) => return invalid_input(&format!("{key} must be a string")),
        }
    }
    for (key, allowed, default) in [
        ("mailFormat", &["html", "plaintext"], "html"),
        ("askReceipt", &["yes", "no"], "no"),
    ] {
        match choice(&b, key, allowed, default) {
            Ok(v) => {
                message.insert(key.into(), json!(v));
            }
            Err(r) => return r,
        }
    }
    let sent = dc.apps.with(|a| {
        let id = a.create(Table::MailMessages, message);
        a.table(Table::MailMessages)
            .row(&id)
            .map(|r| render(r, false))
    });
    match sent {
        Some(m) => success(m),
        None => invalid_input("the message could not be stored"),
    }
}

/// A sent message as the send call answers it (with its `accountId` for the admin list).
fn render(row: &Stored, with_account: bool) -> Value {
    let f = apps::public_fields(row);
    let field = |k: &str| f.get(k).cloned().unwrap_or_else(|| json!(""));
    let mut out = json!({
        "messageId": row.id,
        "mailId": format!("<{}.sandbox@zoho>", row.id),
        "fromAddress": field("fromAddress"),
        "toAddress": field("toAddress"),
        "ccAddress": field("ccAddress"),
        "subject": field("subject"),
        "content": field("content"),
        "mailFormat": field("mailFormat"),
        "sentDateInGMT": apps::created_of(row).saturating_mul(1000).to_string(),
    });
    if with_account {
        out["accountId"] = field("accountId");
    }
    out
}

/// Every message sent, oldest first.
pub fn sent(a: &Apps) -> Vec<Value> {
    a.table(Table::MailMessages)
        .changed_since(i64::MIN, None, usize::MAX, false)
        .into_iter()
        .map(|r| render(r, true))
        .collect()
}
