//! Zoho CRM's notification channels on the kit's push channels: one channel per connection
//! (`actions/watch` on Leads, Contacts and Deals) pointed at the gateway's push route, with
//! the fleet's channel token, re-subscribed before it expires (Zoho keeps a channel a week
//! at most). A notification names the module and the ids that changed; the engine fetches
//! them (a deleted one comes back as a tombstone), so what a channel says is never believed
//! beyond "look at these ids".
use async_trait::async_trait;
use bac_connector::{
    channels::{Channel, OpenChannel, Opened, PushChannels},
    Webhook, WebhookInput,
};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::{
    client::{zoho_error, ZohoCall, ZohoClient, CRM},
    sync::{fmt_time, parse_time, ENTITIES},
};

/// The one channel a connection has.
pub const KEY: &str = "crm";

/// Zoho keeps a channel at most a week (API v4 and later).
const MAX_LIFETIME_DAYS: i64 = 7;

/// Scopes that let a connection manage notification channels.
const SCOPES: &[&str] = &["ZohoCRM.notifications.ALL", "ZohoCRM.notifications.CREATE"];

#[derive(Clone)]
pub struct ZohoChannels {
    client: ZohoClient,
}

impl ZohoChannels {
    pub fn new(client: ZohoClient) -> Self {
        ZohoChannels { client }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The entity of a CRM module's notification (`Leads` -> `crm_lead`).
pub fn entity_of_module(module: &str) -> Option<&'static str> {
    ENTITIES
        .iter()
        .find(|e| e.module == module)
        .map(|e| e.entity)
}

/// What a notification says: the entity and the ids to look at. More than 100 ids (a mass
/// update) become an incremental run of the entity instead.
pub fn read_notification(body: &[u8]) -> Result<WebhookInput, ServiceError> {
    let bad = |m: &str| ServiceError::new("zoho", ErrorCode::InvalidRequest, m);
    let body: Value =
        serde_json::from_slice(body).map_err(|_| bad("the notification is not JSON"))?;
    let module = body["module"]
        .as_str()
        .ok_or_else(|| bad("the notification names no module"))?;
    let entity = entity_of_module(module)
        .ok_or_else(|| bad(&format!("the zoho service does not sync module '{module}'")))?;
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(bad("the notification names no ids"));
    }
    if ids
        .iter()
        .any(|i| i.len() > 30 || !i.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("the notification's ids are not Zoho record ids"));
    }
    if ids.len() > 100 {
        return Ok(WebhookInput::Resync { entity });
    }
    Ok(WebhookInput::Ids { entity, ids })
}

#[async_trait]
impl PushChannels for ZohoChannels {
    fn wanted(&self, rec: &ConnectionRecord) -> Vec<String> {
        if rec.config.get("notifications") == Some(&Value::Bool(false)) {
            return Vec::new();
        }
        // a user's authorisation says what was granted; a self-client's is tried
        let granted = rec.config.get("granted_scopes").and_then(Value::as_array);
        let can = granted.is_none_or(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .any(|s| SCOPES.contains(&s) || s == "ZohoCRM.ALL")
        });
        if can {
            vec![KEY.to_string()]
        } else {
            Vec::new()
        }
    }

    async fn open(
        &self,
        rec: &ConnectionRecord,
        req: &OpenChannel,
        _existing: Option<&Channel>,
    ) -> Result<Opened, ServiceError> {
        let latest = Utc::now() + Duration::days(MAX_LIFETIME_DAYS) - Duration::minutes(1);
        let expiry = req.expires_at.min(latest);
        let events: Vec<String> = ENTITIES
            .iter()
            .map(|e| format!("{}.all", e.module))
            .collect();
        // posting an existing channel id again is how Zoho re-subscribes, lapsed or not
        let call = ZohoCall::with_body(
            http::Method::POST,
            format!("{CRM}/actions/watch"),
            json!({"watch": [{
                "channel_id": req.channel_id,
                "events": events,
                "channel_expiry": fmt_time(expiry),
                "token": req.token,
                "notify_url": req.notify_url,
                "notify_on_related_action": false,
            }]}),
            "crm/actions/watch",
        );
        let answer = self.client.call(rec, &call).await?;
        let first = &answer.body["watch"][0];
        if first["code"] != "SUCCESS" {
            return Err(zoho_error(400, first));
        }
        let events = first["details"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let expires_at = events
            .iter()
            .filter_map(|e| parse_time(&e["channel_expiry"]))
            .min()
            .unwrap_or(expiry);
        let resource_id = events
            .iter()
            .filter_map(|e| text(&e["resource_id"]))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Opened {
            resource_id,
            expires_at,
        })
    }

    async fn close(&self, rec: &ConnectionRecord, channel: &Channel) -> Result<(), ServiceError> {
        let call = ZohoCall {
            method: http::Method::DELETE,
            ..ZohoCall::get(format!("{CRM}/actions/watch"), "crm/actions/unwatch")
                .query("channel_ids", channel.channel_id.clone())
        };
        self.client.call(rec, &call).await.map(|_| ())
    }

    fn credentials(&self, webhook: &Webhook) -> Option<(String, String)> {
        Self::credentials_of(&webhook.body)
    }
}

impl ZohoChannels {
    /// The `channel_id` and `token` a notification's body carries.
    pub fn credentials_of(body: &[u8]) -> Option<(String, String)> {
        let body: Value = serde_json::from_slice(body).ok()?;
        Some((text(&body["channel_id"])?, text(&body["token"])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_an_entity_and_its_ids() {
        let body = br#"{"server_time": 1, "module": "Leads", "ids": ["41", 42], "operation": "update",
                         "channel_id": "9", "token": "t", "query_params": {}, "affected_fields": []}"#;
        match read_notification(body).unwrap() {
            WebhookInput::Ids { entity, ids } => {
                assert_eq!(entity, "crm_lead");
                assert_eq!(ids, ["41", "42"]);
            }
            other => panic!("{other:?}"),
        }
        let many =
            json!({"module": "Deals", "ids": (0..150).map(|i| i.to_string()).collect::<Vec<_>>()});
        assert!(matches!(
            read_notification(many.to_string().as_bytes()).unwrap(),
            WebhookInput::Resync { entity: "crm_deal" }
        ));
        assert!(read_notification(br#"{"module": "Tasks", "ids": ["1"]}"#).is_err());
        assert!(read_notification(br#"{"module": "Leads", "ids": ["1 OR 1"]}"#).is_err());
        assert!(read_notification(b"not json").is_err());
        let ch = ZohoChannels::credentials_of(br#"{"channel_id": 77, "token": "abc"}"#);
        assert_eq!(ch, Some(("77".into(), "abc".into())));
    }
}
