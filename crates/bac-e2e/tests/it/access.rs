//! Tenants, users, keys, grants and the access matrix, seen from the REST API.
use std::time::{Duration, Instant};

use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::{json, Value};

const INTEGRATIONS: [&str; 8] = [
    "email",
    "calendar",
    "tally",
    "payments",
    "zoho",
    "odoo",
    "google-workspace",
    "messaging",
];
const ACTIONS: [&str; 5] = [
    "view_status",
    "read_data",
    "write_data",
    "configure",
    "grant",
];

/// The access matrix of the integration-management document, written out cell by cell
/// (docs/access-control.md), independent of the gateway's own code.
fn expected(role: &str, integration: &str, action: &str) -> bool {
    match role {
        "super_admin" => !(integration == "payments" && action == "grant"),
        "admin" => action == "view_status" && integration != "payments",
        "user" => {
            action == "view_status" && matches!(integration, "email" | "calendar" | "messaging")
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn effective_permissions_follow_the_matrix() {
    let fleet = Fleet::start().await;
    for role in ["super_admin", "admin", "user"] {
        let (_, key) = fleet.user_with_key(role).await;
        let (status, body) = fleet
            .call_as(&key, Method::GET, "/api/v1/integrations/permissions", None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["role"], role);
        for integration in INTEGRATIONS {
            let entry = body["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["integration"] == integration)
                .unwrap_or_else(|| panic!("{integration} missing"));
            for action in ACTIONS {
                assert_eq!(
                    entry[action],
                    expected(role, integration, action),
                    "{role} {action} {integration}"
                );
            }
            // Granting is tried for real, for every role and integration.
            let (target, _) = fleet.user_with_key("user").await;
            let (status, b) = fleet
                .call_as(
                    &key,
                    Method::POST,
                    "/api/v1/integrations/permissions/grant",
                    Some(json!({"user_id": target, "integration": integration, "permission_type": "view"})),
                )
                .await;
            let want = if expected(role, integration, "grant") {
                201
            } else {
                403
            };
            assert_eq!(status, want, "{role} grant {integration}: {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_add_rights_and_cannot_be_passed_on() {
    let fleet = Fleet::start().await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let (user, user_key) = fleet.user_with_key("user").await;
    let (admin, admin_key) = fleet.user_with_key("admin").await;
    let leads = "/api/v1/odoo/crm/leads";
    let lead = json!({"name": "Granted lead"});

    // Without a grant a user reads no Odoo data.
    let (status, b) = fleet.call_as(&user_key, Method::GET, leads, None).await;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["details"]["error_code"], "PERMISSION_DENIED");

    let grant =
        |user: &str, p: &str| json!({"user_id": user, "integration": "odoo", "permission_type": p});
    let (status, g) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(grant(&user, "view")),
        )
        .await;
    assert_eq!(status, 201, "{g}");
    // Granting twice changes nothing.
    let (status, g2) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(grant(&user, "view")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(g2["id"], g["id"]);

    let (status, _) = fleet.call_as(&user_key, Method::GET, leads, None).await;
    assert_eq!(status, 200, "view grants data reads");
    let (status, _) = fleet
        .call_as(&user_key, Method::POST, leads, Some(lead.clone()))
        .await;
    assert_eq!(status, 403, "view does not grant writes");

    let (status, _) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(grant(&admin, "manage")),
        )
        .await;
    assert_eq!(status, 201);
    let (status, b) = fleet
        .call_as(&admin_key, Method::POST, leads, Some(lead.clone()))
        .await;
    assert_eq!(status, 201, "manage grants writes: {b}");
    // A grantee cannot grant onward.
    let (status, b) = fleet
        .call_as(
            &admin_key,
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(grant(&user, "manage")),
        )
        .await;
    assert_eq!(status, 403, "{b}");
    // Payments are never delegable, not even by a super admin.
    let (status, b) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": user, "integration": "payments", "permission_type": "view"})),
        )
        .await;
    assert_eq!(status, 403);
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("cannot be delegated"));

    // Revoking takes the right away.
    let (status, _) = fleet
        .call(
            Method::DELETE,
            "/api/v1/integrations/permissions/revoke",
            Some(grant(&user, "view")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = fleet.call_as(&user_key, Method::GET, leads, None).await;
    assert_eq!(status, 403);
    let (status, b) = fleet
        .call(
            Method::DELETE,
            "/api/v1/integrations/permissions/revoke",
            Some(grant(&user, "view")),
        )
        .await;
    assert_eq!(status, 404, "{b}");

    // Bad bodies.
    for body in [
        json!({"user_id": user, "integration": "sap", "permission_type": "view"}),
        json!({"user_id": user, "integration": "odoo", "permission_type": "own"}),
        json!({"user_id": user, "integration": "odoo"}),
    ] {
        let (status, b) = fleet
            .call(
                Method::POST,
                "/api/v1/integrations/permissions/grant",
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{b}");
    }
}

/// Calls `GET /api/v1/api-keys` with `key` until it answers `want` (a time the gateway decides
/// has passed); the last body.
async fn until_status(fleet: &Fleet, key: &str, want: u16) -> Value {
    let call = || fleet.call_as(key, Method::GET, "/api/v1/api-keys", None);
    let reached =
        bac_e2e::wait_until(Duration::from_secs(60), || async { call().await.0 == want }).await;
    // Expiry and revocation are for good: the state waited for stays.
    let (status, body) = call().await;
    assert!(reached && status == want, "still {status}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_expire_rotate_and_revoke() {
    let fleet = Fleet::start().await;
    let (_, key) = fleet.user_with_key("user").await;
    let (status, list) = fleet
        .call_as(&key, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, 200);
    let mine = &list["api_keys"][0];
    assert!(mine.get("key").is_none() && !list.to_string().contains("key_hash"));
    let id = mine["id"].as_str().unwrap().to_string();
    assert!(key.contains(mine["prefix"].as_str().unwrap()));

    // Rotation: the new key works at once, the old one until the overlap ends.
    let (status, rotated) = fleet
        .call_as(
            &key,
            Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
            Some(json!({"overlap_seconds": 4})),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_string();
    let (status, _) = fleet
        .call_as(&new_key, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = fleet
        .call_as(&key, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, 200, "old key works during the overlap");
    // ... and stops when it ends (polled: the end is the gateway's clock, not the test's).
    let b = until_status(&fleet, &key, 401).await;
    assert!(b["message"].as_str().unwrap().contains("expired"), "{b}");

    // Revocation.
    let new_id = rotated["id"].as_str().unwrap();
    let (status, _) = fleet
        .call_as(
            &new_key,
            Method::DELETE,
            &format!("/api/v1/api-keys/{new_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, b) = fleet
        .call_as(&new_key, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, 401);
    assert!(b["message"].as_str().unwrap().contains("revoked"));

    // A malformed rotation body is refused, not read as "use the default overlap".
    let (_, fresh) = fleet.user_with_key("user").await;
    let (_, mine) = fleet
        .call_as(&fresh, Method::GET, "/api/v1/api-keys", None)
        .await;
    let fresh_id = mine["api_keys"][0]["id"].as_str().unwrap().to_string();
    let rotate = format!("{}/api/v1/api-keys/{fresh_id}/rotate", fleet.api);
    let resp = fleet
        .http
        .post(&rotate)
        .bearer_auth(&fresh)
        .header("content-type", "application/json")
        .body(r#"{"overlap_seconds":"0"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Without a content type the body still counts: overlap 0 ends the old key at once.
    let resp = fleet
        .http
        .post(&rotate)
        .bearer_auth(&fresh)
        .body(r#"{"overlap_seconds":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (status, _) = fleet
        .call_as(&fresh, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(status, 401, "overlap 0 was honoured");

    // An expired key cannot be rotated into a new one.
    let (status, short) = fleet
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"expires_at": (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 201, "{short}");
    until_status(&fleet, short["key"].as_str().unwrap(), 401).await;
    let (status, b) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/api-keys/{}/rotate", short["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 409, "{b}");

    // A key that expires at a given time.
    let (status, b) = fleet
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"expires_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_stops_working_on_another_replica_before_its_cache_entry_expires() {
    let fleet = Fleet::start().await;
    let second = bac_gateway::run_with(
        fleet.infra.config(bac_runtime::ServiceKind::Gateway),
        bac_gateway::ServiceUrls::from_lookup(|_| None),
    )
    .await
    .unwrap();
    let replica2 = format!("http://{}", second.api_addr.unwrap());
    let (_, key) = fleet.user_with_key("admin").await;
    let on_replica2 = || async {
        fleet
            .http
            .get(format!("{replica2}/api/v1/api-keys"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Warm the second replica's cache.
    for _ in 0..3 {
        assert_eq!(on_replica2().await, 200);
    }
    let (_, list) = fleet
        .call_as(&key, Method::GET, "/api/v1/api-keys", None)
        .await;
    let id = list["api_keys"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = fleet
        .call_as(
            &key,
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The other replica hears of it (NOTIFY), long before its cached entry would expire on
    // its own (60 s): half that is the bound, far from what a loaded machine needs.
    let revoked_at = Instant::now();
    loop {
        if on_replica2().await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(30),
            "replica 2 still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("revocation reached replica 2 in {:?}", revoked_at.elapsed());
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_ids_are_not_found_and_never_listed() {
    let fleet = Fleet::start().await;
    // Tenant B, in the same fleet.
    let b_key = fleet.other_tenant_key().await;
    // Tenant A's things.
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let conn_id = conn["id"].as_str().unwrap();
    let (a_user, _) = fleet.user_with_key("user").await;
    let (status, grant) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": a_user, "integration": "odoo", "permission_type": "view"})),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (_, keys) = fleet.call(Method::GET, "/api/v1/api-keys", None).await;
    let a_key_id = keys["api_keys"][0]["id"].as_str().unwrap().to_string();

    // B sees none of it.
    let b = |m: Method, path: String, body: Option<Value>| {
        let key = b_key.clone();
        let f = &fleet;
        async move { f.call_as(&key, m, &path, body).await }
    };
    let (status, b_body) = b(
        Method::POST,
        format!("/api/v1/integrations/connections/{conn_id}/test"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{b_body}");
    let (status, _) = b(Method::DELETE, format!("/api/v1/api-keys/{a_key_id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = b(
        Method::POST,
        format!("/api/v1/api-keys/{a_key_id}/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = b(
        Method::PATCH,
        format!("/api/v1/users/{a_user}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = b(
        Method::POST,
        "/api/v1/integrations/permissions/grant".into(),
        Some(json!({"user_id": a_user, "integration": "odoo", "permission_type": "manage"})),
    )
    .await;
    assert_eq!(status, 404, "B cannot grant to A's user");
    let (status, _) = b(
        Method::DELETE,
        "/api/v1/integrations/permissions/revoke".into(),
        Some(json!({"user_id": a_user, "integration": "odoo", "permission_type": "view"})),
    )
    .await;
    assert_eq!(status, 404, "B cannot revoke A's grant");
    let (status, list) = b(Method::GET, "/api/v1/integrations/connections".into(), None).await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(conn_id));
    let (_, users) = b(Method::GET, "/api/v1/users".into(), None).await;
    assert!(!users.to_string().contains(&a_user));
    let (_, keys) = b(Method::GET, "/api/v1/api-keys".into(), None).await;
    assert!(!keys.to_string().contains(&a_key_id));
    let (_, audit) = b(
        Method::GET,
        "/api/v1/integrations/audit?limit=500".into(),
        None,
    )
    .await;
    assert!(!audit.to_string().contains(&a_user) && !audit.to_string().contains(conn_id));
    let (_, tenants) = b(Method::GET, "/api/v1/tenants".into(), None).await;
    assert!(!tenants.to_string().contains(&fleet.tenant));
    // Only platform operators create tenants.
    let (status, _) = b(
        Method::POST,
        "/api/v1/tenants".into(),
        Some(json!({"id": "x1", "name": "X"})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_is_audited_without_secrets() {
    let fleet = Fleet::start().await;
    let consumer = bac_e2e::kafka::consumer(&fleet.infra.brokers, "bac.integrations.audit.v1");
    let secret = "Audit-Me-Not-S3cret";
    let (status, _) = fleet.connect_odoo(None, secret).await;
    assert_eq!(status, 201);
    let (user, key) = fleet.user_with_key("user").await;
    fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": user, "integration": "zoho", "permission_type": "view"})),
        )
        .await;
    fleet
        .call(
            Method::DELETE,
            "/api/v1/integrations/permissions/revoke",
            Some(json!({"user_id": user, "integration": "zoho", "permission_type": "view"})),
        )
        .await;
    fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{user}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    let (_, list) = fleet
        .call_as(&key, Method::GET, "/api/v1/api-keys", None)
        .await;
    let key_id = list["api_keys"][0]["id"].as_str().unwrap().to_string();
    fleet
        .call_as(
            &key,
            Method::POST,
            &format!("/api/v1/api-keys/{key_id}/rotate"),
            None,
        )
        .await;
    fleet
        .call(Method::DELETE, &format!("/api/v1/api-keys/{key_id}"), None)
        .await;

    let (status, audit) = fleet
        .call(Method::GET, "/api/v1/integrations/audit?limit=100", None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "connection.created",
        "user.created",
        "api_key.created",
        "grant.created",
        "grant.revoked",
        "user.role_changed",
        "api_key.rotated",
        "api_key.revoked",
    ] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
    let first = &audit["entries"][0];
    assert!(first["actor"].as_str().unwrap().starts_with("user:"));
    assert!(first["source_ip"].is_string());
    assert!(!audit.to_string().contains(secret));
    // Filters and pagination.
    let (_, only) = fleet
        .call(
            Method::GET,
            "/api/v1/integrations/audit?action=grant.created",
            None,
        )
        .await;
    assert_eq!(only["entries"].as_array().unwrap().len(), 1);
    let (_, page) = fleet
        .call(Method::GET, "/api/v1/integrations/audit?limit=2", None)
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["next_offset"], 2);
    let (status, _) = fleet
        .call(Method::GET, "/api/v1/integrations/audit?limit=0", None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = fleet
        .call_as(
            &fleet_user_key(&fleet).await,
            Method::GET,
            "/api/v1/integrations/audit",
            None,
        )
        .await;
    assert_eq!(status, 403, "plain users do not read the audit trail");

    // The same changes as events, without secrets.
    let events = bac_e2e::kafka::collect(&consumer, Duration::from_secs(30), |r| {
        r.len() >= actions.len()
    })
    .await;
    assert!(
        events.len() >= actions.len(),
        "{} events for {} rows",
        events.len(),
        actions.len()
    );
    for e in &events {
        assert!(e.headers["ce_type"].starts_with("bac.integrations.audit."));
        assert!(!String::from_utf8_lossy(&e.payload).contains(secret));
    }
}

async fn fleet_user_key(fleet: &Fleet) -> String {
    fleet.user_with_key("user").await.1
}
