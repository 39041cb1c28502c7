//! All six binaries start against real infrastructure and report healthy: gRPC health
//! `SERVING`, `/healthz` and `/readyz` 200, `/metrics` in Prometheus format. Services whose
//! domain is not built answer `UNIMPLEMENTED`.
use std::time::Duration;

use bac_e2e::{admin_url, fresh_database, InfraEnv, Tansu, Vault};
use bac_proto::integration::v1::{
    integration_service_client::IntegrationServiceClient, ListConnectionsRequest,
};
use bac_runtime::{RequestContext, Running, ServiceKind};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

async fn health(r: &Running, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", r.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let resp = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap();
    resp.into_inner().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn all_six_binaries_are_healthy_and_ready() {
    let kafka = Tansu::start();
    let vault = Vault::get();
    let infra = InfraEnv {
        database_url: fresh_database().await,
        brokers: kafka.brokers(),
        vault_addr: vault.addr.clone(),
        vault_token: vault.token.clone(),
        upstream_allow: InfraEnv::LOOPBACK.into(),
        overrides: Default::default(),
    };
    let mut running = Vec::new();
    running.push((
        ServiceKind::Odoo,
        bac_odoo::run(infra.config(ServiceKind::Odoo))
            .await
            .unwrap(),
    ));
    running.push((
        ServiceKind::Zoho,
        bac_zoho::run(infra.config(ServiceKind::Zoho))
            .await
            .unwrap(),
    ));
    running.push((
        ServiceKind::Tally,
        bac_tally::run(infra.config(ServiceKind::Tally))
            .await
            .unwrap(),
    ));
    running.push((
        ServiceKind::Messaging,
        bac_messaging::run(infra.config(ServiceKind::Messaging))
            .await
            .unwrap(),
    ));
    running.push((
        ServiceKind::GoogleWorkspace,
        bac_google_workspace::run(infra.config(ServiceKind::GoogleWorkspace))
            .await
            .unwrap(),
    ));
    running.push((
        ServiceKind::Gateway,
        bac_gateway::run_with(
            infra.config(ServiceKind::Gateway),
            bac_gateway::ServiceUrls::from_lookup(|_| None),
        )
        .await
        .unwrap(),
    ));

    let http = reqwest::Client::new();
    for (kind, r) in &running {
        let live = http.get(admin_url(r, "/healthz")).send().await.unwrap();
        assert_eq!(live.status(), 200, "{kind:?} /healthz");
        let ready = http.get(admin_url(r, "/readyz")).send().await.unwrap();
        let status = ready.status();
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(status, 200, "{kind:?} /readyz: {body}");
        assert_eq!(body["checks"]["postgres"], "ok");
        assert_eq!(body["checks"]["kafka"], "ok");
        assert_eq!(body["checks"]["vault"], "ok");
        // gRPC health turns SERVING once the readiness watcher has run.
        let mut serving = false;
        for _ in 0..50 {
            if health(r, "").await == ServingStatus::Serving {
                serving = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(serving, "{kind:?} gRPC health");
        let metrics = http
            .get(admin_url(r, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("bac_grpc_requests_total"),
            "{kind:?} metrics: {metrics}"
        );
    }

    // bac-tally serves the kit's connections (none yet for this tenant).
    let tally = &running[2].1;
    let mut client = IntegrationServiceClient::connect(format!("http://{}", tally.grpc_addr))
        .await
        .unwrap();
    let ctx = RequestContext {
        tenant_id: "demo".into(),
        principal: "test".into(),
        request_id: "r1".into(),
        traceparent: None,
    };
    let listed = client
        .list_connections(ctx.request(ListConnectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty());

    // Readiness is real: with Kafka gone, /readyz says so.
    drop(kafka);
    let ready = http
        .get(admin_url(&running[0].1, "/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(body["checks"]["kafka"]["error"].is_string(), "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");

    for (_, r) in running {
        r.stop().await.unwrap();
    }
}
