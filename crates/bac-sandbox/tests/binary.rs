//! The `bac-sandbox` binary as a user starts it: configured from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{json, Value};

const API_KEY: &str = bac_sandbox_odoo::DEFAULT_API_KEY;

/// The binary seeds from `BAC_SANDBOX_ODOO_SEED` and serves JSON-2 with
/// `BAC_SANDBOX_ODOO_VERSION=19.0` and its default API key.
#[tokio::test]
async fn binary_env_seed_and_version() {
    // Port 0: the binary picks a free port and says which in its "listening" log line; the
    // test waits for that line, not for time.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bac-sandbox"))
        .env("BAC_SANDBOX_ODOO_ADDR", "127.0.0.1:0")
        .env("BAC_SANDBOX_ODOO_VERSION", "19.0")
        .env("BAC_SANDBOX_ODOO_SEED", "crm.lead=250,res.partner=3")
        .env("BAC_SANDBOX_ZOHO_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    let listening = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("listening"))
            })
            .take(2)
            .map(|l| {
                let m = l["fields"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                (
                    m,
                    l["fields"]["addr"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect::<std::collections::HashMap<String, String>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), listening)
        .await
        .expect("bac-sandbox did not start")
        .unwrap();
    let base = format!(
        "http://{}",
        lines
            .get("bac-sandbox odoo listening")
            .expect("bac-sandbox exited before listening")
    );
    // asked for with BAC_SANDBOX_ZOHO_ADDR, the Zoho sandbox listens too
    let zoho = format!(
        "http://{}",
        lines
            .get("bac-sandbox zoho listening")
            .expect("no Zoho sandbox")
    );
    let calls = reqwest::get(format!("{zoho}/_sandbox/zoho/calls"))
        .await
        .unwrap();
    assert_eq!(calls.status().as_u16(), 200);
    let http = reqwest::Client::new();
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
