//! `bac-bench sync`: the sync backfill benchmark of `scripts/bench sync`.
//!
//! Against a running Odoo sandbox and a running `bac-odoo` (separate processes, started by
//! the script on a fresh database, a private Tansu and OpenBao), it:
//!
//! 1. seeds the sandbox with `--records` crm.lead records (`POST /_sandbox/odoo/seed`);
//! 2. creates an Odoo connection through `IntegrationService.CreateConnection` (tenant
//!    metadata as the gateway sends it) and tests it;
//! 3. assigns a Kafka consumer (a fresh group id, every partition of `bac.odoo.crm_lead.v1`
//!    from the beginning) before anything is triggered;
//! 4. t0: `IntegrationService.TriggerSync {entity: crm_lead, mode: full}`; polls
//!    `ListSyncRuns` until the run succeeded (its counts must be `--records`), while the
//!    consumer waits for `--records` distinct `ce_id`s of type `bac.odoo.crm_lead.created`;
//!    t_last: when the last of them arrived. End to end = records / (t_last - t0);
//! 5. explains where the time went from what the engine left in Postgres (each page's outbox
//!    rows carry its transaction time, each relay batch its `published_at`) and from the CPU
//!    time of every process over the run (`/proc`);
//! 6. baselines in the same run: the same canonical rows (read back from the mirror) through
//!    one binary `COPY` into a plain table; the same events (read back from the outbox: key,
//!    headers, payload) produced to a fresh topic by one idempotent `acks=all` FutureProducer,
//!    waiting for every delivery report; and, for reference, the upstream read alone (the
//!    adapter's `search_read` pages from the sandbox, nothing else).
//!
//! Prints one JSON object (the script formats it); progress goes to stderr.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, ensure, Context};
use bac_proto::integration::v1::{
    integration_service_client::IntegrationServiceClient, CreateConnectionRequest,
    ListSyncRunsRequest, SyncRun, TestConnectionRequest, TriggerSyncRequest,
};
use bac_runtime::context::RequestContext;
use bytes::Bytes;
use futures::{pin_mut, stream::FuturesUnordered, StreamExt};
use http::{header, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Offset, TopicPartitionList,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type, NoTls};

const TOPIC: &str = "bac.odoo.crm_lead.v1";
const CREATED: &str = "bac.odoo.crm_lead.created";
/// What the crm_lead adapter reads (crates/bac-odoo/src/sync.rs `ENTITIES`), for the
/// upstream-read reference only.
const LEAD_FIELDS: &[&str] = &[
    "name",
    "partner_name",
    "email_from",
    "phone",
    "expected_revenue",
    "priority",
    "stage_id",
    "create_date",
    "write_date",
    "id",
];

pub const USAGE: &str = "bac-bench sync --grpc URL --database-url URL --brokers HOST:PORT
                      --sandbox HOST:PORT [--records N] [--page-size N] [--tenant T]
                      [--timeout SECS] [--proc NAME=PID]...";

pub struct SyncOpts {
    grpc: String,
    database_url: String,
    database: String,
    brokers: String,
    sandbox: String,
    records: usize,
    page_size: usize,
    tenant: String,
    timeout: Duration,
    procs: Vec<(String, u32)>,
}

impl SyncOpts {
    pub fn parse(args: &[(&str, Option<&str>)]) -> anyhow::Result<SyncOpts> {
        let (mut grpc, mut database_url, mut brokers, mut sandbox) = (None, None, None, None);
        let mut records = 100_000;
        let mut page_size = 2000;
        let mut tenant = "bench".to_string();
        let mut timeout = 600.0;
        let mut procs = Vec::new();
        for (flag, value) in args {
            let v = value.unwrap_or_default();
            match *flag {
                "--grpc" => grpc = Some(v.to_string()),
                "--database-url" => database_url = Some(v.to_string()),
                "--brokers" => brokers = Some(v.to_string()),
                "--sandbox" => sandbox = Some(v.to_string()),
                "--records" => records = v.parse().context("--records")?,
                "--page-size" => page_size = v.parse().context("--page-size")?,
                "--tenant" => tenant = v.to_string(),
                "--timeout" => timeout = v.parse().context("--timeout")?,
                "--proc" => {
                    let (name, pid) = v.split_once('=').context("--proc NAME=PID")?;
                    procs.push((name.to_string(), pid.parse().context("--proc NAME=PID")?));
                }
                _ => bail!("unknown flag {flag}\nusage: {USAGE}"),
            }
        }
        let database_url: String = database_url.context("--database-url is required")?;
        let database = database_url
            .rsplit_once('/')
            .map(|(_, db)| db.split('?').next().unwrap_or(db).to_string())
            .filter(|d| !d.is_empty())
            .context("--database-url must name a database")?;
        ensure!(
            records > 0 && page_size > 0,
            "--records and --page-size must be positive"
        );
        Ok(SyncOpts {
            grpc: grpc.context("--grpc is required")?,
            database_url,
            database,
            brokers: brokers.context("--brokers is required")?,
            sandbox: sandbox.context("--sandbox is required")?,
            records,
            page_size,
            tenant,
            timeout: Duration::from_secs_f64(timeout),
            procs,
        })
    }
}

fn progress(msg: impl std::fmt::Display) {
    eprintln!("[bac-bench sync] {msg}");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        (n as f64 / secs).round()
    } else {
        0.0
    }
}

// ------------------------------------------------------------------ the sandbox (JSON-RPC)

/// One keep-alive HTTP/1.1 connection to the sandbox.
struct Sandbox {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Sandbox {
    async fn connect(addr: &str) -> anyhow::Result<Sandbox> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("sandbox at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Sandbox {
            addr: addr.to_string(),
            sender,
        })
    }

    async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.sender.ready().await?;
        let req = Request::post(path)
            .header(header::HOST, self.addr.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        ensure!(
            status.is_success(),
            "sandbox {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// `model.method(*args, **kwargs)` as admin (uid 2), like any JSON-RPC client.
    async fn execute_kw(
        &mut self,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["demo", 2, "admin", model, method, args, kwargs]}});
        let resp = self.post("/jsonrpc", &body).await?;
        if let Some(e) = resp.get("error") {
            bail!("sandbox {model}.{method}: {e}");
        }
        Ok(resp["result"].clone())
    }

    async fn lead_count(&mut self) -> anyhow::Result<usize> {
        let n = self
            .execute_kw("crm.lead", "search_count", json!([[]]), json!({}))
            .await?;
        Ok(n.as_u64().context("search_count answered no number")? as usize)
    }
}

/// Seeds the sandbox up to `records` leads; returns the seconds it took.
async fn seed(opts: &SyncOpts) -> anyhow::Result<f64> {
    let mut sb = Sandbox::connect(&opts.sandbox).await?;
    let have = sb.lead_count().await?;
    ensure!(
        have <= opts.records,
        "the sandbox already holds {have} leads, more than --records {}",
        opts.records
    );
    let started = Instant::now();
    let mut missing = opts.records - have;
    while missing > 0 {
        let n = missing.min(100_000);
        sb.post(
            "/_sandbox/odoo/seed",
            &json!({"model": "crm.lead", "count": n}),
        )
        .await?;
        missing -= n;
    }
    let took = started.elapsed().as_secs_f64();
    let now = sb.lead_count().await?;
    ensure!(
        now == opts.records,
        "the sandbox holds {now} leads after seeding, not {}",
        opts.records
    );
    Ok(took)
}

/// The adapter's reads alone: every lead in pages of `page_size`, `id > last` order `id`.
async fn upstream_read(opts: &SyncOpts) -> anyhow::Result<(usize, f64)> {
    let mut sb = Sandbox::connect(&opts.sandbox).await?;
    let started = Instant::now();
    let (mut last, mut total) = (0i64, 0usize);
    loop {
        let rows = sb
            .execute_kw(
                "crm.lead",
                "search_read",
                json!([[["id", ">", last]]]),
                json!({"fields": LEAD_FIELDS, "limit": opts.page_size, "order": "id asc"}),
            )
            .await?;
        let rows = rows.as_array().context("search_read answered no list")?;
        total += rows.len();
        if let Some(id) = rows.last().and_then(|r| r["id"].as_i64()) {
            last = id;
        }
        if rows.len() < opts.page_size {
            break;
        }
    }
    Ok((total, started.elapsed().as_secs_f64()))
}

// ------------------------------------------------------------------ CPU accounting (/proc)

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

const TICKS_PER_SEC: f64 = 100.0;

#[derive(Default)]
struct CpuSnap {
    /// (busy, total) ticks of the whole machine.
    machine: (u64, u64),
    /// label -> pid -> ticks.
    groups: HashMap<String, HashMap<u32, u64>>,
}

fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Postgres processes: this database's backends, split by who holds the connection (told
/// apart by `roles`: pid -> label, from `pg_stat_activity` at the end of the run), and the
/// server's own background processes (WAL writer, checkpointer, ...). Backends of other
/// databases are left out.
fn postgres_groups(
    database: &str,
    roles: &HashMap<u32, String>,
    out: &mut HashMap<String, HashMap<u32, u64>>,
) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let needle = format!(" {database} ");
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let group = if cmdline.contains(&needle) {
            roles
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| POOL_BACKENDS.to_string())
        } else if cmdline.contains("127.0.0.1(")
            || cmdline.contains("[local]")
            || cmdline.contains("::1(")
        {
            continue;
        } else {
            "postgres: server background (WAL writer, checkpointer...)".to_string()
        };
        if let Some(t) = proc_ticks(pid) {
            out.entry(group).or_default().insert(pid, t);
        }
    }
}

const POOL_BACKENDS: &str = "postgres: bac-odoo pool backends (sync engine, API)";

/// Who holds each backend of this database: the relay's own connection (its last statement
/// reads or marks `outbox.published_at`), this benchmark's, or bac-odoo's pool.
async fn backend_roles(db: &tokio_postgres::Client) -> HashMap<u32, String> {
    let Ok(rows) = db
        .query(
            "SELECT pid, COALESCE(query, ''), pid = pg_backend_pid() FROM pg_stat_activity
             WHERE datname = current_database()",
            &[],
        )
        .await
    else {
        return HashMap::new();
    };
    rows.iter()
        .map(|r| {
            let (pid, query, mine): (i32, String, bool) = (r.get(0), r.get(1), r.get(2));
            let q = query.to_ascii_lowercase();
            let label = if mine {
                "postgres: bac-bench's connection"
            } else if (q.contains("outbox") && q.contains("published_at"))
                || q.starts_with("listen")
            {
                "postgres: outbox relay's connection"
            } else {
                POOL_BACKENDS
            };
            (pid as u32, label.to_string())
        })
        .collect()
}

fn cpu_snapshot(opts: &SyncOpts, roles: &HashMap<u32, String>) -> CpuSnap {
    let mut groups: HashMap<String, HashMap<u32, u64>> = HashMap::new();
    for (name, pid) in &opts.procs {
        if let Some(t) = proc_ticks(*pid) {
            groups.entry(name.clone()).or_default().insert(*pid, t);
        }
    }
    if let Some(t) = proc_ticks(std::process::id()) {
        groups
            .entry("bac-bench (consumer, poller)".into())
            .or_default()
            .insert(std::process::id(), t);
    }
    postgres_groups(&opts.database, roles, &mut groups);
    CpuSnap {
        machine: machine_ticks(),
        groups,
    }
}

/// `before` with each pid filed under the group `after` has it in.
fn relabel(before: CpuSnap, after: &CpuSnap) -> CpuSnap {
    let mut group_of: HashMap<u32, &String> = HashMap::new();
    for (name, pids) in &after.groups {
        for pid in pids.keys() {
            group_of.insert(*pid, name);
        }
    }
    let mut groups: HashMap<String, HashMap<u32, u64>> = HashMap::new();
    for (name, pids) in before.groups {
        for (pid, t) in pids {
            let g = group_of.get(&pid).map_or(name.clone(), |g| (*g).clone());
            groups.entry(g).or_default().insert(pid, t);
        }
    }
    CpuSnap {
        machine: before.machine,
        groups,
    }
}

/// CPU seconds per group between two snapshots (a process started in between counts whole),
/// plus the machine's busy core-seconds and what no listed process accounts for.
fn cpu_report(before: &CpuSnap, after: &CpuSnap, wall: f64) -> Value {
    let mut groups = serde_json::Map::new();
    let mut ours = 0.0;
    let mut names: Vec<&String> = after.groups.keys().collect();
    names.sort();
    for name in names {
        let mut ticks = 0;
        for (pid, t) in &after.groups[name] {
            let b = before
                .groups
                .get(name)
                .and_then(|g| g.get(pid))
                .copied()
                .unwrap_or(0);
            ticks += t.saturating_sub(b);
        }
        let secs = ticks as f64 / TICKS_PER_SEC;
        ours += secs;
        groups.insert(name.clone(), json!(round3(secs)));
    }
    let busy = after.machine.0.saturating_sub(before.machine.0) as f64 / TICKS_PER_SEC;
    let total = after.machine.1.saturating_sub(before.machine.1) as f64 / TICKS_PER_SEC;
    json!({
        "wall_s": round3(wall),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "machine_busy_core_s": round3(busy),
        "machine_busy_share": if total > 0.0 { round3(busy / total) } else { 0.0 },
        "listed_core_s": round3(ours),
        "unaccounted_core_s": round3((busy - ours).max(0.0)),
        "by_process_core_s": groups,
    })
}

// ------------------------------------------------------------------ Kafka

fn partitions(brokers: &str, topic: &str, within: Duration) -> anyhow::Result<i32> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + within;
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && !t.partitions().is_empty() {
                    return Ok(t.partitions().len() as i32);
                }
            }
        }
        ensure!(
            Instant::now() < deadline,
            "topic {topic} does not exist on {brokers} (bac-odoo's relay declares it at start)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(Default)]
struct Consumed {
    distinct: usize,
    duplicates: usize,
    other_types: usize,
    errors: usize,
    first_error: Option<String>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// (when, distinct so far) every 10,000 records.
    marks: Vec<(Instant, usize)>,
}

/// Reads `topic` from the beginning until `expected` distinct created `ce_id`s arrived,
/// `stop` is set or `deadline` passes.
fn consume(
    consumer: BaseConsumer,
    expected: usize,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Consumed {
    let mut out = Consumed::default();
    let mut seen: HashSet<String> = HashSet::with_capacity(expected);
    while out.distinct < expected && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match msg {
            Ok(m) => m,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
                continue;
            }
        };
        let (mut id, mut ty) = (None, None);
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                match hd.key {
                    "ce_id" => id = hd.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    "ce_type" => ty = hd.value,
                    _ => {}
                }
            }
        }
        if ty != Some(CREATED.as_bytes()) {
            out.other_types += 1;
            continue;
        }
        let Some(id) = id else {
            out.other_types += 1;
            continue;
        };
        if !seen.insert(id) {
            out.duplicates += 1;
            continue;
        }
        let now = Instant::now();
        out.distinct = seen.len();
        out.first_at.get_or_insert(now);
        out.last_at = Some(now);
        if out.distinct % 10_000 == 0 {
            out.marks.push((now, out.distinct));
        }
    }
    out
}

fn assigned_consumer(brokers: &str, topic: &str, parts: i32) -> anyhow::Result<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("bac-bench-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    Ok(c)
}

struct OutboxEvent {
    key: String,
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

/// The same events through one idempotent `acks=all` producer, every delivery awaited.
async fn produce_baseline(
    brokers: &str,
    parts: i32,
    events: &[OutboxEvent],
) -> anyhow::Result<(f64, String)> {
    let topic = format!("bac.bench.produce.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, parts, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in created {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }
    partitions(brokers, &topic, Duration::from_secs(30))?;
    // The relay's settings (bac_runtime::kafka::producer), with room for every event queued.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "bac-bench-produce")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .create()?;
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for e in events {
        let mut h = OwnedHeaders::new_with_capacity(e.headers.len());
        for (k, v) in &e.headers {
            h = h.insert(Header {
                key: k.as_str(),
                value: Some(v.as_str()),
            });
        }
        let mut record = FutureRecord::to(&topic)
            .key(e.key.as_str())
            .payload(e.payload.as_slice())
            .headers(h);
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    // let delivery reports drain
                    if let Some(res) = pending.next().await {
                        check_delivery(res)?;
                    }
                }
                Err((e, _)) => bail!("produce: {e}"),
            }
        }
    }
    while let Some(res) = pending.next().await {
        check_delivery(res)?;
    }
    Ok((started.elapsed().as_secs_f64(), topic))
}

fn check_delivery(
    res: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> anyhow::Result<()> {
    match res {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => bail!("delivery failed: {e}"),
        Err(_) => bail!("delivery report lost (producer dropped)"),
    }
}

// ------------------------------------------------------------------ Postgres

async fn pg(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("postgres {url}"))?;
    tokio::spawn(conn);
    Ok(client)
}

struct Canonical {
    id: String,
    data: Value,
    hash: String,
}

/// The same canonical rows through one binary COPY into a plain table (no index).
async fn copy_baseline(
    client: &tokio_postgres::Client,
    tenant: &str,
    connection: &str,
    rows: &[Canonical],
) -> anyhow::Result<f64> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.bench_copy;
             CREATE TABLE public.bench_copy (id text NOT NULL, tenant_id text NOT NULL,
               connection_id text NOT NULL, entity text NOT NULL, data json NOT NULL,
               content_hash text NOT NULL)",
        )
        .await?;
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY public.bench_copy (id, tenant_id, connection_id, entity, data, content_hash)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::JSON,
            Type::TEXT,
        ],
    );
    pin_mut!(writer);
    let entity = "crm_lead";
    for r in rows {
        writer
            .as_mut()
            .write(&[&r.id, &tenant, &connection, &entity, &r.data, &r.hash])
            .await?;
    }
    let n = writer.finish().await?;
    let took = started.elapsed().as_secs_f64();
    ensure!(
        n as usize == rows.len(),
        "COPY wrote {n} rows, not {}",
        rows.len()
    );
    Ok(took)
}

/// Distribution of the gaps between consecutive distinct times (seconds).
fn gaps(times: &[f64]) -> Value {
    let mut g: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    g.sort_by(f64::total_cmp);
    let pick = |p: f64| -> f64 {
        if g.is_empty() {
            0.0
        } else {
            let rank = ((p / 100.0) * g.len() as f64).ceil() as usize;
            round3(g[rank.clamp(1, g.len()) - 1] * 1000.0)
        }
    };
    let mean = if g.is_empty() {
        0.0
    } else {
        g.iter().sum::<f64>() / g.len() as f64 * 1000.0
    };
    json!({"mean_ms": round3(mean), "p50_ms": pick(50.0), "p90_ms": pick(90.0), "max_ms": pick(100.0)})
}

// ------------------------------------------------------------------ the run

fn grpc_ctx(tenant: &str) -> RequestContext {
    RequestContext {
        tenant_id: tenant.to_string(),
        principal: "bac-bench".into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        traceparent: None,
    }
}

fn run_json(r: &SyncRun) -> Value {
    json!({
        "id": r.id, "status": r.status, "mode": r.mode, "error": r.error,
        "records_seen": r.records_seen, "records_created": r.records_created,
        "records_updated": r.records_updated, "records_deleted": r.records_deleted,
        "records_failed": r.records_failed, "attempts": r.attempts, "duration_ms": r.duration_ms,
        "errors": r.errors.iter().take(5).map(|e| format!("{}: {}", e.record_id, e.message)).collect::<Vec<_>>(),
    })
}

pub async fn run(opts: SyncOpts) -> anyhow::Result<Value> {
    let n = opts.records;
    let db = pg(&opts.database_url).await?;
    crate::sign_as_fleet().await?;

    progress(format!("seeding the sandbox with {n} crm.lead records"));
    let seed_s = seed(&opts).await?;
    progress(format!("seeded in {seed_s:.2} s"));

    let mut grpc = IntegrationServiceClient::connect(opts.grpc.clone())
        .await
        .with_context(|| format!("bac-odoo gRPC at {}", opts.grpc))?
        .max_decoding_message_size(64 * 1024 * 1024);
    let ctx = grpc_ctx(&opts.tenant);
    let connection_id = format!("con_bench{}", uuid::Uuid::now_v7().simple());
    let config: bac_proto::wkt::Struct = serde_json::from_value(json!({
        "url": format!("http://{}", opts.sandbox), "database": "demo", "username": "admin"}))?;
    grpc.create_connection(ctx.request(CreateConnectionRequest {
        id: connection_id.clone(),
        name: "Bench sandbox".into(),
        config: Some(config),
        secrets: HashMap::from([("password".to_string(), "admin".to_string())]),
    }))
    .await
    .context("IntegrationService.CreateConnection")?;
    let tested = grpc
        .test_connection(ctx.request(TestConnectionRequest {
            id: connection_id.clone(),
        }))
        .await
        .context("IntegrationService.TestConnection")?
        .into_inner();
    ensure!(tested.ok, "the connection test failed: {}", tested.message);
    progress(format!("connection {connection_id} created and tested"));

    // The consumer is assigned (no group rebalance to wait for) before t0.
    let parts = partitions(&opts.brokers, TOPIC, Duration::from_secs(30))?;
    let consumer = assigned_consumer(&opts.brokers, TOPIC, parts)?;
    // Connects and fetches offsets of the (empty) topic before t0.
    for _ in 0..10 {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            bail!("{TOPIC} already holds events; the benchmark needs a fresh broker");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + opts.timeout;
    let consumer_task = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || consume(consumer, n, stop, deadline))
    };

    // Backends are labelled by what they ran last, once the run is over (the relay's own
    // connection exists from bac-odoo's start; the pool's may grow during the run).
    let wal_before: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let cpu_before = cpu_snapshot(&opts, &HashMap::new());
    let t0 = Instant::now();
    let t0_unix = unix_now();
    progress(format!(
        "t0: TriggerSync {{{connection_id}, crm_lead, full}}"
    ));
    let triggered = grpc
        .trigger_sync(ctx.request(TriggerSyncRequest {
            connection_id: connection_id.clone(),
            entity: "crm_lead".into(),
            mode: "full".into(),
        }))
        .await
        .context("IntegrationService.TriggerSync")?
        .into_inner();
    let run_id = triggered.sync_run_id.clone();
    ensure!(!run_id.is_empty(), "TriggerSync returned no run id");

    let mut marks: Vec<(f64, u64)> = Vec::new();
    let (run, t_run) = loop {
        let runs = grpc
            .list_sync_runs(ctx.request(ListSyncRunsRequest {
                connection_id: connection_id.clone(),
                entity: "crm_lead".into(),
                limit: 20,
            }))
            .await
            .context("IntegrationService.ListSyncRuns")?
            .into_inner()
            .runs;
        let now = t0.elapsed().as_secs_f64();
        if let Some(r) = runs.into_iter().find(|r| r.id == run_id) {
            let seen = u64::from(r.records_seen);
            if marks.last().is_none_or(|m| m.1 != seen) {
                marks.push((round3(now), seen));
            }
            match r.status.as_str() {
                "succeeded" => break (r, now),
                "failed" => {
                    stop.store(true, Ordering::Relaxed);
                    bail!(
                        "the sync run failed after {now:.2} s: {}\nrun: {}",
                        r.error,
                        run_json(&r)
                    );
                }
                _ => {}
            }
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                bail!(
                    "the sync run did not end within {:?}: {}",
                    opts.timeout,
                    run_json(&r)
                );
            }
        } else if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            bail!("run {run_id} is not listed by ListSyncRuns");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    progress(format!(
        "run succeeded at {t_run:.2} s: seen {} created {} failed {}",
        run.records_seen, run.records_created, run.records_failed
    ));
    let consumed = consumer_task.await?;
    let roles = backend_roles(&db).await;
    let cpu_after = cpu_snapshot(&opts, &roles);
    // The labels are known only now: file the first snapshot's backends under them too.
    let cpu_before = relabel(cpu_before, &cpu_after);
    let wal_bytes: f64 = db
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8",
            &[&wal_before],
        )
        .await?
        .get(0);
    let t_end = t0.elapsed().as_secs_f64();
    let t_last = consumed.last_at.map(|t| t.duration_since(t0).as_secs_f64());
    if consumed.distinct < n {
        bail!(
            "only {} of {n} created events arrived within {:?} (duplicates {}, other types {}, \
             consumer errors {}: {:?}); run: {}",
            consumed.distinct,
            opts.timeout,
            consumed.duplicates,
            consumed.other_types,
            consumed.errors,
            consumed.first_error,
            run_json(&run)
        );
    }
    let t_last = t_last.unwrap_or(t_end);
    ensure!(
        u64::from(run.records_seen) == n as u64
            && u64::from(run.records_created) == n as u64
            && run.records_failed == 0,
        "the run's counts are not {n} seen / {n} created / 0 failed: {}",
        run_json(&run)
    );
    progress(format!("last created event consumed at {t_last:.2} s"));

    // Where the time went, from what the engine left in Postgres.
    let r = db
        .query_one(
            "SELECT extract(epoch FROM queued_at)::float8, extract(epoch FROM started_at)::float8,
                    extract(epoch FROM finished_at)::float8
             FROM odoo.sync_runs WHERE id = $1::text::uuid",
            &[&run_id],
        )
        .await
        .context("reading odoo.sync_runs")?;
    let (queued, started, finished): (f64, Option<f64>, Option<f64>) =
        (r.get(0), r.get(1), r.get(2));
    // A page's events are one outbox_batches row (its transaction's now() and its relay
    // round's published_at).
    let rows = db
        .query(
            "SELECT extract(epoch FROM created_at)::float8, extract(epoch FROM published_at)::float8,
                    event_count
             FROM odoo.outbox_batches WHERE topic = $1 ORDER BY id",
            &[&TOPIC],
        )
        .await?;
    let relayed: usize = rows.iter().map(|r| r.get::<_, i32>(2) as usize).sum();
    let mut commits: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(0)).collect();
    commits.dedup();
    let mut published: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<f64>>(1))
        .collect();
    published.sort_by(f64::total_cmp);
    published.dedup();
    let rel = |t: f64| round3(t - t0_unix);
    let first_commit = commits.first().copied().unwrap_or(t0_unix);
    let last_commit = commits.last().copied().unwrap_or(t0_unix);
    let last_published = published.last().copied().unwrap_or(t0_unix);
    let first_published = published.first().copied().unwrap_or(t0_unix);
    let relay_window = last_published - first_commit;
    let timeline = json!({
        "queued_s": rel(queued),
        "started_s": started.map(rel),
        "finished_s": finished.map(rel),
        "run_duration_s": match (started, finished) { (Some(s), Some(f)) => round3(f - s), _ => 0.0 },
        "pages": commits.len(),
        "first_page_tx_s": rel(first_commit),
        "last_page_tx_s": rel(last_commit),
        "page_interval": gaps(&commits),
        "relay_batches": published.len(),
        "first_published_s": rel(first_published),
        "last_published_s": rel(last_published),
        "relay_batch_interval": gaps(&published),
        "relay_records_per_s": rate(relayed, relay_window),
        "pages_records_per_s": rate(n, last_commit - first_commit),
        "outbox_rows": rows.len(),
        "run_progress": marks.iter().map(|(t, s)| json!([t, s])).collect::<Vec<_>>(),
        "consumer_progress": consumed.marks.iter()
            .map(|(t, c)| json!([round3(t.duration_since(t0).as_secs_f64()), c])).collect::<Vec<_>>(),
        "first_event_consumed_s": consumed.first_at.map(|t| round3(t.duration_since(t0).as_secs_f64())),
    });
    let cpu = cpu_report(&cpu_before, &cpu_after, t_end);

    // Baselines.
    progress("reference: the upstream read alone");
    let (read_n, read_s) = upstream_read(&opts).await?;
    ensure!(
        read_n == n,
        "the upstream read returned {read_n} records, not {n}"
    );

    let canonical: Vec<Canonical> = db
        .query(
            "SELECT remote_id, data, content_hash FROM odoo.sync_records
             WHERE tenant_id = $1 AND connection_id = $2 AND entity = 'crm_lead'",
            &[&opts.tenant, &connection_id],
        )
        .await?
        .into_iter()
        .map(|r| Canonical {
            id: r.get(0),
            data: r.get(1),
            hash: r.get(2),
        })
        .collect();
    ensure!(
        canonical.len() == n,
        "the mirror holds {} rows, not {n}",
        canonical.len()
    );
    let row_bytes: usize = canonical
        .iter()
        .map(|c| c.id.len() + c.hash.len() + c.data.to_string().len())
        .sum();
    progress("baseline (1): COPY of the same canonical rows");
    let copy_s = copy_baseline(&db, &opts.tenant, &connection_id, &canonical).await?;
    drop(canonical);

    let events: Vec<OutboxEvent> = rows_to_events(
        db.query(
            "SELECT events FROM odoo.outbox_batches WHERE topic = $1 ORDER BY id",
            &[&TOPIC],
        )
        .await?,
    )?;
    ensure!(
        events.len() == n,
        "the outbox holds {} events, not {n}",
        events.len()
    );
    let payload_bytes: usize = events.iter().map(|e| e.payload.len()).sum();
    let header_bytes: usize = events
        .iter()
        .flat_map(|e| e.headers.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    progress("baseline (2): produce of the same events");
    let (produce_s, produce_topic) = produce_baseline(&opts.brokers, parts, &events).await?;

    let e2e_s = t_last;
    Ok(json!({
        "records": n,
        "page_size": opts.page_size,
        "seed_s": round3(seed_s),
        "connection_id": connection_id,
        "run": run_json(&run),
        "e2e": {
            "records_per_s": rate(n, e2e_s),
            "last_event_s": round3(e2e_s),
            "run_succeeded_s": round3(t_run),
            "duplicates": consumed.duplicates,
            "other_events": consumed.other_types,
            "consumer_errors": consumed.errors,
        },
        "timeline": timeline,
        "cpu": cpu,
        "wal_bytes_per_record": (wal_bytes / n as f64).round(),
        "upstream_read": {"records_per_s": rate(read_n, read_s), "seconds": round3(read_s)},
        "copy": {"records_per_s": rate(n, copy_s), "seconds": round3(copy_s),
                 "mean_row_bytes": row_bytes / n.max(1)},
        "produce": {"records_per_s": rate(n, produce_s), "seconds": round3(produce_s),
                    "topic": produce_topic, "partitions": parts,
                    "mean_payload_bytes": payload_bytes / n.max(1),
                    "mean_header_bytes": header_bytes / n.max(1)},
        "ratios": {
            "e2e_over_copy": round3(copy_s / e2e_s),
            "e2e_over_produce": round3(produce_s / e2e_s),
        },
    }))
}

fn rows_to_events(rows: Vec<tokio_postgres::Row>) -> anyhow::Result<Vec<OutboxEvent>> {
    let mut out = Vec::new();
    for r in rows {
        let blob: Vec<u8> = r.get(0);
        let events = bac_runtime::outbox::decode_batch(&blob)
            .map_err(|e| anyhow::anyhow!("an outbox batch row cannot be read: {e}"))?;
        out.extend(events.into_iter().map(|e| {
            OutboxEvent {
                key: e.key.to_string(),
                headers: e
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                payload: e.payload.to_vec(),
            }
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_of_sorted_times() {
        let g = gaps(&[0.0, 0.1, 0.3, 0.6]);
        assert_eq!(g["max_ms"], 300.0);
        assert_eq!(g["p50_ms"], 200.0);
        assert_eq!(gaps(&[1.0])["mean_ms"], 0.0);
    }

    #[test]
    fn options_name_the_database() {
        let args = [
            ("--grpc", Some("http://127.0.0.1:1")),
            (
                "--database-url",
                Some("postgres://postgres@127.0.0.1:5432/bac_bench_sync_1"),
            ),
            ("--brokers", Some("127.0.0.1:2")),
            ("--sandbox", Some("127.0.0.1:3")),
            ("--proc", Some("bac-odoo=42")),
        ];
        let o = SyncOpts::parse(&args).unwrap();
        assert_eq!(o.database, "bac_bench_sync_1");
        assert_eq!(o.records, 100_000);
        assert_eq!(o.procs, vec![("bac-odoo".to_string(), 42)]);
        assert!(SyncOpts::parse(&args[1..]).is_err(), "--grpc missing");
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        assert!(proc_ticks(std::process::id()).is_some());
        let (busy, total) = machine_ticks();
        assert!(total >= busy && total > 0);
    }
}
