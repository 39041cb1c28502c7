//! `bac-zoho` connects tenants to Zoho (CRM, Books, Desk, People, Inventory, Mail).
//!
//! Built so far: connections on the connector kit — [`dc`], Zoho's data centres and their
//! hosts; [`connector`], Zoho's part of the kit's `IntegrationService` (settings, the OAuth
//! authorisation-code flow per data centre, the refresh grant, the connection test that reads
//! the CRM organisation). The domain (`bac.zoho.v1`, sync) is not built yet.
pub mod connector;
pub mod dc;

use std::sync::Arc;

use bac_proto::integration::v1::integration_service_server::IntegrationServiceServer;
use bac_runtime::{
    connections,
    db::Migration,
    upstream::{RetryPolicy, UpstreamClient},
    Config, Running, Runtime, ServiceKind, ServiceSpec,
};
use tonic::service::Routes;

pub const MIGRATIONS: &[Migration] = &[
    connections::MIGRATION,
    connections::NOTIFY_MIGRATION,
    // the kit's status, sync runs, settings and conflicts read the engine's tables
    bac_sync::MIGRATION,
    bac_sync::MIRROR_MIGRATION,
    bac_sync::COMMAND_REJECTS_MIGRATION,
    bac_sync::FAIR_LEASES_MIGRATION,
    bac_sync::CONFLICT_LEASES_MIGRATION,
    bac_sync::VERSIONS_MIGRATION,
    bac_sync::PARTITIONS_MIGRATION,
    bac_connector::calls::MIGRATION,
    bac_connector::calls::MESSAGE_MIGRATION,
];

/// What bac-zoho reads besides [`Config`].
#[derive(Debug, Clone, Default)]
pub struct ZohoSettings {
    /// `BAC_ZOHO_DATA_CENTERS=eu=http://sandbox:7002/eu,...`: data centres served elsewhere
    /// (the sandbox); the others are Zoho's documented hosts.
    pub data_center_overrides: std::collections::HashMap<String, String>,
}

impl ZohoSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let spec = std::env::var("BAC_ZOHO_DATA_CENTERS").unwrap_or_default();
        let data_center_overrides = dc::DataCenters::parse_overrides(&spec)
            .map_err(|e| anyhow::anyhow!("BAC_ZOHO_DATA_CENTERS: {e}"))?;
        Ok(ZohoSettings {
            data_center_overrides,
        })
    }
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Zoho,
        migrations: MIGRATIONS,
        topics: vec![bac_connector::tokens::AUDIT_TOPIC.to_string()],
        grpc_services: vec!["bac.integration.v1.IntegrationService"],
    }
}

/// Starts bac-zoho (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    run_with(config, ZohoSettings::from_env()?).await
}

/// [`run`] with its Zoho settings given (tests point data centres at the sandbox).
pub async fn run_with(config: Config, settings: ZohoSettings) -> anyhow::Result<Running> {
    let dcs = dc::DataCenters::with_overrides(&settings.data_center_overrides)
        .map_err(|e| anyhow::anyhow!("BAC_ZOHO_DATA_CENTERS: {e}"))?;
    let policy = RetryPolicy {
        deadline: config.upstream_timeout,
        ..RetryPolicy::default()
    };
    let http = UpstreamClient::new(
        "zoho",
        config.upstream_per_second,
        policy,
        config.upstream_egress.clone(),
    )
    .with_max_body(config.upstream_max_body);
    let rt = Runtime::start(config, spec()).await?;
    let store = connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "zoho")
        .bind_credentials_to(&["data_center", "client_id"]);
    let calls = bac_connector::Calls::new(rt.db.clone(), "zoho", "Zoho");
    let tokens = bac_connector::TokenSource::new(
        "zoho",
        "Zoho",
        rt.db.clone(),
        rt.vault.clone(),
        http.clone(),
        calls.clone(),
        connector::ZohoGrant { dcs: dcs.clone() },
    );
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "zoho",
        store.clone(),
        Vec::new(),
        bac_sync::SyncOptions::from_env("zoho"),
    );
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::ZohoConnector::new(dcs, tokens.clone(), http)),
        rt.db.clone(),
        store,
        engine,
        calls,
    )
    .with_tokens(tokens);
    let routes = Routes::new(IntegrationServiceServer::new(integration));
    rt.launch(routes, None).await
}
