//! The integration catalog (`GET /api/v1/integrations/definitions`) and validation of
//! connection bodies against its JSON Schemas, in the one error shape, naming the field.
use std::collections::HashMap;

use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::{json, Value};

const CONNECTIONS: &str = "/api/v1/integrations/connections";

fn assert_invalid(status: u16, b: &Value, field: &str) {
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"], "invalid_request", "{b}");
    assert_eq!(b["details"]["error_code"], "INVALID_REQUEST", "{b}");
    let msg = b["message"].as_str().unwrap();
    assert!(msg.starts_with(field), "message names {field}: {b}");
    assert!(b["request_id"].is_string() && b["timestamp"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_list_every_integration_with_schemas() {
    let fleet = Fleet::start().await;
    let (status, b) = fleet
        .call(Method::GET, "/api/v1/integrations/definitions", None)
        .await;
    assert_eq!(status, 200, "{b}");
    let defs = b["definitions"].as_array().unwrap();
    let by_key: HashMap<&str, &Value> = defs
        .iter()
        .map(|d| (d["key"].as_str().unwrap(), d))
        .collect();
    let expect = [
        ("email", false, "no_service"),
        ("calendar", false, "no_service"),
        ("tally", false, "connections"),
        ("payments", false, "no_service"),
        ("zoho", true, "built"),
        ("odoo", true, "built"),
        ("google-workspace", true, "built"),
        ("messaging", true, "built"),
    ];
    assert_eq!(defs.len(), expect.len(), "{b}");
    for (key, served, state) in expect {
        let d = by_key[key];
        assert_eq!(d["served"], served, "{key}");
        assert_eq!(d["service_state"], state, "{key}");
        for field in ["name", "category", "auth_type"] {
            assert!(
                d[field].as_str().is_some_and(|s| !s.is_empty()),
                "{key}.{field}"
            );
        }
        assert!(d["capabilities"].is_array());
        for schema in ["config_schema", "credentials_schema"] {
            assert_eq!(
                d[schema]["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{key}.{schema}"
            );
            assert_eq!(d[schema]["type"], "object");
            assert_eq!(d[schema]["additionalProperties"], false);
        }
        assert_eq!(d["service"].is_null(), state == "no_service", "{key}");
    }
    let odoo = by_key["odoo"];
    assert_eq!(odoo["service"], "bac-odoo");
    assert_eq!(
        odoo["config_schema"]["required"],
        json!(["url", "database", "username"])
    );
    assert!(odoo["credentials_schema"]["properties"]["password"].is_object());
    assert!(odoo["credentials_schema"]["properties"]["api_key"].is_object());
    assert!(!odoo["capabilities"].as_array().unwrap().is_empty());
    assert_eq!(by_key["tally"]["service"], "bac-tally");
    assert!(by_key["tally"]["config_schema"]["properties"]["tally_server_port"].is_object());

    // The routes are in the OpenAPI document.
    let (status, doc) = fleet.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/integrations/definitions",
        "/api/v1/integrations/connections/{id}",
        "/api/v1/integrations/dashboard",
        "/api/v1/integrations/{name}/status",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} not in the OpenAPI document"
        );
    }

    // Any authenticated caller may read it; nobody else.
    let resp = fleet
        .http
        .get(format!("{}/api/v1/integrations/definitions", fleet.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_bodies_are_checked_against_the_schema() {
    let fleet = Fleet::start().await;
    let post = |body: Value| fleet.call(Method::POST, CONNECTIONS, Some(body));
    let odoo = |config: Value, credentials: Value| json!({"integration": "odoo", "name": "x", "config": config, "credentials": credentials});
    let good = json!({"url": fleet.sandbox_url, "database": "demo", "username": "admin"});
    let pw = json!({"password": "admin"});

    let cases = [
        (
            json!({"url": "http://o", "username": "u"}),
            pw.clone(),
            "config.database",
        ),
        (
            json!({"url": "ftp://o", "database": "d", "username": "u"}),
            pw.clone(),
            "config.url",
        ),
        (
            json!({"url": "not a url", "database": "d", "username": "u"}),
            pw.clone(),
            "config.url",
        ),
        (
            json!({"url": "http://admin:pw@o", "database": "d", "username": "u"}),
            pw.clone(),
            "config.url",
        ),
        (
            json!({"url": "http://o", "database": "d", "username": 42}),
            pw.clone(),
            "config.username",
        ),
        (
            json!({"url": "http://o", "database": "d", "username": "u", "password": "p"}),
            pw.clone(),
            "config.password",
        ),
        (good.clone(), json!({}), "credentials"),
        (good.clone(), json!({"token": "t"}), "credentials.token"),
        (
            good.clone(),
            json!({"password": ""}),
            "credentials.password",
        ),
        (good.clone(), json!({"password": 7}), "credentials.password"),
    ];
    for (config, creds, field) in cases {
        let (status, b) = post(odoo(config, creds)).await;
        assert_invalid(status, &b, field);
        assert_eq!(b["details"]["integration"], "odoo", "{b}");
        assert!(!b.to_string().contains("\"p\""), "no echo of secrets: {b}");
    }
    let (status, b) = post(json!({"integration": "sap", "config": {}})).await;
    assert_eq!(status, 400, "{b}");
    assert!(b["details"]["suggestion"]
        .as_str()
        .unwrap()
        .contains("google-workspace"));

    // An integration no service serves: 501 in the error shape.
    let (status, b) = post(json!({"integration": "payments",
        "config": {"provider": "stripe", "mode": "test"}, "credentials": {"api_key": "sk"}}))
    .await;
    assert_eq!(status, 501, "{b}");
    assert_eq!(b["error"], "not_implemented");
    assert_eq!(b["details"]["integration"], "payments");

    // Nothing was stored by any refused request.
    let (_, list) = fleet.call(Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"], json!([]), "{list}");

    // PATCH is checked against the schema too (config merged first, credentials as given).
    let (status, created) = post(odoo(good.clone(), pw.clone())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let path = format!("{CONNECTIONS}/{id}");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"config": {"database": null}})),
        )
        .await;
    assert_invalid(status, &b, "config.database");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"config": {"url": "gopher://x"}})),
        )
        .await;
    assert_invalid(status, &b, "config.url");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"credentials": {"secret": "s"}})),
        )
        .await;
    assert_invalid(status, &b, "credentials.secret");
    let (status, b) = fleet
        .call(Method::PATCH, &path, Some(json!({"colour": "red"})))
        .await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = fleet.call(Method::PATCH, &path, Some(json!({}))).await;
    assert_eq!(status, 400, "{b}");
    // Still as created.
    let (status, b) = fleet.call(Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(b["config"]["database"], "demo");

    // Tally's documented routes: tally_configuration.rs.
}

/// The gateway's schema and bac-odoo's own check accept and refuse the same settings.
#[test]
fn the_odoo_schema_agrees_with_bac_odoo() {
    let def = bac_gateway::catalog::get("odoo").unwrap();
    let configs = [
        json!({"url": "http://odoo:8069", "database": "d", "username": "u"}),
        json!({"url": "https://mycompany.odoo.com/", "database": "d", "username": "u"}),
        json!({"url": "https://odoo.example.com/web?x=1", "database": "d", "username": "u"}),
        json!({"url": "http://10.0.0.7:8069", "database": "prod db", "username": "a@b.c"}),
        json!({"url": "ftp://odoo", "database": "d", "username": "u"}),
        json!({"url": "odoo.example.com", "database": "d", "username": "u"}),
        json!({"url": "http://", "database": "d", "username": "u"}),
        json!({"url": "http://u:p@odoo", "database": "d", "username": "u"}),
        json!({"url": "http://u@odoo", "database": "d", "username": "u"}),
        json!({"url": "http://odoo:notaport", "database": "d", "username": "u"}),
        json!({"url": "http://odoo", "database": "", "username": "u"}),
        json!({"url": "http://odoo", "database": "  ", "username": "u"}),
        json!({"url": "http://odoo", "database": "d"}),
        json!({"url": "http://odoo", "database": 1, "username": "u"}),
        json!({"url": "http://odoo", "database": "d", "username": "u", "extra": "x"}),
        json!({"database": "d", "username": "u"}),
    ];
    let creds: [&[(&str, &str)]; 6] = [
        &[("password", "p")],
        &[("api_key", "k")],
        &[("password", "p"), ("api_key", "k")],
        &[],
        &[("token", "t")],
        &[("password", "p"), ("token", "t")],
    ];
    for config in &configs {
        let gateway = bac_gateway::catalog::validate(&def.config_schema, config, "config").is_ok();
        let odoo = bac_odoo::api::validate_settings(config).is_ok();
        assert_eq!(gateway, odoo, "config {config}");
    }
    for c in creds {
        let map: HashMap<String, String> = c
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let value = serde_json::to_value(&map).unwrap();
        let gateway =
            bac_gateway::catalog::validate(&def.credentials_schema, &value, "credentials").is_ok();
        let odoo = bac_odoo::api::validate_secrets(&map).is_ok();
        assert_eq!(gateway, odoo, "credentials {value}");
    }
}
