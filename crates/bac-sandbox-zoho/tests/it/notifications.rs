//! CRM notification channels (`actions/watch`) as `.git/zoho-watch-protocol.md` has them:
//! subscribe, re-subscribe, update, list, disable, Zoho's refusals; CRM inserts, updates,
//! deletes and seeds delivered to a listener on 127.0.0.1 as Zoho posts them (waited for on
//! a channel, never slept on), nothing to expired, disabled or dropped channels; the admin
//! routes and the delivery log.
use std::time::Duration;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    routing::post,
    Router,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{Answer, Sandbox};

const SCOPE: &str = "ZohoCRM.notifications.ALL,ZohoCRM.modules.ALL,ZohoCRM.settings.READ";
const WATCH: &str = "/eu/crm/v8/actions/watch";

/// What the listener was sent: the content type and the JSON body.
#[derive(Debug)]
struct Received {
    content_type: String,
    body: Value,
}

/// A listener on 127.0.0.1 that answers 202 and hands every POST it receives to the test.
async fn listener() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/push",
            post(
                |State(tx): State<mpsc::UnboundedSender<Received>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let _ = tx.send(Received { content_type, body });
                    StatusCode::ACCEPTED
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

/// The next notification the listener got (waited for, at most ten seconds).
async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no notification within 10s")
        .expect("the listener stopped")
}

/// One channel entry: `channel_id`, `Leads.all`, `tok-1`, `url`, with `extra` over it.
fn channel(id: &str, url: &str, extra: Value) -> Value {
    let mut ch = json!({"channel_id": id, "events": ["Leads.all"], "token": "tok-1",
                        "notify_url": url});
    if let (Some(o), Some(e)) = (ch.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    ch
}

fn watch(id: &str, url: &str, extra: Value) -> Value {
    json!({"watch": [channel(id, url, extra)]})
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339()
}

async fn subscribe(sb: &Sandbox, token: &str, body: Value) -> Answer {
    sb.post(WATCH, token, body).await
}

async fn patch(sb: &Sandbox, token: &str, body: Value) -> Answer {
    sb.call(Method::PATCH, WATCH, token, &[], Some(body.to_string()))
        .await
}

/// Inserts leads through the CRM API; their ids.
async fn insert_leads(sb: &Sandbox, token: &str, names: &[&str]) -> Vec<String> {
    let data: Vec<Value> = names.iter().map(|n| json!({"Last_Name": n})).collect();
    let a = sb
        .post("/eu/crm/v8/Leads", token, json!({"data": data}))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["details"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn admin(sb: &Sandbox, method: Method, path: &str, body: Option<Value>) -> Answer {
    sb.send(method, path, &[], body.map(|b| b.to_string()))
        .await
}

async fn deliveries(sb: &Sandbox) -> Vec<Value> {
    let a = admin(sb, Method::GET, "/eu/_sandbox/zoho/notifications", None).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// The delivery log once it holds `n` entries: a background delivery logs after the listener
/// answered, so this waits for the log (yielding, never sleeping), at most ten seconds.
async fn log_of(sb: &Sandbox, n: usize) -> Vec<Value> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let log = deliveries(sb).await;
            if log.len() >= n {
                return log;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the log never held {n} deliveries"))
}

async fn credits_used(sb: &Sandbox) -> u64 {
    admin(sb, Method::GET, "/eu/_sandbox/zoho/credits", None)
        .await
        .body["used"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn subscribe_update_list_and_disable_answer_as_zoho_does() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let url = "https://fleet.test/push/zoho";

    // A channel on two modules: 201, one entry per module with that module's id.
    let before = credits_used(&sb).await;
    let now = sb.clock.now();
    let a = subscribe(
        &sb,
        &token,
        watch(
            "1000000068001",
            url,
            json!({"events": ["Leads.create", "Contacts.all", "Leads.edit"],
                   "notify_on_related_action": false}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(credits_used(&sb).await, before + 1);
    let modules = sb.get("/eu/crm/v8/settings/modules", &token).await;
    let id_of = |name: &str| {
        modules.body["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["api_name"] == name)
            .map(|m| m["id"].clone())
            .unwrap()
    };
    let expiry = bac_sandbox_zoho::records::zoho_time(now + 3600);
    assert_eq!(
        a.body,
        json!({"watch": [{
            "code": "SUCCESS",
            "details": {"events": [
                {"channel_expiry": expiry, "resource_uri": "http://sandbox.test/eu/crm/v8/Leads",
                 "resource_id": id_of("Leads"), "resource_name": "Leads", "channel_id": "1000000068001"},
                {"channel_expiry": expiry, "resource_uri": "http://sandbox.test/eu/crm/v8/Contacts",
                 "resource_id": id_of("Contacts"), "resource_name": "Contacts", "channel_id": "1000000068001"},
            ]},
            "message": "Successfully subscribed for actions-watch of the given module",
            "status": "success",
        }]})
    );

    // Listed per channel and module, with that module's events.
    let a = sb.get(WATCH, &token).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body["info"],
        json!({"per_page": 200, "count": 2, "page": 1, "more_records": false})
    );
    let leads = &a.body["watch"][0];
    assert_eq!(leads["channel_id"], "1000000068001");
    assert_eq!(leads["resource_name"], "Leads");
    assert_eq!(leads["events"], json!(["Leads.create", "Leads.edit"]));
    assert_eq!(leads["notify_url"], url);
    assert_eq!(leads["token"], "tok-1");
    assert_eq!(leads["channel_expiry"], expiry);
    assert_eq!(leads["notify_on_related_action"], false);
    assert_eq!(a.body["watch"][1]["events"], json!(["Contacts.all"]));
    let a = sb.get(&format!("{WATCH}?module=Contacts"), &token).await;
    assert_eq!(a.body["info"]["count"], 1, "{a:?}");
    assert_eq!(a.body["watch"][0]["resource_name"], "Contacts");
    assert_eq!(
        sb.get(&format!("{WATCH}?channel_id=5"), &token)
            .await
            .status,
        204
    );

    // Posting the channel id again replaces the subscription (a number is a channel id too).
    let a = subscribe(
        &sb,
        &token,
        json!({"watch": [{"channel_id": 1000000068001_u64, "events": ["Deals.delete"],
                          "notify_url": "http://other.test/hook", "token": "tok-2"}]}),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let listed = admin(&sb, Method::GET, "/eu/_sandbox/zoho/watch", None).await;
    let channels = listed.body["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1, "{listed:?}");
    assert_eq!(channels[0]["events"], json!(["Deals.delete"]));
    assert_eq!(channels[0]["notify_url"], "http://other.test/hook");
    assert_eq!(channels[0]["token"], "tok-2");
    assert_eq!(channels[0]["expired"], false);

    // PATCH replaces what it names and keeps the expiry it does not; PUT is the same call;
    // `.UPDATE` and `.WRITE` both allow it.
    let later = sb.clock.now() + 2 * 86_400;
    let a = patch(
        &sb,
        &token,
        json!({"watch": [{"channel_id": "1000000068001", "token": "tok-3", "channel_expiry": rfc3339(later)}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let w = &a.body["watch"][0];
    assert_eq!(w["message"], "Successfully updated the subscribe details");
    assert_eq!(w["code"], "SUCCESS");
    assert_eq!(w["details"]["events"][0]["resource_name"], "Deals");
    assert_eq!(
        w["details"]["events"][0]["channel_expiry"],
        bac_sandbox_zoho::records::zoho_time(later)
    );
    for scope in [
        "ZohoCRM.notifications.UPDATE",
        "ZohoCRM.notifications.WRITE",
    ] {
        let t = sb.token(scope).await;
        let a = sb
            .call(
                Method::PUT,
                WATCH,
                &t,
                &[],
                Some(
                    json!({"watch": [{"channel_id": "1000000068001", "events": ["Deals.all"]}]})
                        .to_string(),
                ),
            )
            .await;
        assert_eq!(a.status, 200, "{scope}: {a:?}");
    }
    let a = sb.get(WATCH, &token).await;
    assert_eq!(a.body["watch"][0]["events"], json!(["Deals.all"]));
    assert_eq!(a.body["watch"][0]["token"], "tok-3");
    assert_eq!(a.body["watch"][0]["notify_url"], "http://other.test/hook");
    assert_eq!(
        a.body["watch"][0]["channel_expiry"],
        bac_sandbox_zoho::records::zoho_time(later)
    );

    // DELETE disables (unknown ids are ignored); nothing is listed after it.
    let a = sb
        .call(
            Method::DELETE,
            &format!("{WATCH}?channel_ids=1000000068001,77"),
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body,
        json!({"watch": [{"code": "SUCCESS", "details": {"events": [
            {"resource_uri": "http://sandbox.test/eu/crm/v8/Deals", "resource_id": id_of("Deals"),
             "resource_name": "Deals", "channel_id": "1000000068001"}]},
            "message": "Successfully unsubscribed from actions-watch", "status": "success"}]})
    );
    assert_eq!(sb.get(WATCH, &token).await.status, 204);
    let listed = admin(&sb, Method::GET, "/eu/_sandbox/zoho/watch", None).await;
    assert_eq!(listed.body["channels"], json!([]));
}

#[tokio::test]
async fn refusals_are_zoho_s() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let url = "https://fleet.test/push";
    let now = sb.clock.now();

    let invalid = |field: &str| json!({"code": "INVALID_DATA", "details": {"api_name": field}, "message": "invalid data", "status": "error"});
    let cases = [
        (
            channel("1", url, json!({"events": ["Tasks.all"]})),
            "events",
        ),
        (
            channel("1", url, json!({"events": ["Leads.merge"]})),
            "events",
        ),
        (channel("1", url, json!({"events": []})), "events"),
        (channel("1", "ftp://fleet.test/x", json!({})), "notify_url"),
        (channel("1", "not a url", json!({})), "notify_url"),
        (channel("1", url, json!({"token": "t".repeat(51)})), "token"),
        (channel("abc", url, json!({})), "channel_id"),
        (
            channel("12345678901234567890", url, json!({})),
            "channel_id",
        ),
        (
            channel(
                "1",
                url,
                json!({"channel_expiry": rfc3339(now + 7 * 86_400 + 60)}),
            ),
            "channel_expiry",
        ),
        (
            channel("1", url, json!({"channel_expiry": rfc3339(now - 60)})),
            "channel_expiry",
        ),
        (
            channel("1", url, json!({"channel_expiry": "tomorrow"})),
            "channel_expiry",
        ),
    ];
    for (ch, field) in cases {
        let a = subscribe(&sb, &token, json!({"watch": [ch]})).await;
        assert_eq!((a.status, &a.body), (400, &invalid(field)), "{ch}");
    }
    // a week to the second is allowed, and so are 50 characters of token
    let a = subscribe(
        &sb,
        &token,
        watch(
            "2",
            url,
            json!({"channel_expiry": rfc3339(now + 7 * 86_400 - 1), "token": "t".repeat(50)}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");

    for field in ["channel_id", "events", "notify_url"] {
        let mut ch = channel("3", url, json!({}));
        ch.as_object_mut().unwrap().remove(field);
        let a = subscribe(&sb, &token, json!({"watch": [ch]})).await;
        assert_eq!(
            (a.status, &a.body),
            (
                400,
                &json!({"code": "MANDATORY_NOT_FOUND", "details": {"api_name": field},
                        "message": "required field not found", "status": "error"})
            ),
            "{field}"
        );
    }

    let bad_body = json!({"code": "INVALID_DATA", "details": {}, "message": "invalid data", "status": "error"});
    let a = sb
        .call(Method::POST, WATCH, &token, &[], Some("{not json".into()))
        .await;
    assert_eq!((a.status, &a.body), (400, &bad_body));
    let a = subscribe(&sb, &token, json!({"channels": []})).await;
    assert_eq!((a.status, &a.body), (400, &bad_body));
    let eleven: Vec<Value> = (10..21)
        .map(|i| channel(&i.to_string(), url, json!({})))
        .collect();
    let a = subscribe(&sb, &token, json!({"watch": eleven})).await;
    assert_eq!((a.status, &a.body), (400, &bad_body));

    // PATCH names an existing channel.
    let a = patch(&sb, &token, watch("999", url, json!({}))).await;
    assert_eq!((a.status, &a.body), (400, &invalid("channel_id")));
    let a = patch(&sb, &token, json!({"watch": [{"token": "x"}]})).await;
    assert_eq!(a.body["code"], "MANDATORY_NOT_FOUND", "{a:?}");
    assert_eq!(a.body["details"]["api_name"], "channel_id");
    let a = patch(
        &sb,
        &token,
        watch(
            "2",
            url,
            json!({"channel_expiry": rfc3339(now + 8 * 86_400)}),
        ),
    )
    .await;
    assert_eq!((a.status, &a.body), (400, &invalid("channel_expiry")));

    // Tokens and scopes, versions, DELETE's parameter.
    let crm_only = sb.token("ZohoCRM.modules.ALL").await;
    let a = subscribe(&sb, &crm_only, watch("4", url, json!({}))).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("OAUTH_SCOPE_MISMATCH")),
        "{a:?}"
    );
    let create_only = sb.token("ZohoCRM.notifications.CREATE").await;
    assert_eq!(
        subscribe(&sb, &create_only, watch("4", url, json!({})))
            .await
            .status,
        201
    );
    let a = sb.get(WATCH, &create_only).await;
    assert_eq!(a.body["code"], "OAUTH_SCOPE_MISMATCH", "{a:?}");
    let a = patch(&sb, &create_only, watch("4", url, json!({}))).await;
    assert_eq!(a.body["code"], "OAUTH_SCOPE_MISMATCH", "{a:?}");
    let a = sb.get(WATCH, "not-a-token").await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("INVALID_TOKEN"))
    );
    let a = sb.get("/eu/crm/v9/actions/watch", &token).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (404, Some("INVALID_URL_PATTERN"))
    );
    let a = sb.call(Method::DELETE, WATCH, &token, &[], None).await;
    assert_eq!(
        (a.status, &a.body),
        (
            400,
            &json!({"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "channel_ids"},
                    "message": "One of the expected parameter is missing", "status": "error"})
        )
    );

    // Nothing refused was stored; the channels live in their data centre only.
    let listed = admin(&sb, Method::GET, "/eu/_sandbox/zoho/watch", None).await;
    let ids: Vec<&Value> = listed.body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["channel_id"])
        .collect();
    assert_eq!(ids, [&json!("2"), &json!("4")], "{listed:?}");
    let com = admin(&sb, Method::GET, "/com/_sandbox/zoho/watch", None).await;
    assert_eq!(com.body["channels"], json!([]));
}

#[tokio::test]
async fn crm_changes_are_delivered_once_per_call_to_the_channels_watching_them() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let (url, mut got) = listener().await;
    let a = subscribe(
        &sb,
        &token,
        json!({"watch": [
            channel("1000000068001", &url, json!({})),
            channel("1000000068002", &url, json!({"events": ["Contacts.create"], "token": null})),
        ]}),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");

    // One insert of two leads: one notification naming both, as Zoho posts it.
    let ids = insert_leads(&sb, &token, &["Ada", "Grace"]).await;
    let n = next(&mut got).await;
    assert_eq!(n.content_type, "application/json");
    let server_time = n.body["server_time"].as_i64().unwrap();
    let now = sb.clock.now() * 1000;
    assert!((now - 5000..=now).contains(&server_time), "{n:?}");
    assert_eq!(
        n.body,
        json!({"server_time": server_time, "query_params": {}, "module": "Leads",
               "resource_uri": "http://sandbox.test/eu/crm/v8/Leads", "ids": ids,
               "affected_fields": [], "operation": "insert", "channel_id": "1000000068001",
               "token": "tok-1"})
    );

    // `actions/watch` is not a record of a module named "actions"; records are still served.
    let a = sb
        .get(&format!("/eu/crm/v8/Leads/{}", ids[0]), &token)
        .await;
    assert_eq!(
        (a.status, &a.body["data"][0]["id"]),
        (200, &json!(ids[0])),
        "{a:?}"
    );
    let a = sb.get("/eu/crm/v8/actions", &token).await;
    assert_eq!(a.body["code"], "INVALID_MODULE", "{a:?}");

    // An update and a delete, each announced with its id.
    let a = sb
        .call(
            Method::PUT,
            &format!("/eu/crm/v8/Leads/{}", ids[1]),
            &token,
            &[],
            Some(json!({"data": [{"Company": "Navy"}]}).to_string()),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let n = next(&mut got).await;
    assert_eq!(
        (&n.body["operation"], &n.body["ids"]),
        (&json!("update"), &json!([ids[1]]))
    );
    let a = sb
        .call(
            Method::DELETE,
            &format!("/eu/crm/v8/Leads/{}", ids[0]),
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let n = next(&mut got).await;
    assert_eq!(
        (&n.body["operation"], &n.body["ids"], &n.body["module"]),
        (&json!("delete"), &json!([ids[0]]), &json!("Leads"))
    );
    // a refused change is not announced
    let a = sb
        .call(
            Method::DELETE,
            &format!("/eu/crm/v8/Leads/{}", ids[0]),
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 400, "{a:?}");

    // A channel gets the operations it watches only: Contacts.create, not an edit.
    let a = sb
        .post(
            "/eu/crm/v8/Contacts",
            &token,
            json!({"data": [{"Last_Name": "Hopper"}]}),
        )
        .await;
    let contact = a.body["data"][0]["details"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let n = next(&mut got).await;
    assert_eq!(
        (
            &n.body["channel_id"],
            &n.body["module"],
            &n.body["ids"],
            &n.body["token"]
        ),
        (
            &json!("1000000068002"),
            &json!("Contacts"),
            &json!([contact]),
            &Value::Null
        )
    );
    let a = sb
        .call(
            Method::PUT,
            &format!("/eu/crm/v8/Contacts/{contact}"),
            &token,
            &[],
            Some(json!({"data": [{"Title": "Admiral"}]}).to_string()),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let later = insert_leads(&sb, &token, &["Lovelace"]).await;
    let n = next(&mut got).await;
    assert_eq!(
        n.body["ids"],
        json!(later),
        "the contact's edit was announced: {n:?}"
    );

    // The log has every delivery with the status the listener answered (each is logged
    // when its answer came, so the order is not asserted).
    let log = log_of(&sb, 5).await;
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(
        log.contains(
            &json!({"channel_id": "1000000068001", "url": url, "operation": "insert",
                             "module": "Leads", "ids": ids, "status": 202, "error": null})
        ),
        "{log:?}"
    );
    let mut ops: Vec<String> = log
        .iter()
        .map(|d| format!("{} {} {}", d["module"], d["operation"], d["status"]))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        [
            r#""Contacts" "insert" 202"#,
            r#""Leads" "delete" 202"#,
            r#""Leads" "insert" 202"#,
            r#""Leads" "insert" 202"#,
            r#""Leads" "update" 202"#,
        ]
    );
}

#[tokio::test]
async fn seeds_of_up_to_a_thousand_records_are_announced_in_their_data_centre() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let (url, mut got) = listener().await;
    assert_eq!(
        subscribe(
            &sb,
            &token,
            watch("7", &url, json!({"events": ["Deals.create"]}))
        )
        .await
        .status,
        201
    );
    let sandbox = &sb;
    let seed = move |dc: &'static str, body: Value| {
        let sb = sandbox;
        async move {
            let a = admin(
                sb,
                Method::POST,
                &format!("/{dc}/_sandbox/zoho/records/Deals"),
                Some(body),
            )
            .await;
            assert_eq!(a.status, 200, "{a:?}");
            a.body
        }
    };
    let a = seed(
        "eu",
        json!({"count": 2, "fields": {"Stage": "Qualification"}}),
    )
    .await;
    let n = next(&mut got).await;
    assert_eq!(
        (&n.body["operation"], &n.body["module"], &n.body["ids"]),
        (
            &json!("insert"),
            &json!("Deals"),
            &json!([a["first"], a["last"]])
        )
    );

    // More than 1,000 (a big sync's fixture) and another data centre's: nothing.
    seed(
        "eu",
        json!({"count": 1001, "fields": {"Stage": "Qualification"}}),
    )
    .await;
    seed(
        "com",
        json!({"count": 1, "fields": {"Stage": "Qualification"}}),
    )
    .await;
    let a = seed(
        "eu",
        json!({"records": [{"Deal_Name": "Last", "Stage": "Won"}]}),
    )
    .await;
    let n = next(&mut got).await;
    assert_eq!(n.body["ids"], json!([a["first"]]), "{n:?}");
    assert_eq!(log_of(&sb, 2).await.len(), 2);
}

#[tokio::test]
async fn expired_disabled_and_dropped_channels_are_told_nothing() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let (url, mut got) = listener().await;
    assert_eq!(
        subscribe(&sb, &token, watch("1000000068001", &url, json!({})))
            .await
            .status,
        201
    );

    // Past its expiry (an hour by default) a channel is listed as expired and told nothing.
    sb.clock.advance(3601);
    let token = sb.token(SCOPE).await; // the access token expired as well
    assert_eq!(sb.get(WATCH, &token).await.status, 204);
    let listed = admin(&sb, Method::GET, "/eu/_sandbox/zoho/watch", None).await;
    assert_eq!(listed.body["channels"][0]["expired"], true, "{listed:?}");
    insert_leads(&sb, &token, &["Unannounced"]).await;
    let a = admin(
        &sb,
        Method::POST,
        "/eu/_sandbox/zoho/notify",
        Some(json!({"channel_id": "1000000068001", "module": "Leads", "operation": "update", "ids": ["42"]})),
    )
    .await;
    assert_eq!(a.body["status"], 202, "{a:?}");
    let n = next(&mut got).await;
    assert_eq!(
        n.body["ids"],
        json!(["42"]),
        "the expired channel got the insert: {n:?}"
    );

    // Re-subscribing the lapsed channel brings it back.
    assert_eq!(
        subscribe(&sb, &token, watch("1000000068001", &url, json!({})))
            .await
            .status,
        201
    );
    let ids = insert_leads(&sb, &token, &["Announced"]).await;
    assert_eq!(next(&mut got).await.body["ids"], json!(ids));

    // Disabled: told nothing.
    let a = sb
        .call(
            Method::DELETE,
            &format!("{WATCH}?channel_ids=1000000068001"),
            &token,
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    insert_leads(&sb, &token, &["Unannounced"]).await;

    // Dropped by Zoho (the admin route): gone, and told nothing.
    assert_eq!(
        subscribe(&sb, &token, watch("1000000068003", &url, json!({})))
            .await
            .status,
        201
    );
    let a = admin(
        &sb,
        Method::DELETE,
        "/eu/_sandbox/zoho/watch/1000000068003",
        None,
    )
    .await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = admin(
        &sb,
        Method::DELETE,
        "/eu/_sandbox/zoho/watch/1000000068003",
        None,
    )
    .await;
    assert_eq!(a.status, 404);
    insert_leads(&sb, &token, &["Unannounced"]).await;
    let listed = admin(&sb, Method::GET, "/eu/_sandbox/zoho/watch", None).await;
    assert_eq!(listed.body["channels"], json!([]));

    // Only the two deliveries above were made.
    let log = log_of(&sb, 2).await;
    let sent: Vec<&Value> = log.iter().map(|d| &d["ids"]).collect();
    assert_eq!(sent, [&json!(["42"]), &json!(ids)], "{log:?}");
    assert!(got.try_recv().is_err());
}

#[tokio::test]
async fn the_notify_route_sends_now_and_the_log_keeps_the_status_or_the_error() {
    let sb = Sandbox::new();
    let token = sb.token(SCOPE).await;
    let (url, mut got) = listener().await;
    // a URL nobody listens at any more
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/push", l.local_addr().unwrap())
    };
    let a = subscribe(
        &sb,
        &token,
        json!({"watch": [channel("11", &url, json!({"token": "live"})),
                         channel("12", &dead, json!({"events": ["Contacts.all"]}))]}),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");

    let notify = |body: Value| admin(&sb, Method::POST, "/eu/_sandbox/zoho/notify", Some(body));
    let a = notify(
        json!({"channel_id": "11", "module": "Deals", "operation": "delete", "ids": ["5", "6"]}),
    )
    .await;
    assert_eq!((a.status, &a.body["status"]), (200, &json!(202)), "{a:?}");
    let n = next(&mut got).await;
    assert_eq!(
        (
            &n.body["channel_id"],
            &n.body["token"],
            &n.body["module"],
            &n.body["operation"],
            &n.body["ids"],
            &n.body["resource_uri"]
        ),
        (
            &json!("11"),
            &json!("live"),
            &json!("Deals"),
            &json!("delete"),
            &json!(["5", "6"]),
            &json!("http://sandbox.test/eu/crm/v8/Deals")
        )
    );
    let a = notify(
        json!({"channel_id": "12", "module": "Contacts", "operation": "insert", "ids": ["7"]}),
    )
    .await;
    assert_eq!((a.status, &a.body["status"]), (200, &Value::Null), "{a:?}");
    assert!(
        a.body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{a:?}"
    );
    let a = notify(json!({"channel_id": "13", "ids": ["7"]})).await;
    assert_eq!(a.status, 404);

    // The notify route logs before it answers.
    let log = deliveries(&sb).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0],
        json!({"channel_id": "11", "url": url, "operation": "delete", "module": "Deals",
               "ids": ["5", "6"], "status": 202, "error": null})
    );
    assert_eq!(
        (
            &log[1]["channel_id"],
            &log[1]["url"],
            &log[1]["status"],
            &log[1]["ids"]
        ),
        (&json!("12"), &json!(dead), &Value::Null, &json!(["7"]))
    );
    assert!(log[1]["error"].is_string(), "{log:?}");

    // A background delivery to the dead URL is logged with its error too; the insert's
    // answer did not wait for it.
    let a = sb
        .post(
            "/eu/crm/v8/Contacts",
            &token,
            json!({"data": [{"Last_Name": "Nowhere"}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let log = log_of(&sb, 3).await;
    assert_eq!(
        (
            &log[2]["channel_id"],
            &log[2]["operation"],
            &log[2]["status"]
        ),
        (&json!("12"), &json!("insert"), &Value::Null)
    );
    assert!(log[2]["error"].is_string(), "{log:?}");
}
