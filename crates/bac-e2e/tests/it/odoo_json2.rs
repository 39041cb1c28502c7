//! Odoo 19's External JSON-2 API: a connection with an API key to an Odoo 19 sandbox speaks
//! `/json/2` (checked with the sandbox's call counts), a lost JSON-2 create is not
//! duplicated, a password-only connection and `protocol: "jsonrpc"` still use `/jsonrpc`.
use std::collections::BTreeMap;

use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::{json, Value};

async fn calls(fleet: &Fleet) -> BTreeMap<String, u64> {
    let v: Value = reqwest::get(format!("{}/_sandbox/odoo/calls", fleet.sandbox_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(v["calls"].clone()).unwrap()
}

fn count(calls: &BTreeMap<String, u64>, key: &str) -> u64 {
    calls.get(key).copied().unwrap_or(0)
}

async fn leads_named(fleet: &Fleet, name: &str) -> usize {
    let v: Value = reqwest::get(format!(
        "{}/_sandbox/odoo/records/crm.lead",
        fleet.sandbox_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == name)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_json2_is_used_for_odoo_19_with_an_api_key() {
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        server_version: "19.0".into(),
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo_with_api_key().await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();

    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["server_version"], "19.0");
    let (status, lead) = fleet.create_lead("Over JSON-2", None).await;
    assert_eq!(status, 201, "{lead}");
    assert_eq!(lead["email"], "contact@acmecorp.com");
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["leads"][0]["name"], "Over JSON-2");
    fleet.seed("product.product", 2).await;
    let (status, products) = fleet
        .call(Method::GET, "/api/v1/odoo/inventory/products", None)
        .await;
    assert_eq!(status, 200, "{products}");
    assert_eq!(products["products"].as_array().unwrap().len(), 2);
    // Odoo 18+: goods with the is_storable flag.
    assert_eq!(products["products"][0]["product_type"], "goods");

    let c = calls(&fleet).await;
    assert!(count(&c, "json2 res.users/context_get") >= 1, "{c:?}");
    assert_eq!(count(&c, "json2 crm.lead/create"), 1, "{c:?}");
    // The create reads its lead back as a sync pull reads one (the one write path).
    assert!(count(&c, "json2 crm.lead/search_read") >= 1, "{c:?}");
    assert!(count(&c, "json2 product.product/search_read") >= 1, "{c:?}");
    // Nothing over /jsonrpc (deprecated in 19): the version comes from GET /web/version.
    let jsonrpc: Vec<&String> = c.keys().filter(|k| k.starts_with("jsonrpc ")).collect();
    assert!(jsonrpc.is_empty(), "{c:?}");
    assert!(count(&c, "web -/version") >= 1, "{c:?}");

    // A JSON-2 create whose response is lost is not made twice.
    let resp = fleet
        .http
        .post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
        .json(
            &json!({"protocol": "json2", "model": "crm.lead", "method": "create",
            "lose_response": true, "status": 504, "for_calls": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (status, lead) = fleet.create_lead("Lost over JSON-2", None).await;
    assert_eq!(status, 201, "{lead}");
    assert_eq!(leads_named(&fleet, "Lost over JSON-2").await, 1);

    // Forced JSON-RPC still works on Odoo 19 (which serves /jsonrpc).
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{id}"),
            Some(json!({"config": {"protocol": "jsonrpc"}})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["config"]["protocol"], "jsonrpc");
    let before = calls(&fleet).await;
    let (status, lead) = fleet.create_lead("Over JSON-RPC", None).await;
    assert_eq!(status, 201, "{lead}");
    let after = calls(&fleet).await;
    assert_eq!(count(&after, "jsonrpc crm.lead/create"), 1, "{after:?}");
    assert_eq!(
        count(&after, "json2 crm.lead/create"),
        count(&before, "json2 crm.lead/create")
    );

    // A password-only connection to the same Odoo 19 uses JSON-RPC (JSON-2 needs a key).
    let (status, pw) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{pw}");
    let pw_id = pw["id"].as_str().unwrap();
    let (status, lead) = fleet.create_lead("Password lead", Some(pw_id)).await;
    assert_eq!(status, 201, "{lead}");
    let last = calls(&fleet).await;
    assert_eq!(count(&last, "jsonrpc crm.lead/create"), 2, "{last:?}");

    // protocol json2 forced against the password-only connection: it says what is missing.
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{pw_id}"),
            Some(json!({"config": {"protocol": "json2"}})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = fleet.create_lead("No key", Some(pw_id)).await;
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["details"]["error_code"], "INVALID_CREDENTIALS", "{b}");
    assert!(b["message"].as_str().unwrap().contains("API key"), "{b}");
}
