//! Google Chat's side of a Chat app with an HTTP endpoint: the keys of
//! `chat@system.gserviceaccount.com` as Google publishes them (a JWKS at
//! `/service_accounts/v1/jwk/chat@system.gserviceaccount.com`, the kit's
//! [`bac_sandbox_kit::issuer`]) and interaction events posted to an app with a bearer token
//! that account signed for the app's project number ("Authentication Audience: Project
//! Number"). `POST /_sandbox/chat/events` `{"url", "project_number", "type", "text", "space",
//! "signature"}` (a `CARD_CLICKED` also `message` and `function`) sends one (`signature`: `forged`, `expired`, `other_audience`, `none`) and
//! reports the answer.
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::post, Json, Router};
use bac_sandbox_kit::{
    issuer::{Forgery, Issuer},
    SandboxClock,
};
use serde_json::{json, Value};

/// The account that signs Chat's requests to apps.
pub const CHAT_ISSUER: &str = "chat@system.gserviceaccount.com";

fn issuer() -> Issuer {
    Issuer {
        issuer: CHAT_ISSUER.into(),
        kid: "sandbox-chat-1".into(),
        endorsements: Vec::new(),
    }
}

/// The JWKS route and the admin route.
pub fn router(clock: SandboxClock) -> Router {
    let i = issuer();
    Router::new()
        .route("/_sandbox/chat/events", post(send_event))
        .with_state(clock)
        .merge(i.router(
            "/_sandbox/chat/openid",
            &format!("/service_accounts/v1/jwk/{CHAT_ISSUER}"),
            String::new(),
        ))
}

async fn send_event(
    State(clock): State<SandboxClock>,
    Json(req): Json<Value>,
) -> impl IntoResponse {
    let (Some(url), Some(project)) = (req["url"].as_str(), req["project_number"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "url and project_number are required"})),
        );
    };
    let now = clock.now();
    let kind = req["type"].as_str().unwrap_or("MESSAGE");
    let space = req["space"].as_str().unwrap_or("spaces/AAAAsandbox");
    let text = req["text"].as_str().unwrap_or("");
    // Chat's event times have microseconds: two events of one second differ
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let micros = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000;
    let time = chrono::DateTime::from_timestamp(now, micros * 1000)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let user = json!({"name": "users/1098765432", "displayName": "Grace Hopper",
                      "email": "grace@example.com", "type": "HUMAN"});
    let mut event = json!({
        "type": kind,
        "eventTime": time,
        "space": {"name": space, "type": "ROOM", "displayName": "Billing"},
        "user": user,
        "configCompleteRedirectUrl": "https://chat.google.com/api/bot_config_complete?token=sandbox",
        "common": {"userLocale": "en", "hostApp": "CHAT"},
    });
    if kind == "CARD_CLICKED" {
        // a click names the message its card is on, and the action
        let function = req["function"].as_str().unwrap_or("approve");
        event["message"] = json!({"name": req["message"].as_str().unwrap_or("spaces/AAAAsandbox/messages/card.card"),
                                  "space": {"name": space}});
        event["action"] = json!({"actionMethodName": function});
        event["common"]["invokedFunction"] = json!(function);
    }
    if kind == "MESSAGE" {
        let id = format!("{:x}", rand::random::<u64>());
        event["message"] = json!({
            "name": format!("{space}/messages/{id}.{id}"),
            "sender": user,
            "createTime": time,
            "text": format!("@BAC {text}"),
            "argumentText": format!(" {text}"),
            "thread": {"name": format!("{space}/threads/{id}")},
            "space": {"name": space},
        });
    }
    let forgery = Forgery::parse(req["signature"].as_str().unwrap_or(""));
    let token = match issuer().token(project, json!({}), now, forgery) {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e}))),
    };
    let mut post = reqwest::Client::new().post(url).json(&event);
    if req["signature"] != "none" {
        post = post.bearer_auth(token);
    }
    let answer = match post.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            json!({"status": status, "body": r.text().await.unwrap_or_default()})
        }
        Err(e) => json!({"status": 0, "error": e.to_string()}),
    };
    (
        StatusCode::OK,
        Json(json!({"event": event, "answer": answer})),
    )
}
