//! The upstream client against a real local HTTP server that answers 429/5xx on demand.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::any, Router};
use bac_runtime::upstream::{
    AddressClass, EgressPolicy, QuotaKey, RetryPolicy, UpstreamClient, UpstreamError,
    UpstreamRequest,
};

/// The scripted answers and the hit counter.
type Scripted = (Arc<Vec<(u16, Option<&'static str>)>>, Arc<AtomicUsize>);

/// Serves `script` in order (status, Retry-After), then 200 forever; counts hits.
async fn server(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = (Arc::new(script), hits.clone());
    let app = Router::new()
        .route(
            "/*path",
            any(|State((script, hits)): State<Scripted>| async move {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                match script.get(n) {
                    Some((code, retry_after)) => {
                        let mut resp =
                            (StatusCode::from_u16(*code).unwrap(), "scripted").into_response();
                        if let Some(ra) = retry_after {
                            resp.headers_mut()
                                .insert("retry-after", ra.parse().unwrap());
                        }
                        resp
                    }
                    None => (StatusCode::OK, "ok").into_response(),
                }
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn req(url: &str, idempotent: bool) -> UpstreamRequest {
    UpstreamRequest {
        method: http::Method::POST,
        url: format!("{url}/call"),
        headers: vec![],
        body: Some(b"{}".to_vec()),
        idempotent,
        operation: "test/call".into(),
        quota: None,
    }
}

/// These servers stand on 127.0.0.1, which a deployment must open explicitly.
fn loopback() -> EgressPolicy {
    EgressPolicy::parse("127.0.0.1/32").unwrap()
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(10),
    }
}

/// Ten retries 200 ms apart allowed, a 300 ms deadline to end them.
fn short_deadline() -> RetryPolicy {
    RetryPolicy {
        deadline: Duration::from_millis(300),
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(200),
        max_retries: 10,
    }
}

#[tokio::test]
async fn retries_429_honouring_retry_after() {
    let (url, hits) = server(vec![(429, Some("1")), (503, None)]).await;
    let client = UpstreamClient::new("test", None, policy(), loopback());
    let started = Instant::now();
    let resp = client.send(&req(&url, true)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn a_non_idempotent_call_is_not_retried_after_a_5xx() {
    let (url, hits) = server(vec![(500, None)]).await;
    let client = UpstreamClient::new("test", None, policy(), loopback());
    let resp = client.send(&req(&url, false)).await.unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a create must not be sent twice"
    );
}

#[tokio::test]
async fn persistent_429_ends_as_rate_limited() {
    let (url, hits) = server(vec![(429, None); 10]).await;
    let client = UpstreamClient::new("test", None, policy(), loopback());
    let err = client.send(&req(&url, true)).await.unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 4, "one try and three retries");
}

/// A quota that resets after the deadline (Zoho's credits, an hour away) is not slept
/// through until the call times out: the caller hears it is rate limited, with the
/// provider's Retry-After, after one attempt, and parks the work.
#[tokio::test]
async fn a_retry_after_past_the_deadline_ends_as_rate_limited_at_once() {
    let (url, hits) = server(vec![(429, Some("3600")); 3]).await;
    let client = UpstreamClient::new("test", None, policy(), loopback());
    let err = client.send(&req(&url, true)).await.unwrap_err();
    match err {
        UpstreamError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("expected RateLimited, got {other}"),
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no retry it could not wait for"
    );
}

/// The deadline ends the retries: counted in attempts the server saw, not in wall-clock time
/// (a loaded machine makes calls slower, never more numerous).
#[tokio::test]
async fn the_deadline_ends_the_retries() {
    let (url, hits) = server(vec![(503, None); 20]).await;
    let client = UpstreamClient::new("test", None, short_deadline(), loopback());
    let err = client.send(&req(&url, true)).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    // Attempts at 0 and >= 200 ms; the next would start at >= 400 ms, past the deadline.
    let n = hits.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "{n} attempts");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_and_the_deadline_holds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = UpstreamClient::new("test", None, short_deadline(), loopback());
    // It ends (the deadline holds: counted in the test above) with what went wrong.
    let err = client
        .send(&req(&format!("http://127.0.0.1:{port}"), false))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Connect { .. } | UpstreamError::Timeout { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_quota_spaces_calls() {
    let (url, hits) = server(vec![]).await;
    let client = UpstreamClient::new("test", Some(5), policy(), loopback());
    let started = Instant::now();
    for _ in 0..10 {
        client.send(&req(&url, true)).await.unwrap();
    }
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    // 5/s with a burst of 5: the last five wait about a second in all.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn each_upstream_origin_has_its_own_quota() {
    let (a, _) = server(vec![]).await;
    let (b, _) = server(vec![]).await;
    let client = UpstreamClient::new("test", Some(5), policy(), loopback());
    // Exhaust a's burst: a itself is limited.
    for _ in 0..5 {
        client.send(&req(&a, true)).await.unwrap();
    }
    let started = Instant::now();
    client.send(&req(&a, true)).await.unwrap();
    let a_waited = started.elapsed();
    assert!(a_waited >= Duration::from_millis(100), "{a_waited:?}");
    // b is not slowed by it (measured against a's wait in the same run, not a fixed bound).
    let started = Instant::now();
    for _ in 0..4 {
        client.send(&req(&b, true)).await.unwrap();
    }
    let b_took = started.elapsed();
    assert!(b_took < a_waited, "{b_took:?} vs {a_waited:?}");
}

#[tokio::test]
async fn a_quota_unit_chosen_by_the_connector_is_shared_by_its_calls_only() {
    // One host, as for every Zoho organisation: the connector names the unit.
    let (url, hits) = server(vec![]).await;
    let client = UpstreamClient::new("test", None, policy(), loopback());
    let unit = |org: &str| {
        let mut r = req(&url, true);
        r.quota = Some(QuotaKey {
            key: format!("test/org/{org}"),
            per_minute: std::num::NonZeroU32::new(60).unwrap(),
        });
        r
    };
    // 60 a minute, burst 60: org 1 spends its burst, then its next call waits about a second.
    for _ in 0..60 {
        client.send(&unit("1")).await.unwrap();
    }
    let started = Instant::now();
    client.send(&unit("1")).await.unwrap();
    let same_unit = started.elapsed();
    assert!(same_unit >= Duration::from_millis(500), "{same_unit:?}");
    // Org 2 on the same host has a bucket of its own: not slowed by org 1 (measured against
    // the wait above, in the same run, rather than against a fixed bound).
    let started = Instant::now();
    for _ in 0..10 {
        client.send(&unit("2")).await.unwrap();
    }
    let other_unit = started.elapsed();
    assert!(other_unit < same_unit, "{other_unit:?} vs {same_unit:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 71);
}

/// A listener that counts the connections it accepts (and answers none).
async fn target() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (addr, seen)
}

fn refused(err: UpstreamError) -> AddressClass {
    match err {
        UpstreamError::AddressNotAllowed(r) => r.class,
        other => panic!("expected the egress policy to refuse, got {other}"),
    }
}

#[tokio::test]
async fn loopback_literals_and_names_are_refused_before_connecting() {
    let (addr, seen) = target().await;
    let client = UpstreamClient::new("test", None, policy(), EgressPolicy::strict());
    for url in [
        format!("http://{addr}"),
        format!("http://localhost:{}", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}", addr.port()),
    ] {
        let err = client.send(&req(&url, true)).await.unwrap_err();
        assert_eq!(refused(err), AddressClass::Loopback, "{url}");
    }
    let err = client
        .send(&req("http://169.254.169.254", true))
        .await
        .unwrap_err();
    assert_eq!(refused(err), AddressClass::Metadata);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the target saw a connection"
    );
}

/// A server on `ip` that answers every request with `status` and `Location: location`.
async fn redirecting(ip: &str, status: StatusCode, location: String) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/*path",
        any(move || {
            let location = location.clone();
            async move { (status, [("location", location)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_redirect_into_loopback_is_refused_hop_by_hop() {
    let (inside, seen) = target().await;
    // The allowed upstream stands on 127.0.0.2; 127.0.0.1 stays closed.
    let outside = redirecting(
        "127.0.0.2",
        StatusCode::TEMPORARY_REDIRECT,
        format!("http://{inside}/v1/secret"),
    )
    .await;
    let client = UpstreamClient::new(
        "test",
        None,
        policy(),
        EgressPolicy::parse("127.0.0.2/32").unwrap(),
    );
    let err = client
        .send(&req(&format!("http://{outside}"), true))
        .await
        .unwrap_err();
    assert_eq!(refused(err), AddressClass::Loopback);
    // Through a name (localhost resolves to 127.0.0.1 and ::1): another server, so the
    // redirect is not followed at all, with or without the resolver's check.
    let outside = redirecting(
        "127.0.0.2",
        StatusCode::FOUND,
        format!("http://localhost:{}/v1/secret", inside.port()),
    )
    .await;
    let err = client
        .send(&req(&format!("http://{outside}"), true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Request(m) if m.contains("another server")),
        "{err}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the target saw a connection"
    );
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_server() {
    // An allowed server answers 307 to another allowed one: a 307 repeats the body (with the
    // password in it), so it is not followed.
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let collector = axum::Router::new().route(
        "/*path",
        any(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { "collected" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
    let elsewhere = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });
    let outside = redirecting(
        "127.0.0.2",
        StatusCode::TEMPORARY_REDIRECT,
        format!("http://{elsewhere}/collect"),
    )
    .await;
    let client = UpstreamClient::new(
        "test",
        None,
        policy(),
        EgressPolicy::parse("127.0.0.2/32,127.0.0.3/32").unwrap(),
    );
    let err = client
        .send(&req(&format!("http://{outside}"), false))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Request(_)), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the body reached another server"
    );
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_refused_not_buffered() {
    let app = axum::Router::new().route("/*path", any(|| async { vec![b'x'; 2 << 20] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = UpstreamClient::new("test", None, policy(), loopback()).with_max_body(1 << 20);
    let err = client
        .send(&req(&format!("http://{addr}"), true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::TooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
    let roomy = UpstreamClient::new("test", None, policy(), loopback());
    let ok = roomy
        .send(&req(&format!("http://{addr}"), true))
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 2 << 20);
}

#[tokio::test]
async fn requests_name_the_fleet_in_their_user_agent() {
    let app = Router::new().route(
        "/*path",
        any(|headers: axum::http::HeaderMap| async move {
            headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = UpstreamClient::new("odoo", None, policy(), loopback());
    let resp = client
        .send(&req(&format!("http://{addr}"), true))
        .await
        .unwrap();
    let agent = String::from_utf8_lossy(&resp.body).to_string();
    assert!(agent.starts_with("bac-integrations/"), "{agent}");
    assert!(agent.ends_with("(odoo)"), "{agent}");
}
