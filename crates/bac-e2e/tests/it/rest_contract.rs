//! The REST contract of the Odoo domain routes, pinned: a scripted scenario against the
//! sandbox (every route, its success bodies and its refusals) compared with
//! `tests/golden/odoo_rest.json`, recorded from the hand-written routes before the gateway
//! served them by transcoding the annotated protos. A change of any body, status or error
//! code fails here; to record a deliberate change run the test with `BAC_RECORD_GOLDEN=1`
//! and review the diff of the golden file.
//!
//! What is normalised: times (they move), the connection id (a fresh UUID each run), intent
//! ids (UUIDv7), request ids and error messages (prose, not contract: the status, the error
//! and its code are compared).
use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::{json, Value};

/// One step: method, path, JSON body, extra headers.
struct Step {
    method: Method,
    path: String,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

fn step(method: Method, path: &str, body: Option<Value>) -> Step {
    Step {
        method,
        path: path.to_string(),
        body,
        headers: Vec::new(),
    }
}

async fn run(fleet: &Fleet, s: &Step) -> (u16, Value) {
    let mut req = fleet
        .http
        .request(s.method.clone(), format!("{}{}", fleet.api, s.path))
        .bearer_auth(&fleet.key);
    for (k, v) in &s.headers {
        req = req.header(*k, v);
    }
    if let Some(b) = &s.body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"))
    };
    (status, body)
}

fn is_time(s: &str) -> bool {
    // 2026-12-04T17:01:02Z, with or without fractions or an offset.
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':'
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

fn normalise(v: Value, connection: &str) -> Value {
    match v {
        Value::String(s) if s == connection => json!("<connection>"),
        Value::String(s) if is_time(&s) => json!("<time>"),
        Value::String(s) if is_uuid(&s) => json!("<uuid>"),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| normalise(x, connection)).collect()),
        Value::Object(o) => {
            let is_error = o.contains_key("error") && o.contains_key("details");
            Value::Object(
                o.into_iter()
                    .map(|(k, x)| {
                        let x = match k.as_str() {
                            "message" | "request_id" | "timestamp" if is_error => json!("<…>"),
                            _ => normalise(x, connection),
                        };
                        (k, x)
                    })
                    .collect(),
            )
        }
        other => other,
    }
}

fn scenario(conn: &str) -> Vec<Step> {
    let lead = json!({
        "name": "Contract lead", "partner_name": "Acme Corp", "email": "contact@acmecorp.com",
        "phone": "+1-555-0123", "expected_revenue": 50000, "priority": "high",
    });
    let mut create_lead = step(Method::POST, "/api/v1/odoo/crm/leads", Some(lead.clone()));
    create_lead
        .headers
        .push(("Idempotency-Key", "contract-lead-1".into()));
    let mut repeat_lead = step(Method::POST, "/api/v1/odoo/crm/leads", Some(lead));
    repeat_lead
        .headers
        .push(("Idempotency-Key", "contract-lead-1".into()));
    vec![
        // Leads.
        create_lead,
        repeat_lead,
        step(
            Method::POST,
            &format!("/api/v1/odoo/crm/leads?connection_id={conn}"),
            Some(json!({"name": "Second lead"})),
        ),
        step(Method::GET, "/api/v1/odoo/crm/leads", None),
        step(Method::GET, "/api/v1/odoo/crm/leads?limit=1&offset=1", None),
        step(
            Method::GET,
            "/api/v1/odoo/crm/leads?name_contains=second",
            None,
        ),
        step(Method::GET, "/api/v1/odoo/crm/leads/1", None),
        step(
            Method::PATCH,
            "/api/v1/odoo/crm/leads/1",
            Some(json!({"name": "Renamed lead", "priority": "low", "phone": ""})),
        ),
        // Catalog.
        step(Method::GET, "/api/v1/odoo/inventory/products", None),
        step(
            Method::GET,
            "/api/v1/odoo/inventory/products?limit=2&name_contains=seed",
            None,
        ),
        step(Method::GET, "/api/v1/odoo/inventory/stock", None),
        step(
            Method::GET,
            "/api/v1/odoo/inventory/stock?product_id=1",
            None,
        ),
        step(Method::GET, "/api/v1/odoo/hr/employees", None),
        step(
            Method::GET,
            "/api/v1/odoo/hr/employees?name_contains=employee&limit=1",
            None,
        ),
        // Orders and invoices.
        step(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({
                "partner": {"name": "Globex", "email": "buyer@globex.test"},
                "lines": [
                    {"product_id": 1, "quantity": 2},
                    {"display_type": "line_note", "name": "Installation on site"},
                    {"product_id": 2},
                ],
                "note": "Net 30",
            })),
        ),
        step(Method::GET, "/api/v1/odoo/sales/orders", None),
        step(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(json!({
                "partner": {"name": "Globex", "email": "buyer@globex.test"},
                "lines": [{"product_id": 1, "quantity": 3, "price_unit": 10}],
                "invoice_date": "2024-09-01", "due_date": "2024-10-01", "post": true,
            })),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(
                json!({"partner": {"id": 1}, "lines": [{"name": "Consulting", "quantity": 2, "price_unit": 100}]}),
            ),
        ),
        step(
            Method::GET,
            "/api/v1/odoo/accounting/invoices?limit=5",
            None,
        ),
        // execute_kw.
        step(
            Method::POST,
            "/api/v1/odoo/execute_kw",
            Some(json!({"model": "res.partner", "method": "search_read",
                "args": [[["name", "=", "Globex"]]], "kwargs": {"fields": ["name", "email"]}})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/execute_kw",
            Some(json!({"model": "crm.lead", "method": "search_count", "args": [[]]})),
        ),
        // Refusals: status, error and code are the contract.
        step(Method::GET, "/api/v1/odoo/crm/leads/abc", None),
        step(Method::GET, "/api/v1/odoo/crm/leads/999999", None),
        step(Method::PATCH, "/api/v1/odoo/crm/leads/1", Some(json!({}))),
        step(
            Method::PATCH,
            "/api/v1/odoo/crm/leads/1",
            Some(json!({"stage": "won"})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/crm/leads",
            Some(json!({"priority": "high"})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/crm/leads",
            Some(json!({"name": 5})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/crm/leads",
            Some(json!({"name": "x", "priority": "urgent"})),
        ),
        step(Method::GET, "/api/v1/odoo/crm/leads?limit=abc", None),
        step(Method::GET, "/api/v1/odoo/crm/leads?limit=500", None),
        step(Method::GET, "/api/v1/odoo/hr/employees?colour=red", None),
        step(
            Method::GET,
            "/api/v1/odoo/crm/leads?connection_id=00000000-0000-0000-0000-000000000000",
            None,
        ),
        step(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({"partner": {"name": "A"}, "lines": []})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({"partner": {"name": "A"}, "lines": [{"name": "x", "quantity": -2}]})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({"lines": [{"name": "x"}]})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/sales/orders",
            Some(json!({"partner": {"name": "A"}, "lines": [{"name": "Just words"}]})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/accounting/invoices",
            Some(
                json!({"partner": {"name": "A"}, "lines": [{"name": "x"}], "invoice_date": "01/09/2024"}),
            ),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/execute_kw",
            Some(json!({"model": "ir.config_parameter", "method": "search_read", "args": []})),
        ),
        step(
            Method::POST,
            "/api/v1/odoo/execute_kw",
            Some(json!({"model": "res.partner", "method": "search_read", "args": {}})),
        ),
        step(Method::DELETE, "/api/v1/odoo/crm/leads", None),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn odoo_rest_bodies_match_the_recorded_contract() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_string();
    fleet.seed("product.product", 3).await;
    fleet.seed("stock.quant", 2).await;
    fleet.seed("hr.employee", 2).await;

    let mut got = Vec::new();
    for s in scenario(&conn) {
        let (status, body) = run(&fleet, &s).await;
        got.push(json!({
            "request": format!("{} {}", s.method, s.path.replace(&conn, "<connection>")),
            "body": s.body,
            "status": status,
            "response": normalise(body, &conn),
        }));
    }
    bac_e2e::golden::check("odoo_rest.json", got, |w| {
        format!("{} (the answer)", w["request"])
    });
}
