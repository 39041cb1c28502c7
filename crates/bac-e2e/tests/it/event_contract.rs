//! The events of the Odoo service, pinned: a scripted scenario (a REST create and update, a
//! full sync of seeded leads, an incremental sync after an upstream change, a deletion seen by
//! a full sync, a two-way command) and every event it publishes on the lead and sync-run
//! topics, compared with `tests/golden/odoo_events.json`. Moving Odoo's code into the connector
//! kit must not change what subscribers receive; record a deliberate change with
//! `BAC_RECORD_GOLDEN=1` and review the diff.
//!
//! Normalised: times, UUIDs (event and run ids), the connection id and the tenant. Events are
//! compared as a set ordered by topic, subject, type and body: Kafka orders them per key only.
use std::time::Duration;

use bac_e2e::{connect, kafka, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

use crate::sync_engine::{command, connection, odoo, producer, seed, settled, sync};

const TOPICS: &[&str] = &["bac.odoo.crm_lead.v1", "bac.integrations.sync_run.v1"];

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
}

fn normalise(v: Value, swaps: &[(&str, &str)]) -> Value {
    match v {
        Value::String(mut s) => {
            for (from, to) in swaps {
                s = s.replace(from, to);
            }
            if is_time(&s) {
                return json!("<time>");
            }
            // UUIDs, alone or as a segment of a subject or key (`sync_run/<uuid>`).
            let segments: Vec<&str> = s
                .split('/')
                .map(|seg| {
                    if uuid::Uuid::parse_str(seg).is_ok() {
                        "<uuid>"
                    } else {
                        seg
                    }
                })
                .collect();
            Value::String(segments.join("/"))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| normalise(x, swaps)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| {
                    // How long a run took moves from run to run.
                    let x = if k == "duration_ms" {
                        json!("<duration>")
                    } else {
                        normalise(x, swaps)
                    };
                    (k, x)
                })
                .collect(),
        ),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_events_match_the_recorded_contract() {
    let fleet = Fleet::start().await;
    seed(
        &fleet,
        "crm.lead",
        3,
        json!({"partner_name": "Seeded Co"}),
        Some("2024-01-02 03:04:05"),
    )
    .await;
    let conn = connection(&fleet).await;
    // REST: a create (with an idempotency key) and an update.
    let created = fleet
        .http
        .post(format!("{}/api/v1/odoo/crm/leads", fleet.api))
        .bearer_auth(&fleet.key)
        .header("Idempotency-Key", "event-contract-1")
        .json(
            &json!({"name": "Contract lead", "partner_name": "Acme Corp",
                      "email": "contact@acmecorp.com", "expected_revenue": 50000,
                      "priority": "high"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let lead: Value = created.json().await.unwrap();
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/odoo/crm/leads/{}", lead["id"]),
            Some(json!({"priority": "low"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A full sync: the seeded leads are new, the REST lead is the fleet's own.
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // An upstream change, seen by an incremental sync.
    odoo(
        &fleet,
        "crm.lead",
        "write",
        json!([[1], {"name": "Changed upstream"}]),
        json!({}),
    )
    .await;
    let run = sync(&fleet, &conn, "crm_lead", "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // An upstream deletion, seen by a full sync.
    odoo(&fleet, "crm.lead", "unlink", json!([[2]]), json!({})).await;
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // A two-way command from another platform service.
    let p = producer(&fleet);
    command(
        &fleet,
        &p,
        "event-contract-cmd-1",
        "bac.odoo.crm_lead.create",
        &chrono::Utc::now().to_rfc3339(),
        json!({"entity": "crm_lead", "op": "create",
               "values": {"name": "From a command", "priority": "medium"}}),
    )
    .await;
    assert_eq!(settled(&fleet, "event-contract-cmd-1").await, "applied");

    assert!(
        fleet.wait_outbox_drained(Duration::from_secs(60)).await,
        "events never published"
    );
    let mut got = Vec::new();
    let mut expected = 0;
    for topic in TOPICS {
        let c = kafka::consumer(&fleet.kafka.brokers(), topic);
        let want_here = {
            let db = connect(&fleet.infra.database_url).await;
            let row = db
                .query_one(
                    "SELECT (SELECT count(*) FROM odoo.outbox WHERE topic = $1)
                          + (SELECT coalesce(sum(event_count), 0) FROM odoo.outbox_batches
                             WHERE topic = $1)",
                    &[topic],
                )
                .await
                .unwrap();
            usize::try_from(row.get::<_, i64>(0)).unwrap()
        };
        let records = kafka::collect(&c, Duration::from_secs(60), |r| r.len() >= want_here).await;
        assert_eq!(records.len(), want_here, "{topic}");
        expected += want_here;
        got.extend(records);
    }
    assert_eq!(got.len(), expected);
    let swaps = [
        (conn.as_str(), "<connection>"),
        (fleet.tenant.as_str(), "<tenant>"),
    ];
    let mut events: Vec<Value> = got
        .iter()
        .map(|r| {
            let mut headers: Vec<(&String, &String)> = r
                .headers
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "ce_id" | "ce_time" | "traceparent"))
                .collect();
            headers.sort();
            normalise(
                json!({
                    "topic": r.topic,
                    "key": r.key,
                    "headers": headers.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "data": r.json(),
                }),
                &swaps,
            )
        })
        .collect();
    events.sort_by_key(|e| e.to_string());
    bac_e2e::golden::check("odoo_events.json", events, |w| {
        format!("an event ({})", w["headers"])
    });
}
