//! The sync engine, written once for every integration. A service describes each entity it
//! syncs with an [`EntityAdapter`] (how to pull a page of changes, list the ids upstream has,
//! fetch, create, update and delete one record) and hands them to a [`SyncEngine`]; the
//! engine does the rest:
//!
//! - [`schedule`]: frequencies (manual, hourly, daily, weekly, cron) per connection and entity.
//! - [`run`]: the worker every replica runs. Due and triggered runs are leased from Postgres
//!   (`FOR UPDATE SKIP LOCKED` with a lease expiry), so three replicas never run one sync twice
//!   and a dead replica's run is taken over; each page's mirror rows, events and checkpoint
//!   commit in one transaction, so a run resumes at its last page.
//! - [`mirror`]: change detection (content hash + upstream version) and where a pulled or
//!   written record becomes a `bac.<integration>.<entity>.<op>` event.
//! - [`mapping`]: declarative field mappings from upstream fields to the canonical record.
//! - [`twoway`]: commands from `bac.<integration>.commands.v1` applied upstream at most once,
//!   conflicts and their strategies, the manual review queue.
//! - `settings`: per-entity frequency, conflict strategy and field owners, and the mapping in
//!   force (saved versions, preview); `views`: runs as the API shows them.
pub mod mapping;
pub mod mirror;
pub mod run;
pub mod schedule;
mod settings;
pub mod twoway;
mod views;
mod write;

pub use settings::{mapping_in_force, EntitySettings};
pub(crate) use views::RUN_COLUMNS;
pub use views::{SyncRunView, SyncSummary};

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use bac_runtime::{
    connections::{timestamp, ConnectionRecord, ConnectionStore},
    db::Pool,
    error::{ErrorCode, ServiceError},
    events,
};
pub use mapping::Mapping;

/// The runtime's sync tables (add to a service's migrations when it syncs, with
/// [`MIRROR_MIGRATION`] after it).
pub const MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0002_sync",
    sql: include_str!("../migrations/0002_sync.sql"),
};

/// The mirror's cheaper column types (bytewise key collation, json data).
pub const MIRROR_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0004_sync_mirror_types",
    sql: include_str!("../migrations/0004_sync_mirror_types.sql"),
};

/// When each run last got a slot (fair leases between tenants).
pub const FAIR_LEASES_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0007_sync_fair_leases",
    sql: include_str!("../migrations/0007_sync_fair_leases.sql"),
};

/// Leases on conflict resolutions.
pub const CONFLICT_LEASES_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0008_sync_conflict_leases",
    sql: include_str!("../migrations/0008_sync_conflict_leases.sql"),
};

/// Versions that are sequence numbers or tags ([`Version`]).
pub const VERSIONS_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0009_sync_versions",
    sql: include_str!("../migrations/0009_sync_versions.sql"),
};

/// Partitions under an entity, each with its own run, lease and cursor.
pub const PARTITIONS_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0010_sync_partitions",
    sql: include_str!("../migrations/0010_sync_partitions.sql"),
};

/// Commands refused before they were stored ([`twoway::Command`] rejects).
pub const COMMAND_REJECTS_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0006_sync_command_rejects",
    sql: include_str!("../migrations/0006_sync_command_rejects.sql"),
};

/// The create-intent ledger ([`SyncEngine::create`]).
pub const INTENTS_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0011_sync_intents",
    sql: include_str!("../migrations/0011_sync_intents.sql"),
};
/// The stored answers of creates that cannot be read back ([`EntityAdapter::refetchable`]).
pub const INTENT_ANSWERS_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0012_sync_intent_answers",
    sql: include_str!("../migrations/0012_sync_intent_answers.sql"),
};
/// Runs parked until a provider's rate limit resets (`sync_runs.not_before`).
pub const PARKING_MIGRATION: bac_runtime::db::Migration = bac_runtime::db::Migration {
    name: "runtime_0013_sync_run_parking",
    sql: include_str!("../migrations/0013_sync_run_parking.sql"),
};
/// Topic of sync run starts and ends, shared by every integration.
pub const SYNC_RUN_TOPIC: &str = "bac.integrations.sync_run.v1";
/// Topic of conflicts detected and resolved, shared by every integration.
pub const CONFLICT_TOPIC: &str = "bac.integrations.conflict.v1";

/// Full backfill or incremental pull from the stored cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "" | "incremental" => Some(Mode::Incremental),
            "full" => Some(Mode::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// A record's version as its upstream gives it, compared the way the provider means it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// When upstream last changed it (Odoo's `write_date`, Zoho's `Modified_Time`).
    Time(DateTime<Utc>),
    /// A number that only grows (Tally's `ALTERID`, IMAP's `MODSEQ`, Google's `historyId`).
    Sequence(i64),
    /// A tag that only says whether it changed (an etag): never older or newer.
    Tag(String),
}

impl Version {
    /// Whether this version is known to come before `other`. Versions of different kinds,
    /// and tags, cannot be ordered: nothing is discarded for them.
    pub fn is_older_than(&self, other: &Version) -> bool {
        match (self, other) {
            (Version::Time(a), Version::Time(b)) => a < b,
            (Version::Sequence(a), Version::Sequence(b)) => a < b,
            _ => false,
        }
    }

    /// The time of a time version (what events carry as `remote_time`).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Version::Time(t) => Some(*t),
            _ => None,
        }
    }

    /// The mirror's three columns (`remote_version`, `remote_seq`, `remote_tag`).
    pub(crate) fn columns(
        v: Option<&Version>,
    ) -> (Option<DateTime<Utc>>, Option<i64>, Option<String>) {
        match v {
            Some(Version::Time(t)) => (Some(*t), None, None),
            Some(Version::Sequence(n)) => (None, Some(*n), None),
            Some(Version::Tag(s)) => (None, None, Some(s.clone())),
            None => (None, None, None),
        }
    }

    pub(crate) fn from_columns(
        time: Option<DateTime<Utc>>,
        seq: Option<i64>,
        tag: Option<String>,
    ) -> Option<Version> {
        time.map(Version::Time)
            .or(seq.map(Version::Sequence))
            .or(tag.map(Version::Tag))
    }
}

impl From<DateTime<Utc>> for Version {
    fn from(t: DateTime<Utc>) -> Version {
        Version::Time(t)
    }
}

/// One upstream record as pulled.
#[derive(Debug, Clone)]
pub struct RemoteRecord {
    pub id: String,
    /// Its upstream version, if the provider gives one.
    pub version: Option<Version>,
    /// The upstream fields, as the provider returns them (the mapping's input).
    pub raw: Value,
    /// An upstream tombstone.
    pub deleted: bool,
}

/// What a pull asks the adapter for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub mode: Mode,
    /// The cursor stored by the last successful run (incremental runs start after it).
    pub cursor: Option<Value>,
    /// The position inside this run after the last committed page (`None`: first page).
    pub position: Option<Value>,
    pub page_size: usize,
    pub run_started_at: DateTime<Utc>,
    /// The partition this run reads ('' for an unpartitioned entity).
    pub partition: String,
}

/// One page of changes.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<RemoteRecord>,
    /// Where the next page starts (stored as the run's checkpoint with this page).
    pub position: Value,
    /// No page follows.
    pub done: bool,
    /// The cursor the next incremental run starts from, if the run ends after this page.
    pub cursor: Value,
}

/// How an adapter call failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Worth retrying later (upstream down, rate limited, timeout).
    #[error("{0}")]
    Transient(ServiceError),
    /// Retrying will not help (credentials refused, bad data, missing record).
    #[error("{0}")]
    Permanent(ServiceError),
}

impl SyncError {
    /// Classifies a service error by its code.
    pub fn from_service(e: ServiceError) -> SyncError {
        match e.code {
            ErrorCode::UpstreamUnavailable
            | ErrorCode::UpstreamRateLimited
            | ErrorCode::ConnectionTimeout
            | ErrorCode::SecretStoreUnavailable
            | ErrorCode::Internal => SyncError::Transient(e),
            _ => SyncError::Permanent(e),
        }
    }

    pub fn service_error(&self) -> &ServiceError {
        match self {
            SyncError::Transient(e) | SyncError::Permanent(e) => e,
        }
    }
}

/// One entity of one integration, as the engine needs it. Values crossing this trait are the
/// provider's own fields (`raw`) on the way in and canonical fields on the way out (the
/// adapter translates canonical values to upstream fields for writes).
#[async_trait]
pub trait EntityAdapter: Send + Sync + 'static {
    /// Canonical entity name (`crm_lead`): topic `bac.<integration>.<entity>.v1`.
    fn entity(&self) -> &'static str;
    /// The mapping used until a connection saves its own.
    fn default_mapping(&self) -> Mapping;
    /// One page of records changed since the cursor (incremental) or of all records (full).
    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError>;
    /// Every id upstream has now, for finding deletions when the API has no tombstones;
    /// `None` when the adapter reports deletions itself. Not asked for partitioned entities:
    /// their feeds report deletions (Calendar's cancelled events, Gmail's history).
    async fn remote_ids(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError>;
    /// The partitions the entity has on this connection (a user's mailbox, a calendar), each
    /// synced as a run of its own with its own cursor, lease and failure; `None` (the default)
    /// for an entity read as one. A partitioned adapter's record ids must be unique across
    /// its partitions (prefix them with the partition where the upstream's are not).
    async fn partitions(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        Ok(None)
    }
    /// Whether [`EntityAdapter::fetch`] can read a created record again. A create of an
    /// entity that cannot (a sent message) keeps its answer in the intent ledger, and a retry
    /// with the same intent returns that answer.
    fn refetchable(&self) -> bool {
        true
    }
    /// One record now, `None` when it no longer exists.
    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError>;
    /// Creates a record from canonical values; `intent_id` makes a retried create find the
    /// first one instead of creating a second.
    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError>;
    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError>;
    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError>;
}

/// Tuning of the worker; every replica of a service uses the same values.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// How long a leased run stays ours without a committed page.
    pub lease: Duration,
    /// How often the worker looks for due and abandoned runs.
    pub tick: Duration,
    /// Runs at once per replica.
    pub concurrency: usize,
    pub page_size: usize,
    /// How long a run holds its slot before it goes back in line (checkpointed) so that
    /// another tenant's run gets the slot; it continues where it stopped.
    pub slice: Duration,
    /// Kafka topic of inbound commands, and the consumer group reading it.
    pub commands_topic: Option<String>,
}

impl SyncOptions {
    /// From `BAC_SYNC_LEASE_SECS` (30), `BAC_SYNC_TICK_MS` (1000), `BAC_SYNC_CONCURRENCY` (2),
    /// `BAC_SYNC_SLICE_SECS` (20),
    /// `BAC_SYNC_PAGE_SIZE` (2000: each page costs a round trip upstream, a transaction and a
    /// relay round on top of its records; `scripts/bench sync` measured 17,839 records/s with
    /// pages of 1,000 and 21,721 with 2,000, docs/performance.md).
    pub fn from_env(integration: &str) -> SyncOptions {
        let num = |k: &str, d: u64| -> u64 {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .unwrap_or(d)
        };
        SyncOptions {
            lease: Duration::from_secs(num("BAC_SYNC_LEASE_SECS", 30)),
            tick: Duration::from_millis(num("BAC_SYNC_TICK_MS", 1000)),
            concurrency: num("BAC_SYNC_CONCURRENCY", 2) as usize,
            page_size: num("BAC_SYNC_PAGE_SIZE", 2000) as usize,
            slice: Duration::from_secs(num("BAC_SYNC_SLICE_SECS", 20)),
            commands_topic: Some(format!("bac.{integration}.commands.v1")),
        }
    }
}

/// A service's sync engine: its adapters, its database, its worker.
#[derive(Clone)]
pub struct SyncEngine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Pool,
    /// `odoo`, `zoho`...: event source `/bac/<integration>`, topics `bac.<integration>.*`.
    pub integration: &'static str,
    pub connections: ConnectionStore,
    pub adapters: BTreeMap<&'static str, Arc<dyn EntityAdapter>>,
    pub options: SyncOptions,
    /// This replica, as written in `lease_owner`.
    pub owner: String,
    /// Wakes this replica's worker when a run is queued here.
    pub wake: Notify,
}

/// Conflict strategies, per connection and entity.
pub const STRATEGIES: &[&str] = &[
    "last_write_wins",
    "merge",
    "prefer_remote",
    "prefer_local",
    "manual",
];

impl SyncEngine {
    pub fn new(
        db: Pool,
        integration: &'static str,
        connections: ConnectionStore,
        adapters: Vec<Arc<dyn EntityAdapter>>,
        options: SyncOptions,
    ) -> SyncEngine {
        // A run holds up to three pool connections at once (its page transaction, the next
        // page's call log, the lease heartbeat): runs never take more than half the pool, so
        // API requests are not starved.
        let mut options = options;
        options.concurrency = options.concurrency.min((db.status().max_size / 6).max(1));
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        SyncEngine {
            inner: Arc::new(Inner {
                db,
                integration,
                connections,
                adapters: adapters.into_iter().map(|a| (a.entity(), a)).collect(),
                options,
                owner,
                wake: Notify::new(),
            }),
        }
    }

    /// Topics the engine publishes to (the service declares them with its own).
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .inner
            .adapters
            .keys()
            .map(|e| events::topic(self.inner.integration, e))
            .collect();
        t.push(SYNC_RUN_TOPIC.into());
        t.push(CONFLICT_TOPIC.into());
        if let Some(c) = &self.inner.options.commands_topic {
            t.push(c.clone());
        }
        t
    }

    pub fn entities(&self) -> Vec<&'static str> {
        self.inner.adapters.keys().copied().collect()
    }

    pub fn connections(&self) -> &ConnectionStore {
        &self.inner.connections
    }

    pub(crate) fn err(&self, code: ErrorCode, msg: impl Into<String>) -> ServiceError {
        ServiceError::new(self.inner.integration, code, msg)
    }

    pub(crate) fn db_err(&self, e: impl std::fmt::Display) -> ServiceError {
        ServiceError::internal(self.inner.integration, format!("sync store: {e}"))
    }

    pub(crate) fn adapter(&self, entity: &str) -> Result<Arc<dyn EntityAdapter>, ServiceError> {
        self.inner.adapters.get(entity).cloned().ok_or_else(|| {
            self.err(
                ErrorCode::InvalidRequest,
                format!(
                    "{} has no entity '{entity}'; it syncs {}",
                    self.inner.integration,
                    self.entities().join(", ")
                ),
            )
        })
    }

    /// Queues a run per entity (all when `entity` is empty); an entity with a run already
    /// queued or running reports that run instead of starting a second one.
    pub async fn trigger(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        mode: &str,
        trigger: &str,
    ) -> Result<Vec<Uuid>, ServiceError> {
        let mode = Mode::parse(mode).ok_or_else(|| {
            self.err(
                ErrorCode::InvalidRequest,
                format!("mode {mode:?} is not incremental or full"),
            )
        })?;
        let entities = if entity.is_empty() {
            self.entities()
        } else {
            vec![self.adapter(entity)?.entity()]
        };
        self.inner.connections.get(tenant, connection_id).await?;
        let mut ids = Vec::new();
        for e in entities {
            ids.push(run::enqueue(self, tenant, connection_id, e, "", mode, trigger).await?);
        }
        self.inner.wake.notify_one();
        Ok(ids)
    }

    /// Queues a run of one partition of a partitioned entity (a push notification for one
    /// user's calendar): the other partitions are not read.
    pub async fn trigger_partition(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        partition: &str,
        trigger: &str,
    ) -> Result<Uuid, ServiceError> {
        let entity = self.adapter(entity)?.entity();
        if partition.is_empty() {
            return Err(self.err(ErrorCode::InvalidRequest, "name the partition to sync"));
        }
        self.inner.connections.get(tenant, connection_id).await?;
        let id = run::enqueue(
            self,
            tenant,
            connection_id,
            entity,
            partition,
            Mode::Incremental,
            trigger,
        )
        .await?;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Records upstream reported changed (a webhook): each is fetched now and goes through
    /// the mirror like a pulled record (an event only for a real change; a record upstream no
    /// longer has is deleted). Returns (created, updated, deleted, unchanged).
    pub async fn ingest(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        remote_ids: &[String],
    ) -> Result<[u32; 4], ServiceError> {
        let adapter = self.adapter(entity)?;
        if remote_ids.is_empty() || remote_ids.len() > 100 {
            return Err(self.err(ErrorCode::InvalidRequest, "give 1 to 100 record ids"));
        }
        let conn = self.inner.connections.get(tenant, connection_id).await?;
        let mut records = Vec::with_capacity(remote_ids.len());
        for id in remote_ids {
            records.push(match adapter.fetch(&conn, id).await {
                Ok(Some(r)) => r,
                Ok(None) => RemoteRecord {
                    id: id.clone(),
                    version: None,
                    raw: Value::Null,
                    deleted: true,
                },
                Err(e) => return Err(e.service_error().clone()),
            });
        }
        self.write_ingested(tenant, connection_id, adapter.entity(), records)
            .await
    }

    /// Records an upstream pushed whole (a Slack or Teams event carries the message): written
    /// through the mirror as a pulled record is, without fetching them again. Counts as for
    /// [`SyncEngine::ingest`].
    pub async fn ingest_records(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        records: Vec<RemoteRecord>,
    ) -> Result<[u32; 4], ServiceError> {
        let adapter = self.adapter(entity)?;
        if records.is_empty() || records.len() > 100 {
            return Err(self.err(ErrorCode::InvalidRequest, "give 1 to 100 records"));
        }
        self.inner.connections.get(tenant, connection_id).await?;
        self.write_ingested(tenant, connection_id, adapter.entity(), records)
            .await
    }

    /// Writes pushed or fetched records one transaction each; created, updated, deleted,
    /// unchanged.
    async fn write_ingested(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &'static str,
        records: Vec<RemoteRecord>,
    ) -> Result<[u32; 4], ServiceError> {
        let (_, mapping, _) = self.mapping(tenant, connection_id, entity).await?;
        let scope = mirror::Scope {
            tenant,
            connection_id,
            entity,
        };
        let mut counts = [0u32; 4];
        for record in records {
            let mut client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
            let tx = client.transaction().await.map_err(|e| self.db_err(e))?;
            let (_, op) = self
                .write_in(&tx, &scope, &mapping, &record, "remote", None)
                .await?;
            tx.commit().await.map_err(|e| self.db_err(e))?;
            let slot = match op {
                Some(mirror::Op::Created) => 0,
                Some(mirror::Op::Updated) => 1,
                Some(mirror::Op::Deleted) => 2,
                None => 3,
            };
            counts[slot] += 1;
            let op = ["created", "updated", "deleted", "unchanged"][slot];
            metrics::counter!("bac_sync_records_total", "integration" => self.inner.integration,
                "entity" => entity.to_string(), "op" => op)
            .increment(1);
        }
        Ok(counts)
    }

    /// A connection was deleted: its schedule, cursors, mappings, mirror and dead letters go
    /// (conflicts and commands stay as history); its queued
    /// and running runs end as failed (a running one's next page then finds its lease gone).
    pub async fn forget_connection(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<(), ServiceError> {
        let mut client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let tx = client.transaction().await.map_err(|e| self.db_err(e))?;
        // Dead letters hold upstream records (personal data): they go with the connection.
        for table in [
            "sync_settings",
            "sync_cursors",
            "sync_mappings",
            "sync_records",
            "sync_dead_letters",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant_id = $1 AND connection_id = $2"),
                &[&tenant, &connection_id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        }
        tx.execute(
            "UPDATE sync_runs SET status = 'failed', error = 'the connection was deleted',
               finished_at = now()
             WHERE tenant_id = $1 AND connection_id = $2 AND status IN ('queued', 'running')",
            &[&tenant, &connection_id],
        )
        .await
        .map_err(|e| self.db_err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))
    }

    /// Runs the worker (and the commands consumer when a Kafka config is given) until
    /// `shutdown`.
    pub fn spawn(
        &self,
        kafka: Option<bac_runtime::config::KafkaConfig>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        tokio::spawn(run::worker(self.clone(), shutdown.clone()));
        // Parked commands (upstream failed for a while) are retried apart from the runs, so a
        // hanging upstream never holds up the scheduler.
        let engine = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let every = engine
                .inner
                .options
                .tick
                .max(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = engine.retry_commands().await {
                    tracing::warn!(error = %e, "could not retry parked commands");
                }
                if let Err(e) = engine.reopen_abandoned_resolutions().await {
                    tracing::warn!(error = %e, "could not reopen abandoned conflict resolutions");
                }
            }
        });
        if let (Some(kafka), Some(topic)) = (kafka, self.inner.options.commands_topic.clone()) {
            tokio::spawn(twoway::consume(self.clone(), kafka, topic, shutdown));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn versions_order_only_within_their_kind() {
        let t = |s: i64| Version::Time(chrono::DateTime::from_timestamp(s, 0).unwrap());
        assert!(t(1).is_older_than(&t(2)));
        assert!(!t(2).is_older_than(&t(1)));
        assert!(Version::Sequence(3).is_older_than(&Version::Sequence(5)));
        assert!(!Version::Sequence(5).is_older_than(&Version::Sequence(5)));
        let tag = |s: &str| Version::Tag(s.into());
        assert!(!tag("a").is_older_than(&tag("b")) && !tag("b").is_older_than(&tag("a")));
        assert!(!Version::Sequence(1).is_older_than(&t(2)));
        for v in [t(7), Version::Sequence(7), tag("x")] {
            let (time, seq, tag) = Version::columns(Some(&v));
            assert_eq!(Version::from_columns(time, seq, tag), Some(v));
        }
        assert_eq!(Version::from_columns(None, None, None), None);
    }
}
