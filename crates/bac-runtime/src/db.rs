//! PostgreSQL: one pool per process, one schema per service (set as the connections'
//! `search_path`), and migrations embedded in the binary, applied under an advisory lock so
//! three replicas starting together apply each migration exactly once.
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

pub use deadpool_postgres::{Client, Pool, Transaction};
pub use tokio_postgres::types::ToSql;

/// One embedded SQL migration. Applied in list order; identified by `name`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Tables the runtime itself owns in every service schema (the outbox).
pub const RUNTIME_MIGRATIONS: &[Migration] = &[
    Migration {
        name: "runtime_0001_outbox",
        sql: include_str!("../migrations/0001_outbox.sql"),
    },
    Migration {
        name: "runtime_0003_outbox_batches",
        sql: include_str!("../migrations/0003_outbox_batches.sql"),
    },
    Migration {
        name: "runtime_0005_outbox_parked",
        sql: include_str!("../migrations/0005_outbox_parked.sql"),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("postgres pool setup: {0}")]
    Build(String),
    #[error("migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        source: tokio_postgres::Error,
    },
}

/// Parses the URL and pins the schema as search path, so queries use unqualified names.
pub fn pg_config(url: &str, schema: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The URL may hold a password: report only the parser's reason.
        DbError::Url(e.to_string())
    })?;
    cfg.options(format!("-c search_path={schema},public"));
    cfg.application_name(format!("bac-{schema}"));
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    // Half-open connections (a vanished peer) are found by the kernel instead of hanging the
    // relay or a listener forever.
    cfg.keepalives(true);
    cfg.keepalives_idle(std::time::Duration::from_secs(10));
    cfg.keepalives_interval(std::time::Duration::from_secs(5));
    cfg.keepalives_retries(3);
    Ok(cfg)
}

pub fn pool(url: &str, schema: &str, size: usize) -> Result<Pool, DbError> {
    let cfg = pg_config(url, schema)?;
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Build(e.to_string()))
}

/// Creates the URL's database when it does not exist (fresh machines, per-test databases).
pub async fn ensure_database(url: &str) -> Result<(), DbError> {
    let cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    let Some(name) = cfg.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = cfg.clone();
    admin.dbname("postgres");
    let (client, conn) = admin.connect(NoTls).await?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => {}
            // Another replica won the race.
            Err(e)
                if e.code()
                    .is_some_and(|c| c.code() == "42P04" || c.code() == "23505") => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    task.abort();
    Ok(())
}

/// A stable advisory-lock key for a name (same on every replica and every build).
pub fn lock_key(name: &str) -> i64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// Applies the runtime's and the service's migrations that are not applied yet.
pub async fn migrate(pool: &Pool, schema: &str, service: &[Migration]) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let key = lock_key(&format!("bac-migrate:{schema}"));
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await?;
    let result = apply(&mut client, schema, service).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await;
    result?;
    unlock?;
    Ok(())
}

async fn apply(client: &mut Client, schema: &str, service: &[Migration]) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}._migrations (
                 name text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await?;
    for m in RUNTIME_MIGRATIONS.iter().chain(service) {
        let done = client
            .query_opt(
                &format!("SELECT 1 FROM {schema}._migrations WHERE name = $1"),
                &[&m.name],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(&format!("SET LOCAL search_path TO {schema}, public"))
            .await?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| DbError::Migration {
                name: m.name,
                source,
            })?;
        tx.execute(
            &format!("INSERT INTO {schema}._migrations (name) VALUES ($1)"),
            &[&m.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = m.name, schema, "migration applied");
    }
    Ok(())
}

/// `SELECT 1` with a short deadline, for readiness.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
