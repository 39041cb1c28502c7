//! Tally's masters and vouchers (issue 17), against the Tally sandbox: a full sync reads every
//! group, ledger, cost centre, stock item and voucher of the configured company into events
//! and the lists of `/api/v1/tally`; a voucher posted through the API is imported once, even
//! when the request is repeated or Tally's answer is lost; Tally's line errors reach the caller
//! in Tally's words; a UTF-16 Tally syncs the same.
use bac_e2e::{conformance, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

const VOUCHERS: &str = "/api/v1/tally/vouchers";

async fn post_voucher(fleet: &Fleet, key: &str, body: &Value) -> (u16, Value) {
    let resp = fleet
        .http
        .post(format!("{}{VOUCHERS}", fleet.api))
        .bearer_auth(&fleet.key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn sale(narration: &str, debit_ledger: &str, debit: f64, credit: f64) -> Value {
    json!({"date": "2026-12-05", "voucher_type": "Sales", "party_ledger_name": "Acme Traders",
        "narration": narration, "ledger_entries": [
            {"ledger_name": debit_ledger, "amount": debit, "side": "debit"},
            {"ledger_name": "Sales", "amount": credit, "side": "credit"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tally_company_syncs_and_a_voucher_posts_once() {
    let fleet = Fleet::with_tally().await;
    let (tally, addr) = (fleet.tally_url(), fleet.tally_addr.unwrap());
    let (status, created) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/tally/configuration",
            Some(
                json!({"tally_server_host": "127.0.0.1", "tally_server_port": addr.port(),
                "company_name_in_tally": "Demo Company", "is_enabled": true,
                "sync_frequency": "daily", "auto_sync_enabled": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let conn = created["connection_id"].as_str().unwrap().to_string();
    // the configuration's frequency is every entity's
    let (_, settings) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{conn}/sync-settings"),
            None,
        )
        .await;
    let entities = settings["settings"].as_array().expect("settings");
    assert_eq!(entities.len(), 5, "{settings}");
    assert!(
        entities.iter().all(|s| s["frequency"] == "daily"),
        "{settings}"
    );

    // a full sync of every entity
    for (entity, at_least) in [
        ("group", 13),
        ("ledger", 8),
        ("cost_centre", 1),
        ("stock_item", 1),
        ("voucher", 2),
    ] {
        let run = conformance::sync(&fleet, &conn, entity, "full").await;
        assert_eq!(run["status"], "succeeded", "{entity}: {run}");
        assert!(conformance::counts(&run).0 >= at_least, "{entity}: {run}");
    }
    let events = conformance::events(&fleet, "bac.tally.ledger.v1", |got| got.len() >= 8).await;
    let rnd = events
        .iter()
        .map(|r| r.json())
        .find(|e| e["after"]["name"] == "R&D Supplies")
        .expect("the R&D Supplies ledger's event");
    assert_eq!(
        rnd["after"]["opening_balance"],
        json!({"amount": 8000.0, "side": "credit"}),
        "{rnd}"
    );
    assert_eq!(rnd["after"]["parent"], "Sundry Creditors");

    // the lists read the synced copy
    let (status, ledgers) = fleet
        .call(Method::GET, "/api/v1/tally/ledgers?page_size=5", None)
        .await;
    assert_eq!(status, 200, "{ledgers}");
    assert_eq!(ledgers["ledgers"].as_array().unwrap().len(), 5);
    let token = ledgers["next_page_token"].as_str().unwrap().to_string();
    let (_, rest) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/tally/ledgers?page_size=5&page_token={token}"),
            None,
        )
        .await;
    let all: Vec<Value> = ledgers["ledgers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["ledgers"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(all.len(), 8, "{rest}");
    let hdfc = all.iter().find(|l| l["name"] == "HDFC Bank").unwrap();
    // opening 150,000 Dr, 25,000 paid out for rent: closing 125,000 Dr
    assert_eq!(
        hdfc["opening_balance"],
        json!({"amount": 150000.0, "side": "debit"})
    );
    assert_eq!(
        hdfc["closing_balance"],
        json!({"amount": 125000.0, "side": "debit"})
    );
    let (_, items) = fleet
        .call(Method::GET, "/api/v1/tally/stock-items", None)
        .await;
    assert_eq!(items["stock_items"][0]["name"], "Widget", "{items}");
    assert_eq!(items["stock_items"][0]["opening_quantity"], 100.0);
    let (_, sales) = fleet
        .call(Method::GET, &format!("{VOUCHERS}?voucher_type=Sales"), None)
        .await;
    let sales = sales["vouchers"].as_array().unwrap().clone();
    assert_eq!(sales.len(), 1, "{sales:?}");
    assert_eq!(sales[0]["amount"], 1180.0);
    assert_eq!(
        sales[0]["ledger_entries"][0],
        json!({"ledger_name": "Acme Traders", "amount": 1180.0, "side": "debit"})
    );

    // a voucher posted through the API: imported once, however often it is asked for
    let body = sale("Invoice 7 (R&D kit)", "Acme Traders", 500.0, 500.0);
    let (status, first) = post_voucher(&fleet, "invoice-7", &body).await;
    assert_eq!(status, 201, "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("bac-"), "{first}");
    assert_eq!(first["narration"], "Invoice 7 (R&D kit)");
    let (status, again) = post_voucher(&fleet, "invoice-7", &body).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], first["id"]);
    let stats = fleet
        .sandbox_get(&format!("{tally}/_sandbox/tally/stats"))
        .await;
    assert_eq!(stats["imported_created"], 1, "{stats}");
    // Tally's answer to an import is lost: the retry finds the voucher it made
    fleet
        .sandbox_post(
            &format!("{tally}/_sandbox/tally/faults"),
            json!({"method": "import", "lose_response": true, "for_calls": 1}),
        )
        .await;
    let body = sale("Invoice 8", "Acme Traders", 250.0, 250.0);
    let (status, lost) = post_voucher(&fleet, "invoice-8", &body).await;
    assert!(status >= 500, "{status} {lost}");
    let (status, found) = post_voucher(&fleet, "invoice-8", &body).await;
    assert_eq!(status, 201, "{found}");
    let stats = fleet
        .sandbox_get(&format!("{tally}/_sandbox/tally/stats"))
        .await;
    assert_eq!(stats["imported_created"], 2, "posted once: {stats}");
    assert_eq!(stats["vouchers"], stats["distinct_voucher_guids"]);
    let created = conformance::events(&fleet, "bac.tally.voucher.v1", |got| {
        got.iter().any(|r| {
            r.headers["ce_subject"] == format!("voucher/{}", found["id"].as_str().unwrap())
        })
    })
    .await;
    let of_found = created
        .iter()
        .filter(|r| r.headers["ce_subject"] == format!("voucher/{}", found["id"].as_str().unwrap()))
        .count();
    assert_eq!(of_found, 1, "one event for the voucher");

    // Tally's line errors, in Tally's words
    let (status, e) = post_voucher(&fleet, "bad-1", &sale("x", "Nope Ledger", 10.0, 10.0)).await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Ledger 'Nope Ledger' does not exist!"),
        "{e}"
    );
    assert_eq!(e["details"]["error_code"], "UPSTREAM_REJECTED", "{e}");
    let (status, e) = post_voucher(&fleet, "bad-2", &sale("x", "Cash", 10.0, 12.5)).await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Voucher totals do not match!"),
        "{e}"
    );
    // a voucher the fleet can tell is wrong never reaches Tally
    let calls = fleet
        .sandbox_get(&format!("{tally}/_sandbox/tally/calls"))
        .await;
    let mut wrong = sale("x", "Cash", 10.0, 10.0);
    wrong["ledger_entries"][0]["side"] = json!("dr");
    let (status, e) = post_voucher(&fleet, "bad-3", &wrong).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        fleet
            .sandbox_get(&format!("{tally}/_sandbox/tally/calls"))
            .await,
        calls
    );

    // Tally answering in UTF-16: a voucher keyed in there syncs
    fleet
        .sandbox_post(
            &format!("{tally}/_sandbox/tally/encoding"),
            json!({"encoding": "utf-16"}),
        )
        .await;
    fleet
        .sandbox_post(
            &format!("{tally}/_sandbox/tally/vouchers"),
            json!({"count": 1, "narration": "Keyed in: ₹ receipt", "date": "20261205"}),
        )
        .await;
    let run = conformance::sync(&fleet, &conn, "voucher", "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(conformance::counts(&run), (1, 0, 0), "{run}");
    let (_, today) = fleet
        .call(
            Method::GET,
            &format!("{VOUCHERS}?voucher_type=Sales&from_date=2026-12-05&to_date=2026-12-05"),
            None,
        )
        .await;
    let narrations: Vec<&str> = today["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["narration"].as_str())
        .collect();
    assert!(narrations.contains(&"Keyed in: ₹ receipt"), "{today}");
    assert_eq!(narrations.len(), 3, "{today}");

    // another tenant sees none of it
    let other = fleet.other_tenant_key().await;
    let (status, e) = fleet
        .call_as(&other, Method::GET, "/api/v1/tally/ledgers", None)
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["details"]["error_code"], "NOT_CONNECTED", "{e}");
}
