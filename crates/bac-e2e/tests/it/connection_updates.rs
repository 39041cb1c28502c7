//! A connection update holds no transaction or row lock across its service call, and carries
//! the version it merged from: a concurrent change is refused instead of lost, and another
//! request on the same connection does not wait for a slow update.
use std::{collections::HashMap, time::Duration};

use bac_e2e::{Fleet, FleetOptions};
use bac_proto::integration::v1::{
    integration_service_client::IntegrationServiceClient, GetConnectionRequest,
    UpdateConnectionRequest,
};
use bac_runtime::RequestContext;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_update_from_a_stale_version_is_refused_not_applied() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    let mut service = IntegrationServiceClient::connect(format!(
        "http://{}",
        fleet.odoo.as_ref().unwrap().grpc_addr
    ))
    .await
    .unwrap();
    let ctx = RequestContext {
        tenant_id: fleet.tenant.clone(),
        principal: "test".into(),
        request_id: "r1".into(),
        traceparent: None,
    };
    let read = service
        .get_connection(ctx.request(GetConnectionRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    // Someone else changes it meanwhile.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{id}"),
            Some(json!({"name": "Changed first"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stale = UpdateConnectionRequest {
        id: id.clone(),
        name: Some("Written from a stale read".into()),
        if_unmodified_since: read.updated_at,
        ..Default::default()
    };
    let err = service
        .update_connection(ctx.request(stale))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    let now = service
        .get_connection(ctx.request(GetConnectionRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.name, "Changed first");
    let fresh = UpdateConnectionRequest {
        id,
        name: Some("Written from a fresh read".into()),
        if_unmodified_since: now.updated_at,
        ..Default::default()
    };
    let done = service
        .update_connection(ctx.request(fresh))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.connection.unwrap().name, "Written from a fresh read");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_update_does_not_block_other_changes_of_the_connection() {
    let env: HashMap<String, String> = HashMap::new();
    let fleet = Fleet::start_opts(FleetOptions {
        own_vault: true,
        env,
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    // New credentials need Vault, which is frozen: this update waits for Vault's timeout.
    fleet.vault.pause();
    let slow = {
        let (http, url, key) = (
            fleet.http.clone(),
            format!("{}/api/v1/integrations/connections/{id}", fleet.api),
            fleet.key.clone(),
        );
        tokio::spawn(async move {
            http.patch(url)
                .bearer_auth(key)
                .json(&json!({"credentials": {"password": "new"}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Let the update reach its service call (it takes a lock first, if it takes one).
    let mut tick = tokio::time::interval(Duration::from_millis(700));
    tick.tick().await;
    tick.tick().await;
    // A change of the same connection's directory row answers while the update still waits.
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/webhook-token"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !slow.is_finished(),
        "the webhook token had to wait for the update"
    );
    fleet.vault.resume();
    let status = slow.await.unwrap();
    assert!(status == 503 || status == 200, "{status}");
}
