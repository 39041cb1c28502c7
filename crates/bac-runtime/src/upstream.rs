//! The one HTTP client every integration uses to reach its upstream: a per-connection quota
//! (governor), retries with exponential backoff and jitter (backon) on 429/5xx/timeouts that
//! honour `Retry-After`, an overall deadline per call, and metrics per call. A request that is
//! not idempotent is retried only when it certainly never reached the upstream. Every address
//! it connects to passes the deployment's [`egress`] policy first.
pub mod egress;

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, Method, StatusCode};
use std::time::Instant;

pub use egress::{AddressClass, EgressPolicy, EgressRefused};

/// A request described as a value; adapters build these, [`UpstreamClient::send`] does the I/O.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Safe to send twice (reads, or writes the upstream dedupes).
    pub idempotent: bool,
    /// Short name for metrics and logs, e.g. `crm.lead/create`.
    pub operation: String,
    /// Whose budget the request draws from, as the provider counts it; `None`: the client's
    /// own quota, one bucket per origin (a self-hosted server such as Odoo's).
    pub quota: Option<QuotaKey>,
}

/// A provider's unit of quota and its rate: the connector chooses it, because providers do
/// not count by host. Zoho limits each organisation, Slack each workspace and method tier,
/// Google each user and project; every tenant of one of them calls the same host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuotaKey {
    /// e.g. `zoho/org/60012345`, `slack/T0123/tier2`.
    pub key: String,
    /// Calls a minute the unit allows (its burst too).
    pub per_minute: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {upstream}: {reason}")]
    Connect { upstream: String, reason: String },
    #[error("{upstream} did not answer within {after:?}")]
    Timeout { upstream: String, after: Duration },
    #[error("{upstream} is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        upstream: String,
        retry_after: Option<Duration>,
    },
    #[error("{upstream} answered HTTP {status}")]
    Status { upstream: String, status: u16 },
    #[error("building the request failed: {0}")]
    Request(String),
    /// The answer was larger than the client reads (`BAC_UPSTREAM_MAX_BODY_BYTES`).
    #[error("{upstream} answered more than {limit} bytes")]
    TooLarge { upstream: String, limit: usize },
    /// The URL, a redirect or a DNS answer points where the egress policy does not allow.
    #[error(transparent)]
    AddressNotAllowed(#[from] EgressRefused),
}

/// Retry and deadline policy of one client.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Whole call, retries included.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// One try within `deadline`: for callers whose own schedule is the retry (a delivery
    /// tried again later, a webhook message with its backoff).
    pub fn single_attempt(deadline: Duration) -> Self {
        RetryPolicy {
            max_retries: 0,
            deadline,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    /// One bucket per upstream origin (scheme, host, port): every connection's server has
    /// its own quota, and one tenant's burst never delays another's calls.
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    /// Buckets of requests that name their [`QuotaKey`]: one limiter per rate, keyed by the
    /// unit.
    unit_limiters: Arc<Mutex<HashMap<NonZeroU32, Arc<DefaultKeyedRateLimiter<String>>>>>,
    policy: RetryPolicy,
    /// Provider name for metrics (`odoo`, `zoho`...).
    upstream: String,
    egress: EgressPolicy,
    /// Largest answer body read; a larger one is refused, never buffered.
    max_body: usize,
}

/// A redirect to another server: refused, so a request (and the credentials in its body or
/// headers) never leaves the origin the connection names.
#[derive(Debug, thiserror::Error)]
#[error("the upstream redirected to another server")]
pub struct CrossOriginRedirect;

/// Redirect hops followed at most (each re-checked by the egress policy).
const MAX_REDIRECTS: usize = 5;

impl UpstreamClient {
    /// `per_second`: the provider's documented quota for one connection (None: unlimited).
    /// `egress`: which non-public addresses the deployment allows (see [`egress`]).
    pub fn new(
        upstream: &str,
        per_second: Option<u32>,
        policy: RetryPolicy,
        egress: EgressPolicy,
    ) -> Self {
        let hops = egress.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            // Names in the new location go through the resolver below; literals stop here.
            if let Err(refused) = hops.check_literal(attempt.url()) {
                return attempt.error(refused);
            }
            // A 307/308 repeats the body, which holds the connection's credentials (JSON-RPC
            // sends the password in it): only the server the URL names may receive it.
            let first = attempt.previous().first().map(url::Url::origin);
            if first.is_some_and(|o| o != attempt.url().origin()) {
                return attempt.error(CrossOriginRedirect);
            }
            attempt.follow()
        });
        // The client never falls back to an unchecked one: without the resolver, names would
        // reach any address.
        #[allow(clippy::expect_used)]
        let http = reqwest::Client::builder()
            // Upstream operators see who calls (Odoo logs it; providers ask for it).
            .user_agent(format!(
                "bac-integrations/{} ({upstream})",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            // A proxy would resolve the name instead of us, past the policy.
            .no_proxy()
            .dns_resolver(Arc::new(egress::EgressResolver {
                policy: egress.clone(),
            }))
            .redirect(redirects)
            .build()
            .expect("the upstream HTTP client (TLS roots) could not be built");
        let limiter = per_second
            .and_then(NonZeroU32::new)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_second(n))));
        UpstreamClient {
            http,
            limiter,
            unit_limiters: Arc::new(Mutex::new(HashMap::new())),
            policy,
            upstream: upstream.to_string(),
            egress,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Caps what one answer may make us buffer (`BAC_UPSTREAM_MAX_BODY_BYTES`).
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.max(1);
        self
    }

    /// The egress policy this client enforces.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends `req`, retrying what may be retried, within the policy's deadline.
    pub async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let deadline = self.policy.deadline;
        match tokio::time::timeout(deadline, self.send_with_retries(req)).await {
            Ok(r) => r,
            Err(_) => {
                self.record(req, "timeout", Duration::ZERO);
                Err(UpstreamError::Timeout {
                    upstream: self.upstream.clone(),
                    after: deadline,
                })
            }
        }
    }

    async fn send_with_retries(
        &self,
        req: &UpstreamRequest,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_retries)
            .build();
        let began = Instant::now();
        loop {
            self.until_quota_allows(req).await;
            let started = Instant::now();
            let outcome = self.send_once(req).await;
            let (retryable, wait_hint) = match &outcome {
                Ok(resp) => {
                    self.record(req, resp.status.as_str(), started.elapsed());
                    self.record_quota(&resp.headers);
                    let s = resp.status;
                    if s == StatusCode::TOO_MANY_REQUESTS {
                        (true, retry_after(&resp.headers))
                    } else if s.is_server_error() && req.idempotent {
                        (
                            matches!(s.as_u16(), 502..=504) || s == 500,
                            retry_after(&resp.headers),
                        )
                    } else {
                        return outcome;
                    }
                }
                Err(UpstreamError::AddressNotAllowed(refused)) => {
                    self.record(req, "address_not_allowed", started.elapsed());
                    tracing::warn!(upstream = %self.upstream, operation = %req.operation, host = %refused.host, class = %refused.class, "upstream address refused by the egress policy");
                    return outcome;
                }
                Err(UpstreamError::Connect { .. }) => {
                    self.record(req, "connect_error", started.elapsed());
                    (true, None)
                }
                Err(UpstreamError::Timeout { .. }) => {
                    self.record(req, "timeout", started.elapsed());
                    (req.idempotent, None)
                }
                Err(_) => return outcome,
            };
            let next = if retryable { delays.next() } else { None };
            // A wait the deadline cannot hold (a quota that resets in an hour) is not slept
            // through: the caller hears now, with the provider's Retry-After, and parks.
            let next = next.filter(|d| {
                wait_hint.is_none_or(|ra| began.elapsed() + ra.max(*d) < self.policy.deadline)
            });
            match next {
                Some(d) => {
                    let wait = wait_hint.map_or(d, |ra| ra.max(d));
                    tracing::debug!(upstream = %self.upstream, operation = %req.operation, wait_ms = wait.as_millis() as u64, "retrying upstream call");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    return match outcome {
                        Ok(resp) if resp.status == StatusCode::TOO_MANY_REQUESTS => {
                            Err(UpstreamError::RateLimited {
                                upstream: self.upstream.clone(),
                                retry_after: retry_after(&resp.headers),
                            })
                        }
                        other => other,
                    }
                }
            }
        }
    }

    async fn send_once(&self, req: &UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        // IP literals are never resolved, so the resolver cannot check them.
        if let Ok(url) = url::Url::parse(&req.url) {
            self.egress.check_literal(&url)?;
        }
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .timeout(self.policy.deadline);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(b) = &req.body {
            builder = builder.body(b.clone());
        }
        let mut resp = builder.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // A hostile or broken upstream cannot make us buffer without bound.
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(UpstreamError::TooLarge {
                    upstream: self.upstream.clone(),
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    fn classify(&self, e: reqwest::Error) -> UpstreamError {
        if let Some(refused) = egress::find_refusal(&e) {
            UpstreamError::AddressNotAllowed(refused)
        } else if e.is_timeout() {
            UpstreamError::Timeout {
                upstream: self.upstream.clone(),
                after: self.policy.deadline,
            }
        } else if e.is_connect() {
            UpstreamError::Connect {
                upstream: self.upstream.clone(),
                reason: e.without_url().to_string(),
            }
        } else if e.is_redirect() {
            let cross = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<CrossOriginRedirect>().is_some());
            UpstreamError::Request(if cross {
                format!(
                    "{} redirected to another server, which is not followed",
                    self.upstream
                )
            } else {
                format!("{} redirected too often", self.upstream)
            })
        } else if e.is_builder() {
            UpstreamError::Request(e.without_url().to_string())
        } else {
            // Body or protocol errors after the request went out: the upstream may have acted.
            UpstreamError::Timeout {
                upstream: self.upstream.clone(),
                after: self.policy.deadline,
            }
        }
    }

    fn record(&self, req: &UpstreamRequest, status: &str, took: Duration) {
        let labels = [
            ("upstream", self.upstream.clone()),
            ("operation", req.operation.clone()),
            ("status", status.to_string()),
        ];
        metrics::counter!("bac_upstream_requests_total", &labels).increment(1);
        metrics::histogram!("bac_upstream_request_duration_seconds", &labels[..2])
            .record(took.as_secs_f64());
    }

    /// Waits for the request's quota: its unit's when it names one, else its origin's.
    async fn until_quota_allows(&self, req: &UpstreamRequest) {
        match &req.quota {
            Some(unit) => {
                let limiter = {
                    let Ok(mut m) = self.unit_limiters.lock() else {
                        return;
                    };
                    m.entry(unit.per_minute)
                        .or_insert_with(|| {
                            Arc::new(RateLimiter::keyed(Quota::per_minute(unit.per_minute)))
                        })
                        .clone()
                };
                limiter.until_key_ready(&unit.key).await;
            }
            None => {
                if let Some(l) = &self.limiter {
                    l.until_key_ready(&quota_key(&req.url)).await;
                }
            }
        }
    }

    /// Providers that publish `X-RateLimit-Remaining`/`-Limit` feed the quota gauge.
    fn record_quota(&self, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let (Some(rem), Some(limit)) = (num("x-ratelimit-remaining"), num("x-ratelimit-limit")) {
            if limit > 0.0 {
                metrics::gauge!("bac_upstream_quota_remaining_ratio", "upstream" => self.upstream.clone())
                    .set(rem / limit);
            }
        }
    }
}

/// Largest upstream answer read unless configured otherwise: a sync page of 2,000 Odoo
/// records is about 2 MB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// The quota bucket of a URL: its origin.
fn quota_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_per_origin() {
        assert_eq!(
            quota_key("http://odoo.a:8069/jsonrpc"),
            quota_key("http://odoo.a:8069/web")
        );
        assert_ne!(
            quota_key("http://odoo.a/jsonrpc"),
            quota_key("http://odoo.b/jsonrpc")
        );
        assert_eq!(quota_key("https://x.example/y"), "https://x.example:443");
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
