//! Rate limits per API key and per tenant: governor's GCRA, keyed, in the memory of each
//! gateway replica. The limits are the fleet's: each replica enforces its share, the
//! configured rate and burst divided by the number of live replicas (each registers itself in
//! `gateway.replicas` every few seconds, see [`crate::replicas`]), so clients spread over the
//! replicas by the load balancer get the configured limit in all, not N times it.
//!
//! [`RateLimits::check`] runs right after authentication. Its outcome travels to the response
//! through a task-local slot that the [`headers`] middleware opens around every request, so a
//! success carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and a refusal
//! additionally `Retry-After`, in the one error shape (`rate_limited` / `RATE_LIMITED`).
use std::{
    cell::Cell,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use governor::{
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};

use crate::error::ApiError;

/// A configured limit: a steady rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    pub per_second: u32,
    pub burst: u32,
}

/// What a caller learns about its limit (the tighter of its key's and its tenant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// The burst size: requests allowed at once when the bucket is full.
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Set when the request was refused: until the next request is allowed.
    pub retry_after: Option<Duration>,
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct Limiter {
    quota: RateQuota,
    inner: Keyed,
    /// Cells one request costs: the number of live replicas sharing the limit. Charging n
    /// cells of the fleet's bucket is this replica's 1/n share, and a change of n needs no new
    /// bucket (a fresh one would hand every key a new burst).
    cost: std::sync::atomic::AtomicU32,
}

impl Limiter {
    fn new(q: RateQuota, clock: &DefaultClock) -> Option<Limiter> {
        let rate = NonZeroU32::new(q.per_second)?;
        let burst = NonZeroU32::new(q.burst.max(1))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Limiter {
            quota: RateQuota {
                per_second: q.per_second,
                burst: burst.get(),
            },
            inner: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            cost: std::sync::atomic::AtomicU32::new(1),
        })
    }

    fn check(&self, key: &str, clock: &DefaultClock) -> RateInfo {
        let key = key.to_string();
        // Never more than the burst: with a burst smaller than the replica count, a request
        // costs the whole burst, so the fleet never exceeds the configured rate.
        let n = self.cost.load(Ordering::Relaxed).clamp(1, self.quota.burst);
        let limit = (self.quota.burst / n).max(1);
        let cells = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match self.inner.check_key_n(&key, cells) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity() / n;
                let refill = snapshot.quota().replenish_interval() * n;
                RateInfo {
                    limit,
                    remaining,
                    reset: refill * limit.saturating_sub(remaining),
                    retry_after: None,
                }
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(clock.now());
                RateInfo {
                    limit,
                    remaining: 0,
                    reset: wait,
                    retry_after: Some(wait),
                }
            }
            // n is clamped to the burst, so this cannot happen; refuse for a second if it does.
            Err(_) => RateInfo {
                limit,
                remaining: 0,
                reset: Duration::from_secs(1),
                retry_after: Some(Duration::from_secs(1)),
            },
        }
    }
}

/// The limiters of one gateway replica (in [`crate::AppState`]).
pub struct RateLimits {
    per_key: Option<Limiter>,
    per_tenant: Option<Limiter>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl RateLimits {
    /// `None` (or a rate of 0) switches that limit off.
    pub fn new(per_key: Option<RateQuota>, per_tenant: Option<RateQuota>) -> RateLimits {
        let clock = DefaultClock::default();
        RateLimits {
            per_key: per_key.and_then(|q| Limiter::new(q, &clock)),
            per_tenant: per_tenant.and_then(|q| Limiter::new(q, &clock)),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    pub fn disabled() -> RateLimits {
        RateLimits::new(None, None)
    }

    /// How many replicas share the limits now (from the replica registry): each request
    /// costs that many cells of the fleet's bucket. The buckets themselves stay as they are.
    pub fn set_replicas(&self, replicas: u32) {
        let n = replicas.max(1);
        for l in [&self.per_key, &self.per_tenant].into_iter().flatten() {
            if l.cost.swap(n, Ordering::Relaxed) != n {
                tracing::info!(
                    replicas = n,
                    "rate limits shared by the live gateway replicas"
                );
            }
        }
    }

    /// Counts one request of `key_id` (of `tenant`). The key's limit is checked first; a
    /// request the tenant's limit refuses has still used one of the key's. The outcome is
    /// also recorded for the [`headers`] middleware.
    pub fn check(&self, tenant: &str, key_id: &str) -> Result<RateInfo, ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.forget_idle();
        }
        let mut info: Option<RateInfo> = None;
        let mut refused_by = "";
        if let Some(l) = &self.per_key {
            let i = l.check(key_id, &self.clock);
            if i.retry_after.is_some() {
                refused_by = "API key";
            }
            info = Some(i);
        }
        if let (Some(l), "") = (&self.per_tenant, refused_by) {
            let i = l.check(tenant, &self.clock);
            if i.retry_after.is_some() {
                refused_by = "tenant";
                info = Some(i);
            } else if info.is_none_or(|k| i.remaining < k.remaining) {
                info = Some(i);
            }
        }
        let Some(info) = info else {
            return Ok(RateInfo {
                limit: 0,
                remaining: 0,
                reset: Duration::ZERO,
                retry_after: None,
            });
        };
        record(info);
        match info.retry_after {
            None => Ok(info),
            Some(wait) => {
                metrics::counter!("bac_http_rate_limited_total", "scope" => if refused_by == "tenant" { "tenant" } else { "key" })
                    .increment(1);
                let per_second = if refused_by == "tenant" {
                    self.per_tenant.as_ref().map(|l| l.quota.per_second)
                } else {
                    self.per_key.as_ref().map(|l| l.quota.per_second)
                };
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "RATE_LIMITED",
                    format!(
                        "this {refused_by} sent more than {} requests per second (burst {})",
                        per_second.unwrap_or_default(),
                        info.limit
                    ),
                )
                .suggest(format!(
                    "Retry after {} s (Retry-After header)",
                    ceil_secs(wait)
                )))
            }
        }
    }

    /// Drops the state of keys whose buckets are full again (they look like new ones).
    fn forget_idle(&self) {
        for l in [&self.per_key, &self.per_tenant].into_iter().flatten() {
            l.inner.retain_recent();
            l.inner.shrink_to_fit();
        }
    }
}

/// Callers without a valid key, per source address. A source that failed to authenticate in
/// the last minute (no key, an unknown, revoked or expired one, a wrong webhook token) spends
/// one request of its budget (`BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE`, burst `..._BURST`)
/// on each failure and on each lookup the key cache cannot answer; once it is spent, the
/// source is answered 429 before any query until the budget refills. Made-up keys thus cost a
/// handful of queries however many are sent, while a source that never fails (a platform
/// service, an upstream sending webhooks in bursts) never touches the budget.
pub struct SourceGuard {
    limiter: Option<Limiter>,
    clock: DefaultClock,
    spends: AtomicU64,
    /// When each source last failed to authenticate (see [`Self::spend_if_failing`]).
    failing: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The budget's key of an address: IPv4 as it is (also when mapped into IPv6), IPv6 by its
/// /64, the block one subscriber usually holds whole, so rotating addresses within it does
/// not buy new budgets.
fn source_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// How long a failed authentication keeps its source on the budget.
const FAILING_FOR: Duration = Duration::from_secs(60);

impl SourceGuard {
    /// `None` switches the guard off.
    pub fn new(quota: Option<RateQuota>) -> SourceGuard {
        let clock = DefaultClock::default();
        SourceGuard {
            limiter: quota.and_then(|q| Limiter::new(q, &clock)),
            clock,
            spends: AtomicU64::new(0),
            failing: Default::default(),
        }
    }

    /// Spends one request of `ip`'s budget if it failed lately (429 when spent); free otherwise.
    pub fn spend_if_failing(&self, ip: Option<std::net::IpAddr>) -> Result<(), ApiError> {
        let failing = ip.is_some_and(|ip| {
            self.failing
                .lock()
                .ok()
                .and_then(|m| m.get(&source_key(ip)).map(|at| at.elapsed() < FAILING_FOR))
                .unwrap_or(false)
        });
        if failing {
            self.spend(ip)
        } else {
            Ok(())
        }
    }

    /// `ip` failed to authenticate: it is on the budget for a minute, and this costs one.
    pub fn failed(&self, ip: Option<std::net::IpAddr>) {
        let (Some(ip), Ok(mut m)) = (ip, self.failing.lock()) else {
            return;
        };
        if m.len() > 100_000 {
            m.retain(|_, at| at.elapsed() < FAILING_FOR);
            if m.len() > 100_000 {
                m.clear();
            }
        }
        m.insert(source_key(ip), std::time::Instant::now());
        drop(m);
        let _ = self.spend(Some(ip));
    }

    /// Spends one request of `ip`'s budget; 429 when it is spent.
    pub fn spend(&self, ip: Option<std::net::IpAddr>) -> Result<(), ApiError> {
        let (Some(ip), Some(l)) = (ip, &self.limiter) else {
            return Ok(());
        };
        if self.spends.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            l.inner.retain_recent();
            l.inner.shrink_to_fit();
        }
        let info = l.check(&source_key(ip), &self.clock);
        let Some(wait) = info.retry_after else {
            return Ok(());
        };
        record(info);
        metrics::counter!("bac_http_rate_limited_total", "scope" => "source").increment(1);
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "RATE_LIMITED",
            format!(
                "this address sent more than {} requests per second that needed a key lookup or had no valid key",
                l.quota.per_second
            ),
        )
        .suggest(format!(
            "Check the API key; retry after {} s (Retry-After header)",
            ceil_secs(wait).max(1)
        )))
    }
}

tokio::task_local! {
    static RATE: Cell<Option<RateInfo>>;
}

fn record(info: RateInfo) {
    let _ = RATE.try_with(|c| c.set(Some(info)));
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Middleware: opens the slot [`RateLimits::check`] writes to and turns what it wrote into
/// the `RateLimit-*` (and, on a refusal, `Retry-After`) headers of the response.
pub async fn headers(req: Request, next: Next) -> Response {
    let (mut resp, info) = RATE
        .scope(Cell::new(None), async move {
            let resp = next.run(req).await;
            (resp, RATE.with(Cell::get))
        })
        .await;
    if let Some(info) = info {
        set_headers(resp.headers_mut(), info);
    }
    resp
}

pub fn set_headers(h: &mut HeaderMap, info: RateInfo) {
    h.insert("ratelimit-limit", HeaderValue::from(info.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(info.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(ceil_secs(info.reset)));
    if let Some(wait) = info.retry_after {
        h.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(ceil_secs(wait).max(1)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_refusals() {
        let limits = RateLimits::new(
            Some(RateQuota {
                per_second: 1,
                burst: 3,
            }),
            None,
        );
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check("t", "k").map(|i| i.remaining).unwrap_or(99))
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let e = limits.check("t", "k").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.error_code, "RATE_LIMITED");
        // Another key of the same tenant is not affected.
        assert!(limits.check("t", "k2").is_ok());
    }

    #[test]
    fn the_tenant_limit_covers_all_its_keys() {
        let limits = RateLimits::new(
            Some(RateQuota {
                per_second: 100,
                burst: 100,
            }),
            Some(RateQuota {
                per_second: 1,
                burst: 2,
            }),
        );
        assert!(limits.check("t", "a").is_ok());
        let i = limits.check("t", "b").unwrap();
        assert_eq!(
            (i.limit, i.remaining),
            (2, 0),
            "the tighter limit is reported"
        );
        let e = limits.check("t", "c").unwrap_err();
        assert!(e.message.contains("tenant"), "{}", e.message);
        assert!(limits.check("other", "d").is_ok());
    }

    #[test]
    fn a_source_spends_its_budget_then_waits() {
        let guard = SourceGuard::new(Some(RateQuota {
            per_second: 1,
            burst: 3,
        }));
        let ip = Some("203.0.113.9".parse().unwrap());
        let other = Some("203.0.113.10".parse().unwrap());
        for _ in 0..3 {
            assert!(guard.spend(ip).is_ok());
        }
        let e = guard.spend(ip).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            guard.spend(other).is_ok(),
            "another address is not affected"
        );
        assert!(SourceGuard::new(None).spend(ip).is_ok());
        assert!(guard.spend(None).is_ok(), "no address known, no limit");
        // Webhooks: free until the source fails a check.
        let hook = SourceGuard::new(Some(RateQuota {
            per_second: 1,
            burst: 2,
        }));
        assert!((0..100).all(|_| hook.spend_if_failing(ip).is_ok()));
        hook.failed(ip);
        assert!(hook.spend_if_failing(ip).is_ok());
        assert!(hook.spend_if_failing(ip).is_err());
        assert!(hook.spend_if_failing(other).is_ok());
        // One IPv6 /64 is one source; a mapped IPv4 address is that IPv4 address.
        let v6 = SourceGuard::new(Some(RateQuota {
            per_second: 1,
            burst: 1,
        }));
        assert!(v6.spend(Some("2001:db8:1:2::1".parse().unwrap())).is_ok());
        assert!(v6
            .spend(Some("2001:db8:1:2::ffff".parse().unwrap()))
            .is_err());
        assert!(v6.spend(Some("2001:db8:1:3::1".parse().unwrap())).is_ok());
        assert!(v6.spend(Some("198.51.100.1".parse().unwrap())).is_ok());
        assert!(v6
            .spend(Some("::ffff:198.51.100.1".parse().unwrap()))
            .is_err());
    }

    #[test]
    fn three_replicas_each_enforce_a_third() {
        let limits = RateLimits::new(
            Some(RateQuota {
                per_second: 1,
                burst: 30,
            }),
            None,
        );
        limits.set_replicas(3);
        let allowed = (0..100).filter(|_| limits.check("t", "k").is_ok()).count();
        assert_eq!(allowed, 10, "a third of the burst");
        // A change of the replica count hands out no new burst: the bucket is the fleet's.
        limits.set_replicas(1);
        let allowed = (0..100).filter(|_| limits.check("t", "k").is_ok()).count();
        assert_eq!(allowed, 0, "the burst was spent by the three");
    }

    #[test]
    fn disabled_limits_let_everything_through() {
        let limits = RateLimits::disabled();
        assert!((0..10_000).all(|_| limits.check("t", "k").is_ok()));
    }

    #[test]
    fn headers_round_up_seconds() {
        let mut h = HeaderMap::new();
        set_headers(
            &mut h,
            RateInfo {
                limit: 5,
                remaining: 0,
                reset: Duration::from_millis(200),
                retry_after: Some(Duration::from_millis(200)),
            },
        );
        assert_eq!(h["ratelimit-limit"], "5");
        assert_eq!(h["ratelimit-remaining"], "0");
        assert_eq!(h["ratelimit-reset"], "1");
        assert_eq!(h["retry-after"], "1");
    }
}
