//! Test harness: a spawned sandbox and a tiny JSON-RPC client.

use std::net::SocketAddr;

use bac_sandbox::{spawn_odoo, OdooSandboxConfig};
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
    let cfg = OdooSandboxConfig {
        users: vec![
            ("admin".into(), "admin".into()),
            ("bob@example.com".into(), "bob-api-key".into()),
        ],
        ..OdooSandboxConfig::default()
    };
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
