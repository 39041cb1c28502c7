//! The `bac-sandbox` binary as a user starts it: configured from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const API_KEY: &str = bac_sandbox_odoo::DEFAULT_API_KEY;

/// The binary seeds from `BAC_SANDBOX_ODOO_SEED` and serves JSON-2 with
/// `BAC_SANDBOX_ODOO_VERSION=19.0` and its default API key.
#[tokio::test]
async fn binary_env_seed_and_version() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bac-sandbox"))
        .env("BAC_SANDBOX_ODOO_ADDR", format!("127.0.0.1:{port}"))
        .env("BAC_SANDBOX_ODOO_VERSION", "19.0")
        .env("BAC_SANDBOX_ODOO_SEED", "crm.lead=250,res.partner=3")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "bac-sandbox did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = |model: &'static str| {
        let (http, base) = (&http, &base);
        async move {
            let resp = http
                .post(format!("{base}/json/2/{model}/search_count"))
                .header("authorization", format!("bearer {API_KEY}"))
                .json(&json!({"domain": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(count("crm.lead").await, 250);
    assert_eq!(count("res.partner").await, 3);
}

/// Stops the child process when the test ends, even on a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
