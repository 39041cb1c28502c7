//! A Microsoft Teams bot through the Bot Framework (connection channel `teams_bot`: the bot's
//! Microsoft App ID in the settings, its client secret as `app_password` in Vault). In: the
//! Bot Framework posts activities to the bot's messaging endpoint, which is the connection's
//! webhook URL; each carries a JWT the Bot Framework signed, checked against its OpenID
//! metadata (issuer `https://api.botframework.com`, audience the App ID, the key endorsed for
//! the activity's channel, the token's `serviceurl` claim the activity's `serviceUrl`), then published on
//! `bac.messaging.teams_activity.v1` once per activity id, the conversation's service URL
//! kept for replies. Out: a reply is a delivery posted to
//! `<serviceUrl>/v3/conversations/<id>/activities[/<replyToId>]` with the bot's token from
//! the client credentials grant (the kit's token source, minted per replica).
use std::{sync::Arc, time::Duration};

use bac_connector::{
    jwt::{Expect, JwtVerifier, KeySource},
    Grant, TokenSource, Webhook, WebhookInput,
};
use bac_runtime::{
    connections::ConnectionRecord,
    db::Pool,
    events::CloudEvent,
    upstream::{RetryPolicy, UpstreamClient, UpstreamError, UpstreamRequest},
    vault::Secret,
    ErrorCode, ServiceError,
};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::smtp::Outcome;

/// Activities of Teams bots.
pub const ACTIVITY_TOPIC: &str = "bac.messaging.teams_activity.v1";
/// Who signs the Bot Framework's activities.
pub const ISSUER: &str = "https://api.botframework.com";
/// The scope of a bot's token for the Bot Framework's connector service.
pub const SCOPE: &str = "https://api.botframework.com/.default";

/// Where the Bot Framework is (`BAC_BOTFRAMEWORK_OPENID_URL`, `BAC_BOTFRAMEWORK_LOGIN_URL`,
/// `{tenant}` in the latter replaced by a single-tenant bot's `app_tenant_id`, else
/// `botframework.com`).
#[derive(Debug, Clone)]
pub struct BotFrameworkSettings {
    pub openid_url: String,
    pub token_url: String,
}

impl BotFrameworkSettings {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        BotFrameworkSettings {
            openid_url: var(
                "BAC_BOTFRAMEWORK_OPENID_URL",
                "https://login.botframework.com/v1/.well-known/openidconfiguration",
            ),
            token_url: var(
                "BAC_BOTFRAMEWORK_LOGIN_URL",
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            ),
        }
    }

    /// The token endpoint of a bot.
    pub fn token_url_of(&self, rec: &ConnectionRecord) -> String {
        let tenant = match rec.setting("app_tenant_id") {
            "" => "botframework.com",
            t => t,
        };
        self.token_url.replace("{tenant}", tenant)
    }
}

/// The client credentials grant of a bot connection.
pub fn grant(
    settings: &BotFrameworkSettings,
    rec: &ConnectionRecord,
    secret: &Secret,
) -> Result<Grant, ServiceError> {
    let password = secret
        .data
        .get("app_password")
        .ok_or_else(|| {
            ServiceError::new(
                "messaging",
                ErrorCode::InvalidCredentials,
                "the connection has no app_password",
            )
        })?
        .expose_secret()
        .to_string();
    Ok(Grant::ClientCredentials {
        token_url: settings.token_url_of(rec),
        client_id: rec.setting("app_id").to_string(),
        client_secret: SecretString::from(password),
        scope: SCOPE.into(),
    })
}

use crate::err;

/// Teams bots: inbound activities and replies.
pub struct Bot {
    verifier: JwtVerifier,
    db: Pool,
    http: UpstreamClient,
    tokens: TokenSource,
}

impl Bot {
    pub fn new(
        settings: &BotFrameworkSettings,
        db: Pool,
        egress: bac_runtime::upstream::egress::EgressPolicy,
        timeout: Duration,
        tokens: TokenSource,
    ) -> Arc<Self> {
        let keys = UpstreamClient::new(
            "botframework-keys",
            None,
            RetryPolicy {
                deadline: timeout,
                ..RetryPolicy::default()
            },
            egress.clone(),
        );
        let http = UpstreamClient::new(
            "botframework",
            None,
            // one try per attempt: the delivery's schedule is the retry
            RetryPolicy::single_attempt(timeout),
            egress,
        );
        Arc::new(Bot {
            verifier: JwtVerifier::new(
                "messaging",
                keys,
                KeySource::OpenId(settings.openid_url.clone()),
            ),
            db,
            http,
            tokens,
        })
    }

    /// An activity the Bot Framework posted to the bot of `rec`: verified, then published.
    pub async fn inbound(
        &self,
        rec: &ConnectionRecord,
        webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        let verified = self
            .verifier
            .verify_webhook(
                webhook,
                &Expect {
                    issuers: vec![ISSUER.into()],
                    audience: rec.setting("app_id").to_string(),
                },
            )
            .await?;
        let activity: Value = serde_json::from_slice(&webhook.body)
            .map_err(|_| err(ErrorCode::InvalidRequest, "the activity is not JSON"))?;
        let s = crate::inbound::text;
        let channel = s(&activity["channelId"]);
        if !verified.endorsements.iter().any(|e| e == &channel) {
            return Err(err(
                ErrorCode::Unauthenticated,
                format!("the signing key is not endorsed for channel {channel:?}"),
            ));
        }
        let service_url = s(&activity["serviceUrl"]);
        // the claim is `serviceurl` (lower case), as the Bot Framework's SDKs read it
        if verified.claims["serviceurl"].as_str() != Some(service_url.as_str()) {
            return Err(err(
                ErrorCode::Unauthenticated,
                "the token's serviceUrl is not the activity's",
            ));
        }
        let id = s(&activity["id"]);
        let conversation = s(&activity["conversation"]["id"]);
        if id.is_empty() || conversation.is_empty() || url::Url::parse(&service_url).is_err() {
            return Err(err(
                ErrorCode::InvalidRequest,
                "an activity has an id, a conversation and a serviceUrl",
            ));
        }
        let kind = s(&activity["type"]);
        let label: String = kind
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(64)
            .collect();
        let now = Utc::now();
        let data = bac_proto::events::v1::TeamsActivityReceived {
            tenant_id: rec.tenant_id.clone(),
            connection_id: rec.id.clone(),
            activity_id: id.clone(),
            activity_type: kind.clone(),
            conversation_id: conversation.clone(),
            conversation_type: s(&activity["conversation"]["conversationType"]),
            from_id: s(&activity["from"]["id"]),
            from_name: s(&activity["from"]["name"]),
            from_aad_object_id: s(&activity["from"]["aadObjectId"]),
            text: s(&activity["text"]).chars().take(40_000).collect(),
            ms_tenant_id: s(&activity["conversation"]["tenantId"]),
            activity: crate::inbound::as_struct(&activity),
            time: Some(bac_runtime::connections::timestamp(now)),
        };
        let event = CloudEvent {
            id: Uuid::now_v7(),
            source: "/bac/messaging".into(),
            ty: format!(
                "bac.messaging.teams.{}",
                if label.is_empty() { "activity" } else { &label }
            ),
            subject: Some(format!("teams_conversation/{conversation}")),
            time: now,
            tenant_id: rec.tenant_id.clone(),
            connection_id: Some(rec.id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: ACTIVITY_TOPIC.into(),
            key: format!("{}/teams/{conversation}", rec.tenant_id),
        };
        let mut client = self.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute(
            "INSERT INTO bot_conversations (connection_id, conversation_id, tenant_id, service_url)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (connection_id, conversation_id)
             DO UPDATE SET service_url = EXCLUDED.service_url, updated_at = now()",
            &[&rec.id, &conversation, &rec.tenant_id, &service_url],
        )
        .await
        .map_err(crate::deliveries::pg_err)?;
        crate::inbound::publish_once(&tx, &rec.id, &format!("teams:{conversation}/{id}"), &event)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(WebhookInput::Reply {
            status: 200,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
        })
    }

    /// One attempt at posting `payload` (`{"service_url", "conversation_id", "reply_to_id",
    /// "activity"}`) as the bot of `rec`.
    pub async fn post(&self, rec: &ConnectionRecord, payload: &Value) -> (Outcome, Option<String>) {
        let token = match self.tokens.token(rec, None).await {
            Ok(t) => t,
            Err(e) if e.code == ErrorCode::InvalidCredentials => {
                return (Outcome::Permanent(e.message, e.code), None)
            }
            Err(e) => return (Outcome::Temporary(e.message), None),
        };
        let base = payload["service_url"].as_str().unwrap_or("");
        let conversation = payload["conversation_id"].as_str().unwrap_or("");
        let reply_to = payload["reply_to_id"].as_str().unwrap_or("");
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut url = format!(
            "{}/v3/conversations/{}/activities",
            base.trim_end_matches('/'),
            enc(conversation)
        );
        if !reply_to.is_empty() {
            url.push('/');
            url.push_str(&enc(reply_to));
        }
        let req = UpstreamRequest {
            method: http::Method::POST,
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), token.bearer()),
            ],
            body: Some(serde_json::to_vec(&payload["activity"]).unwrap_or_default()),
            idempotent: false,
            operation: "conversations.activities".into(),
            quota: None,
        };
        match self.http.send(&req).await {
            Ok(r) => {
                let code = r.status.as_u16();
                let answer: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                match code {
                    200..=299 => {
                        let id = answer["id"].as_str().map(str::to_string);
                        (
                            Outcome::Sent(format!(
                                "HTTP {code} id={}",
                                id.as_deref().unwrap_or("")
                            )),
                            id,
                        )
                    }
                    // the bot is not in the conversation, or its user blocked it
                    403 => (
                        Outcome::Permanent(
                            format!(
                                "HTTP 403 from the Bot Framework: {}",
                                truncate(&answer.to_string())
                            ),
                            ErrorCode::UpstreamRejected,
                        ),
                        None,
                    ),
                    401 => {
                        // the next attempt mints a new token
                        self.tokens.forget(&rec.tenant_id, &rec.id);
                        (
                            Outcome::Temporary(format!(
                                "HTTP {code}: the Bot Framework refused the bot's token"
                            )),
                            None,
                        )
                    }
                    429 | 500..=599 => (Outcome::Temporary(format!("HTTP {code}")), None),
                    _ => (
                        Outcome::Permanent(
                            format!(
                                "HTTP {code} from the Bot Framework: {}",
                                truncate(&answer.to_string())
                            ),
                            ErrorCode::UpstreamRejected,
                        ),
                        None,
                    ),
                }
            }
            Err(UpstreamError::AddressNotAllowed(r)) => (
                Outcome::Permanent(r.to_string(), ErrorCode::UpstreamAddressNotAllowed),
                None,
            ),
            Err(e) => (
                Outcome::Temporary(format!("posting to the Bot Framework failed: {e}")),
                None,
            ),
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

use crate::db_err;

/// The service URL a bot's conversation is answered at (learnt from its activities).
pub async fn service_url(
    db: &Pool,
    tenant: &str,
    connection_id: &str,
    conversation_id: &str,
) -> Result<Option<String>, ServiceError> {
    let client = db.get().await.map_err(db_err)?;
    let row = client
        .query_opt(
            "SELECT service_url FROM bot_conversations
              WHERE connection_id = $1 AND conversation_id = $2 AND tenant_id = $3",
            &[&connection_id, &conversation_id, &tenant],
        )
        .await
        .map_err(crate::deliveries::pg_err)?;
    Ok(row.map(|r| r.get(0)))
}

/// The activity a reply posts: `text` (Markdown) and, when given, an Adaptive Card.
pub fn activity(text: &str, card: Option<Value>, reply_to: &str) -> Value {
    let mut a = json!({"type": "message", "text": text, "textFormat": "markdown"});
    if let Some(c) = card {
        a["attachments"] =
            json!([{"contentType": "application/vnd.microsoft.card.adaptive", "content": c}]);
    }
    if !reply_to.is_empty() {
        a["replyToId"] = json!(reply_to);
    }
    a
}
