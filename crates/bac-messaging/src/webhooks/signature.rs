//! The Standard Webhooks signature: `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "<webhook-id>.<webhook-timestamp>.<body>")>`, the key the base64 after `whsec_`. While a
//! secret rotates, the header carries one signature per secret, space-separated; a subscriber
//! accepts the message when any verifies.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` value for `body` sent as message `id` at `timestamp` (Unix
/// seconds), one `v1,` signature per secret; a secret that is not `whsec_<base64>` is skipped.
pub fn sign(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let ts = timestamp.to_string();
    secrets
        .iter()
        .filter_map(|s| b64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok())
        .filter_map(|key| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!("v1,{}", b64.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and its reference libraries' tests).
    #[test]
    fn the_specifications_example_signs_the_same() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn two_secrets_give_two_signatures() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let b = "whsec_dGVzdC1zZWNyZXQtdHdv".to_string();
        let s = sign(&[a, b], "msg_1", 1, b"{}");
        assert_eq!(s.split(' ').count(), 2);
        assert!(s.split(' ').all(|p| p.starts_with("v1,")));
    }
}
