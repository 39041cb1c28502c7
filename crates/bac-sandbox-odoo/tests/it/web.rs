//! The web client's cookie-session API: `/web/session/*` and `/web/dataset/call_kw`.

use serde_json::{json, Value};

use crate::support::{assert_odoo_error, spawn, ADMIN_UID, DB};

async fn call_with_cookie(
    sb: &crate::support::Sandbox,
    path: &str,
    cookie: Option<&str>,
    params: Value,
) -> (reqwest::header::HeaderMap, Value) {
    let mut req = sb
        .http
        .post(format!("{}{path}", sb.base))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("session_id={c}"));
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    (headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn session_authenticate_and_call_kw() {
    let sb = spawn().await;
    let (headers, resp) = call_with_cookie(
        &sb,
        "/web/session/authenticate",
        None,
        json!({"db": DB, "login": "admin", "password": "admin"}),
    )
    .await;
    let info = &resp["result"];
    assert_eq!(info["uid"], ADMIN_UID);
    assert_eq!(info["db"], DB);
    assert_eq!(info["username"], "admin");
    assert_eq!(info["user_context"]["uid"], ADMIN_UID);
    assert_eq!(info["server_version_info"][0], 17);
    let set_cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    let sid = set_cookie
        .strip_prefix("session_id=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"));

    let (_, resp) = call_with_cookie(
        &sb,
        "/web/dataset/call_kw/crm.lead/create",
        Some(&sid),
        json!({"model": "crm.lead", "method": "create", "args": [{"name": "From web"}], "kwargs": {}}),
    )
    .await;
    let id = resp["result"].clone();
    assert!(id.is_i64(), "{resp}");
    let (_, resp) = call_with_cookie(
        &sb,
        "/web/dataset/call_kw",
        Some(&sid),
        json!({"model": "crm.lead", "method": "search_read", "args": [[["id", "=", id]]], "kwargs": {"fields": ["name"]}}),
    )
    .await;
    assert_eq!(resp["result"], json!([{"id": id, "name": "From web"}]));

    // through the web client an unknown model is a KeyError (request.env[model])
    let (_, resp) = call_with_cookie(
        &sb,
        "/web/dataset/call_kw",
        Some(&sid),
        json!({"model": "crm.foo", "method": "search", "args": [[]], "kwargs": {}}),
    )
    .await;
    let data = assert_odoo_error(&resp["error"], "builtins.KeyError");
    assert_eq!(data["message"], "'crm.foo'");

    let (_, resp) =
        call_with_cookie(&sb, "/web/session/get_session_info", Some(&sid), json!({})).await;
    assert_eq!(resp["result"]["uid"], ADMIN_UID);

    // destroy returns None, so Odoo's response has no "result" member
    let (_, resp) = call_with_cookie(&sb, "/web/session/destroy", Some(&sid), json!({})).await;
    assert!(
        resp.get("result").is_none() && resp.get("error").is_none(),
        "{resp}"
    );
    let (_, resp) = call_with_cookie(
        &sb,
        "/web/dataset/call_kw",
        Some(&sid),
        json!({"model": "crm.lead", "method": "search", "args": [[]], "kwargs": {}}),
    )
    .await;
    assert_eq!(resp["error"]["code"], 100);
    assert_eq!(resp["error"]["message"], "Odoo Session Expired");
    assert_eq!(
        resp["error"]["data"]["name"],
        "odoo.http.SessionExpiredException"
    );
}

#[tokio::test]
async fn session_authenticate_failures() {
    let sb = spawn().await;
    let (headers, resp) = call_with_cookie(
        &sb,
        "/web/session/authenticate",
        None,
        json!({"db": DB, "login": "admin", "password": "bad"}),
    )
    .await;
    assert!(headers.get("set-cookie").is_none());
    assert_odoo_error(&resp["error"], "odoo.exceptions.AccessDenied");
    let (_, resp) = call_with_cookie(
        &sb,
        "/web/session/authenticate",
        None,
        json!({"db": "other", "login": "admin", "password": "admin"}),
    )
    .await;
    let data = assert_odoo_error(&resp["error"], "odoo.exceptions.AccessError");
    assert_eq!(data["message"], "Database not found.");
    // An unknown route, even for a JSON request: no rule matched, so Odoo's HTTP dispatcher
    // answers werkzeug's HTML 404 (jsonrpc.rs: an_unknown_route_answers_the_html_404).
    let resp = sb
        .http
        .post(format!("{}/web/nope", sb.base))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "params": {}, "id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
