//! Zoho's API credits running out in the middle of a sync (issue 14): the run parks until
//! the organisation's window resets and goes on from its checkpoint, never failing; each
//! window sees at most one refused call (no retry storm against an exhausted organisation);
//! every record arrives once; and another tenant's organisation answers meanwhile.
use std::time::Duration;

use bac_e2e::{conformance, kafka, wait_until, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";
const WINDOW: i64 = 6;

#[tokio::test(flavor = "multi_thread")]
async fn credits_running_out_park_the_run_until_the_window_resets() {
    let fleet = Fleet::start_opts(FleetOptions {
        zoho: true,
        // four calls a six-second window: a 2,000-lead backfill meets the limit thrice
        zoho_sandbox: bac_sandbox_zoho::ZohoSandboxConfig {
            credits_per_window: Some(4),
            credit_window_secs: WINDOW,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let zoho = fleet.zoho_url.clone().unwrap();
    let conn = fleet.connect_zoho("com", SCOPE, json!({})).await;
    let seeded: Value = fleet
        .http
        .post(format!("{zoho}/com/_sandbox/zoho/records/Leads"))
        .json(&json!({"count": 2000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["created"], 2000);

    // Another tenant, connected to its own organisation (another data centre).
    let other = fleet.other_tenant_key().await;
    let client_id = "1000.OTHERTENANT";
    let status = fleet
        .http
        .post(format!("{zoho}/eu/_sandbox/oauth/grants"))
        .json(
            &json!({"client_id": client_id, "client_secret": "s", "refresh_token": "1000.rt.other",
                      "scope": SCOPE}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let (status, other_conn) = fleet
        .call_as(
            &other,
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "zoho", "name": "Other org",
                        "config": {"data_center": "eu", "client_id": client_id},
                        "credentials": {"client_secret": "s", "refresh_token": "1000.rt.other"}})),
        )
        .await;
    assert_eq!(status, 201, "{other_conn}");

    let leads = kafka::consumer(&fleet.infra.brokers, "bac.zoho.crm_lead.v1");
    let (status, started) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["sync_run_id"].as_str().unwrap().to_string();
    let since = std::time::Instant::now();

    // The run waits in line for the window, saying why, instead of failing.
    let parked = wait_until(Duration::from_secs(60), || async {
        let (_, body) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/integrations/connections/{conn}/sync-runs"),
                None,
            )
            .await;
        body["runs"].as_array().is_some_and(|runs| {
            runs.iter().any(|r| {
                r["id"] == run_id.as_str()
                    && r["status"] == "queued"
                    && r["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("rate limit to reset"))
            })
        })
    })
    .await;
    assert!(parked, "the run never waited for Zoho's window");
    // Meanwhile the other tenant's organisation answers at once.
    let (status, list) = fleet
        .call_as(
            &other,
            Method::GET,
            "/api/v1/zoho/crm/leads?per_page=5",
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");

    let run = conformance::wait_run(&fleet, &conn, &run_id).await;
    // an upper bound of the windows the run spanned (a slow machine only loosens it)
    let windows = since.elapsed().as_secs() / WINDOW as u64 + 2;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(conformance::counts(&run), (2000, 0, 0), "{run}");
    let got = kafka::collect(&leads, Duration::from_secs(60), |r| r.len() >= 2000).await;
    let subjects: std::collections::HashSet<&str> = got
        .iter()
        .map(|r| r.headers["ce_subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), 2000, "every lead once");
    assert_eq!(got.len(), 2000, "no lead twice");

    // Each call Zoho refused parked the run once; none was retried into the limit.
    let credits: Value = fleet
        .http
        .get(format!("{zoho}/com/_sandbox/zoho/credits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = credits["refused"].as_u64().unwrap();
    let metrics = fleet
        .http
        .get(format!(
            "http://{}/metrics",
            fleet.zoho.as_ref().unwrap().1.http_addr
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parks: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("bac_sync_runs_total") && l.contains("status=\"parked\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(parks >= 1.0, "the run parked: {metrics}");
    assert!(refused >= 1, "the limit was met: {credits}");
    assert!(
        refused <= windows,
        "at most one refused call a window ({refused} refused in at most {windows} windows)"
    );
}
