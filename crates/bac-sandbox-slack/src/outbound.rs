//! What Slack sends an app, driven by tests through admin routes: Events API requests and
//! slash commands, signed with the app's signing secret (v0), each waited for at most
//! Slack's three seconds (a slower answer is a failure, as Slack shows the user
//! `operation_timeout`), and the `response_url`s slash commands carry (good for five
//! answers in thirty minutes).
use std::time::{Duration, Instant};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bac_sandbox_kit::webhooks::Signature;
use serde_json::{json, Value};

use crate::{CommandUrl, Slack};

/// How long Slack waits for an app's answer.
pub const SLACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How many answers a `response_url` takes, and for how long.
pub const RESPONSE_URL_USES: usize = 5;
pub const RESPONSE_URL_SECS: i64 = 30 * 60;

fn random(prefix: &str, len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

/// How a test wants a request signed: as Slack does, with another secret, or five minutes
/// and more in the past.
fn signature(slack: &Slack, how: &str) -> (Signature, i64) {
    let now = slack.clock.now();
    match how {
        "forged" => (
            Signature::SlackV0 {
                secret: "not-the-signing-secret".into(),
            },
            now,
        ),
        "stale" => (
            Signature::SlackV0 {
                secret: slack.cfg.signing_secret.clone(),
            },
            now - 6 * 60,
        ),
        _ => (
            Signature::SlackV0 {
                secret: slack.cfg.signing_secret.clone(),
            },
            now,
        ),
    }
}

/// One request to the app and what came back.
async fn deliver(
    url: &str,
    content_type: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Value {
    let client = reqwest::Client::builder()
        .timeout(SLACK_TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut req = client.post(url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let started = Instant::now();
    match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let text = resp.text().await.unwrap_or_default();
            json!({"status": status, "content_type": ct, "body": text,
                   "elapsed_ms": started.elapsed().as_millis() as u64, "timed_out": false})
        }
        Err(e) => json!({"status": 0, "body": "", "error": e.to_string(),
                         "elapsed_ms": started.elapsed().as_millis() as u64,
                         "timed_out": e.is_timeout()}),
    }
}

fn signed_headers(
    slack: &Slack,
    how: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, Response> {
    let (sig, ts) = signature(slack, how);
    sig.headers("", ts, body)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e).into_response())
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

/// `POST /_sandbox/slack/events` `{"url", "event", "deliveries": 1, "signature": "valid"}`:
/// one `event_callback`, sent `deliveries` times as Slack retries it (the second and later
/// with `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`), each answer reported.
pub async fn send_event(State(slack): State<Slack>, Json(req): Json<Value>) -> Response {
    let Some(url) = req["url"].as_str() else {
        return bad("url is required");
    };
    let Some(event) = req.get("event").filter(|e| e.is_object()) else {
        return bad("event is required: {\"type\": \"message\", ...}");
    };
    let deliveries = req["deliveries"].as_u64().unwrap_or(1).clamp(1, 4);
    let how = req["signature"].as_str().unwrap_or("valid");
    let event_id = random("Ev", 10);
    let now = slack.clock.now();
    let mut event = event.clone();
    if event.get("event_ts").is_none() {
        event["event_ts"] = json!(format!("{now}.000100"));
    }
    let envelope = json!({
        "token": "sandbox-verification-token",
        "team_id": slack.cfg.team_id,
        "api_app_id": slack.cfg.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": now,
        "authorizations": [{"enterprise_id": null, "team_id": slack.cfg.team_id,
                            "user_id": slack.cfg.bot_user_id, "is_bot": true}],
        "is_ext_shared_channel": false,
    });
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let mut attempts = Vec::new();
    for n in 0..deliveries {
        let mut headers = match signed_headers(&slack, how, &body) {
            Ok(h) => h,
            Err(r) => return r,
        };
        if n > 0 {
            headers.push(("x-slack-retry-num".into(), n.to_string()));
            headers.push(("x-slack-retry-reason".into(), "http_timeout".into()));
        }
        attempts.push(deliver(url, "application/json", headers, body.clone()).await);
    }
    Json(json!({"event_id": event_id, "attempts": attempts})).into_response()
}

/// `POST /_sandbox/slack/url_verification` `{"url"}`: Slack's challenge when a Request URL is
/// saved; `verified` when the app answered the challenge back.
pub async fn verify_url(State(slack): State<Slack>, Json(req): Json<Value>) -> Response {
    let Some(url) = req["url"].as_str() else {
        return bad("url is required");
    };
    let how = req["signature"].as_str().unwrap_or("valid");
    let challenge = random("", 48);
    let body = serde_json::to_vec(&json!({
        "token": "sandbox-verification-token",
        "challenge": challenge,
        "type": "url_verification",
    }))
    .unwrap_or_default();
    let headers = match signed_headers(&slack, how, &body) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let answer = deliver(url, "application/json", headers, body).await;
    let text = answer["body"].as_str().unwrap_or("");
    // Slack takes the challenge as plain text or as {"challenge": ...}
    let verified = answer["status"] == 200
        && (text == challenge
            || serde_json::from_str::<Value>(text)
                .is_ok_and(|v| v["challenge"].as_str() == Some(challenge.as_str())));
    Json(json!({"verified": verified, "answer": answer})).into_response()
}

/// `POST /_sandbox/slack/commands` `{"url", "command", "text", "user_id", "channel_id",
/// "deliveries"}`: a slash command as Slack posts it, with a `response_url` served here
/// (`deliveries` > 1 replays the same signed request).
pub async fn send_command(State(slack): State<Slack>, Json(req): Json<Value>) -> Response {
    let Some(url) = req["url"].as_str() else {
        return bad("url is required");
    };
    let command = req["command"].as_str().unwrap_or("/bac");
    let how = req["signature"].as_str().unwrap_or("valid");
    let channel_id = req["channel_id"].as_str().unwrap_or("C0GENERAL1");
    let id = random("", 12);
    let secret = random("", 24);
    let base = slack
        .public_url
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let response_url = format!("{base}/commands/{}/{id}/{secret}", slack.cfg.team_id);
    slack.with(|s| {
        s.commands.insert(
            id.clone(),
            CommandUrl {
                secret: secret.clone(),
                expires_at: slack.clock.now() + RESPONSE_URL_SECS,
                responses: Vec::new(),
            },
        )
    });
    let channel_name = slack
        .cfg
        .channels
        .iter()
        .find(|(c, _, _)| c == channel_id)
        .map_or("directmessage", |(_, n, _)| n.as_str());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "sandbox-verification-token")
        .append_pair("team_id", &slack.cfg.team_id)
        .append_pair("team_domain", &slack.cfg.domain)
        .append_pair("channel_id", channel_id)
        .append_pair("channel_name", channel_name)
        .append_pair("user_id", req["user_id"].as_str().unwrap_or("U0HUMAN001"))
        .append_pair("user_name", req["user_name"].as_str().unwrap_or("grace"))
        .append_pair("command", command)
        .append_pair("text", req["text"].as_str().unwrap_or(""))
        .append_pair("api_app_id", &slack.cfg.app_id)
        .append_pair("is_enterprise_install", "false")
        .append_pair("response_url", &response_url)
        .append_pair("trigger_id", &random("", 20))
        .finish()
        .into_bytes();
    // `deliveries` > 1: the same signed request again (a replay, within the signature's window)
    let mut answers = Vec::new();
    for _ in 0..req["deliveries"].as_u64().unwrap_or(1).clamp(1, 4) {
        let headers = match signed_headers(&slack, how, &body) {
            Ok(h) => h,
            Err(r) => return r,
        };
        answers.push(
            deliver(
                url,
                "application/x-www-form-urlencoded",
                headers,
                body.clone(),
            )
            .await,
        );
    }
    let answer = answers.first().cloned().unwrap_or(Value::Null);
    Json(json!({"command_id": id, "response_url": response_url, "answer": answer, "answers": answers}))
        .into_response()
}

/// `POST /commands/<team>/<id>/<secret>`: a `response_url`.
pub async fn respond(
    State(slack): State<Slack>,
    Path((_team, id, secret)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let now = slack.clock.now();
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    if message["text"].as_str().unwrap_or("").is_empty() && !message["blocks"].is_array() {
        return (StatusCode::BAD_REQUEST, "no_text").into_response();
    }
    slack.with(|s| match s.commands.get_mut(&id) {
        Some(c) if c.secret == secret && c.expires_at > now => {
            if c.responses.len() >= RESPONSE_URL_USES {
                return (StatusCode::NOT_FOUND, "used_url").into_response();
            }
            c.responses.push(message);
            (StatusCode::OK, "ok").into_response()
        }
        Some(c) if c.secret == secret => (StatusCode::NOT_FOUND, "expired_url").into_response(),
        _ => (StatusCode::NOT_FOUND, "invalid_url").into_response(),
    })
}

/// `GET /_sandbox/slack/commands/<id>`: what the app answered to a command's `response_url`.
pub async fn command(State(slack): State<Slack>, Path(id): Path<String>) -> Response {
    match slack.with(|s| s.commands.get(&id).cloned()) {
        Some(c) => Json(json!({"responses": c.responses})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such command"})),
        )
            .into_response(),
    }
}

/// `POST /_sandbox/slack/sign` `{"body", "timestamp"}`: the headers Slack would sign `body`
/// with (checked against slack_sdk's verifier).
pub async fn sign(State(slack): State<Slack>, Json(req): Json<Value>) -> Response {
    let body = req["body"].as_str().unwrap_or("");
    let ts = req["timestamp"]
        .as_i64()
        .unwrap_or_else(|| slack.clock.now());
    let sig = Signature::SlackV0 {
        secret: slack.cfg.signing_secret.clone(),
    };
    match sig.headers("", ts, body.as_bytes()) {
        Ok(h) => Json(json!(h
            .into_iter()
            .collect::<std::collections::HashMap<String, String>>()))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
