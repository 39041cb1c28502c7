//! `bac-tally` connects tenants to TallyPrime / Tally.ERP 9, which runs in the customer's
//! office and speaks XML over HTTP (port 9000). [`connector`]: connections on the connector kit
//! (the configuration the integration-management document describes, one per company; the
//! test lists the companies Tally has open). [`client`]: how an envelope reaches Tally (UTF-8
//! and UTF-16 answers, the document's error when Tally cannot be reached). [`xml`]: Tally's
//! envelopes as types. [`transform`]: where a Tally voucher becomes the record of its event.
//! [`sync`]: the synced entities (`ALTERID` windows, deletions, writes). [`api`]:
//! `bac.tally.v1`. The office agent is the next part of issue 17 (docs/tally.md).
pub mod agent;
pub mod api;
pub mod client;
pub mod connector;
pub mod queue;
pub mod sync;
pub mod transform;
pub mod xml;

use std::sync::{Arc, OnceLock};

use bac_proto::{
    integration::v1::integration_service_server::IntegrationServiceServer,
    tally::v1::{
        tally_agent_service_server::TallyAgentServiceServer,
        tally_relay_service_server::TallyRelayServiceServer,
        tally_service_server::TallyServiceServer,
    },
};
use bac_runtime::{connections, db::Migration, Config, Running, Runtime, ServiceKind, ServiceSpec};
use tonic::service::Routes;

/// Our own storage failed: an internal error (retried where the caller retries).
pub(crate) fn db_err(e: impl std::fmt::Display) -> bac_runtime::ServiceError {
    bac_runtime::ServiceError::internal("tally", format!("postgres: {e}"))
}

/// The kit's tables, then Tally's own (the agents' registry, the voucher queue).
pub fn migrations() -> &'static [Migration] {
    static ALL: OnceLock<Vec<Migration>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = bac_connector::MIGRATIONS.to_vec();
        all.push(Migration {
            name: "tally_0001_agents",
            sql: include_str!("../migrations/0001_agents.sql"),
        });
        all
    })
}

/// This replica's gRPC address as the other replicas reach it: `BAC_ADVERTISE_HOST` (the
/// pod's IP in Kubernetes) with the bound port, or the bound address (loopback when bound to
/// every interface).
fn advertise_url(bound: std::net::SocketAddr) -> String {
    let host = std::env::var("BAC_ADVERTISE_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                "127.0.0.1".into()
            } else {
                bound.ip().to_string()
            }
        });
    format!(
        "http://{}",
        std::net::SocketAddr::new(
            host.parse()
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            bound.port(),
        )
    )
}

/// Inbound create/update/delete commands of two-way sync (ledgers and vouchers).
pub const COMMANDS_TOPIC: &str = "bac.tally.commands.v1";

/// Every topic bac-tally publishes to (declared at start).
pub fn topics() -> Vec<String> {
    let mut t: Vec<String> = sync::ENTITIES
        .iter()
        .map(|e| bac_runtime::events::topic("tally", e.entity))
        .collect();
    t.push(bac_sync::SYNC_RUN_TOPIC.into());
    t.push(bac_sync::CONFLICT_TOPIC.into());
    t.push(COMMANDS_TOPIC.into());
    t.push(bac_connector::tokens::AUDIT_TOPIC.to_string());
    t
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Tally,
        migrations: migrations(),
        topics: topics(),
        grpc_services: vec![
            "bac.integration.v1.IntegrationService",
            "bac.tally.v1.TallyService",
            "bac.tally.v1.TallyAgentService",
            "bac.tally.v1.TallyRelayService",
        ],
    }
}

/// Starts bac-tally (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    let (egress, timeout) = (config.upstream_egress.clone(), config.upstream_timeout);
    let rt = Runtime::start(config, spec()).await?;
    let store = connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "tally");
    let agents = agent::Agents::new(rt.db.clone(), store.clone(), advertise_url(rt.grpc_addr()));
    let client = client::TallyClient::new(egress, timeout).with_agents(agents.clone());
    let calls = bac_connector::Calls::new(rt.db.clone(), "tally", "Tally");
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "tally",
        store.clone(),
        sync::adapters(&client),
        bac_sync::SyncOptions::from_env("tally"),
    );
    engine.spawn(Some(rt.config.kafka.clone()), rt.shutdown.child_token());
    let queue = queue::Queue::new(rt.db.clone(), store.clone(), engine.clone(), agents.clone());
    queue.clone().spawn(rt.shutdown.child_token());
    let domain = api::TallyApi::new(store.clone(), engine.clone(), agents.clone(), queue);
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::TallyConnector::new(client)),
        rt.db.clone(),
        store,
        engine,
        calls,
    );
    let routes = Routes::new(IntegrationServiceServer::new(integration))
        .add_service(TallyServiceServer::new(domain))
        .add_service(
            TallyAgentServiceServer::new(agents.clone())
                .max_decoding_message_size(agent::MAX_MESSAGE)
                .max_encoding_message_size(agent::MAX_MESSAGE),
        )
        .add_service(
            TallyRelayServiceServer::new(agents)
                .max_decoding_message_size(agent::MAX_MESSAGE)
                .max_encoding_message_size(agent::MAX_MESSAGE),
        );
    rt.launch(routes, None).await
}
