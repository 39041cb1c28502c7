//! `/jsonrpc`: the `common`, `db` and `object` services.

use serde_json::{json, Value};

use crate::support::{assert_odoo_error, spawn, ADMIN_UID, DB};

#[tokio::test]
async fn version_and_db_list() {
    let sb = spawn().await;
    let v = sb.rpc("common", "version", json!([])).await;
    assert_eq!(
        v["result"],
        json!({
            "server_version": "17.0",
            "server_version_info": [17, 0, 0, "final", 0, ""],
            "server_serie": "17.0",
            "protocol_version": 1
        })
    );
    assert_eq!(sb.rpc("db", "list", json!([])).await["result"], json!([DB]));
    let get: Value = sb
        .http
        .get(format!("{}/web/webclient/version_info", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["result"]["server_version"], "17.0");
    let post = sb.call("/web/webclient/version_info", json!({})).await;
    assert_eq!(post["result"], v["result"]);
    let health: Value = sb
        .http
        .get(format!("{}/healthz", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
}

#[tokio::test]
async fn authenticate_and_login() {
    let sb = spawn().await;
    let ok = sb
        .rpc("common", "authenticate", json!([DB, "admin", "admin", {}]))
        .await;
    assert_eq!(ok["result"], ADMIN_UID);
    let bob = sb
        .rpc(
            "common",
            "login",
            json!([DB, "bob@example.com", "bob-api-key"]),
        )
        .await;
    assert_eq!(bob["result"], 3);
    // login answers false on bad credentials...
    let bad = sb
        .rpc("common", "login", json!([DB, "admin", "nope"]))
        .await;
    assert_eq!(bad["result"], false);
    let bad = sb
        .rpc("common", "login", json!([DB, "nobody", "admin"]))
        .await;
    assert_eq!(bad["result"], false);
    // ...and so does authenticate (Odoo's exp_authenticate catches AccessDenied)
    let bad = sb
        .rpc("common", "authenticate", json!([DB, "admin", "nope", {}]))
        .await;
    assert_eq!(bad["result"], false, "{bad}");
    assert!(bad.get("error").is_none(), "{bad}");
    // unknown database
    let resp = sb
        .rpc(
            "common",
            "authenticate",
            json!(["nope", "admin", "admin", {}]),
        )
        .await;
    let data = assert_odoo_error(&resp["error"], "psycopg2.OperationalError");
    assert!(data["message"]
        .as_str()
        .unwrap()
        .contains("database \"nope\" does not exist"));
    // bad arity is a TypeError
    let resp = sb.rpc("common", "login", json!([DB, "admin"])).await;
    let data = assert_odoo_error(&resp["error"], "builtins.TypeError");
    assert_eq!(
        data["message"],
        "exp_login() missing 1 required positional argument: 'password'"
    );
}

#[tokio::test]
async fn access_denied_shape() {
    let sb = spawn().await;
    let resp = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, ADMIN_UID, "wrong", "crm.lead", "search", [[]]]),
        )
        .await;
    let error = &resp["error"];
    assert_eq!(error["code"], 200);
    assert_eq!(error["message"], "Odoo Server Error");
    assert_eq!(error["data"]["name"], "odoo.exceptions.AccessDenied");
    assert_eq!(error["data"]["message"], "Access Denied");
    assert_eq!(error["data"]["arguments"], json!(["Access Denied"]));
    assert_eq!(error["data"]["context"], json!({}));
    assert!(error["data"]["debug"]
        .as_str()
        .unwrap()
        .starts_with("Traceback (most recent call last):"));
    assert!(resp.get("result").is_none());
    // a uid that does not match the password is denied too
    let resp = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, 3, "admin", "crm.lead", "search", [[]]]),
        )
        .await;
    assert_odoo_error(&resp["error"], "odoo.exceptions.AccessDenied");
    let resp = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, false, "admin", "crm.lead", "search", [[]]]),
        )
        .await;
    assert_odoo_error(&resp["error"], "odoo.exceptions.AccessDenied");
}

#[tokio::test]
async fn create_search_read_count() {
    let sb = spawn().await;
    let a = sb
        .ok(
            "crm.lead",
            "create",
            json!([{"name": "Acme website", "email_from": "JANE@acme.example", "expected_revenue": 500, "priority": "1"}]),
            json!({}),
        )
        .await;
    assert!(a.is_i64());
    // Odoo 17 create() also takes a list of dicts and returns a list of ids
    let more = sb
        .ok(
            "crm.lead",
            "create",
            json!([[{"name": "Globex renewal", "partner_name": "Globex"}, {"name": "Initech", "phone": "+1 555"}]]),
            json!({}),
        )
        .await;
    let more: Vec<i64> = serde_json::from_value(more).unwrap();
    assert_eq!(more.len(), 2);

    let rows = sb
        .ok(
            "crm.lead",
            "search_read",
            json!([["|", ["email_from", "ilike", "jane@ACME"], ["partner_name", "ilike", "glob"]]]),
            json!({"fields": ["name", "email_from", "partner_name", "phone", "expected_revenue"], "order": "id asc"}),
        )
        .await;
    assert_eq!(
        rows,
        json!([
            {"id": a, "name": "Acme website", "email_from": "JANE@acme.example", "partner_name": false, "phone": false, "expected_revenue": 500.0},
            {"id": more[0], "name": "Globex renewal", "email_from": false, "partner_name": "Globex", "phone": false, "expected_revenue": 0.0},
        ])
    );
    // domain passed as kwarg, limit/offset, default order "priority desc, id desc"
    let rows = sb
        .ok(
            "crm.lead",
            "search_read",
            json!([]),
            json!({"domain": [], "fields": ["name"]}),
        )
        .await;
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Acme website", "Initech", "Globex renewal"]);
    let ids = sb
        .ok(
            "crm.lead",
            "search",
            json!([[]]),
            json!({"offset": 1, "limit": 1, "order": "id desc"}),
        )
        .await;
    assert_eq!(ids, json!([more[0]]));
    let count = sb
        .ok(
            "crm.lead",
            "search_count",
            json!([[["name", "ilike", "e"]]]),
            json!({}),
        )
        .await;
    assert_eq!(count, 3);
    let count = sb
        .ok(
            "crm.lead",
            "search_count",
            json!([["!", ["phone", "=", false]]]),
            json!({}),
        )
        .await;
    assert_eq!(count, 1);

    // read: full record with Odoo's many2one pairs and false for empty fields
    let rec = &sb.ok("crm.lead", "read", json!([[a]]), json!({})).await[0];
    assert_eq!(rec["id"], a);
    assert_eq!(rec["stage_id"], json!([1, "New"]));
    assert_eq!(rec["user_id"], json!([ADMIN_UID, "Administrator"]));
    assert_eq!(rec["type"], "lead");
    assert_eq!(rec["active"], true);
    assert_eq!(rec["description"], false);
    let created = rec["create_date"].as_str().unwrap();
    assert_eq!(created.len(), 19);
    assert_eq!(&created[10..11], " ");
    // fields limit the output; id is always there
    let rec = sb
        .ok("crm.lead", "read", json!([[a], ["priority"]]), json!({}))
        .await;
    assert_eq!(rec, json!([{"id": a, "priority": "1"}]));
}

#[tokio::test]
async fn write_updates_write_date_and_unlink() {
    let sb = spawn().await;
    // A record last written in the past (Odoo's timestamps have a one-second resolution: a
    // write in the same second as the create would not move it).
    let (status, seeded) = sb
        .seed(json!({"model": "crm.lead", "count": 1,
                     "values": {"name": "To update"}, "write_date": "2024-01-02 03:04:05"}))
        .await;
    assert_eq!(status, 200, "{seeded}");
    let id = sb
        .ok(
            "crm.lead",
            "search",
            json!([[["name", "=", "To update"]]]),
            json!({}),
        )
        .await[0]
        .clone();
    let before = sb
        .ok(
            "crm.lead",
            "read",
            json!([[id], ["write_date", "create_date"]]),
            json!({}),
        )
        .await;
    assert_eq!(before[0]["write_date"], "2024-01-02 03:04:05");
    let ok = sb
        .ok(
            "crm.lead",
            "write",
            json!([[id], {"priority": "3", "phone": "+33 1"}]),
            json!({}),
        )
        .await;
    assert_eq!(ok, true);
    let after = sb
        .ok(
            "crm.lead",
            "read",
            json!([[id], ["write_date", "create_date", "priority", "phone"]]),
            json!({}),
        )
        .await;
    assert_eq!(after[0]["priority"], "3");
    assert_eq!(after[0]["phone"], "+33 1");
    assert_eq!(after[0]["create_date"], before[0]["create_date"]);
    assert!(after[0]["write_date"].as_str().unwrap() > before[0]["write_date"].as_str().unwrap());

    // write on a missing record
    let err = sb
        .err(
            "crm.lead",
            "write",
            json!([[id, 999], {"name": "x"}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.MissingError");
    assert!(data["message"]
        .as_str()
        .unwrap()
        .starts_with("Record does not exist or has been deleted."));

    assert_eq!(
        sb.ok("crm.lead", "unlink", json!([[id]]), json!({})).await,
        true
    );
    assert_eq!(
        sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
            .await,
        0
    );
    // Odoo 17 read() leaves out records that no longer exist
    assert_eq!(
        sb.ok("crm.lead", "read", json!([[id]]), json!({})).await,
        json!([])
    );
}

#[tokio::test]
async fn validation_and_value_errors() {
    let sb = spawn().await;
    let err = sb
        .err(
            "crm.lead",
            "create",
            json!([{"partner_name": "No name"}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "odoo.exceptions.ValidationError");
    let msg = data["message"].as_str().unwrap();
    assert!(msg.contains("a mandatory field is not set"), "{msg}");
    assert!(
        msg.contains("(crm.lead), Field: Opportunity (name)"),
        "{msg}"
    );
    let err = sb
        .err("crm.lead", "create", json!([{"name": ""}]), json!({}))
        .await;
    assert_odoo_error(&err, "odoo.exceptions.ValidationError");

    let err = sb
        .err(
            "crm.lead",
            "create",
            json!([{"name": "x", "x": 1}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "builtins.ValueError");
    assert_eq!(data["message"], "Invalid field 'x' on model 'crm.lead'");

    let err = sb
        .err(
            "crm.lead",
            "create",
            json!([{"name": "x", "priority": "7"}]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "builtins.ValueError");
    assert_eq!(data["message"], "Wrong value for crm.lead.priority: '7'");

    let err = sb
        .err(
            "crm.lead",
            "search",
            json!([["|", ["name", "=", "x"]]]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "builtins.ValueError");
    assert_eq!(
        data["message"],
        "Domain ['|', ['name', '=', 'x']] is syntactically not correct."
    );
    let err = sb
        .err(
            "crm.lead",
            "search",
            json!([[["name", "~", "x"]]]),
            json!({}),
        )
        .await;
    assert_odoo_error(&err, "builtins.ValueError");
    let err = sb
        .err(
            "crm.lead",
            "search",
            json!([[["nope", "=", "x"]]]),
            json!({}),
        )
        .await;
    let data = assert_odoo_error(&err, "builtins.ValueError");
    assert_eq!(
        data["message"],
        "Invalid field crm.lead.nope in leaf ('nope', '=', 'x')"
    );

    let err = sb.err("crm.lead", "search", json!([]), json!({})).await;
    let data = assert_odoo_error(&err, "builtins.TypeError");
    assert_eq!(
        data["message"],
        "search() missing 1 required positional argument: 'domain'"
    );
    let err = sb
        .err("crm.lead", "search", json!([[]]), json!({"count": true}))
        .await;
    assert_odoo_error(&err, "builtins.TypeError");
    let err = sb.err("crm.lead", "frobnicate", json!([]), json!({})).await;
    assert_odoo_error(&err, "builtins.AttributeError");
    let err = sb.err("crm.lead", "_read", json!([]), json!({})).await;
    assert_odoo_error(&err, "odoo.exceptions.AccessError");
}

#[tokio::test]
async fn unknown_model() {
    let sb = spawn().await;
    // execute_kw (odoo.service.model.execute_cr) reports unknown models as a UserError
    let err = sb.err("crm.foo", "search", json!([[]]), json!({})).await;
    let data = assert_odoo_error(&err, "odoo.exceptions.UserError");
    assert_eq!(data["message"], "Object crm.foo doesn't exist");
    // unknown service: KeyError from dispatch_rpc's service table
    let resp = sb.rpc("nope", "x", json!([])).await;
    let data = assert_odoo_error(&resp["error"], "builtins.KeyError");
    assert_eq!(data["message"], "'nope'");
    assert_eq!(data["arguments"], json!(["nope"]));
}

/// Odoo's JsonRPCDispatcher (17, 18, 19) refuses a body that is not a JSON object with a bare
/// HTTP 400 (`abort(Response("Invalid JSON data", status=400))`), never checks `jsonrpc`,
/// and fails non-object params in `dict(params)` as an ordinary server error (code 200).
#[tokio::test]
async fn malformed_requests_are_refused_as_odoo_does() {
    let sb = spawn().await;
    let (status, ctype, text) = sb.post_text("/jsonrpc", "{not json".into()).await;
    assert_eq!((status, text.as_str()), (400, "Invalid JSON data"));
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let (status, _, text) = sb.post_text("/jsonrpc", "[1, 2]".into()).await;
    assert_eq!((status, text.as_str()), (400, "Invalid JSON-RPC data"));
    let (status, _, text) = sb
        .post_text("/web/session/authenticate", "null".into())
        .await;
    assert_eq!((status, text.as_str()), (400, "Invalid JSON-RPC data"));
    let (status, resp) = sb
        .post_raw(
            "/jsonrpc",
            json!({"jsonrpc": "2.0", "method": "call", "params": [1], "id": 5}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(resp["error"]["code"], 200);
    assert_eq!(resp["id"], 5);
    let data = assert_odoo_error(&resp["error"], "builtins.TypeError");
    assert_eq!(
        data["message"],
        "cannot convert dictionary update sequence element #0 to a sequence"
    );
    let (_, resp) = sb
        .post_raw(
            "/jsonrpc",
            json!({"jsonrpc": "2.0", "method": "call", "params": null, "id": 7}).to_string(),
        )
        .await;
    let data = assert_odoo_error(&resp["error"], "builtins.TypeError");
    assert_eq!(data["message"], "'NoneType' object is not iterable");
    // no check of the `jsonrpc` member: a "1.0" call is served like any other
    let (status, resp) = sb
        .post_raw(
            "/jsonrpc",
            json!({"jsonrpc": "1.0", "method": "call", "id": 8,
                   "params": {"service": "db", "method": "server_version", "args": []}})
            .to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(resp["result"].is_string(), "{resp}");
    let (_, resp) = sb
        .post_raw(
            "/jsonrpc",
            json!({"jsonrpc": "2.0", "method": "call", "params": {"service": "common"}, "id": 6})
                .to_string(),
        )
        .await;
    assert_odoo_error(&resp["error"], "builtins.TypeError");
    // execute_kw with non-list args
    let resp = sb
        .rpc(
            "object",
            "execute_kw",
            json!([DB, ADMIN_UID, "admin", "crm.lead", "search", 5]),
        )
        .await;
    assert_odoo_error(&resp["error"], "builtins.TypeError");
    let resp = sb.rpc("object", "execute_kw", json!([DB])).await;
    assert_odoo_error(&resp["error"], "builtins.IndexError");
}

#[tokio::test]
async fn execute_and_metadata_used_by_odoorpc() {
    let sb = spawn().await;
    let ctx = sb
        .rpc(
            "object",
            "execute",
            json!([DB, ADMIN_UID, "admin", "res.users", "context_get"]),
        )
        .await;
    assert_eq!(
        ctx["result"],
        json!({"lang": "en_US", "tz": "UTC", "uid": ADMIN_UID})
    );
    let fields = sb
        .rpc(
            "object",
            "execute",
            json!([DB, ADMIN_UID, "admin", "crm.lead", "fields_get"]),
        )
        .await;
    let fields = &fields["result"];
    assert_eq!(fields["name"]["type"], "char");
    assert_eq!(fields["name"]["required"], true);
    assert_eq!(fields["stage_id"]["relation"], "crm.stage");
    assert_eq!(fields["priority"]["selection"][0], json!(["0", "Low"]));
    let models = sb
        .rpc(
            "object",
            "execute",
            json!([
                DB,
                ADMIN_UID,
                "admin",
                "ir.model",
                "search",
                [["model", "=", "crm.lead"]]
            ]),
        )
        .await;
    assert_eq!(models["result"].as_array().unwrap().len(), 1);
    let stages = sb
        .ok(
            "crm.stage",
            "search_read",
            json!([[]]),
            json!({"fields": ["name"]}),
        )
        .await;
    let names: Vec<&str> = stages
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["New", "Qualified", "Proposition", "Won"]);
    // many2one by name and dotted path
    let won = sb
        .ok(
            "crm.lead",
            "create",
            json!([{"name": "Big deal", "stage_id": 4}]),
            json!({}),
        )
        .await;
    let ids = sb
        .ok(
            "crm.lead",
            "search",
            json!([[["stage_id", "=", "Won"]]]),
            json!({}),
        )
        .await;
    assert_eq!(ids, json!([won]));
    let ids = sb
        .ok(
            "crm.lead",
            "search",
            json!([[["stage_id.is_won", "=", true]]]),
            json!({}),
        )
        .await;
    assert_eq!(ids, json!([won]));
}

#[tokio::test]
async fn archived_records_and_admin_helpers() {
    let sb = spawn().await;
    let seeded: Value = sb
        .http
        .post(format!("{}/_sandbox/odoo/seed", sb.base))
        .json(&json!({"model": "crm.lead", "count": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["created"], 5);
    let id = seeded["ids"][0].clone();
    sb.ok(
        "crm.lead",
        "write",
        json!([[id], {"active": false}]),
        json!({}),
    )
    .await;
    assert_eq!(
        sb.ok("crm.lead", "search_count", json!([[]]), json!({}))
            .await,
        4
    );
    assert_eq!(
        sb.ok(
            "crm.lead",
            "search_count",
            json!([[["active", "=", false]]]),
            json!({})
        )
        .await,
        1
    );
    assert_eq!(
        sb.ok(
            "crm.lead",
            "search_count",
            json!([[]]),
            json!({"context": {"active_test": false}})
        )
        .await,
        5
    );
    let all: Value = sb
        .http
        .get(format!("{}/_sandbox/odoo/records/crm.lead", sb.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["name"], "Seed lead 1");
    assert_eq!(all[4]["name"], "Seed lead 5");
    let missing = sb
        .http
        .get(format!("{}/_sandbox/odoo/records/crm.nope", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// A JSON-RPC request to a path Odoo does not serve gets werkzeug's HTML 404 page, as from
/// Odoo, not a JSON-RPC error.
#[tokio::test]
async fn an_unknown_route_answers_the_html_404() {
    let sb = crate::support::spawn().await;
    let resp = sb
        .http
        .post(format!("{}/odoo/jsonrpc", sb.base))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<title>404 Not Found</title>"));
}
