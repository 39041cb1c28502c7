//! The conformance suite every connector runs against its sandbox: what the platform is
//! promised of any integration's sync, asked the same way of each. A connector implements
//! [`Upstream`] (how its provider's own users create, change, delete and find records, how
//! the provider notifies, how its credentials expire) and calls each scenario from a test
//! of its own (`tests/it/conformance_odoo.rs`). Everything asserted is what a user of the
//! fleet sees: REST bodies, sync runs, events on Kafka with their headers, commands' states.
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{connect, kafka, wait_until, Fleet};

/// A child process killed when dropped, even on a failed assertion.
struct Replica(std::process::Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A provider as its own users and servers act on it, for the suite.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The integration's key (`odoo`): topics `bac.<key>.<entity>.v1`, commands on
    /// `bac.<key>.commands.v1`, the service's schema.
    fn key(&self) -> &'static str;
    /// An entity the connector syncs both ways.
    fn entity(&self) -> &'static str;
    /// A canonical text field of that entity the suite writes (its upstream twin is the
    /// connector's business).
    fn field(&self) -> &'static str;
    /// What a create needs besides [`Upstream::field`] (a calendar event's start and end).
    fn create_values(&self) -> Value {
        json!({})
    }
    /// Connects the fleet's tenant to the sandbox through the gateway; the connection id.
    async fn connect(&self, fleet: &Fleet) -> String;
    /// Creates a record upstream, as one of the provider's users would; its id.
    async fn create(&self, fleet: &Fleet, value: &str) -> String;
    async fn update(&self, fleet: &Fleet, id: &str, value: &str);
    async fn delete(&self, fleet: &Fleet, id: &str);
    /// The field of the record upstream; `None` when it is gone.
    async fn read(&self, fleet: &Fleet, id: &str) -> Option<String>;
    /// Ids of the records whose field is `value`.
    async fn find(&self, fleet: &Fleet, value: &str) -> Vec<String>;
    /// Sends the provider's webhook saying these records changed (signed as the provider
    /// signs, through the gateway's webhook route); its HTTP status and body.
    async fn notify(&self, fleet: &Fleet, conn: &str, ids: &[String]) -> (u16, Value);
    /// The connection's credentials stop working once (an expired session or token) and
    /// must be renewed by the connector.
    async fn expire_credentials(&self, fleet: &Fleet);
    /// Creates `n` records upstream at once (the sandbox's bulk seeding).
    async fn seed(&self, fleet: &Fleet, n: usize);
    /// How many records of the entity upstream has.
    async fn count(&self, fleet: &Fleet) -> i64;
    /// Stops the connector's service the fleet runs in-process: from then on only the
    /// replicas [`Upstream::replica`] starts sync.
    async fn stop_service(&self, fleet: &mut Fleet);
    /// Starts the connector's service as a process of its own, with short leases (a replica
    /// the suite may `kill -9`).
    fn replica(&self, fleet: &Fleet) -> std::process::Child;
}

/// A replica of a connector's service for [`takeover_after_kill`]: this test binary again,
/// running only the ignored test `test` (which starts the service from the environment),
/// against the fleet's database, Kafka and Vault with short leases; `env` adds the
/// service's own settings.
pub fn replica_command(fleet: &Fleet, test: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--ignored", "--nocapture"])
        .env("BAC_E2E_REPLICA", "1")
        .env("BAC_DATABASE_URL", &fleet.infra.database_url)
        .env("BAC_DATABASE_POOL_SIZE", "4")
        .env("BAC_KAFKA_BROKERS", &fleet.infra.brokers)
        .env("BAC_VAULT_ADDR", &fleet.infra.vault_addr)
        .env("BAC_VAULT_TOKEN", &fleet.infra.vault_token)
        .env("BAC_GRPC_ADDR", format!("127.0.0.1:{}", crate::free_port()))
        .env("BAC_HTTP_ADDR", "127.0.0.1:0")
        .env("BAC_UPSTREAM_TIMEOUT_MS", "5000")
        .env("BAC_UPSTREAM_ALLOW_CIDRS", &fleet.infra.upstream_allow)
        .env("BAC_SYNC_LEASE_SECS", "3")
        .env("BAC_SYNC_TICK_MS", "200")
        .env("BAC_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Triggers a sync through the REST API and waits for its run to end; the run. For an
/// entity synced in partitions (a calendar per user), the entity's run queues a run per
/// partition: those are waited for too, and the answer is them together (succeeded when
/// each did, their counts summed).
pub async fn sync(fleet: &Fleet, conn: &str, entity: &str, mode: &str) -> Value {
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"entity": entity, "mode": mode})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let parent = body["sync_run_id"].as_str().unwrap_or_default().to_string();
    let run = wait_run(fleet, conn, &parent).await;
    // run ids are UUIDv7: the partitions' runs the entity's run queued sort after it
    let (_, list) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{conn}/sync-runs?limit=200"),
            None,
        )
        .await;
    let children: Vec<String> = list["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["entity"] == entity
                && r["partition"].as_str().is_some_and(|p| !p.is_empty())
                && r["id"].as_str().is_some_and(|id| id > parent.as_str())
        })
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    if children.is_empty() {
        return run;
    }
    let mut total = json!({"id": parent, "status": "succeeded", "partitions": children.len(),
        "records_seen": 0, "records_created": 0, "records_updated": 0, "records_deleted": 0});
    for id in &children {
        let r = wait_run(fleet, conn, id).await;
        if r["status"] != "succeeded" {
            total["status"] = r["status"].clone();
            total["error"] = r["error"].clone();
        }
        for k in ["seen", "created", "updated", "deleted"] {
            let key = format!("records_{k}");
            total[&key] = json!(total[&key].as_u64().unwrap_or(0) + r[&key].as_u64().unwrap_or(0));
        }
    }
    total
}

/// Waits for run `run_id` of `conn` to end; the run as the REST API lists it.
pub async fn wait_run(fleet: &Fleet, conn: &str, run_id: &str) -> Value {
    let run = std::sync::Mutex::new(Value::Null);
    let ended = wait_until(Duration::from_secs(90), || {
        let run = &run;
        async move {
            let (_, body) = fleet
                .call(
                    Method::GET,
                    &format!("/api/v1/integrations/connections/{conn}/sync-runs?limit=200"),
                    None,
                )
                .await;
            let found = body["runs"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["id"] == run_id).cloned());
            match found {
                Some(r) if r["status"] == "succeeded" || r["status"] == "failed" => {
                    *run.lock().expect("run") = r;
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    assert!(ended, "run {run_id} did not end");
    run.into_inner().expect("run")
}

/// (created, updated, deleted) of a run.
pub fn counts(run: &Value) -> (u64, u64, u64) {
    let n = |k: &str| run[format!("records_{k}")].as_u64().unwrap_or(0);
    (n("created"), n("updated"), n("deleted"))
}

/// Events of `topic` until `done` says enough arrived, then one more second for extras.
pub async fn events(
    fleet: &Fleet,
    topic: &str,
    done: impl Fn(&[kafka::Record]) -> bool,
) -> Vec<kafka::Record> {
    let c = kafka::consumer(&fleet.kafka.brokers(), topic);
    let mut got = kafka::collect(&c, Duration::from_secs(60), done).await;
    got.extend(kafka::collect(&c, Duration::from_secs(1), |_| false).await);
    got
}

/// How many events of each `ce_type` name this record (`ce_subject` `<entity>/<id>`).
fn of_record(got: &[kafka::Record], entity: &str, id: &str) -> HashMap<String, usize> {
    let subject = format!("{entity}/{id}");
    let mut m = HashMap::new();
    for r in got.iter().filter(|r| r.headers["ce_subject"] == subject) {
        let op = r.headers["ce_type"]
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_string();
        *m.entry(op).or_insert(0) += 1;
    }
    m
}

/// A Kafka producer on the fleet's broker, as another platform service has.
pub fn producer(fleet: &Fleet) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", fleet.kafka.brokers())
        .create()
        .expect("kafka producer")
}

/// Sends a command on the integration's commands topic, as another platform service would.
pub async fn command(fleet: &Fleet, key: &str, ce_id: &str, ty: &str, payload: Value) {
    let time = chrono::Utc::now().to_rfc3339();
    command_at(&producer(fleet), fleet, key, ce_id, ty, &time, payload).await;
}

/// [`command`] with `producer` and the command's `ce_time`; where it landed (partition,
/// offset).
pub async fn command_at(
    producer: &FutureProducer,
    fleet: &Fleet,
    key: &str,
    ce_id: &str,
    ty: &str,
    time: &str,
    payload: Value,
) -> (i32, i64) {
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", ce_id),
        ("ce_source", "/platform/conformance"),
        ("ce_type", ty),
        ("ce_time", time),
        ("ce_tenantid", fleet.tenant.as_str()),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    });
    let body = payload.to_string();
    producer
        .send(
            FutureRecord::to(&format!("bac.{key}.commands.v1"))
                .key(ce_id)
                .payload(&body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("command sent")
}

/// The state a command settled in (`applied`, `skipped`, `conflict`, `failed`).
pub async fn settled(fleet: &Fleet, key: &str, ce_id: &str) -> String {
    let db = connect(&fleet.infra.database_url).await;
    let status = std::sync::Mutex::new(String::new());
    let done = wait_until(Duration::from_secs(60), || {
        let (db, status) = (&db, &status);
        async move {
            let row = db
                .query_opt(
                    &format!(
                        "SELECT status FROM {key}.sync_commands WHERE tenant_id = $1 AND command_id = $2"
                    ),
                    &[&fleet.tenant, &ce_id],
                )
                .await
                .ok()
                .flatten();
            match row.map(|r| r.get::<_, String>(0)) {
                Some(s) if s != "pending" => {
                    *status.lock().expect("status") = s;
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    assert!(done, "command {ce_id} never settled");
    status.into_inner().expect("status")
}

fn unique(what: &str) -> String {
    format!("{what} {}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A full sync reads every record once; an incremental one reports exactly what changed
/// upstream since (an update, a deletion, a creation) and nothing when nothing did.
pub async fn backfill_incremental_and_deletions<U: Upstream>(fleet: &Fleet, up: &U) {
    let (entity, topic) = (up.entity(), format!("bac.{}.{}.v1", up.key(), up.entity()));
    let conn = up.connect(fleet).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(up.create(fleet, &unique(&format!("Backfill {i}"))).await);
    }
    let run = sync(fleet, &conn, entity, "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(counts(&run).0 >= 3, "{run}");
    up.update(fleet, &ids[0], &unique("Changed upstream")).await;
    up.delete(fleet, &ids[1]).await;
    let fresh = up.create(fleet, &unique("Created upstream")).await;
    let run = sync(fleet, &conn, entity, "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), (1, 1, 1), "{run}");
    let run = sync(fleet, &conn, entity, "incremental").await;
    assert_eq!(
        counts(&run),
        (0, 0, 0),
        "nothing changed, nothing reported: {run}"
    );
    let got = events(fleet, &topic, |got| {
        of_record(got, entity, &fresh).contains_key("created")
    })
    .await;
    let once = |op: &str| HashMap::from([(op.to_string(), 1)]);
    let both = |first: &str, then: &str| HashMap::from([(first.into(), 1), (then.into(), 1)]);
    assert_eq!(of_record(&got, entity, &ids[0]), both("created", "updated"));
    assert_eq!(of_record(&got, entity, &ids[1]), both("created", "deleted"));
    assert_eq!(of_record(&got, entity, &ids[2]), once("created"));
    assert_eq!(of_record(&got, entity, &fresh), once("created"));
    let e = got
        .iter()
        .find(|r| r.headers["ce_subject"] == format!("{entity}/{}", ids[0]))
        .expect("an event of the record");
    assert_eq!(e.headers["ce_tenantid"], fleet.tenant);
    assert_eq!(e.headers["ce_connectionid"], conn);
    assert_eq!(e.json()["origin"], "remote");
}

/// What the platform wrote (a command) is published once, as the platform's, and the next
/// pull does not report it again.
pub async fn echo_suppression<U: Upstream>(fleet: &Fleet, up: &U) {
    let (key, entity) = (up.key(), up.entity());
    let conn = up.connect(fleet).await;
    sync(fleet, &conn, entity, "full").await;
    let value = unique("Written by the platform");
    let ce_id = unique("cmd-echo").replace(' ', "-");
    let mut values = up.create_values();
    values[up.field()] = json!(value);
    command(
        fleet,
        key,
        &ce_id,
        &format!("bac.{key}.{entity}.create"),
        json!({"entity": entity, "op": "create", "values": values}),
    )
    .await;
    assert_eq!(settled(fleet, key, &ce_id).await, "applied");
    let found = up.find(fleet, &value).await;
    assert_eq!(found.len(), 1, "created upstream once: {found:?}");
    let run = sync(fleet, &conn, entity, "incremental").await;
    assert_eq!(
        counts(&run),
        (0, 0, 0),
        "the platform's own write is no change: {run}"
    );
    let topic = format!("bac.{key}.{entity}.v1");
    let got = events(fleet, &topic, |got| {
        !of_record(got, entity, &found[0]).is_empty()
    })
    .await;
    assert_eq!(
        of_record(&got, entity, &found[0]),
        HashMap::from([("created".to_string(), 1)])
    );
    let e = got
        .iter()
        .find(|r| r.headers["ce_subject"] == format!("{entity}/{}", found[0]))
        .expect("its event");
    assert_eq!(e.json()["origin"], "platform");
}

/// A record changed on both sides since the last sync: each strategy settles it as it says.
pub async fn conflict_strategies<U: Upstream>(fleet: &Fleet, up: &U) {
    let (key, entity, field) = (up.key(), up.entity(), up.field());
    let conn = up.connect(fleet).await;
    for (strategy, status, winner) in [
        ("prefer_remote", "skipped", "remote"),
        ("prefer_local", "applied", "local"),
        ("manual", "conflict", "remote"),
    ] {
        let (s, body) = fleet
            .call(
                Method::PATCH,
                &format!("/api/v1/integrations/connections/{conn}/sync-settings/{entity}"),
                Some(json!({"conflict_strategy": strategy})),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        let base = unique(strategy);
        let id = up.create(fleet, &base).await;
        sync(fleet, &conn, entity, "incremental").await;
        up.update(fleet, &id, &format!("{base} remote")).await;
        let ce_id = unique(&format!("cmd-{strategy}")).replace(' ', "-");
        command(
            fleet,
            key,
            &ce_id,
            &format!("bac.{key}.{entity}.update"),
            json!({"record_id": id, "values": {field: format!("{base} local")}}),
        )
        .await;
        assert_eq!(settled(fleet, key, &ce_id).await, status, "{strategy}");
        assert_eq!(
            up.read(fleet, &id).await,
            Some(format!("{base} {winner}")),
            "{strategy}"
        );
    }
    let (s, list) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{conn}/conflicts"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        list["conflicts"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
}

/// The provider's webhook feeds the same pipeline in real time: a change becomes its event
/// without a run, the same notice again changes nothing, a deletion is a deletion.
pub async fn webhook_ingest<U: Upstream>(fleet: &Fleet, up: &U) {
    let entity = up.entity();
    let conn = up.connect(fleet).await;
    let id = up.create(fleet, &unique("Pushed")).await;
    let (status, body) = up.notify(fleet, &conn, std::slice::from_ref(&id)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["created"], 1, "{body}");
    let (_, body) = up.notify(fleet, &conn, std::slice::from_ref(&id)).await;
    assert_eq!(body["unchanged"], 1, "{body}");
    up.delete(fleet, &id).await;
    let (_, body) = up.notify(fleet, &conn, std::slice::from_ref(&id)).await;
    assert_eq!(body["deleted"], 1, "{body}");
    let topic = format!("bac.{}.{entity}.v1", up.key());
    let got = events(fleet, &topic, |got| {
        of_record(got, entity, &id).contains_key("deleted")
    })
    .await;
    assert_eq!(
        of_record(&got, entity, &id),
        HashMap::from([("created".to_string(), 1), ("deleted".to_string(), 1)])
    );
}

/// Credentials that expire in the middle of the work are renewed by the connector: the run
/// succeeds and nothing is reported twice.
pub async fn credentials_expire_mid_run<U: Upstream>(fleet: &Fleet, up: &U) {
    let entity = up.entity();
    let conn = up.connect(fleet).await;
    for i in 0..3 {
        up.create(fleet, &unique(&format!("Before expiry {i}")))
            .await;
    }
    let run = sync(fleet, &conn, entity, "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    up.create(fleet, &unique("After expiry")).await;
    up.expire_credentials(fleet).await;
    let run = sync(fleet, &conn, entity, "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(counts(&run), (1, 0, 0), "{run}");
}

/// A replica killed (SIGKILL) in the middle of a backfill: after its lease runs out another
/// takes the run over from the last committed page, and every record is reported once.
pub async fn takeover_after_kill<U: Upstream>(fleet: &mut Fleet, up: &U) {
    let (key, entity) = (up.key(), up.entity());
    let conn = up.connect(fleet).await;
    up.stop_service(fleet).await;
    up.seed(fleet, 50_000).await;
    let total = up.count(fleet).await;
    let db = connect(&fleet.infra.database_url).await;
    let run_id = uuid::Uuid::now_v7();
    db.execute(
        &format!(
            "INSERT INTO {key}.sync_runs (id, tenant_id, connection_id, entity, mode, trigger, status)
             VALUES ($1, $2, $3, $4, 'full', 'manual', 'queued')"
        ),
        &[&run_id, &fleet.tenant, &conn, &entity],
    )
    .await
    .expect("run queued");
    let seen = || {
        let db = &db;
        async move {
            db.query_one(
                &format!("SELECT records_seen FROM {key}.sync_runs WHERE id = $1"),
                &[&run_id],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
        }
    };
    let mut first = Replica(up.replica(fleet));
    let started = wait_until(Duration::from_secs(120), || async { seen().await >= 5_000 }).await;
    assert!(started, "the first replica made no progress");
    first.0.kill().expect("SIGKILL"); // no shutdown: the lease stays until it expires
    let _ = first.0.wait();
    let at_kill = seen().await;
    assert!(
        at_kill < total,
        "killed too late to test a takeover ({at_kill} of {total})"
    );
    let _second = Replica(up.replica(fleet));
    let state = || {
        let db = &db;
        async move {
            db.query_one(
                &format!(
                    "SELECT status, attempts, records_created, coalesce(error, '') FROM {key}.sync_runs WHERE id = $1"
                ),
                &[&run_id],
            )
            .await
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i32>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, String>(3),
                )
            })
            .expect("the run")
        }
    };
    let ended = wait_until(Duration::from_secs(180), || async {
        let (status, _, _, _) = state().await;
        status != "running" && status != "queued"
    })
    .await;
    assert!(ended, "the takeover did not finish");
    let (status, attempts, created, error) = state().await;
    assert_eq!(status, "succeeded", "{error}");
    assert_eq!(attempts, 2, "taken over once");
    assert_eq!(
        created, total,
        "every record created once across both replicas"
    );
    // At least once into Kafka: deduplicated by ce_id, every record has one created event.
    let topic = format!("bac.{key}.{entity}.v1");
    let got = events(fleet, &topic, |got| got.len() >= total as usize).await;
    let mut by_id: HashMap<&str, &str> = HashMap::new();
    for r in &got {
        by_id.insert(
            r.headers["ce_id"].as_str(),
            r.headers["ce_subject"].as_str(),
        );
    }
    let mut per_subject: HashMap<&str, usize> = HashMap::new();
    for subject in by_id.values() {
        *per_subject.entry(subject).or_insert(0) += 1;
    }
    assert_eq!(per_subject.len(), total as usize, "a record is missing");
    assert!(
        per_subject.values().all(|n| *n == 1),
        "a record was created twice"
    );
}
