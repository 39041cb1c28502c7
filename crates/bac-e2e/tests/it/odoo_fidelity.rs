//! Odoo as real Odoo behaves (issue 13). Its errors are read by exception class, the same over
//! JSON-RPC and JSON-2: a user without the rights is told so (not that the credentials are
//! wrong), and a database failure Odoo rolled back is retried instead of failing for good.
//! An order's partner is looked up as Odoo's ILIKE means it.
use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::{json, Value};

async fn fault(fleet: &Fleet, rule: Value) {
    let resp = fleet
        .http
        .post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn leads_named(fleet: &Fleet, name: &str) -> i64 {
    fleet
        .odoo_rpc(
            "crm.lead",
            "search_count",
            json!([[["name", "=", name]]]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_errors_are_not_bad_credentials_and_rolled_back_failures_are_retried() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");

    // The connection's user has no Sales rights: Odoo raises AccessError.
    fault(
        &fleet,
        json!({"model": "crm.lead", "method": "create", "error": "odoo.exceptions.AccessError", "for_calls": 1}),
    )
    .await;
    let (status, body) = fleet.create_lead("Not allowed", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["error_code"], "PERMISSION_DENIED", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("crm.lead"),
        "{body}"
    );
    assert!(
        body["details"]["suggestion"]
            .as_str()
            .unwrap_or_default()
            .contains("rights"),
        "{body}"
    );
    let (_, s) = fleet
        .call(Method::GET, "/api/v1/integrations/odoo/status", None)
        .await;
    assert_eq!(
        s["configuration_valid"], true,
        "the credentials are fine: {s}"
    );
    assert!(
        !s["reason"].to_string().contains("INVALID_CREDENTIALS"),
        "{s}"
    );

    // A serialization failure over /jsonrpc (HTTP 200 with an error body): Odoo rolled the
    // create back; the service checks that and creates once.
    fault(
        &fleet,
        json!({"model": "crm.lead", "method": "create", "error": "psycopg2.errors.SerializationFailure", "for_calls": 1}),
    )
    .await;
    let (status, lead) = fleet.create_lead("After a rollback", None).await;
    assert_eq!(status, 201, "{lead}");
    assert_eq!(leads_named(&fleet, "After a rollback").await, 1);
    // A read that meets a lost database connection once is read again.
    fault(
        &fleet,
        json!({"model": "crm.lead", "method": "search_read", "error": "psycopg2.OperationalError", "for_calls": 1}),
    )
    .await;
    let (status, body) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json2_lock_conflict_is_transient_like_its_jsonrpc_twin() {
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        server_version: "19.0".into(),
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo_with_api_key().await;
    assert_eq!(status, 201, "{conn}");
    // One 409: read again.
    fault(
        &fleet,
        json!({"protocol": "json2", "model": "crm.lead", "method": "search_read", "error": "psycopg2.errors.LockNotAvailable", "for_calls": 1}),
    )
    .await;
    let (status, body) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 200, "{body}");
    // Lasting: a retryable 503, not a refusal of the request.
    fault(
        &fleet,
        json!({"protocol": "json2", "model": "crm.lead", "method": "search_read", "error": "psycopg2.errors.LockNotAvailable", "for_calls": 5}),
    )
    .await;
    let (status, body) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["details"]["error_code"], "UPSTREAM_UNAVAILABLE",
        "{body}"
    );
    // AccessError over JSON-2 (403) reads as over JSON-RPC.
    fault(
        &fleet,
        json!({"protocol": "json2", "model": "crm.lead", "method": "create", "error": "odoo.exceptions.AccessError", "for_calls": 1}),
    )
    .await;
    let (status, body) = fleet.create_lead("Not allowed either", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["error_code"], "PERMISSION_DENIED", "{body}");
    // An API key Odoo no longer takes (19's expire): said so, with what to do.
    fault(
        &fleet,
        json!({"protocol": "json2", "session_expired": true, "for_calls": 5}),
    )
    .await;
    let (status, body) = fleet.create_lead("Expired key", None).await;
    assert_eq!(
        body["details"]["error_code"], "INVALID_CREDENTIALS",
        "{status} {body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert!(
        body["details"]["suggestion"]
            .as_str()
            .unwrap_or_default()
            .contains("New API Key"),
        "{body}"
    );
}

/// The partner of an order is found by its email literally (`_` and `%` are not wildcards)
/// and among archived partners too: no order lands on a stranger, none makes a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn an_orders_partner_is_found_by_its_exact_email_even_archived() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let stranger = fleet
        .odoo_rpc(
            "res.partner",
            "create",
            json!([{"name": "Axb Corp", "email": "axb@x.test"}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let archived = fleet
        .odoo_rpc(
            "res.partner",
            "create",
            json!([{"name": "Old Co", "email": "old@x.test", "active": false}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let order = |partner: Value| {
        let fleet = &fleet;
        async move {
            let (status, body) = fleet
                .call(
                    Method::POST,
                    "/api/v1/odoo/sales/orders",
                    Some(json!({"partner": partner, "lines": [{"display_type": "line_note", "name": "Service"}]})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["partner_id"].as_i64().unwrap()
        }
    };
    let new = order(json!({"name": "A_B", "email": "a_b@x.test"})).await;
    assert_ne!(new, stranger, "a_b@x.test is not axb@x.test");
    let old = order(json!({"name": "Old Co", "email": "old@x.test"})).await;
    assert_eq!(old, archived, "the archived partner, not a duplicate");
    let count = fleet
        .odoo_rpc(
            "res.partner",
            "search_count",
            json!([[["email", "=", "old@x.test"]]]),
            json!({"context": {"active_test": false}}),
        )
        .await;
    assert_eq!(count, 1);
}

/// Odoo stamps `write_date` when a transaction starts; a long import commits its rows minutes
/// later. A record that appears after a run with a `write_date` two minutes before it is still
/// read by the next incremental run (the look-back counts from the newest `write_date` seen).
#[tokio::test(flavor = "multi_thread")]
async fn a_change_committed_late_with_an_older_write_date_is_still_synced() {
    use bac_e2e::conformance::{counts, sync};
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_string();
    fleet
        .seed_with(json!({"model": "crm.lead", "count": 1}))
        .await;
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // An import that started two minutes ago commits now.
    let started = (chrono::Utc::now() - chrono::Duration::seconds(120))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    fleet
        .seed_with(json!({"model": "crm.lead", "count": 1, "write_date": started}))
        .await;
    let run = sync(&fleet, &conn, "crm_lead", "incremental").await;
    assert_eq!(counts(&run), (1, 0, 0), "{run}");
    // The look-back is the connection's to choose, within bounds.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{conn}"),
            Some(json!({"config": {"url": fleet.sandbox_url, "database": "demo", "username": "admin", "sync_lookback_seconds": 5}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Odoo 18 without the Inventory app: products have no `is_storable` (stock adds it) and
/// reading a field Odoo does not have is an error. The product list asks the database which
/// fields it has instead of assuming them from the version; stock says which model is missing.
#[tokio::test(flavor = "multi_thread")]
async fn products_list_on_an_odoo_18_without_inventory() {
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        server_version: "18.0".into(),
        stock: false,
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    fleet.seed("product.product", 2).await;
    let (status, body) = fleet
        .call(Method::GET, "/api/v1/odoo/inventory/products", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let products = body["products"].as_array().unwrap();
    assert_eq!(products.len(), 2, "{body}");
    assert_eq!(products[0]["product_type"], "goods");
    assert_eq!(products[0]["storable"], false);
    let (_, body) = fleet
        .call(Method::GET, "/api/v1/odoo/inventory/stock", None)
        .await;
    assert_eq!(body["details"]["error_code"], "UPSTREAM_REJECTED", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("stock.quant"),
        "{body}"
    );
}

/// An Odoo 19 connection with only a password works over `/jsonrpc`, which Odoo deprecates
/// from 19: its status says so and what to do, once the fleet has seen the version.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_only_connection_to_odoo_19_is_a_warning() {
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        server_version: "19.0".into(),
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let (status, lead) = fleet.create_lead("Over jsonrpc", None).await;
    assert_eq!(status, 201, "{lead}");
    let shown = bac_e2e::wait_until(std::time::Duration::from_secs(10), || async {
        odoo_status(&fleet).await["status"] == "warning"
    })
    .await;
    let s = odoo_status(&fleet).await;
    assert!(shown, "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("credentials.api_key"),
        "{s}"
    );
    assert_eq!(s["configuration_valid"], true, "it works: {s}");
}

async fn odoo_status(fleet: &Fleet) -> Value {
    fleet
        .call(Method::GET, "/api/v1/integrations/odoo/status", None)
        .await
        .1
}

/// POSTs `body` to `path` with an `Idempotency-Key`; `(status, body)`.
async fn post_once(fleet: &Fleet, path: &str, key: &str, body: Value) -> (u16, Value) {
    let resp = fleet
        .http
        .post(format!("{}{path}", fleet.api))
        .bearer_auth(&fleet.key)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The record `id` of `model` as the sandbox's admin reads it.
async fn odoo_row(fleet: &Fleet, model: &str, id: i64, fields: &[&str]) -> Value {
    fleet
        .odoo_rpc(model, "read", json!([[id], fields]), json!({}))
        .await[0]
        .clone()
}

/// Intent ids stay out of what people read and print: not an order's customer reference
/// (printed on the quotation), not an invoice's reference, not a product's internal reference.
/// Without a technical field they go to the least visible ordinary field; once an
/// administrator adds `x_bac_intent_id`, there and nowhere else, and a retried create still
/// finds its record by it.
#[tokio::test(flavor = "multi_thread")]
async fn intent_ids_stay_out_of_fields_people_see() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let key = uuid::Uuid::new_v4().to_string();
    let order_body = json!({"partner": {"name": "Visible Co"},
        "lines": [{"display_type": "line_note", "name": "Service"}]});
    let (status, order) = post_once(&fleet, "/api/v1/odoo/sales/orders", &key, order_body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["client_reference"], "", "{order}");
    let row = odoo_row(
        &fleet,
        "sale.order",
        order["id"].as_i64().unwrap(),
        &["client_order_ref", "origin"],
    )
    .await;
    assert_eq!(row["client_order_ref"], false, "{row}");
    assert_eq!(row["origin"], key.as_str(), "{row}");

    let with_field = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        custom_fields: vec![
            ("crm.lead".into(), "x_bac_intent_id".into()),
            ("sale.order".into(), "x_bac_intent_id".into()),
        ],
        ..Default::default()
    })
    .await;
    let (status, conn) = with_field.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let key = uuid::Uuid::new_v4().to_string();
    let lead_body = json!({"name": "Quiet lead", "email": "quiet@x.test"});
    let (status, lead) = post_once(
        &with_field,
        "/api/v1/odoo/crm/leads",
        &key,
        lead_body.clone(),
    )
    .await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_i64().unwrap();
    let row = odoo_row(
        &with_field,
        "crm.lead",
        id,
        &["referred", "x_bac_intent_id"],
    )
    .await;
    assert_eq!(row["referred"], false, "{row}");
    assert_eq!(row["x_bac_intent_id"], key.as_str(), "{row}");
    let (status, again) = post_once(&with_field, "/api/v1/odoo/crm/leads", &key, lead_body).await;
    assert!(status == 200 || status == 201, "{status} {again}");
    assert_eq!(again["id"].as_i64(), Some(id), "the same lead: {again}");
    assert_eq!(leads_named(&with_field, "Quiet lead").await, 1);
}

/// Taxes on invoice lines as Odoo computes them: a product's line carries the product's
/// customer taxes (the generic chart's 15 %), a line may name its own, and the invoice's
/// answer says each line's tax and total and the invoice's.
#[tokio::test(flavor = "multi_thread")]
async fn invoice_lines_carry_their_taxes() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let product = fleet
        .odoo_rpc(
            "product.product",
            "create",
            json!([{"name": "Widget", "list_price": 10.0}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let eco = fleet
        .odoo_rpc(
            "account.tax",
            "create",
            json!([{"name": "Eco fee", "amount_type": "fixed", "amount": 0.5}]),
            json!({}),
        )
        .await
        .as_i64()
        .unwrap();
    let (status, invoice) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(json!({"partner": {"name": "Taxed Co"}, "lines": [
                {"product_id": product, "quantity": 2},
                {"product_id": product, "quantity": 4, "tax_ids": [eco]},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{invoice}");
    let lines = invoice["lines"].as_array().unwrap();
    assert_eq!(lines[0]["tax_ids"], json!([1]), "{invoice}");
    assert_eq!(
        (lines[0]["tax"].as_f64(), lines[0]["total"].as_f64()),
        (Some(3.0), Some(23.0))
    );
    assert_eq!(lines[1]["tax_ids"], json!([eco]));
    assert_eq!(
        (lines[1]["tax"].as_f64(), lines[1]["total"].as_f64()),
        (Some(2.0), Some(42.0))
    );
    assert_eq!(
        (
            invoice["amount_untaxed"].as_f64(),
            invoice["amount_tax"].as_f64(),
            invoice["amount_total"].as_f64()
        ),
        (Some(60.0), Some(5.0), Some(65.0)),
        "{invoice}"
    );
    let (status, body) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(json!({"partner": {"name": "Taxed Co"}, "lines": [{"product_id": product, "quantity": 1, "tax_ids": [0]}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
