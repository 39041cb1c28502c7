//! The rate limits hold for the fleet, not per replica: with three gateway replicas and a
//! client spreading its calls over them, a key gets its configured burst in all (within
//! 20 %), not three times it.
use std::time::Duration;

use bac_e2e::{fresh_database, wait_until, InfraEnv, Tansu, Vault};
use bac_gateway::{ratelimit::RateQuota, settings::GatewaySettings};
use bac_runtime::ServiceKind;
use reqwest::StatusCode;

const PATH: &str = "/api/v1/integrations/connections";

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_one_limit() {
    let kafka = Tansu::start();
    let vault = Vault::get();
    let infra = InfraEnv {
        database_url: fresh_database().await,
        brokers: kafka.brokers(),
        vault_addr: vault.addr.clone(),
        vault_token: vault.token.clone(),
        upstream_allow: InfraEnv::LOOPBACK.into(),
        overrides: Default::default(),
    };
    const BURST: u32 = 60;
    let settings = || GatewaySettings {
        // A slow refill: what a burst lets through is what the test counts.
        rate_per_key: Some(RateQuota {
            per_second: 1,
            burst: BURST,
        }),
        rate_per_tenant: None,
        ..GatewaySettings::default()
    };
    let mut gateways = Vec::new();
    for _ in 0..3 {
        let gw = bac_gateway::run_with_settings(
            infra.config(ServiceKind::Gateway),
            bac_gateway::ServiceUrls::from_lookup(|_| None),
            settings(),
        )
        .await
        .unwrap();
        gateways.push(gw);
    }
    let apis: Vec<String> = gateways
        .iter()
        .map(|g| format!("http://{}", g.api_addr.unwrap()))
        .collect();
    let pool = bac_runtime::db::pool(&infra.database_url, "gateway", 2).unwrap();
    let bootstrap = |email: &str| bac_gateway::admin::Bootstrap {
        tenant: "fleetlimits".into(),
        tenant_name: "Fleet limits".into(),
        email: email.into(),
        role: bac_gateway::auth::Role::SuperAdmin,
    };
    let probe_key = bac_gateway::admin::bootstrap(&pool, &bootstrap("probe@test.local"))
        .await
        .unwrap();
    let key = bac_gateway::admin::bootstrap(&pool, &bootstrap("client@test.local"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    // Each replica has seen the other two: its share of the burst is a third.
    let shared = wait_until(Duration::from_secs(30), || {
        let (http, apis, probe) = (http.clone(), apis.clone(), probe_key.clone());
        async move {
            for api in &apis {
                let resp = http
                    .get(format!("{api}{PATH}"))
                    .bearer_auth(&probe)
                    .send()
                    .await
                    .unwrap();
                if resp.headers()["ratelimit-limit"] != (BURST / 3).to_string().as_str() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(shared, "the replicas did not see each other");

    // The client spreads 600 calls over the three, round robin.
    let mut allowed = 0u32;
    for i in 0..600 {
        let resp = http
            .get(format!("{}{PATH}", apis[i % 3]))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        match resp.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    println!("three replicas, burst {BURST} per key: {allowed} of 600 calls allowed");
    let most = f64::from(BURST) * 1.2;
    let least = f64::from(BURST) * 0.8;
    assert!(
        f64::from(allowed) <= most && f64::from(allowed) >= least,
        "{allowed} allowed for a burst of {BURST} (each replica alone would allow {BURST})"
    );
    for g in gateways {
        g.stop().await.unwrap();
    }
}
