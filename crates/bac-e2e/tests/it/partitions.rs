//! Partitions under an entity (a user's mailbox, a calendar): the entity's run queues one run
//! per partition, and each has its own lease, cursor and failure, on the real engine and
//! Postgres. The adapter here stands for a provider feed (Gmail's history per mailbox); it
//! only serves records, everything under test is the engine's.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use bac_e2e::{connect, fresh_database, wait_until, Vault};
use bac_runtime::{
    connections::{self, ConnectionRecord, ConnectionStore},
    db, vault, ErrorCode, ServiceError,
};
use bac_sync::{
    EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncEngine, SyncError, SyncOptions,
    Version,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = "mail_partitions";
const TENANT: &str = "t_partitions";

/// Mailboxes and their messages; bob's mailbox refuses to be read.
#[derive(Default)]
struct Mailboxes {
    messages: Mutex<HashMap<String, Vec<(i64, String)>>>,
    /// (partition, cursor the engine gave) of every pull.
    pulls: Mutex<Vec<(String, Option<Value>)>>,
}

#[async_trait]
impl EntityAdapter for Mailboxes {
    fn entity(&self) -> &'static str {
        "message"
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::identity(&["id", "subject"])
    }

    async fn partitions(&self, _: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        let mut p: Vec<String> = self.messages.lock().unwrap().keys().cloned().collect();
        p.sort();
        Ok(Some(p))
    }

    async fn pull(&self, _: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        self.pulls
            .lock()
            .unwrap()
            .push((req.partition.clone(), req.cursor.clone()));
        if req.partition == "bob" {
            return Err(SyncError::Permanent(ServiceError::new(
                "mail",
                ErrorCode::PermissionDenied,
                "bob's mailbox: delegation revoked",
            )));
        }
        let after = req
            .cursor
            .as_ref()
            .and_then(|c| c["history"].as_i64())
            .unwrap_or(0);
        let all = self.messages.lock().unwrap()[&req.partition].clone();
        let newest = all.iter().map(|m| m.0).max().unwrap_or(after);
        let records = all
            .into_iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(seq, subject)| RemoteRecord {
                id: format!("{}/{seq}", req.partition),
                version: Some(Version::Sequence(seq)),
                raw: json!({"id": format!("{}/{seq}", req.partition), "subject": subject}),
                deleted: false,
            })
            .collect();
        Ok(Page {
            records,
            position: json!(null),
            done: true,
            cursor: json!({"history": newest}),
        })
    }

    async fn remote_ids(&self, _: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        panic!("a partitioned entity is never listed whole")
    }

    async fn fetch(
        &self,
        _: &ConnectionRecord,
        _: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        Ok(None)
    }

    async fn create(
        &self,
        _: &ConnectionRecord,
        _: &Value,
        _: &str,
    ) -> Result<RemoteRecord, SyncError> {
        Err(read_only())
    }

    async fn update(
        &self,
        _: &ConnectionRecord,
        _: &str,
        _: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        Err(read_only())
    }

    async fn delete(&self, _: &ConnectionRecord, _: &str) -> Result<(), SyncError> {
        Err(read_only())
    }
}

/// What the mailboxes answer to writes: they are read only.
fn read_only() -> SyncError {
    SyncError::Permanent(ServiceError::new(
        "mail",
        ErrorCode::NotImplemented,
        "read only",
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_partition_has_its_own_run_cursor_and_failure() {
    let url = fresh_database().await;
    let pool = db::pool(&url, SCHEMA, 12).unwrap();
    db::migrate(
        &pool,
        SCHEMA,
        &[
            connections::MIGRATION,
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
        ],
    )
    .await
    .unwrap();
    let bao = Vault::get();
    let store = ConnectionStore::new(
        pool.clone(),
        vault::Vault::new(bao.config()).unwrap(),
        "mail",
    );
    let conn = format!("con_{}", uuid::Uuid::new_v4().simple());
    store
        .create(TENANT, &conn, "Workspace", json!({}), HashMap::new())
        .await
        .unwrap();
    let mail = Arc::new(Mailboxes::default());
    mail.messages.lock().unwrap().extend([
        (
            "alice".to_string(),
            vec![(1, "Hello".to_string()), (2, "Lunch?".to_string())],
        ),
        ("bob".to_string(), vec![(1, "Private".to_string())]),
        ("carol".to_string(), vec![(7, "Invoice".to_string())]),
    ]);
    let mut options = SyncOptions::from_env("mail");
    options.tick = Duration::from_millis(50);
    options.commands_topic = None;
    let engine = SyncEngine::new(pool.clone(), "mail", store, vec![mail.clone()], options);
    let stop = CancellationToken::new();
    engine.spawn(None, stop.clone());
    let pg = connect(&url).await;
    let settled = |n: usize| {
        let pg = &pg;
        move || async move {
            let r = runs(pg).await;
            r.len() == n && r.iter().all(|(_, s, _)| s == "succeeded" || s == "failed")
        }
    };

    engine
        .trigger(TENANT, &conn, "message", "incremental", "manual")
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), settled(4)).await,
        "{:?}",
        runs(&pg).await
    );
    let got = runs(&pg).await;
    assert_eq!(
        got[0],
        ("".into(), "succeeded".into(), "".into()),
        "the entity's run queues the partitions'"
    );
    let by: HashMap<String, (String, String)> = got[1..]
        .iter()
        .map(|(p, s, e)| (p.clone(), (s.clone(), e.clone())))
        .collect();
    assert_eq!(by["alice"].0, "succeeded");
    assert_eq!(by["carol"].0, "succeeded");
    assert_eq!(by["bob"].0, "failed", "one partition fails on its own");
    assert!(
        by["bob"].1.contains("delegation revoked"),
        "{:?}",
        by["bob"]
    );
    let cursors = pg
        .query(
            &format!("SELECT partition, cursor FROM {SCHEMA}.sync_cursors WHERE tenant_id = $1 ORDER BY partition"),
            &[&TENANT],
        )
        .await
        .unwrap();
    let cursors: Vec<(String, Value)> = cursors.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        cursors,
        vec![
            ("alice".into(), json!({"history": 2})),
            ("carol".into(), json!({"history": 7}))
        ]
    );
    let mirrored: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM {SCHEMA}.sync_records WHERE tenant_id = $1"),
            &[&TENANT],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored, 3);

    // Alice gets mail; the next run reads each partition from its own cursor.
    mail.messages
        .lock()
        .unwrap()
        .get_mut("alice")
        .unwrap()
        .push((3, "Re: Lunch".into()));
    mail.pulls.lock().unwrap().clear();
    engine
        .trigger(TENANT, &conn, "message", "incremental", "manual")
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), settled(8)).await,
        "{:?}",
        runs(&pg).await
    );
    let pulls: HashMap<String, Option<Value>> =
        mail.pulls.lock().unwrap().iter().cloned().collect();
    assert_eq!(pulls["alice"], Some(json!({"history": 2})));
    assert_eq!(pulls["carol"], Some(json!({"history": 7})));
    assert_eq!(
        pulls["bob"], None,
        "a partition that never succeeded has no cursor"
    );
    let mirrored: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM {SCHEMA}.sync_records WHERE tenant_id = $1"),
            &[&TENANT],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored, 4);
    stop.cancel();
}

/// (partition, status, error) of the tenant's runs, oldest first.
async fn runs(pg: &tokio_postgres::Client) -> Vec<(String, String, String)> {
    let rows = pg
        .query(
            &format!(
                "SELECT partition, status, coalesce(error, '') FROM {SCHEMA}.sync_runs
                 WHERE tenant_id = $1 ORDER BY queued_at, partition"
            ),
            &[&TENANT],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}
