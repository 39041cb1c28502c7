//! Zoho Inventory: items in the organisation Books shares, with Books' answers and errors.
use axum::http::Method;
use serde_json::json;

use crate::{Sandbox, BOOKS_ORG};

fn at(path: &str, query: &str) -> String {
    format!("/eu/inventory/v1/{path}?organization_id={BOOKS_ORG}{query}")
}

#[tokio::test]
async fn items_are_created_listed_paged_and_read() {
    let s = Sandbox::new();
    let t = s.token("ZohoInventory.fullaccess.all").await;
    let orgs = s.get("/eu/inventory/v1/organizations", &t).await;
    assert_eq!(
        orgs.body["organizations"][0]["organization_id"], BOOKS_ORG,
        "{orgs:?}"
    );

    let a = s
        .post(
            &at("items", ""),
            &t,
            json!({"name": "Widget", "rate": 12.5, "sku": "W-1", "initial_stock": 40, "purchase_rate": 7}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["message"], "The item has been added.");
    let item = &a.body["item"];
    assert_eq!(
        (
            &item["unit"],
            &item["status"],
            &item["stock_on_hand"],
            &item["available_stock"]
        ),
        (&json!("pcs"), &json!("active"), &json!(40.0), &json!(40.0))
    );
    let id = item["item_id"].as_str().unwrap().to_string();
    let got = s.get(&at(&format!("items/{id}"), ""), &t).await;
    assert_eq!((got.status, &got.body["item"]["sku"]), (200, &json!("W-1")));

    let a = s
        .post(
            &at("items", ""),
            &t,
            json!({"name": "Other", "rate": 1, "sku": "W-1"}),
        )
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            400,
            json!({"code": 1001, "message": "Item \"W-1\" already exists."})
        )
    );

    let seeded = s
        .seed(
            "inventory_items",
            json!({"count": 4, "fields": {"rate": 3}}),
        )
        .await;
    assert_eq!(
        seeded.body["ids"].as_array().unwrap().len(),
        4,
        "{seeded:?}"
    );
    s.clock.advance(30);
    let since = s.clock.now();
    let late = s
        .post(&at("items", ""), &t, json!({"name": "Late", "rate": 2}))
        .await;
    assert_eq!(late.status, 201);

    let p1 = s.get(&at("items", "&per_page=3"), &t).await;
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(p1.body["page_context"]["has_more_page"], true);
    let p2 = s.get(&at("items", "&per_page=3&page=2"), &t).await;
    assert_eq!(p2.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(p2.body["page_context"]["has_more_page"], false);
    assert_eq!(p2.body["items"][2]["name"], "Late");

    let stamp = chrono::DateTime::from_timestamp(since, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let a = s
        .get(&at("items", &format!("&last_modified_time={stamp}")), &t)
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1, "{a:?}");
    assert_eq!(a.body["items"][0]["name"], "Late");
}

#[tokio::test]
async fn refusals_are_zoho_finance_s() {
    let s = Sandbox::new();
    // Books' full access is not Inventory's
    let books = s.token("ZohoBooks.fullaccess.all").await;
    let a = s.get(&at("items", ""), &books).await;
    assert_eq!((a.status, &a.body["code"]), (401, &json!(57)));

    let t = s
        .token("ZohoInventory.items.READ,ZohoInventory.items.CREATE")
        .await;
    let a = s.get("/eu/inventory/v1/items", &t).await;
    assert_eq!((a.status, &a.body["code"]), (400, &json!(2)));
    let a = s.get(&at("items/1234", ""), &t).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            404,
            json!({"code": 1002, "message": "Item does not exist."})
        )
    );
    let a = s
        .call(
            Method::POST,
            &at("items", ""),
            &t,
            &[],
            Some("[1, 2]".into()),
        )
        .await;
    assert_eq!((a.status, &a.body["code"]), (400, &json!(4)));
    for (body, field) in [
        (json!({"rate": 1}), "name"),
        (json!({"name": "A"}), "rate"),
        (json!({"name": "A", "rate": -2}), "rate"),
        (
            json!({"name": "A", "rate": 1, "initial_stock": "x"}),
            "initial_stock",
        ),
        (json!({"name": "A", "rate": 1, "sku": 5}), "sku"),
    ] {
        let a = s.post(&at("items", ""), &t, body.clone()).await;
        assert_eq!(
            (a.status, a.body.clone()),
            (
                400,
                json!({"code": 4, "message": format!("Invalid value passed for {field}")})
            ),
            "{body}"
        );
    }
    // items have no update route
    let a = s
        .call(Method::PUT, &at("items/1", ""), &t, &[], Some("{}".into()))
        .await;
    assert_eq!(a.status, 405);
}
