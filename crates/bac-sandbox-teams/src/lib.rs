//! The Microsoft Teams sandbox: the Bot Framework's side of a bot, for bac-messaging's tests
//! and a developer's fleet.
//!
//! - The Bot Framework's signing keys: OpenID metadata at
//!   `/v1/.well-known/openidconfiguration` and the JWKS at `/v1/.well-known/keys`, the key
//!   endorsed for `msteams` (the kit's [`bac_sandbox_kit::issuer`]).
//! - The token endpoint bots get their connector-service token from (client credentials,
//!   `POST /botframework.com/oauth2/v2.0/token`, bots registered with
//!   `POST /_sandbox/oauth/clients` as `{client_id: <App ID>, client_secret}`).
//! - The connector service: `POST /v3/conversations/<id>/activities[/<replyToId>]` with the
//!   bot's token, answered `{"id"}`; what arrived at `GET /_sandbox/teams/replies`.
//! - Teams' side of a conversation: `POST /_sandbox/teams/activities` `{"url", "app_id",
//!   "text", "conversation_id", "type", "signature"}` posts an activity to a bot's messaging
//!   endpoint with a JWT as the Bot Framework signs it (`signature`: `forged`, `expired`,
//!   `other_audience` to sign it wrong), and reports the answer.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::{
    issuer::{Forgery, Issuer},
    OAuthConfig, OAuthServer, SandboxClock,
};
use serde_json::{json, Value};

/// The issuer the Bot Framework's tokens name.
pub const ISSUER: &str = "https://api.botframework.com";
/// Where bots get tokens.
pub const TOKEN_PATH: &str = "/botframework.com/oauth2/v2.0/token";

#[derive(Clone)]
struct Teams {
    base: Arc<Mutex<String>>,
    clock: SandboxClock,
    oauth: OAuthServer,
    issuer: Issuer,
    replies: Arc<Mutex<Vec<Value>>>,
}

impl Teams {
    fn base(&self) -> String {
        self.base.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn router(base: Arc<Mutex<String>>, clock: SandboxClock, public: String) -> Router {
    let oauth = OAuthServer::new(OAuthConfig::default(), clock.clone());
    let issuer = Issuer {
        issuer: ISSUER.into(),
        kid: "sandbox-botframework-1".into(),
        endorsements: vec!["msteams".into()],
    };
    let teams = Teams {
        base,
        clock: clock.clone(),
        oauth: oauth.clone(),
        issuer: issuer.clone(),
        replies: Arc::default(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v3/conversations/:conversation/activities", post(activity))
        .route(
            "/v3/conversations/:conversation/activities/:reply_to",
            post(reply),
        )
        .route("/_sandbox/teams/activities", post(send_activity))
        .route("/_sandbox/teams/replies", get(replies))
        .with_state(teams)
        .merge(issuer.router(
            "/v1/.well-known/openidconfiguration",
            "/v1/.well-known/keys",
            public,
        ))
        .merge(oauth.router(&[TOKEN_PATH]))
        .merge(clock.router())
}

async fn activity(
    State(t): State<Teams>,
    Path(conversation): Path<String>,
    headers: HeaderMap,
    Json(a): Json<Value>,
) -> Response {
    record(&t, &headers, conversation, None, a)
}

async fn reply(
    State(t): State<Teams>,
    Path((conversation, reply_to)): Path<(String, String)>,
    headers: HeaderMap,
    Json(a): Json<Value>,
) -> Response {
    record(&t, &headers, conversation, Some(reply_to), a)
}

/// The connector service: a bot's token, then the activity kept.
fn record(
    t: &Teams,
    headers: &HeaderMap,
    conversation: String,
    reply_to: Option<String>,
    a: Value,
) -> Response {
    let Some(token) = t.oauth.check_bearer(headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "Unauthorized", "message": "Authorization has been denied for this request."}})),
        )
            .into_response();
    };
    if a["type"] != "message"
        || (a["text"].as_str().unwrap_or("").is_empty() && !a["attachments"].is_array())
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "BadArgument", "message": "Activity must be a message with text or attachments"}})),
        )
            .into_response();
    }
    let id = format!("1:{:x}", rand::random::<u64>());
    t.replies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(json!({
            "id": id, "conversation_id": conversation, "reply_to_id": reply_to,
            "bot": token.subject, "activity": a,
        }));
    (StatusCode::OK, Json(json!({ "id": id }))).into_response()
}

async fn replies(State(t): State<Teams>) -> Json<Value> {
    Json(json!({"replies": *t.replies.lock().unwrap_or_else(|e| e.into_inner())}))
}

/// Posts an activity to a bot's messaging endpoint as the Bot Framework does.
async fn send_activity(State(t): State<Teams>, Json(req): Json<Value>) -> Response {
    let (Some(url), Some(app_id)) = (req["url"].as_str(), req["app_id"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "url and app_id are required"})),
        )
            .into_response();
    };
    let service_url = format!("{}/", t.base());
    let id = format!("f:{:x}", rand::random::<u64>());
    let conversation = req["conversation_id"]
        .as_str()
        .unwrap_or("a:1sandboxPersonalChat")
        .to_string();
    let activity = json!({
        "type": req["type"].as_str().unwrap_or("message"),
        "id": id,
        "timestamp": "2026-12-05T10:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": req["channel_id"].as_str().unwrap_or("msteams"),
        "from": {"id": "29:1sandboxUser", "name": "Grace Hopper",
                 "aadObjectId": "6e0b6f1e-0000-4000-8000-000000000001"},
        "conversation": {"id": conversation, "conversationType": "personal",
                         "tenantId": "72f988bf-0000-4000-8000-000000000002"},
        "recipient": {"id": format!("28:{app_id}"), "name": "BAC"},
        "text": req["text"].as_str().unwrap_or(""),
        "textFormat": "plain",
        "locale": "en-US",
        "channelData": {"tenant": {"id": "72f988bf-0000-4000-8000-000000000002"}},
    });
    let forgery = Forgery::parse(req["signature"].as_str().unwrap_or(""));
    let token = match t.issuer.token(
        app_id,
        json!({"serviceurl": service_url}),
        t.clock.now(),
        forgery,
    ) {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let client = reqwest::Client::new();
    let mut post = client.post(url).json(&activity);
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
    Json(json!({"activity": activity, "answer": answer})).into_response()
}

/// Serves the sandbox at `addr`; `public_url` is where clients reach it (the activities'
/// `serviceUrl`, the JWKS URL), its own address when None.
pub async fn spawn_teams(
    addr: SocketAddr,
    public_url: Option<String>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Teams sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let public = public_url.unwrap_or_else(|| format!("http://{local}"));
    let app = router(
        Arc::new(Mutex::new(public.clone())),
        SandboxClock::default(),
        public,
    );
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "teams sandbox server stopped");
        }
    });
    Ok((local, handle))
}
