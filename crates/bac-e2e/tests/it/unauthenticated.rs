//! Traffic without a valid key: made-up keys cost a handful of queries (unknown prefixes are
//! remembered, and a source that keeps failing is held off before it costs another), the
//! source is what the socket says unless a trusted proxy says otherwise, and valid keys from
//! the same address are never slowed.
use bac_e2e::{admin_url, connect, Fleet};
use bac_gateway::{ratelimit::RateQuota, settings::GatewaySettings};
use bac_runtime::{Running, ServiceKind};
use futures::StreamExt;
use reqwest::StatusCode;

async fn gateway(fleet: &Fleet, settings: GatewaySettings) -> (Running, String) {
    let mut urls = bac_gateway::ServiceUrls::from_lookup(|_| None);
    urls.0.insert(
        ServiceKind::Odoo,
        format!("http://{}", fleet.odoo.as_ref().unwrap().grpc_addr),
    );
    let gw =
        bac_gateway::run_with_settings(fleet.infra.config(ServiceKind::Gateway), urls, settings)
            .await
            .unwrap();
    let api = format!("http://{}", gw.api_addr.unwrap());
    (gw, api)
}

fn settings(trusted: &str) -> GatewaySettings {
    GatewaySettings {
        rate_per_key: None,
        rate_per_tenant: None,
        rate_unauthenticated: Some(RateQuota {
            per_second: 1,
            burst: 5,
        }),
        trusted_proxies: trusted
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect(),
        ..GatewaySettings::default()
    }
}

/// `bac_gateway_key_lookups_total` of this process (every gateway of the test shares it).
async fn lookups(gw: &Running) -> u64 {
    let text = reqwest::get(admin_url(gw, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("bac_gateway_key_lookups_total"))
        .and_then(|l| l.split_whitespace().last())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

const PATH: &str = "/api/v1/integrations/connections";

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_random_keys_cost_a_handful_of_queries() {
    let fleet = Fleet::start().await;
    let (gw, api) = gateway(&fleet, settings("")).await;
    let http = reqwest::Client::new();
    // The fleet's key works here, and once the key cache listens for changes it is answered
    // from the cache (a call that costs no lookup).
    let cached = bac_e2e::wait_until(std::time::Duration::from_secs(20), || {
        let (http, url, key, gw) = (http.clone(), format!("{api}{PATH}"), fleet.key.clone(), &gw);
        async move {
            let before = lookups(gw).await;
            let resp = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            lookups(gw).await == before
        }
    })
    .await;
    assert!(cached, "the fleet's key was never answered from the cache");
    let before = lookups(&gw).await;

    let statuses: Vec<(StatusCode, Option<String>)> = futures::stream::iter(0..5000)
        .map(|i| {
            let http = http.clone();
            let url = format!("{api}{PATH}");
            async move {
                let key = format!("bac_r{i:05}x{}_{}", i * 7919, uuid::Uuid::new_v4().simple());
                let resp = http
                    .get(url)
                    // A client cannot pick its own source: the socket's address counts.
                    .header("x-forwarded-for", format!("198.51.100.{}", i % 250))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (resp.status(), retry)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let queries = lookups(&gw).await - before;
    let refused = statuses
        .iter()
        .filter(|(s, r)| *s == StatusCode::TOO_MANY_REQUESTS && r.is_some())
        .count();
    let unauthorized = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    println!("5000 random keys: {queries} key queries, {unauthorized} x 401, {refused} x 429");
    assert_eq!(refused + unauthorized, 5000, "every answer is 401 or 429");
    assert!(
        queries <= 25,
        "{queries} queries for 5000 random keys (401: {unauthorized})"
    );
    assert!(refused >= 4900, "{refused}");

    // The same address with a valid key the cache knows is not slowed.
    let ok = http
        .get(format!("{api}{PATH}"))
        .bearer_auth(&fleet.key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // Without a key at all it is held off too, in the one error shape.
    let resp = http.get(format!("{api}{PATH}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["details"]["error_code"], "RATE_LIMITED", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let fleet = Fleet::start().await;
    // This gateway sits behind a proxy on 127.0.0.1: the client is the nearest other hop.
    let (_gw, api) = gateway(&fleet, settings("127.0.0.1/32")).await;
    let http = reqwest::Client::new();
    let call = |client_ip: &'static str| {
        let http = http.clone();
        let url = format!("{api}{PATH}");
        async move {
            http.get(url)
                .header("x-forwarded-for", format!("{client_ip}, 127.0.0.1"))
                .bearer_auth(format!("bac_nope_{}", uuid::Uuid::new_v4().simple()))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = call("198.51.100.7").await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "the noisy client");
    assert_eq!(
        call("198.51.100.8").await,
        StatusCode::UNAUTHORIZED,
        "another client behind the same proxy is not held off"
    );

    // The fleet's own gateway trusts no proxy: the audit records the socket's address.
    let resp = fleet
        .http
        .post(format!("{}/api/v1/users", fleet.api))
        .bearer_auth(&fleet.key)
        .header("x-forwarded-for", "6.6.6.6")
        .json(&serde_json::json!({"email": "xff@test.local", "role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let db = connect(&fleet.infra.database_url).await;
    let source: Option<String> = db
        .query_one(
            "SELECT source_ip FROM gateway.audit_log WHERE tenant_id = $1 AND action = 'user.created'
             ORDER BY created_at DESC LIMIT 1",
            &[&fleet.tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(source.as_deref(), Some("127.0.0.1"));
}
