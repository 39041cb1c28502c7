//! Calendar and Drive push channels on the kit's push channels: per synced user, an
//! `events.watch` channel on their primary calendar and a `changes.watch` channel on their
//! Drive, pointed at the gateway's push route with the fleet's channel token
//! (`X-Goog-Channel-Token`), replaced by a new channel before it expires (Google cannot
//! extend one) and stopped (`channels.stop`) when the connection goes. A notification says
//! only that something changed: it queues an incremental run of that user's partition of
//! the entity (`X-Goog-Resource-URI` says which), which reads the change with its cursor.
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

/// Channel keys are `calendar:<user>` and `drive:<user>`.
const CALENDAR: &str = "calendar:";
const DRIVE: &str = "drive:";

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

/// The user whose calendar or Drive a channel key watches, and whether it is the Drive.
fn user_of(key: &str) -> Option<(&str, bool)> {
    key.strip_prefix(CALENDAR)
        .map(|u| (u, false))
        .or_else(|| key.strip_prefix(DRIVE).map(|u| (u, true)))
        .filter(|(u, _)| u.contains('@'))
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
    let entity =
        if header(w, "x-goog-resource-uri").is_some_and(|u| u.contains("/drive/v3/changes")) {
            "drive_file"
        } else {
            "calendar_event"
        };
    match state {
        "sync" => Ok(WebhookInput::Reply {
            status: 200,
            content_type: "text/plain".into(),
            body: Vec::new(),
        }),
        "exists" | "not_exists" => match user {
            Some(u) if u.contains('@') => Ok(WebhookInput::ResyncPartition {
                entity,
                partition: u,
            }),
            _ => Ok(WebhookInput::Resync { entity }),
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
            .flat_map(|u| [format!("{CALENDAR}{u}"), format!("{DRIVE}{u}")])
            .collect()
    }

    async fn open(
        &self,
        rec: &ConnectionRecord,
        req: &OpenChannel,
        _existing: Option<&Channel>,
    ) -> Result<Opened, ServiceError> {
        let (user, drive) = user_of(&req.key).ok_or_else(|| {
            ServiceError::internal("google-workspace", format!("channel key {}", req.key))
        })?;
        // the channel id carries the user, so a notification names its partition; the
        // token vouches for the kit's part of the id
        let body = json!({
            "id": channel_id(&req.channel_id, user),
            "type": "web_hook",
            "address": req.notify_url,
            "token": req.token,
            "expiration": req.expires_at.timestamp_millis().to_string(),
        });
        let call = if drive {
            // Drive watches its changes feed from a page token on
            let start = self
                .client
                .call(
                    rec,
                    user,
                    &GoogleCall::get(
                        Api::Drive,
                        "/drive/v3/changes/startPageToken",
                        "drive/changes.getStartPageToken",
                    ),
                )
                .await?;
            let token = start.body["startPageToken"]
                .as_str()
                .unwrap_or("1")
                .to_string();
            GoogleCall::post(
                Api::Drive,
                "/drive/v3/changes/watch",
                body,
                "drive/changes.watch",
            )
            .query("pageToken", token)
        } else {
            GoogleCall::post(
                Api::Calendar,
                "/calendar/v3/calendars/primary/events/watch",
                body,
                "calendar/events.watch",
            )
        };
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
        let Some((user, drive)) = user_of(&channel.key) else {
            return Ok(());
        };
        let (api, path, op) = if drive {
            (Api::Drive, "/drive/v3/channels/stop", "drive/channels.stop")
        } else {
            (
                Api::Calendar,
                "/calendar/v3/channels/stop",
                "calendar/channels.stop",
            )
        };
        let call = GoogleCall::post(
            api,
            path,
            json!({"id": channel_id(&channel.channel_id, user), "resourceId": channel.resource_id}),
            op,
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
        let mut drive = push("exists", "43.ada@example.com");
        drive.headers.insert(
            "x-goog-resource-uri".into(),
            "https://www.googleapis.com/drive/v3/changes?alt=json&pageToken=7".into(),
        );
        match read_notification(&drive).unwrap() {
            WebhookInput::ResyncPartition { entity, .. } => assert_eq!(entity, "drive_file"),
            other => panic!("{other:?}"),
        }
        let ch = channel_credentials(&push("exists", "42.ada@example.com"));
        assert_eq!(ch, Some(("42".to_string(), "t".to_string())));
    }
}
