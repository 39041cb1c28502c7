//! CRM notification channels: subscribe, re-subscribe, update, list, disable, Zoho's
//! refusals, and a CRM insert delivered to a listener as Zoho posts it (waited for, not
//! slept on), nothing to an expired channel.
use axum::{extract::State, http::Method, routing::post, Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::Sandbox;

const SCOPE: &str = "ZohoCRM.notifications.ALL,ZohoCRM.modules.ALL";

/// A listener that hands every JSON body it receives to the test.
async fn listener() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/push",
            post(
                |State(tx): State<mpsc::UnboundedSender<Value>>, Json(v): Json<Value>| async move {
                    let _ = tx.send(v);
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(tx);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/push"), rx)
}

fn watch(channel: &str, url: &str, extra: Value) -> Value {
    let mut ch = json!({"channel_id": channel, "events": ["Leads.all"], "token": "tok-1",
                        "notify_url": url});
    if let (Some(o), Some(e)) = (ch.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({"watch": [ch]})
}

#[tokio::test]
async fn channels_subscribe_deliver_and_expire() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let (url, mut got) = listener().await;

    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &token,
            watch("1000000068001", &url, json!({})),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let w = &a.body["watch"][0];
    assert_eq!(w["code"], "SUCCESS");
    assert_eq!(w["details"]["events"][0]["resource_name"], "Leads");
    assert_eq!(w["details"]["events"][0]["channel_id"], "1000000068001");

    // Zoho's refusals.
    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &token,
            watch("1", &url, json!({"events": ["Tasks.all"]})),
        )
        .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (400, Some("INVALID_DATA")),
        "{a:?}"
    );
    let week_and_a_day = chrono::DateTime::from_timestamp(sb.clock.now() + 8 * 86_400, 0)
        .unwrap()
        .to_rfc3339();
    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &token,
            watch("1", &url, json!({"channel_expiry": week_and_a_day})),
        )
        .await;
    assert_eq!(a.body["details"]["api_name"], "channel_expiry", "{a:?}");
    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &token,
            json!({"watch": [{"channel_id": "2"}]}),
        )
        .await;
    assert_eq!(a.body["code"], "MANDATORY_NOT_FOUND", "{a:?}");
    let crm_only = sb.token("ZohoCRM.modules.ALL").await;
    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &crm_only,
            watch("3", &url, json!({})),
        )
        .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("OAUTH_SCOPE_MISMATCH"))
    );
    let a = sb
        .call(
            Method::PATCH,
            "/eu/crm/v8/actions/watch",
            &token,
            &[],
            Some(watch("999", &url, json!({})).to_string()),
        )
        .await;
    assert_eq!(a.body["details"]["api_name"], "channel_id", "{a:?}");

    // A lead inserted through the CRM API is announced once, with its id and the token.
    let a = sb
        .post(
            "/eu/crm/v8/Leads",
            &token,
            json!({"data": [{"Last_Name": "Announced"}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.body["data"][0]["details"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let n = got.recv().await.unwrap();
    assert_eq!(n["module"], "Leads");
    assert_eq!(n["operation"], "insert");
    assert_eq!(n["ids"], json!([id]));
    assert_eq!(n["channel_id"], "1000000068001");
    assert_eq!(n["token"], "tok-1");

    // Re-subscribing replaces; listing shows the live channel.
    let a = sb
        .post(
            "/eu/crm/v8/actions/watch",
            &token,
            watch("1000000068001", &url, json!({"token": "tok-2"})),
        )
        .await;
    assert_eq!(a.status, 201);
    let a = sb.get("/eu/crm/v8/actions/watch", &token).await;
    assert_eq!(a.body["watch"].as_array().map(Vec::len), Some(1), "{a:?}");
    assert_eq!(a.body["watch"][0]["token"], "tok-2");

    // Past its expiry (an hour by default) a channel is not told anything.
    sb.clock.advance(3601);
    let token = sb.token(SCOPE).await; // the access token expired as well
    let a = sb.get("/eu/crm/v8/actions/watch", &token).await;
    assert_eq!(a.status, 204, "{a:?}");
    let listed = sb
        .send(Method::GET, "/eu/_sandbox/zoho/watch", &[], None)
        .await;
    assert_eq!(listed.body["channels"][0]["expired"], true, "{listed:?}");
    let a = sb
        .post(
            "/eu/crm/v8/Leads",
            &token,
            json!({"data": [{"Last_Name": "Unannounced"}]}),
        )
        .await;
    assert_eq!(a.status, 201);
    // What the admin route sends is the only delivery after the expiry.
    let a = sb
        .send(
            Method::POST,
            "/eu/_sandbox/zoho/notify",
            &[],
            Some(json!({"channel_id": "1000000068001", "module": "Leads", "operation": "update", "ids": ["42"]}).to_string()),
        )
        .await;
    assert_eq!(a.body["status"], 202, "{a:?}");
    let n = got.recv().await.unwrap();
    assert_eq!(
        n["ids"],
        json!(["42"]),
        "the expired channel got the insert: {n}"
    );
    // the admin route logs before it answers (a background delivery logs after its answer)
    let log = sb
        .send(Method::GET, "/eu/_sandbox/zoho/notifications", &[], None)
        .await;
    let last = log.body["deliveries"]
        .as_array()
        .and_then(|d| d.last())
        .cloned();
    assert_eq!(
        last.as_ref().map(|l| l["status"].clone()),
        Some(json!(202)),
        "{log:?}"
    );
    assert_eq!(last.map(|l| l["ids"].clone()), Some(json!(["42"])));

    // Disabled channels and dropped ones are gone.
    let a = sb
        .call(
            Method::DELETE,
            "/eu/crm/v8/actions/watch?channel_ids=1000000068001",
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.body["watch"][0]["code"], "SUCCESS", "{a:?}");
    let a = sb
        .send(
            Method::DELETE,
            "/eu/_sandbox/zoho/watch/1000000068001",
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 404);
    let a = sb
        .call(
            Method::DELETE,
            "/eu/crm/v8/actions/watch",
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.body["code"], "REQUIRED_PARAM_MISSING", "{a:?}");
}
