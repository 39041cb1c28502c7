//! Calendar push channels on the kit's push channels: one `events.watch` channel per synced
//! user's primary calendar, pointed at the gateway's push route with the fleet's channel
//! token (`X-Goog-Channel-Token`), replaced by a new channel before it expires (Google
//! cannot extend one) and stopped (`channels.stop`) when the connection goes. A
//! notification says only that the calendar changed: it queues an incremental run of that
//! user's partition, which reads the change with the sync token.
use async_trait::async_trait;
use bac_connector::{
    channels::{Channel, OpenChannel, Opened, PushChannels},
    Webhook, WebhookInput,
};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::{
    client::{Api, GoogleCall, GoogleClient},
    connector::synced_users,
};

/// Channel keys are `calendar:<user>`.
const CALENDAR: &str = "calendar:";

#[derive(Clone)]
pub struct GoogleChannels {
    client: GoogleClient,
}

impl GoogleChannels {
    pub fn new(client: GoogleClient) -> Self {
        GoogleChannels { client }
    }
}

fn header<'a>(w: &'a Webhook, name: &str) -> Option<&'a str> {
    w.headers.get(name).map(String::as_str)
}

/// The user whose calendar a channel key watches.
fn user_of(key: &str) -> Option<&str> {
    key.strip_prefix(CALENDAR).filter(|u| u.contains('@'))
}

/// What a push says: `sync` (the channel now stands) asks nothing; `exists` and
/// `not_exists` ask for an incremental run of the calendar's user.
pub fn read_notification(w: &Webhook) -> Result<WebhookInput, ServiceError> {
    let bad = |m: &str| ServiceError::new("google-workspace", ErrorCode::InvalidRequest, m);
    let state = header(w, "x-goog-resource-state")
        .ok_or_else(|| bad("not a Google push notification (no X-Goog-Resource-State)"))?;
    let user = header(w, "x-goog-channel-id")
        .and_then(|id| id.split_once('.'))
        .map(|(_, user)| user.to_string());
    match state {
        "sync" => Ok(WebhookInput::Reply {
            status: 200,
            content_type: "text/plain".into(),
            body: Vec::new(),
        }),
        "exists" | "not_exists" => match user {
            Some(u) if u.contains('@') => Ok(WebhookInput::ResyncPartition {
                entity: "calendar_event",
                partition: u,
            }),
            _ => Ok(WebhookInput::Resync {
                entity: "calendar_event",
            }),
        },
        other => Err(bad(&format!(
            "a push notification with resource state '{other}' is not one Calendar sends"
        ))),
    }
}

#[async_trait]
impl PushChannels for GoogleChannels {
    fn wanted(&self, rec: &ConnectionRecord) -> Vec<String> {
        if rec.config.get("push") == Some(&Value::Bool(false)) {
            return Vec::new();
        }
        synced_users(&rec.config)
            .into_iter()
            .map(|u| format!("{CALENDAR}{u}"))
            .collect()
    }

    async fn open(
        &self,
        rec: &ConnectionRecord,
        req: &OpenChannel,
        _existing: Option<&Channel>,
    ) -> Result<Opened, ServiceError> {
        let user = user_of(&req.key).ok_or_else(|| {
            ServiceError::internal("google-workspace", format!("channel key {}", req.key))
        })?;
        // the channel id carries the user, so a notification names its partition; the
        // token (derived from the whole id) vouches for both
        let call = GoogleCall::post(
            Api::Calendar,
            "/calendar/v3/calendars/primary/events/watch",
            json!({
                "id": channel_id(&req.channel_id, user),
                "type": "web_hook",
                "address": req.notify_url,
                "token": req.token,
                "expiration": req.expires_at.timestamp_millis().to_string(),
            }),
            "calendar/events.watch",
        );
        let a = self.client.call(rec, user, &call).await?;
        let expires_at = a.body["expiration"]
            .as_str()
            .and_then(|e| e.parse::<i64>().ok())
            .or_else(|| a.body["expiration"].as_i64())
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or(req.expires_at);
        Ok(Opened {
            resource_id: a.body["resourceId"].as_str().unwrap_or("").to_string(),
            expires_at,
        })
    }

    async fn close(&self, rec: &ConnectionRecord, channel: &Channel) -> Result<(), ServiceError> {
        let Some(user) = user_of(&channel.key) else {
            return Ok(());
        };
        let call = GoogleCall::post(
            Api::Calendar,
            "/calendar/v3/channels/stop",
            json!({"id": channel_id(&channel.channel_id, user), "resourceId": channel.resource_id}),
            "calendar/channels.stop",
        );
        match self.client.call(rec, user, &call).await {
            Ok(_) => Ok(()),
            // already gone at Google
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn credentials(&self, webhook: &Webhook) -> Option<(String, String)> {
        channel_credentials(webhook)
    }

    fn renews_in_place(&self) -> bool {
        false
    }
}

/// The kit's channel id (before the user part) and the token a notification carries.
fn channel_credentials(w: &Webhook) -> Option<(String, String)> {
    let id = header(w, "x-goog-channel-id")?;
    let token = header(w, "x-goog-channel-token")?;
    let (own, _) = id.split_once('.')?;
    Some((own.to_string(), token.to_string()))
}

/// Google's channel id: the kit's id and the user (`1234.ada@example.com`).
fn channel_id(own: &str, user: &str) -> String {
    format!("{own}.{user}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn push(state: &str, id: &str) -> Webhook {
        Webhook {
            headers: HashMap::from([
                ("x-goog-resource-state".to_string(), state.to_string()),
                ("x-goog-channel-id".to_string(), id.to_string()),
                ("x-goog-channel-token".to_string(), "t".to_string()),
            ]),
            body: Vec::new(),
            query: String::new(),
        }
    }

    #[test]
    fn a_change_resyncs_the_users_calendar_only() {
        match read_notification(&push("exists", "42.ada@example.com")).unwrap() {
            WebhookInput::ResyncPartition { entity, partition } => {
                assert_eq!(entity, "calendar_event");
                assert_eq!(partition, "ada@example.com");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_notification(&push("sync", "42.ada@example.com")).unwrap(),
            WebhookInput::Reply { status: 200, .. }
        ));
        assert!(read_notification(&push("bogus", "42.a@b.c")).is_err());
        let ch = channel_credentials(&push("exists", "42.ada@example.com"));
        assert_eq!(ch, Some(("42".to_string(), "t".to_string())));
    }
}
