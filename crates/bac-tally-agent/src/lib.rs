//! `bac-tally-agent` runs beside Tally in the customer's office. It dials out to the fleet
//! (the gateway's gRPC port, its agent key as bearer), opens one long-lived stream
//! (`bac.tally.v1.TallyAgentService/Join`) for its configuration, and posts every XML
//! envelope the fleet sends down it to the local Tally, answering with what Tally answered.
//! Nothing listens at the office. `https://` URLs are TLS (the web's roots, plus
//! `BAC_AGENT_CA_FILE`). A stream that ends or cannot be opened is opened again
//! with backoff (1 s doubling to a minute, with jitter), for ever, until the agent is stopped.
use std::{sync::Arc, time::Duration};

use bac_proto::tally::v1::{
    agent_message, fleet_message, tally_agent_service_client::TallyAgentServiceClient, AgentHello,
    AgentMessage, AgentRequest, AgentResponse, Ping,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    sync::{mpsc, Semaphore},
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, ServerName},
    },
    TlsConnector,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// What the agent needs, from `BAC_AGENT_*` variables.
#[derive(Clone)]
pub struct AgentConfig {
    /// The gateway's gRPC URL (`https://grpc.bac.example.com` in production: TLS, the
    /// server's certificate checked against the web's roots and `ca_file`).
    pub fleet_url: String,
    /// Further trusted certificates (PEM), for a fleet behind a private CA.
    pub ca_file: Option<String>,
    /// The agent key (`POST /api/v1/integrations/tally/agent-key`).
    pub key: String,
    /// The Tally configuration it serves (`con_...`).
    pub connection_id: String,
    /// The local Tally's XML server.
    pub tally_url: String,
    /// How long one Tally request may take.
    pub tally_timeout: Duration,
    /// Requests posted to Tally at once (Tally serves one at a time; more only queue there).
    pub concurrency: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("fleet_url", &self.fleet_url)
            .field("key", &"<redacted>")
            .field("connection_id", &self.connection_id)
            .field("tally_url", &self.tally_url)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl AgentConfig {
    /// `BAC_AGENT_FLEET_URL`, `BAC_AGENT_KEY`, `BAC_AGENT_CONNECTION_ID`, `BAC_AGENT_TALLY_URL`
    /// (default `http://127.0.0.1:9000`), `BAC_AGENT_TALLY_TIMEOUT_MS` (60000),
    /// `BAC_AGENT_CA_FILE` (optional).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<AgentConfig> {
        let need = |k: &str| {
            get(k)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("{k} is required (docs/tally.md: the agent)"))
        };
        let fleet_url = need("BAC_AGENT_FLEET_URL")?;
        if !(fleet_url.starts_with("http://") || fleet_url.starts_with("https://")) {
            anyhow::bail!("BAC_AGENT_FLEET_URL must be an http:// or https:// URL");
        }
        let connection_id = need("BAC_AGENT_CONNECTION_ID")?;
        Ok(AgentConfig {
            fleet_url,
            key: need("BAC_AGENT_KEY")?,
            connection_id,
            ca_file: get("BAC_AGENT_CA_FILE").filter(|v| !v.trim().is_empty()),
            tally_url: get("BAC_AGENT_TALLY_URL").unwrap_or_else(|| "http://127.0.0.1:9000".into()),
            tally_timeout: Duration::from_millis(
                get("BAC_AGENT_TALLY_TIMEOUT_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60_000),
            ),
            concurrency: 2,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        })
    }
}

/// Serves the fleet until `shutdown`, reconnecting with backoff.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(cfg.tally_timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut backoff = cfg.min_backoff;
    loop {
        let welcomed = CancellationToken::new();
        let result = tokio::select! {
            r = session(&cfg, &http, &welcomed) => r,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match result {
            Ok(()) => tracing::info!("the fleet ended the stream; reconnecting"),
            // the whole chain: tonic's "transport error" says nothing without its cause
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the stream to the fleet failed; reconnecting")
            }
        }
        if welcomed.is_cancelled() {
            backoff = cfg.min_backoff;
        }
        let jitter = rand::random::<f64>() * 0.3 + 0.85;
        let wait = backoff.mul_f64(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        backoff = (backoff * 2).min(cfg.max_backoff);
    }
}

/// One stream: hello, then the fleet's requests until it ends.
async fn session(
    cfg: &AgentConfig,
    http: &reqwest::Client,
    welcomed: &CancellationToken,
) -> anyhow::Result<()> {
    let channel = channel(cfg).await?;
    // a window of vouchers in UTF-16 can be large
    let mut client = TallyAgentServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    tx.send(AgentMessage {
        kind: Some(agent_message::Kind::Hello(AgentHello {
            connection_id: cfg.connection_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            hostname: hostname(),
            tally_url: cfg.tally_url.clone(),
        })),
    })
    .await?;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {}", cfg.key).parse()?);
    let mut inbound = client.join(req).await?.into_inner();
    let slots = std::sync::Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    while let Some(msg) = inbound.message().await? {
        match msg.kind {
            Some(fleet_message::Kind::Welcome(w)) => {
                welcomed.cancel();
                tracing::info!(session = %w.session_id, company = %w.company_name, "joined the fleet");
            }
            Some(fleet_message::Kind::Request(r)) => {
                let (tx, http, url, slots) = (
                    tx.clone(),
                    http.clone(),
                    cfg.tally_url.clone(),
                    slots.clone(),
                );
                tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let resp = post(&http, &url, r).await;
                    let _ = tx
                        .send(AgentMessage {
                            kind: Some(agent_message::Kind::Response(resp)),
                        })
                        .await;
                });
            }
            Some(fleet_message::Kind::Ping(p)) => {
                tx.send(AgentMessage {
                    kind: Some(agent_message::Kind::Pong(Ping { nonce: p.nonce })),
                })
                .await?;
            }
            Some(fleet_message::Kind::Pong(_)) | None => {}
        }
    }
    Ok(())
}

/// The connection to the fleet: HTTP/2 in the clear for `http://`, over TLS (ALPN `h2`, the
/// certificate checked for the URL's host) for `https://`.
async fn channel(cfg: &AgentConfig) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(cfg.fleet_url.clone())?
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if !cfg.fleet_url.starts_with("https://") {
        return Ok(endpoint.connect().await?);
    }
    let connector = TlsConnector::from(Arc::new(tls_config(cfg.ca_file.as_deref())?));
    let dial = tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("the fleet URL has no host"))?
                .trim_matches(|c| c == '[' || c == ']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)
                .map_err(|e| std::io::Error::other(format!("the fleet URL's host: {e}")))?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector(dial).await?)
}

/// The web's roots, and the certificates of `ca_file`; HTTP/2 only.
fn tls_config(ca_file: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("BAC_AGENT_CA_FILE {path}: {e}"))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| anyhow::anyhow!("BAC_AGENT_CA_FILE {path}: {e}"))?)?;
            added += 1;
        }
        if added == 0 {
            anyhow::bail!("BAC_AGENT_CA_FILE {path} holds no certificate");
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Posts one envelope to Tally; Tally's answer as it came, or why Tally was not reached.
async fn post(http: &reqwest::Client, url: &str, r: AgentRequest) -> AgentResponse {
    let started = std::time::Instant::now();
    let mut req = http
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .body(r.body);
    if r.timeout_ms > 0 {
        req = req.timeout(Duration::from_millis(u64::from(r.timeout_ms)));
    }
    let out = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match resp.bytes().await {
                Ok(body) => AgentResponse {
                    request_id: r.request_id.clone(),
                    status: u32::from(status),
                    content_type,
                    body: body.to_vec(),
                    error: String::new(),
                },
                Err(e) => failed(&r.request_id, format!("reading Tally's answer: {e}")),
            }
        }
        Err(e) => failed(&r.request_id, e.to_string()),
    };
    tracing::info!(operation = %r.operation, status = out.status, ms = started.elapsed().as_millis() as u64,
        error = %out.error, "posted to Tally");
    out
}

fn failed(id: &str, error: String) -> AgentResponse {
    AgentResponse {
        request_id: id.to_string(),
        status: 0,
        error,
        ..AgentResponse::default()
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_comes_from_the_environment_and_hides_the_key() {
        let env = |k: &str| match k {
            "BAC_AGENT_FLEET_URL" => Some("http://127.0.0.1:50050".to_string()),
            "BAC_AGENT_KEY" => Some("bac_secret".to_string()),
            "BAC_AGENT_CONNECTION_ID" => Some("con_1".to_string()),
            _ => None,
        };
        let cfg = AgentConfig::from_lookup(env).unwrap();
        assert_eq!(cfg.tally_url, "http://127.0.0.1:9000");
        assert!(!format!("{cfg:?}").contains("bac_secret"));
        assert!(AgentConfig::from_lookup(|_| None)
            .unwrap_err()
            .to_string()
            .contains("BAC_AGENT_FLEET_URL is required"));
        let bad = |k: &str| match k {
            "BAC_AGENT_FLEET_URL" => Some("grpc.example.com:443".to_string()),
            _ => env(k),
        };
        assert!(AgentConfig::from_lookup(bad).is_err());
    }
}
