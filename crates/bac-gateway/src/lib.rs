//! `bac-gateway` is the fleet's only public edge: the REST/JSON API under `/api/v1`, API-key
//! authentication and tenant context, and routing to the integration services over gRPC.
//!
//! - [`routes`]: the hand-written REST handlers: tenants, users, keys, grants, audit, connections,
//!   syncs and status (the gateway's own resources and the integration-management contract).
//! - [`transcode`]: every domain route (`/api/v1/odoo/...`), served from the annotated protos.
//! - [`auth`]: API keys and the authenticated [`auth::Principal`].
//! - [`authz`]: the access matrix and delegated grants.
//! - [`catalog`]: the integrations, their connection JSON Schemas and the validator.
//! - [`audit`]: the audit trail (rows and `bac.integrations.audit.v1` events).
//! - [`error`]: the one error shape, and gRPC status -> HTTP mapping.
//! - [`http`]: request ids, per-request span and metrics, error-shape safety net.
//! - [`services`]: gRPC channels to the services (balanced, deadlines, idempotent retry).
//! - [`ratelimit`], [`replicas`], [`edge`], [`settings`]: rate limits (shared by the live replicas), CORS/gzip/timeouts, their `BAC_*` settings.
//! - [`grpc_edge`]: the gRPC port for platform services (keys, access matrix, forwarding).
//! - [`admin`]: `bac-gateway bootstrap` (first tenant and key).
pub mod admin;
pub mod audit;
pub mod audit_feed;
pub mod auth;
pub mod authz;
pub mod catalog;
pub mod edge;
pub mod error;
pub mod grpc_edge;
pub mod http;
pub mod keys;
pub mod openapi;
pub mod ratelimit;
pub mod replicas;
pub mod routes;
pub mod services;
pub mod settings;
pub mod transcode;

use std::{process::ExitCode, sync::Arc};

use axum::{extract::DefaultBodyLimit, middleware, Router};
use bac_runtime::{db::Migration, db::Pool, Config, Running, Runtime, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer};

pub use services::ServiceUrls;
pub use settings::GatewaySettings;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "gateway_0001_tenants_keys",
        sql: include_str!("../migrations/0001_tenants_keys.sql"),
    },
    Migration {
        name: "gateway_0002_grants_audit",
        sql: include_str!("../migrations/0002_grants_audit.sql"),
    },
    Migration {
        name: "gateway_0003_webhooks",
        sql: include_str!("../migrations/0003_webhooks.sql"),
    },
    Migration {
        name: "gateway_0004_key_insert_notify",
        sql: include_str!("../migrations/0004_key_insert_notify.sql"),
    },
    Migration {
        name: "gateway_0005_replicas",
        sql: include_str!("../migrations/0005_replicas.sql"),
    },
    Migration {
        name: "gateway_0006_user_disabled",
        sql: include_str!("../migrations/0006_user_disabled.sql"),
    },
    Migration {
        name: "gateway_0007_oauth_states",
        sql: include_str!("../migrations/0007_oauth_states.sql"),
    },
];

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub struct AppState {
    pub db: Pool,
    pub services: services::Services,
    pub keys: keys::KeyCache,
    pub limits: ratelimit::RateLimits,
    /// Failed authentications per source address.
    pub guard: ratelimit::SourceGuard,
    pub settings: Arc<GatewaySettings>,
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Gateway,
        migrations: MIGRATIONS,
        topics: vec![audit::TOPIC.to_string()],
        grpc_services: vec![],
    }
}

/// The public router with its middleware.
pub fn app(state: Arc<AppState>) -> Router {
    let settings = state.settings.clone();
    let router = routes::router()
        .merge(transcode::fleet_router())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            settings.clone(),
            edge::timeouts,
        ))
        .layer(middleware::from_fn(ratelimit::headers))
        .layer(middleware::from_fn(http::request_context));
    let router = match edge::cors(&settings) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(CompressionLayer::new().gzip(true))
}

/// Starts the gateway with service addresses from the environment.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    let urls = ServiceUrls::from_lookup(|k| std::env::var(k).ok());
    run_with(config, urls).await
}

/// [`run_with_settings`] with the [`GatewaySettings`] of the environment.
pub async fn run_with(config: Config, urls: ServiceUrls) -> anyhow::Result<Running> {
    run_with_settings(config, urls, GatewaySettings::from_env()?).await
}

/// Starts the gateway (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run_with_settings(
    config: Config,
    urls: ServiceUrls,
    settings: GatewaySettings,
) -> anyhow::Result<Running> {
    // The domain routes come from the compiled descriptor set: a broken one stops the start.
    let transcoder = transcode::fleet().map_err(|e| anyhow::anyhow!("the REST transcoder: {e}"))?;
    let api = TcpListener::bind(config.api_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (BAC_API_ADDR): {e}", config.api_addr))?;
    let rt = Runtime::start(config, spec()).await?;
    let keys = keys::KeyCache::default();
    tokio::spawn(
        keys.clone()
            .listen(rt.config.database_url.clone(), rt.shutdown.child_token()),
    );
    let state = Arc::new(AppState {
        db: rt.db.clone(),
        services: services::Services::with_settings(&urls, settings.grpc)?,
        limits: ratelimit::RateLimits::new(settings.rate_per_key, settings.rate_per_tenant),
        guard: ratelimit::SourceGuard::new(settings.rate_unauthenticated),
        settings: Arc::new(settings),
        keys,
    });
    tokio::spawn(replicas::run(state.clone(), rt.shutdown.child_token()));
    tokio::spawn(audit_feed::run(
        rt.db.clone(),
        rt.config.kafka.clone(),
        rt.shutdown.child_token(),
    ));
    tracing::info!(api = %api.local_addr()?, "gateway API listening");
    let edge = tonic::service::Routes::from(grpc_edge::router(state.clone(), transcoder));
    rt.launch(edge, Some((api, app(state)))).await
}

const USAGE: &str = "usage: bac-gateway                      serve (configuration from BAC_* variables)
       bac-gateway bootstrap --tenant ID [--tenant-name NAME] --email EMAIL [--role super_admin|admin|user]
                                         create the tenant and user if missing and print a new API key
       bac-gateway openapi                print the OpenAPI document the gateway serves (for client generators)";

/// `main` of the gateway binary: serve, or run an operator command.
pub fn cli_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => bac_runtime::run_main(ServiceKind::Gateway, run),
        Some("bootstrap") => bootstrap_cli(&args[1..]),
        Some("openapi") => {
            let doc = openapi::document_value();
            match serde_json::to_string_pretty(&doc) {
                Ok(text) => {
                    #[allow(clippy::print_stdout)]
                    {
                        println!("{text}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bac-gateway openapi: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("-h" | "--help" | "help") => {
            eprintln!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("bac-gateway: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn bootstrap_cli(args: &[String]) -> ExitCode {
    let mut b = admin::Bootstrap {
        tenant: String::new(),
        tenant_name: String::new(),
        email: String::new(),
        role: auth::Role::SuperAdmin,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            eprintln!("bac-gateway bootstrap: {flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--tenant" => b.tenant = value.clone(),
            "--tenant-name" => b.tenant_name = value.clone(),
            "--email" => b.email = value.clone(),
            "--role" => match auth::Role::parse(value) {
                Some(r) => b.role = r,
                None => {
                    eprintln!("bac-gateway bootstrap: unknown role {value:?}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("bac-gateway bootstrap: unknown flag {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if b.tenant.is_empty() || b.email.is_empty() {
        eprintln!("bac-gateway bootstrap: --tenant and --email are required\n{USAGE}");
        return ExitCode::from(2);
    }
    if b.tenant_name.is_empty() {
        b.tenant_name = b.tenant.clone();
    }
    let config = match Config::from_env(ServiceKind::Gateway) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bac-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                bac_runtime::db::ensure_database(&config.database_url).await?;
                let pool = bac_runtime::db::pool(&config.database_url, "gateway", 2)?;
                bac_runtime::db::migrate(&pool, "gateway", MIGRATIONS).await?;
                admin::bootstrap(&pool, &b).await
            })
        });
    match result {
        Ok(key) => {
            // The key is the command's output, shown once.
            #[allow(clippy::print_stdout)]
            {
                println!("{key}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bac-gateway bootstrap: {e:#}");
            ExitCode::FAILURE
        }
    }
}
