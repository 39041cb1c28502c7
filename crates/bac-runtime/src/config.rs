//! Configuration from `BAC_*` environment variables with working local defaults, validated
//! before anything binds so a typo fails at start with a clear message.
use std::{net::SocketAddr, time::Duration};

use secrecy::SecretString;

use crate::upstream::EgressPolicy;

/// Which binary is starting; decides default ports, schema and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Gateway,
    GoogleWorkspace,
    Odoo,
    Zoho,
    Tally,
    Messaging,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::Gateway,
        ServiceKind::GoogleWorkspace,
        ServiceKind::Odoo,
        ServiceKind::Zoho,
        ServiceKind::Tally,
        ServiceKind::Messaging,
    ];

    /// Integration key as it appears in REST paths and connection records.
    pub fn key(self) -> &'static str {
        match self {
            ServiceKind::Gateway => "gateway",
            ServiceKind::GoogleWorkspace => "google-workspace",
            ServiceKind::Odoo => "odoo",
            ServiceKind::Zoho => "zoho",
            ServiceKind::Tally => "tally",
            ServiceKind::Messaging => "messaging",
        }
    }

    /// Postgres schema and Kafka topic segment (no dashes).
    pub fn schema(self) -> &'static str {
        match self {
            ServiceKind::GoogleWorkspace => "google_workspace",
            other => other.key(),
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            ServiceKind::Gateway => "bac-gateway",
            ServiceKind::GoogleWorkspace => "bac-google-workspace",
            ServiceKind::Odoo => "bac-odoo",
            ServiceKind::Zoho => "bac-zoho",
            ServiceKind::Tally => "bac-tally",
            ServiceKind::Messaging => "bac-messaging",
        }
    }

    /// Offset of this service's ports: gRPC 50050 + n, metrics/health 9100 + n.
    pub fn port_offset(self) -> u16 {
        match self {
            ServiceKind::Gateway => 0,
            ServiceKind::GoogleWorkspace => 1,
            ServiceKind::Odoo => 2,
            ServiceKind::Zoho => 3,
            ServiceKind::Tally => 4,
            ServiceKind::Messaging => 5,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.key() == s || k.schema() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: String,
    /// Token auth (dev). Ignored when AppRole credentials are set.
    pub token: Option<SecretString>,
    pub role_id: Option<String>,
    pub secret_id: Option<SecretString>,
    /// Where the AppRole auth method is mounted (`auth/<mount>/login`).
    pub approle_mount: String,
    /// Kubernetes auth: the Vault role to log in as with the pod's service-account token.
    pub kubernetes_role: Option<String>,
    /// Where the Kubernetes auth method is mounted.
    pub kubernetes_mount: String,
    /// The service-account token file Kubernetes mounts into the pod.
    pub kubernetes_token_path: String,
    /// KV v2 mount; credentials live at `<mount>/bac/<tenant>/<integration>/<connection>`.
    pub mount: String,
    /// How long a read secret is reused before Vault is asked again.
    pub cache_ttl: Duration,
    /// How long after it was read a cached secret still serves while Vault is down.
    pub cache_max_stale: Duration,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// librdkafka `message.timeout.ms`: how long one publish attempt may wait for a broker.
    pub message_timeout: Duration,
    /// TLS and SASL for every producer, consumer and admin client.
    pub security: KafkaSecurity,
}

/// How the fleet's Kafka clients authenticate and encrypt (`BAC_KAFKA_SECURITY_PROTOCOL`...).
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols only).
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<SecretString>,
    /// KV v2 path (under the Vault mount) holding `username` and `password`, read at start
    /// when the password is not given in the environment.
    pub sasl_vault_path: Option<String>,
    /// PEM file of the CA that signed the brokers' certificates (default: the system's).
    pub ssl_ca_file: Option<String>,
    /// Client certificate and key (PEM) for brokers that require mutual TLS.
    pub ssl_cert_file: Option<String>,
    pub ssl_key_file: Option<String>,
}

impl KafkaSecurity {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let protocol = get("BAC_KAFKA_SECURITY_PROTOCOL")
            .unwrap_or_else(|| "plaintext".into())
            .to_ascii_lowercase();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
            return Err(err(
                "BAC_KAFKA_SECURITY_PROTOCOL",
                &protocol,
                "expected plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        let sasl = protocol.starts_with("sasl_");
        let sasl_mechanism = get("BAC_KAFKA_SASL_MECHANISM").map(|m| m.to_ascii_uppercase());
        if let Some(m) = &sasl_mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                return Err(err(
                    "BAC_KAFKA_SASL_MECHANISM",
                    m,
                    "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                ));
            }
        }
        let security = KafkaSecurity {
            sasl_mechanism: sasl_mechanism.or_else(|| sasl.then(|| "SCRAM-SHA-512".into())),
            sasl_username: get("BAC_KAFKA_SASL_USERNAME"),
            sasl_password: get("BAC_KAFKA_SASL_PASSWORD").map(SecretString::from),
            sasl_vault_path: get("BAC_KAFKA_SASL_VAULT_PATH"),
            ssl_ca_file: get("BAC_KAFKA_SSL_CA_FILE"),
            ssl_cert_file: get("BAC_KAFKA_SSL_CERT_FILE"),
            ssl_key_file: get("BAC_KAFKA_SSL_KEY_FILE"),
            protocol,
        };
        if sasl
            && security.sasl_vault_path.is_none()
            && (security.sasl_username.is_none() || security.sasl_password.is_none())
        {
            return Err(err(
                "BAC_KAFKA_SECURITY_PROTOCOL",
                &security.protocol,
                "SASL needs BAC_KAFKA_SASL_USERNAME and BAC_KAFKA_SASL_PASSWORD, or BAC_KAFKA_SASL_VAULT_PATH",
            ));
        }
        Ok(security)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceKind,
    pub database_url: String,
    pub database_pool_size: usize,
    pub kafka: KafkaConfig,
    pub vault: VaultConfig,
    pub grpc_addr: SocketAddr,
    /// Metrics and health (`/metrics`, `/healthz`, `/readyz`).
    pub http_addr: SocketAddr,
    /// Public REST API; only the gateway uses it.
    pub api_addr: SocketAddr,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
    pub shutdown_grace: Duration,
    /// Deadline of one upstream HTTP call including retries.
    pub upstream_timeout: Duration,
    /// Non-public address ranges upstream calls may reach (`BAC_UPSTREAM_ALLOW_CIDRS`);
    /// public addresses are always allowed.
    pub upstream_egress: EgressPolicy,
    /// Largest upstream answer one call reads (`BAC_UPSTREAM_MAX_BODY_BYTES`, default 16 MiB).
    pub upstream_max_body: usize,
    /// Upstream calls per second and connection (`BAC_UPSTREAM_PER_SECOND`); `None`: the
    /// provider's own quota (a self-hosted server may take more than the default).
    pub upstream_per_second: Option<u32>,
    /// What is kept how long (`BAC_RETENTION_DAYS`, `BAC_RETENTION_INTERVAL_SECS`).
    pub retention: crate::retention::Retention,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

impl Config {
    pub fn from_env(service: ServiceKind) -> Result<Self, ConfigError> {
        Self::from_lookup(service, |k| std::env::var(k).ok())
    }

    /// Same as [`Config::from_env`] with an explicit variable source (tests).
    pub fn from_lookup(
        service: ServiceKind,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let off = service.port_offset();
        let log_format = match get("BAC_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(err("BAC_LOG_FORMAT", other, "expected json or pretty")),
        };
        Ok(Config {
            service,
            database_url: get("BAC_DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/bac".into()),
            database_pool_size: parse(&get, "BAC_DATABASE_POOL_SIZE", 16)?,
            kafka: KafkaConfig {
                brokers: get("BAC_KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into()),
                topic_partitions: parse(&get, "BAC_KAFKA_TOPIC_PARTITIONS", 3)?,
                topic_replication: parse(&get, "BAC_KAFKA_TOPIC_REPLICATION", 1)?,
                message_timeout: Duration::from_millis(parse(
                    &get,
                    "BAC_KAFKA_MESSAGE_TIMEOUT_MS",
                    60_000,
                )?),
                security: KafkaSecurity::from_lookup(&get)?,
            },
            vault: VaultConfig {
                addr: get("BAC_VAULT_ADDR").unwrap_or_else(|| "http://127.0.0.1:8200".into()),
                token: get("BAC_VAULT_TOKEN").map(SecretString::from),
                role_id: get("BAC_VAULT_ROLE_ID"),
                secret_id: get("BAC_VAULT_SECRET_ID").map(SecretString::from),
                approle_mount: get("BAC_VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".into()),
                kubernetes_role: get("BAC_VAULT_K8S_ROLE"),
                kubernetes_mount: get("BAC_VAULT_K8S_MOUNT").unwrap_or_else(|| "kubernetes".into()),
                kubernetes_token_path: get("BAC_VAULT_K8S_TOKEN_PATH").unwrap_or_else(|| {
                    "/var/run/secrets/kubernetes.io/serviceaccount/token".into()
                }),
                mount: get("BAC_VAULT_MOUNT").unwrap_or_else(|| "secret".into()),
                cache_ttl: Duration::from_secs(parse(&get, "BAC_VAULT_CACHE_TTL_SECS", 30)?),
                cache_max_stale: Duration::from_secs(parse(
                    &get,
                    "BAC_VAULT_CACHE_MAX_STALE_SECS",
                    120,
                )?),
            },
            grpc_addr: addr(&get, "BAC_GRPC_ADDR", 50050 + off)?,
            http_addr: addr(&get, "BAC_HTTP_ADDR", 9100 + off)?,
            api_addr: addr(&get, "BAC_API_ADDR", 8080)?,
            log_format,
            log_filter: get("BAC_LOG").unwrap_or_else(|| "info".into()),
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            shutdown_grace: Duration::from_secs(parse(&get, "BAC_SHUTDOWN_GRACE_SECS", 20)?),
            upstream_timeout: Duration::from_millis(parse(
                &get,
                "BAC_UPSTREAM_TIMEOUT_MS",
                15_000,
            )?),
            retention: crate::retention::Retention {
                keep: Duration::from_secs(86_400 * positive(&get, "BAC_RETENTION_DAYS", 7)?),
                every: Duration::from_secs(positive(&get, "BAC_RETENTION_INTERVAL_SECS", 600)?),
                ..Default::default()
            },
            upstream_max_body: parse(
                &get,
                "BAC_UPSTREAM_MAX_BODY_BYTES",
                crate::upstream::DEFAULT_MAX_BODY,
            )?,
            upstream_per_second: match get("BAC_UPSTREAM_PER_SECOND") {
                None => None,
                Some(_) => Some(
                    u32::try_from(positive(&get, "BAC_UPSTREAM_PER_SECOND", 1)?)
                        .unwrap_or(u32::MAX),
                ),
            },
            upstream_egress: match get("BAC_UPSTREAM_ALLOW_CIDRS") {
                None => EgressPolicy::strict(),
                Some(v) => EgressPolicy::parse(&v)
                    .map_err(|reason| err("BAC_UPSTREAM_ALLOW_CIDRS", &v, &reason))?,
            },
        })
    }

    /// Every variable [`Config::from_lookup`] reads; deployment manifests are checked against it.
    pub const VARIABLES: &'static [&'static str] = &[
        "BAC_DATABASE_URL",
        "BAC_DATABASE_POOL_SIZE",
        "BAC_KAFKA_BROKERS",
        "BAC_KAFKA_TOPIC_PARTITIONS",
        "BAC_KAFKA_TOPIC_REPLICATION",
        "BAC_KAFKA_MESSAGE_TIMEOUT_MS",
        "BAC_KAFKA_SECURITY_PROTOCOL",
        "BAC_KAFKA_SASL_MECHANISM",
        "BAC_KAFKA_SASL_USERNAME",
        "BAC_KAFKA_SASL_PASSWORD",
        "BAC_KAFKA_SASL_VAULT_PATH",
        "BAC_KAFKA_SSL_CA_FILE",
        "BAC_KAFKA_SSL_CERT_FILE",
        "BAC_KAFKA_SSL_KEY_FILE",
        "BAC_VAULT_ADDR",
        "BAC_VAULT_TOKEN",
        "BAC_VAULT_ROLE_ID",
        "BAC_VAULT_SECRET_ID",
        "BAC_VAULT_APPROLE_MOUNT",
        "BAC_VAULT_K8S_ROLE",
        "BAC_VAULT_K8S_MOUNT",
        "BAC_VAULT_K8S_TOKEN_PATH",
        "BAC_VAULT_MOUNT",
        "BAC_VAULT_CACHE_TTL_SECS",
        "BAC_VAULT_CACHE_MAX_STALE_SECS",
        "BAC_GRPC_ADDR",
        "BAC_HTTP_ADDR",
        "BAC_API_ADDR",
        "BAC_LOG",
        "BAC_LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "BAC_SHUTDOWN_GRACE_SECS",
        "BAC_UPSTREAM_TIMEOUT_MS",
        "BAC_UPSTREAM_ALLOW_CIDRS",
        "BAC_UPSTREAM_MAX_BODY_BYTES",
        "BAC_RETENTION_DAYS",
        "BAC_RETENTION_INTERVAL_SECS",
    ];
}

fn err(var: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        var: var.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| err(var, &v, "not a valid number")),
    }
}

/// A number of at least 1.
fn positive(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    let v: u64 = parse(get, var, default)?;
    if v == 0 {
        return Err(err(var, "0", "must be at least 1"));
    }
    Ok(v)
}

fn addr(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default_port: u16,
) -> Result<SocketAddr, ConfigError> {
    match get(var) {
        None => Ok(SocketAddr::from(([0, 0, 0, 0], default_port))),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| err(var, &v, "expected host:port, e.g. 0.0.0.0:8080")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_port_plan() {
        let c = Config::from_lookup(ServiceKind::Odoo, |_| None).unwrap();
        assert_eq!(c.grpc_addr.port(), 50052);
        assert_eq!(c.http_addr.port(), 9102);
        assert_eq!(c.kafka.topic_partitions, 3);
    }

    #[test]
    fn kafka_security_is_checked_before_anything_binds() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(ServiceKind::Odoo, move |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let c = with(&[]).unwrap();
        assert_eq!(c.kafka.security.protocol, "plaintext");
        let c = with(&[
            ("BAC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("BAC_KAFKA_SASL_USERNAME", "bac"),
            ("BAC_KAFKA_SASL_PASSWORD", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.kafka.security.protocol, "sasl_ssl");
        assert_eq!(
            c.kafka.security.sasl_mechanism.as_deref(),
            Some("SCRAM-SHA-512")
        );
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the password stays out of Debug"
        );
        let e = with(&[("BAC_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]).unwrap_err();
        assert!(e.to_string().contains("BAC_KAFKA_SASL_USERNAME"), "{e}");
        let e = with(&[("BAC_KAFKA_SECURITY_PROTOCOL", "tls")]).unwrap_err();
        assert!(e.to_string().contains("BAC_KAFKA_SECURITY_PROTOCOL"), "{e}");
        let e = with(&[
            ("BAC_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("BAC_KAFKA_SASL_MECHANISM", "GSSAPI"),
            ("BAC_KAFKA_SASL_VAULT_PATH", "bac/kafka"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("BAC_KAFKA_SASL_MECHANISM"), "{e}");
    }

    #[test]
    fn bad_number_names_the_variable() {
        let e = Config::from_lookup(ServiceKind::Zoho, |k| {
            (k == "BAC_DATABASE_POOL_SIZE").then(|| "many".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("BAC_DATABASE_POOL_SIZE"));
    }
}
