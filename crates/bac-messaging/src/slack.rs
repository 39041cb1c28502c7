//! Slack, both ways. Out: the Web API with the connection's bot token (`auth.test` for the
//! connection test, `chat.postMessage` for deliveries) and a slash command's `response_url`;
//! Slack answers refusals with HTTP 200 and `{"ok": false, "error"}`, sorted here like SMTP
//! answers (sent / try again / give up). Calls are rationed per workspace by Slack's rate
//! tiers ([`quota`]). In: every request Slack sends the connection's Request URL is checked
//! against the app's signing secret ([`verify`]: v0 HMAC, five-minute window, constant-time
//! compare), then [`Inbound`] answers the `url_verification` challenge, publishes an
//! `event_callback` once however often Slack retries it, and acknowledges a slash command
//! at once (Slack waits three seconds), keeping its `response_url` for the answer.
use std::{num::NonZeroU32, time::Duration};

use bac_connector::{Webhook, WebhookInput};
use bac_runtime::connections::timestamp;
use bac_runtime::{
    connections::ConnectionRecord,
    db::Pool,
    events::CloudEvent,
    upstream::{QuotaKey, RetryPolicy, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode, ServiceError,
};
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    inbound::{as_struct, clean, publish_once},
    smtp::Outcome,
};

/// Where Slack is (`BAC_SLACK_URL`): the Web API under `/api/`, the authorise page at
/// `/oauth/v2/authorize`.
pub const DEFAULT_URL: &str = "https://slack.com";
/// Slack events, one per Events API event (`SlackEventReceived`).
pub const EVENT_TOPIC: &str = "bac.messaging.slack_event.v1";
/// Slash commands (`SlackCommandReceived`).
pub const COMMAND_TOPIC: &str = "bac.messaging.slack_command.v1";
/// How far a request's timestamp may be from now (Slack's advice: five minutes).
pub const SIGNATURE_WINDOW_SECS: i64 = 5 * 60;
/// How long a slash command's `response_url` takes answers.
pub const RESPONSE_URL_TTL: Duration = Duration::from_secs(30 * 60);

/// The quota a Web API call counts against: Slack limits each method per workspace by tier,
/// and `chat.postMessage` to about one message a second per channel.
pub fn quota(team: &str, method: &str, channel: &str) -> QuotaKey {
    let (key, per_minute) = match method {
        "chat.postMessage" => (format!("slack/{team}/chat.postMessage/{channel}"), 60),
        // Tier 4
        "auth.test" => (format!("slack/{team}/tier4"), 100),
        // Tier 3
        _ => (format!("slack/{team}/tier3"), 50),
    };
    QuotaKey {
        key,
        per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
    }
}

use crate::err;

/// Slack `error` codes that mean the token no longer works.
const TOKEN_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "no_permission",
    "missing_scope",
    "ekm_access_denied",
    "team_access_not_granted",
];

/// Slack `error` codes worth trying again.
const TEMPORARY_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// The Web API and `response_url`s.
#[derive(Clone)]
pub struct SlackApi {
    http: UpstreamClient,
    base: String,
}

impl SlackApi {
    pub fn new(
        base: &str,
        egress: bac_runtime::upstream::egress::EgressPolicy,
        timeout: Duration,
    ) -> Self {
        // one try per attempt: the delivery's schedule is the retry
        let policy = RetryPolicy::single_attempt(timeout);
        SlackApi {
            http: UpstreamClient::new("slack", None, policy, egress),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The fleet's Slack URL (`BAC_SLACK_URL`, default `https://slack.com`).
    pub fn url_from_env() -> String {
        std::env::var("BAC_SLACK_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_string())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One Web API call: Slack's JSON answer, or what went wrong as an [`Outcome`].
    async fn call(
        &self,
        token: &str,
        method: &str,
        body: &Value,
        quota: QuotaKey,
    ) -> Result<Value, Outcome> {
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: format!("{}/api/{method}", self.base),
            headers: vec![
                (
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                ),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body: Some(serde_json::to_vec(body).unwrap_or_default()),
            idempotent: false,
            operation: method.to_string(),
            quota: Some(quota),
        };
        let resp = self.http.send(&req).await.map_err(|e| upstream(&e))?;
        let status = resp.status.as_u16();
        let answer: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if status == 429 || (500..=599).contains(&status) {
            return Err(Outcome::Temporary(format!("HTTP {status} from Slack")));
        }
        if answer["ok"] == true {
            return Ok(answer);
        }
        let error = answer["error"].as_str().unwrap_or("").to_string();
        Err(if error.is_empty() {
            Outcome::Permanent(
                format!("Slack answered HTTP {status} without ok"),
                ErrorCode::UpstreamRejected,
            )
        } else if TOKEN_ERRORS.contains(&error.as_str()) {
            Outcome::Permanent(
                format!("Slack refused the bot token ({error})"),
                ErrorCode::InvalidCredentials,
            )
        } else if TEMPORARY_ERRORS.contains(&error.as_str()) {
            Outcome::Temporary(format!("Slack answered {error}"))
        } else {
            Outcome::Permanent(
                format!("Slack refused the message ({error})"),
                ErrorCode::UpstreamRejected,
            )
        })
    }

    /// `auth.test`: the workspace and bot a token speaks for (the connection test).
    pub async fn auth_test(&self, token: &str, team: &str) -> Result<Value, ServiceError> {
        self.call(token, "auth.test", &json!({}), quota(team, "auth.test", ""))
            .await
            .map_err(|o| match o {
                Outcome::Permanent(m, code) => err(code, m).suggest(
                    "Reinstall the Slack app to the workspace and store its bot token (xoxb-...)",
                ),
                Outcome::Temporary(m) => err(ErrorCode::UpstreamUnavailable, m),
                Outcome::Sent(m) => err(ErrorCode::Internal, m),
            })
    }

    /// `chat.postMessage`: the outcome and, once sent, the message's `ts`.
    pub async fn post_message(
        &self,
        token: &str,
        team: &str,
        payload: &Value,
    ) -> (Outcome, Option<String>) {
        let channel = payload["channel"].as_str().unwrap_or("");
        match self
            .call(
                token,
                "chat.postMessage",
                payload,
                quota(team, "chat.postMessage", channel),
            )
            .await
        {
            Ok(answer) => {
                let ts = answer["ts"].as_str().unwrap_or("").to_string();
                let channel = answer["channel"].as_str().unwrap_or(channel);
                (
                    Outcome::Sent(format!("ok channel={channel} ts={ts}")),
                    Some(ts).filter(|t| !t.is_empty()),
                )
            }
            Err(o) => (o, None),
        }
    }

    /// Answers a slash command through its `response_url`.
    pub async fn respond(&self, response_url: &str, payload: &Value) -> Outcome {
        if let Err(e) = self.response_url_allowed(response_url) {
            return Outcome::Permanent(e.message, e.code);
        }
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: response_url.to_string(),
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: Some(serde_json::to_vec(payload).unwrap_or_default()),
            idempotent: false,
            operation: "response_url".into(),
            quota: None,
        };
        match self.http.send(&req).await {
            Ok(r) => {
                let code = r.status.as_u16();
                let text = String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    .replace(['\r', '\n'], " ");
                match code {
                    200..=299 => Outcome::Sent(format!("HTTP {code} {text}").trim().to_string()),
                    429 | 500..=599 => Outcome::Temporary(format!("HTTP {code} {text}")),
                    _ => Outcome::Permanent(
                        format!("the command's response_url refused the answer: HTTP {code} {text} (it takes 5 answers within 30 minutes)"),
                        ErrorCode::UpstreamRejected,
                    ),
                }
            }
            Err(e) => upstream(&e),
        }
    }

    /// A `response_url` must be Slack's (`hooks.slack.com`) or the configured Slack's host:
    /// it arrives in a request, so it is not a way to make the fleet post elsewhere.
    pub fn response_url_allowed(&self, response_url: &str) -> Result<(), ServiceError> {
        let ours = url::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        match url::Url::parse(response_url) {
            Ok(u) if u.host_str() == Some("hooks.slack.com") && u.scheme() == "https" => Ok(()),
            Ok(u) if !ours.is_empty() && u.host_str() == Some(ours.as_str()) => Ok(()),
            _ => Err(err(
                ErrorCode::InvalidRequest,
                "the command's response_url is not Slack's",
            )),
        }
    }
}

fn upstream(e: &UpstreamError) -> Outcome {
    match e {
        UpstreamError::AddressNotAllowed(r) => {
            Outcome::Permanent(r.to_string(), ErrorCode::UpstreamAddressNotAllowed)
        }
        UpstreamError::RateLimited { .. } => {
            Outcome::Temporary("Slack answered ratelimited".into())
        }
        UpstreamError::Status { status, .. } if *status >= 500 => {
            Outcome::Temporary(format!("HTTP {status} from Slack"))
        }
        UpstreamError::Status { status, .. } => Outcome::Permanent(
            format!("HTTP {status} from Slack"),
            ErrorCode::UpstreamRejected,
        ),
        UpstreamError::Timeout { after, .. } => {
            Outcome::Temporary(format!("Slack did not answer within {after:?}"))
        }
        UpstreamError::Connect { .. } => Outcome::Temporary("could not connect to Slack".into()),
        other => Outcome::Temporary(format!("calling Slack failed: {other}")),
    }
}

/// Checks a request Slack signed with the app's signing secret (v0): the timestamp within
/// [`SIGNATURE_WINDOW_SECS`] of `now`, the HMAC compared in constant time.
pub fn verify(secret: &str, webhook: &Webhook, now: i64) -> Result<(), ServiceError> {
    let refused = |why: &str| {
        err(
            ErrorCode::Unauthenticated,
            format!("not a request signed by this connection's Slack app: {why}"),
        )
    };
    let ts_text = webhook
        .headers
        .get("x-slack-request-timestamp")
        .map(String::as_str)
        .unwrap_or("");
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| refused("X-Slack-Request-Timestamp is missing"))?;
    if now.abs_diff(ts) > SIGNATURE_WINDOW_SECS as u64 {
        return Err(refused("its timestamp is more than five minutes away"));
    }
    let given = webhook
        .headers
        .get("x-slack-signature")
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| refused("X-Slack-Signature is missing or not v0"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|e| ServiceError::internal("messaging", e.to_string()))?;
    mac.update(b"v0:");
    mac.update(ts_text.as_bytes());
    mac.update(b":");
    mac.update(&webhook.body);
    // verify_slice compares in constant time
    mac.verify_slice(&given)
        .map_err(|_| refused("the signature does not match"))
}

/// What Slack sent, verified.
#[derive(Debug)]
pub enum Request {
    /// A Request URL being saved: answer the challenge.
    UrlVerification { challenge: String },
    /// An Events API event.
    Event(Value),
    /// A slash command (its form fields).
    Command(std::collections::HashMap<String, String>),
    /// Something else Slack sends (interactivity, `app_rate_limited`): acknowledged.
    Other(String),
}

/// Reads a verified request.
pub fn parse(webhook: &Webhook) -> Result<Request, ServiceError> {
    let ct = webhook
        .headers
        .get("content-type")
        .map(String::as_str)
        .unwrap_or("");
    if ct.starts_with("application/x-www-form-urlencoded") {
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&webhook.body)
                .into_owned()
                .collect();
        if form.contains_key("command") {
            return Ok(Request::Command(form));
        }
        if form.contains_key("payload") {
            return Ok(Request::Other("interactivity".into()));
        }
        // Slack checks a slash command's certificate with `ssl_check=1`: answered 200
        if form.get("ssl_check").is_some_and(|v| v == "1") {
            return Ok(Request::Other("ssl_check".into()));
        }
        return Err(err(
            ErrorCode::InvalidRequest,
            "a form from Slack names a command or carries a payload",
        ));
    }
    let body: Value = serde_json::from_slice(&webhook.body)
        .map_err(|_| err(ErrorCode::InvalidRequest, "the body is not JSON"))?;
    match body["type"].as_str() {
        Some("url_verification") => Ok(Request::UrlVerification {
            challenge: body["challenge"].as_str().unwrap_or("").to_string(),
        }),
        Some("event_callback") if body["event"].is_object() && body["event_id"].is_string() => {
            Ok(Request::Event(body))
        }
        Some(other) => Ok(Request::Other(other.chars().take(64).collect())),
        None => Err(err(ErrorCode::InvalidRequest, "the body has no type")),
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> WebhookInput {
    WebhookInput::Reply {
        status,
        content_type: content_type.into(),
        body,
    }
}

/// What the fleet does with Slack's requests.
#[derive(Clone)]
pub struct Inbound {
    db: Pool,
}

impl Inbound {
    pub fn new(db: Pool) -> Self {
        Inbound { db }
    }

    /// Answers a verified request of connection `rec`.
    pub async fn handle(
        &self,
        rec: &ConnectionRecord,
        request: Request,
    ) -> Result<WebhookInput, ServiceError> {
        let team = rec.setting("team_id");
        match request {
            Request::UrlVerification { challenge } => Ok(reply(
                200,
                "application/json",
                serde_json::to_vec(&json!({ "challenge": challenge })).unwrap_or_default(),
            )),
            Request::Event(body) => {
                let from = body["team_id"].as_str().unwrap_or("");
                if !team.is_empty() && from != team {
                    return Err(err(
                        ErrorCode::Unauthenticated,
                        format!("the event is from workspace {from}, this connection is {team}'s"),
                    ));
                }
                self.event(rec, &body).await?;
                Ok(reply(200, "text/plain", Vec::new()))
            }
            Request::Command(form) => {
                let from = form.get("team_id").map(String::as_str).unwrap_or("");
                if !team.is_empty() && from != team {
                    return Err(err(
                        ErrorCode::Unauthenticated,
                        format!(
                            "the command is from workspace {from}, this connection is {team}'s"
                        ),
                    ));
                }
                self.command(rec, &form).await?;
                // acknowledged now; the answer goes to the response_url when it is ready
                Ok(reply(200, "text/plain", Vec::new()))
            }
            Request::Other(kind) => {
                tracing::info!(connection = %rec.id, kind = %kind, "Slack request acknowledged, not handled");
                Ok(reply(200, "text/plain", Vec::new()))
            }
        }
    }

    /// Publishes an event once per `event_id`.
    async fn event(&self, rec: &ConnectionRecord, body: &Value) -> Result<(), ServiceError> {
        let event = &body["event"];
        let s = crate::inbound::text;
        let event_id = s(&body["event_id"]);
        let channel = s(&event["channel"]);
        let event_type = s(&event["type"]);
        let time = body["event_time"]
            .as_i64()
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .unwrap_or_else(Utc::now);
        let data = bac_proto::events::v1::SlackEventReceived {
            tenant_id: rec.tenant_id.clone(),
            connection_id: rec.id.clone(),
            team_id: s(&body["team_id"]),
            event_id: event_id.clone(),
            event_type: event_type.clone(),
            event_subtype: s(&event["subtype"]),
            channel: channel.clone(),
            user: s(&event["user"]),
            bot_id: s(&event["bot_id"]),
            text: s(&event["text"]).chars().take(40_000).collect(),
            ts: s(&event["ts"]),
            thread_ts: s(&event["thread_ts"]),
            event: as_struct(event),
            event_time: Some(timestamp(time)),
        };
        let kind: String = event_type
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        let ce = CloudEvent {
            id: Uuid::now_v7(),
            source: "/bac/messaging".into(),
            ty: format!(
                "bac.messaging.slack.{}",
                if kind.is_empty() { "event" } else { &kind }
            ),
            subject: Some(format!("slack/{channel}")),
            time,
            tenant_id: rec.tenant_id.clone(),
            connection_id: Some(rec.id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: EVENT_TOPIC.into(),
            key: format!("{}/slack/{}", rec.tenant_id, channel),
        };
        let mut client = self.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        if !publish_once(&tx, &rec.id, &event_id, &ce).await? {
            tracing::info!(connection = %rec.id, event_id = %event_id, "Slack event seen already (a retry): acknowledged");
            return Ok(());
        }
        tx.commit().await.map_err(db_err)?;
        metrics::counter!("bac_messaging_slack_events_total", "type" => kind).increment(1);
        Ok(())
    }

    /// Keeps the command's `response_url` and publishes the command.
    async fn command(
        &self,
        rec: &ConnectionRecord,
        form: &std::collections::HashMap<String, String>,
    ) -> Result<(), ServiceError> {
        let f = |k: &str| clean(form.get(k).map(String::as_str).unwrap_or(""));
        let response_url = f("response_url");
        if url::Url::parse(&response_url).is_err() {
            return Err(err(
                ErrorCode::InvalidRequest,
                "the command has no response_url",
            ));
        }
        let id = Uuid::now_v7();
        let now = Utc::now();
        let data = bac_proto::events::v1::SlackCommandReceived {
            command_id: id.to_string(),
            tenant_id: rec.tenant_id.clone(),
            connection_id: rec.id.clone(),
            team_id: f("team_id"),
            command: f("command"),
            text: f("text"),
            user_id: f("user_id"),
            user_name: f("user_name"),
            channel_id: f("channel_id"),
            channel_name: f("channel_name"),
            trigger_id: f("trigger_id"),
            received_at: Some(timestamp(now)),
        };
        let ce = CloudEvent {
            id: Uuid::now_v7(),
            source: "/bac/messaging".into(),
            ty: "bac.messaging.slack.command".into(),
            subject: Some(format!("slack_command/{id}")),
            time: now,
            tenant_id: rec.tenant_id.clone(),
            connection_id: Some(rec.id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: COMMAND_TOPIC.into(),
            // a channel's commands stay in order
            key: format!("{}/slack_command/{}", rec.tenant_id, data.channel_id),
        };
        let mut client = self.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute(
            "INSERT INTO slack_commands (id, tenant_id, connection_id, command, channel_id, response_url, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
            &[
                &id,
                &rec.tenant_id,
                &rec.id,
                &data.command,
                &data.channel_id,
                &response_url,
                &RESPONSE_URL_TTL.as_secs_f64(),
            ],
        )
        .await
        .map_err(crate::deliveries::pg_err)?;
        // a signed command replayed within Slack's five minutes is the same command: its
        // trigger_id (or, without one, its response_url) is seen already
        let seen_as = match data.trigger_id.as_str() {
            "" => format!("command:{response_url}"),
            t => format!("command:{t}"),
        };
        if !publish_once(&tx, &rec.id, &seen_as, &ce).await? {
            tracing::info!(connection = %rec.id, "Slack command seen already (a replay): acknowledged");
            return Ok(());
        }
        tx.execute(
            "DELETE FROM slack_commands WHERE id IN (
               SELECT id FROM slack_commands WHERE expires_at < now() - interval '1 day' LIMIT 100)",
            &[],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(connection = %rec.id, command = %data.command, command_id = %id, "Slack command acknowledged");
        Ok(())
    }
}

use crate::db_err;

/// A stored command's `response_url`, while it takes answers.
pub async fn response_url(
    db: &Pool,
    tenant: &str,
    connection_id: &str,
    command_id: &Uuid,
) -> Result<Option<(String, String)>, ServiceError> {
    let client = db.get().await.map_err(db_err)?;
    let row = client
        .query_opt(
            "SELECT response_url, channel_id, expires_at > now() FROM slack_commands
              WHERE id = $1 AND tenant_id = $2 AND connection_id = $3",
            &[command_id, &tenant, &connection_id],
        )
        .await
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some(r) if !r.get::<_, bool>(2) => Err(err(
            ErrorCode::InvalidRequest,
            "the command's response_url expired (Slack takes answers for 30 minutes)",
        )),
        Some(r) => Ok(Some((r.get(0), r.get(1)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, ts: i64, body: &[u8]) -> Webhook {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Webhook {
            headers: [
                ("x-slack-request-timestamp".to_string(), ts.to_string()),
                ("x-slack-signature".to_string(), format!("v0={sig}")),
            ]
            .into(),
            body: body.to_vec(),
            query: String::new(),
        }
    }

    #[test]
    fn slacks_published_example_verifies_and_a_change_does_not() {
        // "Verifying requests from Slack"
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let w = signed(secret, 1_531_420_618, body);
        assert_eq!(
            w.headers["x-slack-signature"],
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        assert!(verify(secret, &w, 1_531_420_618 + 10).is_ok());
        // stale, forged, tampered, missing
        assert!(verify(secret, &w, 1_531_420_618 + 301).is_err());
        assert!(verify("another-secret", &w, 1_531_420_618).is_err());
        let mut tampered = w.clone();
        tampered.body.push(b'x');
        assert!(verify(secret, &tampered, 1_531_420_618).is_err());
        let mut bare = w.clone();
        bare.headers.remove("x-slack-signature");
        assert!(verify(secret, &bare, 1_531_420_618).is_err());
        let Request::Command(form) = parse(&Webhook {
            headers: [(
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            )]
            .into(),
            ..w
        })
        .unwrap() else {
            panic!("a slash command")
        };
        assert_eq!(form["command"], "/webhook-collect");
    }

    #[test]
    fn response_urls_are_slacks_only() {
        let api = SlackApi::new(
            "http://127.0.0.1:7006",
            bac_runtime::upstream::egress::EgressPolicy::default(),
            Duration::from_secs(5),
        );
        assert!(api
            .response_url_allowed("https://hooks.slack.com/commands/T1/2/3")
            .is_ok());
        assert!(api
            .response_url_allowed("http://127.0.0.1:7006/commands/T1/2/3")
            .is_ok());
        assert!(api
            .response_url_allowed("http://169.254.169.254/latest/meta-data")
            .is_err());
        assert!(api
            .response_url_allowed("http://hooks.slack.com/commands/T1/2/3")
            .is_err());
    }
}
