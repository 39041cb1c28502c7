//! Send requests from the platform's other services on `bac.messaging.commands.v1`: a
//! CloudEvent in binary mode, `ce_type` `bac.messaging.email.send`, `ce_tenantid` the tenant,
//! `ce_id` the idempotency key (unless the data names its own `intent_id`), optional
//! `ce_connectionid`, data a `bac.messaging.v1.SendEmailRequest` in proto3 JSON. Each command
//! gives one delivery and its events on `bac.messaging.delivery.v1`, the same as
//! `POST /api/v1/messaging/email/send`; a command that can never be sent is a `failed`
//! delivery with the reason, so the sender hears it where it hears everything else. Offsets
//! are committed once the command is settled; only "could not store it" (Postgres down) is
//! retried here, with backoff.
use std::time::Duration;

use bac_proto::messaging::v1::SendEmailRequest;
use bac_runtime::{config::KafkaConfig, context::valid_tenant_id, ErrorCode, ServiceError};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    message::Headers,
    Message,
};
use tokio_util::sync::CancellationToken;

use crate::{api::MessagingApi, deliveries};

/// The topic other services publish send requests to.
pub const TOPIC: &str = "bac.messaging.commands.v1";
/// The one command type today.
pub const SEND_EMAIL: &str = "bac.messaging.email.send";

/// Consumes the commands topic until `shutdown`; restarts with capped backoff.
pub async fn consume(api: MessagingApi, kafka: KafkaConfig, shutdown: CancellationToken) {
    let stop = shutdown.clone();
    bac_runtime::kafka::keep_consuming("the messaging commands consumer", shutdown, || {
        consume_once(&api, &kafka, &stop)
    })
    .await;
}

async fn consume_once(
    api: &MessagingApi,
    kafka: &KafkaConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer = bac_runtime::kafka::GroupConsumer::create(
        bac_runtime::kafka::client_config(kafka)
            .set("group.id", "bac-messaging-commands")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000"),
    )?;
    consumer.subscribe(&[TOPIC])?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        let header = |k: &str| -> String {
            msg.headers()
                .and_then(|h| {
                    h.iter()
                        .find(|x| x.key == k)
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default()
        };
        let command = Command {
            id: header("ce_id"),
            ty: header("ce_type"),
            tenant: header("ce_tenantid"),
            connection: header("ce_connectionid"),
            payload: msg.payload().unwrap_or_default().to_vec(),
            at: format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset()),
        };
        let mut delay = Duration::from_millis(500);
        loop {
            match settle(api, &command).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(command = %command.at, error = %e.message, "command not stored yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}

/// One command as it came off the topic.
struct Command {
    id: String,
    ty: String,
    tenant: String,
    connection: String,
    payload: Vec<u8>,
    /// Where it was read (for logs).
    at: String,
}

/// Failures the fleet may recover from (its own storage): retried, never a failed delivery.
fn ours(e: &ServiceError) -> bool {
    matches!(
        e.code,
        ErrorCode::Internal | ErrorCode::SecretStoreUnavailable
    )
}

/// Applies one command; `Err` only when nothing could be recorded (try again).
async fn settle(api: &MessagingApi, c: &Command) -> Result<(), ServiceError> {
    if !valid_tenant_id(&c.tenant) {
        // no tenant to answer to: nothing can be recorded for anyone
        tracing::warn!(command = %c.at, tenant = %c.tenant, "command without a valid ce_tenantid skipped");
        return Ok(());
    }
    let parsed = parse(c);
    let req = match parsed {
        Ok(r) => r,
        Err(reason) => return reject(api, c, &SendEmailRequest::default(), &reason).await,
    };
    match api.queue_email(&c.tenant, req.clone()).await {
        Ok((d, created)) => {
            tracing::info!(command = %c.at, delivery = %d.id, tenant = %c.tenant, created, "send command settled");
            Ok(())
        }
        Err(e) if ours(&e) => Err(e),
        Err(e) => reject(api, c, &req, &e.message).await,
    }
}

fn parse(c: &Command) -> Result<SendEmailRequest, String> {
    if c.ty != SEND_EMAIL {
        return Err(format!(
            "ce_type {:?} is not a messaging command (known: {SEND_EMAIL})",
            c.ty
        ));
    }
    let mut req: SendEmailRequest = serde_json::from_slice(&c.payload)
        .map_err(|e| format!("the data is not a SendEmailRequest in JSON: {e}"))?;
    if req.intent_id.is_empty() {
        req.intent_id = c.id.clone();
    }
    if req.intent_id.is_empty() {
        return Err("a command needs ce_id (or intent_id in its data): its idempotency key".into());
    }
    if req.connection_id.is_empty() {
        req.connection_id = c.connection.clone();
    }
    Ok(req)
}

async fn reject(
    api: &MessagingApi,
    c: &Command,
    req: &SendEmailRequest,
    reason: &str,
) -> Result<(), ServiceError> {
    let intent = if req.intent_id.is_empty() {
        if c.id.is_empty() {
            // nothing to key an answer on: the log is all there is
            tracing::warn!(command = %c.at, tenant = %c.tenant, %reason, "command without an id refused");
            return Ok(());
        }
        c.id.clone()
    } else {
        req.intent_id.clone()
    };
    let d = deliveries::reject(
        api.db(),
        &deliveries::NewDelivery {
            tenant_id: c.tenant.clone(),
            connection_id: if req.connection_id.is_empty() {
                c.connection.clone()
            } else {
                req.connection_id.clone()
            },
            channel: "email".into(),
            intent_id: intent.chars().take(128).collect(),
            to: req.to.clone(),
            cc: req.cc.clone(),
            bcc: req.bcc.clone(),
            subject: req.subject.clone(),
            template: req.template.clone(),
            template_version: req.template_version,
            ..Default::default()
        },
        reason,
    )
    .await?;
    tracing::warn!(command = %c.at, delivery = %d.id, tenant = %c.tenant, %reason, "send command refused: failed delivery");
    Ok(())
}
