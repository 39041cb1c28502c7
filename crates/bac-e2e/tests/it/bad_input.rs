//! Bad input and failing upstreams get a clear answer in the one error shape, never a 500.
use bac_e2e::{free_port, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

fn assert_shape(body: &Value, status: u16, error_code: &str) {
    assert!(body["error"].is_string(), "{status}: {body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(body["details"]["error_code"], error_code, "{body}");
    assert!(body["details"].get("suggestion").is_some(), "{body}");
    assert!(body["details"].get("integration").is_some(), "{body}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(!body["request_id"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_valid_key_get_401() {
    let fleet = Fleet::start().await;
    let url = format!("{}/api/v1/odoo/crm/leads", fleet.api);
    let resp = fleet.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("x-request-id").is_some());
    assert_shape(&resp.json().await.unwrap(), 401, "UNAUTHENTICATED");

    for key in [
        "nope",
        "bac_abcdefghij_wrongwrongwrongwrongwrongwrong12",
        "",
    ] {
        let resp = fleet.http.get(&url).bearer_auth(key).send().await.unwrap();
        assert_eq!(resp.status(), 401, "key {key:?}");
        assert_shape(&resp.json().await.unwrap(), 401, "UNAUTHENTICATED");
    }
    // A request id the caller chose comes back, in the header and the body.
    let resp = fleet
        .http
        .get(&url)
        .header("x-request-id", "my-trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "my-trace-123");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "my-trace-123");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_400_in_the_error_shape() {
    let fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let url = format!("{}/api/v1/odoo/crm/leads", fleet.api);
    let post = |body: String, ct: &'static str| {
        fleet
            .http
            .post(&url)
            .bearer_auth(&fleet.key)
            .header("content-type", ct)
            .body(body)
    };
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            "{\"name\": ".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"partner_name\":\"Acme\"}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"name\": 42}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"name\":\"x\",\"expected_revenue\":\"lots\"}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"name\":\"x\",\"nmae\":\"typo\"}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"name\":\"x\",\"priority\":\"urgent\"}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "{\"name\":\"   \"}".into(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        ("[1,2]".into(), "application/json", 400, "INVALID_REQUEST"),
        (
            "name=x".into(),
            "application/x-www-form-urlencoded",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ];
    for (body, ct, want, code) in cases {
        let preview: String = body.chars().take(60).collect();
        let resp = post(body, ct).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{preview}");
        let b: Value = resp.json().await.unwrap();
        assert_shape(&b, want, code);
    }
    // An oversized body is refused before it is read. The server may close the connection
    // while the body is still being sent, so write it raw and read whatever answer came back.
    let addr = fleet.api.trim_start_matches("http://").to_string();
    let key = fleet.key.clone();
    let (status, b) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let body = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /api/v1/odoo/crm/leads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        let _ = s.write_all(body.as_bytes());
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status: u16 = text[9..12].parse().unwrap();
        let json = text.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, serde_json::from_str::<Value>(&json).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(status, 413);
    assert_shape(&b, status, "PAYLOAD_TOO_LARGE");

    // The missing field is named.
    let resp = post("{\"partner_name\":\"Acme\"}".into(), "application/json")
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert!(b["message"].as_str().unwrap().contains("name"), "{b}");

    let (status, b) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads?limit=abc", None)
        .await;
    assert_eq!(status, 400);
    assert_shape(&b, status, "INVALID_REQUEST");
    let (status, b) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads?limit=100000", None)
        .await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = fleet.call(Method::GET, "/api/v1/no/such/route", None).await;
    assert_eq!(status, 404);
    assert_shape(&b, status, "NOT_FOUND");
    let (status, b) = fleet
        .call(Method::DELETE, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 405);
    assert_shape(&b, status, "METHOD_NOT_ALLOWED");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_validated() {
    let fleet = Fleet::start().await;
    let post =
        |body: Value| fleet.call(Method::POST, "/api/v1/integrations/connections", Some(body));
    let (status, b) = post(json!({"integration": "sap", "config": {}})).await;
    assert_eq!(status, 400);
    assert_shape(&b, status, "INVALID_REQUEST");
    let (status, b) = post(
        json!({"integration": "odoo", "config": {"url": "http://x", "username": "u"},
        "credentials": {"password": "p"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        b["message"].as_str().unwrap().contains("config.database"),
        "{b}"
    );
    let (status, b) = post(json!({"integration": "odoo",
        "config": {"url": "http://x", "database": "d", "username": "u"}}))
    .await;
    assert_eq!(status, 400);
    assert!(
        b["message"].as_str().unwrap().contains("credentials"),
        "{b}"
    );
    let (status, b) = post(json!({"integration": "odoo",
        "config": {"url": "not a url", "database": "d", "username": "u"}, "credentials": {"password": "p"}})).await;
    assert_eq!(status, 400, "{b}");
    // A lead with no connection yet says what to do.
    let (status, b) = fleet.create_lead("x", None).await;
    assert_eq!(status, 422, "{b}");
    assert_shape(&b, status, "NOT_CONNECTED");
    // Another tenant's (or a made-up) connection id is simply not found.
    let (status, b) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections/con_doesnotexist/test",
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_shape(&b, status, "NOT_FOUND");
    // A Tally configuration names its server and company.
    let (status, b) = post(json!({"integration": "tally", "config": {}})).await;
    assert_eq!(status, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("tally_server_host"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_access_denied_is_invalid_credentials() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "not-the-password").await;
    assert_eq!(status, 201);
    let id = conn["id"].as_str().unwrap();
    let (status, b) = fleet.create_lead("Denied", None).await;
    assert_eq!(status, 422, "{b}");
    assert_shape(&b, status, "INVALID_CREDENTIALS");
    assert_eq!(b["error"], "integration_error");
    assert_eq!(b["details"]["integration"], "odoo");
    let (status, b) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_shape(&b, status, "INVALID_CREDENTIALS");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_odoo_is_reported_not_a_500() {
    let fleet = Fleet::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (status, conn) = fleet.connect_odoo(Some(&closed), "admin").await;
    assert_eq!(status, 201);
    let (status, b) = fleet.create_lead("Nowhere", None).await;
    assert_eq!(status, 503, "{b}");
    assert_shape(&b, status, "UPSTREAM_UNAVAILABLE");
    let id = conn["id"].as_str().unwrap();
    let (status, b) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 503);
    assert_shape(&b, status, "UPSTREAM_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_odoo_service_is_503_not_a_hang() {
    let mut fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    fleet.odoo.take().unwrap().stop().await.unwrap();
    let (status, b) = fleet.create_lead("Service down", None).await;
    assert_eq!(status, 503, "{b}");
    assert_shape(&b, status, "SERVICE_UNAVAILABLE");
}

/// Postgres text cannot hold NUL: such strings were a 500 (schemathesis found
/// `POST /api/v1/api-keys {"user_id": "\u0000..."}`); they are a 400 at the edge now.
#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_in_bodies_and_query_strings_are_400() {
    let fleet = Fleet::start().await;
    let (status, body) = fleet
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"user_id": "\u{b}\u{f1}\u{0}\u{9c}", "name": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_shape(&body, status, "INVALID_REQUEST");
    assert!(body["message"].as_str().unwrap().contains("NUL"), "{body}");
    let (status, body) = fleet
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "a@b.c", "role": "user", "nested": {"k\u{0}": 1}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = fleet
        .call(
            Method::GET,
            "/api/v1/odoo/crm/leads?name_contains=a%00b",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_shape(&body, status, "INVALID_REQUEST");
    // A backslash-u text that is not a NUL still works.
    let (status, body) = fleet
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "\\u0000@b.c", "role": "nobody"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body["message"].as_str().unwrap().contains("NUL"), "{body}");
}

/// serde's derived structs also take an array of their fields in order: `[null, null]` was a
/// valid sync trigger and mapping preview. Every body of the API is a JSON object.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_is_not_an_object_is_refused() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/integrations/connections/{id}/sync"),
        format!("/api/v1/integrations/connections/{id}/mappings/crm_lead/preview"),
        "/api/v1/users".to_string(),
        "/api/v1/odoo/crm/leads".to_string(),
    ] {
        for body in [
            json!([null, null]),
            json!(["x", "user"]),
            json!("text"),
            json!(7),
        ] {
            let (status, b) = fleet.call(Method::POST, &path, Some(body.clone())).await;
            assert_eq!(status, 400, "{path} took {body}: {b}");
            assert_shape(&b, status, "INVALID_REQUEST");
        }
    }
    // An empty trigger body still means "every entity, incremental".
    let resp = fleet
        .http
        .post(format!(
            "{}/api/v1/integrations/connections/{id}/sync",
            fleet.api
        ))
        .bearer_auth(&fleet.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

/// Empty texts where the document lists values (found by schemathesis): a sync trigger with
/// `"entity": ""` started every entity and `?status=` listed open conflicts; both are refused.
#[tokio::test(flavor = "multi_thread")]
async fn empty_values_where_a_choice_is_documented_are_refused() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap();
    let sync = format!("/api/v1/integrations/connections/{id}/sync");
    for body in [
        json!({"entity": ""}),
        json!({"mode": ""}),
        json!({"mode": "everything"}),
    ] {
        let (status, b) = fleet.call(Method::POST, &sync, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {b}");
        assert_shape(&b, status, "INVALID_REQUEST");
    }
    let (status, b) = fleet
        .call(
            Method::POST,
            &sync,
            Some(json!({"entity": "crm_lead", "mode": null})),
        )
        .await;
    assert_eq!(status, 202, "{b}");
    let (status, b) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{id}/conflicts?status="),
            None,
        )
        .await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{id}/conflicts?status=all"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{b}");
}
