//! Test harness: a spawned sandbox and a tiny JSON-RPC client.

use std::net::SocketAddr;

use bac_sandbox_odoo::{spawn_odoo, OdooSandboxConfig};
use serde_json::{json, Value};

pub const DB: &str = "demo";
pub const ADMIN_UID: i64 = 2;

pub struct Sandbox {
    pub base: String,
    pub http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self._server.abort();
    }
}

pub async fn spawn() -> Sandbox {
    spawn_with(OdooSandboxConfig {
        users: vec![
            ("admin".into(), "admin".into()),
            ("bob@example.com".into(), "bob-api-key".into()),
        ],
        ..OdooSandboxConfig::default()
    })
    .await
}

/// The admin's API key in [`spawn_v19`] sandboxes.
pub const API_KEY: &str = "sandbox-api-key";
/// Bob's API key in [`spawn_v19`] sandboxes.
pub const BOB_KEY: &str = "bob-json2-key";

/// An Odoo 19 sandbox (JSON-2 served), admin and bob with API keys.
pub async fn spawn_v19() -> Sandbox {
    spawn_with(OdooSandboxConfig {
        users: vec![
            ("admin".into(), "admin".into()),
            ("bob@example.com".into(), "bob-password".into()),
        ],
        server_version: "19.0".into(),
        api_keys: vec![
            (API_KEY.into(), "admin".into()),
            (BOB_KEY.into(), "bob@example.com".into()),
        ],
        ..OdooSandboxConfig::default()
    })
    .await
}

pub async fn spawn_with(cfg: OdooSandboxConfig) -> Sandbox {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (bound, server) = spawn_odoo(cfg, addr).await.unwrap();
    Sandbox {
        base: format!("http://{bound}"),
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl Sandbox {
    /// POSTs a raw body; returns (HTTP status, JSON body).
    pub async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// POSTs `body` as JSON and returns status, content type and the body as text.
    pub async fn post_text(&self, path: &str, body: String) -> (u16, String, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ctype, resp.text().await.unwrap())
    }

    /// A JSON-RPC 2.0 `call` on `path`; returns the whole response envelope.
    pub async fn call(&self, path: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": "call", "params": params, "id": 42});
        let (status, resp) = self.post_raw(path, body.to_string()).await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["jsonrpc"], "2.0");
        assert_eq!(resp["id"], 42);
        resp
    }

    /// `/jsonrpc` service call; returns the envelope.
    pub async fn rpc(&self, service: &str, method: &str, args: Value) -> Value {
        self.call(
            "/jsonrpc",
            json!({"service": service, "method": method, "args": args}),
        )
        .await
    }

    /// `object.execute_kw` as admin; returns the envelope.
    pub async fn execute_kw(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        self.rpc(
            "object",
            "execute_kw",
            json!([DB, ADMIN_UID, "admin", model, method, args, kwargs]),
        )
        .await
    }

    /// `object.execute_kw` as admin, expecting a result.
    pub async fn ok(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        let resp = self.execute_kw(model, method, args, kwargs).await;
        assert!(resp.get("error").is_none(), "unexpected error: {resp}");
        resp["result"].clone()
    }

    /// `object.execute_kw` as admin, expecting an error; returns `error`.
    pub async fn err(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        let resp = self.execute_kw(model, method, args, kwargs).await;
        assert!(resp.get("result").is_none(), "unexpected result: {resp}");
        resp["error"].clone()
    }

    /// `POST /json/2/{model}/{method}` with a bearer key; returns the raw response.
    pub async fn json2_raw(&self, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/json/2/{path}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-odoo-database", DB)
            .body(body.to_string());
        if let Some(key) = key {
            req = req.header("authorization", format!("bearer {key}"));
        }
        req.send().await.unwrap()
    }

    /// `POST /json/2/{model}/{method}` as admin; returns (status, JSON body).
    pub async fn json2(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.json2_raw(path, Some(API_KEY), body).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `POST /json/2/{model}/{method}` as admin, expecting 200; returns the result.
    pub async fn json2_ok(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.json2(path, body).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    /// `POST /_sandbox/odoo/seed`; returns (status, JSON body).
    pub async fn seed(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/_sandbox/odoo/seed", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `POST /_sandbox/odoo/faults`; returns (status, JSON body).
    pub async fn fault(&self, rule: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/_sandbox/odoo/faults", self.base))
            .json(&rule)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

/// Asserts the JSON-2 error shape and returns the body.
pub fn assert_json2_error(status: u16, body: &Value, expected_status: u16, name: &str) -> Value {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["name"], name, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["arguments"].is_array(), "{body}");
    assert_eq!(body["context"], json!({}), "{body}");
    assert!(body["debug"]
        .as_str()
        .unwrap()
        .starts_with("Traceback (most recent call last):"));
    body.clone()
}

/// Asserts the Odoo JSON-RPC server error shape and returns `error.data`.
pub fn assert_odoo_error(error: &Value, name: &str) -> Value {
    assert_eq!(error["code"], 200, "{error}");
    assert_eq!(error["message"], "Odoo Server Error", "{error}");
    let data = &error["data"];
    assert_eq!(data["name"], name, "{error}");
    assert!(data["debug"]
        .as_str()
        .unwrap()
        .starts_with("Traceback (most recent call last):"));
    assert!(data["message"].is_string());
    assert!(data["arguments"].is_array());
    assert_eq!(data["context"], json!({}));
    data.clone()
}
