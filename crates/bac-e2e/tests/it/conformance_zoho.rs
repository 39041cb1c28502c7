//! Zoho runs the connector conformance suite (`bac_e2e::conformance`) against its sandbox:
//! leads as Zoho's own users create, change and delete them over the CRM API (with a token
//! of their own app), access tokens Zoho's accounts server expires early, Zoho's notification
//! body on the webhook route, and a token expiring in the middle of a 50,000-lead backfill.
use async_trait::async_trait;
use bac_e2e::{conformance, Fleet, FleetOptions};
use serde_json::{json, Value};

struct Zoho;

const DC: &str = "com";

async fn fleet() -> Fleet {
    Fleet::start_opts(FleetOptions {
        zoho: true,
        ..Default::default()
    })
    .await
}

/// A call to the sandbox's CRM API as one of Zoho's users; its JSON answer (Null for 204).
async fn as_user(fleet: &Fleet, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let token = fleet.zoho_user_token(DC).await;
    let zoho = fleet.zoho_url.as_ref().unwrap();
    let mut req = fleet
        .http
        .request(method, format!("{zoho}/{DC}/crm/v8/{path}"))
        .header("authorization", format!("Zoho-oauthtoken {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

#[async_trait]
impl conformance::Upstream for Zoho {
    fn key(&self) -> &'static str {
        "zoho"
    }

    fn entity(&self) -> &'static str {
        "crm_lead"
    }

    fn field(&self) -> &'static str {
        "last_name"
    }

    async fn connect(&self, fleet: &Fleet) -> String {
        fleet
            .connect_zoho(
                DC,
                "ZohoCRM.modules.ALL,ZohoCRM.org.READ",
                json!({"calls_per_minute": 10000}),
            )
            .await
    }

    async fn create(&self, fleet: &Fleet, value: &str) -> String {
        let v = as_user(
            fleet,
            reqwest::Method::POST,
            "Leads",
            Some(json!({"data": [{"Last_Name": value}]})),
        )
        .await;
        v["data"][0]["details"]["id"].as_str().unwrap().to_string()
    }

    async fn update(&self, fleet: &Fleet, id: &str, value: &str) {
        as_user(
            fleet,
            reqwest::Method::PUT,
            &format!("Leads/{id}"),
            Some(json!({"data": [{"Last_Name": value}]})),
        )
        .await;
    }

    async fn delete(&self, fleet: &Fleet, id: &str) {
        as_user(fleet, reqwest::Method::DELETE, &format!("Leads/{id}"), None).await;
    }

    async fn read(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let v = as_user(fleet, reqwest::Method::GET, &format!("Leads/{id}"), None).await;
        v["data"][0]["Last_Name"].as_str().map(str::to_string)
    }

    async fn find(&self, fleet: &Fleet, value: &str) -> Vec<String> {
        let criteria = format!("(Last_Name:equals:{value})");
        let path = format!(
            "Leads/search?criteria={}",
            url::form_urlencoded::byte_serialize(criteria.as_bytes()).collect::<String>()
        );
        let v = as_user(fleet, reqwest::Method::GET, &path, None).await;
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Zoho's notification body (as a channel or a workflow rule's webhook sends it) on the
    /// connection's webhook route; the channel route itself is tested in zoho_notifications.
    async fn notify(&self, fleet: &Fleet, conn: &str, ids: &[String]) -> (u16, Value) {
        let (status, created) = fleet
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/integrations/connections/{conn}/webhook-token"),
                None,
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let r = fleet
            .http
            .post(format!("{}{}", fleet.api, created["webhook_url"].as_str().unwrap()))
            .header("X-Webhook-Token", created["token"].as_str().unwrap())
            .json(&json!({"server_time": 0, "module": "Leads", "ids": ids, "operation": "update",
                          "query_params": {}, "affected_fields": [], "channel_id": "1", "token": null}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Zoho's accounts server ends every access token of the data centre early.
    async fn expire_credentials(&self, fleet: &Fleet) {
        let zoho = fleet.zoho_url.as_ref().unwrap();
        let r = fleet
            .http
            .post(format!("{zoho}/{DC}/_sandbox/oauth/expire"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn seed(&self, fleet: &Fleet, n: usize) {
        let zoho = fleet.zoho_url.as_ref().unwrap();
        let r = fleet
            .http
            .post(format!("{zoho}/{DC}/_sandbox/zoho/records/Leads"))
            .json(&json!({"count": n}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn count(&self, fleet: &Fleet) -> i64 {
        let zoho = fleet.zoho_url.as_ref().unwrap();
        let v: Value = fleet
            .http
            .get(format!("{zoho}/{DC}/_sandbox/zoho/records/Leads"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["count"].as_i64().unwrap()
    }

    async fn stop_service(&self, fleet: &mut Fleet) {
        fleet.zoho.take().unwrap().1.stop().await.unwrap();
    }

    /// This test binary again, running only [`replica_process`].
    fn replica(&self, fleet: &Fleet) -> std::process::Child {
        let base = fleet.zoho_url.clone().unwrap_or_default();
        let dcs: Vec<String> = bac_zoho::dc::keys()
            .into_iter()
            .map(|k| format!("{k}={base}/{k}"))
            .collect();
        conformance::replica_command(
            fleet,
            "conformance_zoho::replica_process",
            &[
                ("BAC_ZOHO_DATA_CENTERS", dcs.join(",")),
                ("BAC_SYNC_PAGE_SIZE", "200".into()),
            ],
        )
    }
}

#[tokio::test]
async fn backfill_incremental_and_deletions() {
    conformance::backfill_incremental_and_deletions(&fleet().await, &Zoho).await;
}

#[tokio::test]
async fn echo_suppression() {
    conformance::echo_suppression(&fleet().await, &Zoho).await;
}

#[tokio::test]
async fn conflict_strategies() {
    conformance::conflict_strategies(&fleet().await, &Zoho).await;
}

#[tokio::test]
async fn credentials_expire_mid_run() {
    conformance::credentials_expire_mid_run(&fleet().await, &Zoho).await;
}

#[tokio::test]
async fn webhook_ingest() {
    conformance::webhook_ingest(&fleet().await, &Zoho).await;
}

/// The access token expires while a 50,000-lead backfill runs: the run refreshes it and
/// completes, every lead reported once.
#[tokio::test(flavor = "multi_thread")]
async fn token_expires_in_the_middle_of_a_50000_lead_backfill() {
    use bac_e2e::conformance::Upstream;
    use std::time::Duration;
    let fleet = fleet().await;
    let zoho = fleet.zoho_url.clone().unwrap();
    let conn = Zoho.connect(&fleet).await;
    Zoho.seed(&fleet, 50_000).await;
    let (status, started) = fleet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["sync_run_id"].as_str().unwrap().to_string();
    let stats = || async {
        let v: Value = fleet
            .http
            .get(format!("{zoho}/{DC}/_sandbox/oauth/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["refreshes"].as_u64().unwrap_or(0)
    };
    // Once a fifth of the leads are in, Zoho ends every access token.
    let progressed = bac_e2e::wait_until(Duration::from_secs(120), || async {
        let (_, body) = fleet
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/integrations/connections/{conn}/sync-runs"),
                None,
            )
            .await;
        body["runs"].as_array().is_some_and(|runs| {
            runs.iter()
                .any(|r| r["id"] == run_id.as_str() && r["records_seen"].as_u64() >= Some(10_000))
        })
    })
    .await;
    assert!(progressed, "the backfill did not get going");
    let before = stats().await;
    Zoho.expire_credentials(&fleet).await;
    let run = conformance::wait_run(&fleet, &conn, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(conformance::counts(&run), (50_000, 0, 0), "{run}");
    assert!(
        stats().await > before,
        "the run refreshed the expired token"
    );
    let got = conformance::events(&fleet, "bac.zoho.crm_lead.v1", |r| r.len() >= 50_000).await;
    let subjects: std::collections::HashSet<&str> = got
        .iter()
        .map(|r| r.headers["ce_subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), 50_000, "every lead once");
    assert_eq!(got.len(), 50_000, "no lead twice");
}

#[tokio::test]
async fn takeover_after_kill() {
    conformance::takeover_after_kill(&mut fleet().await, &Zoho).await;
}

/// Not a test on its own: the body of a bac-zoho replica process for `takeover_after_kill`.
#[tokio::test]
#[ignore = "run as a child process by takeover_after_kill"]
async fn replica_process() {
    if std::env::var("BAC_E2E_REPLICA").is_err() {
        return;
    }
    let config =
        bac_runtime::Config::from_lookup(bac_runtime::ServiceKind::Zoho, |k| std::env::var(k).ok())
            .unwrap();
    let running = bac_zoho::run(config).await.unwrap();
    running.wait().await.unwrap();
}
