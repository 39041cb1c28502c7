//! A Google Chat app (connection channel `google_chat_app`: the Google Cloud project number the
//! app is configured with). Google Chat posts the app's interaction events (a message to it,
//! being added to or removed from a space, a card clicked) to its HTTP endpoint, which is the
//! connection's webhook URL; each carries a bearer JWT that `chat@system.gserviceaccount.com`
//! signed for the project number ("Authentication Audience: Project Number"), checked against
//! that account's published keys (`BAC_GOOGLE_CHAT_JWKS_URL`). A verified event is published on
//! `bac.messaging.google_chat_event.v1` once, and answered with an empty message (the app says
//! nothing synchronously; services post through the space's incoming webhook or the Chat API).
use bac_connector::{
    jwt::{Expect, JwtVerifier, KeySource},
    Webhook, WebhookInput,
};
use bac_runtime::{
    connections::ConnectionRecord,
    db::Pool,
    events::CloudEvent,
    upstream::{RetryPolicy, UpstreamClient},
    ErrorCode, ServiceError,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Google Chat apps' events.
pub const EVENT_TOPIC: &str = "bac.messaging.google_chat_event.v1";
/// Who signs Google Chat's requests to apps.
pub const ISSUER: &str = "chat@system.gserviceaccount.com";

/// Where that account's keys are (`BAC_GOOGLE_CHAT_JWKS_URL`).
pub fn jwks_url_from_env() -> String {
    std::env::var("BAC_GOOGLE_CHAT_JWKS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("https://www.googleapis.com/service_accounts/v1/jwk/{ISSUER}"))
}

use crate::err;

/// Google Chat apps' events.
pub struct ChatApp {
    verifier: JwtVerifier,
    db: Pool,
}

impl ChatApp {
    pub fn new(
        jwks_url: &str,
        db: Pool,
        egress: bac_runtime::upstream::egress::EgressPolicy,
        timeout: std::time::Duration,
    ) -> Self {
        let http = UpstreamClient::new(
            "google-chat-keys",
            None,
            RetryPolicy {
                deadline: timeout,
                ..RetryPolicy::default()
            },
            egress,
        );
        ChatApp {
            verifier: JwtVerifier::new("messaging", http, KeySource::Jwks(jwks_url.to_string())),
            db,
        }
    }

    /// The connection test: Google's keys for Chat's tokens can be read.
    pub async fn check(&self) -> Result<usize, ServiceError> {
        self.verifier.key_count().await
    }

    /// An event Google Chat posted to the app of `rec`: verified, then published.
    pub async fn inbound(
        &self,
        rec: &ConnectionRecord,
        webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        self.verifier
            .verify_webhook(
                webhook,
                &Expect {
                    issuers: vec![ISSUER.into()],
                    audience: rec.setting("project_number").to_string(),
                },
            )
            .await?;
        let event: Value = serde_json::from_slice(&webhook.body)
            .map_err(|_| err(ErrorCode::InvalidRequest, "the event is not JSON"))?;
        let s = crate::inbound::text;
        let kind = s(&event["type"]);
        if kind.is_empty() {
            return Err(err(ErrorCode::InvalidRequest, "the event has no type"));
        }
        let space = s(&event["space"]["name"]);
        let message = &event["message"];
        let time = event["eventTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let data = bac_proto::events::v1::GoogleChatEventReceived {
            tenant_id: rec.tenant_id.clone(),
            connection_id: rec.id.clone(),
            event_type: kind.clone(),
            space: space.clone(),
            space_type: s(&event["space"]["type"]),
            message_name: s(&message["name"]),
            thread_name: s(&message["thread"]["name"]),
            user_name: s(&event["user"]["name"]),
            user_display_name: s(&event["user"]["displayName"]),
            user_email: s(&event["user"]["email"]),
            text: s(&message["text"]).chars().take(40_000).collect(),
            argument_text: s(&message["argumentText"]).chars().take(40_000).collect(),
            event: crate::inbound::as_struct(&event),
            event_time: Some(bac_runtime::connections::timestamp(time)),
        };
        let label: String = kind
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        // a message is known by its name; a click or a membership change by who, where, on
        // what and when (every click on one card names the same message)
        let seen_as = if kind == "MESSAGE" && !data.message_name.is_empty() {
            format!("gchat:{kind}/{}", data.message_name)
        } else {
            format!(
                "gchat:{kind}/{space}/{}/{}/{}/{}",
                data.message_name,
                data.user_name,
                s(&event["common"]["invokedFunction"]),
                time.timestamp_micros()
            )
        };
        let ce = CloudEvent {
            id: Uuid::now_v7(),
            source: "/bac/messaging".into(),
            ty: format!("bac.messaging.google_chat.{label}"),
            subject: Some(format!("google_chat/{space}")),
            time,
            tenant_id: rec.tenant_id.clone(),
            connection_id: Some(rec.id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: EVENT_TOPIC.into(),
            key: format!("{}/google_chat/{space}", rec.tenant_id),
        };
        let mut client = self.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        if crate::inbound::publish_once(&tx, &rec.id, &seen_as, &ce).await? {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(WebhookInput::Reply {
            status: 200,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
        })
    }
}

use crate::db_err;
