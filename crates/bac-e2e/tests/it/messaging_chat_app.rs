//! A Google Chat app's events (issue 16), against the Google sandbox: an event posted to the
//! connection's webhook URL is accepted only with a bearer token that
//! chat@system.gserviceaccount.com signed for the app's project number (forged, expired,
//! another project's or no token: 401), and published once on
//! `bac.messaging.google_chat_event.v1`.
use std::time::Duration;

use bac_e2e::{kafka, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const PROJECT: &str = "123456789012";

#[tokio::test(flavor = "multi_thread")]
async fn a_google_chat_app_hears_only_events_google_signed_for_its_project() {
    let (addr, _) = bac_sandbox_google::spawn_google(
        bac_sandbox_google::GoogleSandboxConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let google = format!("http://{addr}");
    let mut settings = bac_messaging::MessagingSettings::from_env();
    settings.google_chat_jwks_url =
        format!("{google}/service_accounts/v1/jwk/chat@system.gserviceaccount.com");
    let fleet = Fleet::start_opts(FleetOptions {
        messaging: Some(settings),
        ..Default::default()
    })
    .await;
    let (status, e) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "config": {"channel": "google_chat_app", "project_number": "my-project"}})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Chat app",
                        "config": {"channel": "google_chat_app", "project_number": PROJECT}})),
        )
        .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "Google's keys are read: {test}");
    let endpoint = fleet.webhook_url(&id).await;
    let events_url = format!("{google}/_sandbox/chat/events");
    let send = |body: Value| fleet.sandbox_post(&events_url, body);
    for how in ["forged", "expired", "other_audience", "none"] {
        let sent = send(
            json!({"url": endpoint, "project_number": PROJECT, "text": format!("{how} event"),
                               "signature": how}),
        )
        .await;
        assert_eq!(sent["answer"]["status"], 401, "{how}: {sent}");
    }
    // a token Google signed for another project
    let sent =
        send(json!({"url": endpoint, "project_number": "999", "text": "another project"})).await;
    assert_eq!(sent["answer"]["status"], 401, "{sent}");
    let sent = send(
        json!({"url": endpoint, "project_number": PROJECT, "text": "status of INV-7?",
                           "space": "spaces/AAAAbilling"}),
    )
    .await;
    assert_eq!(sent["answer"]["status"], 200, "{sent}");
    assert_eq!(sent["answer"]["body"], "{}", "no synchronous reply");
    let added = send(
        json!({"url": endpoint, "project_number": PROJECT, "type": "ADDED_TO_SPACE",
                            "space": "spaces/AAAAbilling"}),
    )
    .await;
    assert_eq!(added["answer"]["status"], 200, "{added}");

    // two clicks on one card (its message) are two events, not a retry of one
    for function in ["approve", "reject"] {
        let click = send(
            json!({"url": endpoint, "project_number": PROJECT, "type": "CARD_CLICKED",
                                "space": "spaces/AAAAbilling", "function": function,
                                "message": "spaces/AAAAbilling/messages/inv7.inv7"}),
        )
        .await;
        assert_eq!(click["answer"]["status"], 200, "{click}");
    }

    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.google_chat_event.v1");
    let events = kafka::collect(&c, Duration::from_secs(60), |rs| rs.len() >= 4).await;
    assert_eq!(
        events.len(),
        4,
        "only the verified events, each click once: {events:?}"
    );
    let clicks: Vec<String> = events
        .iter()
        .filter(|r| r.headers["ce_type"] == "bac.messaging.google_chat.card_clicked")
        .map(|r| {
            r.json()["event"]["common"]["invokedFunction"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(clicks, ["approve", "reject"]);
    let message = events
        .iter()
        .find(|r| r.headers["ce_type"] == "bac.messaging.google_chat.message")
        .expect("the message event");
    let m = message.json();
    assert_eq!(m["argument_text"], " status of INV-7?");
    assert_eq!(m["space"], "spaces/AAAAbilling");
    assert_eq!(m["user_email"], "grace@example.com");
    assert_eq!(m["message_name"], sent["event"]["message"]["name"]);
    assert!(events
        .iter()
        .any(|r| r.headers["ce_type"] == "bac.messaging.google_chat.added_to_space"));
}
