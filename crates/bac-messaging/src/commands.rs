//! Send requests from the platform's other services on `bac.messaging.commands.v1`: a
//! CloudEvent in binary mode, `ce_type` `bac.messaging.email.send` (or `.teams.send`,
//! `.google_chat.send`, `.slack.send`), `ce_tenantid` the tenant, `ce_id` the idempotency key (unless the data
//! names its own `intent_id`), optional `ce_connectionid`, data the request of the matching
//! REST route in proto3 JSON (`SendEmailRequest`, `SendTeamsMessageRequest`,
//! `SendGoogleChatMessageRequest`, `SendSlackMessageRequest`). Each command gives one delivery and its events on
//! `bac.messaging.delivery.v1`, the same as the REST route; a command that can never be sent is a `failed`
//! delivery with the reason, so the sender hears it where it hears everything else. Offsets
//! are committed once the command is settled; only "could not store it" (Postgres down) is
//! retried here, with backoff.
use std::time::Duration;

use bac_proto::messaging::v1::{
    SendEmailRequest, SendGoogleChatMessageRequest, SendSlackMessageRequest,
    SendTeamsMessageRequest,
};
use bac_runtime::{config::KafkaConfig, context::valid_tenant_id, ErrorCode, ServiceError};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    Message,
};
use tokio_util::sync::CancellationToken;

use crate::{api::MessagingApi, deliveries};

/// The topic other services publish send requests to.
pub const TOPIC: &str = "bac.messaging.commands.v1";
/// The command types.
pub const SEND_EMAIL: &str = "bac.messaging.email.send";
pub const SEND_TEAMS: &str = "bac.messaging.teams.send";
pub const SEND_GOOGLE_CHAT: &str = "bac.messaging.google_chat.send";
pub const SEND_SLACK: &str = "bac.messaging.slack.send";

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
    let consumer =
        bac_runtime::kafka::GroupConsumer::for_group(kafka, "bac-messaging-commands", &[])?;
    consumer.subscribe(&[TOPIC])?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        let header = |k: &str| bac_runtime::kafka::header(&msg, k).unwrap_or_default();
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

/// A command's request, read.
enum Request {
    Email(SendEmailRequest),
    Teams(SendTeamsMessageRequest),
    GoogleChat(SendGoogleChatMessageRequest),
    Slack(SendSlackMessageRequest),
}

/// Applies one command; `Err` only when nothing could be recorded (try again).
async fn settle(api: &MessagingApi, c: &Command) -> Result<(), ServiceError> {
    if !valid_tenant_id(&c.tenant) {
        // no tenant to answer to: nothing can be recorded for anyone
        tracing::warn!(command = %c.at, tenant = %c.tenant, "command without a valid ce_tenantid skipped");
        return Ok(());
    }
    let req = match parse(c) {
        Ok(r) => r,
        Err(reason) => return reject(api, c, &Summary::of_type(c), &reason).await,
    };
    let summary = Summary::of(c, &req);
    let outcome = match req {
        Request::Email(r) => api.queue_email(&c.tenant, r).await.map(|(d, _)| d),
        Request::Teams(r) => api.send_teams(&c.tenant, r).await,
        Request::GoogleChat(r) => api.send_google_chat(&c.tenant, r).await,
        Request::Slack(r) => api.send_slack(&c.tenant, r).await,
    };
    match outcome {
        Ok(d) => {
            tracing::info!(command = %c.at, delivery = %d.id, tenant = %c.tenant, "send command settled");
            Ok(())
        }
        Err(e) if ours(&e) => Err(e),
        Err(e) => reject(api, c, &summary, &e.message).await,
    }
}

/// What a refused command's failed delivery records of it.
#[derive(Default)]
struct Summary {
    channel: String,
    intent: String,
    connection: String,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    subject: String,
    template: String,
    template_version: u32,
}

impl Summary {
    fn of_type(c: &Command) -> Self {
        Summary {
            channel: match c.ty.as_str() {
                SEND_TEAMS => "teams",
                SEND_GOOGLE_CHAT => "google_chat",
                SEND_SLACK => "slack",
                _ => "email",
            }
            .into(),
            intent: c.id.clone(),
            connection: c.connection.clone(),
            ..Default::default()
        }
    }

    fn of(c: &Command, req: &Request) -> Self {
        let mut s = Summary::of_type(c);
        match req {
            Request::Email(r) => {
                s.intent = r.intent_id.clone();
                s.connection = r.connection_id.clone();
                s.to = r.to.clone();
                s.cc = r.cc.clone();
                s.bcc = r.bcc.clone();
                s.subject = r.subject.clone();
                s.template = r.template.clone();
                s.template_version = r.template_version;
            }
            Request::Teams(r) => {
                s.intent = r.intent_id.clone();
                s.connection = r.connection_id.clone();
                s.subject = r.title.clone();
            }
            Request::GoogleChat(r) => {
                s.intent = r.intent_id.clone();
                s.connection = r.connection_id.clone();
                s.subject = r.text.lines().next().unwrap_or("").to_string();
            }
            Request::Slack(r) => {
                s.intent = r.intent_id.clone();
                s.connection = r.connection_id.clone();
                s.to = vec![r.channel.clone()]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect();
                s.subject = r.text.lines().next().unwrap_or("").to_string();
            }
        }
        s
    }
}

fn parse(c: &Command) -> Result<Request, String> {
    let read = |what: &str| format!("the data is not a {what} in JSON");
    let id = |given: &mut String| {
        if given.is_empty() {
            *given = c.id.clone();
        }
    };
    let conn = |given: &mut String| {
        if given.is_empty() {
            *given = c.connection.clone();
        }
    };
    let req = match c.ty.as_str() {
        SEND_EMAIL => {
            let mut r: SendEmailRequest = serde_json::from_slice(&c.payload)
                .map_err(|e| format!("{}: {e}", read("SendEmailRequest")))?;
            id(&mut r.intent_id);
            conn(&mut r.connection_id);
            Request::Email(r)
        }
        SEND_TEAMS => {
            let mut r: SendTeamsMessageRequest = serde_json::from_slice(&c.payload)
                .map_err(|e| format!("{}: {e}", read("SendTeamsMessageRequest")))?;
            id(&mut r.intent_id);
            conn(&mut r.connection_id);
            Request::Teams(r)
        }
        SEND_GOOGLE_CHAT => {
            let mut r: SendGoogleChatMessageRequest = serde_json::from_slice(&c.payload)
                .map_err(|e| format!("{}: {e}", read("SendGoogleChatMessageRequest")))?;
            id(&mut r.intent_id);
            conn(&mut r.connection_id);
            Request::GoogleChat(r)
        }
        SEND_SLACK => {
            let mut r: SendSlackMessageRequest = serde_json::from_slice(&c.payload)
                .map_err(|e| format!("{}: {e}", read("SendSlackMessageRequest")))?;
            id(&mut r.intent_id);
            conn(&mut r.connection_id);
            Request::Slack(r)
        }
        other => {
            return Err(format!(
                "ce_type {other:?} is not a messaging command (known: {SEND_EMAIL}, {SEND_TEAMS}, {SEND_GOOGLE_CHAT}, {SEND_SLACK})"
            ))
        }
    };
    let intent = match &req {
        Request::Email(r) => &r.intent_id,
        Request::Teams(r) => &r.intent_id,
        Request::GoogleChat(r) => &r.intent_id,
        Request::Slack(r) => &r.intent_id,
    };
    if intent.is_empty() {
        return Err("a command needs ce_id (or intent_id in its data): its idempotency key".into());
    }
    Ok(req)
}

async fn reject(
    api: &MessagingApi,
    c: &Command,
    s: &Summary,
    reason: &str,
) -> Result<(), ServiceError> {
    let raw = if s.intent.is_empty() {
        &c.id
    } else {
        &s.intent
    };
    if raw.is_empty() {
        // nothing to key an answer on: the log is all there is
        tracing::warn!(command = %c.at, tenant = %c.tenant, %reason, "command without an id refused");
        return Ok(());
    }
    // the key the API would have used; one it refuses is keyed by its hash, so two different
    // over-long ids never share an answer
    let intent = match bac_connector::intent_of("messaging", raw) {
        Ok((k, true)) => k,
        _ => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(raw.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    };
    // what is kept of the command must be storable whatever it held
    let clean = |v: &str| v.replace('\0', "");
    let list = |v: &[String]| v.iter().map(|x| clean(x)).collect::<Vec<_>>();
    let d = deliveries::reject(
        api.db(),
        &deliveries::NewDelivery {
            tenant_id: c.tenant.clone(),
            connection_id: clean(&s.connection),
            channel: s.channel.clone(),
            intent_id: intent,
            to: list(&s.to),
            cc: list(&s.cc),
            bcc: list(&s.bcc),
            subject: clean(&s.subject),
            template: clean(&s.template),
            template_version: s.template_version,
            ..Default::default()
        },
        &clean(reason),
    )
    .await?;
    tracing::warn!(command = %c.at, delivery = %d.id, tenant = %c.tenant, %reason, "send command refused: failed delivery");
    Ok(())
}
