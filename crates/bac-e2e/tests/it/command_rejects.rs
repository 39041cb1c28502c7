//! Commands trust nothing in their headers and cannot wedge the consumer: a command naming
//! another tenant's connection, one whose values Postgres cannot hold (a NUL) and one that is
//! not a command at all are kept as rejects with their reason, never applied, and the next
//! command on the same partition is applied.
use std::time::Duration;

use bac_e2e::{connect, Fleet};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use reqwest::Method;
use serde_json::{json, Value};

/// Sends one message to the commands topic, always on the same partition (one key).
async fn send(p: &FutureProducer, headers: &[(&str, &str)], payload: &str) {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    p.send(
        FutureRecord::to("bac.odoo.commands.v1")
            .key("one-partition")
            .payload(payload)
            .headers(h),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_commands_are_kept_as_rejects_and_the_next_one_applies() {
    let fleet = Fleet::start().await;
    let (status, mine) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{mine}");
    // Another tenant with a connection of its own.
    let other_key = fleet.other_tenant_key().await;
    let (status, theirs) = fleet
        .call_as(
            &other_key,
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "odoo", "name": "Theirs",
                "config": {"url": fleet.sandbox_url, "database": "demo", "username": "admin"},
                "credentials": {"password": "admin"}})),
        )
        .await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["id"].as_str().unwrap();

    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &fleet.infra.brokers)
        .create()
        .unwrap();
    let base = |id: &'static str| {
        vec![
            ("ce_specversion", "1.0"),
            ("ce_id", id),
            ("ce_source", "/platform/test"),
            ("ce_time", "2026-12-04T10:00:00Z"),
            ("ce_tenantid", fleet.tenant.as_str()),
        ]
    };
    // 1. My tenant's name on their connection.
    let mut h = base("cmd-foreign");
    h.push(("ce_type", "bac.odoo.crm_lead.create"));
    h.push(("ce_connectionid", theirs));
    send(&p, &h, r#"{"values": {"name": "Hijack"}}"#).await;
    // 2. A NUL in a value: JSON allows it, Postgres' jsonb does not.
    let mut h = base("cmd-nul");
    h.push(("ce_type", "bac.odoo.crm_lead.create"));
    send(&p, &h, r#"{"values": {"name": "a\u0000b"}}"#).await;
    // 3. Not a command.
    let mut h = base("cmd-garbage");
    h.push(("ce_type", "bac.odoo.crm_lead.create"));
    send(&p, &h, "not json").await;
    // 4. A good one behind them, on the same partition.
    let mut h = base("cmd-good");
    h.push(("ce_type", "bac.odoo.crm_lead.create"));
    send(&p, &h, r#"{"values": {"name": "After the bad ones"}}"#).await;

    let db = connect(&fleet.infra.database_url).await;
    let applied = bac_e2e::wait_until(Duration::from_secs(60), || async {
        db.query_opt(
            "SELECT status FROM odoo.sync_commands WHERE tenant_id = $1 AND command_id = 'cmd-good'",
            &[&fleet.tenant],
        )
        .await
        .unwrap()
        .is_some_and(|r| r.get::<_, String>(0) == "applied")
    })
    .await;
    assert!(applied, "the good command was not applied");
    let rejects: Vec<(String, String, String)> = db
        .query(
            "SELECT tenant_id, command_id, reason FROM odoo.sync_command_rejects ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert_eq!(rejects[0].1, "cmd-foreign");
    assert!(
        rejects[0].2.contains("is not a connection of tenant"),
        "{rejects:?}"
    );
    assert_eq!(rejects[1].1, "cmd-nul");
    assert!(rejects[1].2.contains("cannot be stored"), "{rejects:?}");
    assert_eq!(rejects[2].1, "cmd-garbage");
    assert!(rejects[2].2.contains("not a valid command"), "{rejects:?}");
    assert!(rejects.iter().all(|r| r.0 == fleet.tenant));
    // Nothing of theirs was touched, nothing of the rejected ones stored.
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM odoo.sync_commands WHERE command_id <> 'cmd-good'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    let (_, leads) = fleet
        .call_as(
            &other_key,
            Method::GET,
            "/api/v1/odoo/crm/leads?limit=100",
            None,
        )
        .await;
    let names: Vec<&Value> = leads["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["name"])
        .collect();
    assert!(!names.contains(&&json!("Hijack")), "{names:?}");
}
