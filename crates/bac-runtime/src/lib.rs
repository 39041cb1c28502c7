//! `bac-runtime` is everything the six BAC binaries share, written once.
//!
//! - [`clock`]: the injectable wall clock of code that decides on expiry.
//! - [`config`]: `BAC_*` environment configuration with defaults and validation.
//! - [`telemetry`] and [`observe`]: JSON logs, OTLP traces, Prometheus metrics, per-call spans.
//! - [`server`]: start-up (listeners, Postgres, Vault, Kafka), gRPC with health and
//!   reflection, `/healthz` `/readyz` `/metrics`, graceful drain; `run_main` for `main.rs`.
//! - [`context`]: tenant, principal, request id and traceparent in gRPC metadata.
//! - [`db`]: the Postgres pool and embedded migrations under an advisory lock.
//! - [`outbox`], [`events`], [`kafka`]: a change and its CloudEvent commit together; the relay
//!   publishes to Kafka with an idempotent producer; topics are declared, never auto-created.
//! - [`vault`]: KV v2 secrets with check-and-set, token or AppRole auth.
//! - [`upstream`]: the HTTP client for provider APIs (quota, retries, deadline, metrics).
//! - [`connections`]: connection settings in Postgres, their secrets in Vault.
//! - [`not_built`]: the shared stand-in gRPC service of integrations not built yet.
//! - [`error`]: `error_code`s and their gRPC form.
pub mod clock;
pub mod config;
pub mod connections;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod kafka;
pub mod not_built;
pub mod observe;
pub mod outbox;
pub mod retention;
pub mod server;
pub mod telemetry;
pub mod upstream;
pub mod vault;
pub mod wkt;

pub use config::{Config, ServiceKind};
pub use context::RequestContext;
pub use error::{ErrorCode, ServiceError};
pub use server::{run_main, Running, Runtime, ServiceSpec};

/// Every binary (and test) linking the runtime allocates with mimalloc: a sync page builds and
/// drops hundreds of thousands of small JSON values, and glibc's malloc spent a quarter of
/// bac-odoo's CPU on them in `scripts/bench sync` (perf: `_int_malloc`, `_int_free`,
/// `malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
