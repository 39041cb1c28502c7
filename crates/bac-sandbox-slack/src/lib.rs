//! The Slack sandbox, for bac-messaging's tests and a developer's fleet. Slack's side of
//! both directions:
//!
//! - [`api`]: the Web API methods the fleet calls, as Slack answers them (HTTP 200 with
//!   `{"ok": false, "error": ...}` for every refusal, HTTP 429 with `Retry-After` when rate
//!   limited): `auth.test`, `chat.postMessage` (text, Block Kit, `thread_ts`),
//!   `conversations.history`, `conversations.replies`, `conversations.list` and
//!   `oauth.v2.access`; the token as `Authorization: Bearer` or a `token` field, JSON or
//!   form bodies. OAuth v2's authorise page is the kit's (consent at once as the registered
//!   client's user; clients registered with `POST /_sandbox/oauth/clients`), the code
//!   redeemed in Slack's dialect (a bot token that does not expire, `team`, `bot_user_id`).
//! - [`outbound`]: what Slack sends an app: Events API requests (`url_verification`,
//!   `event_callback` retried with `X-Slack-Retry-Num`) and slash commands (a form with a
//!   `response_url` served here), signed with the app's signing secret (v0), each waited
//!   for at most Slack's three seconds.
//!
//! Faults (the kit's rules, `protocol` `web`, `model` the method name) at
//! `/_sandbox/slack/faults`; what was posted at `GET /_sandbox/slack/messages`.
pub mod api;
pub mod outbound;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::{
    faults::{self, Call, Faults},
    OAuthConfig, OAuthServer, SandboxClock,
};
use serde_json::{json, Value};

/// The workspace, the app installed in it and its channels.
#[derive(Debug, Clone)]
pub struct SlackSandboxConfig {
    pub team_id: String,
    pub team_name: String,
    pub domain: String,
    /// The bot token a manual install shows (`xoxb-...`); OAuth installs get tokens of
    /// their own.
    pub bot_token: String,
    pub bot_user_id: String,
    pub bot_id: String,
    pub app_id: String,
    /// What the app's requests are signed with.
    pub signing_secret: String,
    /// `(id, name, bot_is_member)`.
    pub channels: Vec<(String, String, bool)>,
}

/// The sandbox's default bot token (dev-up and tests use it for manual installs).
pub const DEFAULT_BOT_TOKEN: &str = "xoxb-0000000001-0000000002-sandboxbottoken";
/// The sandbox app's default signing secret.
pub const DEFAULT_SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

impl Default for SlackSandboxConfig {
    fn default() -> Self {
        SlackSandboxConfig {
            team_id: "T0SANDBOX1".into(),
            team_name: "Sandbox Workspace".into(),
            domain: "sandbox-workspace".into(),
            bot_token: DEFAULT_BOT_TOKEN.into(),
            bot_user_id: "U0SANDBOT1".into(),
            bot_id: "B0SANDBOT1".into(),
            app_id: "A0SANDAPP1".into(),
            signing_secret: DEFAULT_SIGNING_SECRET.into(),
            channels: vec![
                ("C0GENERAL1".into(), "general".into(), true),
                ("C0ALERTS01".into(), "alerts".into(), true),
                ("C0PRIVATE1".into(), "leadership".into(), false),
            ],
        }
    }
}

/// One message in a channel.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
    pub user: String,
    pub bot_id: Option<String>,
}

impl Message {
    fn to_json(&self) -> Value {
        let mut m = json!({"type": "message", "ts": self.ts, "text": self.text, "user": self.user});
        if let Some(b) = &self.bot_id {
            m["bot_id"] = json!(b);
        }
        if !self.blocks.is_null() {
            m["blocks"] = self.blocks.clone();
        }
        if let Some(t) = &self.thread_ts {
            m["thread_ts"] = json!(t);
        }
        m
    }
}

/// A slash command's `response_url`: what was posted to it.
#[derive(Debug, Clone, Default)]
pub struct CommandUrl {
    pub secret: String,
    pub expires_at: i64,
    pub responses: Vec<Value>,
}

#[derive(Debug, Default)]
struct State_ {
    messages: Vec<Message>,
    seq: u64,
    commands: HashMap<String, CommandUrl>,
}

/// The sandbox: configuration, clock, OAuth server, faults and what was posted.
#[derive(Clone)]
pub struct Slack {
    pub cfg: Arc<SlackSandboxConfig>,
    pub clock: SandboxClock,
    pub oauth: OAuthServer,
    pub faults: Arc<Faults>,
    /// The URL Slack's own callbacks are reached at (the `response_url`s it hands out).
    pub public_url: Arc<Mutex<String>>,
    state: Arc<Mutex<State_>>,
}

impl Slack {
    fn with<T>(&self, f: impl FnOnce(&mut State_) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// A message timestamp: seconds and a sequence, unique per workspace as Slack's are.
    fn next_ts(&self, s: &mut State_) -> String {
        s.seq += 1;
        format!("{}.{:06}", self.clock.now(), s.seq % 1_000_000)
    }

    pub fn messages(&self) -> Vec<Message> {
        self.with(|s| s.messages.clone())
    }
}

/// The Web API's error body (HTTP 200, as Slack answers).
pub fn slack_error(error: &str) -> Response {
    (StatusCode::OK, Json(json!({"ok": false, "error": error}))).into_response()
}

/// The sandbox's router; `clock` moves token and message times in tests.
pub fn router(cfg: SlackSandboxConfig, clock: SandboxClock) -> (Router, Slack) {
    let oauth = OAuthServer::new(
        OAuthConfig {
            // bot tokens without token rotation do not expire
            token_lifetime_secs: 10 * 366 * 86_400,
            ..OAuthConfig::default()
        },
        clock.clone(),
    );
    let slack = Slack {
        cfg: Arc::new(cfg),
        clock: clock.clone(),
        oauth: oauth.clone(),
        faults: Arc::new(Faults::new(&["web"], &[])),
        public_url: Arc::new(Mutex::new(String::new())),
        state: Arc::default(),
    };
    let web = Router::new()
        .route("/api/:method", post(api::call).get(api::call))
        .layer(axum::middleware::from_fn_with_state(
            slack.faults.clone(),
            apply_faults,
        ))
        .with_state(slack.clone());
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/commands/:team/:id/:secret", post(outbound::respond))
        .route("/_sandbox/slack/events", post(outbound::send_event))
        .route(
            "/_sandbox/slack/url_verification",
            post(outbound::verify_url),
        )
        .route("/_sandbox/slack/commands", post(outbound::send_command))
        .route("/_sandbox/slack/commands/:id", get(outbound::command))
        .route("/_sandbox/slack/sign", post(outbound::sign))
        .route("/_sandbox/slack/messages", get(api::all_messages))
        .with_state(slack.clone())
        .merge(web)
        .merge(faults::routes("/_sandbox/slack", slack.faults.clone()))
        .merge(oauth.router(&[]))
        .merge(oauth.authorize_router("/oauth/v2/authorize", "/_sandbox/slack/oauth/revoke"))
        .merge(clock.router());
    (app, slack)
}

/// Counts each Web API call and applies the matching fault rules, answered Slack's way: a
/// 429 with `Retry-After` and `ratelimited`, a 5xx, `token_revoked` for expired credentials,
/// or a named error with HTTP 200.
async fn apply_faults(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let method = req.uri().path().trim_start_matches("/api/").to_string();
    let decision = faults.decide(&Call {
        protocol: "web",
        model: Some(method.as_str()),
        method: Some(req.method().as_str()),
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if decision.session_expired {
        return slack_error("token_revoked");
    }
    if let Some(error) = decision.error {
        return slack_error(&error);
    }
    let failure = match (decision.failure, decision.lose_response) {
        (None, false) => return next.run(req).await,
        (f, true) => {
            let _ = next.run(req).await;
            f.unwrap_or(faults::Failure {
                status: 502,
                retry_after: None,
            })
        }
        (Some(f), false) => f,
    };
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let error = if failure.status == 429 {
        "ratelimited"
    } else {
        "internal_error"
    };
    let mut resp = (status, Json(json!({"ok": false, "error": error}))).into_response();
    if failure.status == 429 {
        let secs = failure.retry_after.unwrap_or(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}

/// Serves the sandbox at `addr`; `public_url` is where clients reach it (the `response_url`s
/// it hands out), its own address when None.
pub async fn spawn_slack(
    cfg: SlackSandboxConfig,
    addr: SocketAddr,
    public_url: Option<String>,
) -> anyhow::Result<(SocketAddr, Slack, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Slack sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let (app, slack) = router(cfg, SandboxClock::default());
    *slack.public_url.lock().unwrap_or_else(|e| e.into_inner()) =
        public_url.unwrap_or_else(|| format!("http://{local}"));
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "slack sandbox server stopped");
        }
    });
    Ok((local, slack, handle))
}
