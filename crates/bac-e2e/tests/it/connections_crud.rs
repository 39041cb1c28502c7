//! Connections CRUD through the gateway: settings in bac-odoo, secrets in Vault (changed with
//! check-and-set, gone after delete), an audit row for every change and never a secret in it,
//! the access matrix on every route, and another tenant's ids answering 404.
use bac_e2e::{connect, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

const CONNECTIONS: &str = "/api/v1/integrations/connections";

async fn audit_rows(fleet: &Fleet, target: &str) -> Vec<(String, Value)> {
    let db = connect(&fleet.infra.database_url).await;
    db.query(
        "SELECT action, diff FROM gateway.audit_log WHERE tenant_id = $1 AND target_id = $2
         ORDER BY created_at, id",
        &[&fleet.tenant, &target],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_patch_delete_round_trip() {
    let first = "First-Secret-Passw0rd";
    let second = "Second-Secret-Passw0rd";
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        users: vec![("admin".into(), first.into())],
        ..Default::default()
    })
    .await;
    let mut bodies = Vec::new();
    let (status, created) = fleet.connect_odoo(None, first).await;
    assert_eq!(status, 201, "{created}");
    bodies.push(created.to_string());
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("{CONNECTIONS}/{id}");
    let vault_path = format!("bac/{}/odoo/{id}", fleet.tenant);
    assert_eq!(
        fleet.vault.read(&vault_path).await.unwrap()["password"],
        first
    );

    // GET: settings and which secret fields are set, never their values.
    let (status, got) = fleet.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{got}");
    bodies.push(got.to_string());
    assert_eq!(got["id"], id);
    assert_eq!(got["integration"], "odoo");
    assert_eq!(got["name"], "Odoo sandbox");
    assert_eq!(got["config"]["url"], fleet.sandbox_url);
    assert_eq!(got["config"]["database"], "demo");
    assert_eq!(got["credentials_set"], json!(["password"]));

    // The user the secret belongs to changes only with the secret (egress.rs has the rest).
    let (status, refused) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Renamed", "config": {"username": "integration"}})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    // PATCH name and one setting (merge patch): the rest stays.
    let (status, patched) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(
                json!({"name": "Renamed", "config": {"username": "integration"},
                        "credentials": {"password": first}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    bodies.push(patched.to_string());
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["config"]["username"], "integration");
    assert_eq!(patched["config"]["database"], "demo");
    let (_, list) = fleet.call(Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"][0]["name"], "Renamed", "{list}");
    // Back to the user that exists in the sandbox.
    let (status, _) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"config": {"username": "admin"}, "credentials": {"password": first}})),
        )
        .await;
    assert_eq!(status, 200);

    // PATCH credentials: the secret changes in Vault (a new version), the response shows names.
    let (status, patched) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"credentials": {"password": second}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    bodies.push(patched.to_string());
    assert_eq!(patched["credentials_set"], json!(["password"]));
    assert_eq!(
        fleet.vault.read(&vault_path).await.unwrap()["password"],
        second
    );
    // The sandbox still knows the first password: the new one is what bac-odoo now uses.
    let (status, t) = fleet
        .call(Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(status, 422, "{t}");
    assert_eq!(t["details"]["error_code"], "INVALID_CREDENTIALS");
    // Switch to an API key (the sandbox accepts the password as key): password is gone.
    let (status, patched) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"credentials": {"api_key": first}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["credentials_set"], json!(["api_key"]));
    let stored = fleet.vault.read(&vault_path).await.unwrap();
    assert_eq!(stored, json!({"api_key": first}));
    let (status, t) = fleet
        .call(Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(status, 200, "{t}");
    bodies.push(t.to_string());
    // The same credentials again change nothing (and audit nothing).
    let (status, _) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"credentials": {"api_key": first}})),
        )
        .await;
    assert_eq!(status, 200);

    // DELETE: 204, gone from the gateway, the service and Vault.
    let (status, b) = fleet.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{b}");
    assert!(fleet.vault.read(&vault_path).await.is_none());
    let (status, b) = fleet.call(Method::GET, &path, None).await;
    assert_eq!(status, 404, "{b}");
    let (status, _) = fleet.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let (_, list) = fleet.call(Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"], json!([]));
    let db = connect(&fleet.infra.database_url).await;
    let left: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM odoo.connections WHERE id = $1)
                  + (SELECT count(*) FROM gateway.connections WHERE id = $1)",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    // One audit row per change, in order, with field names and never a secret.
    let rows = audit_rows(&fleet, &id).await;
    let actions: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "connection.created",
            "connection.updated",
            "connection.updated",
            "credentials.updated",
            "credentials.updated",
            "connection.deleted",
        ],
        "{rows:?}"
    );
    assert_eq!(rows[0].1["credentials_set"], json!(["password"]));
    assert_eq!(
        rows[1].1["name"],
        json!({"from": "Odoo sandbox", "to": "Renamed"})
    );
    assert_eq!(rows[1].1["config"]["username"]["to"], "integration");
    assert_eq!(rows[3].1["changed_fields"], json!(["password"]));
    assert_eq!(rows[4].1["changed_fields"], json!(["api_key", "password"]));
    assert_eq!(rows[5].1["name"], "Renamed");
    let all = db
        .query_one(
            "SELECT coalesce(string_agg(to_jsonb(a)::text, ''), '') FROM gateway.audit_log a",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    let outbox = db
        .query_one(
            "SELECT coalesce(string_agg(convert_from(payload, 'UTF8'), ''), '') FROM gateway.outbox",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    assert!(
        outbox.contains("connection.deleted"),
        "audit events in the outbox"
    );
    for secret in [first, second] {
        assert!(!all.contains(secret), "audit_log holds a secret");
        assert!(!outbox.contains(secret), "an audit event holds a secret");
        for b in &bodies {
            assert!(!b.contains(secret), "a response holds a secret: {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_connection_is_not_found() {
    let fleet = Fleet::start().await;
    let (status, created) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
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
    let path = format!("{CONNECTIONS}/{id}");
    let calls = [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "Mine now"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/test"), None),
    ];
    for (method, p, body) in calls {
        let (status, b) = fleet.call_as(&other, method.clone(), &p, body).await;
        assert_eq!(status, 404, "{method} {p}: {b}");
        assert_eq!(b["details"]["error_code"], "NOT_FOUND");
    }
    let (status, list) = fleet.call_as(&other, Method::GET, CONNECTIONS, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["connections"], json!([]));
    // Untouched for its owner.
    let (status, got) = fleet.call(Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["name"], "Odoo sandbox");
    assert_eq!(audit_rows(&fleet, id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_matrix_guards_connections_and_odoo_data() {
    let fleet = Fleet::start().await;
    let (status, created) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    let path = format!("{CONNECTIONS}/{id}");
    let (_, admin) = fleet.user_with_key("admin").await;
    let (user_id, user) = fleet.user_with_key("user").await;

    // An admin sees Odoo's status (and so its connections) but configures nothing.
    let (status, b) = fleet.call_as(&admin, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{b}");
    let (_, list) = fleet.call_as(&admin, Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);
    for (method, p, body) in [
        (Method::PATCH, path.clone(), Some(json!({"name": "x"}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/test"), None),
        (
            Method::POST,
            CONNECTIONS.to_string(),
            Some(json!({"integration": "odoo", "config": {}, "credentials": {}})),
        ),
    ] {
        let (status, b) = fleet.call_as(&admin, method.clone(), &p, body).await;
        assert_eq!(status, 403, "admin {method} {p}: {b}");
        assert_eq!(b["details"]["error_code"], "PERMISSION_DENIED");
    }
    // Odoo data needs a grant for both.
    for key in [&admin, &user] {
        let (status, b) = fleet
            .call_as(key, Method::GET, "/api/v1/odoo/crm/leads", None)
            .await;
        assert_eq!(status, 403, "{b}");
        let (status, b) = fleet
            .call_as(
                key,
                Method::POST,
                "/api/v1/odoo/crm/leads",
                Some(json!({"name": "Denied"})),
            )
            .await;
        assert_eq!(status, 403, "{b}");
    }
    // A user sees no Odoo connection at all.
    let (status, _) = fleet.call_as(&user, Method::GET, &path, None).await;
    assert_eq!(status, 403);
    let (_, list) = fleet.call_as(&user, Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"], json!([]));

    // A view grant lets the user read Odoo data (and see the connection), not write it.
    let (status, b) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": user_id, "integration": "odoo", "permission_type": "view"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{b}");
    let (status, b) = fleet
        .call_as(&user, Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(status, 200, "{b}");
    let (status, _) = fleet.call_as(&user, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let (status, _) = fleet
        .call_as(
            &user,
            Method::POST,
            "/api/v1/odoo/crm/leads",
            Some(json!({"name": "Still denied"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = fleet
        .call_as(&user, Method::PATCH, &path, Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 403);
}
