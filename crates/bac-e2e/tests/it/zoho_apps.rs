//! Zoho Books, Inventory, Desk, People and Mail through the gateway (issue 14): the
//! documented routes against the Zoho sandbox, the organisation ids each product needs
//! learnt from Zoho when the connection names none, each write's event on
//! `bac.zoho.<entity>.v1`, Idempotency-Key retries answered with the first record (a mail
//! is sent once), Zoho's error codes kept, and the products' records synced incrementally
//! with deletions found.
use std::time::Duration;

use bac_e2e::{conformance, kafka, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const SCOPES: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ,ZohoBooks.fullaccess.all,\
ZohoInventory.fullaccess.all,Desk.tickets.ALL,Desk.contacts.READ,Desk.basic.READ,Desk.search.READ,\
ZOHOPEOPLE.forms.READ,ZohoMail.accounts.READ,ZohoMail.messages.CREATE";

async fn zoho_fleet() -> Fleet {
    Fleet::start_opts(FleetOptions {
        zoho: true,
        ..Default::default()
    })
    .await
}

async fn post(fleet: &Fleet, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = fleet
        .http
        .post(format!("{}{path}", fleet.api))
        .bearer_auth(&fleet.key)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// The sandbox's admin routes of data centre `dc` (no token, no credits).
async fn admin(fleet: &Fleet, method: Method, dc: &str, path: &str, body: Option<Value>) -> Value {
    let zoho = &fleet.zoho.as_ref().unwrap().0;
    let mut req = fleet
        .http
        .request(method, format!("{zoho}/{dc}/_sandbox/zoho/{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

fn subjects(got: &[kafka::Record], ty: &str) -> Vec<String> {
    got.iter()
        .filter(|r| r.headers["ce_type"] == ty)
        .map(|r| r.headers["ce_subject"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn books_desk_people_inventory_and_mail_through_the_gateway() {
    let fleet = zoho_fleet().await;
    let tickets_topic = kafka::consumer(&fleet.infra.brokers, "bac.zoho.desk_ticket.v1");
    let invoices_topic = kafka::consumer(&fleet.infra.brokers, "bac.zoho.books_invoice.v1");
    let mail_topic = kafka::consumer(&fleet.infra.brokers, "bac.zoho.mail_message.v1");
    // no organisation ids in the settings: the fleet learns them from Zoho
    let conn = fleet.connect_zoho("eu", SCOPES, json!({})).await;

    // Desk: the document's curl body, as it is, twice with one key.
    let documented = json!({"subject": "Login Issue", "description": "Unable to login to account",
                            "email": "user@example.com", "priority": "High", "status": "Open"});
    let (status, ticket) = post(
        &fleet,
        "/api/v1/zoho/desk/tickets",
        documented.clone(),
        Some("ticket-1"),
    )
    .await;
    assert_eq!(status, 201, "{ticket}");
    let ticket_id = ticket["id"].as_str().unwrap().to_string();
    assert_eq!(ticket["subject"], "Login Issue");
    assert_eq!(ticket["priority"], "High");
    assert_eq!(ticket["status"], "Open");
    assert_eq!(ticket["email"], "user@example.com");
    assert!(
        !ticket["ticket_number"].as_str().unwrap().is_empty(),
        "{ticket}"
    );
    assert!(
        !ticket["department_id"].as_str().unwrap().is_empty(),
        "{ticket}"
    );
    assert!(
        !ticket["contact_id"].as_str().unwrap().is_empty(),
        "{ticket}"
    );
    assert_eq!(ticket["connection_id"], conn.as_str());
    let (status, again) = post(
        &fleet,
        "/api/v1/zoho/desk/tickets",
        documented,
        Some("ticket-1"),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        again["id"],
        ticket_id.as_str(),
        "the retry answers the first ticket"
    );
    assert_eq!(
        admin(&fleet, Method::GET, "eu", "apps/desk_tickets", None).await["count"],
        1,
        "one ticket in Zoho Desk"
    );
    let (status, got) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/zoho/desk/tickets/{ticket_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["description"], "Unable to login to account");
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/desk/tickets?limit=10", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tickets"][0]["id"], ticket_id.as_str(), "{list}");
    assert_eq!(list["pagination"]["count"], 1, "{list}");
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/desk/tickets/999999999", None)
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/desk/tickets",
        json!({"subject": "No requester"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/desk/tickets?limit=101", None)
        .await;
    assert_eq!(status, 400, "{e}");

    // Books: a customer, then an invoice for them.
    let (status, customer) = post(
        &fleet,
        "/api/v1/zoho/books/customers",
        json!({"name": "Acme Corp", "email": "billing@acmecorp.com"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{customer}");
    let customer_id = customer["id"].as_str().unwrap().to_string();
    let (status, invoice) = post(
        &fleet,
        "/api/v1/zoho/books/invoices",
        json!({"customer_id": customer_id, "reference_number": "PO-7",
               "line_items": [{"name": "Consulting", "rate": 120, "quantity": 2},
                              {"name": "Travel", "rate": 35.5}]}),
        Some("invoice-1"),
    )
    .await;
    assert_eq!(status, 201, "{invoice}");
    let invoice_id = invoice["id"].as_str().unwrap().to_string();
    assert_eq!(invoice["total"].as_f64(), Some(275.5), "{invoice}");
    assert_eq!(invoice["customer_name"], "Acme Corp");
    assert_eq!(invoice["status"], "draft");
    assert!(invoice["invoice_number"]
        .as_str()
        .unwrap()
        .starts_with("INV-"));
    let (status, got) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/zoho/books/invoices/{invoice_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["line_items"].as_array().map(Vec::len), Some(2), "{got}");
    assert_eq!(
        got["line_items"][1]["quantity"].as_f64(),
        Some(1.0),
        "{got}"
    );
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/books/invoices?per_page=5", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["invoices"][0]["id"], invoice_id.as_str(), "{list}");
    assert_eq!(list["pagination"]["has_more_page"], false, "{list}");
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/books/invoices",
        json!({"customer_id": "4242424242", "line_items": [{"name": "X", "rate": 1}]}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["details"]["upstream_code"], "4", "Books' own code: {e}");
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/books/invoices",
        json!({"customer_id": customer_id, "line_items": []}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/books/invoices/123456789", None)
        .await;
    assert_eq!(status, 404, "{e}");

    // Inventory and People read what Zoho holds.
    admin(
        &fleet,
        Method::POST,
        "eu",
        "apps/inventory_items",
        Some(json!({"records": [
            {"name": "Widget", "sku": "W-1", "rate": 5, "initial_stock": 40},
            {"name": "Gadget", "sku": "G-1", "rate": 12.5}
        ]})),
    )
    .await;
    let (status, items) = fleet
        .call(Method::GET, "/api/v1/zoho/inventory/items", None)
        .await;
    assert_eq!(status, 200, "{items}");
    let names: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["Widget", "Gadget"], "{items}");
    assert_eq!(
        items["items"][0]["stock_on_hand"].as_f64(),
        Some(40.0),
        "{items}"
    );
    admin(
        &fleet,
        Method::POST,
        "eu",
        "apps/people_employees",
        Some(
            json!({"records": [{"FirstName": "Ada", "LastName": "Lovelace",
                                  "EmailID": "ada@acmecorp.com", "Department": "Research"}]}),
        ),
    )
    .await;
    let (status, people) = fleet
        .call(Method::GET, "/api/v1/zoho/people/employees", None)
        .await;
    assert_eq!(status, 200, "{people}");
    assert_eq!(people["employees"][0]["first_name"], "Ada", "{people}");
    assert_eq!(people["employees"][0]["department"], "Research", "{people}");
    assert!(!people["employees"][0]["id"].as_str().unwrap().is_empty());

    // Mail: sent once for one key, from the account's address.
    let mail =
        json!({"to": "ada@acmecorp.com", "subject": "Welcome aboard", "body": "<p>Hello Ada</p>"});
    let (status, sent) = post(
        &fleet,
        "/api/v1/zoho/mail/send",
        mail.clone(),
        Some("mail-1"),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let (status, again) = post(&fleet, "/api/v1/zoho/mail/send", mail, Some("mail-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], sent["id"], "the retry answers the first send");
    let outbox = admin(&fleet, Method::GET, "eu", "mail/sent", None).await;
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "sent once: {outbox}");
    assert_eq!(messages[0]["toAddress"], "ada@acmecorp.com");
    assert_eq!(messages[0]["fromAddress"], "admin@sandbox.zoho");
    assert_eq!(messages[0]["mailFormat"], "html");
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/mail/send",
        json!({"to": "not-an-address", "subject": "x"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");

    // Each write's event, once, by subject.
    let tickets = kafka::collect(&tickets_topic, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(
        subjects(&tickets, "bac.zoho.desk_ticket.created"),
        [format!("desk_ticket/{ticket_id}")],
        "{tickets:?}"
    );
    assert_eq!(tickets[0].headers["ce_tenantid"], fleet.tenant);
    assert_eq!(tickets[0].json()["after"]["subject"], "Login Issue");
    let invoices =
        kafka::collect(&invoices_topic, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(
        subjects(&invoices, "bac.zoho.books_invoice.created"),
        [format!("books_invoice/{invoice_id}")],
        "{invoices:?}"
    );
    let mails = kafka::collect(&mail_topic, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].json()["after"]["to"], "ada@acmecorp.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn books_desk_and_people_sync_incrementally_and_find_deletions() {
    let fleet = zoho_fleet().await;
    let conn = fleet.connect_zoho("com", SCOPES, json!({})).await;
    let customer = admin(
        &fleet,
        Method::POST,
        "com",
        "apps/books_contacts",
        Some(json!({"records": [{"contact_name": "Acme Corp"}]})),
    )
    .await;
    let customer_id = customer["ids"][0].as_str().unwrap().to_string();
    let invoices = admin(
        &fleet,
        Method::POST,
        "com",
        "apps/books_invoices",
        Some(json!({"count": 250, "fields": {"customer_id": customer_id,
                    "line_items": [{"name": "Seeded", "rate": 10}]}})),
    )
    .await;
    assert_eq!(invoices["created"], 250);
    admin(
        &fleet,
        Method::POST,
        "com",
        "apps/desk_tickets",
        Some(json!({"count": 120})),
    )
    .await;
    admin(
        &fleet,
        Method::POST,
        "com",
        "apps/people_employees",
        Some(json!({"count": 230})),
    )
    .await;

    // Backfill: every record once, across the products' own paging.
    for (entity, n) in [
        ("books_invoice", 250),
        ("books_customer", 1),
        ("desk_ticket", 120),
        ("people_employee", 230),
    ] {
        let run = conformance::sync(&fleet, &conn, entity, "full").await;
        assert_eq!(run["status"], "succeeded", "{entity}: {run}");
        assert_eq!(conformance::counts(&run), (n, 0, 0), "{entity}: {run}");
    }
    let got = conformance::events(&fleet, "bac.zoho.books_invoice.v1", |r| r.len() >= 250).await;
    let distinct: std::collections::HashSet<&str> = got
        .iter()
        .map(|r| r.headers["ce_subject"].as_str())
        .collect();
    assert_eq!(distinct.len(), 250, "one event per invoice");
    assert_eq!(got.len(), 250, "no invoice twice");

    // Incremental: nothing changed, nothing emitted; a deleted invoice and a new one found.
    let run = conformance::sync(&fleet, &conn, "desk_ticket", "incremental").await;
    assert_eq!(conformance::counts(&run), (0, 0, 0), "{run}");
    let gone = invoices["ids"][0].as_str().unwrap().to_string();
    admin(
        &fleet,
        Method::DELETE,
        "com",
        &format!("apps/books_invoices/{gone}"),
        None,
    )
    .await;
    admin(
        &fleet,
        Method::POST,
        "com",
        "apps/books_invoices",
        Some(json!({"records": [{"customer_id": customer_id,
                    "line_items": [{"name": "Late", "rate": 99}]}]})),
    )
    .await;
    let run = conformance::sync(&fleet, &conn, "books_invoice", "incremental").await;
    assert_eq!(conformance::counts(&run), (1, 0, 1), "{run}");
    let (status, page) = fleet
        .call(
            Method::GET,
            "/api/v1/zoho/people/employees?from=200&limit=50",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["employees"].as_array().map(Vec::len),
        Some(30),
        "{page}"
    );
    assert_eq!(page["pagination"]["more_records"], false, "{page}");
}
