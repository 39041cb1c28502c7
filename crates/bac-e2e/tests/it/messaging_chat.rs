//! Microsoft Teams and Google Chat through their incoming webhooks (issue 16): a Teams message
//! arrives as an Adaptive Card, after a 429 that made it `deferred`; a Google Chat message
//! names its thread; the webhook URL (the credential) appears in no answer or event.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bac_e2e::{kafka, wait_until, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// One post an incoming webhook received: its path and query, and its JSON body.
type Posts = Arc<Mutex<Vec<(String, Value)>>>;

/// Incoming webhooks on loopback: `/teams` answers 429 to its first post, then `1` as Teams'
/// connectors do; `/chat` answers the message as Google Chat does.
async fn webhooks() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let log = posts.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            let mut log = log.lock().unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let first_to_teams =
                uri.path() == "/teams" && !log.iter().any(|(p, _)| p.starts_with("/teams"));
            log.push((uri.to_string(), body.clone()));
            if first_to_teams {
                return (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "slow down".to_string(),
                );
            }
            if uri.path() == "/teams" {
                (axum::http::StatusCode::OK, "1".to_string())
            } else {
                let text = body["text"].as_str().unwrap_or("").to_string();
                (
                    axum::http::StatusCode::OK,
                    json!({"name": "spaces/AAA/messages/1", "text": text}).to_string(),
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), posts)
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_and_google_chat_messages_arrive_through_their_incoming_webhooks() {
    let mut settings = bac_messaging::MessagingSettings::from_env();
    settings.retry.base = Duration::from_millis(100);
    settings.retry.max = Duration::from_millis(400);
    let fleet = Fleet::start_opts(FleetOptions {
        messaging: Some(settings),
        ..Default::default()
    })
    .await;
    let (base, posts) = webhooks().await;
    let connect = |channel: &str, url: String| {
        let body = json!({"integration": "messaging", "name": channel,
            "config": {"channel": channel}, "credentials": {"webhook_url": url}});
        let f = &fleet;
        async move {
            let (status, c) = f
                .call(Method::POST, "/api/v1/integrations/connections", Some(body))
                .await;
            assert_eq!(status, 201, "{c}");
            c["id"].as_str().unwrap().to_string()
        }
    };
    let teams = connect("teams", format!("{base}/teams?sig=s3cret-teams")).await;
    connect(
        "google_chat",
        format!("{base}/chat?key=K&token=s3cret-chat"),
    )
    .await;
    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{teams}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert!(!test.to_string().contains("s3cret"), "{test}");

    let (status, d) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/teams/messages",
            Some(json!({"title": "Invoice INV-7 paid", "text": "Acme Corp paid **$120.00**."})),
        )
        .await;
    assert_eq!(status, 202, "{d}");
    let teams_id = d["id"].as_str().unwrap().to_string();
    let (status, g) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/google-chat/messages",
            Some(json!({"text": "Invoice INV-7 paid", "thread_key": "inv-7"})),
        )
        .await;
    assert_eq!(status, 202, "{g}");
    let chat_id = g["id"].as_str().unwrap().to_string();

    for (id, attempts) in [(&teams_id, 2), (&chat_id, 1)] {
        let done = wait_until(Duration::from_secs(60), || async {
            let (_, d) = fleet
                .call(
                    Method::GET,
                    &format!("/api/v1/messaging/deliveries/{id}"),
                    None,
                )
                .await;
            d["status"] == "sent"
        })
        .await;
        assert!(done, "delivery {id} was not sent");
        let (_, d) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/messaging/deliveries/{id}"),
                None,
            )
            .await;
        assert_eq!(d["attempts"], attempts, "{d}");
        assert!(!d.to_string().contains("s3cret"), "{d}");
    }

    let posts = posts.lock().unwrap().clone();
    let to_teams: Vec<&Value> = posts
        .iter()
        .filter(|(p, _)| p.starts_with("/teams"))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(to_teams.len(), 2, "a 429, then the message");
    let card = &to_teams[1]["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["body"][0]["text"], "Invoice INV-7 paid");
    assert_eq!(
        card["content"]["body"][1]["text"],
        "Acme Corp paid **$120.00**."
    );
    let (path, body) = posts.iter().find(|(p, _)| p.starts_with("/chat")).unwrap();
    assert!(
        path.contains("messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"),
        "{path}"
    );
    assert_eq!(
        body,
        &json!({"text": "Invoice INV-7 paid", "thread": {"threadKey": "inv-7"}})
    );

    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.delivery.v1");
    let subject = format!("delivery/{teams_id}");
    let events = kafka::collect(&c, Duration::from_secs(60), |rs| {
        rs.iter()
            .filter(|r| r.headers.get("ce_subject") == Some(&subject))
            .count()
            >= 3
    })
    .await;
    let mine: Vec<String> = events
        .iter()
        .filter(|r| r.headers.get("ce_subject") == Some(&subject))
        .map(|r| r.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mine, ["queued", "deferred", "sent"]);
    assert!(events
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.payload).contains("s3cret")));

    // the same from another service, as a command on bac.messaging.commands.v1
    {
        use rdkafka::message::{Header, OwnedHeaders};
        let headers = [
            ("ce_id", "chat-cmd-1"),
            ("ce_type", "bac.messaging.google_chat.send"),
            ("ce_tenantid", fleet.tenant.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        bac_e2e::conformance::producer(&fleet)
            .send(
                rdkafka::producer::FutureRecord::to("bac.messaging.commands.v1")
                    .key("chat")
                    .payload(r#"{"text": "Stock low: SKU-9", "thread_key": "stock"}"#)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let sent = wait_until(Duration::from_secs(60), || async {
        let (_, l) = fleet
            .call(
                Method::GET,
                "/api/v1/messaging/deliveries?status=sent",
                None,
            )
            .await;
        l["deliveries"].as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["intent_id"] == "chat-cmd-1" && d["channel"] == "google_chat")
        })
    })
    .await;
    assert!(sent, "the Google Chat command was posted");

    // a URL that is not one, a setting chat connections do not have
    for body in [
        json!({"integration": "messaging", "name": "x", "config": {"channel": "teams"},
            "credentials": {"webhook_url": "ftp://example.com/x"}}),
        json!({"integration": "messaging", "name": "x", "config": {"channel": "teams", "smtp_host": "a.example"},
            "credentials": {"webhook_url": "https://example.com/x"}}),
    ] {
        let (status, e) = fleet
            .call(
                Method::POST,
                "/api/v1/integrations/connections",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {e}");
    }
}
