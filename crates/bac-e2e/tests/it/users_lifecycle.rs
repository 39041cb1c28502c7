//! A user can be deactivated (their keys stop at once, on every replica, also where a key was
//! cached), reactivated, and deleted with their keys and grants; every step is audited, and a
//! super admin cannot lock themselves out.
use std::time::Duration;

use bac_e2e::{connect, wait_until, Fleet};
use bac_runtime::ServiceKind;
use futures::FutureExt;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_stops_a_users_keys_on_every_replica_and_deletion_is_audited() {
    let fleet = Fleet::start().await;
    let (user, key) = fleet.user_with_key("admin").await;
    // A second gateway replica on the same database caches the key.
    let other = bac_gateway::run_with(
        fleet.infra.config(ServiceKind::Gateway),
        bac_gateway::ServiceUrls::from_lookup(|_| None),
    )
    .await
    .unwrap();
    let other_api = format!("http://{}", other.api_addr.unwrap());
    let status_on = |api: String, key: String| {
        let http = fleet.http.clone();
        async move {
            http.get(format!("{api}/api/v1/integrations/connections"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status_on(other_api.clone(), key.clone()).await, 200);
    assert_eq!(status_on(fleet.api.clone(), key.clone()).await, 200);

    let path = format!("/api/v1/users/{user}");
    let (status, body) = fleet
        .call(Method::PATCH, &path, Some(json!({"active": false})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    let (status, body) = fleet
        .call_as(&key, Method::GET, "/api/v1/users", None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("deactivated"),
        "{body}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || status_on(
            other_api.clone(),
            key.clone()
        )
        .then(|s| async move { s == 401 }))
        .await,
        "the other replica still let the deactivated user's key in"
    );
    // Back again.
    let (status, body) = fleet
        .call(Method::PATCH, &path, Some(json!({"active": true})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_on(fleet.api.clone(), key.clone()).await, 200);

    // Nobody locks themselves out.
    let (_, me) = fleet.call(Method::GET, "/api/v1/users", None).await;
    let me = me["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "admin@test.local")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, body) in [
        (Method::PATCH, Some(json!({"active": false}))),
        (Method::DELETE, None),
    ] {
        let (status, b) = fleet
            .call(method, &format!("/api/v1/users/{me}"), body)
            .await;
        assert_eq!(status, 400, "{b}");
    }

    // Deleted: gone from the list, the key refused, a second delete 404.
    let (status, b) = fleet.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{b}");
    assert_eq!(status_on(fleet.api.clone(), key.clone()).await, 401);
    let (_, list) = fleet.call(Method::GET, "/api/v1/users", None).await;
    assert!(
        !list["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == user.as_str()),
        "{list}"
    );
    let (status, _) = fleet.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let db = connect(&fleet.infra.database_url).await;
    let actions: Vec<String> = db
        .query(
            "SELECT action FROM gateway.audit_log WHERE tenant_id = $1 AND target_id = $2
             ORDER BY created_at, id",
            &[&fleet.tenant, &user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "user.created",
            "user.deactivated",
            "user.activated",
            "user.deleted"
        ]
    );
    other.stop().await.unwrap();
}
