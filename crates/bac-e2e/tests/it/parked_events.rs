//! One tenant's event can never stop another's: an event larger than the broker takes is
//! published without its largest fields, and a row the broker refuses for good (written
//! before that guard, or refused by a broker with a lower limit) is parked while the relay
//! goes on.
use std::time::Duration;

use bac_e2e::{connect, kafka, Fleet};
use bac_runtime::{events::CloudEvent, outbox};
use reqwest::Method;
use serde_json::json;

fn event(tenant: &str, key: &str, data: Vec<u8>) -> CloudEvent {
    CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/odoo".into(),
        ty: "bac.odoo.crm_lead.updated".into(),
        subject: Some(format!("crm_lead/{key}")),
        time: chrono::Utc::now(),
        tenant_id: tenant.into(),
        connection_id: None,
        traceparent: None,
        data,
        topic: "bac.odoo.crm_lead.v1".into(),
        key: format!("{tenant}/crm_lead/{key}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_broker_refuses_is_parked_and_the_next_tenant_goes_on() {
    let fleet = Fleet::start().await;
    let db = connect(&fleet.infra.database_url).await;
    // Written as an older release would have: 2 MB as it is, straight into the outbox.
    let huge = event(&fleet.tenant, "1", vec![b' '; 2 << 20]);
    insert_raw(&db, &huge).await;
    // Then another tenant's event, through the outbox as every write goes.
    let quiet = event("quiet", "2", br#"{"n":2}"#.to_vec());
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "odoo", 2).unwrap();
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    outbox::enqueue(&tx, &quiet).await.unwrap();
    tx.commit().await.unwrap();

    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");
    let got = kafka::collect(&consumer, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key, quiet.key);
    // The refused row is kept, parked with its reason, and no longer in the relay's way.
    let row = db
        .query_one(
            "SELECT parked_at IS NOT NULL, published_at IS NULL, last_error
               FROM odoo.outbox WHERE event_id = $1",
            &[&huge.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "parked");
    assert!(row.get::<_, bool>(1), "not published");
    let reason: String = row.get(2);
    assert!(reason.to_lowercase().contains("size"), "{reason}");
    assert!(fleet.wait_outbox_drained(Duration::from_secs(10)).await);

    // The tenant's administrators see it, put it back in line, or give it up; audited.
    const PARKED: &str = "/api/v1/integrations/odoo/parked-events";
    let (status, list) = fleet.call(Method::GET, PARKED, None).await;
    assert_eq!(status, 200, "{list}");
    let events = list["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{list}");
    let parked = &events[0];
    assert_eq!(parked["key"], huge.key.as_str());
    assert_eq!(parked["topic"], "bac.odoo.crm_lead.v1");
    assert_eq!(parked["status"], "parked");
    // uint64 in proto3 JSON is a string.
    assert_eq!(parked["bytes"], json!((2 << 20).to_string()));
    let id = parked["id"].as_str().unwrap().to_string();
    let (_, user_key) = fleet.user_with_key("user").await;
    let (status, b) = fleet.call_as(&user_key, Method::GET, PARKED, None).await;
    assert_eq!(status, 403, "{b}");
    // A retry puts it back in line; the broker still refuses it, so it parks again.
    let (status, retried) = fleet
        .call(Method::POST, &format!("{PARKED}/{id}/retry"), None)
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "queued");
    let parked_again = bac_e2e::wait_until(Duration::from_secs(30), || async {
        let row = db
            .query_one(
                "SELECT attempts, parked_at IS NOT NULL FROM odoo.outbox WHERE event_id = $1",
                &[&huge.id],
            )
            .await
            .unwrap();
        row.get::<_, bool>(1) && row.get::<_, i32>(0) >= 2
    })
    .await;
    assert!(parked_again, "not parked again");
    let (status, discarded) = fleet
        .call(Method::DELETE, &format!("{PARKED}/{id}"), None)
        .await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    let (_, list) = fleet.call(Method::GET, PARKED, None).await;
    assert_eq!(list["events"], json!([]), "{list}");
    let (status, b) = fleet
        .call(Method::DELETE, &format!("{PARKED}/{id}"), None)
        .await;
    assert_eq!(status, 404, "{b}");
    let (status, b) = fleet
        .call(Method::POST, &format!("{PARKED}/out_x/retry"), None)
        .await;
    assert_eq!(status, 404, "{b}");
    let actions: Vec<String> = db
        .query(
            "SELECT action FROM gateway.audit_log WHERE tenant_id = $1 AND target_id = $2
             ORDER BY created_at, id",
            &[&fleet.tenant, &id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["parked_event.retried", "parked_event.discarded"]);
    // Discarded means kept, never published.
    let row = db
        .query_one(
            "SELECT discarded_at IS NOT NULL, parked_at IS NULL FROM odoo.outbox WHERE event_id = $1",
            &[&huge.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
}

async fn insert_raw(db: &tokio_postgres::Client, e: &CloudEvent) {
    db.execute(
        "INSERT INTO odoo.outbox (event_id, tenant_id, topic, key, headers, payload)
         VALUES ($1, $2, $3, $4, '[]', $5)",
        &[&e.id, &e.tenant_id, &e.topic, &e.key, &e.data],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_too_large_for_one_message_is_published_without_its_largest_fields() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    // Odoo takes a 950 KB name; the event of a pulled record carries it in `after`.
    for name in ["N".repeat(950_000), "Small".to_string()] {
        fleet
            .odoo_rpc("crm.lead", "create", json!([{"name": name}]), json!({}))
            .await;
    }
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!(
                "/api/v1/integrations/connections/{}/sync",
                conn["id"].as_str().unwrap()
            ),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");
    let got = kafka::collect(&consumer, Duration::from_secs(60), |r| r.len() >= 2).await;
    assert_eq!(got.len(), 2, "both events arrive");
    let big = got
        .iter()
        .find(|r| r.payload.len() < 10_000 && r.json().get("omitted").is_some());
    let big = big
        .expect("the large record's event, without its record")
        .json();
    assert_eq!(big["op"], "created");
    assert_eq!(big["omitted"]["fields"], json!(["after"]), "{big}");
    assert!(big["omitted"]["bytes"].as_u64().unwrap() > 950_000);
    assert!(
        got.iter().any(|r| r.json()["after"]["name"] == "Small"),
        "the small record's event is whole"
    );
}
