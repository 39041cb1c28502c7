//! What the delivery worker and the webhook sender share: rounds of leased work run back to
//! back while there is work, then a wait for the earliest due row, a wake-up or shutdown; and
//! the retry schedule both use.
use std::time::Duration;

use bac_runtime::{db::Pool, ServiceError};
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The wait before attempt `attempts + 1`: `base` * 2^(attempts-1), at most `max`, +-20 %.
pub(crate) fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let d = base
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)))
        .min(max);
    d.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

/// Runs `round` (how much work it did) until `shutdown`: again at once after work, else after
/// `next_due`, a `wake` or, when a round fails, a growing pause.
pub(crate) async fn run_rounds<R, RF, N, NF>(
    what: &'static str,
    wake: &Notify,
    shutdown: CancellationToken,
    mut round: R,
    mut next_due: N,
) where
    R: FnMut() -> RF,
    RF: std::future::Future<Output = Result<usize, ServiceError>>,
    N: FnMut() -> NF,
    NF: std::future::Future<Output = Duration>,
{
    let mut failures = 0u32;
    loop {
        let wait = match round().await {
            Ok(n) if n > 0 => {
                failures = 0;
                continue;
            }
            Ok(_) => {
                failures = 0;
                next_due().await
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e.message, "{what} round failed");
                Duration::from_millis(500 * u64::from(failures.min(20)))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long until the earliest due row, from `sql` (one float8: seconds from now, NULL when
/// nothing waits); at most 30 s, since another replica may queue meanwhile.
pub(crate) async fn until_due(db: &Pool, sql: &str) -> Duration {
    let cap = Duration::from_secs(30);
    let Ok(client) = db.get().await else {
        return Duration::from_secs(1);
    };
    let row = client.query_one(sql, &[]).await;
    match row.ok().and_then(|r| r.get::<_, Option<f64>>(0)) {
        Some(s) if s <= 0.0 => Duration::from_millis(10),
        Some(s) => Duration::from_secs_f64(s).min(cap),
        None => cap,
    }
}
