//! Odoo runs the connector conformance suite (`bac_e2e::conformance`) against its sandbox:
//! leads as Odoo's own users create, change and delete them over JSON-RPC, Odoo's webhook
//! automation, and credentials Odoo stops accepting once.
use async_trait::async_trait;
use bac_e2e::{conformance, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

struct Odoo;

fn id_of(v: &Value) -> String {
    v.as_i64().expect("an Odoo id").to_string()
}

fn num(id: &str) -> i64 {
    id.parse().expect("an Odoo id")
}

#[async_trait]
impl conformance::Upstream for Odoo {
    fn key(&self) -> &'static str {
        "odoo"
    }

    fn entity(&self) -> &'static str {
        "crm_lead"
    }

    fn field(&self) -> &'static str {
        "name"
    }

    async fn connect(&self, fleet: &Fleet) -> String {
        let (status, conn) = fleet.connect_odoo(None, "admin").await;
        assert_eq!(status, 201, "{conn}");
        conn["id"].as_str().unwrap().to_string()
    }

    async fn create(&self, fleet: &Fleet, value: &str) -> String {
        id_of(
            &fleet
                .odoo_rpc("crm.lead", "create", json!([{"name": value}]), json!({}))
                .await,
        )
    }

    async fn update(&self, fleet: &Fleet, id: &str, value: &str) {
        fleet
            .odoo_rpc(
                "crm.lead",
                "write",
                json!([[num(id)], {"name": value}]),
                json!({}),
            )
            .await;
    }

    async fn delete(&self, fleet: &Fleet, id: &str) {
        fleet
            .odoo_rpc("crm.lead", "unlink", json!([[num(id)]]), json!({}))
            .await;
    }

    async fn read(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let rows = fleet
            .odoo_rpc(
                "crm.lead",
                "search_read",
                json!([[["id", "=", num(id)]]]),
                json!({"fields": ["name"], "context": {"active_test": false}}),
            )
            .await;
        rows[0]["name"].as_str().map(str::to_string)
    }

    async fn find(&self, fleet: &Fleet, value: &str) -> Vec<String> {
        let ids = fleet
            .odoo_rpc(
                "crm.lead",
                "search",
                json!([[["name", "=", value]]]),
                json!({}),
            )
            .await;
        ids.as_array().unwrap().iter().map(id_of).collect()
    }

    /// What Odoo's "Send Webhook Notification" automation posts, one record a request.
    async fn notify(&self, fleet: &Fleet, conn: &str, ids: &[String]) -> (u16, Value) {
        let (status, created) = fleet
            .call(
                Method::POST,
                &format!("/api/v1/integrations/connections/{conn}/webhook-token?form=query"),
                None,
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let url = format!(
            "{}{}",
            fleet.api,
            created["webhook_url_with_token"].as_str().unwrap()
        );
        let mut last = (0, Value::Null);
        for id in ids {
            let body = json!({"_action": "Send Webhook Notification(#1)", "_model": "crm.lead", "_id": num(id)});
            let r = fleet.http.post(&url).json(&body).send().await.unwrap();
            last = (r.status().as_u16(), r.json().await.unwrap_or(Value::Null));
        }
        last
    }

    async fn seed(&self, fleet: &Fleet, n: usize) {
        fleet
            .seed_with(json!({"model": "crm.lead", "count": n}))
            .await;
    }

    async fn count(&self, fleet: &Fleet) -> i64 {
        fleet
            .odoo_rpc("crm.lead", "search_count", json!([[]]), json!({}))
            .await
            .as_i64()
            .unwrap()
    }

    async fn stop_service(&self, fleet: &mut Fleet) {
        fleet.odoo.take().unwrap().stop().await.unwrap();
    }

    /// This test binary again, running only [`replica_process`].
    fn replica(&self, fleet: &Fleet) -> std::process::Child {
        conformance::replica_command(
            fleet,
            "conformance_odoo::replica_process",
            &[("BAC_SYNC_PAGE_SIZE", "500".into())],
        )
    }

    /// Odoo refuses the next call's credentials (the uid the service cached is no longer
    /// valid, as after the user was re-created).
    async fn expire_credentials(&self, fleet: &Fleet) {
        let r = fleet
            .http
            .post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
            .json(&json!({"model": "crm.lead", "method": "search_read", "session_expired": true, "for_calls": 1}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

#[tokio::test]
async fn backfill_incremental_and_deletions() {
    conformance::backfill_incremental_and_deletions(&Fleet::start().await, &Odoo).await;
}

#[tokio::test]
async fn echo_suppression() {
    conformance::echo_suppression(&Fleet::start().await, &Odoo).await;
}

#[tokio::test]
async fn conflict_strategies() {
    conformance::conflict_strategies(&Fleet::start().await, &Odoo).await;
}

#[tokio::test]
async fn webhook_ingest() {
    conformance::webhook_ingest(&Fleet::start().await, &Odoo).await;
}

#[tokio::test]
async fn credentials_expire_mid_run() {
    conformance::credentials_expire_mid_run(&Fleet::start().await, &Odoo).await;
}

#[tokio::test]
async fn takeover_after_kill() {
    conformance::takeover_after_kill(&mut Fleet::start().await, &Odoo).await;
}

/// Not a test on its own: the body of a bac-odoo replica process for `takeover_after_kill`,
/// which runs this test binary again with `BAC_E2E_REPLICA=1` so it can `kill -9` a real
/// process.
#[tokio::test]
#[ignore = "run as a child process by takeover_after_kill"]
async fn replica_process() {
    if std::env::var("BAC_E2E_REPLICA").is_err() {
        return;
    }
    let config =
        bac_runtime::Config::from_lookup(bac_runtime::ServiceKind::Odoo, |k| std::env::var(k).ok())
            .unwrap();
    let running = bac_odoo::run(config).await.unwrap();
    running.wait().await.unwrap();
}
