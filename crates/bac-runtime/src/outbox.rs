//! The transactional outbox: a service writes its change and its event in one Postgres
//! transaction ([`enqueue`]); the [`Relay`] publishes committed events to Kafka.
//!
//! The relay wakes on `LISTEN <schema>_outbox` (a trigger notifies on insert), holds a
//! session advisory lock so exactly one replica of a service relays at a time (another takes
//! over when that session dies), publishes in id order with the idempotent producer and marks
//! rows published only after the broker acknowledged them. At-least-once into Kafka; consumers
//! dedupe on `ce_id`.
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
            &event.data,
        ],
    )
    .await?;
    Ok(())
}

/// Adds many events (a sync page) inside the caller's transaction, with a binary `COPY`:
/// several times cheaper for Postgres than an `INSERT` of the same rows.
pub async fn enqueue_many(
    tx: &Transaction<'_>,
    events: &[CloudEvent],
) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};
    if events.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(
            "COPY outbox (event_id, tenant_id, topic, key, headers, payload) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::JSONB,
            Type::BYTEA,
        ],
    );
    futures::pin_mut!(writer);
    for e in events {
        let headers = serde_json::to_value(e.headers()).unwrap_or_default();
        writer
            .as_mut()
            .write(&[&e.id, &e.tenant_id, &e.topic, &e.key, &headers, &e.data])
            .await?;
    }
    writer.finish().await?;
    Ok(())
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

    async fn publish_batch(
        &self,
        client: &tokio_postgres::Client,
        producer: &FutureProducer,
    ) -> Result<usize, BatchError> {
        let rows = client
            .query(
                "SELECT id, topic, key, headers, payload,
                        EXTRACT(EPOCH FROM (now() - created_at))::float8
                 FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
                &[&self.batch_size],
            )
            .await?;
        let oldest = rows.first().map(|r| r.get::<_, f64>(5)).unwrap_or(0.0);
        metrics::gauge!("bac_outbox_lag_seconds", "schema" => self.schema.clone()).set(oldest);
        if rows.is_empty() {
            return Ok(0);
        }
        let sends = rows.iter().map(|row| {
            let topic: String = row.get(1);
            let key: String = row.get(2);
            let headers: serde_json::Value = row.get(3);
            let payload: Vec<u8> = row.get(4);
            let mut h = OwnedHeaders::new();
            if let Some(list) = headers.as_array() {
                for pair in list {
                    if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_str()) {
                        h = h.insert(Header {
                            key: k,
                            value: Some(v),
                        });
                    }
                }
            }
            async move {
                let record = FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(h);
                producer
                    .send(record, self.kafka.message_timeout)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e.to_string())
            }
        });
        let results = join_all(sends).await;
        // Only the rows before the first failure count as published: a later row of the same
        // key must not overtake a failed earlier one. The rows after it are sent again (a
        // consumer dedupes on ce_id), in order.
        let mut published = Vec::new();
        let mut first_error = None;
        for (row, result) in rows.iter().zip(results) {
            let id: i64 = row.get(0);
            match (result, &first_error) {
                (Ok(()), None) => published.push(id),
                (Ok(()), Some(_)) => {}
                (Err(e), _) => {
                    client
                        .execute(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                            &[&id, &e],
                        )
                        .await?;
                    first_error.get_or_insert(e);
                }
            }
        }
        if !published.is_empty() {
            client
                .execute(
                    "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
                     WHERE id = ANY($1)",
                    &[&published],
                )
                .await?;
            metrics::counter!("bac_outbox_published_total", "schema" => self.schema.clone())
                .increment(published.len() as u64);
        }
        match first_error {
            Some(e) => Err(BatchError::Publish(e)),
            None => Ok(published.len()),
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
