//! The commands consumer: reads `bac.<integration>.commands.v1`, applies each command, and
//! commits its offset once the command is settled.
use super::*;

/// Consumes the integration's commands topic until `shutdown`; restarts with capped backoff.
/// Offsets are committed after a command is settled; an undecodable command is logged and
/// skipped, a transient failure retried with backoff.
pub(crate) async fn consume(
    engine: SyncEngine,
    kafka: KafkaConfig,
    topic: String,
    shutdown: CancellationToken,
) {
    let what = format!("the commands consumer of {topic}");
    let stop = shutdown.clone();
    bac_runtime::kafka::keep_consuming(&what, shutdown, || {
        consume_once(&engine, &kafka, &topic, &stop)
    })
    .await;
}

async fn consume_once(
    engine: &SyncEngine,
    kafka: &KafkaConfig,
    topic: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer = bac_runtime::kafka::GroupConsumer::for_group(
        kafka,
        &format!("bac-{}-commands", engine.inner.integration),
        &[],
    )?;
    consumer.subscribe(&[topic])?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        let headers: Vec<(String, String)> = msg
            .headers()
            .map(|h| {
                h.iter()
                    .filter_map(|x| {
                        Some((
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value?).into_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let received = Received {
            source: format!("{topic}/{}@{}", msg.partition(), msg.offset()),
            headers: &headers,
            payload: msg.payload().unwrap_or_default(),
        };
        let named = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match Command::parse(&headers, received.payload) {
            Err(e) => {
                let reason = format!("not a valid command: {e}");
                if !keep_reject(
                    engine,
                    &named("ce_tenantid"),
                    &named("ce_id"),
                    &received,
                    &reason,
                    shutdown,
                )
                .await
                {
                    return Ok(());
                }
            }
            Ok(cmd) => {
                // Only "could not even store it" (Postgres down) keeps the offset: the
                // command is retried here until it is stored; upstream failures are parked
                // by apply_command and retried by the worker, so one tenant's outage does not
                // hold up the others.
                let mut delay = Duration::from_millis(500);
                loop {
                    match engine.apply_command(&cmd).await {
                        Ok(Outcome::Rejected { reason }) => {
                            if !keep_reject(
                                engine,
                                &cmd.tenant,
                                &cmd.id,
                                &received,
                                &reason,
                                shutdown,
                            )
                            .await
                            {
                                return Ok(());
                            }
                            break;
                        }
                        Ok(outcome) => {
                            tracing::info!(command_id = %cmd.id, tenant = %cmd.tenant, entity = %cmd.entity,
                                op = %cmd.op, ?outcome, "command settled");
                            break;
                        }
                        Err(SyncError::Permanent(e)) => {
                            tracing::warn!(command_id = %cmd.id, tenant = %cmd.tenant, error = %e, "command failed");
                            break;
                        }
                        Err(SyncError::Transient(e)) => {
                            tracing::warn!(command_id = %cmd.id, error = %e, "command not stored yet; retrying");
                            tokio::select! {
                                _ = shutdown.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(delay) => {}
                            }
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            }
        }
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}

/// The message text of a Postgres error (its `Display` says only "db error").
pub(super) fn pg_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Records a rejected command, retrying while Postgres is unreachable: the offset moves on
/// only once the reject is kept (false: shutting down first, so the offset must stay).
async fn keep_reject(
    engine: &SyncEngine,
    tenant: &str,
    command_id: &str,
    received: &Received<'_>,
    reason: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(500);
    while let Err(e) = engine
        .record_reject(tenant, command_id, received, reason)
        .await
    {
        tracing::warn!(error = %e, "keeping a rejected command failed; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    true
}
