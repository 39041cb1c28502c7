//! A Vault blip does not stop data calls: secrets read lately serve through an outage (only
//! while every replica hears about connection changes, and only up to a bound), credential
//! changes during it are refused rather than lost, and a change made on one replica drops the
//! cached secret on every other at once.
use std::{collections::HashMap, time::Duration};

use bac_e2e::{wait_until, Fleet, FleetOptions};
use bac_proto::odoo::v1::{odoo_service_client::OdooServiceClient, ListLeadsRequest};
use bac_runtime::{RequestContext, ServiceKind};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn lead_creates_go_on_through_a_vault_freeze_and_changes_are_refused() {
    let env: HashMap<String, String> = [
        ("BAC_VAULT_CACHE_TTL_SECS", "1"),
        ("BAC_VAULT_CACHE_MAX_STALE_SECS", "25"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let fleet = Fleet::start_opts(FleetOptions {
        own_vault: true,
        env,
        ..Default::default()
    })
    .await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let path = format!(
        "/api/v1/integrations/connections/{}",
        conn["id"].as_str().unwrap()
    );
    let (status, lead) = fleet.create_lead("Before the freeze", None).await;
    assert_eq!(status, 201, "{lead}");
    let read_at = Instant::now();

    fleet.vault.pause();
    // Twenty seconds of creates, long past the 1 s TTL.
    let mut created = 0;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    while read_at.elapsed() < Duration::from_secs(20) {
        every.tick().await;
        let (status, lead) = fleet.create_lead("During the freeze", None).await;
        assert_eq!(status, 201, "after {:?}: {lead}", read_at.elapsed());
        created += 1;
    }
    assert!(created >= 10, "{created}");
    // A credential change cannot reach Vault: refused, with the reason.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"credentials": {"password": "changed-during-the-freeze"}})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["details"]["error_code"], "SECRET_STORE_UNAVAILABLE");
    // Past the bound, the outage is the answer.
    let mut every = tokio::time::interval(Duration::from_millis(500));
    while read_at.elapsed() < Duration::from_secs(27) {
        every.tick().await;
    }
    let (status, body) = fleet.create_lead("Too late", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["details"]["error_code"], "SECRET_STORE_UNAVAILABLE");

    fleet.vault.resume();
    let (status, lead) = fleet.create_lead("After the freeze", None).await;
    assert_eq!(status, 201, "{lead}");
    // The refused change was not half-applied: Vault holds the old password.
    let stored = fleet
        .vault
        .read(&format!(
            "bac/{}/odoo/{}",
            fleet.tenant,
            conn["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(stored["password"], "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_change_drops_the_cached_secret_on_every_replica() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    // A second replica, called directly, caches the secret (TTL 30 s).
    let other = bac_odoo::run(fleet.infra.config(ServiceKind::Odoo))
        .await
        .unwrap();
    let mut client = OdooServiceClient::connect(format!("http://{}", other.grpc_addr))
        .await
        .unwrap();
    let ctx = RequestContext {
        tenant_id: fleet.tenant.clone(),
        principal: "test".into(),
        request_id: "r1".into(),
        traceparent: None,
    };
    let list = || ListLeadsRequest {
        connection_id: id.clone(),
        ..Default::default()
    };
    client.list_leads(ctx.request(list())).await.unwrap();
    // Through the gateway (and the fleet's first replica): a password Odoo does not know.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{id}"),
            Some(json!({"credentials": {"password": "not-the-password"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The second replica uses the new secret long before its 30 s TTL would have run out.
    let started = Instant::now();
    let dropped = wait_until(Duration::from_secs(10), || {
        let mut client = client.clone();
        let req = ctx.request(list());
        async move { client.list_leads(req).await.is_err() }
    })
    .await;
    assert!(
        dropped,
        "the other replica kept the old secret for {:?}",
        started.elapsed()
    );
    other.stop().await.unwrap();
}
