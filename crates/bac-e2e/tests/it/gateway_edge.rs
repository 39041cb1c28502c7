//! The gateway's edge: rate limits per key and per tenant (429 with the headers, and never more
//! than the configured rate through), CORS for configured origins only, gzip, and the gRPC
//! client side (one list URL over two bac-odoo instances: both get calls, a stopped one is
//! skipped).
//!
//! Each test starts the usual [`Fleet`] and then a second gateway replica on the same database
//! with the settings under test ([`bac_gateway::run_with_settings`]).
use std::{
    io::Read,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bac_e2e::Fleet;
use bac_gateway::{ratelimit::RateQuota, GatewaySettings};
use bac_runtime::{Running, ServiceKind};
use reqwest::{header::HeaderMap, Method, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A second gateway on the fleet's database and Odoo service (or `odoo_url`).
async fn gateway(
    fleet: &Fleet,
    settings: GatewaySettings,
    odoo_url: Option<String>,
) -> (Running, String) {
    let mut urls = bac_gateway::ServiceUrls::from_lookup(|_| None);
    let odoo =
        odoo_url.unwrap_or_else(|| format!("http://{}", fleet.odoo.as_ref().unwrap().grpc_addr));
    urls.0.insert(ServiceKind::Odoo, odoo);
    // These tests measure one gateway's limiter; the fleet's own gateway shares the database
    // and would otherwise count as a second replica with a share of the limits
    // (fleet_rate_limits.rs tests the shares).
    let settings = GatewaySettings {
        rate_limit_per_replica: true,
        ..settings
    };
    let gw =
        bac_gateway::run_with_settings(fleet.infra.config(ServiceKind::Gateway), urls, settings)
            .await
            .unwrap();
    let api = format!("http://{}", gw.api_addr.unwrap());
    (gw, api)
}

fn no_limits() -> GatewaySettings {
    GatewaySettings {
        rate_per_key: None,
        rate_per_tenant: None,
        ..GatewaySettings::default()
    }
}

/// Another key of the fleet's tenant.
async fn second_key(fleet: &Fleet) -> String {
    let pool = bac_runtime::db::pool(&fleet.infra.database_url, "gateway", 1).unwrap();
    bac_gateway::admin::bootstrap(
        &pool,
        &bac_gateway::admin::Bootstrap {
            tenant: fleet.tenant.clone(),
            tenant_name: "Test tenant".into(),
            email: "second@test.local".into(),
            role: bac_gateway::auth::Role::Admin,
        },
    )
    .await
    .unwrap()
}

fn num(h: &HeaderMap, name: &str) -> u64 {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn get(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    key: &str,
) -> (StatusCode, HeaderMap, String) {
    let resp = http
        .get(format!("{api}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

const PATH: &str = "/api/v1/integrations/connections";

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_the_key_limit_gets_429_with_the_headers() {
    let fleet = Fleet::start().await;
    let (_gw, api) = gateway(
        &fleet,
        GatewaySettings {
            rate_per_key: Some(RateQuota {
                per_second: 1,
                burst: 5,
            }),
            rate_per_tenant: None,
            ..GatewaySettings::default()
        },
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let (status, h, body) = get(&http, &api, PATH, &fleet.key).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(num(&h, "ratelimit-limit"), 5);
        assert!(num(&h, "ratelimit-reset") <= 5);
        assert!(h.get("retry-after").is_none());
        remaining.push(num(&h, "ratelimit-remaining"));
    }
    // One token comes back per second; the five calls take far less than that.
    assert_eq!(remaining, vec![4, 3, 2, 1, 0], "{remaining:?}");

    let (status, h, body) = get(&http, &api, PATH, &fleet.key).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = num(&h, "retry-after");
    assert!((1..=1).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(num(&h, "ratelimit-limit"), 5);
    assert_eq!(num(&h, "ratelimit-remaining"), 0);
    assert!(num(&h, "ratelimit-reset") >= 1);
    assert!(h.get("x-request-id").is_some());
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(body["details"]["error_code"], "RATE_LIMITED", "{body}");
    assert_eq!(body["request_id"], h["x-request-id"].to_str().unwrap());
    assert!(
        body["timestamp"].is_string() && body["message"].is_string(),
        "{body}"
    );

    // Unauthenticated requests are refused before the limiter (no headers, no token used).
    let resp = http.get(format!("{api}{PATH}")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("ratelimit-limit").is_none());

    // Another key of the same tenant has its own bucket.
    let other = second_key(&fleet).await;
    let (status, h, _) = get(&http, &api, PATH, &other).await;
    assert_eq!(status, 200);
    assert_eq!(num(&h, "ratelimit-remaining"), 4);

    // After Retry-After, the key works again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _, body) = get(&http, &api, PATH, &fleet.key).await;
    assert_eq!(status, 200, "{body}");
}

/// Hammers `api` with `keys` from `workers` concurrent loops for `run`; returns (admitted,
/// refused, the window from the first send to the last answer).
async fn hammer(
    api: &str,
    keys: &[String],
    workers: usize,
    run: Duration,
) -> (usize, usize, Duration) {
    let http = reqwest::Client::new();
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, ok, refused) = (http.clone(), ok.clone(), refused.clone());
        let key = keys[w % keys.len()].clone();
        let url = format!("{api}{PATH}");
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < run {
                let resp = http.get(&url).bearer_auth(&key).send().await.unwrap();
                match resp.status().as_u16() {
                    200 => ok.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        assert!(resp.headers().get("retry-after").is_some());
                        assert_eq!(resp.headers()["ratelimit-remaining"], "0");
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    s => panic!("unexpected status {s}: {}", resp.text().await.unwrap()),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limiter_never_lets_more_than_the_configured_rate_through() {
    let fleet = Fleet::start().await;
    let other = second_key(&fleet).await;

    // Per key: 20/s with a burst of 10.
    let (_gw, api) = gateway(
        &fleet,
        GatewaySettings {
            rate_per_key: Some(RateQuota {
                per_second: 20,
                burst: 10,
            }),
            rate_per_tenant: None,
            ..GatewaySettings::default()
        },
        None,
    )
    .await;
    let (ok, refused, window) = hammer(
        &api,
        std::slice::from_ref(&fleet.key),
        6,
        Duration::from_secs(3),
    )
    .await;
    let most = 10.0 + 20.0 * window.as_secs_f64() + 1.0;
    println!("per key: {ok} admitted, {refused} refused in {window:?} (at most {most:.1})");
    assert!(ok as f64 <= most, "{ok} admitted > {most:.1}");
    assert!(
        ok as f64 >= 20.0 * 3.0 * 0.7,
        "the limiter starved the key: {ok}"
    );
    assert!(
        refused > ok,
        "the load was over the limit: {refused} refused"
    );

    // Per tenant: 15/s with a burst of 5 over two keys, each allowed far more on its own.
    let (_gw2, api2) = gateway(
        &fleet,
        GatewaySettings {
            rate_per_key: Some(RateQuota {
                per_second: 1000,
                burst: 1000,
            }),
            rate_per_tenant: Some(RateQuota {
                per_second: 15,
                burst: 5,
            }),
            ..GatewaySettings::default()
        },
        None,
    )
    .await;
    let keys = [fleet.key.clone(), other];
    let (ok, refused, window) = hammer(&api2, &keys, 6, Duration::from_secs(3)).await;
    let most = 5.0 + 15.0 * window.as_secs_f64() + 1.0;
    println!("per tenant: {ok} admitted, {refused} refused in {window:?} (at most {most:.1})");
    assert!(ok as f64 <= most, "{ok} admitted > {most:.1}");
    assert!(
        ok as f64 >= 15.0 * 3.0 * 0.7,
        "the limiter starved the tenant: {ok}"
    );
    assert!(refused > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_configured_origins_only_and_responses_are_gzipped() {
    let fleet = Fleet::start().await;
    let (_gw, api) = gateway(
        &fleet,
        GatewaySettings {
            cors_allowed_origins: vec!["https://app.example.com".into()],
            ..no_limits()
        },
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let preflight = |api: String, origin: &'static str| {
        let http = http.clone();
        async move {
            http.request(Method::OPTIONS, format!("{api}{PATH}"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .header(
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                )
                .send()
                .await
                .unwrap()
        }
    };

    let resp = preflight(api.clone(), "https://app.example.com").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(h.get("access-control-max-age").is_some());

    let resp = preflight(api.clone(), "https://evil.example.com").await;
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "a disallowed origin gets no CORS grant: {:?}",
        resp.headers()
    );

    // The actual request from the allowed origin can read our headers.
    let resp = http
        .get(format!("{api}{PATH}"))
        .bearer_auth(&fleet.key)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("ratelimit-remaining"),
        "{exposed}"
    );

    // The fleet's own gateway has no origins configured: no CORS headers at all.
    let resp = preflight(fleet.api.clone(), "https://app.example.com").await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = http
        .get(format!("{}{PATH}", fleet.api))
        .bearer_auth(&fleet.key)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    // gzip when asked for (reqwest here does not decompress by itself), identity otherwise.
    for path in ["/api/v1/integrations/definitions", "/api/v1/no-such-route"] {
        let resp = http
            .get(format!("{api}{path}"))
            .bearer_auth(&fleet.key)
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(
            resp.headers()["content-encoding"],
            "gzip",
            "{path}: {:?}",
            resp.headers()
        );
        assert!(resp.headers().get("x-request-id").is_some());
        let zipped = resp.bytes().await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut text)
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        println!(
            "{path}: {status}, {} bytes gzipped, {} plain",
            zipped.len(),
            text.len()
        );
        assert!(json.is_object(), "{path}: {text}");

        let resp = http
            .get(format!("{api}{path}"))
            .bearer_auth(&fleet.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        assert!(resp.headers().get("content-encoding").is_none());
        let plain: serde_json::Value = resp.json().await.unwrap();
        assert!(plain.is_object());
    }
}

/// A TCP proxy in front of one service instance that counts the gRPC requests going through
/// it (HTTP/2 HEADERS frames from the client); `stop` closes its port and every connection,
/// as a stopped instance would.
struct CountingProxy {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (r, t) = (requests.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let r = r.clone();
                let conn = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let _ = count_frames(&mut cr, &mut sw, &r).await;
                    down.abort();
                });
                t.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        CountingProxy {
            addr,
            requests,
            tasks,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Forwards an HTTP/2 client stream frame by frame, counting HEADERS frames (type 1).
async fn count_frames(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    headers: &AtomicUsize,
) -> std::io::Result<()> {
    let mut preface = [0u8; 24];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut head = [0u8; 9];
        from.read_exact(&mut head).await?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        if head[3] == 1 {
            headers.fetch_add(1, Ordering::SeqCst);
        }
        to.write_all(&head).await?;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            from.read_exact(&mut buf[..n]).await?;
            to.write_all(&buf[..n]).await?;
            left -= n;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_list_url_balances_over_two_odoo_instances_and_skips_a_stopped_one() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let second = bac_odoo::run(fleet.infra.config(ServiceKind::Odoo))
        .await
        .unwrap();
    let a = CountingProxy::start(fleet.odoo.as_ref().unwrap().grpc_addr).await;
    let b = CountingProxy::start(second.grpc_addr).await;
    let mut settings = no_limits();
    settings.grpc.probe_interval = Duration::from_millis(300);
    let (gw, api) = gateway(
        &fleet,
        settings,
        Some(format!("http://{}, http://{}", a.addr, b.addr)),
    )
    .await;
    let http = reqwest::Client::new();
    let list = "/api/v1/odoo/crm/leads?limit=1";

    for i in 0..40 {
        let (status, _, body) = get(&http, &api, list, &fleet.key).await;
        assert_eq!(status, 200, "call {i}: {body}");
    }
    let (ra, rb) = (a.requests(), b.requests());
    println!("instance a: {ra} requests, instance b: {rb}");
    assert!(
        ra + rb >= 40,
        "every call went through a proxy: {ra} + {rb}"
    );
    assert!(ra >= 5 && rb >= 5, "both instances get calls: {ra} / {rb}");

    // Instance b stops (its port closes). Idempotent calls are retried on a; b is taken out.
    b.stop();
    second.stop().await.unwrap();
    let before = a.requests();
    for i in 0..30 {
        let (status, _, body) = get(&http, &api, list, &fleet.key).await;
        assert_eq!(status, 200, "call {i} after b stopped: {body}");
    }
    assert!(a.requests() >= before + 30);
    assert_eq!(b.requests(), rb, "nothing reaches the stopped instance");

    // Non-idempotent calls (not retried) reach a only once b is out of the balancer: wait
    // for the gateway to say so.
    let metrics = format!("http://{}/metrics", gw.http_addr);
    let out = bac_e2e::wait_until(Duration::from_secs(30), || async {
        let text = http
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .any(|l| l == "bac_grpc_client_endpoints{service=\"odoo\"} 1")
    })
    .await;
    assert!(out, "b never left the balancer");
    for i in 0..10 {
        let resp = http
            .post(format!("{api}/api/v1/odoo/crm/leads"))
            .bearer_auth(&fleet.key)
            .json(&serde_json::json!({"name": format!("Balanced {i}")}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 201, "create {i}: {}", resp.text().await.unwrap());
    }
}
