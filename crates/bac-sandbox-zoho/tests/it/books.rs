//! Zoho Books: contacts and invoices in the organisation, Zoho Finance's answers and errors.
use axum::http::Method;
use serde_json::json;

use crate::{Sandbox, BOOKS_ORG};

fn at(path: &str, query: &str) -> String {
    format!("/eu/books/v3/{path}?organization_id={BOOKS_ORG}{query}")
}

#[tokio::test]
async fn contacts_and_invoices_are_created_listed_read_and_updated() {
    let s = Sandbox::new();
    let t = s.token("ZohoBooks.fullaccess.all").await;
    let orgs = s.get("/eu/books/v3/organizations", &t).await;
    assert_eq!(orgs.status, 200, "{orgs:?}");
    assert_eq!(orgs.body["code"], 0);
    assert_eq!(orgs.body["organizations"][0]["organization_id"], BOOKS_ORG);
    assert_eq!(orgs.body["organizations"][0]["name"], "Sandbox Org");

    let a = s
        .post(
            &at("contacts", ""),
            &t,
            json!({"contact_name": "Ana Lima", "email": "ana@example.test", "company_name": "Lima Ltd"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["message"], "The contact has been added.");
    let contact = &a.body["contact"];
    assert_eq!(contact["contact_type"], "customer");
    assert_eq!(contact["status"], "active");
    assert_eq!(contact["outstanding_receivable_amount"], 0.0);
    let created = contact["created_time"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with("+0000"),
        "{created}"
    );
    let contact_id = contact["contact_id"].as_str().unwrap().to_string();
    let got = s.get(&at(&format!("contacts/{contact_id}"), ""), &t).await;
    assert_eq!(
        (got.status, &got.body["contact"]["email"]),
        (200, &json!("ana@example.test"))
    );

    let a = s
        .post(
            &at("invoices", ""),
            &t,
            json!({"customer_id": contact_id, "date": "2026-03-01", "reference_number": "PO-7",
                   "line_items": [{"name": "Hours", "rate": 80, "quantity": 2.5},
                                  {"name": "Setup", "rate": 50, "description": "once", "item_id": ""}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["message"], "The invoice has been created.");
    let invoice = &a.body["invoice"];
    assert_eq!(invoice["invoice_number"], "INV-000001");
    assert_eq!(invoice["customer_name"], "Ana Lima");
    assert_eq!(invoice["status"], "draft");
    assert_eq!(invoice["due_date"], "2026-03-01");
    assert_eq!(invoice["currency_code"], "USD");
    assert_eq!(
        (
            &invoice["sub_total"],
            &invoice["total"],
            &invoice["balance"]
        ),
        (&json!(250.0), &json!(250.0), &json!(250.0))
    );
    assert_eq!(invoice["line_items"][0]["item_total"], 200.0);
    assert_eq!(invoice["line_items"][1]["quantity"], 1.0);
    assert_eq!(invoice["line_items"][1]["item_id"], "");
    let invoice_id = invoice["invoice_id"].as_str().unwrap().to_string();

    let list = s
        .get(&at("invoices", &format!("&customer_id={contact_id}")), &t)
        .await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body["invoices"].as_array().unwrap().len(), 1);
    assert!(list.body["invoices"][0].get("line_items").is_none());
    assert_eq!(list.body["page_context"]["has_more_page"], false);
    let drafts = s.get(&at("invoices", "&status=sent"), &t).await;
    assert_eq!(drafts.body["invoices"], json!([]));

    s.clock.advance(60);
    let line_id = invoice["line_items"][0]["line_item_id"].clone();
    let a = s
        .call(
            Method::PUT,
            &at(&format!("invoices/{invoice_id}"), ""),
            &t,
            &[],
            Some(
                json!({"notes": "thanks", "status": "paid",
                       "line_items": [{"line_item_id": line_id, "name": "Hours", "rate": 80, "quantity": 1}]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["message"], "Invoice information has been updated.");
    let updated = &a.body["invoice"];
    assert_eq!(updated["notes"], "thanks");
    assert_eq!(updated["status"], "draft", "status is not writable");
    assert_eq!(updated["total"], 80.0);
    assert_eq!(updated["line_items"][0]["line_item_id"], line_id);
    assert_eq!(updated["reference_number"], "PO-7");
    assert_ne!(updated["last_modified_time"], updated["created_time"]);

    let got = s.get(&at(&format!("invoices/{invoice_id}"), ""), &t).await;
    assert_eq!(
        got.body["invoice"]["line_items"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn lists_page_sort_and_filter_by_modification_time() {
    let s = Sandbox::new();
    let t = s.token("ZohoBooks.contacts.READ").await;
    let seeded = s.seed("books_contacts", json!({"count": 5})).await;
    assert_eq!(seeded.body["created"], 5, "{seeded:?}");
    s.clock.advance(100);
    let later = s
        .seed(
            "books_contacts",
            json!({"records": [{"contact_name": "Vera", "contact_type": "vendor"},
                               {"contact_name": "Abel"}]}),
        )
        .await;
    assert_eq!(later.body["created"], 2, "{later:?}");

    let mut seen = Vec::new();
    for page in 1..=4 {
        let a = s
            .get(&at("contacts", &format!("&page={page}&per_page=2")), &t)
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        let ctx = &a.body["page_context"];
        assert_eq!((&ctx["page"], &ctx["per_page"]), (&json!(page), &json!(2)));
        assert_eq!(ctx["sort_column"], "created_time");
        assert_eq!(ctx["sort_order"], "A");
        assert_eq!(ctx["has_more_page"], page < 4, "page {page}");
        for c in a.body["contacts"].as_array().unwrap() {
            seen.push(c["contact_name"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0], "Seeded Contact 0");
    assert_eq!(seen[5..], ["Vera".to_string(), "Abel".to_string()]);

    // modified at or after the moment the last two were written, Books' own time format
    let since = later_time(&s, &t).await;
    let a = s
        .get(
            &at(
                "contacts",
                &format!("&sort_column=last_modified_time&last_modified_time={since}"),
            ),
            &t,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let names: Vec<&str> = a.body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contact_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // the same instant with a colon in the offset, percent-encoded as clients should
    let colon = since.replace("%2B0000", "%2B00:00");
    let a = s
        .get(&at("contacts", &format!("&last_modified_time={colon}")), &t)
        .await;
    assert_eq!(a.body["contacts"].as_array().unwrap().len(), 2, "{a:?}");

    let a = s
        .get(
            &at(
                "contacts",
                "&sort_column=contact_name&sort_order=D&per_page=1",
            ),
            &t,
        )
        .await;
    assert_eq!(a.body["contacts"][0]["contact_name"], "Vera");
    let a = s.get(&at("contacts", "&contact_type=vendor"), &t).await;
    assert_eq!(a.body["contacts"].as_array().unwrap().len(), 1);

    for (query, param) in [
        ("&per_page=201", "per_page"),
        ("&per_page=0", "per_page"),
        ("&page=0", "page"),
        ("&page=x", "page"),
        ("&sort_column=email", "sort_column"),
        ("&sort_order=up", "sort_order"),
        ("&last_modified_time=yesterday", "last_modified_time"),
        ("&contact_type=lead", "contact_type"),
    ] {
        let a = s.get(&at("contacts", query), &t).await;
        assert_eq!(a.status, 400, "{query}");
        assert_eq!(
            a.body,
            json!({"code": 2, "message": format!("Invalid value passed for {param}")}),
            "{query}"
        );
    }
}

/// The last-modified time of the older of the two newest contacts (they may straddle a
/// second of the wall clock), percent-encoded for a query.
async fn later_time(s: &Sandbox, t: &str) -> String {
    let a = s
        .get(
            &at(
                "contacts",
                "&sort_column=last_modified_time&sort_order=D&per_page=2",
            ),
            t,
        )
        .await;
    a.body["contacts"][1]["last_modified_time"]
        .as_str()
        .unwrap()
        .replace('+', "%2B")
}

#[tokio::test]
async fn refusals_have_zoho_finance_s_codes() {
    let s = Sandbox::new();
    let t = s
        .token("ZohoBooks.contacts.ALL,ZohoBooks.invoices.READ")
        .await;
    let a = s.get("/eu/books/v3/contacts", &t).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            400,
            json!({"code": 2, "message": "Invalid value passed for organization_id"})
        )
    );
    let a = s.get("/eu/books/v3/contacts?organization_id=abc", &t).await;
    assert_eq!((a.status, &a.body["code"]), (400, &json!(2)));
    // the US organisation is not the EU one
    let a = s
        .get("/eu/books/v3/contacts?organization_id=600010000101", &t)
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            400,
            json!({"code": 6024, "message": "You are not a member of this organization"})
        )
    );
    let unauthorised =
        json!({"code": 57, "message": "You are not authorized to perform this operation"});
    let a = s.get(&at("contacts", ""), "not-a-token").await;
    assert_eq!((a.status, &a.body), (401, &unauthorised));
    // invoices may be read, not created, with this grant; settings not at all
    let a = s.post(&at("invoices", ""), &t, json!({})).await;
    assert_eq!((a.status, &a.body), (401, &unauthorised));
    let a = s.get("/eu/books/v3/organizations", &t).await;
    assert_eq!(a.status, 401);

    let a = s.get(&at("invoices/4629000000999", ""), &t).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            404,
            json!({"code": 1002, "message": "Invoice does not exist."})
        )
    );
    let a = s.get(&at("contacts/1", ""), &t).await;
    assert_eq!(a.body["message"], "Contact does not exist.");
    // an id that does not decode is no record either; a garbled query names no organisation
    let a = s.get(&at("invoices/%FF%FE", ""), &t).await;
    assert_eq!((a.status, &a.body["code"]), (404, &json!(1002)));
    let a = s
        .get("/eu/books/v3/contacts?organization_id=%FF&&=&%", &t)
        .await;
    assert_eq!((a.status, &a.body["code"]), (400, &json!(2)));

    let a = s
        .call(
            Method::POST,
            &at("contacts", ""),
            &t,
            &[],
            Some("{\"contact_name\": ".into()),
        )
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            400,
            json!({"code": 4, "message": "Invalid value passed for JSONString"})
        )
    );
    for (body, field) in [
        (json!({}), "contact_name"),
        (json!({"contact_name": 7}), "contact_name"),
        (json!({"contact_name": "  "}), "contact_name"),
        (json!({"contact_name": "A", "email": "nope"}), "email"),
        (
            json!({"contact_name": "A", "contact_type": "lead"}),
            "contact_type",
        ),
    ] {
        let a = s.post(&at("contacts", ""), &t, body.clone()).await;
        assert_eq!(
            (a.status, a.body.clone()),
            (
                400,
                json!({"code": 4, "message": format!("Invalid value passed for {field}")})
            ),
            "{body}"
        );
    }

    let t = s.token("ZohoBooks.fullaccess.all").await;
    let contact = s
        .post(&at("contacts", ""), &t, json!({"contact_name": "Ana"}))
        .await;
    let customer = contact.body["contact"]["contact_id"].clone();
    for (body, field) in [
        (
            json!({"line_items": [{"name": "A", "rate": 1}]}),
            "customer_id",
        ),
        (
            json!({"customer_id": "123", "line_items": [{"name": "A", "rate": 1}]}),
            "customer_id",
        ),
        (json!({"customer_id": customer}), "line_items"),
        (
            json!({"customer_id": customer, "line_items": []}),
            "line_items",
        ),
        (
            json!({"customer_id": customer, "line_items": {"name": "A"}}),
            "line_items",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"rate": 1}]}),
            "name",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"name": "A"}]}),
            "rate",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"name": "A", "rate": -1}]}),
            "rate",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"name": "A", "rate": "1"}]}),
            "rate",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"name": "A", "rate": 1, "quantity": 0}]}),
            "quantity",
        ),
        (
            json!({"customer_id": customer, "line_items": [{"item_id": "99", "rate": 1}]}),
            "item_id",
        ),
        (
            json!({"customer_id": customer, "date": "01/03/2026", "line_items": [{"name": "A", "rate": 1}]}),
            "date",
        ),
    ] {
        let a = s.post(&at("invoices", ""), &t, body.clone()).await;
        assert_eq!(
            (a.status, a.body.clone()),
            (
                400,
                json!({"code": 4, "message": format!("Invalid value passed for {field}")})
            ),
            "{body}"
        );
    }
    let a = s
        .call(
            Method::PUT,
            &at("invoices/4629000000999", ""),
            &t,
            &[],
            Some("{}".into()),
        )
        .await;
    assert_eq!(a.status, 404);
    // refused invoices took no number
    let a = s
        .post(
            &at("invoices", ""),
            &t,
            json!({"customer_id": customer, "line_items": [{"name": "A", "rate": 1}]}),
        )
        .await;
    assert_eq!(a.body["invoice"]["invoice_number"], "INV-000001", "{a:?}");

    // admin: invoices need a live customer; deletion leaves the count
    let a = s
        .seed(
            "books_invoices",
            json!({"count": 2, "fields": {"customer_id": customer}}),
        )
        .await;
    assert_eq!(a.body["created"], 2, "{a:?}");
    let a = s.seed("books_invoices", json!({"count": 1})).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.body["error"]["code"], 4);
    let id = contact.body["contact"]["contact_id"].as_str().unwrap();
    let path = format!("/eu/_sandbox/zoho/apps/books_contacts/{id}");
    assert_eq!(s.send(Method::DELETE, &path, &[], None).await.status, 204);
    assert_eq!(s.send(Method::DELETE, &path, &[], None).await.status, 404);
    let count = s
        .send(
            Method::GET,
            "/eu/_sandbox/zoho/apps/books_invoices",
            &[],
            None,
        )
        .await;
    assert_eq!(count.body, json!({"count": 3}));
    let a = s.get(&at(&format!("contacts/{id}"), ""), &t).await;
    assert_eq!(a.status, 404);
}
