//! Posts webhook messages to their endpoints: one endpoint at a time per replica (a lease in
//! Postgres), its messages in the order they were recorded; a message that fails holds the
//! ones behind it (ordering per endpoint is a promise) and is tried again after a backoff
//! with jitter; any 2xx is success, anything else (or no answer) a failure. An endpoint that
//! fails `disable_after` times in a row is disabled, with an audit entry the tenant's admins
//! see (`GET /api/v1/integrations/audit`); its messages wait until it is enabled again. Other
//! endpoints are never held by a failing one.
use std::{sync::Arc, time::Duration};

use bac_runtime::{
    db::Pool,
    events::CloudEvent,
    outbox,
    upstream::{RetryPolicy, UpstreamClient, UpstreamError, UpstreamRequest},
    ServiceError,
};
use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{signature, Endpoints};

/// How long one lease of an endpoint sends before giving it back (the lease is 5 minutes, an
/// attempt at most the upstream timeout).
const DRAIN_FOR: Duration = Duration::from_secs(120);

/// How the sender retries and when it gives up on an endpoint.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// The wait after a message's first failure, doubled after each (`BAC_WEBHOOK_RETRY_BASE_MS`).
    pub base: Duration,
    /// The longest wait (`BAC_WEBHOOK_RETRY_MAX_SECS`).
    pub max: Duration,
    /// Failures in a row that disable an endpoint (`BAC_WEBHOOK_DISABLE_AFTER`).
    pub disable_after: u32,
    /// Endpoints served at once per replica (`BAC_WEBHOOK_CONCURRENCY`).
    pub concurrency: usize,
}

impl SenderOptions {
    pub fn from_env() -> Self {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(d)
        };
        SenderOptions {
            base: Duration::from_millis(num("BAC_WEBHOOK_RETRY_BASE_MS", 5_000).max(1)),
            max: Duration::from_secs(num("BAC_WEBHOOK_RETRY_MAX_SECS", 36_000).clamp(1, 604_800)),
            disable_after: num("BAC_WEBHOOK_DISABLE_AFTER", 15).clamp(1, 1000) as u32,
            concurrency: num("BAC_WEBHOOK_CONCURRENCY", 16).clamp(1, 256) as usize,
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        crate::schedule::backoff(self.base, self.max, attempts)
    }
}

/// A leased endpoint.
struct Leased {
    id: String,
    tenant_id: String,
    url: String,
}

#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    db: Pool,
    endpoints: Endpoints,
    http: UpstreamClient,
    wake: Arc<Notify>,
    owner: String,
    opts: SenderOptions,
}

fn db_err(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal("messaging", format!("postgres: {e}"))
}

impl Sender {
    pub fn new(
        db: Pool,
        endpoints: Endpoints,
        egress: bac_runtime::upstream::egress::EgressPolicy,
        timeout: Duration,
        wake: Arc<Notify>,
        opts: SenderOptions,
    ) -> Self {
        // no retries inside one attempt: the schedule above is the retry
        let policy = RetryPolicy::single_attempt(timeout);
        Sender {
            inner: Arc::new(Inner {
                db,
                endpoints,
                http: UpstreamClient::new("webhooks", None, policy, egress),
                wake,
                owner: uuid::Uuid::new_v4().to_string(),
                opts,
            }),
        }
    }

    pub fn spawn(&self, shutdown: CancellationToken) {
        let s = self.clone();
        tokio::spawn(async move {
            crate::schedule::run_rounds(
                "the webhook sender",
                &s.inner.wake,
                shutdown,
                || s.round(),
                || {
                    crate::schedule::until_due(
                        &s.inner.db,
                        "SELECT EXTRACT(EPOCH FROM (min(greatest(head.next_attempt_at, e.lease_until)) - now()))::float8
                         FROM webhook_endpoints e
                         CROSS JOIN LATERAL (
                             SELECT m.next_attempt_at FROM webhook_messages m
                              WHERE m.endpoint_id = e.id AND m.status = 'pending'
                              ORDER BY m.seq LIMIT 1) head
                         WHERE e.enabled",
                    )
                },
            )
            .await
        });
    }

    /// Leases the endpoints with a due message and drains each; how many.
    async fn round(&self) -> Result<usize, ServiceError> {
        let client = self.inner.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                // an endpoint is due when its head message is (the ones behind it wait for
                // it), the longest-waiting first: failing endpoints never crowd out the others
                "UPDATE webhook_endpoints e
                    SET lease_owner = $1, lease_until = now() + interval '5 minutes'
                  WHERE e.id IN (
                    SELECT x.id FROM webhook_endpoints x
                    CROSS JOIN LATERAL (
                        SELECT m.next_attempt_at FROM webhook_messages m
                         WHERE m.endpoint_id = x.id AND m.status = 'pending'
                         ORDER BY m.seq LIMIT 1) head
                     WHERE x.enabled AND (x.lease_until IS NULL OR x.lease_until < now())
                       AND head.next_attempt_at <= now()
                     ORDER BY head.next_attempt_at
                     LIMIT $2 FOR UPDATE OF x SKIP LOCKED)
                 RETURNING e.id, e.tenant_id, e.url",
                &[&self.inner.owner, &(self.inner.opts.concurrency as i64)],
            )
            .await
            .map_err(db_err)?;
        drop(client);
        let leased: Vec<Leased> = rows
            .iter()
            .map(|r| Leased {
                id: r.get(0),
                tenant_id: r.get(1),
                url: r.get(2),
            })
            .collect();
        let attempted = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(leased)
            .for_each_concurrent(self.inner.opts.concurrency, |ep| {
                let attempted = &attempted;
                async move {
                match self.drain(&ep).await {
                    Ok(n) => {
                        attempted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %ep.id, error = %e.message, "webhook endpoint not served");
                    }
                }
                if let Ok(c) = self.inner.db.get().await {
                    let _ = c
                        .execute(
                            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL
                             WHERE id = $1 AND lease_owner = $2",
                            &[&ep.id, &self.inner.owner],
                        )
                        .await;
                }
                }
            })
            .await;
        // what counts as progress is an attempt made, not a lease taken
        Ok(attempted.into_inner())
    }

    /// Sends the endpoint's due messages in order until one fails or none is due; how many
    /// attempts it made.
    async fn drain(&self, ep: &Leased) -> Result<usize, ServiceError> {
        let secrets = self
            .inner
            .endpoints
            .signing_secrets(&ep.tenant_id, &ep.id)
            .await?;
        // well inside the 5-minute lease: a replica that takes the endpoint after the lease
        // must never find this one still sending (the order per endpoint depends on it)
        let began = std::time::Instant::now();
        let mut made = 0usize;
        for _ in 0..500 {
            if began.elapsed() > DRAIN_FOR {
                return Ok(made);
            }
            let client = self.inner.db.get().await.map_err(db_err)?;
            let Some(head) = client
                .query_opt(
                    "SELECT seq, id, payload, attempts, next_attempt_at <= now() AS due
                     FROM webhook_messages WHERE endpoint_id = $1 AND status = 'pending'
                     ORDER BY seq LIMIT 1",
                    &[&ep.id],
                )
                .await
                .map_err(db_err)?
            else {
                return Ok(made);
            };
            drop(client);
            if !head.get::<_, bool>("due") {
                return Ok(made);
            }
            made += 1;
            let seq: i64 = head.get("seq");
            let id: String = head.get("id");
            let payload: Vec<u8> = head.get("payload");
            let attempts = head.get::<_, i32>("attempts") as u32 + 1;
            let ts = Utc::now().timestamp();
            let req = UpstreamRequest {
                method: http::Method::POST,
                url: ep.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("user-agent".into(), "bac-webhooks/1".into()),
                    ("webhook-id".into(), id.clone()),
                    ("webhook-timestamp".into(), ts.to_string()),
                    (
                        "webhook-signature".into(),
                        signature::sign(&secrets, &id, ts, &payload),
                    ),
                ],
                body: Some(payload),
                idempotent: false,
                operation: "webhook.post".into(),
                quota: None,
            };
            let started = std::time::Instant::now();
            let (code, response) = match self.inner.http.send(&req).await {
                Ok(r) => (
                    r.status.as_u16(),
                    String::from_utf8_lossy(&r.body[..r.body.len().min(1024)]).into_owned(),
                ),
                Err(UpstreamError::Status { status, .. }) => (status, String::new()),
                Err(e) => (0, e.to_string()),
            };
            let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
            let ok = (200..300).contains(&code);
            let mut client = self.inner.db.get().await.map_err(db_err)?;
            let tx = client.transaction().await.map_err(db_err)?;
            tx.execute(
                "INSERT INTO webhook_attempts (message_seq, status_code, response, duration_ms)
                 VALUES ($1, $2, $3, $4)",
                &[&seq, &i32::from(code), &response, &ms],
            )
            .await
            .map_err(db_err)?;
            if ok {
                tx.execute(
                    "UPDATE webhook_messages SET status = 'delivered', attempts = $2 WHERE seq = $1",
                    &[&seq, &(attempts as i32)],
                )
                .await
                .map_err(db_err)?;
                tx.execute(
                    "UPDATE webhook_endpoints SET failures = 0, failing_since = NULL WHERE id = $1",
                    &[&ep.id],
                )
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                metrics::counter!("bac_webhook_attempts_total", "outcome" => "delivered")
                    .increment(1);
                continue;
            }
            metrics::counter!("bac_webhook_attempts_total", "outcome" => "failed").increment(1);
            let wait = self.inner.opts.backoff(attempts);
            tx.execute(
                "UPDATE webhook_messages SET attempts = $2,
                        next_attempt_at = now() + make_interval(secs => $3)
                 WHERE seq = $1",
                &[&seq, &(attempts as i32), &wait.as_secs_f64()],
            )
            .await
            .map_err(db_err)?;
            let failures: i32 = tx
                .query_one(
                    "UPDATE webhook_endpoints SET failures = failures + 1,
                            failing_since = coalesce(failing_since, now())
                     WHERE id = $1 RETURNING failures",
                    &[&ep.id],
                )
                .await
                .map_err(db_err)?
                .get(0);
            let answer = if code == 0 {
                response.clone()
            } else {
                format!("HTTP {code}")
            };
            if failures as u32 >= self.inner.opts.disable_after {
                let reason = format!(
                    "disabled after {failures} failed attempts in a row (the last: {answer})"
                );
                tx.execute(
                    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2,
                            updated_at = now()
                     WHERE id = $1",
                    &[&ep.id, &reason],
                )
                .await
                .map_err(db_err)?;
                audit_disabled(&tx, ep, &reason).await?;
                tracing::warn!(endpoint = %ep.id, tenant = %ep.tenant_id, %reason, "webhook endpoint disabled");
            } else {
                tracing::info!(endpoint = %ep.id, tenant = %ep.tenant_id, message = %id, attempts, %answer, "webhook attempt failed; tried again later");
            }
            tx.commit().await.map_err(db_err)?;
            return Ok(made);
        }
        Ok(made)
    }
}

/// The notice to the tenant's admins: an entry of the tenant's audit trail (the gateway keeps
/// the services' entries from `bac.integrations.audit.v1`).
async fn audit_disabled(
    tx: &bac_runtime::db::Transaction<'_>,
    ep: &Leased,
    reason: &str,
) -> Result<(), ServiceError> {
    let now = Utc::now();
    let id = format!("aud_{}", uuid::Uuid::now_v7().simple());
    let data = json!({
        "id": id,
        "tenant_id": ep.tenant_id,
        "actor": "service:messaging",
        "action": "webhook_endpoint.disabled",
        "target_type": "webhook_endpoint",
        "target_id": ep.id,
        "diff": {"enabled": false, "reason": reason},
        "source_ip": null,
        "user_agent": null,
        "request_id": null,
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let event = CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/messaging".into(),
        ty: "bac.integrations.audit.webhook_endpoint.disabled".into(),
        subject: Some(format!("webhook_endpoint/{}", ep.id)),
        time: now,
        tenant_id: ep.tenant_id.clone(),
        connection_id: None,
        traceparent: bac_runtime::telemetry::current_traceparent(),
        data: serde_json::to_vec(&data).unwrap_or_default(),
        topic: bac_connector::tokens::AUDIT_TOPIC.into(),
        key: format!("{}/audit/{id}", ep.tenant_id),
    };
    outbox::enqueue(tx, &event).await.map_err(db_err)
}
