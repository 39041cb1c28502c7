//! IMAP: reads the INBOX of every email connection that names an `imap_host`, for what the
//! SMTP answer cannot say: a bounce comes back later, as mail. The mailbox is read from the
//! UID after the last one read (kept with its UIDVALIDITY in `imap_cursors`; a new
//! UIDVALIDITY reads it again from the start), by one replica at a time (an advisory lock per
//! connection), with `BODY.PEEK[]` so nothing is marked read for the people who share the
//! mailbox. A DSN ([`crate::dsn`]) about a `sent` delivery of the connection makes it `bounced`
//! with the diagnostic as reason and its event; a reply to a delivery is published on
//! `bac.messaging.reply.v1`. The server's name is checked against the
//! egress policy as for SMTP; `imap_security` is `tls` (port 993, certificate checked against
//! the name) or `none`.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Pool,
    upstream::egress::EgressPolicy,
    ErrorCode, ServiceError,
};
use futures::StreamExt;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::{connector::channel_of, deliveries, dsn};

/// At most this many messages are read from one mailbox a pass.
const BATCH: usize = 200;

/// Reads the connections' mailboxes every `every`.
#[derive(Clone)]
pub struct Reader {
    db: Pool,
    store: ConnectionStore,
    calls: bac_connector::Calls,
    egress: EgressPolicy,
    timeout: Duration,
    every: Duration,
}

fn unavailable(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("messaging", ErrorCode::UpstreamUnavailable, msg)
}

use crate::db_err;

/// `BAC_MESSAGING_IMAP_POLL_SECS` (default 60).
pub fn every_from_env() -> Duration {
    Duration::from_secs(
        std::env::var("BAC_MESSAGING_IMAP_POLL_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(60)
            .max(1),
    )
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

impl Reader {
    pub fn new(
        db: Pool,
        store: ConnectionStore,
        calls: bac_connector::Calls,
        egress: EgressPolicy,
        timeout: Duration,
        every: Duration,
    ) -> Self {
        Reader {
            db,
            store,
            calls,
            egress,
            timeout,
            every,
        }
    }

    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                self.pass().await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.every) => {}
                }
            }
        });
    }

    /// Reads every mailbox once.
    async fn pass(&self) {
        let all = match self.store.all().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e.message, "listing connections for IMAP failed");
                return;
            }
        };
        let mailboxes = all
            .into_iter()
            .filter(|r| channel_of(r) == "email" && !r.setting("imap_host").is_empty());
        futures::stream::iter(mailboxes)
            .for_each_concurrent(8, |rec| async move {
                let started = std::time::Instant::now();
                let result = self.read(&rec).await;
                if let Err(e) = &result {
                    tracing::warn!(connection = %rec.id, tenant = %rec.tenant_id, error = %e.message, "reading the mailbox failed");
                }
                if !matches!(result, Ok(None)) {
                    bac_connector::calls::record(
                        &self.db,
                        &rec.tenant_id,
                        &rec.id,
                        "imap.read",
                        result.as_ref().err(),
                        started.elapsed(),
                    )
                    .await;
                    self.calls.forget_statuses();
                }
            })
            .await;
    }

    /// Reads one mailbox from its cursor; how many messages (`None`: another replica holds it).
    async fn read(&self, rec: &ConnectionRecord) -> Result<Option<usize>, ServiceError> {
        let lock = self.db.get().await.map_err(db_err)?;
        let key = format!("messaging-imap/{}", rec.id);
        let locked: bool = lock
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(db_err)?
            .get(0);
        if !locked {
            return Ok(None);
        }
        let result = tokio::time::timeout(self.timeout * 4, self.read_locked(rec))
            .await
            .unwrap_or_else(|_| Err(unavailable("the IMAP server did not finish in time")));
        let _ = lock
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&key],
            )
            .await;
        result.map(Some)
    }

    async fn read_locked(&self, rec: &ConnectionRecord) -> Result<usize, ServiceError> {
        let secret = self.store.secret(rec).await?;
        let password = secret
            .data
            .get("password")
            .map(|p| p.expose_secret().to_string())
            .unwrap_or_default();
        let host = rec.setting("imap_host").to_string();
        let tls = rec.setting("imap_security") != "none";
        let port = rec
            .config
            .get("imap_port")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(if tls { 993 } else { 143 });
        let addr = self.address(&host, port).await?;
        let tcp = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| unavailable(format!("the IMAP server {host}:{port} did not answer")))?
            .map_err(|e| {
                unavailable(format!(
                    "cannot connect to the IMAP server {host}:{port}: {e}"
                ))
            })?;
        let stream: Box<dyn Stream> = if tls {
            Box::new(tls_stream(&host, tcp).await?)
        } else {
            Box::new(tcp)
        };
        let (cursor_validity, cursor_uid) = self.cursor(rec).await?;
        let mut client = async_imap::Client::new(stream);
        client
            .read_response()
            .await
            .map_err(|e| unavailable(format!("IMAP greeting: {e}")))?
            .ok_or_else(|| unavailable("the IMAP server closed the connection"))?;
        let mut session = client
            .login(rec.setting("username"), &password)
            .await
            .map_err(|(e, _)| {
                ServiceError::new(
                    "messaging",
                    ErrorCode::InvalidCredentials,
                    format!("IMAP login refused: {e}"),
                )
                .suggest("Verify the username and password (the IMAP login is the SMTP one)")
            })?;
        let mailbox = session
            .examine("INBOX")
            .await
            .map_err(|e| unavailable(format!("IMAP EXAMINE INBOX: {e}")))?;
        let validity = i64::from(mailbox.uid_validity.unwrap_or(0));
        let after = if validity == cursor_validity {
            cursor_uid
        } else {
            0
        };
        let found = session
            .uid_search(format!("UID {}:*", after + 1))
            .await
            .map_err(|e| unavailable(format!("IMAP UID SEARCH: {e}")))?;
        // `n:*` always matches the last message, even one below n
        let mut uids: Vec<u32> = found
            .into_iter()
            .filter(|u| i64::from(*u) > after)
            .collect();
        uids.sort_unstable();
        uids.truncate(BATCH);
        let mut last = after;
        let mut bounced = 0usize;
        if !uids.is_empty() {
            let set = uids
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let mut fetched: Vec<(u32, Vec<u8>)> = Vec::new();
            {
                let mut stream = session
                    .uid_fetch(set, "(UID BODY.PEEK[])")
                    .await
                    .map_err(|e| unavailable(format!("IMAP UID FETCH: {e}")))?;
                while let Some(item) = stream.next().await {
                    let f = item.map_err(|e| unavailable(format!("IMAP FETCH: {e}")))?;
                    if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                        fetched.push((uid, body.to_vec()));
                    }
                }
            }
            fetched.sort_by_key(|(u, _)| *u);
            for (uid, body) in fetched {
                if let Some(r) = dsn::reply(&body) {
                    match deliveries::reply(&self.db, rec, &r).await {
                        Ok(_) => {}
                        Err(e) if e.code == ErrorCode::InvalidRequest => {
                            tracing::warn!(connection = %rec.id, uid, error = %e.message, "reply skipped");
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let Some(b) = dsn::read(&body) {
                    match deliveries::bounce(&self.db, rec, &b).await {
                        Ok(Some(_)) => bounced += 1,
                        Ok(None) => {}
                        // a message that can never be recorded must not stop the mailbox
                        Err(e) if e.code == ErrorCode::InvalidRequest => {
                            tracing::warn!(connection = %rec.id, uid, error = %e.message, "bounce skipped");
                        }
                        Err(e) => return Err(e),
                    }
                }
                last = last.max(i64::from(uid));
            }
        }
        let _ = session.logout().await;
        self.keep_cursor(rec, validity, last).await?;
        if bounced > 0 {
            tracing::info!(connection = %rec.id, tenant = %rec.tenant_id, bounced, "bounces read over IMAP");
        }
        Ok(uids.len())
    }

    async fn address(&self, host: &str, port: u16) -> Result<SocketAddr, ServiceError> {
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unavailable(format!("the IMAP server {host} does not resolve: {e}")))?;
        let allowed = self.egress.filter(host, found).map_err(|r| {
            ServiceError::new(
                "messaging",
                ErrorCode::UpstreamAddressNotAllowed,
                r.to_string(),
            )
        })?;
        allowed
            .into_iter()
            .next()
            .ok_or_else(|| unavailable(format!("the IMAP server {host} has no address")))
    }

    async fn cursor(&self, rec: &ConnectionRecord) -> Result<(i64, i64), ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        Ok(client
            .query_opt(
                "SELECT uid_validity, last_uid FROM imap_cursors WHERE connection_id = $1",
                &[&rec.id],
            )
            .await
            .map_err(db_err)?
            .map(|r| (r.get(0), r.get(1)))
            .unwrap_or((-1, 0)))
    }

    async fn keep_cursor(
        &self,
        rec: &ConnectionRecord,
        validity: i64,
        last: i64,
    ) -> Result<(), ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        client
            .execute(
                "INSERT INTO imap_cursors (connection_id, tenant_id, uid_validity, last_uid)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connection_id) DO UPDATE
                   SET uid_validity = EXCLUDED.uid_validity, last_uid = EXCLUDED.last_uid,
                       updated_at = now()",
                &[&rec.id, &rec.tenant_id, &validity, &last],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// TLS from the first byte, the certificate checked against `host` with the web's roots.
async fn tls_stream(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ServiceError> {
    use tokio_rustls::rustls;
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServiceError::internal("messaging", format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| crate::bad(format!("imap_host {host:?} is not a host name")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| unavailable(format!("TLS with the IMAP server {host}: {e}")))
}
