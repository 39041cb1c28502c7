//! The connector kit: everything an integration service shares beside its provider's
//! knowledge. A provider crate implements [`Connector`] (how its settings and secrets are
//! checked, how a connection is tested, which entity a webhook names, what it caches per
//! connection); the kit serves `bac.integration.v1.IntegrationService` for it
//! ([`IntegrationApi`]: connections, their test, status, syncs, settings, mappings, conflicts,
//! parked events), keeps the call log the status is computed from ([`calls`]) and hands out
//! access tokens, refreshed once across replicas ([`tokens`]), and runs OAuth's
//! authorisation-code flow with the gateway ([`oauth`]), and keeps providers' push channels
//! open ([`channels`]).
//! docs/adding-an-integration.md walks through a new connector.
pub mod calls;
pub mod channels;
pub mod jwt;
pub mod oauth;
mod service;
pub mod tokens;

use std::collections::HashMap;

use bac_runtime::{connections::ConnectionRecord, ServiceError};
use bac_sync::RemoteRecord;
use serde_json::Value;

/// Every table a service built on the kit needs, in the order they are applied: connections,
/// the sync engine's, the call log and push channels (bac-zoho and bac-google-workspace apply
/// exactly these; bac-odoo, older, names some of them its own way).
pub const MIGRATIONS: &[bac_runtime::db::Migration] = &[
    bac_runtime::connections::MIGRATION,
    bac_runtime::connections::NOTIFY_MIGRATION,
    // the kit's status, sync runs, settings and conflicts read the engine's tables
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
    calls::MIGRATION,
    calls::MESSAGE_MIGRATION,
    channels::MIGRATION,
];

pub use calls::Calls;
pub use service::IntegrationApi;
pub use tokens::{AccessToken, Grant, TokenGrant, TokenSource};

/// The intent id of a create: the caller's (an `Idempotency-Key`), or a fresh UUIDv7.
/// Returns whether the caller gave it (then a record already carrying it is the answer).
pub fn intent_of(integration: &str, given: &str) -> Result<(String, bool), ServiceError> {
    let given = given.trim();
    if given.is_empty() {
        return Ok((uuid::Uuid::now_v7().to_string(), false));
    }
    if given.len() > 128 || given.chars().any(|c| c.is_control()) {
        return Err(ServiceError::new(
            integration,
            bac_runtime::ErrorCode::InvalidRequest,
            "the idempotency key must be 1 to 128 characters without control characters",
        ));
    }
    Ok((given.to_string(), true))
}

/// A list request's `page_size`: `default` when not given (0), refused above `max`.
pub fn page_size(
    integration: &str,
    asked: u32,
    default: u32,
    max: u32,
) -> Result<u32, ServiceError> {
    match asked {
        0 => Ok(default),
        n if n > max => Err(ServiceError::new(
            integration,
            bac_runtime::ErrorCode::InvalidRequest,
            format!("page_size must be at most {max}"),
        )),
        n => Ok(n),
    }
}

/// What a connection test found: a sentence for people and the upstream's version.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub message: String,
    pub server_version: String,
}

/// An upstream's webhook request as it came (the gateway checked the connection's token).
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub query: String,
}

/// What a webhook told: what changed, and what to answer.
#[derive(Debug, Clone)]
pub enum WebhookInput {
    /// These records changed: fetch and sync them (Odoo's automations send ids).
    Ids {
        entity: &'static str,
        ids: Vec<String>,
    },
    /// The records themselves (Slack and Teams events carry the message).
    Records {
        entity: &'static str,
        records: Vec<RemoteRecord>,
    },
    /// Something changed, nothing more (a Google push): an incremental run of the entity.
    Resync { entity: &'static str },
    /// One partition of a partitioned entity changed (a push for one user's calendar): an
    /// incremental run of that partition alone.
    ResyncPartition {
        entity: &'static str,
        partition: String,
    },
    /// Nothing to sync; answer this (a URL-verification challenge, a ping).
    Reply {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

/// A provider's part of the `IntegrationService`.
#[tonic::async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The catalog key (`odoo`, `zoho`, ...): the error shape's `integration`, the status's.
    const KEY: &'static str;
    /// The name people know (`Odoo`): default connection name, status sentences.
    const NAME: &'static str;

    /// Checks a connection's settings; returns them as stored (normalised). The gateway's
    /// catalog publishes the same rules as a JSON Schema.
    fn settings(&self, config: &Value) -> Result<Value, ServiceError>;

    /// Checks the secret fields a create or an update gives.
    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError>;

    /// Whether a stored connection's settings and secret fields are complete (the status's
    /// `configuration_valid`).
    fn configured(&self, rec: &ConnectionRecord) -> bool;

    /// Checks what needs the network before settings are saved (where a URL may lead).
    async fn admit(&self, _settings: &Value) -> Result<(), ServiceError> {
        Ok(())
    }

    /// Logs in upstream with the stored settings and secrets (`TestConnection`); the kit
    /// records it in the call log and times it.
    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError>;

    /// The engine entity a webhook names: the entity itself or the upstream's own type name.
    fn webhook_entity(&self, name: &str) -> Option<&'static str>;

    /// Verifies an upstream's webhook (a signature, where the provider signs) and says what
    /// it means. An error is answered to the upstream in the one error shape.
    async fn webhook(
        &self,
        rec: &ConnectionRecord,
        webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError>;

    /// A connection changed or went: drop whatever is cached for it (sessions, versions).
    async fn forget(&self, connection_id: &str);

    /// What is wrong or ending with a connection that works (a protocol the provider
    /// deprecates, credentials about to expire), from what the connector already knows: no
    /// upstream call. The status turns `warning` with it.
    async fn advice(&self, _rec: &ConnectionRecord) -> Option<String> {
        None
    }

    /// The sync frequency a connection's own settings ask for (Tally's configuration has
    /// `sync_frequency` and `auto_sync_enabled`): given to every entity of the connection
    /// each time its settings are saved. `None`: the entities' own sync settings decide.
    fn sync_frequency(&self, _rec: &ConnectionRecord) -> Option<String> {
        None
    }

    /// OAuth integrations: how a connection's user grants access (the kit serves
    /// `BeginAuthorization` and `CompleteAuthorization` with it). None: not OAuth.
    fn oauth(&self) -> Option<&dyn oauth::OAuthFlow> {
        None
    }

    /// Integrations with push channels: the keeper that opened them, which checks a
    /// notification sent to the gateway's push route. None: the push route is refused.
    fn push(&self) -> Option<&channels::ChannelKeeper> {
        None
    }
}
