//! Odoo 19's External JSON-2 API: `POST /json/2/<model>/<method>` with a bearer
//! API key, named arguments, JSON results and HTTP error statuses; `/jsonrpc`
//! still served in 19; no JSON-2 before 19.

use serde_json::{json, Value};

use crate::support::{assert_json2_error, spawn, spawn_v19, API_KEY, BOB_KEY, DB};

#[tokio::test]
async fn crud_with_named_arguments() {
    let sb = spawn_v19().await;
    // create takes vals_list and always returns a list of ids
    let ids = sb
        .json2_ok(
            "crm.lead/create",
            json!({"vals_list": [
                {"name": "Website inquiry", "email_from": "a@example.com", "referred": "intent-1"},
                {"name": "Cold call", "priority": "2"},
            ]}),
        )
        .await;
    let ids: Vec<i64> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let one = sb
        .json2_ok("crm.lead/create", json!({"vals_list": {"name": "Single"}}))
        .await;
    assert!(one.as_array().unwrap()[0].is_i64());

    // search_read with domain, fields, order, limit, context
    let rows = sb
        .json2_ok(
            "crm.lead/search_read",
            json!({
                "domain": ["|", ["name", "ilike", "INQUIRY"], ["name", "=like", "Cold%"]],
                "fields": ["name", "priority"],
                "order": "id asc",
                "limit": 10,
                "context": {"lang": "en_US"},
            }),
        )
        .await;
    assert_eq!(
        rows,
        json!([
            {"id": ids[0], "name": "Website inquiry", "priority": "0"},
            {"id": ids[1], "name": "Cold call", "priority": "2"},
        ])
    );
    // read with ids; load=None gives raw many2one ids
    let rows = sb
        .json2_ok(
            "crm.lead/read",
            json!({"ids": [ids[0]], "fields": ["name", "stage_id", "write_date"]}),
        )
        .await;
    assert_eq!(rows[0]["stage_id"][1], "New");
    assert_eq!(rows[0]["write_date"].as_str().unwrap().len(), 19);
    let raw = sb
        .json2_ok(
            "crm.lead/read",
            json!({"ids": [ids[0]], "fields": ["stage_id"], "load": null}),
        )
        .await;
    assert_eq!(raw, json!([{"id": ids[0], "stage_id": 1}]));
    // search / search_count / write / unlink / exists
    let found = sb
        .json2_ok(
            "crm.lead/search",
            json!({"domain": [["referred", "=", "intent-1"]]}),
        )
        .await;
    assert_eq!(found, json!([ids[0]]));
    assert_eq!(
        sb.json2_ok("crm.lead/search_count", json!({"domain": []}))
            .await,
        3
    );
    assert_eq!(
        sb.json2_ok(
            "crm.lead/write",
            json!({"ids": ids, "vals": {"active": false}})
        )
        .await,
        true
    );
    assert_eq!(
        sb.json2_ok("crm.lead/search_count", json!({"domain": []}))
            .await,
        1
    );
    assert_eq!(
        sb.json2_ok(
            "crm.lead/search_count",
            json!({"domain": [], "context": {"active_test": false}})
        )
        .await,
        3
    );
    assert_eq!(
        sb.json2_ok("crm.lead/unlink", json!({"ids": [ids[1]]}))
            .await,
        true
    );
    assert_eq!(
        sb.json2_ok("crm.lead/exists", json!({"ids": ids})).await,
        json!([ids[0]])
    );
    // fields_get, name_search, has_access, the version-specific product fields
    let fields = sb
        .json2_ok(
            "product.product/fields_get",
            json!({"allfields": ["type", "is_storable"], "attributes": ["type"]}),
        )
        .await;
    assert_eq!(
        fields,
        json!({"type": {"type": "selection"}, "is_storable": {"type": "boolean"}})
    );
    let stages = sb
        .json2_ok("crm.stage/name_search", json!({"name": "Qual"}))
        .await;
    assert_eq!(stages, json!([[2, "Qualified"]]));
    assert_eq!(
        sb.json2_ok(
            "crm.lead/has_access",
            json!({"ids": [], "operation": "read"})
        )
        .await,
        true
    );
}

#[tokio::test]
async fn orders_and_invoices_over_json2() {
    let sb = spawn_v19().await;
    let partner = sb
        .json2_ok(
            "res.partner/create",
            json!({"vals_list": [{"name": "Acme"}]}),
        )
        .await[0]
        .clone();
    let product = sb
        .json2_ok(
            "product.product/create",
            json!({"vals_list": [{"name": "Gadget", "list_price": 20.0, "type": "consu", "is_storable": true}]}),
        )
        .await[0]
        .clone();
    let order = sb
        .json2_ok(
            "sale.order/create",
            json!({"vals_list": [{
                "partner_id": partner,
                "client_order_ref": "intent-9",
                "order_line": [[0, 0, {"product_id": product, "product_uom_qty": 3}]],
            }]}),
        )
        .await[0]
        .clone();
    assert_eq!(
        sb.json2_ok("sale.order/action_confirm", json!({"ids": [order]}))
            .await,
        true
    );
    let rec = sb
        .json2_ok(
            "sale.order/read",
            json!({"ids": [order], "fields": ["state", "amount_total", "client_order_ref"]}),
        )
        .await;
    assert_eq!(rec[0]["state"], "sale");
    assert_eq!(rec[0]["amount_total"], 60.0);
    let invoice = sb
        .json2_ok(
            "account.move/create",
            json!({"vals_list": [{
                "move_type": "out_invoice",
                "partner_id": partner,
                "invoice_line_ids": [[0, 0, {"product_id": product, "quantity": 2}]],
            }]}),
        )
        .await[0]
        .clone();
    assert_eq!(
        sb.json2_ok("account.move/action_post", json!({"ids": [invoice]}))
            .await,
        false
    );
    let posted = sb
        .json2_ok(
            "account.move/search_read",
            json!({"domain": [["state", "=", "posted"]], "fields": ["name", "amount_total"]}),
        )
        .await;
    // 2 x 20.0 and the product's default 15 % sale tax
    assert_eq!(posted[0]["amount_total"], 46.0);
    assert!(posted[0]["name"].as_str().unwrap().starts_with("INV/"));
    // a UserError is 422, with Odoo's serialized exception
    let (status, body) = sb
        .json2("account.move/action_post", json!({"ids": [invoice]}))
        .await;
    let body = assert_json2_error(status, &body, 422, "odoo.exceptions.UserError");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("is already posted"));
    assert_eq!(body["arguments"][0], body["message"]);
    // button_draft returns None: a JSON null
    assert_eq!(
        sb.json2_ok("account.move/button_draft", json!({"ids": [invoice]}))
            .await,
        Value::Null
    );
}

#[tokio::test]
async fn authentication_and_database() {
    let sb = spawn_v19().await;
    // no Authorization header
    let resp = sb
        .json2_raw("crm.lead/search", None, json!({"domain": []}))
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    let body = assert_json2_error(401, &body, 401, "werkzeug.exceptions.Unauthorized");
    assert_eq!(
        body["message"],
        "User not authenticated, use the \"Authorization\" header"
    );
    // a wrong key: the documented example
    let resp = sb
        .json2_raw("crm.lead/search", Some("nope"), json!({"domain": []}))
        .await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_json2_error(status, &body, 401, "werkzeug.exceptions.Unauthorized");
    assert_eq!(body["message"], "Invalid apikey");
    assert_eq!(body["arguments"], json!(["Invalid apikey", 401]));
    // the password is not an API key
    let resp = sb
        .json2_raw("crm.lead/search", Some("admin"), json!({"domain": []}))
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    // bob's key acts as bob: create_uid is bob
    let resp = sb
        .json2_raw(
            "crm.lead/create",
            Some(BOB_KEY),
            json!({"vals_list": [{"name": "By bob"}]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.json::<Value>().await.unwrap()[0].clone();
    let rec = sb
        .json2_ok(
            "crm.lead/read",
            json!({"ids": [id], "fields": ["create_uid", "user_id"]}),
        )
        .await;
    assert_eq!(rec[0]["create_uid"][0], 3);
    assert_eq!(rec[0]["user_id"][0], 3);
    // another database in X-Odoo-Database: no database is served, no such route
    let resp = sb
        .http
        .post(format!("{}/json/2/crm.lead/search", sb.base))
        .header("authorization", format!("bearer {API_KEY}"))
        .header("x-odoo-database", "other")
        .json(&json!({"domain": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // without X-Odoo-Database the only database is used
    let resp = sb
        .http
        .post(format!("{}/json/2/crm.lead/search_count", sb.base))
        .header("authorization", format!("Bearer {API_KEY}"))
        .json(&json!({"domain": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // /jsonrpc is still served in 19, and takes the API key in place of the password
    let v = sb.rpc("common", "version", json!([])).await;
    assert_eq!(v["result"]["server_version_info"][0], 19);
    let uid = sb
        .rpc("common", "authenticate", json!([DB, "admin", API_KEY, {}]))
        .await;
    assert_eq!(uid["result"], 2);
    let count = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, 2, API_KEY, "crm.lead", "search_count", [[]]]),
        )
        .await;
    assert_eq!(count["result"], 1);
    let denied = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, 2, BOB_KEY, "crm.lead", "search_count", [[]]]),
        )
        .await;
    assert_eq!(
        denied["error"]["data"]["name"],
        "odoo.exceptions.AccessDenied"
    );
}

#[tokio::test]
async fn argument_and_routing_errors() {
    let sb = spawn_v19().await;
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "crm.nope/search",
            json!({"domain": []}),
            404,
            "werkzeug.exceptions.NotFound",
            "the model 'crm.nope' does not exist",
        ),
        (
            "crm.lead/frobnicate",
            json!({}),
            404,
            "werkzeug.exceptions.NotFound",
            "The method 'crm.lead.frobnicate' does not exist",
        ),
        (
            "crm.lead/_read_group",
            json!({}),
            403,
            "odoo.exceptions.AccessError",
            "Private methods (such as 'crm.lead._read_group') cannot be called remotely.",
        ),
        (
            "crm.lead/search",
            json!({"ids": [1], "domain": []}),
            422,
            "werkzeug.exceptions.UnprocessableEntity",
            "cannot call crm.lead.search with ids",
        ),
        (
            "crm.lead/search",
            json!({"domain": [], "badparameter": 1}),
            422,
            "werkzeug.exceptions.UnprocessableEntity",
            "got an unexpected keyword argument 'badparameter'",
        ),
        (
            "crm.lead/search",
            json!({}),
            422,
            "werkzeug.exceptions.UnprocessableEntity",
            "missing a required argument: 'domain'",
        ),
        (
            "crm.lead/create",
            json!({"vals_list": [{"partner_name": "no name"}]}),
            422,
            "odoo.exceptions.ValidationError",
            "",
        ),
        (
            "crm.lead/write",
            json!({"ids": [4242], "vals": {"name": "x"}}),
            404,
            "odoo.exceptions.MissingError",
            "Record does not exist or has been deleted.\n(Record: crm.lead(4242,), User: 2)",
        ),
        (
            "crm.lead/search",
            json!({"domain": [["nope", "=", 1]]}),
            500,
            "builtins.ValueError",
            "Invalid field crm.lead.nope in leaf ('nope', '=', 1)",
        ),
    ];
    for (path, body, status, name, message) in cases {
        let (got, resp) = sb.json2(path, body).await;
        let resp = assert_json2_error(got, &resp, status, name);
        if !message.is_empty() {
            assert_eq!(resp["message"], message, "{path}");
        }
        if name.starts_with("werkzeug") {
            assert_eq!(resp["arguments"], json!([message, status]), "{path}");
        }
    }
    // not a JSON object
    let resp = sb
        .http
        .post(format!("{}/json/2/crm.lead/search", sb.base))
        .header("authorization", format!("bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        "could not parse the body, expecting a json object"
    );
    let resp = sb
        .http
        .post(format!("{}/json/2/crm.lead/search", sb.base))
        .header("authorization", format!("bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("could not parse the body as json"));
    // GET, or a path that is not <model>/<method>
    for (method, path) in [
        (reqwest::Method::GET, "/json/2/crm.lead/search"),
        (reqwest::Method::POST, "/json/2/crm.lead"),
        (reqwest::Method::POST, "/json/2"),
    ] {
        let resp = sb
            .http
            .request(method, format!("{}{path}", sb.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["message"],
            "Did you mean POST /json/2/<model>/<method>?"
        );
    }
}

#[tokio::test]
async fn no_json2_before_19() {
    let sb = spawn().await; // 17.0
    let resp = sb
        .json2_raw("crm.lead/search", Some(API_KEY), json!({"domain": []}))
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let resp = sb
        .http
        .post(format!("{}/json/2", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // the default API key works on /jsonrpc of a 17.0 sandbox too
    let uid = sb
        .rpc("common", "login", json!([DB, "admin", API_KEY]))
        .await;
    assert_eq!(uid["result"], 2);
}
