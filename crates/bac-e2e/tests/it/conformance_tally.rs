//! Tally runs the connector conformance suite (`bac_e2e::conformance`) against its sandbox:
//! vouchers as an office keys them into Tally, alters and deletes them (each change a new
//! ALTERID), found by their narration. Tally sends no webhooks and has no credentials to
//! expire: `webhook_ingest` and `credentials_expire_mid_run` do not apply (the fleet asks
//! Tally; its XML server has no login).
use async_trait::async_trait;
use bac_e2e::{conformance, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

/// The Tally sandbox of the fleet (`Fleet::tally_url`), as an office uses it.
struct Tally;

async fn fleet() -> (Fleet, Tally) {
    (Fleet::with_tally().await, Tally)
}

impl Tally {
    async fn admin(
        &self,
        fleet: &Fleet,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = fleet.http.request(
            method,
            format!("{}/_sandbox/tally/{path}", fleet.tally_url()),
        );
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[async_trait]
impl conformance::Upstream for Tally {
    fn key(&self) -> &'static str {
        "tally"
    }

    fn entity(&self) -> &'static str {
        "voucher"
    }

    fn field(&self) -> &'static str {
        "narration"
    }

    fn create_values(&self) -> Value {
        json!({"date": "2026-12-05", "voucher_type": "Journal", "ledger_entries": [
            {"ledger_name": "Rent", "amount": 10.5, "side": "debit"},
            {"ledger_name": "Cash", "amount": 10.5, "side": "credit"}]})
    }

    async fn connect(&self, fleet: &Fleet) -> String {
        let (status, body) = fleet
            .call(
                Method::POST,
                "/api/v1/integrations/tally/configuration",
                Some(
                    json!({"tally_server_host": "127.0.0.1", "tally_server_port": fleet.tally_addr.unwrap().port(),
                    "company_name_in_tally": "Demo Company"}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["connection_id"].as_str().unwrap().to_string()
    }

    /// A voucher keyed into Tally.
    async fn create(&self, fleet: &Fleet, value: &str) -> String {
        let (status, body) = self
            .admin(
                fleet,
                Method::POST,
                "vouchers",
                Some(json!({"count": 1, "narration": value, "date": "20261205"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["guids"][0].as_str().unwrap().to_string()
    }

    async fn update(&self, fleet: &Fleet, id: &str, value: &str) {
        let (status, body) = self
            .admin(
                fleet,
                Method::POST,
                "objects",
                Some(json!({"action": "alter", "guid": id, "fields": {"NARRATION": value}})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    async fn delete(&self, fleet: &Fleet, id: &str) {
        let (status, body) = self
            .admin(
                fleet,
                Method::POST,
                "objects",
                Some(json!({"action": "delete", "guid": id})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    async fn read(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let (status, body) = self
            .admin(fleet, Method::GET, &format!("objects?guid={id}"), None)
            .await;
        (status == 200).then(|| {
            body["fields"]["NARRATION"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    }

    async fn find(&self, fleet: &Fleet, value: &str) -> Vec<String> {
        let q: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let (_, body) = self
            .admin(
                fleet,
                Method::GET,
                &format!("objects?field=NARRATION&value={q}"),
                None,
            )
            .await;
        body["guids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn notify(&self, _fleet: &Fleet, _conn: &str, _ids: &[String]) -> (u16, Value) {
        unreachable!("Tally sends no webhooks: webhook_ingest does not apply")
    }

    async fn expire_credentials(&self, _fleet: &Fleet) {
        unreachable!("Tally's XML server has no credentials")
    }

    async fn seed(&self, fleet: &Fleet, n: usize) {
        let (status, body) = self
            .admin(
                fleet,
                Method::POST,
                "vouchers",
                Some(json!({"count": n, "date": "20261205"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn count(&self, fleet: &Fleet) -> i64 {
        let (_, body) = self.admin(fleet, Method::GET, "stats", None).await;
        body["vouchers"].as_i64().unwrap()
    }

    async fn stop_service(&self, fleet: &mut Fleet) {
        let at = fleet
            .stand_ins
            .iter()
            .position(|(k, _)| *k == bac_runtime::ServiceKind::Tally)
            .unwrap();
        fleet.stand_ins.remove(at).1.stop().await.unwrap();
    }

    fn replica(&self, fleet: &Fleet) -> std::process::Child {
        conformance::replica_command(
            fleet,
            "conformance_tally::replica_process",
            &[("BAC_SYNC_PAGE_SIZE", "200".into())],
        )
    }
}

#[tokio::test]
async fn backfill_incremental_and_deletions() {
    let (fleet, tally) = fleet().await;
    conformance::backfill_incremental_and_deletions(&fleet, &tally).await;
}

#[tokio::test]
async fn echo_suppression() {
    let (fleet, tally) = fleet().await;
    conformance::echo_suppression(&fleet, &tally).await;
}

#[tokio::test]
async fn conflict_strategies() {
    let (fleet, tally) = fleet().await;
    conformance::conflict_strategies(&fleet, &tally).await;
}

#[tokio::test]
async fn takeover_after_kill() {
    let (mut fleet, tally) = fleet().await;
    conformance::takeover_after_kill(&mut fleet, &tally).await;
}

/// Not a test on its own: the body of a bac-tally replica process for `takeover_after_kill`.
#[tokio::test]
#[ignore = "run as a child process by takeover_after_kill"]
async fn replica_process() {
    if std::env::var("BAC_E2E_REPLICA").is_err() {
        return;
    }
    let config = bac_runtime::Config::from_lookup(bac_runtime::ServiceKind::Tally, |k| {
        std::env::var(k).ok()
    })
    .unwrap();
    let running = bac_tally::run(config).await.unwrap();
    running.wait().await.unwrap();
}
