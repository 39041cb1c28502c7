//! `bac-google-workspace` connects tenants to Google Workspace (Gmail, Calendar, Drive, the
//! Admin Directory).
//!
//! [`connector`]: Google's part of the kit's `IntegrationService` (settings, a service
//! account's JWT grant per acted-as user or a user's OAuth flow, the connection test).
//! [`client`]: the one way a Google call is made (token per user, host, per-user quota, call
//! log, Google's error body). [`api`]: `bac.google_workspace.v1.GoogleWorkspaceService`.
//! [`mime`]: the RFC 5322 message Gmail sends. [`office`]: Docs, Sheets, Slides and Forms
//! the fleet creates. [`upload`]: Drive's multipart and resumable
//! uploads. [`sync`]: the entities for the engine (where a Calendar event, a Drive file or a
//! Directory user becomes an event). [`channels`]: Calendar push channels on the kit's.
//! [`transform`]: Google's JSON <-> the platform's messages.
pub mod api;
pub mod channels;
pub mod client;
pub mod connector;
pub mod mime;
pub mod office;
pub mod sync;
pub mod transform;
pub mod upload;

use std::sync::Arc;

use bac_proto::{
    google_workspace::v1::google_workspace_service_server::GoogleWorkspaceServiceServer,
    integration::v1::integration_service_server::IntegrationServiceServer,
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

/// What bac-google-workspace reads besides [`Config`].
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// `BAC_GOOGLE_API_URL`: one base URL serving every Google API and the token endpoint
    /// (the sandbox); unset: Google's hosts.
    pub hosts: client::Hosts,
    /// `BAC_PUBLIC_URL`: the gateway's URL as Google reaches it (HTTPS in production), where
    /// Calendar push channels point; unset: no channels (the periodic pull alone).
    pub public_url: Option<String>,
    pub push_times: bac_connector::channels::KeeperTimes,
}

impl GoogleSettings {
    pub fn from_env() -> Self {
        GoogleSettings {
            hosts: client::Hosts::from_env(),
            public_url: std::env::var("BAC_PUBLIC_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            push_times: bac_connector::channels::KeeperTimes::from_env(),
        }
    }
}

/// Inbound create/update/delete commands of two-way sync.
pub const COMMANDS_TOPIC: &str = "bac.google_workspace.commands.v1";

/// Every topic bac-google-workspace publishes to (declared at start).
pub fn topics() -> Vec<String> {
    let mut t: Vec<String> = sync::ENTITIES
        .iter()
        .chain(office::ENTITIES)
        .map(|e| events::topic("google_workspace", e))
        .collect();
    t.push(bac_sync::SYNC_RUN_TOPIC.into());
    t.push(bac_sync::CONFLICT_TOPIC.into());
    t.push(COMMANDS_TOPIC.into());
    t.push(bac_connector::tokens::AUDIT_TOPIC.to_string());
    t
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::GoogleWorkspace,
        migrations: MIGRATIONS,
        topics: topics(),
        grpc_services: vec![
            "bac.integration.v1.IntegrationService",
            "bac.google_workspace.v1.GoogleWorkspaceService",
        ],
    }
}

/// Starts bac-google-workspace (listeners from `config`, port 0 allowed) and serves until
/// shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    run_with(config, GoogleSettings::from_env()).await
}

/// [`run`] with its Google settings given (tests point the hosts at the sandbox).
pub async fn run_with(config: Config, settings: GoogleSettings) -> anyhow::Result<Running> {
    let policy = RetryPolicy {
        deadline: config.upstream_timeout,
        ..RetryPolicy::default()
    };
    let http = UpstreamClient::new(
        "google-workspace",
        config.upstream_per_second,
        policy,
        config.upstream_egress.clone(),
    )
    .with_max_body(config.upstream_max_body);
    let rt = Runtime::start(config, spec()).await?;
    let store =
        connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "google-workspace")
            .bind_credentials_to(&["auth", "domain", "client_id"]);
    let calls = bac_connector::Calls::new(rt.db.clone(), "google-workspace", "Google Workspace");
    let tokens = bac_connector::TokenSource::new(
        "google-workspace",
        "Google",
        rt.db.clone(),
        rt.vault.clone(),
        http.clone(),
        calls.clone(),
        connector::GoogleGrant {
            hosts: settings.hosts.clone(),
        },
    );
    let client =
        client::GoogleClient::new(settings.hosts.clone(), tokens.clone(), http, calls.clone());
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "google_workspace",
        store.clone(),
        sync::adapters(&client)
            .into_iter()
            .chain(office::adapters(&client))
            .collect(),
        bac_sync::SyncOptions::from_env("google_workspace"),
    );
    engine.spawn(Some(rt.config.kafka.clone()), rt.shutdown.child_token());
    let domain = api::GoogleApi::new(client.clone(), store.clone(), engine.clone());
    let keeper = bac_connector::channels::ChannelKeeper::new(
        "google_workspace",
        rt.db.clone(),
        store.clone(),
        Arc::new(channels::GoogleChannels::new(client.clone())),
        settings.public_url.clone(),
        settings.push_times,
    );
    keeper.clone().spawn(rt.shutdown.child_token());
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::GoogleConnector::new(client).with_push(keeper)),
        rt.db.clone(),
        store,
        engine,
        calls,
    )
    .with_tokens(tokens);
    let routes = Routes::new(IntegrationServiceServer::new(integration))
        .add_service(GoogleWorkspaceServiceServer::new(domain));
    rt.launch(routes, None).await
}
