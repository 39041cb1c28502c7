//! The backbone path: REST call -> gateway -> bac-odoo -> Odoo (sandbox) -> mirror + outbox ->
//! Kafka, each step checked where a user would look.
use std::time::Duration;

use bac_e2e::{connect, kafka, Fleet};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_created_lead_reaches_odoo_and_kafka() {
    let fleet = Fleet::start().await;
    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");

    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let connection_id = conn["id"].as_str().unwrap().to_string();
    assert!(connection_id.starts_with("con_"));
    assert_eq!(conn["integration"], "odoo");
    assert_eq!(conn["credentials_set"], serde_json::json!(["password"]));
    assert_eq!(conn["config"]["database"], "demo");

    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{connection_id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["ok"], true);
    assert!(!test["server_version"].as_str().unwrap().is_empty());

    let (status, lead) = fleet.create_lead("New Business Opportunity", None).await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(lead["name"], "New Business Opportunity");
    assert_eq!(lead["partner_name"], "Acme Corp");
    assert_eq!(lead["email"], "contact@acmecorp.com");
    assert_eq!(lead["phone"], "+1-555-0123");
    assert_eq!(lead["expected_revenue"], 50000.0);
    assert_eq!(lead["priority"], "high");
    assert_eq!(lead["connection_id"], connection_id.as_str());
    assert!(lead["create_date"].as_str().unwrap().ends_with('Z'));

    // What Odoo (the sandbox) stored, in Odoo's own field names and values.
    let stored: Value = reqwest::get(format!(
        "{}/_sandbox/odoo/records/crm.lead",
        fleet.sandbox_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rec = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .expect("lead stored in Odoo");
    assert_eq!(rec["email_from"], "contact@acmecorp.com");
    assert_eq!(rec["priority"], "2");
    assert_eq!(rec["partner_name"], "Acme Corp");

    // The event, read by an independent consumer.
    let got = kafka::collect(&consumer, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "one event expected, got {got:?}");
    let ev = &got[0];
    let h = &ev.headers;
    assert_eq!(h["ce_type"], "bac.odoo.crm_lead.created");
    assert_eq!(h["ce_specversion"], "1.0");
    assert_eq!(h["ce_source"], "/bac/odoo");
    assert_eq!(h["ce_subject"], format!("crm_lead/{id}"));
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["ce_tenantid"], fleet.tenant);
    assert_eq!(h["ce_connectionid"], connection_id);
    assert!(uuid::Uuid::parse_str(&h["ce_id"]).is_ok());
    assert!(chrono_like(&h["ce_time"]));
    assert_eq!(ev.key, format!("{}/crm_lead/{id}", fleet.tenant));
    let data = ev.json();
    assert_eq!(data["op"], "created");
    assert_eq!(data["entity"], "crm_lead");
    assert_eq!(data["record_id"], id.to_string());
    assert_eq!(data["origin"], "platform");
    assert_eq!(data["after"]["name"], "New Business Opportunity");
    assert_eq!(data["after"]["email"], "contact@acmecorp.com");

    // The outbox row is marked published.
    assert!(fleet.wait_outbox_drained(Duration::from_secs(10)).await);
    let db = connect(&fleet.infra.database_url).await;
    let row = db
        .query_one(
            "SELECT published_at IS NOT NULL, event_id::text FROM odoo.outbox WHERE key = $1",
            &[&format!("{}/crm_lead/{id}", fleet.tenant)],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), h["ce_id"]);
    let mirror = db
        .query_one(
            "SELECT data->>'name' FROM odoo.sync_records
             WHERE tenant_id = $1 AND entity = 'crm_lead' AND remote_id = $2",
            &[&fleet.tenant, &id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(mirror.get::<_, String>(0), "New Business Opportunity");
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.contains('T') && s.ends_with('Z')
}

#[tokio::test(flavor = "multi_thread")]
async fn leads_are_listed_with_pagination() {
    let fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    for i in 0..5 {
        let (status, body) = fleet.create_lead(&format!("Paged lead {i}"), None).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, page) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads?limit=2", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["leads"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["total"], 5);
    assert_eq!(page["pagination"]["next_offset"], 2);
    // Newest first.
    assert_eq!(page["leads"][0]["name"], "Paged lead 4");

    let (_, last) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads?limit=2&offset=4", None)
        .await;
    assert_eq!(last["leads"].as_array().unwrap().len(), 1);
    assert_eq!(last["pagination"]["next_offset"], Value::Null);

    let (_, filtered) = fleet
        .call(
            Method::GET,
            "/api/v1/odoo/crm/leads?name_contains=LEAD%203",
            None,
        )
        .await;
    assert_eq!(filtered["pagination"]["total"], 1);
    assert_eq!(filtered["leads"][0]["name"], "Paged lead 3");
}
