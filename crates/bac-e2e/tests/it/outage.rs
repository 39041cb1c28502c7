//! Nothing lost: a lead created while the broker is frozen, or after it restarted empty, still
//! ends up in Kafka exactly once.
use std::time::Duration;

use bac_e2e::{kafka, Fleet};

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_broker_delays_the_event_but_loses_nothing() {
    let fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    // One event before the outage, so the relay's producer is connected.
    let (status, _) = fleet.create_lead("Before the outage", None).await;
    assert_eq!(status, 201);
    assert!(fleet.wait_outbox_drained(Duration::from_secs(20)).await);

    fleet.kafka.pause();
    let (status, lead) = fleet.create_lead("During the outage", None).await;
    assert_eq!(status, 201, "writes succeed while Kafka is down: {lead}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !fleet.wait_outbox_drained(Duration::from_millis(200)).await,
        "the event cannot have been published while the broker is frozen"
    );
    fleet.kafka.resume();

    assert!(fleet.wait_outbox_drained(Duration::from_secs(60)).await);
    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");
    let subject = format!("crm_lead/{}", lead["id"]);
    // Read everything there is, then a little longer, to catch duplicates.
    let got = kafka::collect(&consumer, Duration::from_secs(20), |r| r.len() >= 2).await;
    let more = kafka::collect(&consumer, Duration::from_secs(2), |_| false).await;
    let all: Vec<_> = got.into_iter().chain(more).collect();
    let during: Vec<_> = all
        .iter()
        .filter(|r| r.headers["ce_subject"] == subject)
        .collect();
    assert_eq!(during.len(), 1, "exactly one event for the lead: {all:?}");
    assert_eq!(all.len(), 2, "no duplicates of the earlier event either");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_restarts_empty_gets_its_topics_back() {
    let _logs = bac_e2e::logs::capture();
    let mut fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let (status, _) = fleet.create_lead("Before the restart", None).await;
    assert_eq!(status, 201);
    assert!(fleet.wait_outbox_drained(Duration::from_secs(20)).await);

    fleet.kafka.restart_empty();
    let (status, lead) = fleet.create_lead("After the restart", None).await;
    assert_eq!(status, 201);
    assert!(
        fleet.wait_outbox_drained(Duration::from_secs(90)).await,
        "the relay re-creates the topic and publishes"
    );
    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");
    let got = kafka::collect(&consumer, Duration::from_secs(30), |r| !r.is_empty()).await;
    let subject = format!("crm_lead/{}", lead["id"]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].headers["ce_subject"], subject);
}

/// Single-event rows (API writes) and batch rows (sync pages) share one id order: one
/// record's events reach Kafka in the order they committed, whichever table holds them, even
/// when the relay finds them all waiting at once (the broker was frozen) and events after
/// them in the same round.
#[tokio::test(flavor = "multi_thread")]
async fn single_and_batch_outbox_rows_are_relayed_in_commit_order() {
    use bac_runtime::{events::CloudEvent, outbox};
    let fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let (status, _) = fleet.create_lead("Before the outage", None).await;
    assert_eq!(status, 201);
    assert!(fleet.wait_outbox_drained(Duration::from_secs(20)).await);

    let event = |key: &str, n: u32| CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/odoo".into(),
        ty: "bac.odoo.crm_lead.updated".into(),
        subject: Some(format!("crm_lead/{key}")),
        time: chrono::Utc::now(),
        tenant_id: fleet.tenant.clone(),
        connection_id: None,
        traceparent: None,
        data: format!("{{\"n\":{n}}}").into_bytes(),
        topic: "bac.odoo.crm_lead.v1".into(),
        key: format!("{}/crm_lead/{key}", fleet.tenant),
    };
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "odoo", 2).unwrap();
    let mut client = pool.get().await.unwrap();
    fleet.kafka.pause();
    // Commit order for key "x": 1 (single), 2 (in a batch), 3 (single), 4 and 5 (a batch
    // with another key's event between them), 6 (single).
    let commits: Vec<Vec<CloudEvent>> = vec![
        vec![event("x", 1)],
        vec![event("y", 1), event("x", 2), event("y", 2)],
        vec![event("x", 3)],
        vec![event("x", 4), event("z", 1), event("x", 5)],
        vec![event("x", 6)],
    ];
    for events in &commits {
        let tx = client.transaction().await.unwrap();
        if events.len() == 1 {
            outbox::enqueue(&tx, &events[0]).await.unwrap();
        } else {
            outbox::enqueue_many(&tx, events).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let db = bac_e2e::connect(&fleet.infra.database_url).await;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM odoo.outbox_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "each multi-event commit is one batch row");
    fleet.kafka.resume();
    assert!(fleet.wait_outbox_drained(Duration::from_secs(60)).await);

    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");
    let got = kafka::collect(&consumer, Duration::from_secs(30), |r| r.len() >= 10).await;
    let more = kafka::collect(&consumer, Duration::from_secs(2), |_| false).await;
    let all: Vec<_> = got.into_iter().chain(more).collect();
    assert_eq!(
        all.len(),
        10,
        "the lead's event and the nine written here: {all:?}"
    );
    let of = |key: &str| -> Vec<i64> {
        all.iter()
            .filter(|r| r.key == format!("{}/crm_lead/{key}", fleet.tenant))
            .map(|r| r.json()["n"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(of("x"), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(of("y"), vec![1, 2]);
    assert_eq!(of("z"), vec![1]);
    // Every event keeps its own CloudEvents headers through the batch row.
    let ids: Vec<String> = commits.iter().flatten().map(|e| e.id.to_string()).collect();
    for r in all
        .iter()
        .filter(|r| r.headers["ce_type"] == "bac.odoo.crm_lead.updated")
    {
        assert!(ids.contains(&r.headers["ce_id"]), "{r:?}");
        assert_eq!(r.headers["ce_tenantid"], fleet.tenant);
        assert_eq!(r.headers["content-type"], "application/json");
    }
}
