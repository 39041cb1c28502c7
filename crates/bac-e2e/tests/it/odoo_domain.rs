//! The Odoo domain routes (`/api/v1/odoo/...`) through the gateway against the sandbox: leads
//! (get, update), sale orders, invoices, products, stock, employees, `execute_kw` and its
//! allow-list, bad input in the one error shape, another tenant's connection, and a create
//! whose response is lost that is not duplicated.
use std::time::Duration;

use bac_e2e::{kafka, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

async fn sandbox_records(fleet: &Fleet, model: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!(
        "{}/_sandbox/odoo/records/{model}",
        fleet.sandbox_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v.as_array().unwrap().clone()
}

async fn fault(fleet: &Fleet, rule: Value) {
    let resp = fleet
        .http
        .post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "fault rule {rule}");
}

fn assert_invalid(status: u16, b: &Value, needle: &str) {
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"], "invalid_request", "{b}");
    assert_eq!(b["details"]["error_code"], "INVALID_REQUEST", "{b}");
    assert!(
        b["message"].as_str().unwrap().contains(needle),
        "message should name {needle}: {b}"
    );
    assert!(
        b["request_id"].is_string() && b["timestamp"].is_string(),
        "{b}"
    );
}

async fn connected() -> (Fleet, String) {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    (fleet, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_domain_leads_can_be_read_and_updated() {
    let (fleet, conn) = connected().await;
    let (status, lead) = fleet.create_lead("Readable lead", None).await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_i64().unwrap();

    let (status, got) = fleet
        .call(Method::GET, &format!("/api/v1/odoo/crm/leads/{id}"), None)
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Readable lead");
    assert_eq!(got["priority"], "high");
    assert_eq!(got["connection_id"], conn.as_str());

    let (status, changed) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/odoo/crm/leads/{id}?connection_id={conn}"),
            Some(json!({"name": "Renamed lead", "priority": "low", "phone": ""})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Renamed lead");
    assert_eq!(changed["priority"], "low");
    assert_eq!(changed["phone"], "");
    assert_eq!(changed["email"], "contact@acmecorp.com");
    let stored = sandbox_records(&fleet, "crm.lead").await;
    let rec = stored.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(rec["name"], "Renamed lead");
    assert_eq!(rec["priority"], "0");
    assert_eq!(rec["phone"], false);
    // The lead carries its intent id in `referred`.
    assert!(
        rec["referred"].as_str().is_some_and(|s| s.len() == 36),
        "{rec}"
    );

    // Unknown ids, bad ids, empty and unknown-field patches.
    let (status, b) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads/999999", None)
        .await;
    assert_eq!(status, 404, "{b}");
    assert_eq!(b["details"]["error_code"], "NOT_FOUND");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            "/api/v1/odoo/crm/leads/999999",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{b}");
    let (status, b) = fleet
        .call(Method::GET, "/api/v1/odoo/crm/leads/abc", None)
        .await;
    assert_invalid(status, &b, "path parameter id must be an integer");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/odoo/crm/leads/{id}"),
            Some(json!({})),
        )
        .await;
    assert_invalid(status, &b, "nothing to change");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/odoo/crm/leads/{id}"),
            Some(json!({"stage": "won"})),
        )
        .await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["details"]["error_code"], "INVALID_REQUEST");
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/odoo/crm/leads/{id}"),
            Some(json!({"priority": "urgent"})),
        )
        .await;
    assert_invalid(status, &b, "priority");
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_domain_orders_invoices_and_catalog() {
    let (fleet, conn) = connected().await;
    let orders = kafka::consumer(&fleet.infra.brokers, "bac.odoo.sale_order.v1");
    fleet.seed("product.product", 3).await;

    // Products, stock, employees.
    let (status, products) = fleet
        .call(Method::GET, "/api/v1/odoo/inventory/products?limit=2", None)
        .await;
    assert_eq!(status, 200, "{products}");
    assert_eq!(products["products"].as_array().unwrap().len(), 2);
    assert_eq!(products["pagination"]["total"], 3);
    assert_eq!(products["pagination"]["next_offset"], 2);
    let p0 = &products["products"][0];
    assert!(p0["name"].as_str().unwrap().starts_with("Seed Product"));
    assert!(p0["internal_reference"]
        .as_str()
        .unwrap()
        .starts_with("SEED-"));
    assert!(["goods", "service"].contains(&p0["product_type"].as_str().unwrap()));
    assert_eq!(p0["connection_id"], conn.as_str());
    let product_id = p0["id"].as_i64().unwrap();
    let price = p0["sales_price"].as_f64().unwrap();
    // (seeding stock makes sure the sandbox has ten products)
    fleet.seed("stock.quant", 2).await;
    fleet.seed("hr.employee", 2).await;

    let (status, stock) = fleet
        .call(Method::GET, "/api/v1/odoo/inventory/stock", None)
        .await;
    assert_eq!(status, 200, "{stock}");
    let quants = stock["stock"].as_array().unwrap();
    assert_eq!(quants.len(), 2, "{stock}");
    assert!(quants[0]["product_id"].as_i64().unwrap() > 0);
    assert!(!quants[0]["location_name"].as_str().unwrap().is_empty());
    assert!(quants[0]["quantity"].as_f64().unwrap() > 0.0);
    let filtered_id = quants[0]["product_id"].as_i64().unwrap();
    let (_, one) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/odoo/inventory/stock?product_id={filtered_id}"),
            None,
        )
        .await;
    assert!(one["stock"]
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["product_id"] == filtered_id));

    let (status, employees) = fleet
        .call(Method::GET, "/api/v1/odoo/hr/employees", None)
        .await;
    assert_eq!(status, 200, "{employees}");
    let list = employees["employees"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0]["work_email"].as_str().unwrap().contains('@'));
    assert!(list[0]["name"]
        .as_str()
        .unwrap()
        .starts_with("Seed Employee"));

    // A sale order for a partner Odoo does not know yet: the partner is created.
    let (status, order) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({
                "partner": {"name": "Globex", "email": "buyer@globex.test"},
                "lines": [
                    {"product_id": product_id, "quantity": 2},
                    {"display_type": "line_note", "name": "Installation on site"},
                ],
                "note": "Net 30",
            })),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_i64().unwrap();
    assert!(order["name"].as_str().unwrap().starts_with('S'));
    assert_eq!(order["partner_name"], "Globex");
    assert_eq!(order["state"], "draft");
    assert_eq!(order["lines"].as_array().unwrap().len(), 2);
    assert_eq!(order["lines"][0]["product_id"], product_id);
    assert_eq!(order["lines"][0]["price_unit"], price);
    assert_eq!(order["lines"][1]["name"], "Installation on site");
    assert_eq!(order["lines"][1]["display_type"], "line_note");
    assert!(order["lines"][0]["display_type"].is_null(), "{order}");
    let total = 2.0 * price;
    assert!(
        (order["amount_total"].as_f64().unwrap() - total).abs() < 1e-6,
        "{order}"
    );
    let stored = sandbox_records(&fleet, "sale.order").await;
    let rec = stored.iter().find(|r| r["id"] == order_id).unwrap();
    // the intent id is kept out of the printed customer reference (docs/odoo.md)
    assert_eq!(rec["client_order_ref"], false, "{rec}");
    assert!(
        uuid::Uuid::parse_str(rec["origin"].as_str().unwrap()).is_ok(),
        "{rec}"
    );
    let partners = sandbox_records(&fleet, "res.partner").await;
    let globex: Vec<&Value> = partners.iter().filter(|p| p["name"] == "Globex").collect();
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0]["email"], "buyer@globex.test");
    let partner_id = globex[0]["id"].as_i64().unwrap();

    // The same partner by email is found, not created again.
    let (status, second) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(
                json!({"partner": {"name": "Globex Corp", "email": "BUYER@globex.test"},
                "lines": [{"product_id": product_id}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["partner_id"], partner_id);
    let partners = sandbox_records(&fleet, "res.partner").await;
    assert_eq!(
        partners
            .iter()
            .filter(|p| p["email"] == "buyer@globex.test")
            .count(),
        1
    );

    let (status, list) = fleet
        .call(Method::GET, "/api/v1/odoo/sales/orders?limit=1", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["pagination"]["total"], 2);
    assert_eq!(list["orders"][0]["id"], second["id"]);
    assert_eq!(list["orders"][0]["lines"].as_array().unwrap().len(), 1);
    let (_, list) = fleet
        .call(Method::GET, "/api/v1/odoo/sales/orders?offset=1", None)
        .await;
    assert_eq!(list["orders"][0]["id"], order_id);
    assert!((list["orders"][0]["amount_total"].as_f64().unwrap() - total).abs() < 1e-6);

    // The order's event.
    let got = kafka::collect(&orders, Duration::from_secs(30), |r| r.len() >= 2).await;
    let created: Vec<_> = got
        .iter()
        .filter(|r| r.headers["ce_subject"] == format!("sale_order/{order_id}"))
        .collect();
    assert_eq!(created.len(), 1, "{got:?}");
    assert_eq!(created[0].headers["ce_type"], "bac.odoo.sale_order.created");
    assert_eq!(created[0].headers["ce_connectionid"], conn);
    let data = created[0].json();
    assert_eq!(data["op"], "created");
    assert_eq!(data["entity"], "sale_order");
    assert_eq!(data["origin"], "platform");

    // An invoice, posted.
    let (status, invoice) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(json!({
                "partner": {"id": partner_id},
                "lines": [{"product_id": product_id, "quantity": 3, "price_unit": 10}],
                "invoice_date": "2024-09-01",
                "due_date": "2024-10-01",
                "post": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{invoice}");
    assert_eq!(invoice["state"], "posted", "{invoice}");
    assert_eq!(invoice["partner_id"], partner_id);
    assert_eq!(invoice["invoice_date"], "2024-09-01");
    assert_eq!(invoice["due_date"], "2024-10-01");
    // 3 x 10.0 and the product's default 15 % sale tax
    assert_eq!(invoice["amount_total"], 34.5);
    assert_ne!(invoice["number"], "/");
    let invoice_id = invoice["id"].as_i64().unwrap();
    let moves = sandbox_records(&fleet, "account.move").await;
    let rec = moves.iter().find(|r| r["id"] == invoice_id).unwrap();
    assert_eq!(rec["move_type"], "out_invoice");
    assert_eq!(rec["state"], "posted");
    // A draft, and an entry that is not a customer invoice, which the list leaves out.
    let (status, draft) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(json!({"partner": {"id": partner_id}, "lines": [{"name": "Consulting", "quantity": 2, "price_unit": 100}]})),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["state"], "draft");
    assert_eq!(draft["number"], "/");
    assert_eq!(draft["invoice_date"], Value::Null);
    let (status, _) = fleet
        .call(
            Method::POST,
            "/api/v1/odoo/execute_kw",
            Some(json!({"model": "account.move", "method": "create", "args": [{"move_type": "entry"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/odoo/accounting/invoices", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["pagination"]["total"], 2, "{list}");
    assert_eq!(list["invoices"][0]["id"], draft["id"]);
    assert_eq!(list["invoices"][0]["lines"][0]["name"], "Consulting");
    assert_eq!(list["invoices"][1]["state"], "posted");
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_domain_bad_input_and_other_tenants() {
    let (fleet, conn) = connected().await;
    let post = |path: &'static str, body: Value| fleet.call(Method::POST, path, Some(body));
    let orders = "/api/v1/odoo/sales/orders";
    let invoices = "/api/v1/odoo/accounting/invoices";

    let (s, b) = post(orders, json!({"partner": {"name": "A"}, "lines": []})).await;
    assert_invalid(s, &b, "lines");
    let (s, b) = post(
        orders,
        json!({"partner": {"name": "A"}, "lines": [{"name": "x", "quantity": -2}]}),
    )
    .await;
    assert_invalid(s, &b, "lines[0].quantity");
    let (s, b) = post(orders, json!({"partner": {}, "lines": [{"name": "x"}]})).await;
    assert_invalid(s, &b, "partner");
    let (s, b) = post(
        orders,
        json!({"partner": {"name": "A"}, "lines": [{"quantity": 1}]}),
    )
    .await;
    assert_invalid(s, &b, "lines[0]");
    // A description alone is not a sale order line Odoo accepts; a note is.
    let (s, b) = post(
        orders,
        json!({"partner": {"name": "A"}, "lines": [{"name": "Just words", "price_unit": 5}]}),
    )
    .await;
    assert_invalid(s, &b, "lines[0] needs a product_id");
    let (s, b) = post(
        orders,
        json!({"partner": {"name": "A"}, "lines": [{"display_type": "line_note", "name": "n", "product_id": 3}]}),
    )
    .await;
    assert_invalid(s, &b, "takes no product_id");
    let (s, b) = post(
        orders,
        json!({"partner": {"name": "A"}, "lines": [{"name": "x"}], "colour": "red"}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["details"]["error_code"], "INVALID_REQUEST");
    let (s, b) = post(orders, json!({"lines": [{"name": "x"}]})).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = post(
        orders,
        json!({"partner": {"id": 424242}, "lines": [{"product_id": 1}]}),
    )
    .await;
    assert_invalid(s, &b, "partner.id");
    let (s, b) = post(
        invoices,
        json!({"partner": {"name": "A"}, "lines": [{"name": "x"}], "invoice_date": "01/09/2024"}),
    )
    .await;
    assert_invalid(s, &b, "invoice_date");
    let (s, b) = post(
        "/api/v1/odoo/crm/leads",
        json!({"name": " ", "priority": "high"}),
    )
    .await;
    assert_invalid(s, &b, "name");
    let (s, b) = fleet
        .call(
            Method::GET,
            "/api/v1/odoo/inventory/products?limit=500",
            None,
        )
        .await;
    assert_invalid(s, &b, "limit");
    let (s, b) = fleet
        .call(Method::GET, "/api/v1/odoo/hr/employees?colour=red", None)
        .await;
    assert_eq!(s, 400, "{b}");
    // Nothing was created by the refused requests.
    assert!(sandbox_records(&fleet, "sale.order").await.is_empty());
    assert!(sandbox_records(&fleet, "account.move").await.is_empty());

    // Another tenant naming this tenant's connection: not found, on every route.
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "gateway", 1).unwrap();
    let other = bac_gateway::admin::bootstrap(
        &pool,
        &bac_gateway::admin::Bootstrap {
            tenant: format!("{}b", fleet.tenant),
            tenant_name: "Tenant B".into(),
            email: "boss@b.test".into(),
            role: bac_gateway::auth::Role::SuperAdmin,
        },
    )
    .await
    .unwrap();
    let q = format!("?connection_id={conn}");
    let calls = [
        (Method::GET, format!("/api/v1/odoo/crm/leads{q}"), None),
        (Method::GET, format!("/api/v1/odoo/crm/leads/1{q}"), None),
        (
            Method::PATCH,
            format!("/api/v1/odoo/crm/leads/1{q}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/odoo/crm/leads{q}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("{orders}{q}"),
            Some(json!({"partner": {"name": "A"}, "lines": [{"product_id": 1}]})),
        ),
        (Method::GET, format!("{orders}{q}"), None),
        (
            Method::POST,
            format!("{invoices}{q}"),
            Some(json!({"partner": {"name": "A"}, "lines": [{"name": "x"}]})),
        ),
        (Method::GET, format!("{invoices}{q}"), None),
        (
            Method::GET,
            format!("/api/v1/odoo/inventory/products{q}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/odoo/inventory/stock{q}"),
            None,
        ),
        (Method::GET, format!("/api/v1/odoo/hr/employees{q}"), None),
        (
            Method::POST,
            format!("/api/v1/odoo/execute_kw{q}"),
            Some(json!({"model": "res.partner", "method": "search_count", "args": [[]]})),
        ),
    ];
    for (method, path, body) in calls {
        let (status, b) = fleet.call_as(&other, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {b}");
        assert_eq!(b["details"]["error_code"], "NOT_FOUND", "{b}");
    }
    assert!(sandbox_records(&fleet, "crm.lead").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_domain_execute_kw_follows_the_allow_list() {
    let (fleet, conn) = connected().await;
    let exec = |body: Value| fleet.call(Method::POST, "/api/v1/odoo/execute_kw", Some(body));

    let (status, b) = exec(json!({"model": "res.partner", "method": "create",
        "args": [{"name": "Initech", "email": "hi@initech.test"}]}))
    .await;
    assert_eq!(status, 200, "{b}");
    let partner = b["result"].as_i64().unwrap();
    let (status, b) = exec(json!({"model": "res.partner", "method": "search_read",
        "args": [[["name", "=", "Initech"]]], "kwargs": {"fields": ["name", "email"]}}))
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["result"][0]["id"], partner);
    assert_eq!(b["result"][0]["email"], "hi@initech.test");
    let (status, b) = exec(json!({"model": "res.partner", "method": "write",
        "args": [[partner], {"phone": "+1 555 0100"}]}))
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["result"], true);

    // Refused: a model outside the allow-list, a method outside the list, unlink.
    let (status, b) =
        exec(json!({"model": "res.users", "method": "search_read", "args": [[]]})).await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["details"]["error_code"], "PERMISSION_DENIED");
    let msg = b["message"].as_str().unwrap();
    assert!(
        msg.contains("res.users") && msg.contains("allowed_models"),
        "{b}"
    );
    let (status, b) =
        exec(json!({"model": "res.partner", "method": "unlink", "args": [[partner]]})).await;
    assert_eq!(status, 403, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("allow_unlink"),
        "{b}"
    );
    let (status, b) =
        exec(json!({"model": "res.partner", "method": "copy", "args": [[partner]]})).await;
    assert_eq!(status, 403, "{b}");
    assert!(b["message"].as_str().unwrap().contains("copy"), "{b}");
    let (status, b) = exec(json!({"model": "Not A Model", "method": "read"})).await;
    assert_invalid(status, &b, "model");
    let (status, b) = exec(json!({"model": "res.partner", "method": "_private"})).await;
    assert_invalid(status, &b, "method");

    // The connection's settings open res.users and unlink, and close the rest.
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{conn}"),
            Some(json!({"config": {"allowed_models": ["res.users", "res.partner"], "allow_unlink": true}})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let (status, b) =
        exec(json!({"model": "res.users", "method": "search_count", "args": [[]]})).await;
    assert_eq!(status, 200, "{b}");
    assert!(b["result"].as_i64().unwrap() >= 1);
    let (status, b) =
        exec(json!({"model": "res.partner", "method": "unlink", "args": [[partner]]})).await;
    assert_eq!(status, 200, "{b}");
    assert!(sandbox_records(&fleet, "res.partner")
        .await
        .iter()
        .all(|p| p["id"] != partner));
    let (status, b) = exec(json!({"model": "crm.lead", "method": "search", "args": [[]]})).await;
    assert_eq!(status, 403, "{b}");
    // The routes are documented; execute_kw's result may be any JSON value.
    let (status, doc) = fleet.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/odoo/crm/leads",
        "/api/v1/odoo/crm/leads/{id}",
        "/api/v1/odoo/sales/orders",
        "/api/v1/odoo/accounting/invoices",
        "/api/v1/odoo/inventory/products",
        "/api/v1/odoo/inventory/stock",
        "/api/v1/odoo/hr/employees",
        "/api/v1/odoo/execute_kw",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not documented");
    }
    let result = &doc["components"]["schemas"]["ExecuteKwResult"]["properties"]["result"];
    assert!(result.get("type").is_none(), "{result}");
    // Settings the service does not know are refused (schema and service agree).
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{conn}"),
            Some(json!({"config": {"protocol": "xmlrpc"}})),
        )
        .await;
    assert_eq!(status, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_domain_a_lost_create_response_is_not_duplicated() {
    let (fleet, _conn) = connected().await;
    fault(
        &fleet,
        json!({"model": "crm.lead", "method": "create", "lose_response": true, "for_calls": 1}),
    )
    .await;
    let (status, lead) = fleet.create_lead("Exactly once", None).await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_i64().unwrap();
    let stored = sandbox_records(&fleet, "crm.lead").await;
    let same: Vec<&Value> = stored
        .iter()
        .filter(|r| r["name"] == "Exactly once")
        .collect();
    assert_eq!(same.len(), 1, "{stored:?}");
    assert_eq!(same[0]["id"], id);

    // A create that certainly failed (HTTP 503 before Odoo ran it) is sent again.
    fault(
        &fleet,
        json!({"model": "crm.lead", "method": "create", "status": 503, "for_calls": 1}),
    )
    .await;
    let (status, lead) = fleet.create_lead("Retried once", None).await;
    assert_eq!(status, 201, "{lead}");
    let stored = sandbox_records(&fleet, "crm.lead").await;
    assert_eq!(
        stored
            .iter()
            .filter(|r| r["name"] == "Retried once")
            .count(),
        1
    );

    // The same Idempotency-Key twice: one record, the same answer.
    let send = || {
        fleet
            .http
            .post(format!("{}/api/v1/odoo/crm/leads", fleet.api))
            .bearer_auth(&fleet.key)
            .header("Idempotency-Key", "order-form-42")
            .json(&json!({"name": "Keyed lead", "priority": "medium"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let stored = sandbox_records(&fleet, "crm.lead").await;
    let keyed: Vec<&Value> = stored
        .iter()
        .filter(|r| r["name"] == "Keyed lead")
        .collect();
    assert_eq!(keyed.len(), 1);
    assert_eq!(keyed[0]["referred"], "order-form-42");
}
