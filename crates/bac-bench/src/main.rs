//! `bac-bench`: the tools of `scripts/bench`.
//!
//! ```text
//! bac-bench serve --addr 127.0.0.1:0 --body FILE [--content-type TYPE]
//!     A bare axum server answering every request with FILE's bytes (the baseline of the
//!     gateway benchmark). Prints the address it listens on.
//! bac-bench load --url URL [-H 'Name: value']... [--rate N | --max] [--duration SECS]
//!                [--warmup SECS] [--connections N] [--label TEXT]
//!     HTTP/1.1 keep-alive load over N connections, either at a constant N requests/s
//!     (wrk2-style schedule: request k is due at k/N s; a request sent late because its
//!     connection was still busy counts its latency from when it was due, so a stall is not
//!     hidden) or closed-loop as fast as possible (--max). Prints one JSON object: counts,
//!     requests/s and latency percentiles in milliseconds (exact, from every sample).
//! bac-bench sync --grpc URL --database-url URL --brokers HOST:PORT --sandbox HOST:PORT
//!                [--records N] [--page-size N] [--tenant T] [--timeout SECS] [--proc NAME=PID]...
//!     The sync backfill benchmark against a running sandbox and bac-odoo (see `sync.rs`):
//!     seeds N leads, creates a connection over gRPC, triggers a full crm_lead sync and waits
//!     for the run and for N distinct created events in Kafka, then measures the COPY and
//!     produce baselines on the same rows and events. Prints one JSON object.
//! bac-bench grpc --target URL (--key KEY | --tenant T) [--rate N | --max] [--duration SECS]
//!                [--warmup SECS] [--connections N] [--label TEXT]
//!     `load` over gRPC: OdooService.ListLeads through the gateway's gRPC edge (--key) or
//!     straight to bac-odoo with a signed call context (--tenant; the key from Vault, see
//!     `grpc.rs`). Prints the same JSON object as `load`.
//! ```
#![allow(clippy::print_stdout)]

mod grpc;
mod sync;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

const USAGE: &str = "usage: bac-bench serve --addr ADDR --body FILE [--content-type TYPE]
       bac-bench load --url URL [-H 'Name: value']... [--rate N | --max] [--duration SECS]
                      [--warmup SECS] [--connections N] [--label TEXT]
       bac-bench sync --grpc URL --database-url URL --brokers HOST:PORT
                      --sandbox HOST:PORT [--records N] [--page-size N] [--tenant T]
                      [--timeout SECS] [--proc NAME=PID]...
       bac-bench grpc --target URL (--key KEY | --tenant T) [--rate N | --max]
                      [--duration SECS] [--warmup SECS] [--connections N] [--label TEXT]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve(&args[1..]))
        }
        Some("load") => {
            let opts = LoadOpts::parse(&args[1..])?;
            // One thread: the generator should take as little CPU from the measured
            // processes as it can (2,000 requests/s is a few percent of a core).
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(load(Arc::new(opts)))?;
            println!("{report}");
            Ok(())
        }
        Some("grpc") => {
            let opts = grpc::GrpcOpts::parse(&flag_values(&args[1..])?)?;
            // One thread, as `load`.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(grpc::run(opts))?;
            println!("{report}");
            Ok(())
        }
        Some("sync") => {
            let opts = sync::SyncOpts::parse(&flag_values(&args[1..])?)?;
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(sync::run(opts))?;
            println!("{report}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn flag_values(args: &[String]) -> anyhow::Result<Vec<(&str, Option<&str>)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--max" => out.push(("--max", None)),
            f if f.starts_with('-') => {
                let v = it
                    .next()
                    .with_context(|| format!("{f} needs a value\n{USAGE}"))?;
                out.push((f, Some(v.as_str())));
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok(out)
}

async fn serve(args: &[String]) -> anyhow::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut body = None;
    let mut content_type = HeaderValue::from_static("application/json");
    for (flag, value) in flag_values(args)? {
        let value = value.unwrap_or_default();
        match flag {
            "--addr" => addr = value.parse().context("--addr")?,
            "--body" => {
                body = Some(Bytes::from(
                    std::fs::read(value).with_context(|| format!("--body {value}"))?,
                ))
            }
            "--content-type" => content_type = HeaderValue::from_str(value)?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    let body = body.context("--body is required")?;
    let app = axum::Router::new().fallback(move || {
        let (body, content_type) = (body.clone(), content_type.clone());
        async move { ([(header::CONTENT_TYPE, content_type)], body) }
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// bac-odoo believes only signed call contexts: a bench that calls it directly signs with the
/// fleet's key, read from the Vault of BAC_VAULT_ADDR / BAC_VAULT_TOKEN as a fleet process does.
async fn sign_as_fleet() -> anyhow::Result<()> {
    let config = bac_runtime::Config::from_env(bac_runtime::ServiceKind::Odoo)?;
    let vault = bac_runtime::vault::Vault::new(config.vault)?;
    bac_runtime::context::load_signing_key(&vault).await?;
    Ok(())
}

/// The load shape both generators (`load`, `grpc`) take: `--rate N` or `--max`, `--duration`,
/// `--warmup` (seconds), `--connections`, `--label`.
#[derive(Debug)]
struct Schedule {
    rate: Option<f64>,
    max: bool,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    label: String,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            rate: None,
            max: false,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 32,
            label: String::new(),
        }
    }
}

impl Schedule {
    /// Takes `flag` if it is a schedule flag (true), else leaves it to the caller (false).
    fn take(&mut self, flag: &str, v: &str) -> anyhow::Result<bool> {
        let secs = |what: &str| -> anyhow::Result<Duration> {
            let s: f64 = v.parse().with_context(|| what.to_string())?;
            Duration::try_from_secs_f64(s).with_context(|| format!("{what} {v}"))
        };
        match flag {
            "--rate" => self.rate = Some(v.parse().context("--rate")?),
            "--max" => self.max = true,
            "--duration" => self.duration = secs("--duration")?,
            "--warmup" => self.warmup = secs("--warmup")?,
            "--connections" => self.connections = v.parse().context("--connections")?,
            "--label" => self.label = v.to_string(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses a schedule that cannot run.
    fn check(&self) -> anyhow::Result<()> {
        if self.max == self.rate.is_some() {
            bail!("give exactly one of --rate N and --max");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) || self.connections == 0 {
            bail!("--rate and --connections must be positive");
        }
        Ok(())
    }
}

struct LoadOpts {
    uri: Uri,
    authority: HeaderValue,
    addr: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    sched: Schedule,
}

impl LoadOpts {
    fn parse(args: &[String]) -> anyhow::Result<LoadOpts> {
        let mut url = None;
        let mut headers = Vec::new();
        let mut sched = Schedule::default();
        for (flag, value) in flag_values(args)? {
            let v = value.unwrap_or_default();
            if sched.take(flag, v)? {
                continue;
            }
            match flag {
                "--url" => url = Some(v.parse::<Uri>().context("--url")?),
                "-H" | "--header" => {
                    let (k, val) = v.split_once(':').context("-H 'Name: value'")?;
                    headers.push((
                        HeaderName::from_bytes(k.trim().as_bytes())?,
                        HeaderValue::from_str(val.trim())?,
                    ));
                }
                _ => bail!("unknown flag {flag}\n{USAGE}"),
            }
        }
        let uri = url.context("--url is required")?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must be http://");
        }
        let auth = uri.authority().context("--url needs host:port")?.clone();
        sched.check()?;
        Ok(LoadOpts {
            addr: format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80)),
            authority: HeaderValue::from_str(auth.as_str())?,
            uri,
            headers,
            sched,
        })
    }

    fn request(&self) -> anyhow::Result<Request<Empty<Bytes>>> {
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let mut req = Request::get(path)
            .header(header::HOST, self.authority.clone())
            .body(Empty::new())?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

#[derive(Default)]
struct Tally {
    /// Microseconds, one per completed request.
    latencies: Vec<u64>,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl Tally {
    /// A completed request that started (was due) at `start`.
    fn done(&mut self, start: Instant, ok: bool) {
        let done = Instant::now();
        self.latencies
            .push(done.duration_since(start).as_micros() as u64);
        self.last_done = Some(done);
        if ok {
            self.ok += 1;
        } else {
            self.non_2xx += 1;
        }
    }

    fn failed(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    /// Adds another connection's tally.
    fn absorb(&mut self, t: Tally) {
        self.latencies.extend(t.latencies);
        self.ok += t.ok;
        self.non_2xx += t.non_2xx;
        self.errors += t.errors;
        if self.first_error.is_none() {
            self.first_error = t.first_error;
        }
        self.last_done = self.last_done.max(t.last_done);
    }
}

/// When connection `idx`'s `i`-th request is due: request `idx + i * connections` of the
/// constant-rate schedule, or now (closed loop). `None` once the phase is over.
fn due(
    rate: Option<f64>,
    connections: usize,
    idx: usize,
    i: u64,
    t0: Instant,
    end: Instant,
) -> Option<Instant> {
    let due = match rate {
        Some(rate) => {
            let k = idx as u64 + i * connections as u64;
            t0 + Duration::from_secs_f64(k as f64 / rate)
        }
        None => Instant::now(),
    };
    (due < end).then_some(due)
}

/// Waits for `due` and returns the latency's start. On time: the actual send (the timer's
/// own lag is the generator's, not the server's). Late (the connection was busy): the due
/// time, so a stall is not hidden.
async fn start_at(due: Instant) -> Instant {
    if due > Instant::now() {
        tokio::time::sleep_until(due.into()).await;
        Instant::now()
    } else {
        due
    }
}

/// The measured phase's tally as one JSON object (counts, requests/s, latency percentiles).
fn report(
    label: &str,
    url: &str,
    rate: Option<f64>,
    connections: usize,
    took: Duration,
    mut t: Tally,
) -> serde_json::Value {
    t.latencies.sort_unstable();
    let completed = t.ok + t.non_2xx;
    let mean = if t.latencies.is_empty() {
        0.0
    } else {
        t.latencies.iter().sum::<u64>() as f64 / t.latencies.len() as f64 / 1000.0
    };
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "label": label,
        "url": url,
        "mode": if rate.is_some() { "rate" } else { "max" },
        "target_rps": rate,
        "connections": connections,
        "duration_s": r(took.as_secs_f64()),
        "requests": completed,
        "ok": t.ok,
        "non_2xx": t.non_2xx,
        "errors": t.errors,
        "first_error": t.first_error,
        "rps": r(completed as f64 / took.as_secs_f64()),
        "latency_ms": {
            "mean": r(mean),
            "p50": percentile(&t.latencies, 50.0),
            "p90": percentile(&t.latencies, 90.0),
            "p99": percentile(&t.latencies, 99.0),
            "p999": percentile(&t.latencies, 99.9),
            "max": percentile(&t.latencies, 100.0),
        },
    })
}

/// Runs one worker per connection for `length` and merges their tallies; also returns how
/// long the phase really took (a request still in flight at the end counts).
async fn phase_with<F, Fut>(
    connections: usize,
    length: Duration,
    mut spawn: F,
) -> anyhow::Result<(Tally, Duration)>
where
    F: FnMut(usize, Instant, Instant) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let t0 = Instant::now();
    let end = t0 + length;
    let tasks: Vec<_> = (0..connections)
        .map(|idx| tokio::spawn(spawn(idx, t0, end)))
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        all.absorb(task.await?);
    }
    let took = all.last_done.map_or(length, |d| d.duration_since(t0));
    Ok((all, took.max(length)))
}

async fn connect(opts: &LoadOpts) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(&opts.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn one(sender: &mut SendRequest<Empty<Bytes>>, opts: &LoadOpts) -> anyhow::Result<bool> {
    sender.ready().await?;
    let resp = sender.send_request(opts.request()?).await?;
    let ok = resp.status().is_success();
    resp.into_body().collect().await?;
    Ok(ok)
}

/// One connection's share of the schedule: requests `idx`, `idx + C`, `idx + 2C`, ...
async fn worker(idx: usize, opts: Arc<LoadOpts>, t0: Instant, end: Instant) -> Tally {
    let mut t = Tally::default();
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut i: u64 = 0;
    while let Some(due) = due(opts.sched.rate, opts.sched.connections, idx, i, t0, end) {
        i += 1;
        let start = start_at(due).await;
        if sender.is_none() {
            match connect(&opts).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    t.failed(format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        match one(s, &opts).await {
            Ok(ok) => t.done(start, ok),
            Err(e) => {
                t.failed(format!("{e:#}"));
                sender = None;
            }
        }
    }
    t
}

async fn phase(opts: &Arc<LoadOpts>, length: Duration) -> anyhow::Result<(Tally, Duration)> {
    phase_with(opts.sched.connections, length, |idx, t0, end| {
        worker(idx, opts.clone(), t0, end)
    })
    .await
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn load(opts: Arc<LoadOpts>) -> anyhow::Result<serde_json::Value> {
    if !opts.sched.warmup.is_zero() {
        phase(&opts, opts.sched.warmup).await?;
    }
    let (t, took) = phase(&opts, opts.sched.duration).await?;
    Ok(report(
        &opts.sched.label,
        &opts.uri.to_string(),
        opts.sched.rate,
        opts.sched.connections,
        took,
        t,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_that_cannot_run_is_refused() {
        let sched = |flags: &[(&str, &str)]| {
            let mut s = Schedule::default();
            for (f, v) in flags {
                assert!(s.take(f, v)?, "{f} is a schedule flag");
            }
            s.check().map(|()| s)
        };
        assert!(sched(&[("--rate", "500")]).is_ok());
        assert!(sched(&[("--max", "")]).is_ok());
        for bad in ["0", "-5", "NaN", "inf"] {
            assert!(sched(&[("--rate", bad)]).is_err(), "--rate {bad}");
        }
        assert!(sched(&[]).is_err());
        assert!(sched(&[("--rate", "5"), ("--max", "")]).is_err());
        assert!(sched(&[("--max", ""), ("--connections", "0")]).is_err());
        assert!(sched(&[("--max", ""), ("--duration", "-1")]).is_err());
        assert!(!Schedule::default().take("--url", "x").unwrap());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn options() {
        let args: Vec<String> = [
            "--url",
            "http://127.0.0.1:8080/api/v1/x?y=1",
            "-H",
            "Authorization: Bearer k",
            "--rate",
            "2000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = LoadOpts::parse(&args).unwrap();
        assert_eq!(o.addr, "127.0.0.1:8080");
        assert_eq!(o.sched.rate, Some(2000.0));
        let req = o.request().unwrap();
        assert_eq!(req.uri(), "/api/v1/x?y=1");
        assert_eq!(req.headers()["authorization"], "Bearer k");
        assert!(
            LoadOpts::parse(&args[..4]).is_err(),
            "neither --rate nor --max"
        );
    }
}
