//! The Zoho sandbox as a client sees it: Accounts over a real listener, and each product's
//! API driven through the router (`tower::ServiceExt::oneshot`) with tokens minted by the
//! kit's admin routes and time moved on the sandbox clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod accounts;
mod books;
mod desk;
mod inventory;
mod mail;
mod notifications;
mod people;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    body::Body,
    http::{Method, Request},
    Router,
};
use bac_sandbox_kit::SandboxClock;
use bac_sandbox_zoho::{router, ZohoSandboxConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The EU data centre is the second of the default list: its number is 2.
pub const BOOKS_ORG: &str = "600020000101";
pub const DESK_ORG: &str = "700020001";
pub const DESK_DEPT: &str = "90002000000001";
pub const MAIL_ACCOUNT: &str = "2560200000001";

pub struct Sandbox {
    app: Router,
    pub clock: SandboxClock,
    grants: AtomicU64,
}

/// An answer: its status and its JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox::with(ZohoSandboxConfig::default())
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::default()
    }

    pub fn with(cfg: ZohoSandboxConfig) -> Sandbox {
        let clock = SandboxClock::default();
        Sandbox {
            app: router(&cfg, "http://sandbox.test", clock.clone()),
            clock,
            grants: AtomicU64::new(0),
        }
    }

    /// An EU access token granted `scope`: a refresh grant registered through the kit's
    /// admin route, then redeemed at the token endpoint.
    pub async fn token(&self, scope: &str) -> String {
        let n = self.grants.fetch_add(1, Ordering::Relaxed);
        let refresh = format!("rt-{n}");
        let a = self
            .send(
                Method::POST,
                "/eu/_sandbox/oauth/grants",
                &[],
                Some(
                    json!({"client_id": "c", "refresh_token": refresh, "scope": scope,
                            "subject": "admin@sandbox.zoho"})
                    .to_string(),
                ),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let req = Request::post("/eu/oauth/v2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "grant_type=refresh_token&client_id=c&refresh_token={refresh}"
            )))
            .unwrap();
        let a = self.run(req).await;
        a.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{a:?}"))
            .to_string()
    }

    async fn run(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Answer { status, body }
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        self.run(req.body(Body::from(body.unwrap_or_default())).unwrap())
            .await
    }

    /// A call with `Authorization: Zoho-oauthtoken <token>` (and `extra` headers).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        extra: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let auth = format!("Zoho-oauthtoken {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        self.send(method, uri, &headers, body).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, token, &[], None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, token, &[], Some(body.to_string()))
            .await
    }

    /// `POST /eu/_sandbox/zoho/apps/<resource>`.
    pub async fn seed(&self, resource: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            &format!("/eu/_sandbox/zoho/apps/{resource}"),
            &[],
            Some(body.to_string()),
        )
        .await
    }
}

/// Every product call spends a credit of the data centre's organisation; the admin routes
/// do not.
#[tokio::test]
async fn product_calls_spend_credits_and_admin_calls_do_not() {
    let s = Sandbox::with(ZohoSandboxConfig {
        credits_per_window: Some(2),
        ..ZohoSandboxConfig::default()
    });
    let t = s
        .token("ZohoBooks.fullaccess.all,Desk.basic.READ,ZohoMail.accounts.READ")
        .await;
    assert_eq!(s.get("/eu/books/v3/organizations", &t).await.status, 200);
    let a = s.seed("books_contacts", json!({"count": 3})).await;
    assert_eq!(a.body["created"], 3, "{a:?}");
    assert_eq!(s.get("/eu/desk/api/v1/organizations", &t).await.status, 200);
    let a = s.get("/eu/mail/api/accounts", &t).await;
    assert_eq!(a.status, 429, "{a:?}");
    // a refused token spends nothing
    assert_eq!(
        s.get("/eu/books/v3/organizations", "nope").await.status,
        401
    );
    let credits = s
        .send(Method::GET, "/eu/_sandbox/zoho/credits", &[], None)
        .await;
    assert_eq!(
        (&credits.body["used"], &credits.body["refused"]),
        (&json!(2), &json!(1))
    );
}
