//! Deliveries: one row per message on its way, and the worker that sends them. A delivery is
//! written `queued` with its event in one transaction (the outbox), so an accepted send is
//! never lost; the worker of any replica leases due rows (`FOR UPDATE`-safe, a few per tenant
//! at a time so one tenant's backlog never holds another's mail), makes one SMTP attempt,
//! and records the outcome with its event: `sent`, `deferred` (4xx or no answer; tried again
//! with exponential backoff and jitter) or `failed` (5xx, or too many attempts). A replica
//! that dies mid-attempt leaves a lease that expires; the message is then tried again, so a
//! delivery is sent at least once.
use std::{sync::Arc, time::Duration};

use bac_proto::events::v1::DeliveryChanged;
use bac_runtime::{
    connections::{timestamp, ConnectionRecord, ConnectionStore},
    db::{Pool, Transaction},
    events::CloudEvent,
    outbox, ErrorCode, ServiceError,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::smtp::{self, Outcome, Server, Smtp};

/// Where every state change of a delivery is published.
pub const TOPIC: &str = "bac.messaging.delivery.v1";

/// The states, as stored, answered and published.
pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const DEFERRED: &str = "deferred";
pub const BOUNCED: &str = "bounced";
pub const FAILED: &str = "failed";

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub tenant_id: String,
    pub connection_id: String,
    pub channel: String,
    pub status: String,
    pub intent_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub template: String,
    pub template_version: u32,
    pub message_id: String,
    /// What a chat delivery posts (Teams, Google Chat), and its thread.
    pub payload: Option<serde_json::Value>,
    pub thread_key: String,
    /// The Slack command a Slack delivery answers (through its `response_url`).
    pub respond_to: Option<Uuid>,
    pub attempts: u32,
    pub last_response: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Delivery {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Delivery {
            id: r.get("id"),
            tenant_id: r.get("tenant_id"),
            connection_id: r.get("connection_id"),
            channel: r.get("channel"),
            status: r.get("status"),
            intent_id: r.get("intent_id"),
            to: r.get("to_addrs"),
            cc: r.get("cc_addrs"),
            bcc: r.get("bcc_addrs"),
            reply_to: r.get("reply_to"),
            subject: r.get("subject"),
            text: r.get("text_body"),
            html: r.get("html_body"),
            template: r.get("template"),
            template_version: r.get::<_, i32>("template_version") as u32,
            message_id: r.get("message_id"),
            payload: r.get("payload"),
            thread_key: r.get("thread_key"),
            respond_to: r.get("respond_to"),
            attempts: r.get::<_, i32>("attempts") as u32,
            last_response: r.get("last_response"),
            next_attempt_at: r.get("next_attempt_at"),
            traceparent: r.get("traceparent"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            sent_at: r.get("sent_at"),
        }
    }

    pub fn to_proto(&self) -> bac_proto::messaging::v1::Delivery {
        bac_proto::messaging::v1::Delivery {
            id: self.id.to_string(),
            connection_id: self.connection_id.clone(),
            channel: self.channel.clone(),
            status: self.status.clone(),
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: self.bcc.clone(),
            subject: self.subject.clone(),
            template: self.template.clone(),
            template_version: self.template_version,
            attempts: self.attempts,
            last_response: self.last_response.clone(),
            message_id: self.message_id.clone(),
            intent_id: self.intent_id.clone(),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            next_attempt_at: self.next_attempt_at.map(timestamp),
            sent_at: self.sent_at.map(timestamp),
        }
    }

    /// The event of the state this delivery is in now.
    fn event(&self, previous: &str) -> CloudEvent {
        let now = Utc::now();
        let data = DeliveryChanged {
            delivery_id: self.id.to_string(),
            tenant_id: self.tenant_id.clone(),
            connection_id: self.connection_id.clone(),
            channel: self.channel.clone(),
            status: self.status.clone(),
            previous_status: previous.to_string(),
            attempts: self.attempts,
            reason: self.last_response.clone(),
            recipients: self
                .to
                .iter()
                .chain(&self.cc)
                .chain(&self.bcc)
                .cloned()
                .collect(),
            subject: self.subject.clone(),
            template: self.template.clone(),
            template_version: self.template_version,
            intent_id: self.intent_id.clone(),
            message_id: self.message_id.clone(),
            next_attempt_at: match self.status.as_str() {
                QUEUED | DEFERRED => self.next_attempt_at.map(timestamp),
                _ => None,
            },
            time: Some(timestamp(now)),
        };
        CloudEvent {
            id: Uuid::now_v7(),
            source: "/bac/messaging".into(),
            ty: format!("bac.messaging.delivery.{}", self.status),
            subject: Some(format!("delivery/{}", self.id)),
            time: now,
            tenant_id: self.tenant_id.clone(),
            connection_id: Some(self.connection_id.clone()),
            traceparent: self.traceparent.clone(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: TOPIC.into(),
            key: format!("{}/delivery/{}", self.tenant_id, self.id),
        }
    }
}

/// What a new delivery is.
#[derive(Debug, Clone, Default)]
pub struct NewDelivery {
    pub tenant_id: String,
    pub connection_id: String,
    pub channel: String,
    pub intent_id: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub template: String,
    pub template_version: u32,
    pub message_id: String,
    pub payload: Option<serde_json::Value>,
    pub thread_key: String,
    pub respond_to: Option<Uuid>,
}

use crate::db_err;

/// A Postgres error of a write: a data exception (class 22: a NUL character PostgreSQL cannot
/// store, text it cannot convert) is the request's fault, never retried as the fleet's own.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> ServiceError {
    match e.code() {
        Some(c) if c.code().starts_with("22") => crate::bad(
            "the request holds text that cannot be stored (a NUL character or an invalid sequence)",
        ),
        _ => db_err(e),
    }
}

/// Writes a `queued` delivery and its event; a delivery with the same intent id is the
/// answer instead (`false`: nothing new was queued).
pub async fn enqueue(db: &Pool, new: &NewDelivery) -> Result<(Delivery, bool), ServiceError> {
    let mut client = db.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    let row = tx
        .query_opt(
            "INSERT INTO deliveries (id, tenant_id, connection_id, channel, status, intent_id,
                 to_addrs, cc_addrs, bcc_addrs, reply_to, subject, text_body, html_body,
                 template, template_version, message_id, next_attempt_at, traceparent, payload,
                 thread_key, respond_to)
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 $15, now(), $16, $17, $18, $19)
             ON CONFLICT (tenant_id, intent_id) DO NOTHING
             RETURNING *",
            &[
                &Uuid::now_v7(),
                &new.tenant_id,
                &new.connection_id,
                &new.channel,
                &new.intent_id,
                &new.to,
                &new.cc,
                &new.bcc,
                &new.reply_to,
                &new.subject,
                &new.text,
                &new.html,
                &new.template,
                &(new.template_version as i32),
                &new.message_id,
                &bac_runtime::telemetry::current_traceparent(),
                &new.payload,
                &new.thread_key,
                &new.respond_to,
            ],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else {
        drop(tx);
        let first = client
            .query_one(
                "SELECT * FROM deliveries WHERE tenant_id = $1 AND intent_id = $2",
                &[&new.tenant_id, &new.intent_id],
            )
            .await
            .map_err(db_err)?;
        return Ok((Delivery::from_row(&first), false));
    };
    let d = Delivery::from_row(&row);
    outbox::enqueue(&tx, &d.event("")).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    metrics::counter!("bac_messaging_deliveries_total", "channel" => d.channel.clone(), "status" => QUEUED).increment(1);
    Ok((d, true))
}

/// The tenant's delivery of an idempotency key, if there is one.
pub async fn by_intent(
    db: &Pool,
    tenant: &str,
    intent: &str,
) -> Result<Option<Delivery>, ServiceError> {
    let client = db.get().await.map_err(db_err)?;
    Ok(client
        .query_opt(
            "SELECT * FROM deliveries WHERE tenant_id = $1 AND intent_id = $2",
            &[&tenant, &intent],
        )
        .await
        .map_err(db_err)?
        .map(|r| Delivery::from_row(&r)))
}

/// Records a request that can never be sent (a command naming no recipient, no connection,
/// an unknown template) as a `failed` delivery with its reason and event, so whoever asked
/// hears the answer where they hear every other. A delivery with the same intent id already
/// answers it: the first outcome stands.
pub async fn reject(db: &Pool, new: &NewDelivery, reason: &str) -> Result<Delivery, ServiceError> {
    let mut client = db.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    let row = tx
        .query_opt(
            "INSERT INTO deliveries (id, tenant_id, connection_id, channel, status, intent_id,
                 to_addrs, cc_addrs, bcc_addrs, subject, template, template_version, message_id,
                 last_response, traceparent)
             VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, $8, $9, $10, $11, '', $12, $13)
             ON CONFLICT (tenant_id, intent_id) DO NOTHING
             RETURNING *",
            &[
                &Uuid::now_v7(),
                &new.tenant_id,
                &new.connection_id,
                &new.channel,
                &new.intent_id,
                &new.to,
                &new.cc,
                &new.bcc,
                &truncate(&new.subject, 998),
                &new.template,
                &(new.template_version as i32),
                &truncate(reason, 2000),
                &bac_runtime::telemetry::current_traceparent(),
            ],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else {
        drop(tx);
        return by_intent(db, &new.tenant_id, &new.intent_id)
            .await?
            .ok_or_else(|| ServiceError::internal("messaging", "a delivery vanished"));
    };
    let d = Delivery::from_row(&row);
    record(&tx, &d, "").await?;
    tx.commit().await.map_err(db_err)?;
    Ok(d)
}

/// Marks the `sent` delivery of `rec` that `b` is about as `bounced`, with its event; `None`
/// when there is none (another connection's message, or one already bounced: a DSN read twice
/// changes nothing).
pub async fn bounce(
    db: &Pool,
    rec: &bac_runtime::connections::ConnectionRecord,
    b: &crate::dsn::Bounce,
) -> Result<Option<Delivery>, ServiceError> {
    let mut client = db.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    let reason = format!(
        "bounced by {}: {}",
        b.recipients.join(", "),
        if b.reason.is_empty() {
            "no reason given"
        } else {
            &b.reason
        }
    )
    // a bounce is read from anyone's mail: what it says is made storable
    .replace('\0', "");
    let row = tx
        .query_opt(
            "UPDATE deliveries SET status = 'bounced', last_response = $4, updated_at = now()
              WHERE tenant_id = $1 AND connection_id = $2 AND message_id = $3 AND status = 'sent'
             RETURNING *",
            &[
                &rec.tenant_id,
                &rec.id,
                &format!("<{}>", b.message_id.replace('\0', "")),
                &truncate(&reason, 2000),
            ],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let d = Delivery::from_row(&row);
    record(&tx, &d, SENT).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Some(d))
}

/// Where replies are published.
pub const REPLY_TOPIC: &str = "bac.messaging.reply.v1";

/// A reply read from a connection's mailbox.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The Message-IDs it answers (`In-Reply-To`, then `References`), without brackets.
    pub answers: Vec<String>,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Publishes `r` if it answers a delivery of `rec`; the delivery. The event's id is derived
/// from the connection and the reply's Message-ID, so a reply read twice (a new UIDVALIDITY)
/// is one event for a consumer that dedupes on `ce_id`.
pub async fn reply(
    db: &Pool,
    rec: &bac_runtime::connections::ConnectionRecord,
    r: &Reply,
) -> Result<Option<Delivery>, ServiceError> {
    let ids: Vec<String> = r
        .answers
        .iter()
        .map(|m| format!("<{}>", m.replace('\0', "")))
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let mut client = db.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    let Some(row) = tx
        .query_opt(
            "SELECT * FROM deliveries WHERE tenant_id = $1 AND connection_id = $2
               AND message_id = ANY($3) ORDER BY array_position($3, message_id) LIMIT 1",
            &[&rec.tenant_id, &rec.id, &ids],
        )
        .await
        .map_err(pg_err)?
    else {
        return Ok(None);
    };
    let d = Delivery::from_row(&row);
    let now = Utc::now();
    let clean = |s: &str| s.replace('\0', "");
    let data = bac_proto::events::v1::EmailReplied {
        delivery_id: d.id.to_string(),
        tenant_id: d.tenant_id.clone(),
        connection_id: d.connection_id.clone(),
        from: clean(&r.from),
        subject: clean(&r.subject),
        text: clean(&r.text).chars().take(10_000).collect(),
        message_id: clean(&r.message_id),
        sent_at: r.sent_at.map(timestamp),
        received_at: Some(timestamp(now)),
    };
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("reply/{}/{}", rec.id, r.message_id).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let event = CloudEvent {
        id: uuid::Builder::from_random_bytes(bytes).into_uuid(),
        source: "/bac/messaging".into(),
        ty: "bac.messaging.reply.received".into(),
        subject: Some(format!("delivery/{}", d.id)),
        time: now,
        tenant_id: d.tenant_id.clone(),
        connection_id: Some(d.connection_id.clone()),
        traceparent: None,
        data: serde_json::to_vec(&data).unwrap_or_default(),
        topic: REPLY_TOPIC.into(),
        key: format!("{}/delivery/{}", d.tenant_id, d.id),
    };
    outbox::enqueue(&tx, &event).await.map_err(pg_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(Some(d))
}

/// One of the tenant's deliveries.
pub async fn get(db: &Pool, tenant: &str, id: &str) -> Result<Delivery, ServiceError> {
    let not_found = || {
        ServiceError::new(
            "messaging",
            ErrorCode::NotFound,
            format!("delivery {id} does not exist"),
        )
    };
    let Ok(uuid) = Uuid::parse_str(id) else {
        return Err(not_found());
    };
    let client = db.get().await.map_err(db_err)?;
    client
        .query_opt(
            "SELECT * FROM deliveries WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &uuid],
        )
        .await
        .map_err(db_err)?
        .map(|r| Delivery::from_row(&r))
        .ok_or_else(not_found)
}

/// A page of the tenant's deliveries, newest first; the token continues after the last.
pub async fn list(
    db: &Pool,
    tenant: &str,
    status: &str,
    page_size: u32,
    page_token: &str,
) -> Result<(Vec<Delivery>, String), ServiceError> {
    let after: Option<Uuid> = if page_token.is_empty() {
        None
    } else {
        // the hyphenated form only: the one this API hands out (and documents)
        let parsed = (page_token.len() == 36)
            .then(|| Uuid::try_parse(page_token).ok())
            .flatten();
        Some(parsed.ok_or_else(|| crate::bad("page_token is not one this API gave"))?)
    };
    let client = db.get().await.map_err(db_err)?;
    let limit = i64::from(page_size) + 1;
    // ids are UUIDv7: their order is their creation order
    let rows = client
        .query(
            "SELECT * FROM deliveries WHERE tenant_id = $1
               AND ($2 = '' OR status = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&tenant, &status, &after, &limit],
        )
        .await
        .map_err(db_err)?;
    let mut page: Vec<Delivery> = rows.iter().map(Delivery::from_row).collect();
    let next = if page.len() > page_size as usize {
        page.truncate(page_size as usize);
        page.last().map(|d| d.id.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

/// How the worker retries.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// The wait after the first temporary failure; doubled after each (`BAC_MESSAGING_RETRY_BASE_MS`).
    pub base: Duration,
    /// The longest wait between attempts (`BAC_MESSAGING_RETRY_MAX_SECS`).
    pub max: Duration,
    /// Attempts before a delivery is `failed` (`BAC_MESSAGING_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long an attempt may hold its delivery before another replica may try it.
    pub lease: Duration,
    /// Attempts in flight at once per replica (`BAC_MESSAGING_CONCURRENCY`).
    pub concurrency: usize,
    /// At most this many of one tenant's deliveries per lease round.
    pub per_tenant: i64,
}

impl RetryOptions {
    pub fn from_env() -> Self {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(d)
        };
        RetryOptions {
            base: Duration::from_millis(num("BAC_MESSAGING_RETRY_BASE_MS", 30_000).max(1)),
            max: Duration::from_secs(num("BAC_MESSAGING_RETRY_MAX_SECS", 3600).clamp(1, 604_800)),
            max_attempts: num("BAC_MESSAGING_MAX_ATTEMPTS", 8).clamp(1, 100) as u32,
            lease: Duration::from_secs(300),
            concurrency: num("BAC_MESSAGING_CONCURRENCY", 16).clamp(1, 256) as usize,
            per_tenant: 4,
        }
    }

    /// The wait before attempt `attempts + 1`: base * 2^(attempts-1), at most `max`, +-20 %.
    pub fn backoff(&self, attempts: u32) -> Duration {
        crate::schedule::backoff(self.base, self.max, attempts)
    }
}

/// Sends due deliveries until shut down.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

/// The ways a delivery leaves, one per kind of channel.
#[derive(Clone)]
pub struct Senders {
    pub smtp: Smtp,
    pub chat: crate::chat::Chat,
    pub slack: crate::slack::SlackApi,
    pub bot: Arc<crate::teams_bot::Bot>,
}

struct Inner {
    db: Pool,
    store: ConnectionStore,
    calls: bac_connector::Calls,
    send: Senders,
    owner: String,
    wake: Notify,
    opts: RetryOptions,
}

impl Worker {
    pub fn new(
        db: Pool,
        store: ConnectionStore,
        calls: bac_connector::Calls,
        send: Senders,
        opts: RetryOptions,
    ) -> Self {
        Worker {
            inner: Arc::new(Inner {
                db,
                store,
                calls,
                send,
                owner: Uuid::new_v4().to_string(),
                wake: Notify::new(),
                opts,
            }),
        }
    }

    /// A delivery was queued here: look now rather than at the next round.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn spawn(&self, shutdown: CancellationToken) {
        let w = self.clone();
        tokio::spawn(async move {
            crate::schedule::run_rounds(
                "the delivery worker",
                &w.inner.wake,
                shutdown,
                || w.round(),
                || {
                    crate::schedule::until_due(
                        &w.inner.db,
                        "SELECT EXTRACT(EPOCH FROM (min(greatest(next_attempt_at, lease_until)) - now()))::float8
                         FROM deliveries WHERE status IN ('queued', 'deferred')",
                    )
                },
            )
            .await
        });
    }

    /// Leases the due deliveries and makes one attempt at each; how many it leased.
    async fn round(&self) -> Result<usize, ServiceError> {
        let o = &self.inner.opts;
        let client = self.inner.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "WITH due AS (
                   SELECT id FROM (
                     SELECT id, next_attempt_at,
                            row_number() OVER (PARTITION BY tenant_id ORDER BY next_attempt_at, id) AS n
                     FROM deliveries
                     WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now()
                       AND (lease_until IS NULL OR lease_until < now())
                   ) c WHERE n <= $3 ORDER BY next_attempt_at LIMIT $2
                 )
                 UPDATE deliveries d
                    SET lease_owner = $1, lease_until = now() + make_interval(secs => $4)
                   FROM due
                  WHERE d.id = due.id AND d.status IN ('queued', 'deferred')
                    AND (d.lease_until IS NULL OR d.lease_until < now())
                 RETURNING d.*",
                &[
                    // as many as run at once: a leased delivery starts at once, well inside its lease
                    &self.inner.owner,
                    &(o.concurrency as i64),
                    &o.per_tenant,
                    &o.lease.as_secs_f64(),
                ],
            )
            .await
            .map_err(db_err)?;
        drop(client);
        let leased: Vec<Delivery> = rows.iter().map(Delivery::from_row).collect();
        let n = leased.len();
        futures::stream::iter(leased)
            .for_each_concurrent(o.concurrency, |d| async move {
                // an attempt ends before its lease does, or another replica could send it too
                let within = o.lease.saturating_sub(Duration::from_secs(30)).max(Duration::from_secs(1));
                let id = d.id;
                match tokio::time::timeout(within, self.attempt(d)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e.message, "delivery attempt not recorded"),
                    Err(_) => tracing::warn!(delivery = %id, "delivery attempt cut off before its lease ran out; tried again later"),
                }
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, d: Delivery) -> Result<(), ServiceError> {
        let rec = match self.inner.store.get(&d.tenant_id, &d.connection_id).await {
            Ok(r) => r,
            Err(e) if e.code == ErrorCode::NotFound => {
                return self
                    .settle(
                        &d,
                        Outcome::Permanent("the connection was deleted".into(), e.code),
                        None,
                    )
                    .await
            }
            Err(e) => return self.release(&d, &e.message).await,
        };
        let secret = match self.inner.store.secret(&rec).await {
            Ok(s) => s,
            // our own outage, not the server's answer: no attempt is counted
            Err(e) => return self.release(&d, &e.message).await,
        };
        if d.channel == "slack" {
            return self.attempt_slack(&d, &rec, &secret).await;
        }
        if d.channel == "teams_bot" {
            let started = std::time::Instant::now();
            let (outcome, id) = match &d.payload {
                Some(p) => self.inner.send.bot.post(&rec, p).await,
                None => (
                    Outcome::Permanent(
                        "the delivery has nothing to post".into(),
                        ErrorCode::Internal,
                    ),
                    None,
                ),
            };
            self.log_call(
                &rec,
                "conversations.activities",
                &outcome,
                "the Bot Framework",
                started,
            )
            .await;
            return self.settle(&d, outcome, id).await;
        }
        if d.channel != "email" {
            let url = secret
                .data
                .get("webhook_url")
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_string())
                .unwrap_or_default();
            let started = std::time::Instant::now();
            let outcome = match &d.payload {
                Some(p) if !url.is_empty() => {
                    self.inner
                        .send
                        .chat
                        .post(&d.channel, &url, p, &d.thread_key)
                        .await
                }
                Some(_) => Outcome::Permanent(
                    "the connection has no webhook_url".into(),
                    ErrorCode::InvalidCredentials,
                ),
                None => Outcome::Permanent(
                    "the delivery has nothing to post".into(),
                    ErrorCode::Internal,
                ),
            };
            let label = format!("the {} webhook", d.channel);
            self.log_call(
                &rec,
                &format!("{}.post", d.channel),
                &outcome,
                &label,
                started,
            )
            .await;
            return self.settle(&d, outcome, None).await;
        }
        let message = smtp::build(&smtp::Draft {
            from: rec.setting("from_address"),
            from_name: rec.setting("from_name"),
            to: &d.to,
            cc: &d.cc,
            bcc: &d.bcc,
            reply_to: &d.reply_to,
            subject: &d.subject,
            text: &d.text,
            html: &d.html,
            message_id: &d.message_id,
        });
        let outcome = match message {
            // every attempt is in the call log: the connection's status says when mail fails
            Ok(m) => match Server::of(&rec) {
                Ok(server) => {
                    let started = std::time::Instant::now();
                    let outcome = self.inner.send.smtp.send(&server, &secret, &m).await;
                    self.log_call(&rec, "smtp.send", &outcome, "the SMTP server", started)
                        .await;
                    outcome
                }
                Err(e) => Outcome::Permanent(e.message, e.code),
            },
            Err(e) => Outcome::Permanent(e.message, e.code),
        };
        self.settle(&d, outcome, None).await
    }

    /// Every attempt is in the call log: the connection's status says when messages fail.
    async fn log_call(
        &self,
        rec: &ConnectionRecord,
        operation: &str,
        outcome: &Outcome,
        upstream: &str,
        started: std::time::Instant,
    ) {
        bac_connector::calls::record(
            &self.inner.db,
            &rec.tenant_id,
            &rec.id,
            operation,
            outcome.error(upstream).as_ref(),
            started.elapsed(),
        )
        .await;
        self.inner.calls.forget_statuses();
    }

    /// A Slack message: `chat.postMessage` with the bot token, or a command's answer to its
    /// `response_url`; once posted, the message's `ts` becomes the delivery's `message_id`.
    async fn attempt_slack(
        &self,
        d: &Delivery,
        rec: &ConnectionRecord,
        secret: &bac_runtime::vault::Secret,
    ) -> Result<(), ServiceError> {
        let Some(payload) = &d.payload else {
            return self
                .settle(
                    d,
                    Outcome::Permanent(
                        "the delivery has nothing to post".into(),
                        ErrorCode::Internal,
                    ),
                    None,
                )
                .await;
        };
        let started = std::time::Instant::now();
        if let Some(command) = d.respond_to {
            let outcome = match crate::slack::response_url(
                &self.inner.db,
                &d.tenant_id,
                &d.connection_id,
                &command,
            )
            .await
            {
                Ok(Some((url, _))) => self.inner.send.slack.respond(&url, payload).await,
                Ok(None) => Outcome::Permanent("the command is gone".into(), ErrorCode::NotFound),
                Err(e) if e.code == ErrorCode::InvalidRequest => {
                    Outcome::Permanent(e.message, e.code)
                }
                Err(e) => return self.release(d, &e.message).await,
            };
            self.log_call(rec, "slack.response_url", &outcome, "Slack", started)
                .await;
            return self.settle(d, outcome, None).await;
        }
        let token = secret
            .data
            .get("bot_token")
            .map(|u| secrecy::ExposeSecret::expose_secret(u).to_string())
            .unwrap_or_default();
        let (outcome, ts) = if token.is_empty() {
            (
                Outcome::Permanent(
                    "the connection has no bot_token".into(),
                    ErrorCode::InvalidCredentials,
                ),
                None,
            )
        } else {
            let team = match rec.setting("team_id") {
                "" => rec.id.as_str(),
                t => t,
            };
            self.inner
                .send
                .slack
                .post_message(&token, team, payload)
                .await
        };
        self.log_call(rec, "chat.postMessage", &outcome, "Slack", started)
            .await;
        self.settle(d, outcome, ts).await
    }

    /// Gives the lease back without counting an attempt (the fleet could not try).
    async fn release(&self, d: &Delivery, why: &str) -> Result<(), ServiceError> {
        tracing::warn!(delivery = %d.id, tenant = %d.tenant_id, reason = %why, "delivery not attempted; tried again later");
        let wait = self.inner.opts.backoff(d.attempts.max(1));
        let client = self.inner.db.get().await.map_err(db_err)?;
        client
            .execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,
                        next_attempt_at = now() + make_interval(secs => $3)
                  WHERE id = $1 AND lease_owner = $2",
                &[&d.id, &self.inner.owner, &wait.as_secs_f64()],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Records an attempt's outcome and its event; `posted_id` is the upstream's id of what
    /// was posted (Slack's `ts`), kept as the delivery's `message_id`.
    async fn settle(
        &self,
        d: &Delivery,
        outcome: Outcome,
        posted_id: Option<String>,
    ) -> Result<(), ServiceError> {
        let o = &self.inner.opts;
        let attempts = d.attempts + 1;
        let (status, response, wait) = match outcome {
            Outcome::Sent(r) => (SENT, r, None),
            Outcome::Permanent(r, _) => (FAILED, r, None),
            Outcome::Temporary(r) if attempts >= o.max_attempts => (
                FAILED,
                format!("gave up after {attempts} attempts; the last: {r}"),
                None,
            ),
            Outcome::Temporary(r) => (DEFERRED, r, Some(o.backoff(attempts))),
        };
        let mut client = self.inner.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                "UPDATE deliveries SET status = $3, attempts = $4, last_response = $5,
                        next_attempt_at = CASE WHEN $6::float8 IS NULL THEN NULL
                                               ELSE now() + make_interval(secs => $6) END,
                        sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
                        message_id = coalesce($7, message_id),
                        lease_owner = NULL, lease_until = NULL, updated_at = now()
                  WHERE id = $1 AND lease_owner = $2
                 RETURNING *",
                &[
                    &d.id,
                    &self.inner.owner,
                    &status,
                    &(attempts as i32),
                    &truncate(&response, 2000),
                    &wait.map(|w| w.as_secs_f64()),
                    &posted_id,
                ],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            tracing::warn!(delivery = %d.id, "the delivery's lease ran out during the attempt; its outcome ({status}) is not recorded");
            return Ok(());
        };
        let now = Delivery::from_row(&row);
        record(&tx, &now, &d.status).await?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(delivery = %now.id, tenant = %now.tenant_id, status, attempts, response = %now.last_response, "delivery attempt");
        Ok(())
    }
}

/// A state change's event and metric, inside the change's transaction.
async fn record(tx: &Transaction<'_>, d: &Delivery, previous: &str) -> Result<(), ServiceError> {
    outbox::enqueue(tx, &d.event(previous))
        .await
        .map_err(db_err)?;
    metrics::counter!("bac_messaging_deliveries_total", "channel" => d.channel.clone(), "status" => d.status.clone()).increment(1);
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let o = RetryOptions {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            max_attempts: 8,
            lease: Duration::from_secs(300),
            concurrency: 1,
            per_tenant: 1,
        };
        for (attempts, nominal) in [(1, 30.0), (2, 60.0), (3, 120.0), (9, 3600.0)] {
            let b = o.backoff(attempts).as_secs_f64();
            assert!(
                b >= nominal * 0.8 && b <= nominal * 1.2,
                "attempt {attempts}: {b}"
            );
        }
    }
}
