//! Chat channels reached through an incoming webhook: Microsoft Teams (an Adaptive Card in a
//! message attachment, what Teams' Workflows and connector webhooks take) and Google Chat (a
//! message, threaded by `thread.threadKey`). The webhook URL is the credential (whoever has it
//! can post), so it lives in Vault; every post goes through the fleet's upstream client and
//! its egress policy. An answer is sorted like an SMTP one: 2xx sent; 429, 5xx or no answer try
//! again later; any other 4xx gives up.
use std::time::Duration;

use bac_runtime::{
    upstream::{RetryPolicy, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode,
};
use serde_json::{json, Value};

use crate::smtp::Outcome;

/// The channels posted to this way.
pub const CHANNELS: &[&str] = &["teams", "google_chat"];

/// The body Teams takes: `card`, or one made of `title` and `text`.
pub fn teams_payload(title: &str, text: &str, card: Option<Value>) -> Value {
    let card = card.unwrap_or_else(|| {
        let mut body = Vec::new();
        if !title.is_empty() {
            body.push(json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true}));
        }
        if !text.is_empty() {
            body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
        }
        json!({"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
               "version": "1.4", "body": body})
    });
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": card,
    }]})
}

/// The body Google Chat takes.
pub fn google_chat_payload(text: &str, thread_key: &str) -> Value {
    let mut m = json!({"text": text});
    if !thread_key.is_empty() {
        m["thread"] = json!({"threadKey": thread_key});
    }
    m
}

/// Posts to incoming webhooks.
#[derive(Clone)]
pub struct Chat {
    http: UpstreamClient,
}

impl Chat {
    pub fn new(egress: bac_runtime::upstream::egress::EgressPolicy, timeout: Duration) -> Self {
        // one try per attempt: the delivery's schedule is the retry
        let policy = RetryPolicy::single_attempt(timeout);
        Chat {
            http: UpstreamClient::new("chat-webhooks", None, policy, egress),
        }
    }

    /// One attempt at posting `payload` to `webhook_url` (`thread_key`: Google Chat's thread).
    pub async fn post(
        &self,
        channel: &str,
        webhook_url: &str,
        payload: &Value,
        thread_key: &str,
    ) -> Outcome {
        let mut url = webhook_url.to_string();
        if channel == "google_chat" && !thread_key.is_empty() {
            // reply in the key's thread, or start it
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
        }
        let req = UpstreamRequest {
            method: http::Method::POST,
            url,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=UTF-8".into(),
            )],
            body: Some(serde_json::to_vec(payload).unwrap_or_default()),
            idempotent: false,
            operation: format!("{channel}.webhook"),
            quota: None,
        };
        // the URL holds the credential: errors name the channel, never the URL
        match self.http.send(&req).await {
            Ok(r) => {
                let code = r.status.as_u16();
                let text = String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                    .replace(['\r', '\n'], " ");
                let answer = format!("HTTP {code} {text}").trim().to_string();
                match code {
                    200..=299 => Outcome::Sent(answer),
                    429 | 500..=599 | 408 => Outcome::Temporary(answer),
                    401 | 403 | 404 => Outcome::Permanent(
                        format!("{answer} (the incoming webhook was removed or its URL is wrong)"),
                        ErrorCode::InvalidCredentials,
                    ),
                    _ => Outcome::Permanent(answer, ErrorCode::UpstreamRejected),
                }
            }
            Err(UpstreamError::AddressNotAllowed(r)) => {
                Outcome::Permanent(r.to_string(), ErrorCode::UpstreamAddressNotAllowed)
            }
            Err(UpstreamError::RateLimited { .. }) => Outcome::Temporary("HTTP 429".into()),
            Err(UpstreamError::Status { status, .. }) if status >= 500 => {
                Outcome::Temporary(format!("HTTP {status}"))
            }
            Err(UpstreamError::Status { status, .. }) => {
                Outcome::Permanent(format!("HTTP {status}"), ErrorCode::UpstreamRejected)
            }
            Err(UpstreamError::Connect { .. }) => {
                Outcome::Temporary(format!("could not connect to the {channel} webhook"))
            }
            Err(UpstreamError::Timeout { after, .. }) => Outcome::Temporary(format!(
                "the {channel} webhook did not answer within {after:?}"
            )),
            Err(e) => Outcome::Temporary(format!(
                "posting to the {channel} webhook failed: {}",
                kind(&e)
            )),
        }
    }
}

fn kind(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::TooLarge { .. } => "the answer was too large",
        UpstreamError::Request(_) => "the request could not be built",
        _ => "an error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_teams_message_is_an_adaptive_card_attachment() {
        let p = teams_payload("Paid", "Acme paid **$120**", None);
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["body"][1]["text"], "Acme paid **$120**");
        let own = teams_payload("", "", Some(json!({"type": "AdaptiveCard", "body": []})));
        assert_eq!(own["attachments"][0]["content"]["body"], json!([]));
    }

    #[test]
    fn a_google_chat_message_names_its_thread() {
        assert_eq!(google_chat_payload("hi", ""), json!({"text": "hi"}));
        assert_eq!(
            google_chat_payload("hi", "inv-7"),
            json!({"text": "hi", "thread": {"threadKey": "inv-7"}})
        );
    }
}
