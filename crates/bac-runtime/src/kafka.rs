//! Kafka: producer settings (idempotent, `acks=all`) and topic declaration. The fleet creates
//! its own topics through the admin API at start and whenever a publish finds one missing;
//! broker-side auto-create is never relied on.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
    producer::{FutureProducer, Producer},
    ClientConfig,
};

use secrecy::ExposeSecret;

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

/// The settings every Kafka client of the fleet starts from: the brokers, and TLS/SASL as
/// configured (`BAC_KAFKA_SECURITY_PROTOCOL`...). Producers, consumers and admin clients all
/// begin here, so none of them can connect in plaintext by accident.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let s = &cfg.security;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("security.protocol", &s.protocol);
    if let Some(m) = &s.sasl_mechanism {
        if s.protocol.starts_with("sasl_") {
            c.set("sasl.mechanism", m);
        }
    }
    if let Some(u) = &s.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(p) = &s.sasl_password {
        c.set("sasl.password", p.expose_secret());
    }
    for (key, value) in [
        ("ssl.ca.location", &s.ssl_ca_file),
        ("ssl.certificate.location", &s.ssl_cert_file),
        ("ssl.key.location", &s.ssl_key_file),
    ] {
        if let Some(v) = value {
            c.set(key, v);
        }
    }
    c
}

/// The idempotent producer the outbox relay publishes with.
pub fn producer(cfg: &KafkaConfig, client_id: &str) -> Result<FutureProducer, KafkaError> {
    Ok(client_config(cfg)
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

/// Runs a consumer session (`once`) until `shutdown`, starting a new one after it ends or
/// fails, with backoff from 500 ms doubling to 30 s: a broker outage never ends consuming.
pub async fn keep_consuming<F, Fut>(what: &str, shutdown: CancellationToken, mut once: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = once() => r,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "{what} stopped; restarting");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Creates `topics` that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[String]) -> Result<(), KafkaError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(cfg)
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

/// The value of header `key` of a consumed message, as text (CloudEvents' `ce_*` headers).
pub fn header<M: rdkafka::Message>(msg: &M, key: &str) -> Option<String> {
    use rdkafka::message::Headers;
    msg.headers().and_then(|h| {
        h.iter()
            .find(|x| x.key == key)
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// How long dropping a [`GroupConsumer`] waits for librdkafka to leave the group.
pub const CONSUMER_CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A group consumer that closes off the async runtime. rdkafka's drop waits for librdkafka's
/// close with no limit; with an offset commit in flight to a broker that died, that close
/// never ends, and the tokio worker dropping it would be lost until the broker returns (a
/// consumer restarting after an outage, a test tearing its broker down). Here the close runs
/// on a thread of its own and the drop waits for it at most [`CONSUMER_CLOSE_WAIT`], long
/// enough to leave the group cleanly when the broker answers.
pub struct GroupConsumer {
    inner: Option<rdkafka::consumer::StreamConsumer>,
}

impl GroupConsumer {
    /// Creates the consumer from `config` (a [`client_config`] with `group.id` and friends).
    pub fn create(config: &ClientConfig) -> Result<Self, KafkaError> {
        Ok(GroupConsumer {
            inner: Some(config.create()?),
        })
    }

    /// The fleet's consumers of a group: offsets committed by the caller once a message is
    /// settled (never automatically), a new group starting from what is retained, a dead
    /// member noticed within ten seconds. `extra` settings are added.
    pub fn for_group(
        kafka: &KafkaConfig,
        group: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self, KafkaError> {
        let mut config = client_config(kafka);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Self::create(&config)
    }
}

impl std::ops::Deref for GroupConsumer {
    type Target = rdkafka::consumer::StreamConsumer;

    // `inner` is taken only by `drop`, after which nothing can deref
    #[allow(clippy::expect_used)]
    fn deref(&self) -> &Self::Target {
        self.inner.as_ref().expect("present until dropped")
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.inner.take() else {
            return;
        };
        let (done, closed) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => {
                if closed.recv_timeout(CONSUMER_CLOSE_WAIT).is_err() {
                    tracing::warn!(
                        "a Kafka consumer did not close within {CONSUMER_CLOSE_WAIT:?} \
                         (broker unreachable); it closes in the background"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "no thread to close a Kafka consumer on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::KafkaSecurity;

    fn cfg(security: KafkaSecurity) -> KafkaConfig {
        KafkaConfig {
            brokers: "kafka-1:9093".into(),
            topic_partitions: 3,
            topic_replication: 3,
            message_timeout: Duration::from_secs(5),
            security,
        }
    }

    #[test]
    fn every_client_starts_from_the_security_settings() {
        let c = client_config(&cfg(KafkaSecurity {
            protocol: "sasl_ssl".into(),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("bac".into()),
            sasl_password: Some("s3cret".into()),
            ssl_ca_file: Some("/etc/bac/kafka/ca.crt".into()),
            ..Default::default()
        }));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("bac"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/bac/kafka/ca.crt"));
        let plain = client_config(&cfg(KafkaSecurity {
            protocol: "plaintext".into(),
            ..Default::default()
        }));
        assert_eq!(plain.get("security.protocol"), Some("plaintext"));
        assert_eq!(plain.get("sasl.mechanism"), None);
    }

    /// librdkafka refuses at creation what it was built without: this proves the build
    /// speaks TLS and SCRAM (creating a client does not connect).
    #[test]
    fn the_producer_is_built_with_tls_and_scram() {
        for (protocol, mechanism) in [
            ("sasl_ssl", "SCRAM-SHA-512"),
            ("sasl_ssl", "SCRAM-SHA-256"),
            ("sasl_plaintext", "PLAIN"),
            ("ssl", "PLAIN"),
        ] {
            let c = cfg(KafkaSecurity {
                protocol: protocol.into(),
                sasl_mechanism: Some(mechanism.into()),
                sasl_username: Some("bac".into()),
                sasl_password: Some("s3cret".into()),
                ..Default::default()
            });
            if let Err(e) = producer(&c, "test") {
                panic!("{protocol}/{mechanism}: {e}");
            }
        }
    }
}
