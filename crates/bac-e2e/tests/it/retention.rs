//! Nothing grows forever: published events and batches, finished runs and dead letters older
//! than the retention are purged in batches; what is unpublished, parked or recent stays. And
//! a schedule cannot ask for runs more often than once a minute.
use std::time::{Duration, Instant};

use bac_e2e::{connect, Fleet};
use bac_runtime::retention::{purge_once, Retention};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn old_rows_are_purged_in_batches_and_the_rest_stays() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_string();
    let db = connect(&fleet.infra.database_url).await;
    // A finished sync run, made old.
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run: uuid::Uuid = body["sync_run_id"].as_str().unwrap().parse().unwrap();
    let finished = bac_e2e::wait_until(Duration::from_secs(60), || async {
        db.query_one(
            "SELECT finished_at IS NOT NULL FROM odoo.sync_runs WHERE id = $1",
            &[&run],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    })
    .await;
    assert!(finished, "the run did not finish");
    assert!(fleet.wait_outbox_drained(Duration::from_secs(30)).await);
    db.batch_execute(
        "UPDATE odoo.sync_runs SET finished_at = now() - interval '8 days';
         -- 25 old published events, 3 recent ones, an old parked one.
         INSERT INTO odoo.outbox (event_id, tenant_id, topic, key, headers, payload, created_at, published_at)
           SELECT gen_random_uuid(), 't', 'bac.odoo.crm_lead.v1', 'k', '[]', 'x',
                  now() - interval '9 days', now() - interval '8 days' FROM generate_series(1, 25);
         INSERT INTO odoo.outbox (event_id, tenant_id, topic, key, headers, payload, published_at)
           SELECT gen_random_uuid(), 't', 'bac.odoo.crm_lead.v1', 'recent', '[]', 'x', now()
           FROM generate_series(1, 3);
         INSERT INTO odoo.outbox (event_id, tenant_id, topic, key, headers, payload, created_at, parked_at)
           VALUES (gen_random_uuid(), 't', 'bac.odoo.crm_lead.v1', 'parked', '[]', 'x',
                   now() - interval '9 days', now() - interval '9 days');
         INSERT INTO odoo.outbox_batches (tenant_id, topic, event_count, events, created_at, published_at)
           VALUES ('t', 'bac.odoo.crm_lead.v1', 1, '', now() - interval '9 days', now() - interval '8 days');",
    )
    .await
    .unwrap();
    // The parked row must not be relayed meanwhile: it stays parked (published_at null).
    let keep_unpublished: i64 = db
        .query_one(
            "SELECT count(*) FROM odoo.outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before: i64 = db
        .query_one("SELECT count(*) FROM odoo.outbox", &[])
        .await
        .unwrap()
        .get(0);

    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "odoo", 2).unwrap();
    let purged = purge_once(
        &pool,
        "odoo",
        Retention {
            batch: 10,
            ..Retention::default()
        },
    )
    .await
    .unwrap();
    // 25 old events, 1 old batch, 1 old run.
    assert_eq!(purged, 27);
    let after: i64 = db
        .query_one("SELECT count(*) FROM odoo.outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before - after, 25);
    let counts = db
        .query_one(
            "SELECT (SELECT count(*) FROM odoo.outbox WHERE key = 'recent'),
                    (SELECT count(*) FROM odoo.outbox WHERE published_at IS NULL),
                    (SELECT count(*) FROM odoo.outbox_batches WHERE published_at < now() - interval '7 days'),
                    (SELECT count(*) FROM odoo.sync_runs)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(counts.get::<_, i64>(0), 3, "recent events stay");
    assert_eq!(
        counts.get::<_, i64>(1),
        keep_unpublished,
        "unpublished and parked stay"
    );
    assert_eq!(counts.get::<_, i64>(2), 0);
    assert_eq!(counts.get::<_, i64>(3), 0, "the old run is gone");
    // Nothing left to do: a second round deletes nothing.
    assert_eq!(
        purge_once(&pool, "odoo", Retention::default())
            .await
            .unwrap(),
        0
    );
    // The relay still publishes after the purge.
    let (status, lead) = fleet.create_lead("After the purge", None).await;
    assert_eq!(status, 201, "{lead}");
    assert!(fleet.wait_outbox_drained(Duration::from_secs(30)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_more_often_than_once_a_minute_is_refused() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let path = format!(
        "/api/v1/integrations/connections/{}/sync-settings/crm_lead",
        conn["id"].as_str().unwrap()
    );
    for fast in ["*/5 * * * * *", "* * * * * *"] {
        let (status, body) = fleet
            .call(Method::PATCH, &path, Some(json!({"frequency": fast})))
            .await;
        assert_eq!(status, 400, "{fast}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("more often than once a minute"),
            "{body}"
        );
    }
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"frequency": "* * * * *"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Creates `n` leads one after another; their outbox keys.
async fn create_leads(fleet: &Fleet, tag: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let (status, lead) = fleet.create_lead(&format!("{tag} {i}"), None).await;
        assert_eq!(status, 201, "{lead}");
        keys.push(format!("{}/crm_lead/{}", fleet.tenant, lead["id"]));
    }
    keys
}

/// Relay lag of these events: commit to the broker's acknowledgement (published_at).
async fn relay_lags(db: &tokio_postgres::Client, keys: &[String]) -> Vec<Duration> {
    db.query(
        "SELECT EXTRACT(EPOCH FROM (published_at - created_at))::float8 FROM odoo.outbox
         WHERE key = ANY($1) AND published_at IS NOT NULL",
        &[&keys],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| Duration::from_secs_f64(r.get::<_, f64>(0).max(0.0)))
    .collect()
}

fn p50_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// Measures (prints, asserts only what must hold) how the purge of a million published rows
/// affects the relay: the relay lag (commit to broker acknowledgement) of API writes while it
/// runs, against the same writes before it, in the same run. Command:
/// `cargo nextest run -p bac-e2e -E 'test(relay_keeps_up)' --no-capture`.
#[tokio::test(flavor = "multi_thread")]
async fn relay_keeps_up_while_a_million_rows_are_purged() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let db = connect(&fleet.infra.database_url).await;
    db.batch_execute(
        "INSERT INTO odoo.outbox (event_id, tenant_id, topic, key, headers, payload, created_at, published_at)
           SELECT gen_random_uuid(), 't', 'bac.odoo.crm_lead.v1', 'old', '[]', 'x',
                  now() - interval '9 days', now() - interval '8 days'
           FROM generate_series(1, 1000000)",
    )
    .await
    .unwrap();
    let baseline_keys = create_leads(&fleet, "baseline", 30).await;
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "odoo", 2).unwrap();
    let started = Instant::now();
    let purge = tokio::spawn(async move {
        purge_once(&pool, "odoo", Retention::default())
            .await
            .unwrap()
    });
    let mut during_keys = Vec::new();
    while !purge.is_finished() {
        during_keys.extend(create_leads(&fleet, "during", 5).await);
    }
    let purged = purge.await.unwrap();
    let took = started.elapsed();
    assert_eq!(purged, 1_000_000);
    assert!(fleet.wait_outbox_drained(Duration::from_secs(30)).await);
    let baseline = relay_lags(&db, &baseline_keys).await;
    let during = relay_lags(&db, &during_keys).await;
    assert_eq!(baseline.len(), baseline_keys.len());
    assert_eq!(during.len(), during_keys.len(), "every event published");
    let (b50, bmax) = p50_max(baseline);
    let (d50, dmax) = p50_max(during.clone());
    println!(
        "purge of {purged} rows: {:.1} s ({:.0} rows/s); relay lag without purge p50 {:?} max {:?}; during purge ({} writes) p50 {:?} max {:?}; ratio p50 {:.2}",
        took.as_secs_f64(),
        purged as f64 / took.as_secs_f64(),
        b50,
        bmax,
        during.len(),
        d50,
        dmax,
        d50.as_secs_f64() / b50.as_secs_f64().max(1e-6)
    );
}
