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
