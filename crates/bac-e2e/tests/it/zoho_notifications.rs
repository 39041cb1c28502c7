//! Zoho CRM notification channels (issue 14): bac-zoho subscribes each connection's channel
//! to the gateway's push route, a record changed in Zoho becomes the platform's event
//! within seconds through it, a notification with a wrong channel token is refused and
//! changes nothing, the channel is re-subscribed before it expires, and a channel Zoho
//! dropped comes back.
use std::time::Duration;

use bac_connector::channels::KeeperTimes;
use bac_e2e::{kafka, wait_until, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ,ZohoCRM.notifications.ALL";

async fn sandbox(fleet: &Fleet, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let zoho = fleet.zoho_url.as_ref().unwrap();
    let mut req = fleet.http.request(method, format!("{zoho}/{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// The live channel of the `com` data centre pointed at `url`, if any.
async fn channel_to(fleet: &Fleet, url: &str) -> Option<Value> {
    let (_, body) = sandbox(fleet, Method::GET, "com/_sandbox/zoho/watch", None).await;
    body["channels"]
        .as_array()?
        .iter()
        .find(|c| c["notify_url"] == url && c["expired"] == false)
        .cloned()
}

/// A lead created in Zoho by a Zoho user (not through the fleet); its id.
async fn lead_made_in_zoho(fleet: &Fleet, token: &str, name: &str) -> String {
    let zoho = fleet.zoho_url.as_ref().unwrap();
    let answer: Value = fleet
        .http
        .post(format!("{zoho}/com/crm/v8/Leads"))
        .header("authorization", format!("Zoho-oauthtoken {token}"))
        .json(&json!({"data": [{"Last_Name": name, "Company": "Made in Zoho"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"][0]["details"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn crm_changes_arrive_through_the_notification_channel() {
    let fleet = Fleet::start_opts(FleetOptions {
        zoho: true,
        // channels live 30 s and are renewed in their last 20: a renewal every ~10 s
        zoho_push: Some(KeeperTimes {
            lifetime: Duration::from_secs(30),
            renew_before: Duration::from_secs(20),
            every: Duration::from_millis(500),
        }),
        ..Default::default()
    })
    .await;
    let leads = kafka::consumer(&fleet.infra.brokers, "bac.zoho.crm_lead.v1");
    let conn = fleet.connect_zoho("com", SCOPE, json!({})).await;
    let user = fleet.zoho_user_token("com").await;
    let push_url = format!("{}/api/v1/integrations/connections/{conn}/push", fleet.api);

    // The keeper subscribes the connection's channel to the gateway's push route.
    let found = std::sync::Mutex::new(Value::Null);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            match channel_to(&fleet, &push_url).await {
                Some(c) => {
                    *found.lock().unwrap() = c;
                    true
                }
                None => false,
            }
        })
        .await,
        "no channel to {push_url}"
    );
    let channel = found.into_inner().unwrap();
    let channel_id = channel["channel_id"].as_str().unwrap().to_string();
    let events: Vec<&str> = channel["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(events.contains(&"Leads.all"), "{channel}");
    let token = channel["token"].as_str().unwrap().to_string();
    assert!(!token.is_empty() && token.len() <= 50, "{channel}");

    // A lead made in Zoho arrives as the platform's event through the channel.
    let first = lead_made_in_zoho(&fleet, &user, "Pushed").await;
    let got = kafka::collect(&leads, Duration::from_secs(60), |r| {
        r.iter()
            .any(|e| e.headers["ce_subject"] == format!("crm_lead/{first}"))
    })
    .await;
    let mine: Vec<&kafka::Record> = got
        .iter()
        .filter(|e| e.headers["ce_subject"] == format!("crm_lead/{first}"))
        .collect();
    assert_eq!(mine.len(), 1, "{got:?}");
    assert_eq!(mine[0].headers["ce_type"], "bac.zoho.crm_lead.created");
    assert_eq!(mine[0].json()["after"]["last_name"], "Pushed");

    // A lead Zoho never announced (seeded past the sandbox's notification limit): forged
    // notifications of it are refused and change nothing; the channel's own token gets it in.
    let (_, seeded) = sandbox(
        &fleet,
        Method::POST,
        "com/_sandbox/zoho/records/Leads",
        Some(json!({"count": 1001})),
    )
    .await;
    let quiet = seeded["first"].as_str().unwrap().to_string();
    let note = |channel: &str, token: &str| {
        json!({"server_time": 0, "module": "Leads", "ids": [quiet.clone()], "operation": "insert",
               "channel_id": channel, "token": token, "query_params": {}, "affected_fields": []})
    };
    for body in [
        note(&channel_id, "wrong-token"),
        note("4242", &token),
        json!({"module": "Leads", "ids": [quiet.clone()]}),
    ] {
        let r = fleet.http.post(&push_url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["details"]["error_code"], "UNAUTHENTICATED", "{e}");
    }
    let elsewhere = fleet
        .connect_zoho("com", SCOPE, json!({"notifications": false}))
        .await;
    let r = fleet
        .http
        .post(format!(
            "{}/api/v1/integrations/connections/{elsewhere}/push",
            fleet.api
        ))
        .json(&note(&channel_id, &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "a channel of another connection");
    let r = fleet
        .http
        .post(&push_url)
        .json(&note(&channel_id, &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let counts: Value = r.json().await.unwrap();
    assert_eq!(counts["entity"], "crm_lead", "{counts}");
    assert_eq!(
        counts["created"], 1,
        "nothing forged got in before: {counts}"
    );

    // Renewed before it expires: Zoho's expiry moves on.
    let expiry = channel["channel_expiry"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(40), || async {
            channel_to(&fleet, &push_url)
                .await
                .is_some_and(|c| c["channel_expiry"].as_str().unwrap_or("") > expiry.as_str())
        })
        .await,
        "the channel was not renewed"
    );

    // Zoho drops the channel: nothing is notified, then the keeper subscribes it again.
    let (status, _) = sandbox(
        &fleet,
        Method::DELETE,
        &format!("com/_sandbox/zoho/watch/{channel_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        wait_until(Duration::from_secs(40), || async {
            channel_to(&fleet, &push_url).await.is_some()
        })
        .await,
        "the lapsed channel was not subscribed again"
    );
    let second = lead_made_in_zoho(&fleet, &user, "After the lapse").await;
    let got = kafka::collect(&leads, Duration::from_secs(60), |r| {
        r.iter()
            .any(|e| e.headers["ce_subject"] == format!("crm_lead/{second}"))
    })
    .await;
    assert!(
        got.iter()
            .any(|e| e.headers["ce_subject"] == format!("crm_lead/{second}")),
        "{got:?}"
    );

    // The gateway lists the push route without a token of its own.
    let (status, doc) = fleet.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/api/v1/integrations/connections/{id}/push"]["post"].is_object(),
        "push route documented"
    );
}
