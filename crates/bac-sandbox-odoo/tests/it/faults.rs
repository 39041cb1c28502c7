//! Fault injection (`/_sandbox/odoo/faults`) on `/jsonrpc`, `/json/2` and the
//! web session routes: slow answers, proxy 5xx pages, 429 with Retry-After,
//! expired sessions, lost responses, per-model rules and expiry.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{assert_json2_error, spawn, spawn_v19, Sandbox, API_KEY, DB};

/// A `/jsonrpc` `execute_kw` as admin; returns the raw HTTP response.
async fn raw_execute_kw(sb: &Sandbox, model: &str, method: &str, args: Value) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "method": "call", "id": 7, "params": {
        "service": "object", "method": "execute_kw",
        "args": [DB, 2, "admin", model, method, args, {}]}});
    sb.http
        .post(format!("{}/jsonrpc", sb.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn rules(sb: &Sandbox) -> Value {
    sb.http
        .get(format!("{}/_sandbox/odoo/faults", sb.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["rules"]
        .clone()
}

async fn clear(sb: &Sandbox) -> Value {
    sb.http
        .delete(format!("{}/_sandbox/odoo/faults", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn proxy_errors_rate_limits_and_expiry() {
    let sb = spawn().await;
    // a 503 from the proxy for crm.lead only, for two calls
    let (status, rule) = sb
        .fault(json!({"model": "crm.lead", "status": 503, "retry_after": 3, "for_calls": 2}))
        .await;
    assert_eq!(status, 201, "{rule}");
    assert!(rule["id"].is_u64());
    for _ in 0..2 {
        let resp = raw_execute_kw(&sb, "crm.lead", "search_count", json!([[]])).await;
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["retry-after"], "3");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("<title>503 Service Temporarily Unavailable</title>")
                || body.contains("503 Service Unavailable"),
            "{body}"
        );
        assert!(body.contains("nginx"));
        // other models are not affected
        assert_eq!(
            sb.ok("res.partner", "search_count", json!([[]]), json!({}))
                .await,
            0
        );
    }
    // the rule expired after two crm.lead calls
    assert_eq!(rules(&sb).await, json!([]));
    assert_eq!(
        sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
            .await,
        0
    );

    // 429 with Retry-After (default 1 s) for one method
    sb.fault(json!({"method": "search_read", "status": 429}))
        .await;
    let resp = raw_execute_kw(&sb, "crm.lead", "search_read", json!([[]])).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(resp.text().await.unwrap().contains("429 Too Many Requests"));
    let resp = raw_execute_kw(&sb, "crm.lead", "search", json!([[]])).await;
    assert_eq!(resp.status().as_u16(), 200);
    let listed = rules(&sb).await;
    assert_eq!(listed[0]["method"], "search_read");
    assert_eq!(listed[0]["matched"], 1);
    assert_eq!(listed[0]["failed"], 1);
    assert_eq!(clear(&sb).await, json!({"cleared": 1}));

    // a 500 of Odoo itself on /jsonrpc: werkzeug's HTML page
    sb.fault(json!({"status": 500, "protocol": "jsonrpc", "for_calls": 1}))
        .await;
    let resp = raw_execute_kw(&sb, "crm.lead", "search", json!([[]])).await;
    assert_eq!(resp.status().as_u16(), 500);
    assert!(resp.text().await.unwrap().contains("Internal Server Error"));

    // error_rate 0 never fails, error_rate 1 always does
    sb.fault(json!({"status": 502, "error_rate": 0.0})).await;
    for _ in 0..5 {
        let resp = raw_execute_kw(&sb, "crm.lead", "search", json!([[]])).await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    assert_eq!(rules(&sb).await[0]["matched"], 5);
    assert_eq!(rules(&sb).await[0]["failed"], 0);
    let id = rules(&sb).await[0]["id"].as_u64().unwrap();
    let resp = sb
        .http
        .delete(format!("{}/_sandbox/odoo/faults/{id}", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = sb
        .http
        .delete(format!("{}/_sandbox/odoo/faults/{id}", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    sb.fault(json!({"status": 502, "error_rate": 1.0, "protocol": "jsonrpc"}))
        .await;
    let resp = raw_execute_kw(&sb, "crm.lead", "search", json!([[]])).await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(resp.text().await.unwrap().contains("502 Bad Gateway"));
    clear(&sb).await;

    // bad rules are refused
    for bad in [
        json!({"status": 404}),
        json!({"error_rate": 1.5, "status": 500}),
        json!({"model": "crm.lead"}),
        json!({"slow_ms": 10, "for_calls": 0}),
        json!({"protocol": "xmlrpc", "slow_ms": 1}),
        json!({"bogus": true}),
    ] {
        let (status, body) = sb.fault(bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn slow_responses() {
    let sb = spawn().await;
    sb.fault(json!({"slow_ms": 300, "model": "crm.lead", "for_calls": 1}))
        .await;
    let started = Instant::now();
    assert_eq!(
        sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // expired: the next call is fast again
    let started = Instant::now();
    sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
        .await;
    assert!(started.elapsed() < Duration::from_millis(300));
    // a client timeout shorter than the delay sees a timeout
    sb.fault(json!({"slow_ms": 2000, "for_calls": 1})).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client
        .post(format!("{}/jsonrpc", sb.base))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "params": {"service": "common", "method": "version", "args": []}}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

#[tokio::test]
async fn lost_response_create_happened() {
    let sb = spawn().await;
    sb.fault(
        json!({"model": "crm.lead", "method": "create", "lose_response": true, "for_calls": 1}),
    )
    .await;
    let resp = raw_execute_kw(
        &sb,
        "crm.lead",
        "create",
        json!([{"name": "intent", "referred": "intent-42"}]),
    )
    .await;
    // the client saw a gateway error...
    assert_eq!(resp.status().as_u16(), 502);
    // ...but the lead exists: a retry must search for the intent id first
    let found = sb
        .ok(
            "crm.lead",
            "search_read",
            json!([[["referred", "=", "intent-42"]], ["name"]]),
            json!({}),
        )
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    // a lost response after a delay: the client's timeout fires, the write happens
    sb.fault(json!({"method": "write", "lose_response": true, "slow_ms": 400, "status": 504, "for_calls": 1}))
        .await;
    let id = found[0]["id"].clone();
    let started = Instant::now();
    let resp = raw_execute_kw(&sb, "crm.lead", "write", json!([[id], {"phone": "555"}])).await;
    assert_eq!(resp.status().as_u16(), 504);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let phone = sb
        .ok("crm.lead", "read", json!([[id], ["phone"]]), json!({}))
        .await;
    assert_eq!(phone[0]["phone"], "555");
}

#[tokio::test]
async fn web_session_expiry() {
    let sb = spawn().await;
    let login = |sb: &Sandbox| {
        let req = sb
            .http
            .post(format!("{}/web/session/authenticate", sb.base))
            .json(&json!({"jsonrpc": "2.0", "method": "call", "params": {"db": DB, "login": "admin", "password": "admin"}}));
        async move {
            let resp = req.send().await.unwrap();
            let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
            cookie.split(';').next().unwrap().to_owned()
        }
    };
    let call_kw = |sb: &Sandbox, cookie: &str| {
        let req = sb
            .http
            .post(format!("{}/web/dataset/call_kw", sb.base))
            .header("cookie", cookie)
            .json(&json!({"jsonrpc": "2.0", "method": "call", "params": {
                "model": "crm.lead", "method": "search_count", "args": [[]], "kwargs": {}}}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let cookie = login(&sb).await;
    assert_eq!(call_kw(&sb, &cookie).await["result"], 0);
    sb.fault(
        json!({"session_expired": true, "protocol": "web", "model": "crm.lead", "for_calls": 1}),
    )
    .await;
    let resp = call_kw(&sb, &cookie).await;
    assert_eq!(resp["error"]["code"], 100);
    assert_eq!(
        resp["error"]["data"]["name"],
        "odoo.http.SessionExpiredException"
    );
    // the session stays dead after the rule expired: the client logs in again
    let resp = call_kw(&sb, &cookie).await;
    assert_eq!(resp["error"]["code"], 100);
    let cookie = login(&sb).await;
    assert_eq!(call_kw(&sb, &cookie).await["result"], 0);
    // /jsonrpc: the credentials are refused for the matching calls
    sb.fault(json!({"session_expired": true, "protocol": "jsonrpc", "for_calls": 1}))
        .await;
    let err = sb.err("crm.lead", "search", json!([[]]), json!({})).await;
    assert_eq!(err["data"]["name"], "odoo.exceptions.AccessDenied");
    sb.ok("crm.lead", "search", json!([[]]), json!({})).await;
}

#[tokio::test]
async fn json2_faults() {
    let sb = spawn_v19().await;
    sb.fault(json!({"protocol": "json2", "status": 500, "for_calls": 1}))
        .await;
    let (status, body) = sb
        .json2("crm.lead/search_count", json!({"domain": []}))
        .await;
    let body = assert_json2_error(status, &body, 500, "psycopg2.OperationalError");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("server closed the connection"));
    sb.fault(json!({"protocol": "json2", "status": 429, "retry_after": 5, "for_calls": 1}))
        .await;
    let resp = sb
        .json2_raw(
            "crm.lead/search_count",
            Some(API_KEY),
            json!({"domain": []}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "5");
    sb.fault(json!({"protocol": "json2", "session_expired": true, "for_calls": 1}))
        .await;
    let (status, body) = sb
        .json2("crm.lead/search_count", json!({"domain": []}))
        .await;
    let body = assert_json2_error(status, &body, 401, "werkzeug.exceptions.Unauthorized");
    assert_eq!(body["message"], "Invalid apikey");
    // a rule for /jsonrpc does not touch /json/2
    sb.fault(json!({"protocol": "jsonrpc", "status": 503}))
        .await;
    assert_eq!(
        sb.json2_ok("crm.lead/search_count", json!({"domain": []}))
            .await,
        0
    );
    // lost create over JSON-2: the record exists
    clear(&sb).await;
    sb.fault(json!({"protocol": "json2", "method": "create", "lose_response": true, "status": 504, "for_calls": 1}))
        .await;
    let resp = sb
        .json2_raw(
            "res.partner/create",
            Some(API_KEY),
            json!({"vals_list": [{"name": "Lost", "ref": "intent-7"}]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 504);
    assert_eq!(
        sb.json2_ok(
            "res.partner/search_count",
            json!({"domain": [["ref", "=", "intent-7"]]})
        )
        .await,
        1
    );
}

#[tokio::test]
async fn calls_are_counted_by_protocol_model_and_method() {
    let sb = spawn_v19().await;
    let calls = |sb: &Sandbox| {
        let url = format!("{}/_sandbox/odoo/calls", sb.base);
        let http = sb.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["calls"]
                .clone()
        }
    };
    assert_eq!(calls(&sb).await, json!({}));
    raw_execute_kw(&sb, "crm.lead", "search_count", json!([[]])).await;
    raw_execute_kw(&sb, "crm.lead", "search_count", json!([[]])).await;
    sb.json2_ok("res.partner/search_count", json!({"domain": []}))
        .await;
    let c = calls(&sb).await;
    assert_eq!(c["jsonrpc crm.lead/search_count"], 2, "{c}");
    assert_eq!(c["json2 res.partner/search_count"], 1, "{c}");
    let reset = sb
        .http
        .delete(format!("{}/_sandbox/odoo/calls", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(calls(&sb).await, json!({}));
}
