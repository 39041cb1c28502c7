//! The replica registry: each gateway replica says it is alive every [`HEARTBEAT`] and reads
//! how many are (seen within [`LIVE_FOR`]); the rate limits follow that number. A replica that
//! stops removes its row; one that dies drops out after [`LIVE_FOR`], during which the others
//! enforce slightly less than the configured limit, never more.
use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::AppState;

pub const HEARTBEAT: Duration = Duration::from_secs(3);
pub const LIVE_FOR: Duration = Duration::from_secs(10);

/// Runs until `shutdown`, then unregisters this replica.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        match beat(&state, &id).await {
            Ok(n) => {
                metrics::gauge!("bac_gateway_replicas").set(f64::from(n));
                if !state.settings.rate_limit_per_replica {
                    state.limits.set_replicas(n);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "replica heartbeat failed; rate limit shares unchanged")
            }
        }
    }
    if let Ok(c) = state.db.get().await {
        let _ = c
            .execute("DELETE FROM replicas WHERE id = $1", &[&id])
            .await;
    }
}

/// Registers this replica and counts the live ones (this one included).
async fn beat(state: &AppState, id: &str) -> anyhow::Result<u32> {
    let c = state.db.get().await?;
    let live = LIVE_FOR.as_secs_f64();
    let row = c
        .query_one(
            "WITH me AS (
               INSERT INTO replicas (id, seen_at) VALUES ($1, now())
               ON CONFLICT (id) DO UPDATE SET seen_at = now())
             SELECT count(*) + 1 FROM replicas
             WHERE id <> $1 AND seen_at > now() - make_interval(secs => $2)",
            &[&id, &live],
        )
        .await?;
    // Rows of replicas long gone.
    c.execute(
        "DELETE FROM replicas WHERE seen_at < now() - interval '1 hour'",
        &[],
    )
    .await?;
    Ok(u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX))
}
