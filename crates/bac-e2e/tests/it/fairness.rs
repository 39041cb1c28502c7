//! One tenant's big backfill cannot hold up another tenant's sync: runs hold a slot for one
//! slice (then go back in line, checkpointed), and a free slot goes to the tenant holding the
//! fewest. Tenant A's seven entities of 10,000 records come from a slow Odoo (200 ms a page)
//! and hold the run slots first; tenant B's one-lead sync, triggered afterwards, succeeds
//! while most of A's runs are still unfinished. In first-in-first-out order it could not
//! start before all seven had ended.
use std::time::{Duration, Instant};

use bac_e2e::{wait_until, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

const MODELS: [&str; 7] = [
    "crm.lead",
    "res.partner",
    "sale.order",
    "account.move",
    "product.product",
    "stock.quant",
    "hr.employee",
];

async fn post(http: &reqwest::Client, url: String, body: Value) {
    let resp = http.post(url).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

async fn runs(fleet: &Fleet, key: &str, conn: &str) -> Vec<Value> {
    let (status, body) = fleet
        .call_as(
            key,
            Method::GET,
            &format!("/api/v1/integrations/connections/{conn}/sync-runs?limit=50"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().unwrap().clone()
}

fn count(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_backfill_does_not_hold_up_another_tenants_sync() {
    // This test runs in a process of its own (nextest), so its bac-odoo reads these.
    std::env::set_var("BAC_SYNC_SLICE_SECS", "1");
    std::env::set_var("BAC_SYNC_PAGE_SIZE", "500");
    let fleet = Fleet::start().await;
    let http = reqwest::Client::new();
    for model in MODELS {
        post(
            &http,
            format!("{}/_sandbox/odoo/seed", fleet.sandbox_url),
            json!({"model": model, "count": 10_000, "values": {}}),
        )
        .await;
    }
    post(
        &http,
        format!("{}/_sandbox/odoo/faults", fleet.sandbox_url),
        json!({"method": "search_read", "slow_ms": 200}),
    )
    .await;
    let (status, a_conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{a_conn}");
    let a_conn = a_conn["id"].as_str().unwrap().to_string();
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{a_conn}/sync"),
            Some(json!({"mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The run slots are A's before B asks (one here: the test pool of 8 connections allows
    // one run at a time, see SyncEngine::new).
    let started = wait_until(Duration::from_secs(60), || async {
        count(&runs(&fleet, &fleet.key, &a_conn).await, "running") > 0
    })
    .await;
    assert!(started, "A's runs did not start");

    // Tenant B, with an Odoo of its own holding one lead.
    let (b_odoo, _) = bac_sandbox_odoo::spawn_odoo(
        bac_sandbox_odoo::OdooSandboxConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    post(
        &http,
        format!("http://{b_odoo}/_sandbox/odoo/seed"),
        json!({"model": "crm.lead", "count": 1, "values": {}}),
    )
    .await;
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "gateway", 2).unwrap();
    let b_key = bac_gateway::admin::bootstrap(
        &pool,
        &bac_gateway::admin::Bootstrap {
            tenant: format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            tenant_name: "Tenant B".into(),
            email: "admin@b.local".into(),
            role: bac_gateway::auth::Role::SuperAdmin,
        },
    )
    .await
    .unwrap();
    let (status, b_conn) = fleet
        .call_as(
            &b_key,
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "odoo", "name": "B",
                "config": {"url": format!("http://{b_odoo}"), "database": "demo", "username": "admin"},
                "credentials": {"password": "admin"}})),
        )
        .await;
    assert_eq!(status, 201, "{b_conn}");
    let b_conn = b_conn["id"].as_str().unwrap().to_string();
    let (status, body) = fleet
        .call_as(
            &b_key,
            Method::POST,
            &format!("/api/v1/integrations/connections/{b_conn}/sync"),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let triggered = Instant::now();
    let ended = wait_until(Duration::from_secs(120), || async {
        let b = runs(&fleet, &b_key, &b_conn).await;
        assert_eq!(count(&b, "failed"), 0, "{b:?}");
        count(&b, "succeeded") == 1
    })
    .await;
    assert!(ended, "B's run did not end");
    let a = runs(&fleet, &fleet.key, &a_conn).await;
    let a_done = count(&a, "succeeded");
    println!(
        "B's one-lead sync took {:?}; A had finished {a_done} of 7 runs by then",
        triggered.elapsed()
    );
    assert!(
        a_done <= 2,
        "B waited for A: {a_done} of A's runs had ended first"
    );
    let b = runs(&fleet, &b_key, &b_conn).await;
    assert_eq!(b[0]["records_created"], 1, "{b:?}");
    // B got the first slot that freed: it started before A's queued runs did (in first-in-
    // first-out order, even with slices, all seven of A's would have started first).
    let at = |r: &Value| {
        r["started_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let b_started = at(&b[0]).expect("B's run started");
    let a_before = a
        .iter()
        .filter(|r| at(r).is_some_and(|t| t < b_started))
        .count();
    assert!(
        a_before <= 2,
        "{a_before} of A's runs started before B's, which was queued after them"
    );
}
