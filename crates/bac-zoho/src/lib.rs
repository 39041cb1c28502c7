//! `bac-zoho` connects tenants to Zoho (CRM, Books, Desk, People, Inventory, Mail).
//!
//! [`dc`]: Zoho's data centres and their hosts. [`connector`]: Zoho's part of the kit's
//! `IntegrationService` (settings, the OAuth authorisation-code flow per data centre, the
//! refresh grant, the connection test). [`client`]: the one way a Zoho call is made (token,
//! host, credits, call log, Zoho's errors). [`api`]: `bac.zoho.v1.ZohoService` (CRM leads,
//! contacts, deals; Books, Inventory, Desk, People, Mail). [`sync`]: the synced CRM modules
//! for the engine (where a pulled Zoho record becomes an event). [`apps`]: the same for
//! Books invoices and customers, Inventory items, Desk tickets, People employees and Mail's
//! sent messages. [`channels`]: CRM notification channels on the kit's push channels.
//! [`transform`]: Zoho records <-> the platform's messages.
pub mod api;
pub mod apps;
pub mod channels;
pub mod client;
pub mod connector;
pub mod dc;
pub mod sync;
pub mod transform;

use std::sync::Arc;

use bac_proto::{
    integration::v1::integration_service_server::IntegrationServiceServer,
    zoho::v1::zoho_service_server::ZohoServiceServer,
};
use bac_runtime::{
    connections,
    db::Migration,
    events,
    upstream::{RetryPolicy, UpstreamClient},
    Config, Running, Runtime, ServiceKind, ServiceSpec,
};
use tonic::service::Routes;

pub const MIGRATIONS: &[Migration] = bac_connector::MIGRATIONS;

/// What bac-zoho reads besides [`Config`].
#[derive(Debug, Clone)]
pub struct ZohoSettings {
    /// `BAC_ZOHO_DATA_CENTERS=eu=http://sandbox:7002/eu,...`: data centres served elsewhere
    /// (the sandbox); the others are Zoho's documented hosts.
    pub data_center_overrides: std::collections::HashMap<String, String>,
    /// How often the ids of Books, Inventory, Desk and People records are listed to find
    /// deletions (`BAC_ZOHO_RECONCILE_SECS`, default an hour).
    pub reconcile_every: std::time::Duration,
    /// `BAC_PUBLIC_URL`: the gateway's URL as Zoho reaches it, where notification channels
    /// point; unset: no channels (the periodic pull alone).
    pub public_url: Option<String>,
    pub push_times: bac_connector::channels::KeeperTimes,
}

impl ZohoSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let spec = std::env::var("BAC_ZOHO_DATA_CENTERS").unwrap_or_default();
        let data_center_overrides = dc::DataCenters::parse_overrides(&spec)
            .map_err(|e| anyhow::anyhow!("BAC_ZOHO_DATA_CENTERS: {e}"))?;
        Ok(ZohoSettings {
            data_center_overrides,
            reconcile_every: apps::reconcile_every_from_env(),
            public_url: std::env::var("BAC_PUBLIC_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            push_times: bac_connector::channels::KeeperTimes::from_env(),
        })
    }
}

impl Default for ZohoSettings {
    fn default() -> Self {
        ZohoSettings {
            data_center_overrides: Default::default(),
            reconcile_every: std::time::Duration::from_secs(3600),
            public_url: None,
            push_times: bac_connector::channels::KeeperTimes::from_env(),
        }
    }
}

/// Inbound create/update/delete commands of two-way sync.
pub const COMMANDS_TOPIC: &str = "bac.zoho.commands.v1";

/// Every topic bac-zoho publishes to (declared at start).
pub fn topics() -> Vec<String> {
    let mut t: Vec<String> = sync::ENTITIES
        .iter()
        .map(|e| e.entity)
        .chain(apps::ENTITIES.iter().map(|e| e.entity))
        .map(|e| events::topic("zoho", e))
        .collect();
    t.push(bac_sync::SYNC_RUN_TOPIC.into());
    t.push(bac_sync::CONFLICT_TOPIC.into());
    t.push(COMMANDS_TOPIC.into());
    t.push(bac_connector::tokens::AUDIT_TOPIC.to_string());
    t
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Zoho,
        migrations: MIGRATIONS,
        topics: topics(),
        grpc_services: vec![
            "bac.integration.v1.IntegrationService",
            "bac.zoho.v1.ZohoService",
        ],
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
    let client = client::ZohoClient::new(dcs, tokens.clone(), http, calls.clone());
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "zoho",
        store.clone(),
        sync::adapters(&client)
            .into_iter()
            .chain(apps::adapters(&client, settings.reconcile_every))
            .collect(),
        bac_sync::SyncOptions::from_env("zoho"),
    );
    engine.spawn(Some(rt.config.kafka.clone()), rt.shutdown.child_token());
    let domain = api::ZohoApi::new(client.clone(), store.clone(), engine.clone());
    let keeper = bac_connector::channels::ChannelKeeper::new(
        "zoho",
        rt.db.clone(),
        store.clone(),
        Arc::new(channels::ZohoChannels::new(client.clone())),
        settings.public_url.clone(),
        settings.push_times,
    );
    keeper.clone().spawn(rt.shutdown.child_token());
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::ZohoConnector::new(client).with_push(keeper)),
        rt.db.clone(),
        store,
        engine,
        calls,
    )
    .with_tokens(tokens);
    let routes = Routes::new(IntegrationServiceServer::new(integration))
        .add_service(ZohoServiceServer::new(domain));
    rt.launch(routes, None).await
}
