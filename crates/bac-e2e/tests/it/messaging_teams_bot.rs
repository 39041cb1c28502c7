//! A Microsoft Teams bot through the Bot Framework (issue 16), against the Teams sandbox: the
//! bot's token minted with its client credentials (the connection test); activities posted
//! to the connection's webhook URL verified against the Bot Framework's OpenID metadata (a
//! forged, expired, foreign or missing token refused) and published once; a reply posted
//! through the conversation's service URL with the bot's token.
use std::time::Duration;

use bac_e2e::{kafka, wait_until, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const APP_ID: &str = "4f1c0c5e-6f3a-4e0b-9d2a-1b2c3d4e5f60";
const APP_PASSWORD: &str = "bot-s3cret-password";

#[tokio::test(flavor = "multi_thread")]
async fn a_teams_bot_hears_verified_activities_and_replies_in_the_conversation() {
    let (addr, _) = bac_sandbox_teams::spawn_teams(([127, 0, 0, 1], 0).into(), None)
        .await
        .unwrap();
    let teams = format!("http://{addr}");
    let mut settings = bac_messaging::MessagingSettings::from_env();
    settings.retry.base = Duration::from_millis(100);
    settings.retry.max = Duration::from_millis(400);
    settings.botframework = bac_messaging::teams_bot::BotFrameworkSettings {
        openid_url: format!("{teams}/v1/.well-known/openidconfiguration"),
        token_url: format!("{teams}/{{tenant}}/oauth2/v2.0/token"),
    };
    let fleet = Fleet::start_opts(FleetOptions {
        messaging: Some(settings),
        ..Default::default()
    })
    .await;
    fleet
        .sandbox_post(
            &format!("{teams}/_sandbox/oauth/clients"),
            json!({"client_id": APP_ID, "client_secret": APP_PASSWORD, "redirect_uris": []}),
        )
        .await;

    // bad settings are refused before anything is stored
    let (status, e) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "config": {"channel": "teams_bot", "app_id": "my-bot"},
                        "credentials": {"app_password": APP_PASSWORD}})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Teams bot",
                        "config": {"channel": "teams_bot", "app_id": APP_ID},
                        "credentials": {"app_password": APP_PASSWORD}})),
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
    assert_eq!(
        status, 200,
        "the bot's client credentials give a token: {test}"
    );
    assert!(!test.to_string().contains(APP_PASSWORD), "{test}");

    let endpoint = fleet.webhook_url(&id).await;
    let events_url = format!("{teams}/_sandbox/teams/activities");
    let send = |body: Value| fleet.sandbox_post(&events_url, body);
    for how in ["forged", "expired", "other_audience", "none"] {
        let sent = send(
            json!({"url": endpoint, "app_id": APP_ID, "text": format!("{how} activity"),
                               "signature": how}),
        )
        .await;
        assert_eq!(sent["answer"]["status"], 401, "{how}: {sent}");
    }
    // a key endorsed for Teams does not vouch for another channel
    let sent = send(
        json!({"url": endpoint, "app_id": APP_ID, "text": "from skype", "channel_id": "skype"}),
    )
    .await;
    assert_eq!(sent["answer"]["status"], 401, "{sent}");

    let sent = send(
        json!({"url": endpoint, "app_id": APP_ID, "text": "What is the status of INV-7?",
                           "conversation_id": "a:1invoiceChat"}),
    )
    .await;
    assert_eq!(sent["answer"]["status"], 200, "{sent}");
    let activity_id = sent["activity"]["id"].as_str().unwrap().to_string();

    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.teams_activity.v1");
    let events = kafka::collect(&c, Duration::from_secs(60), |rs| !rs.is_empty()).await;
    assert_eq!(events.len(), 1, "only the verified activity: {events:?}");
    let e = events[0].json();
    assert_eq!(e["activity_id"], activity_id.as_str());
    assert_eq!(e["conversation_id"], "a:1invoiceChat");
    assert_eq!(e["text"], "What is the status of INV-7?");
    assert_eq!(e["from_name"], "Grace Hopper");
    assert_eq!(events[0].headers["ce_type"], "bac.messaging.teams.message");

    // the platform answers in the conversation, as the bot
    let (status, d) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/teams/messages",
            Some(
                json!({"conversation_id": "a:1invoiceChat", "reply_to_id": activity_id,
                        "text": "INV-7 was paid on 3 December."}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{d}");
    let delivery = d["id"].as_str().unwrap().to_string();
    let sent = wait_until(Duration::from_secs(60), || async {
        let (_, d) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/messaging/deliveries/{delivery}"),
                None,
            )
            .await;
        d["status"] == "sent"
    })
    .await;
    assert!(sent, "the reply was not sent");
    let replies = fleet
        .sandbox_get(&format!("{teams}/_sandbox/teams/replies"))
        .await;
    let r = &replies["replies"][0];
    assert_eq!(r["conversation_id"], "a:1invoiceChat", "{replies}");
    assert_eq!(r["reply_to_id"], activity_id.as_str());
    assert_eq!(r["bot"], APP_ID, "posted with the bot's own token");
    assert_eq!(r["activity"]["text"], "INV-7 was paid on 3 December.");

    // a conversation the bot never heard from has nowhere to go
    let (status, e) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/teams/messages",
            Some(json!({"conversation_id": "a:1stranger", "text": "hello"})),
        )
        .await;
    assert_eq!(status, 404, "{e}");
}
