//! `POST /_sandbox/odoo/seed` for every model, seeding from the configuration
//! and from `BAC_SANDBOX_ODOO_SEED` (the binary), and the 100,000-lead seed.

use std::time::{Duration, Instant};

use bac_sandbox_odoo::OdooSandboxConfig;
use serde_json::json;

use crate::support::{spawn, spawn_with};

#[tokio::test]
async fn seed_every_model() {
    let sb = spawn().await;
    for (model, count) in [
        ("crm.lead", 20),
        ("res.partner", 15),
        ("product.product", 12),
        ("sale.order", 10),
        ("account.move", 8),
        ("stock.quant", 6),
        ("hr.employee", 5),
        ("crm.stage", 2),
    ] {
        let (status, body) = sb.seed(json!({"model": model, "count": count})).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["created"], count, "{model}");
        assert_eq!(body["ids"].as_array().unwrap().len(), count);
        assert!(body["elapsed_ms"].is_u64());
    }
    let count = |model: &'static str| {
        let sb = &sb;
        async move {
            sb.ok(model, "search_count", json!([[]]), json!({}))
                .await
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(count("crm.lead").await, 20);
    assert_eq!(count("res.partner").await, 15);
    // products were there already for the orders, invoices and quants
    assert_eq!(count("product.product").await, 12);
    assert_eq!(count("sale.order").await, 10);
    assert_eq!(count("sale.order.line").await, 20);
    assert_eq!(count("account.move").await, 8);
    assert_eq!(count("stock.quant").await, 6);
    assert_eq!(count("hr.employee").await, 5);
    let orders = sb
        .ok(
            "sale.order",
            "search_read",
            json!([[], ["partner_id", "amount_total", "order_line", "state"]]),
            json!({"limit": 3}),
        )
        .await;
    for o in orders.as_array().unwrap() {
        assert!(o["partner_id"].is_array(), "{o}");
        assert!(o["amount_total"].as_f64().unwrap() > 0.0, "{o}");
        assert_eq!(o["order_line"].as_array().unwrap().len(), 2);
        assert_eq!(o["state"], "draft");
    }
    let moves = sb
        .ok(
            "account.move",
            "search_read",
            json!([
                [["move_type", "=", "out_invoice"]],
                ["amount_total", "state"]
            ]),
            json!({}),
        )
        .await;
    assert_eq!(moves.as_array().unwrap().len(), 8);
    let employee = &sb
        .ok(
            "hr.employee",
            "search_read",
            json!([[], ["name", "work_email", "department_id", "job_title"]]),
            json!({"limit": 1, "order": "id"}),
        )
        .await[0];
    assert_eq!(employee["name"], "Seed Employee 1");
    assert!(employee["department_id"].is_array());
    // a second seed continues the numbering
    let (_, body) = sb.seed(json!({"model": "crm.lead", "count": 1})).await;
    let lead = sb
        .ok(
            "crm.lead",
            "read",
            json!([body["ids"], ["name"]]),
            json!({}),
        )
        .await;
    assert_eq!(lead[0]["name"], "Seed lead 21");
}

#[tokio::test]
async fn seed_values_backdating_and_errors() {
    let sb = spawn().await;
    let (status, body) = sb
        .seed(json!({
            "model": "crm.lead",
            "count": 50,
            "values": {"type": "opportunity", "referred": "seeded"},
            "write_date": "2024-01-02 03:04:05",
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    // all share one (backdated) write_date
    let recs = sb
        .ok(
            "crm.lead",
            "search_read",
            json!([
                [["write_date", "=", "2024-01-02 03:04:05"]],
                ["type", "referred", "create_date"]
            ]),
            json!({}),
        )
        .await;
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 50);
    assert!(recs.iter().all(|r| r["type"] == "opportunity"
        && r["referred"] == "seeded"
        && r["create_date"] == "2024-01-02 03:04:05"));
    let newer = sb
        .ok(
            "crm.lead",
            "search_count",
            json!([[["write_date", ">", "2024-01-02 03:04:05"]]]),
            json!({}),
        )
        .await;
    assert_eq!(newer, 0);
    // orders are backdated with their lines
    let (_, body) = sb
        .seed(json!({"model": "sale.order", "count": 2, "write_date": "2023-05-06 07:08:09"}))
        .await;
    assert_eq!(body["created"], 2);
    let lines = sb
        .ok(
            "sale.order.line",
            "search_count",
            json!([[["write_date", "=", "2023-05-06 07:08:09"]]]),
            json!({}),
        )
        .await;
    assert_eq!(lines, 4);
    for (bad, needle) in [
        (json!({"model": "crm.nope", "count": 1}), "unknown model"),
        (json!({"model": "crm.lead", "count": -1}), "\"count\""),
        (
            json!({"model": "crm.lead", "count": 2_000_000}),
            "\"count\"",
        ),
        (
            json!({"model": "crm.lead", "count": 1, "values": {"nope": 1}}),
            "Invalid field",
        ),
        (
            json!({"model": "crm.lead", "count": 1, "values": 3}),
            "\"values\"",
        ),
        (
            json!({"model": "crm.lead", "count": 1, "write_date": "yesterday"}),
            "write_date",
        ),
    ] {
        let (status, body) = sb.seed(bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{bad} -> {body}"
        );
    }
}

#[tokio::test]
async fn seed_from_config() {
    let sb = spawn_with(OdooSandboxConfig {
        seed: vec![("res.partner".into(), 7), ("crm.lead".into(), 30)],
        ..OdooSandboxConfig::default()
    })
    .await;
    assert_eq!(
        sb.ok("res.partner", "search_count", json!([[]]), json!({}))
            .await,
        7
    );
    assert_eq!(
        sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
            .await,
        30
    );
}

/// 100,000 leads in one call, then paged through by `write_date` and id the way
/// an incremental sync reads them. Prints the timings (`--no-capture` shows them).
#[tokio::test]
async fn seed_100k_leads() {
    let sb = spawn().await;
    let started = Instant::now();
    let (status, body) = sb
        .seed(json!({"model": "crm.lead", "count": 100_000}))
        .await;
    let wall = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body["created"], 100_000);
    eprintln!(
        "seeded 100000 crm.lead in {} ms (server), {} ms (round trip)",
        body["elapsed_ms"],
        wall.as_millis()
    );
    // generous bound: a debug build on a busy 2-core machine
    assert!(wall < Duration::from_secs(60), "seeding took {wall:?}");
    let count = sb
        .ok("crm.lead", "search_count", json!([[]]), json!({}))
        .await;
    assert_eq!(count, 100_000);
    // keyset pages: id > last, ordered by id, 5,000 at a time
    let started = Instant::now();
    let (mut last, mut seen) = (0, 0);
    loop {
        let page = sb
            .ok(
                "crm.lead",
                "search_read",
                json!([
                    [
                        ["write_date", ">=", "2000-01-01 00:00:00"],
                        ["id", ">", last]
                    ],
                    ["name", "write_date"]
                ]),
                json!({"order": "id asc", "limit": 5000}),
            )
            .await;
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        seen += page.len();
        last = page.last().unwrap()["id"].as_i64().unwrap();
    }
    assert_eq!(seen, 100_000);
    eprintln!(
        "paged 100000 leads (5000 a page) in {} ms",
        started.elapsed().as_millis()
    );
}
