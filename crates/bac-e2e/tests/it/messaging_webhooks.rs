//! Signed webhooks to subscribers (issue 16): the fleet's events for a tenant, posted to the
//! tenant's endpoints with Standard Webhooks signatures the reference `standardwebhooks`
//! library (PyPI) verifies; an endpoint that fails five times then recovers receives every
//! message once, in order; a disabled endpoint receives nothing until enabled again, then
//! everything it missed; a replay sends a message again; an endpoint that keeps failing is
//! disabled and the tenant's audit trail says so.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bac_e2e::{wait_until, Fleet, FleetOptions, MailSink};
use reqwest::Method;
use serde_json::{json, Value};

/// One request a subscriber received.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// What the subscriber answered.
    status: u16,
}

impl Received {
    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

/// A subscriber on loopback that fails its first `fail_first` requests (503) and then
/// answers 204; every request is kept.
async fn subscriber(fail_first: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                let status = if log.len() < fail_first { 503 } else { 204 };
                log.push(Received {
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                    body: body.to_vec(),
                    status,
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/bac"), seen)
}

fn accepted(seen: &Mutex<Vec<Received>>) -> Vec<Received> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|r| r.status == 204)
        .cloned()
        .collect()
}

async fn fleet(disable_after: u32) -> Fleet {
    let mut settings = bac_messaging::MessagingSettings::from_env();
    settings.webhooks = bac_messaging::webhooks::sender::SenderOptions {
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
        disable_after,
        concurrency: 4,
    };
    settings.retry.base = Duration::from_millis(100);
    Fleet::start_opts(FleetOptions {
        messaging: Some(settings),
        ..Default::default()
    })
    .await
}

async fn call(fleet: &Fleet, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, b) = fleet.call(method, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {b}");
    b
}

/// Emails whose deliveries make events (queued, sent) on `bac.messaging.delivery.v1`.
async fn send_emails(fleet: &Fleet, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let d = call(
            fleet,
            Method::POST,
            "/api/v1/messaging/email/send",
            Some(json!({"to": [format!("c{i}@customer.example")], "subject": "Hi", "text": "hi"})),
        )
        .await;
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Verifies a received message with the reference library (`standardwebhooks` from PyPI).
fn verified_by_reference_library(secret: &str, r: &Received) -> bool {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()
Webhook(secret).verify(body, headers)
"#;
    let headers = json!({
        "webhook-id": r.headers["webhook-id"],
        "webhook-timestamp": r.headers["webhook-timestamp"],
        "webhook-signature": r.headers["webhook-signature"],
    });
    let python = std::env::var("BAC_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(python)
        .args(["-c", script, secret, &headers.to_string()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    child.wait().unwrap().success()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_gets_every_event_once_in_order_signed_even_after_failing() {
    let sink = MailSink::start("billing", "pw");
    let fleet = fleet(20).await;
    call(
        &fleet,
        Method::POST,
        "/api/v1/integrations/connections",
        Some(json!({"integration": "messaging", "name": "Mail",
            "config": {"channel": "email", "smtp_host": "localhost", "smtp_port": sink.port,
                "smtp_security": "none", "username": "billing", "from_address": "billing@acme.example"},
            "credentials": {"password": "pw"}})),
    )
    .await;
    let (url, seen) = subscriber(5).await;
    let ep = call(
        &fleet,
        Method::POST,
        "/api/v1/messaging/webhooks/endpoints",
        Some(json!({"url": url, "event_types": ["bac.messaging.delivery.*"], "description": "billing"})),
    )
    .await;
    let id = ep["id"].as_str().unwrap().to_string();
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{ep}");
    let listed = call(
        &fleet,
        Method::GET,
        "/api/v1/messaging/webhooks/endpoints",
        None,
    )
    .await;
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once: {listed}"
    );

    let deliveries = send_emails(&fleet, 3).await;
    // queued and sent for each: six messages, the first five attempts refused
    assert!(
        wait_until(Duration::from_secs(60), || async {
            accepted(&seen).len() >= 6
        })
        .await,
        "received {:?}",
        seen.lock().unwrap().len()
    );
    let all = seen.lock().unwrap().clone();
    assert_eq!(all.iter().filter(|r| r.status == 503).count(), 5);
    let got = accepted(&seen);
    let ids: Vec<&str> = got.iter().map(Received::id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "each message accepted once: {ids:?}"
    );
    // in the order the endpoint's messages were recorded, and each delivery queued before sent
    let log = call(
        &fleet,
        Method::GET,
        &format!("/api/v1/messaging/webhooks/endpoints/{id}/messages"),
        None,
    )
    .await;
    let mut recorded: Vec<String> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    recorded.reverse();
    assert_eq!(ids, recorded, "received in the endpoint's order");
    for d in &deliveries {
        let statuses: Vec<String> = got
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|b| b["data"]["delivery_id"] == d.as_str())
            .map(|b| b["data"]["status"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(statuses, ["queued", "sent"], "delivery {d}");
    }
    let first = log["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(first["attempts"].as_array().unwrap().len() >= 2, "{first}");
    assert_eq!(first["status"], "delivered");

    // the reference library verifies the signature, and refuses a forged body
    let r = got[0].clone();
    assert!(verified_by_reference_library(&secret, &r));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("bac.messaging.delivery."));
    assert!(
        body["timestamp"].is_string() && body["data"].is_object(),
        "{body}"
    );
    let mut forged = r.clone();
    forged.body = br#"{"type":"bac.messaging.delivery.sent","data":{}}"#.to_vec();
    assert!(!verified_by_reference_library(&secret, &forged));

    // disabled: nothing arrives; enabled again: what waited arrives, in order
    call(
        &fleet,
        Method::PATCH,
        &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let before = accepted(&seen).len();
    send_emails(&fleet, 1).await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            let e = call(
                &fleet,
                Method::GET,
                &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
                None,
            )
            .await;
            e["pending"].as_u64() == Some(2)
        })
        .await,
        "two messages wait for the disabled endpoint"
    );
    assert_eq!(
        accepted(&seen).len(),
        before,
        "a disabled endpoint receives nothing"
    );
    call(
        &fleet,
        Method::PATCH,
        &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            accepted(&seen).len() == before + 2
        })
        .await
    );

    // a replay sends one message again, with its id
    let replayed = call(
        &fleet,
        Method::POST,
        &format!("/api/v1/messaging/webhooks/endpoints/{id}/replay"),
        Some(json!({"message_id": ids[0]})),
    )
    .await;
    assert_eq!(replayed["replayed"], 1);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            accepted(&seen).len() == before + 3
        })
        .await
    );
    assert_eq!(accepted(&seen).last().unwrap().id(), ids[0]);

    // another tenant sees none of it
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet
        .call_as(
            &other,
            Method::GET,
            &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_keeps_failing_is_disabled_and_audited_and_bad_ones_are_refused() {
    let fleet = fleet(3).await;
    let (url, seen) = subscriber(usize::MAX).await;
    let ep = call(
        &fleet,
        Method::POST,
        "/api/v1/messaging/webhooks/endpoints",
        Some(json!({"url": url, "event_types": ["bac.messaging.*"]})),
    )
    .await;
    let id = ep["id"].as_str().unwrap().to_string();
    // an event of the tenant: a send command that can never be sent is a failed delivery
    let producer = bac_e2e::conformance::producer(&fleet);
    {
        use rdkafka::message::{Header, OwnedHeaders};
        let headers = [
            ("ce_id", "refused-1"),
            ("ce_type", "bac.messaging.email.send"),
            ("ce_tenantid", fleet.tenant.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        producer
            .send(
                rdkafka::producer::FutureRecord::to("bac.messaging.commands.v1")
                    .key("k")
                    .payload("{}")
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let disabled = wait_until(Duration::from_secs(60), || async {
        let e = call(
            &fleet,
            Method::GET,
            &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
            None,
        )
        .await;
        e["enabled"] == false
    })
    .await;
    assert!(
        disabled,
        "the endpoint is disabled after three failures in a row"
    );
    let e = call(
        &fleet,
        Method::GET,
        &format!("/api/v1/messaging/webhooks/endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(e["enabled"], false, "{e}");
    assert!(
        e["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed attempts"),
        "{e}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    let audit_seen = wait_until(Duration::from_secs(60), || async {
        let a = call(
            &fleet,
            Method::GET,
            "/api/v1/integrations/audit?limit=50",
            None,
        )
        .await;
        a.to_string().contains("webhook_endpoint.disabled")
    })
    .await;
    assert!(
        audit_seen,
        "the tenant's audit trail names the disabled endpoint"
    );

    // URLs the egress policy refuses, and event types the fleet does not publish
    for (body, code) in [
        (
            json!({"url": "http://169.254.169.254/latest", "event_types": ["bac.*"]}),
            "UPSTREAM_ADDRESS_NOT_ALLOWED",
        ),
        (
            json!({"url": "http://10.0.0.8/hook", "event_types": ["bac.*"]}),
            "UPSTREAM_ADDRESS_NOT_ALLOWED",
        ),
        (
            json!({"url": url, "event_types": ["bac.stripe.*"]}),
            "INVALID_REQUEST",
        ),
        (
            json!({"url": "ftp://example.com/x", "event_types": ["bac.*"]}),
            "INVALID_REQUEST",
        ),
    ] {
        let (status, b) = fleet
            .call(
                Method::POST,
                "/api/v1/messaging/webhooks/endpoints",
                Some(body.clone()),
            )
            .await;
        assert!(
            status == 400 || status == 403 || status == 422,
            "{body}: {status} {b}"
        );
        assert_eq!(b["details"]["error_code"], code, "{body}: {b}");
    }
}
