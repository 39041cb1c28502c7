//! Process bootstrap shared by every binary: [`Runtime::start`] binds the listeners, connects
//! Postgres (applying migrations), Vault and Kafka and starts the outbox relay;
//! [`Runtime::launch`] serves gRPC (with health and reflection), the admin HTTP server
//! (`/healthz`, `/readyz`, `/metrics`) and, for the gateway, the public API, until shutdown.
//! [`run_main`] is the whole of every `main.rs`.
use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use deadpool_postgres::Pool;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::{
    config::{Config, ServiceKind},
    db::{self, Migration},
    kafka,
    observe::{metrics_handle, GrpcObserveLayer},
    outbox::Relay,
    vault::Vault,
};

/// What a service declares about itself.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    pub migrations: &'static [Migration],
    /// Kafka topics it publishes to (created at start when missing).
    pub topics: Vec<String>,
    /// Fully-qualified gRPC service names reported by `grpc.health.v1`.
    pub grpc_services: Vec<&'static str>,
}

/// Connected infrastructure and bound listeners, before serving.
pub struct Runtime {
    pub config: Config,
    pub spec: ServiceSpec,
    pub db: Pool,
    pub vault: Vault,
    pub shutdown: CancellationToken,
    readiness: Arc<Readiness>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

/// A launched process: its addresses and the handle that stops it.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Kafka's SASL credentials from Vault (`BAC_KAFKA_SASL_VAULT_PATH`: a KV v2 secret with
/// `username` and `password`) when the environment does not carry the password.
async fn kafka_credentials_from_vault(config: &mut Config, vault: &Vault) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let security = &mut config.kafka.security;
    let Some(path) = security.sasl_vault_path.clone() else {
        return Ok(());
    };
    if security.sasl_password.is_some() {
        return Ok(());
    }
    let secret = vault
        .read(&path)
        .await
        .map_err(|e| anyhow::anyhow!("reading Kafka's credentials from Vault ({path}): {e}"))?
        .ok_or_else(|| anyhow::anyhow!("BAC_KAFKA_SASL_VAULT_PATH: no secret at {path}"))?;
    let field = |k: &str| {
        secret
            .data
            .get(k)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the Vault secret {path} has no {k}"))
    };
    if security.sasl_username.is_none() {
        security.sasl_username = Some(field("username")?.expose_secret().to_string());
    }
    security.sasl_password = Some(field("password")?);
    Ok(())
}

impl Runtime {
    pub async fn start(mut config: Config, spec: ServiceSpec) -> anyhow::Result<Runtime> {
        // Install the recorder before anything records a metric.
        metrics_handle();
        let grpc_listener = bind(config.grpc_addr, "BAC_GRPC_ADDR").await?;
        let http_listener = bind(config.http_addr, "BAC_HTTP_ADDR").await?;
        let schema = spec.kind.schema();
        connect_postgres(&config.database_url).await?;
        let pool = db::pool(&config.database_url, schema, config.database_pool_size)?;
        db::migrate(&pool, schema, spec.migrations).await?;
        let vault = Vault::new(config.vault.clone())?;
        kafka_credentials_from_vault(&mut config, &vault).await?;
        crate::context::load_signing_key(&vault)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading the fleet's context key from Vault ({}): {e}",
                    crate::context::SIGNING_KEY_PATH
                )
            })?;
        let probe = kafka::producer(&config.kafka, &format!("bac-{schema}-probe"))?;
        let shutdown = CancellationToken::new();
        if !spec.topics.is_empty() {
            let relay = Relay {
                database_url: config.database_url.clone(),
                schema: schema.to_string(),
                kafka: config.kafka.clone(),
                topics: spec.topics.clone(),
                // A sync page commits 1,000 events at once; one round trip per page keeps up.
                batch_size: 1000,
            };
            tokio::spawn(relay.run(shutdown.child_token()));
        }
        if spec.kind != ServiceKind::Gateway {
            tokio::spawn(vault.clone().listen_for_changes(
                config.database_url.clone(),
                schema.to_string(),
                spec.kind.key().to_string(),
                shutdown.child_token(),
            ));
        }
        tokio::spawn(crate::retention::run(
            pool.clone(),
            schema.to_string(),
            config.retention,
            shutdown.child_token(),
        ));
        let readiness = Arc::new(Readiness {
            db: pool.clone(),
            kafka: probe,
            vault: vault.clone(),
        });
        tracing::info!(
            service = spec.kind.binary(),
            grpc = %grpc_listener.local_addr()?,
            http = %http_listener.local_addr()?,
            "started"
        );
        Ok(Runtime {
            config,
            spec,
            db: pool,
            vault,
            shutdown,
            readiness,
            grpc_listener,
            http_listener,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .unwrap_or(self.config.grpc_addr)
    }

    /// Serves until [`Running::shutdown`] is cancelled, then drains within the grace period.
    pub async fn launch(
        self,
        routes: Routes,
        public: Option<(TcpListener, Router)>,
    ) -> anyhow::Result<Running> {
        let grpc_addr = self.grpc_listener.local_addr()?;
        let http_addr = self.http_listener.local_addr()?;
        let api_addr = match &public {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let shutdown = self.shutdown.clone();
        let task = tokio::spawn(self.serve(routes, public));
        Ok(Running {
            grpc_addr,
            http_addr,
            api_addr,
            shutdown,
            task,
        })
    }

    async fn serve(
        self,
        routes: Routes,
        public: Option<(TcpListener, Router)>,
    ) -> anyhow::Result<()> {
        let (mut reporter, health) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bac_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let token = self.shutdown.clone();
        let grace = self.config.shutdown_grace;

        // Readiness drives gRPC health too, so Kubernetes gRPC probes see what /readyz sees.
        let names: Vec<&'static str> = self.spec.grpc_services.clone();
        let readiness = self.readiness.clone();
        let watcher_token = token.clone();
        let watcher = tokio::spawn(async move {
            loop {
                let status = if readiness.check().await.0 {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                for n in &names {
                    reporter.set_service_status(*n, status).await;
                }
                tokio::select! {
                    _ = watcher_token.cancelled() => {
                        reporter.set_service_status("", ServingStatus::NotServing).await;
                        for n in &names {
                            reporter.set_service_status(*n, ServingStatus::NotServing).await;
                        }
                        return;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        });

        let grpc_token = token.clone();
        let grpc = tonic::transport::Server::builder()
            .layer(GrpcObserveLayer {
                service: self.spec.kind.binary(),
            })
            .add_routes(routes)
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.grpc_listener), async move {
                grpc_token.cancelled().await
            });

        let admin_token = token.clone();
        let admin = axum::serve(self.http_listener, admin_router(self.readiness.clone()))
            .with_graceful_shutdown(async move { admin_token.cancelled().await });

        let api = async move {
            match public {
                Some((listener, router)) => {
                    let t = token.clone();
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async move { t.cancelled().await })
                    .await
                }
                None => Ok(()),
            }
        };

        let all = async {
            tokio::try_join!(
                async { grpc.await.map_err(anyhow::Error::from) },
                async { admin.await.map_err(anyhow::Error::from) },
                async { api.await.map_err(anyhow::Error::from) }
            )
        };
        tokio::pin!(all);
        let result = tokio::select! {
            r = &mut all => r.map(|_| ()),
            _ = self.shutdown.cancelled() => {
                match tokio::time::timeout(grace, &mut all).await {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => {
                        tracing::warn!(grace_secs = grace.as_secs(), "drain deadline passed; closing");
                        Ok(())
                    }
                }
            }
        };
        watcher.abort();
        result
    }
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({var}): {e}"))
}

/// Waits briefly for Postgres (a replica may start before the database) and creates the
/// database when it is missing.
async fn connect_postgres(url: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..10 {
        match db::ensure_database(url).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(anyhow::anyhow!(
        "postgres is not reachable (BAC_DATABASE_URL): {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Real checks of every dependency, each under a short deadline.
pub struct Readiness {
    db: Pool,
    kafka: FutureProducer,
    vault: Vault,
}

impl Readiness {
    pub async fn check(&self) -> (bool, serde_json::Value) {
        let deadline = Duration::from_secs(3);
        let timed = |f: futures::future::BoxFuture<'static, Result<(), String>>| async move {
            tokio::time::timeout(deadline, f)
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
        };
        let db = self.db.clone();
        let k = self.kafka.clone();
        let v = self.vault.clone();
        let (pg, kf, vt) = tokio::join!(
            timed(Box::pin(async move { db::ping(&db).await })),
            timed(Box::pin(async move { kafka::ping(&k).await })),
            timed(Box::pin(async move { v.ping().await })),
        );
        let ok = pg.is_ok() && kf.is_ok() && vt.is_ok();
        let show = |r: &Result<(), String>| match r {
            Ok(()) => json!("ok"),
            Err(e) => json!({ "error": e }),
        };
        (
            ok,
            json!({ "postgres": show(&pg), "kafka": show(&kf), "vault": show(&vt) }),
        )
    }
}

fn admin_router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(|| async { metrics_handle().render() }))
        .with_state(readiness)
}

async fn readyz(State(r): State<Arc<Readiness>>) -> impl IntoResponse {
    let (ok, checks) = r.check().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ok { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body))
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The body of every `main`: config, telemetry, build, serve until a signal.
pub fn run_main<F, Fut>(kind: ServiceKind, build: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    let config = match Config::from_env(kind) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", kind.binary());
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", kind.binary());
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let _telemetry = crate::telemetry::init(&config)?;
        let running = match build(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "start failed");
                return Err(e);
            }
        };
        let token = running.shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; draining");
            token.cancel();
        });
        running.wait().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e:#}", kind.binary());
            ExitCode::FAILURE
        }
    }
}
