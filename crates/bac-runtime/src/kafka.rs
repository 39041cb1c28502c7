//! Kafka: producer settings (idempotent, `acks=all`) and topic declaration. The fleet creates
//! its own topics through the admin API at start and whenever a publish finds one missing;
//! broker-side auto-create is never relied on.
use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
    producer::{FutureProducer, Producer},
    ClientConfig,
};

use crate::config::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("kafka metadata: {0}")]
    Metadata(String),
}

/// The idempotent producer the outbox relay publishes with.
pub fn producer(cfg: &KafkaConfig, client_id: &str) -> Result<FutureProducer, KafkaError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            cfg.message_timeout.as_millis().to_string(),
        )
        // A topic that vanished (a broker that restarted empty) fails fast, so the relay
        // re-creates it instead of waiting out the default 30 s.
        .set("topic.metadata.propagation.max.ms", "3000")
        .set("reconnect.backoff.max.ms", "2000")
        .create()?)
}

/// Creates `topics` that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[String]) -> Result<(), KafkaError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("socket.timeout.ms", "5000")
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                cfg.topic_partitions,
                TopicReplication::Fixed(cfg.topic_replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(topic) => tracing::info!(topic, "kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// Asks a broker for cluster metadata; readiness uses it.
pub async fn ping(producer: &FutureProducer) -> Result<(), String> {
    let p = producer.clone();
    tokio::task::spawn_blocking(move || {
        p.client()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Those of `topics` the cluster does not have (empty when the broker cannot be asked).
pub async fn missing_topics(producer: &FutureProducer, topics: &[String]) -> Vec<String> {
    let p = producer.clone();
    let wanted = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let Ok(md) = p.client().fetch_metadata(None, Duration::from_secs(5)) else {
            return Vec::new();
        };
        wanted
            .into_iter()
            .filter(|t| {
                !md.topics()
                    .iter()
                    .any(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty())
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}
