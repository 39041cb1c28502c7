//! gRPC channels from the gateway to the integration services, one per integration, each a
//! load-balanced channel over every endpoint of the service, connected lazily (a service that
//! is down makes its routes answer 503, not the gateway fail to start).
//!
//! `BAC_<NAME>_GRPC_URL` is a comma-separated list of targets, each either a URL
//! (`http://10.0.0.7:50052`) or `dns:///name:port`: every address the name resolves to (a
//! Kubernetes headless Service returns one per ready pod), re-resolved every
//! `BAC_GRPC_DNS_REFRESH_SECS`. Endpoints join and leave tonic's p2c balancer
//! (`Channel::balance_channel`) as they appear and disappear; when a service has several,
//! each is probed (TCP connect) every `BAC_GRPC_PROBE_INTERVAL_MS` and after any transport
//! failure, and the unreachable ones are taken out (all stay in when none answers, so calls
//! fail fast with UNAVAILABLE rather than wait).
//!
//! Every call gets a deadline (`BAC_GRPC_DEADLINE_MS`, or the caller's shorter
//! `grpc-timeout`). Idempotent calls (`Get*`, `List*`, `Test*`) are retried (twice at most) when the
//! first attempt fails with UNAVAILABLE from the transport (not a service's own
//! UNAVAILABLE, which carries error details), usually on another endpoint.
use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{
        atomic::AtomicU64,
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bac_runtime::ServiceKind;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, watch, Notify};
use tonic::{
    body::BoxBody,
    transport::{Channel, Endpoint},
    Code,
};
use tower::{discover::Change, Service, ServiceExt};

/// Where each integration service listens (`BAC_<NAME>_GRPC_URL`).
#[derive(Debug, Clone)]
pub struct ServiceUrls(pub HashMap<ServiceKind, String>);

impl ServiceUrls {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut map = HashMap::new();
        for kind in ServiceKind::ALL {
            if kind == ServiceKind::Gateway {
                continue;
            }
            let var = Self::variable(kind);
            let url = lookup(&var)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", 50050 + kind.port_offset()));
            map.insert(kind, url);
        }
        ServiceUrls(map)
    }

    /// `BAC_ODOO_GRPC_URL`, `BAC_GOOGLE_WORKSPACE_GRPC_URL`, ...
    pub fn variable(kind: ServiceKind) -> String {
        format!("BAC_{}_GRPC_URL", kind.schema().to_ascii_uppercase())
    }
}

/// Deadline of one gateway -> service call (default of `BAC_GRPC_DEADLINE_MS`), below the
/// data routes' 30 s so the caller gets the call's own timeout error, not the edge's.
pub const CALL_DEADLINE: Duration = Duration::from_secs(25);

/// How the gateway reaches the services (part of [`crate::settings::GatewaySettings`]).
#[derive(Debug, Clone, Copy)]
pub struct GrpcSettings {
    /// Deadline of a call, both attempts included (`BAC_GRPC_DEADLINE_MS`).
    pub deadline: Duration,
    /// How often `dns:///` targets are resolved again (`BAC_GRPC_DNS_REFRESH_SECS`).
    pub dns_refresh: Duration,
    /// How often the endpoints of a service with several are probed
    /// (`BAC_GRPC_PROBE_INTERVAL_MS`).
    pub probe_interval: Duration,
    pub connect_timeout: Duration,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            deadline: CALL_DEADLINE,
            dns_refresh: Duration::from_secs(15),
            probe_interval: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// One element of a `BAC_<NAME>_GRPC_URL` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One endpoint, `http://host:port`.
    Url(String),
    /// Every address of `host`, re-resolved periodically.
    Dns { host: String, port: u16 },
}

/// Parses `http://a:1,http://b:2` / `dns:///name:port` (several may be mixed).
pub fn parse_targets(value: &str) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(rest) = item.strip_prefix("dns:") {
            // dns:///name:port (empty authority); dns://name:port is accepted too.
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let hostport = match rest.split_once('/') {
                Some(("", hp)) => hp,
                Some((_, _)) => {
                    return Err(format!(
                    "{item}: a DNS server in the authority is not supported; use dns:///name:port"
                ))
                }
                None => rest,
            };
            let (host, port) = hostport
                .rsplit_once(':')
                .ok_or_else(|| format!("{item}: needs a port (dns:///name:port)"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{item}: invalid port {port:?}"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(format!("{item}: needs a host name"));
            }
            out.push(Target::Dns {
                host: host.to_string(),
                port,
            });
        } else {
            Endpoint::from_shared(item.to_string()).map_err(|e| format!("{item}: {e}"))?;
            let uri: http::Uri = item.parse().map_err(|e| format!("{item}: {e}"))?;
            if uri.host().is_none() {
                return Err(format!("{item}: needs a host"));
            }
            out.push(Target::Url(item.trim_end_matches('/').to_string()));
        }
    }
    if out.is_empty() {
        return Err("no URL".into());
    }
    Ok(out)
}

#[derive(Clone)]
pub struct Services {
    channels: HashMap<ServiceKind, GrpcChannel>,
}

impl Services {
    pub fn new(urls: &ServiceUrls) -> anyhow::Result<Self> {
        Self::with_settings(urls, GrpcSettings::default())
    }

    /// Builds every service's channel; the discovery tasks run on the current tokio runtime
    /// (without one, only the URL targets are used, never re-probed).
    pub fn with_settings(urls: &ServiceUrls, settings: GrpcSettings) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for (kind, url) in &urls.0 {
            let targets = parse_targets(url)
                .map_err(|e| anyhow::anyhow!("{}={url}: {e}", ServiceUrls::variable(*kind)))?;
            channels.insert(*kind, GrpcChannel::start(kind.key(), targets, settings));
        }
        Ok(Services { channels })
    }

    pub fn channel(&self, kind: ServiceKind) -> Option<GrpcChannel> {
        self.channels.get(&kind).cloned()
    }
}

/// A service's balanced channel with deadlines and the idempotent retry; use it as any
/// tonic channel: `OdooServiceClient::new(state.services.channel(ServiceKind::Odoo)?)`.
#[derive(Clone)]
pub struct GrpcChannel {
    inner: Channel,
    service: &'static str,
    endpoints: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    /// The discovery task's probe rounds (started; applied to the balancer), when it runs.
    rounds: Arc<AtomicU64>,
    applied: Option<watch::Receiver<u64>>,
    deadline: Duration,
}

impl std::fmt::Debug for GrpcChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcChannel")
            .field("service", &self.service)
            .field("endpoints", &self.endpoints.load(Ordering::Relaxed))
            .finish()
    }
}

impl GrpcChannel {
    fn start(service: &'static str, targets: Vec<Target>, settings: GrpcSettings) -> GrpcChannel {
        let (inner, tx) = Channel::balance_channel::<String>(64);
        let endpoints = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let rounds = Arc::new(AtomicU64::new(0));
        let (applied_tx, applied_rx) = watch::channel(0);
        let mut discovery = Discovery {
            service,
            targets,
            settings,
            tx,
            endpoints: endpoints.clone(),
            wake: wake.clone(),
            rounds: rounds.clone(),
            applied: applied_tx,
            active: BTreeSet::new(),
            resolved: HashMap::new(),
        };
        // URL targets are usable at once; DNS names once the task resolved them.
        let urls: BTreeSet<String> = discovery
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Url(u) => Some(u.clone()),
                Target::Dns { .. } => None,
            })
            .collect();
        discovery.apply_now(&urls);
        let needs_task = discovery.targets.len() > 1
            || discovery
                .targets
                .iter()
                .any(|t| matches!(t, Target::Dns { .. }));
        let mut applied = None;
        if needs_task {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(discovery.run());
                applied = Some(applied_rx);
            }
        }
        GrpcChannel {
            inner,
            service,
            endpoints,
            wake,
            rounds,
            applied,
            deadline: settings.deadline,
        }
    }

    /// Endpoints currently in the balancer.
    pub fn endpoints(&self) -> usize {
        self.endpoints.load(Ordering::Relaxed)
    }

    async fn send(
        self,
        req: http::Request<BoxBody>,
    ) -> Result<http::Response<BoxBody>, tonic::codegen::StdError> {
        if self.endpoints() == 0 {
            return Ok(tonic::Status::unavailable(format!(
                "no endpoint of the {} service is known yet",
                self.service
            ))
            .into_http());
        }
        let started = Instant::now();
        let budget = grpc_timeout(req.headers()).map_or(self.deadline, |t| t.min(self.deadline));
        let until = tokio::time::Instant::from_std(started + budget);
        let idempotent = is_idempotent(req.uri().path());
        let (mut parts, body) = req.into_parts();
        set_grpc_timeout(&mut parts.headers, budget);
        if !idempotent {
            let req = http::Request::from_parts(parts, body);
            return self.attempt(req, until).await.map(|(resp, _)| resp);
        }
        // A unary request is one small message: keep it to send it again.
        let bytes = body.collect().await?.to_bytes();
        let first = http::Request::from_parts(parts.clone(), boxed(bytes.clone()));
        let (mut resp, mut retry) = self.attempt(first, until).await?;
        // Up to two more attempts: the balancer applies a removal asynchronously, so the
        // attempt right after a probe round may still meet the endpoint that just went.
        for _ in 0..MAX_RETRIES {
            let seen = match retry {
                Retry::No => return Ok(resp),
                Retry::Now => None,
                Retry::AfterProbe(seen) => Some(seen),
            };
            // An endpoint that refused the connection is taken out of the balancer by the
            // next probe round: wait for one that started after the failure (within the
            // budget), so the next attempt does not go to the same dead endpoint.
            if let (Some(seen), Some(applied)) = (seen, &self.applied) {
                let mut applied = applied.clone();
                let _ = tokio::time::timeout_at(until, applied.wait_for(|r| *r > seen)).await;
            }
            let left = budget.saturating_sub(started.elapsed());
            if left < Duration::from_millis(5) {
                return Ok(resp);
            }
            metrics::counter!("bac_grpc_client_retries_total", "service" => self.service)
                .increment(1);
            tracing::debug!(service = self.service, path = %parts.uri.path(), "retrying an idempotent call");
            let mut again = parts.clone();
            set_grpc_timeout(&mut again.headers, left);
            let next = http::Request::from_parts(again, boxed(bytes.clone()));
            (resp, retry) = self.attempt(next, until).await?;
        }
        Ok(resp)
    }

    /// One attempt, and whether its failure is worth another endpoint.
    async fn attempt(
        &self,
        req: http::Request<BoxBody>,
        until: tokio::time::Instant,
    ) -> Result<(http::Response<BoxBody>, Retry), tonic::codegen::StdError> {
        match tokio::time::timeout_at(until, self.inner.clone().oneshot(req)).await {
            Err(_) => Ok((
                tonic::Status::deadline_exceeded(format!(
                    "the {} service did not answer within the deadline",
                    self.service
                ))
                .into_http(),
                Retry::No,
            )),
            Ok(Err(e)) => {
                // A transport failure: have the endpoints probed now.
                let seen = self.rounds.load(Ordering::SeqCst);
                self.wake.notify_one();
                let status = tonic::Status::from_error(e.into());
                // Connection refused or lost (a connection closed under a request in flight
                // is CANCELLED): the request did not complete, another endpoint may take it.
                // Only a failure that used the budget up (the endpoint's timeout) is final.
                let out_of_time = tokio::time::Instant::now() + Duration::from_millis(5) >= until;
                let retry = if status.code() == Code::DeadlineExceeded || out_of_time {
                    Retry::No
                } else {
                    Retry::AfterProbe(seen)
                };
                Ok((status.into_http(), retry))
            }
            Ok(Ok(resp)) => {
                let unavailable = resp
                    .headers()
                    .get("grpc-status")
                    .is_some_and(|v| v.as_bytes() == b"14");
                // A service's own UNAVAILABLE (its upstream is down) carries details: that
                // one is its answer, not a reason to try another replica.
                let from_service = resp.headers().contains_key("grpc-status-details-bin");
                let retry = if unavailable && !from_service {
                    Retry::Now
                } else {
                    Retry::No
                };
                Ok((resp, retry))
            }
        }
    }
}

/// Attempts after the first an idempotent call gets (within its deadline).
const MAX_RETRIES: usize = 2;

/// Whether (and when) a failed idempotent call is sent again.
enum Retry {
    No,
    /// The endpoint answered UNAVAILABLE itself (e.g. shutting down): another one now.
    Now,
    /// The transport failed: after the probe round that follows probe round `.0`.
    AfterProbe(u64),
}

impl Service<http::Request<BoxBody>> for GrpcChannel {
    type Response = http::Response<BoxBody>;
    type Error = tonic::codegen::StdError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the balancer's business, awaited inside each call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<BoxBody>) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

fn boxed(bytes: bytes::Bytes) -> BoxBody {
    tonic::body::boxed(Full::new(bytes))
}

/// `Get*`, `List*`, `Test*` (`/pkg.Service/Method`): safe to send twice.
pub fn is_idempotent(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or("");
    ["Get", "List", "Test"]
        .iter()
        .any(|p| method.starts_with(p) && method.len() > p.len())
}

/// The `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
fn grpc_timeout(h: &http::HeaderMap) -> Option<Duration> {
    let v = h.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn set_grpc_timeout(h: &mut http::HeaderMap, d: Duration) {
    // At most 8 digits; milliseconds cover 27 hours.
    let ms = d.as_millis().clamp(1, 99_999_999);
    if let Ok(v) = http::HeaderValue::from_str(&format!("{ms}m")) {
        h.insert("grpc-timeout", v);
    }
}

/// Keeps one service's endpoints in its balancer.
struct Discovery {
    service: &'static str,
    targets: Vec<Target>,
    settings: GrpcSettings,
    tx: mpsc::Sender<Change<String, Endpoint>>,
    endpoints: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    /// Probe rounds started, and the last one whose result is in the balancer.
    rounds: Arc<AtomicU64>,
    applied: watch::Sender<u64>,
    /// Endpoints in the balancer now.
    active: BTreeSet<String>,
    /// The last good answer for each DNS name.
    resolved: HashMap<(String, u16), BTreeSet<String>>,
}

impl Discovery {
    fn endpoint(&self, url: &str) -> Option<Endpoint> {
        let e = Endpoint::from_shared(url.to_string()).ok()?;
        Some(
            e.connect_timeout(self.settings.connect_timeout)
                .timeout(self.settings.deadline)
                .tcp_nodelay(true)
                .tcp_keepalive(Some(Duration::from_secs(30)))
                .http2_keep_alive_interval(Duration::from_secs(20))
                .keep_alive_timeout(Duration::from_secs(10)),
        )
    }

    /// Brings the balancer to `want` without waiting (the channel has room for a whole set).
    fn apply_now(&mut self, want: &BTreeSet<String>) {
        let gone: Vec<String> = self.active.difference(want).cloned().collect();
        for k in gone {
            if self.tx.try_send(Change::Remove(k.clone())).is_ok() {
                tracing::info!(service = self.service, endpoint = %k, "gRPC endpoint removed");
                self.active.remove(&k);
            }
        }
        let new: Vec<String> = want.difference(&self.active).cloned().collect();
        for k in new {
            let Some(ep) = self.endpoint(&k) else {
                continue;
            };
            if self.tx.try_send(Change::Insert(k.clone(), ep)).is_ok() {
                tracing::info!(service = self.service, endpoint = %k, "gRPC endpoint added");
                self.active.insert(k);
            }
        }
        self.endpoints.store(self.active.len(), Ordering::Relaxed);
        metrics::gauge!("bac_grpc_client_endpoints", "service" => self.service)
            .set(self.active.len() as f64);
    }

    async fn resolve(&mut self) {
        for t in &self.targets {
            let Target::Dns { host, port } = t else {
                continue;
            };
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addrs) => {
                    let set: BTreeSet<String> =
                        addrs.map(|a: SocketAddr| format!("http://{a}")).collect();
                    if set.is_empty() {
                        tracing::warn!(service = self.service, host = %host, "DNS name resolved to no address; keeping the previous ones");
                    } else {
                        self.resolved.insert((host.clone(), *port), set);
                    }
                }
                Err(e) => {
                    tracing::warn!(service = self.service, host = %host, error = %e, "DNS resolution failed; keeping the previous addresses");
                }
            }
        }
    }

    fn desired(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in &self.targets {
            match t {
                Target::Url(u) => {
                    out.insert(u.clone());
                }
                Target::Dns { host, port } => {
                    if let Some(set) = self.resolved.get(&(host.clone(), *port)) {
                        out.extend(set.iter().cloned());
                    }
                }
            }
        }
        out
    }

    async fn run(mut self) {
        let mut resolved_at: Option<Instant> = None;
        let min_gap = Duration::from_millis(200);
        loop {
            if self.tx.is_closed() {
                return;
            }
            let round = Instant::now();
            let this_round = self.rounds.fetch_add(1, Ordering::SeqCst) + 1;
            if resolved_at.is_none_or(|t| t.elapsed() >= self.settings.dns_refresh) {
                self.resolve().await;
                resolved_at = Some(Instant::now());
            }
            let desired = self.desired();
            let want = if desired.len() > 1 {
                let probes = desired.iter().map(|k| async move {
                    (
                        k.clone(),
                        reachable(k, self.settings.connect_timeout.min(Duration::from_secs(1)))
                            .await,
                    )
                });
                let healthy: BTreeSet<String> = futures::future::join_all(probes)
                    .await
                    .into_iter()
                    .filter_map(|(k, ok)| ok.then_some(k))
                    .collect();
                if healthy.is_empty() {
                    desired
                } else {
                    healthy
                }
            } else {
                desired
            };
            self.apply_now(&want);
            self.applied.send_replace(this_round);
            tokio::select! {
                _ = tokio::time::sleep(self.settings.probe_interval) => {}
                _ = self.wake.notified() => {
                    let since = round.elapsed();
                    if since < min_gap {
                        tokio::time::sleep(min_gap - since).await;
                    }
                }
            }
        }
    }
}

/// Whether `http://host:port` accepts a TCP connection within `within`.
async fn reachable(url: &str, within: Duration) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    matches!(
        tokio::time::timeout(within, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_targets("http://a:1, http://b:2/").unwrap(),
            vec![
                Target::Url("http://a:1".into()),
                Target::Url("http://b:2".into())
            ]
        );
        assert_eq!(
            parse_targets("dns:///bac-odoo-headless.bac.svc.cluster.local:50052").unwrap(),
            vec![Target::Dns {
                host: "bac-odoo-headless.bac.svc.cluster.local".into(),
                port: 50052
            }]
        );
        assert_eq!(
            parse_targets("dns://odoo:1").unwrap(),
            vec![Target::Dns {
                host: "odoo".into(),
                port: 1
            }]
        );
        for bad in [
            "",
            "dns:///odoo",
            "dns://8.8.8.8/odoo:1",
            "not a url",
            "dns:///:5",
        ] {
            assert!(parse_targets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotent_methods() {
        assert!(is_idempotent("/bac.odoo.v1.OdooService/ListLeads"));
        assert!(is_idempotent(
            "/bac.integration.v1.IntegrationService/GetStatus"
        ));
        assert!(is_idempotent(
            "/bac.integration.v1.IntegrationService/TestConnection"
        ));
        assert!(!is_idempotent("/bac.odoo.v1.OdooService/CreateLead"));
        assert!(!is_idempotent(
            "/bac.integration.v1.IntegrationService/TriggerSync"
        ));
        assert!(!is_idempotent("/x.Y/Get"));
    }

    #[test]
    fn grpc_timeouts() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_timeout(&h), None);
        set_grpc_timeout(&mut h, Duration::from_millis(1500));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_millis(1500)));
        h.insert("grpc-timeout", http::HeaderValue::from_static("2S"));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_secs(2)));
        h.insert("grpc-timeout", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_timeout(&h), None);
    }

    #[tokio::test]
    async fn dns_targets_are_resolved_and_probed() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = live.local_addr().unwrap().port();
        let settings = GrpcSettings {
            probe_interval: Duration::from_millis(50),
            ..GrpcSettings::default()
        };
        let ch = GrpcChannel::start(
            "test",
            parse_targets(&format!("dns:///localhost:{port}")).unwrap(),
            settings,
        );
        // localhost may also resolve to ::1, where nothing listens: that one is taken out.
        let deadline = Instant::now() + Duration::from_secs(30);
        while ch.endpoints() != 1 {
            assert!(Instant::now() < deadline, "{} endpoints", ch.endpoints());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unknown = GrpcChannel::start(
            "test",
            parse_targets("dns:///no-such-host.invalid:1").unwrap(),
            settings,
        );
        // Its first resolution and probe round is over (not just "not started yet"): still none.
        let mut applied = unknown
            .applied
            .clone()
            .expect("a DNS target runs discovery");
        applied.wait_for(|round| *round >= 1).await.unwrap();
        assert_eq!(unknown.endpoints(), 0);
        // With no endpoint, a call fails at once with UNAVAILABLE instead of waiting.
        let req = http::Request::builder()
            .uri("http://x/pkg.S/GetThing")
            .body(tonic::body::empty_body())
            .unwrap();
        let resp = unknown.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["grpc-status"], "14");
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_taken_out_and_comes_back() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_url = format!("http://{}", live.local_addr().unwrap());
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let dead_url = format!("http://{dead}");
        let settings = GrpcSettings {
            probe_interval: Duration::from_millis(50),
            ..GrpcSettings::default()
        };
        let ch = GrpcChannel::start(
            "test",
            parse_targets(&format!("{live_url},{dead_url}")).unwrap(),
            settings,
        );
        assert_eq!(ch.endpoints(), 2, "URL targets are in at once");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ch.endpoints() != 1 {
            assert!(Instant::now() < deadline, "the dead endpoint stays");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let back = std::net::TcpListener::bind(dead).unwrap();
        while ch.endpoints() != 2 {
            assert!(Instant::now() < deadline, "the endpoint does not come back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(back);
    }
}
