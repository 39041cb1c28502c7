//! Google's push notification channels (`watch`), shared by the APIs that offer them: a
//! channel (`{id, type: "web_hook", address, token, expiration}`) on a watched resource gets
//! a `sync` message at once, then an `exists` message for each change, as Google sends them:
//! an empty POST whose `X-Goog-Channel-ID`, `X-Goog-Channel-Token`, `X-Goog-Resource-ID`,
//! `X-Goog-Resource-URI`, `X-Goog-Resource-State` and `X-Goog-Message-Number` say what
//! happened. `channels.stop` ends one (`{id, resourceId}`). Channels, stop calls and
//! deliveries are listed at `GET /_sandbox/google/channels` for tests (a deleted connection
//! must stop its channels: the stop calls are what a test reads).
use std::sync::{Arc, Mutex};

use axum::{http::StatusCode, response::IntoResponse, response::Response, Json};
use bac_sandbox_kit::SandboxClock;
use serde_json::{json, Value};

use crate::google_error;

/// Google keeps a channel at most this long (Calendar: about a month; asked longer, it
/// grants this).
const MAX_LIFE_MS: i64 = 30 * 86_400 * 1000;
/// When `expiration` is not asked: a week.
const DEFAULT_LIFE_MS: i64 = 7 * 86_400 * 1000;

#[derive(Debug, Clone)]
struct Channel {
    id: String,
    resource_id: String,
    resource_uri: String,
    /// What is watched (`calendar:<id>`).
    key: String,
    address: String,
    token: Option<String>,
    expiration_ms: i64,
    messages: u64,
}

#[derive(Debug, Default)]
struct State {
    channels: Vec<Channel>,
    stops: Vec<Value>,
    deliveries: Vec<Value>,
}

#[derive(Clone)]
pub struct Channels {
    clock: SandboxClock,
    state: Arc<Mutex<State>>,
}

impl Channels {
    pub fn new(clock: SandboxClock) -> Channels {
        Channels {
            clock,
            state: Arc::default(),
        }
    }

    /// Opens a channel on `key` as the `watch` body asks; Google's answer, or its refusal.
    pub fn open(&self, key: &str, resource_uri: &str, body: &[u8]) -> Response {
        let bad = |m: &str| google_error(StatusCode::BAD_REQUEST, m, "invalid", Value::Null);
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid JSON payload received.",
                "parseError",
                Value::Null,
            );
        };
        let Some(id) = v["id"].as_str().filter(|i| !i.is_empty() && i.len() <= 64) else {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Required channel id.",
                "required",
                Value::Null,
            );
        };
        if !matches!(v["type"].as_str(), Some("web_hook" | "webhook")) {
            return bad("Channel type must be web_hook.");
        }
        let Some(address) = v["address"]
            .as_str()
            .filter(|a| a.starts_with("https://") || a.starts_with("http://"))
        else {
            return bad("Invalid channel address.");
        };
        let token = v["token"].as_str().map(str::to_string);
        if token.as_ref().is_some_and(|t| t.len() > 256) {
            return bad("Channel token is too long (256 characters at most).");
        }
        let now_ms = self.clock.now() * 1000;
        let asked = match &v["expiration"] {
            Value::Null => None,
            Value::String(s) => match s.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => return bad("Invalid expiration."),
            },
            Value::Number(n) => n.as_i64(),
            _ => return bad("Invalid expiration."),
        };
        let expiration_ms = asked
            .unwrap_or(now_ms + DEFAULT_LIFE_MS)
            .min(now_ms + MAX_LIFE_MS);
        if expiration_ms <= now_ms {
            return bad("Channel expiration is in the past.");
        }
        let Ok(mut s) = self.state.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if s.channels.iter().any(|c| c.id == id) {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!("Channel id {id} not unique"),
                "channelIdNotUnique",
                Value::Null,
            );
        }
        let resource_id = format!("{:020x}", rand::random::<u128>() >> 48);
        let ch = Channel {
            id: id.to_string(),
            resource_id: resource_id.clone(),
            resource_uri: resource_uri.to_string(),
            key: key.to_string(),
            address: address.to_string(),
            token: token.clone(),
            expiration_ms,
            messages: 0,
        };
        s.channels.push(ch.clone());
        drop(s);
        self.send(&ch.id, "sync");
        let mut answer = json!({
            "kind": "api#channel", "id": id, "resourceId": resource_id,
            "resourceUri": resource_uri, "expiration": expiration_ms.to_string(),
        });
        if let Some(t) = token {
            answer["token"] = json!(t);
        }
        Json(answer).into_response()
    }

    /// Tells every live channel on `key` that it changed.
    pub fn changed(&self, key: &str) {
        let now_ms = self.clock.now() * 1000;
        let ids: Vec<String> = match self.state.lock() {
            Ok(s) => s
                .channels
                .iter()
                .filter(|c| c.key == key && c.expiration_ms > now_ms)
                .map(|c| c.id.clone())
                .collect(),
            Err(_) => return,
        };
        for id in ids {
            self.send(&id, "exists");
        }
    }

    /// Posts one message of channel `id` in a task of its own, and logs the answer.
    fn send(&self, id: &str, state: &str) {
        let ch = match self.state.lock() {
            Ok(mut s) => match s.channels.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    c.messages += 1;
                    c.clone()
                }
                None => return,
            },
            Err(_) => return,
        };
        let (this, state) = (self.clone(), state.to_string());
        tokio::spawn(async move {
            let mut req = reqwest::Client::new()
                .post(&ch.address)
                .timeout(std::time::Duration::from_secs(10))
                .header("X-Goog-Channel-ID", &ch.id)
                .header("X-Goog-Channel-Expiration", ch.expiration_ms.to_string())
                .header("X-Goog-Resource-ID", &ch.resource_id)
                .header("X-Goog-Resource-URI", &ch.resource_uri)
                .header("X-Goog-Resource-State", &state)
                .header("X-Goog-Message-Number", ch.messages.to_string());
            if let Some(t) = &ch.token {
                req = req.header("X-Goog-Channel-Token", t);
            }
            let answer = req.send().await.map(|r| r.status().as_u16());
            if let Ok(mut s) = this.state.lock() {
                s.deliveries.push(json!({
                    "channel_id": ch.id, "state": state, "message": ch.messages,
                    "status": answer.as_ref().ok(),
                    "error": answer.as_ref().err().map(|e| e.to_string()),
                }));
            }
        });
    }

    /// `channels.stop`: `{id, resourceId}` both naming one channel.
    pub fn stop(&self, body: &[u8]) -> Response {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid JSON payload received.",
                "parseError",
                Value::Null,
            );
        };
        let (id, resource) = (v["id"].as_str(), v["resourceId"].as_str());
        let Ok(mut s) = self.state.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        s.stops.push(json!({"id": id, "resourceId": resource}));
        let before = s.channels.len();
        s.channels
            .retain(|c| !(Some(c.id.as_str()) == id && Some(c.resource_id.as_str()) == resource));
        if s.channels.len() == before {
            return google_error(
                StatusCode::NOT_FOUND,
                &format!("Channel '{}' not found for project", id.unwrap_or("")),
                "notFound",
                Value::Null,
            );
        }
        StatusCode::NO_CONTENT.into_response()
    }

    /// What the admin route shows.
    pub fn report(&self) -> Value {
        let now_ms = self.clock.now() * 1000;
        self.state
            .lock()
            .map(|s| {
                let channels: Vec<Value> = s
                    .channels
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "resourceId": c.resource_id, "key": c.key,
                               "address": c.address, "token": c.token,
                               "expiration": c.expiration_ms.to_string(),
                               "expired": c.expiration_ms <= now_ms, "messages": c.messages})
                    })
                    .collect();
                json!({"channels": channels, "stops": s.stops, "deliveries": s.deliveries})
            })
            .unwrap_or_default()
    }
}
