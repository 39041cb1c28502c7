//! `bac-tally` connects tenants to TallyPrime / Tally.ERP 9, which runs in the customer's
//! office and speaks XML over HTTP (port 9000). Today: connections on the connector kit (the
//! configuration the integration-management document describes, one per company) and the
//! real connection test ([`connector`]: the companies Tally has open), through [`client`]
//! (envelopes, UTF-8 and UTF-16 answers, the document's error when Tally cannot be reached).
//! Ledgers, vouchers, the sync and the office agent are the next parts of issue 17
//! (docs/tally.md).
pub mod client;
pub mod connector;

use std::sync::Arc;

use bac_proto::integration::v1::integration_service_server::IntegrationServiceServer;
use bac_runtime::{connections, Config, Running, Runtime, ServiceKind, ServiceSpec};
use tonic::service::Routes;

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Tally,
        migrations: bac_connector::MIGRATIONS,
        topics: vec![
            bac_sync::SYNC_RUN_TOPIC.into(),
            bac_sync::CONFLICT_TOPIC.into(),
            bac_connector::tokens::AUDIT_TOPIC.to_string(),
        ],
        grpc_services: vec!["bac.integration.v1.IntegrationService"],
    }
}

/// Starts bac-tally (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    let client = client::TallyClient::new(config.upstream_egress.clone(), config.upstream_timeout);
    let rt = Runtime::start(config, spec()).await?;
    let store = connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "tally");
    let calls = bac_connector::Calls::new(rt.db.clone(), "tally", "Tally");
    // no entity syncs yet: the kit's status, runs and settings still read the engine
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "tally",
        store.clone(),
        Vec::new(),
        bac_sync::SyncOptions::from_env("tally"),
    );
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::TallyConnector::new(client)),
        rt.db.clone(),
        store,
        engine,
        calls,
    );
    rt.launch(
        Routes::new(IntegrationServiceServer::new(integration)),
        None,
    )
    .await
}
