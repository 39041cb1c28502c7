//! Webhooks as providers send them: the payload signed the provider's way and posted to the
//! fleet's webhook URL, so a connector's verification is tested against what the provider
//! really sends. [`Signature::StandardWebhooks`] follows the Standard Webhooks specification
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`);
//! [`Signature::SlackV0`] is Slack's request signing (`X-Slack-Signature: v0=<hex>`,
//! `X-Slack-Request-Timestamp`); [`Signature::Token`] is a shared token in a header (Odoo's
//! automations, Google's `X-Goog-Channel-Token`); [`Signature::None`] is no signature at all
//! (Zoho CRM's notifications carry their channel token in the body). The test vectors below
//! are the ones the specifications publish.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::SandboxClock;

/// How a provider signs a webhook.
#[derive(Debug, Clone)]
pub enum Signature {
    /// The secret as Standard Webhooks writes it: `whsec_<base64>`.
    StandardWebhooks { secret: String },
    /// Slack's signing secret.
    SlackV0 { secret: String },
    /// A shared token sent as header `name`.
    Token { name: String, token: String },
    /// Not signed: the payload vouches for itself (Zoho CRM's notification `token`).
    None,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| e.to_string())?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

impl Signature {
    /// The headers that sign `body` sent as message `id` at `timestamp` (Unix seconds).
    pub fn headers(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let ts = timestamp.to_string();
        Ok(match self {
            Signature::StandardWebhooks { secret } => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                    .map_err(|e| format!("the secret is not whsec_<base64>: {e}"))?;
                let sig = hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])?;
                vec![
                    ("webhook-id".into(), id.into()),
                    ("webhook-timestamp".into(), ts),
                    (
                        "webhook-signature".into(),
                        format!(
                            "v1,{}",
                            base64::engine::general_purpose::STANDARD.encode(sig)
                        ),
                    ),
                ]
            }
            Signature::SlackV0 { secret } => {
                let sig = hmac(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body])?;
                vec![
                    ("x-slack-request-timestamp".into(), ts),
                    ("x-slack-signature".into(), format!("v0={}", hex(&sig))),
                ]
            }
            Signature::Token { name, token } => vec![(name.clone(), token.clone())],
            Signature::None => Vec::new(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Posts signed webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    clock: SandboxClock,
}

impl WebhookSender {
    pub fn new(clock: SandboxClock) -> WebhookSender {
        WebhookSender {
            http: reqwest::Client::new(),
            clock,
        }
    }

    /// Posts `body` (JSON unless `content_type` says otherwise) to `url`, signed; the answer's
    /// status and body.
    pub async fn send(
        &self,
        url: &str,
        signature: &Signature,
        id: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut req = self.http.post(url).header("content-type", content_type);
        for (k, v) in signature.headers(id, self.clock.now(), &body)? {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, bytes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_published_test_vectors() {
        // Standard Webhooks' README example.
        let h = Signature::StandardWebhooks {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        }
        .headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(h[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Slack's "Verifying requests from Slack" example.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let h = Signature::SlackV0 {
            secret: "8f742231b10e8888abcd99yyyzzz85a5".into(),
        }
        .headers("", 1_531_420_618, body)
        .unwrap();
        assert_eq!(
            h[1].1,
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        assert!(Signature::StandardWebhooks {
            secret: "whsec_!!".into()
        }
        .headers("m", 1, b"")
        .is_err());
        assert!(Signature::None.headers("m", 1, b"{}").unwrap().is_empty());
    }
}
