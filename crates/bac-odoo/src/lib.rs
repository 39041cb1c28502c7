//! `bac-odoo` connects tenants to their Odoo ERP through Odoo's external JSON-RPC API.
//!
//! - [`api`]: `OdooService`, the Odoo domain over gRPC.
//! - [`connector`]: Odoo's part of the kit's `IntegrationService` (settings, secrets, the
//!   connection test); the rest of it, the call log and the status are `bac_connector`'s.
//! - [`client`]: the JSON-RPC calls; `client::transformers` holds Odoo's wire types and the
//!   mapping to the platform's `Lead`.
//! - [`mirror`]: where an Odoo change becomes a `bac.odoo.crm_lead.*` event (mirror row and
//!   outbox row in one transaction).
pub mod api;
pub mod client;
pub mod connector;
pub mod mirror;
pub mod remote;
pub mod sync;

use bac_proto::{
    integration::v1::integration_service_server::IntegrationServiceServer,
    odoo::v1::odoo_service_server::OdooServiceServer,
};
use bac_runtime::{connections, db::Migration, Config, Running, Runtime, ServiceKind, ServiceSpec};
use tonic::service::Routes;

pub const MIGRATIONS: &[Migration] = &[
    connections::MIGRATION,
    connections::NOTIFY_MIGRATION,
    bac_sync::MIGRATION,
    bac_sync::MIRROR_MIGRATION,
    bac_sync::COMMAND_REJECTS_MIGRATION,
    bac_sync::FAIR_LEASES_MIGRATION,
    bac_sync::CONFLICT_LEASES_MIGRATION,
    bac_sync::VERSIONS_MIGRATION,
    bac_sync::PARTITIONS_MIGRATION,
    bac_sync::INTENTS_MIGRATION,
    bac_sync::INTENT_ANSWERS_MIGRATION,
    bac_sync::PARKING_MIGRATION,
    Migration {
        name: "odoo_0001_records",
        sql: include_str!("../migrations/0001_records.sql"),
    },
    // The kit's call log, under the name it was first applied with here.
    Migration {
        name: "odoo_0002_call_log",
        sql: bac_connector::calls::CALL_LOG_SQL,
    },
    Migration {
        name: "odoo_0003_sync_mirror",
        sql: include_str!("../migrations/0003_sync_mirror.sql"),
    },
    bac_connector::calls::MESSAGE_MIGRATION,
];

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Odoo,
        migrations: MIGRATIONS,
        topics: mirror::topics(),
        grpc_services: vec![
            "bac.odoo.v1.OdooService",
            "bac.integration.v1.IntegrationService",
        ],
    }
}

/// Starts bac-odoo (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    let deadline = config.upstream_timeout;
    let egress = config.upstream_egress.clone();
    let max_body = config.upstream_max_body;
    let per_second = config.upstream_per_second;
    let rt = Runtime::start(config, spec()).await?;
    let store = connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "odoo")
        .bind_credentials_to(&["url", "database", "username"]);
    let calls = bac_connector::Calls::new(rt.db.clone(), "odoo", "Odoo");
    let remote = remote::Remote::new(
        rt.db.clone(),
        store.clone(),
        calls.clone(),
        deadline,
        egress,
        max_body,
        per_second,
    );
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "odoo",
        store.clone(),
        sync::adapters(&remote),
        bac_sync::SyncOptions::from_env("odoo"),
    );
    engine.spawn(Some(rt.config.kafka.clone()), rt.shutdown.child_token());
    let integration = bac_connector::IntegrationApi::new(
        std::sync::Arc::new(connector::OdooConnector::new(remote.clone())),
        rt.db.clone(),
        store,
        engine.clone(),
        calls,
    );
    let api = api::OdooApi::new(remote, engine);
    let routes = Routes::new(OdooServiceServer::new(api))
        .add_service(IntegrationServiceServer::new(integration));
    rt.launch(routes, None).await
}
