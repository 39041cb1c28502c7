//! The transactional outbox: a service writes its change and its event in one Postgres
//! transaction ([`enqueue`]); the [`Relay`] publishes committed events to Kafka.
//!
//! The relay wakes on `LISTEN <schema>_outbox` (a trigger notifies on insert), holds a
//! session advisory lock so exactly one replica of a service relays at a time (another takes
//! over when that session dies), publishes in id order with the idempotent producer and marks
//! rows published only after the broker acknowledged them. At-least-once into Kafka; consumers
//! dedupe on `ce_id`. A sync page's events share one `outbox_batches` row ([`enqueue_many`]);
//! both tables draw ids from one sequence and are relayed in that order. A row the broker
//! refuses for good is parked ([`parked`]) so the rest keeps flowing.
pub mod parked;

use std::time::Duration;

use futures::{future::join_all, StreamExt};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::{
    config::KafkaConfig,
    db::{self, Transaction},
    events::CloudEvent,
    kafka,
};

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue(
    tx: &Transaction<'_>,
    event: &CloudEvent,
) -> Result<(), tokio_postgres::Error> {
    let headers = serde_json::to_value(event.headers()).unwrap_or_default();
    tx.execute(
        "INSERT INTO outbox (event_id, tenant_id, topic, key, headers, payload)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &event.id,
            &event.tenant_id,
            &event.topic,
            &event.key,
            &headers,
            &event.fitted_data().as_ref(),
        ],
    )
    .await?;
    Ok(())
}

/// Adds many events (a sync page) inside the caller's transaction as one `outbox_batches`
/// row per run of events sharing tenant and topic: for Postgres one row instead of a
/// thousand, written and later marked published once.
pub async fn enqueue_many(
    tx: &Transaction<'_>,
    events: &[CloudEvent],
) -> Result<(), tokio_postgres::Error> {
    for group in events.chunk_by(|a, b| a.tenant_id == b.tenant_id && a.topic == b.topic) {
        let first = &group[0];
        let count = i32::try_from(group.len()).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO outbox_batches (tenant_id, topic, event_count, events)
             VALUES ($1, $2, $3, $4)",
            &[&first.tenant_id, &first.topic, &count, &encode_batch(group)],
        )
        .await?;
    }
    Ok(())
}

/// One event of an `outbox_batches` row, borrowed from the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEvent<'a> {
    pub key: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub payload: &'a [u8],
}

fn netstring(out: &mut Vec<u8>, bytes: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{}:", bytes.len());
    out.extend_from_slice(bytes);
    out.push(b',');
}

/// The `events` column of a batch row: per event, netstrings of the key, the header count,
/// each header's name and value, and the payload.
pub fn encode_batch(events: &[CloudEvent]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| e.data.len() + e.key.len() + 400)
        .sum();
    let mut out = Vec::with_capacity(size);
    for e in events {
        let headers = e.headers();
        netstring(&mut out, e.key.as_bytes());
        netstring(&mut out, headers.len().to_string().as_bytes());
        for (k, v) in &headers {
            netstring(&mut out, k.as_bytes());
            netstring(&mut out, v.as_bytes());
        }
        netstring(&mut out, &e.fitted_data());
    }
    out
}

/// Reads back what [`encode_batch`] wrote.
pub fn decode_batch(mut blob: &[u8]) -> Result<Vec<BatchEvent<'_>>, String> {
    fn next<'a>(blob: &mut &'a [u8]) -> Result<&'a [u8], String> {
        let colon = blob
            .iter()
            .take(21)
            .position(|b| *b == b':')
            .ok_or("a netstring without its length")?;
        let len: usize = std::str::from_utf8(&blob[..colon])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or("a netstring with a bad length")?;
        let rest = &blob[colon + 1..];
        if rest.len() <= len || rest[len] != b',' {
            return Err("a truncated netstring".into());
        }
        let (item, tail) = (&rest[..len], &rest[len + 1..]);
        *blob = tail;
        Ok(item)
    }
    fn text<'a>(blob: &mut &'a [u8]) -> Result<&'a str, String> {
        std::str::from_utf8(next(blob)?).map_err(|_| "a header or key that is not UTF-8".into())
    }
    let mut events = Vec::new();
    while !blob.is_empty() {
        let key = text(&mut blob)?;
        let count: usize = text(&mut blob)?
            .parse()
            .map_err(|_| "a bad header count".to_string())?;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            headers.push((text(&mut blob)?, text(&mut blob)?));
        }
        let payload = next(&mut blob)?;
        events.push(BatchEvent {
            key,
            headers,
            payload,
        });
    }
    Ok(events)
}

/// Publishes the outbox of one service schema.
pub struct Relay {
    pub database_url: String,
    pub schema: String,
    pub kafka: KafkaConfig,
    /// Topics the service declares; re-created when a publish finds them missing.
    pub topics: Vec<String>,
    pub batch_size: i64,
}

const FALLBACK_POLL: Duration = Duration::from_secs(10);

impl Relay {
    /// Runs until `shutdown`; survives Postgres and Kafka outages by retrying with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.lead_and_relay(&shutdown) => r,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, schema = %self.schema, "outbox relay interrupted; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Connects, waits to become the relaying replica, then relays until the session breaks.
    async fn lead_and_relay(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let cfg = db::pg_config(&self.database_url, &self.schema)?;
        let (client, mut conn) = cfg.connect(NoTls).await?;
        let (wake_tx, mut wake) = mpsc::unbounded_channel::<()>();
        let conn_task = tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake_tx.send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox listener connection lost");
                        break;
                    }
                }
            }
        });
        let _guard = AbortOnDrop(conn_task);
        let key = db::lock_key(&format!("bac-outbox:{}", self.schema));
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?;
            if row.get::<_, bool>(0) {
                break;
            }
            metrics::gauge!("bac_outbox_relay_leader", "schema" => self.schema.clone()).set(0.0);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        metrics::gauge!("bac_outbox_relay_leader", "schema" => self.schema.clone()).set(1.0);
        tracing::info!(schema = %self.schema, "outbox relay leading");
        client
            .batch_execute(&format!("LISTEN \"{}_outbox\"", self.schema))
            .await?;
        let mut producer = kafka::producer(&self.kafka, &format!("bac-{}-relay", self.schema))?;
        if let Err(e) = kafka::ensure_topics(&self.kafka, &self.topics).await {
            tracing::warn!(error = %e, "declaring kafka topics failed; will retry on publish");
        }
        let (current, watched) = tokio::sync::watch::channel(producer.clone());
        let _topic_guard = AbortOnDrop(tokio::spawn(guard_topics(
            self.kafka.clone(),
            self.topics.clone(),
            kafka::producer(&self.kafka, &format!("bac-{}-topics", self.schema))?,
            watched,
        )));
        let mut failures: u32 = 0;
        loop {
            match self.publish_batch(&client, &producer).await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = wake.recv() => {}
                        _ = tokio::time::sleep(FALLBACK_POLL) => {}
                    }
                    while wake.try_recv().is_ok() {}
                }
                Ok(_) => failures = 0,
                Err(BatchError::Db(e)) => return Err(e.into()),
                Err(BatchError::Publish(reason)) => {
                    failures += 1;
                    tracing::warn!(reason = %reason, failures, "publishing outbox batch failed");
                    // Every failed event has left the old producer (timed out or purged), so a
                    // fresh one cannot duplicate it; it also gets a new producer id, which a
                    // broker that lost its state requires.
                    producer = kafka::producer(&self.kafka, &format!("bac-{}-relay", self.schema))?;
                    let _ = current.send(producer.clone());
                    if let Err(e) = kafka::ensure_topics(&self.kafka, &self.topics).await {
                        tracing::warn!(error = %e, "re-declaring kafka topics failed");
                    }
                    let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Sets the `bac_outbox_parked` gauge: events set aside that wait for an administrator.
    async fn count_parked(&self, client: &tokio_postgres::Client) -> Result<(), BatchError> {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL)
                      + (SELECT count(*) FROM outbox_batches WHERE parked_at IS NOT NULL)",
                &[],
            )
            .await?;
        metrics::gauge!("bac_outbox_parked", "schema" => self.schema.clone())
            .set(row.get::<_, i64>(0) as f64);
        Ok(())
    }

    /// Publishes the oldest unpublished events, about `batch_size` of them, in id order across
    /// both tables. Returns how many rows were published.
    async fn publish_batch(
        &self,
        client: &tokio_postgres::Client,
        producer: &FutureProducer,
    ) -> Result<usize, BatchError> {
        // Single events come with their content, batch rows with their event count only: their
        // blobs are read once the batch is cut.
        let rows = client
            .query(
                "SELECT id, false, topic, key, headers, payload, 1,
                        EXTRACT(EPOCH FROM (now() - created_at))::float8
                   FROM outbox WHERE published_at IS NULL AND parked_at IS NULL
                 UNION ALL
                 SELECT id, true, topic, NULL, NULL, NULL, event_count,
                        EXTRACT(EPOCH FROM (now() - created_at))::float8
                   FROM outbox_batches WHERE published_at IS NULL AND parked_at IS NULL
                 ORDER BY 1 LIMIT $1",
                &[&self.batch_size],
            )
            .await?;
        let oldest = rows.first().map(|r| r.get::<_, f64>(7)).unwrap_or(0.0);
        metrics::gauge!("bac_outbox_lag_seconds", "schema" => self.schema.clone()).set(oldest);
        if rows.is_empty() {
            self.count_parked(client).await?;
            return Ok(0);
        }
        let mut taken = 0usize;
        let mut total = 0i64;
        for row in &rows {
            if taken > 0 && total >= self.batch_size {
                break;
            }
            total += i64::from(row.get::<_, i32>(6));
            taken += 1;
        }
        let rows = &rows[..taken];
        let batch_ids: Vec<i64> = rows
            .iter()
            .filter(|r| r.get::<_, bool>(1))
            .map(|r| r.get(0))
            .collect();
        let blobs: std::collections::HashMap<i64, Vec<u8>> = if batch_ids.is_empty() {
            Default::default()
        } else {
            client
                .query(
                    "SELECT id, events FROM outbox_batches WHERE id = ANY($1)",
                    &[&batch_ids],
                )
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        // Every row as the events it holds (or why they cannot be read).
        let singles: Vec<Option<(String, serde_json::Value, Vec<u8>)>> = rows
            .iter()
            .map(|r| (!r.get::<_, bool>(1)).then(|| (r.get(3), r.get(4), r.get(5))))
            .collect();
        let contents: Vec<Result<Vec<BatchEvent<'_>>, String>> = rows
            .iter()
            .zip(&singles)
            .map(|(row, single)| match single {
                Some((key, headers, payload)) => Ok(vec![BatchEvent {
                    key,
                    headers: headers
                        .as_array()
                        .map(|list| {
                            list.iter()
                                .filter_map(|pair| Some((pair[0].as_str()?, pair[1].as_str()?)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    payload,
                }]),
                None => blobs
                    .get(&row.get::<_, i64>(0))
                    .ok_or_else(|| "batch row vanished".to_string())
                    .and_then(|blob| decode_batch(blob)),
            })
            .collect();
        let topics: Vec<String> = rows.iter().map(|r| r.get(2)).collect();
        let sends = contents
            .iter()
            .zip(&topics)
            .map(|(events, topic)| async move {
                let events = events.as_ref().map_err(|e| Failure {
                    reason: format!("unreadable batch row: {e}"),
                    permanent: true,
                })?;
                let results = join_all(events.iter().map(|e| {
                    let mut h = OwnedHeaders::new_with_capacity(e.headers.len());
                    for (k, v) in &e.headers {
                        h = h.insert(Header {
                            key: k,
                            value: Some(*v),
                        });
                    }
                    let record = FutureRecord::to(topic)
                        .key(e.key)
                        .payload(e.payload)
                        .headers(h);
                    producer.send(record, self.kafka.message_timeout)
                }))
                .await;
                match results.into_iter().find_map(Result::err) {
                    Some((e, _)) => Err(Failure {
                        permanent: permanent(&e),
                        reason: e.to_string(),
                    }),
                    None => Ok(events.len()),
                }
            });
        let results = join_all(sends).await;
        // Only the rows before the first failure count as published: a later row of the same
        // key must not overtake a failed earlier one. The rows after it are sent again (a
        // consumer dedupes on ce_id), in order.
        let mut published = (Vec::new(), Vec::new());
        let mut events = 0usize;
        let mut first_error = None;
        for (row, result) in rows.iter().zip(results) {
            let (id, batch): (i64, bool) = (row.get(0), row.get(1));
            let table = if batch { "outbox_batches" } else { "outbox" };
            match (result, &first_error) {
                // No retry can publish it: set it aside and go on, so one tenant's event
                // never stops everyone else's.
                (
                    Err(Failure {
                        reason,
                        permanent: true,
                    }),
                    _,
                ) => {
                    client
                        .execute(
                            &format!(
                                "UPDATE {table} SET parked_at = now(), attempts = attempts + 1,
                                        last_error = $2
                                 WHERE id = $1"
                            ),
                            &[&id, &reason],
                        )
                        .await?;
                    metrics::counter!("bac_outbox_parked_total", "schema" => self.schema.clone())
                        .increment(1);
                    tracing::error!(schema = %self.schema, outbox_id = id, reason = %reason, "outbox event parked: the broker can never take it");
                }
                (Ok(n), None) => {
                    events += n;
                    if batch {
                        published.1.push(id)
                    } else {
                        published.0.push(id)
                    }
                }
                (Ok(_), Some(_)) => {}
                (Err(Failure { reason: e, .. }), _) => {
                    client
                        .execute(
                            &format!(
                                "UPDATE {table} SET attempts = attempts + 1, last_error = $2 WHERE id = $1"
                            ),
                            &[&id, &e],
                        )
                        .await?;
                    first_error.get_or_insert(e);
                }
            }
        }
        for (table, ids) in [("outbox", &published.0), ("outbox_batches", &published.1)] {
            if !ids.is_empty() {
                client
                    .execute(
                        &format!(
                            "UPDATE {table} SET published_at = now(), attempts = attempts + 1,
                                    last_error = NULL
                             WHERE id = ANY($1)"
                        ),
                        &[ids],
                    )
                    .await?;
            }
        }
        if events > 0 {
            metrics::counter!("bac_outbox_published_total", "schema" => self.schema.clone())
                .increment(events as u64);
        }
        match first_error {
            Some(e) => Err(BatchError::Publish(e)),
            None => Ok(published.0.len() + published.1.len()),
        }
    }
}

/// While leading, watches for declared topics that vanished: a broker that restarted empty.
/// It re-creates them and purges the relay's producer, whose idempotence state the broker
/// no longer knows, so the waiting events fail now and go out through a fresh producer
/// instead of stalling until `message.timeout.ms`.
async fn guard_topics(
    kafka: KafkaConfig,
    topics: Vec<String>,
    probe: FutureProducer,
    relay: tokio::sync::watch::Receiver<FutureProducer>,
) {
    loop {
        tokio::time::sleep(TOPIC_CHECK).await;
        let missing = kafka::missing_topics(&probe, &topics).await;
        if !missing.is_empty() {
            tracing::warn!(topics = ?missing, "kafka topics missing (broker lost its state); re-creating them");
            if let Err(e) = kafka::ensure_topics(&kafka, &missing).await {
                tracing::warn!(error = %e, "re-creating kafka topics failed");
            }
            relay
                .borrow()
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        }
    }
}

const TOPIC_CHECK: Duration = Duration::from_secs(5);

/// Why a row could not be published, and whether retrying could ever help.
struct Failure {
    reason: String,
    permanent: bool,
}

/// Errors no retry can cure: the message itself is refused (its size, its topic's name).
/// Everything else (timeouts, a broker down, a topic missing for a moment) is transient.
fn permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::{error::KafkaError, types::RDKafkaErrorCode as C};
    matches!(
        e,
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidTopic | C::InvalidRecord
        )
    )
}

enum BatchError {
    Db(tokio_postgres::Error),
    Publish(String),
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        BatchError::Db(e)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, data: &[u8]) -> CloudEvent {
        CloudEvent {
            id: uuid::Uuid::now_v7(),
            source: "/bac/odoo".into(),
            ty: "bac.odoo.crm_lead.created".into(),
            subject: Some("crm_lead/1".into()),
            time: chrono::Utc::now(),
            tenant_id: "demo".into(),
            connection_id: Some("con_1".into()),
            traceparent: None,
            data: data.to_vec(),
            topic: "bac.odoo.crm_lead.v1".into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let events = vec![
            event("demo/crm_lead/1", br#"{"a":"x,y:z"}"#),
            event("demo/crm_lead/2", b""),
            event(
                "demo/crm_lead/\u{e9}",
                "{\"name\":\"caf\u{e9} 12:3,\"}".as_bytes(),
            ),
        ];
        let blob = encode_batch(&events);
        assert!(
            std::str::from_utf8(&blob).is_ok(),
            "a batch stays readable text"
        );
        let back = decode_batch(&blob).unwrap();
        assert_eq!(back.len(), 3);
        for (e, b) in events.iter().zip(&back) {
            assert_eq!(b.key, e.key);
            assert_eq!(b.payload, &e.data[..]);
            let headers: Vec<(String, String)> = b
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(headers, e.headers());
        }
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let blob = encode_batch(&[event("k", b"{}")]);
        for cut in 0..blob.len() {
            let _ = decode_batch(&blob[..cut]);
        }
        assert!(decode_batch(&blob[..blob.len() - 1]).is_err());
        assert!(decode_batch(b"99999999999999999999999:x,").is_err());
        assert!(decode_batch(b"18446744073709551615:x,").is_err());
        assert!(decode_batch(b"x").is_err());
        assert_eq!(decode_batch(b"").unwrap(), vec![]);
    }
}
