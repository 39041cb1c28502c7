//! A service's own audit entry (the connector kit marking a revoked grant) reaches the audit
//! trail through Kafka and is listed by the gateway with its own entries; entries that do not
//! speak for their service or their tenant are not.
use std::time::Duration;

use bac_e2e::{wait_until, Fleet};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use reqwest::Method;
use serde_json::{json, Value};

/// Publishes an audit entry as a service's outbox relay would.
async fn publish(fleet: &Fleet, source: &str, tenant: &str, data: Value) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", fleet.kafka.brokers())
        .create()
        .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", source),
        (
            "ce_type",
            "bac.integrations.audit.connection.authorization_revoked",
        ),
        ("ce_tenantid", tenant),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    });
    let body = data.to_string();
    producer
        .send(
            // One key: one partition, read in the order published.
            FutureRecord::to("bac.integrations.audit.v1")
                .key("audit-feed-test")
                .payload(&body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

fn entry(id: &str, tenant: &str, actor: &str) -> Value {
    json!({"id": id, "tenant_id": tenant, "actor": actor,
        "action": "connection.authorization_revoked", "target_type": "connection",
        "target_id": "con_revoked", "diff": {"integration": "zoho", "reason": "invalid_code"},
        "source_ip": null, "user_agent": null, "request_id": null,
        "time": "2026-12-04T10:00:00.000Z"})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_services_audit_entry_is_listed_with_the_gateways() {
    let fleet = Fleet::start().await;
    let tenant = fleet.tenant.clone();
    // Refused: another service's name, another tenant's header, a user as actor.
    publish(
        &fleet,
        "/bac/odoo",
        &tenant,
        entry("aud_forged1", &tenant, "service:zoho"),
    )
    .await;
    publish(
        &fleet,
        "/bac/zoho",
        "t_other",
        entry("aud_forged2", &tenant, "service:zoho"),
    )
    .await;
    publish(
        &fleet,
        "/bac/zoho",
        &tenant,
        entry("aud_forged3", &tenant, "user:u_admin"),
    )
    .await;
    // Kept, once, even when heard twice; the last entry says everything before was read.
    let good = entry("aud_0193a1b2c3d4e5f6", &tenant, "service:zoho");
    publish(&fleet, "/bac/zoho", &tenant, good.clone()).await;
    publish(&fleet, "/bac/zoho", &tenant, good).await;
    publish(
        &fleet,
        "/bac/zoho",
        &tenant,
        entry("aud_last", &tenant, "service:zoho"),
    )
    .await;
    let path = "/api/v1/integrations/audit?action=connection.authorization_revoked";
    let listed = wait_until(Duration::from_secs(60), || async {
        let (_, body) = fleet.call(Method::GET, path, None).await;
        body["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["id"] == "aud_last"))
    })
    .await;
    assert!(
        listed,
        "the service's entries never reached the audit trail"
    );
    let (status, body) = fleet.call(Method::GET, path, None).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{body}");
    assert!(
        ids.contains(&"aud_0193a1b2c3d4e5f6") && ids.contains(&"aud_last"),
        "{ids:?}"
    );
    let e = entries
        .iter()
        .find(|e| e["id"] == "aud_0193a1b2c3d4e5f6")
        .unwrap();
    assert_eq!(e["actor"], "service:zoho");
    assert_eq!(e["target_id"], "con_revoked");
    assert_eq!(e["diff"]["reason"], "invalid_code");
}
