//! The kit's token sources against real Postgres (advisory lock, call log, outbox), real
//! Vault (check-and-set) and the sandbox kit's OAuth server: one refresh across replicas with a
//! rotated refresh token kept, refresh ahead of expiry on the injected clock, "401 -> refresh
//! once -> retry", a revoked grant turning the status to error with an audit entry, and
//! service-account tokens per subject.
use std::{collections::HashMap, sync::Arc};

use bac_connector::{
    calls::{self, SyncFacts},
    Calls, Grant, TokenGrant, TokenSource,
};
use bac_e2e::{fresh_database, Vault};
use bac_runtime::{
    clock::ManualClock,
    connections::{self, ConnectionRecord, ConnectionStore},
    db::{self, Pool},
    upstream::{EgressPolicy, RetryPolicy, UpstreamClient},
    vault::{self, Secret},
    ErrorCode, ServiceError,
};
use bac_sandbox_kit::{OAuthConfig, OAuthServer, SandboxClock};
use chrono::{Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

const TENANT: &str = "t_tokens";
const SCHEMA: &str = "zoho_tokens";

/// A Zoho-shaped connector's grant: client id in the settings, the rest in the secret.
struct RefreshGrant {
    token_url: String,
}

impl TokenGrant for RefreshGrant {
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &Secret,
        _subject: Option<&str>,
    ) -> Result<Grant, ServiceError> {
        let field = |k: &str| {
            secret.data.get(k).cloned().ok_or_else(|| {
                ServiceError::new("zoho", ErrorCode::InvalidCredentials, format!("no {k}"))
            })
        };
        Ok(Grant::RefreshToken {
            token_url: self.token_url.clone(),
            client_id: rec.setting("client_id").to_string(),
            client_secret: Some(field("client_secret")?),
            refresh_token: field("refresh_token")?,
            scope: None,
        })
    }
}

/// A Google-shaped service account acting for a user of the domain.
struct AccountGrant {
    token_url: String,
    scopes: Vec<String>,
}

impl TokenGrant for AccountGrant {
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &Secret,
        subject: Option<&str>,
    ) -> Result<Grant, ServiceError> {
        Ok(Grant::JwtBearer {
            token_url: self.token_url.clone(),
            issuer: rec.setting("client_email").to_string(),
            key_id: None,
            private_key: secret.data["private_key"].clone(),
            scopes: self.scopes.clone(),
            subject: subject.map(str::to_string),
        })
    }
}

struct Kit {
    bao: Vault,
    pool: Pool,
    store: ConnectionStore,
    calls: Calls,
    sandbox: String,
    clock: ManualClock,
    http: reqwest::Client,
}

fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
        .collect()
}

impl Kit {
    async fn start(oauth: OAuthConfig) -> Kit {
        let url = fresh_database().await;
        let pool = db::pool(&url, SCHEMA, 8).unwrap();
        db::migrate(
            &pool,
            SCHEMA,
            &[
                connections::MIGRATION,
                connections::NOTIFY_MIGRATION,
                calls::MIGRATION,
                calls::MESSAGE_MIGRATION,
            ],
        )
        .await
        .unwrap();
        let bao = Vault::get();
        let store = ConnectionStore::new(
            pool.clone(),
            vault::Vault::new(bao.config()).unwrap(),
            "zoho",
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = format!("http://{}", listener.local_addr().unwrap());
        let app =
            OAuthServer::new(oauth, SandboxClock::default()).router(&["/oauth/v2/token", "/token"]);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Kit {
            bao,
            calls: Calls::new(pool.clone(), "zoho", "Zoho"),
            pool,
            store,
            sandbox,
            clock: ManualClock::new(Utc::now()),
            http: reqwest::Client::new(),
        }
    }

    /// A replica's token source: its own Vault client and caches, the shared clock.
    fn replica(&self, grant: impl TokenGrant) -> TokenSource {
        let upstream = UpstreamClient::new(
            "zoho",
            None,
            RetryPolicy::default(),
            EgressPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]),
        );
        TokenSource::new(
            "zoho",
            "Zoho",
            self.pool.clone(),
            vault::Vault::new(self.bao.config()).unwrap(),
            upstream,
            self.calls.clone(),
            grant,
        )
        .with_timing(
            Arc::new(self.clock.clone()),
            Duration::seconds(300),
            Duration::seconds(60),
        )
    }

    fn refresh_grant(&self) -> RefreshGrant {
        RefreshGrant {
            token_url: format!("{}/oauth/v2/token", self.sandbox),
        }
    }

    async fn admin(&self, path: &str, body: Value) -> u16 {
        self.http
            .post(format!("{}/_sandbox/oauth/{path}", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sandbox/oauth/stats", self.sandbox))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A Zoho-like connection whose refresh token the sandbox knows.
    async fn connection(&self, refresh_token: &str) -> ConnectionRecord {
        assert_eq!(
            self.admin(
                "grants",
                json!({"client_id": "cid", "client_secret": "csecret", "refresh_token": refresh_token, "scope": "ZohoCRM.modules.ALL"}),
            )
            .await,
            201
        );
        let id = format!("con_{}", uuid::Uuid::new_v4().simple());
        self.store
            .create(
                TENANT,
                &id,
                "Zoho EU",
                json!({"client_id": "cid"}),
                secrets(&[
                    ("client_secret", "csecret"),
                    ("refresh_token", refresh_token),
                ]),
            )
            .await
            .unwrap()
    }

    async fn stored(&self, rec: &ConnectionRecord) -> Value {
        self.bao
            .read(&vault::Vault::connection_path(TENANT, "zoho", &rec.id))
            .await
            .unwrap()
    }

    /// Calls the sandbox's protected resource as a provider client would.
    async fn userinfo(&self, bearer: &str) -> Result<Value, ServiceError> {
        let resp = self
            .http
            .get(format!("{}/_sandbox/oauth/userinfo", self.sandbox))
            .header("authorization", bearer)
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => Ok(resp.json().await.unwrap()),
            401 => Err(ServiceError::new(
                "zoho",
                ErrorCode::InvalidCredentials,
                "the access token was refused",
            )),
            s => panic!("userinfo answered {s}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_refresh_once_and_keep_the_rotated_refresh_token() {
    let mut extra = serde_json::Map::new();
    extra.insert("api_domain".into(), json!("https://www.zohoapis.eu"));
    let kit = Kit::start(OAuthConfig {
        rotate_refresh_tokens: true,
        refresh_limit: Some((10, 600)),
        errors_with_http_200: true,
        extra,
        ..OAuthConfig::default()
    })
    .await;
    let rec = kit.connection("rt-first").await;
    let (a, b) = (
        kit.replica(kit.refresh_grant()),
        kit.replica(kit.refresh_grant()),
    );
    // Twenty calls at once on two replicas: one refresh.
    let calls = (0..20).map(|i| {
        let (source, rec) = (if i % 2 == 0 { a.clone() } else { b.clone() }, rec.clone());
        tokio::spawn(async move { source.token(&rec, None).await })
    });
    let tokens: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(kit.stats().await["refreshes"], 1, "{}", kit.stats().await);
    let first = tokens[0].value.expose_secret().to_string();
    assert!(tokens.iter().all(|t| t.value.expose_secret() == first));
    assert_eq!(
        tokens[0].extra.get("api_domain").map(String::as_str),
        Some("https://www.zohoapis.eu")
    );
    assert!(
        !format!("{:?}", tokens[0]).contains(&first),
        "Debug shows no token"
    );
    // The rotated refresh token replaced the old one in Vault, beside the access token.
    let stored = kit.stored(&rec).await;
    let rotated = stored["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, "rt-first");
    assert_eq!(stored["bac_token.access"], first.as_str());
    assert_eq!(stored["client_secret"], "csecret");

    // Past the refresh point the other replica refreshes, with the rotated token.
    kit.clock.advance(Duration::seconds(3400));
    let next = b.token(&rec, None).await.unwrap();
    assert_ne!(next.value.expose_secret(), first);
    assert_eq!(kit.stats().await["refreshes"], 2);
    // ... and the first replica takes that token from Vault instead of refreshing again.
    let same = a.token(&rec, None).await.unwrap();
    assert_eq!(same.value.expose_secret(), next.value.expose_secret());
    assert_eq!(kit.stats().await["refreshes"], 2);
    let info = kit.userinfo(&same.bearer()).await.unwrap();
    assert_eq!(info["scope"], "ZohoCRM.modules.ALL");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refreshed_ahead_of_expiry_and_once_after_a_refusal() {
    let kit = Kit::start(OAuthConfig::default()).await;
    let rec = kit.connection("rt-ahead").await;
    let source = kit.replica(kit.refresh_grant());
    let first = source.token(&rec, None).await.unwrap();
    // Well inside its hour: the cached token, no request.
    kit.clock.advance(Duration::seconds(3000));
    let again = source.token(&rec, None).await.unwrap();
    assert_eq!(again.value.expose_secret(), first.value.expose_secret());
    assert_eq!(kit.stats().await["token_requests"], 1);
    // Within five minutes (plus jitter) of expiry: refreshed before any call fails.
    kit.clock.advance(Duration::seconds(301));
    let ahead = source.token(&rec, None).await.unwrap();
    assert_ne!(ahead.value.expose_secret(), first.value.expose_secret());
    assert_eq!(kit.stats().await["refreshes"], 2);

    // The upstream expires every token early: the call is refused once, refreshed, retried.
    assert_eq!(kit.admin("expire", json!({})).await, 200);
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let info = source
        .authorized(&rec, None, |t| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let kit = &kit;
            async move { kit.userinfo(&t.bearer()).await }
        })
        .await
        .unwrap();
    assert_eq!(info["scope"], "ZohoCRM.modules.ALL");
    assert_eq!(attempts.into_inner(), 2);
    assert_eq!(kit.stats().await["refreshes"], 3);
    // A call that keeps being refused is retried once only.
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let err = source
        .authorized(&rec, None, |_| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let kit = &kit;
            async move { kit.userinfo("Bearer nonsense").await }
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    assert_eq!(attempts.into_inner(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_stops_calls_sets_the_status_and_is_audited_until_reconnected() {
    // Zoho's dialect: errors with HTTP 200, a dead refresh token is `invalid_code`.
    let kit = Kit::start(OAuthConfig {
        errors_with_http_200: true,
        invalid_grant_error: "invalid_code".into(),
        ..OAuthConfig::default()
    })
    .await;
    let rec = kit.connection("rt-revoked").await;
    let source = kit.replica(kit.refresh_grant());
    source.token(&rec, None).await.unwrap();
    assert_eq!(
        kit.admin("revoke", json!({"refresh_token": "rt-revoked"}))
            .await,
        200
    );
    kit.clock.advance(Duration::seconds(3500));
    let err = source.token(&rec, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials, "{err}");
    assert!(err.message.contains("invalid_code"), "{err}");
    assert!(
        err.suggestion.as_deref().unwrap().contains("Reconnect"),
        "{err:?}"
    );
    let asked = kit.stats().await["token_requests"].as_u64().unwrap();
    // Every replica now fails at once, without asking Zoho again.
    let other = kit.replica(kit.refresh_grant());
    assert_eq!(
        other.token(&rec, None).await.unwrap_err().code,
        ErrorCode::InvalidCredentials
    );
    assert_eq!(kit.stats().await["token_requests"], asked);

    // The status says so, with the sentence.
    let status = kit
        .calls
        .status(
            TENANT,
            std::slice::from_ref(&rec),
            |_| true,
            SyncFacts::default(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(status.status, "error", "{status:?}");
    assert!(status.reason.contains("Reconnect"), "{}", status.reason);
    assert_eq!(status.configuration_valid, Some(false));
    // One audit entry, through the outbox, naming no secret.
    let client = kit.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT topic, convert_from(payload, 'UTF8') FROM outbox WHERE topic = 'bac.integrations.audit.v1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let audit: Value = serde_json::from_str(rows[0].get::<_, &str>(1)).unwrap();
    assert_eq!(audit["action"], "connection.authorization_revoked");
    assert_eq!(audit["actor"], "service:zoho");
    assert_eq!(audit["target_id"], rec.id.as_str());
    assert_eq!(audit["diff"]["reason"], "invalid_code");
    assert!(!audit.to_string().contains("rt-revoked"));
    assert!(!audit.to_string().contains("csecret"));

    // New credentials (a reconnect) replace the mark: calls work again.
    assert_eq!(
        kit.admin(
            "grants",
            json!({"client_id": "cid", "client_secret": "csecret", "refresh_token": "rt-new", "scope": "ZohoCRM.modules.ALL"}),
        )
        .await,
        201
    );
    let (rec, changed) = kit
        .store
        .update(
            TENANT,
            &rec.id,
            None,
            None,
            Some(secrets(&[
                ("client_secret", "csecret"),
                ("refresh_token", "rt-new"),
            ])),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        vec!["refresh_token"],
        "the fleet's own fields are not the user's change"
    );
    source.forget(TENANT, &rec.id);
    let token = source.token(&rec, None).await.unwrap();
    assert!(kit.userinfo(&token.bearer()).await.is_ok());
    // A user cannot write the fleet's fields.
    let err = kit
        .store
        .update(
            TENANT,
            &rec.id,
            None,
            None,
            Some(secrets(&[
                ("refresh_token", "x"),
                ("bac_token.revoked", "no"),
            ])),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_gets_a_token_per_subject_and_clear_refusals() {
    let kit = Kit::start(OAuthConfig::default()).await;
    let public = include_str!("../keys/service-account-test.pub.pem");
    assert_eq!(
        kit.admin(
            "accounts",
            json!({"client_email": "sync@project.iam.example", "public_key_pem": public, "scopes": ["calendar", "drive"]}),
        )
        .await,
        201
    );
    let rec = account(&kit, include_str!("../keys/service-account-test.pem")).await;
    let grant = |scopes: &[&str]| AccountGrant {
        token_url: format!("{}/token", kit.sandbox),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    let source = kit.replica(grant(&["calendar"]));
    let alice = source.token(&rec, Some("alice@example.com")).await.unwrap();
    let bob = source.token(&rec, Some("bob@example.com")).await.unwrap();
    assert_eq!(
        kit.userinfo(&alice.bearer()).await.unwrap()["subject"],
        "alice@example.com"
    );
    assert_eq!(
        kit.userinfo(&bob.bearer()).await.unwrap()["subject"],
        "bob@example.com"
    );
    // Cached per subject.
    source.token(&rec, Some("alice@example.com")).await.unwrap();
    assert_eq!(kit.stats().await["jwt_grants"], 2);

    // A scope the account may not have, and a key the provider does not know.
    let err = kit
        .replica(grant(&["gmail"]))
        .token(&rec, Some("alice@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UpstreamRejected, "{err}");
    assert!(err.message.contains("invalid_scope"), "{err}");
    let stranger = account(&kit, include_str!("../keys/other-test.pem")).await;
    let err = source
        .token(&stranger, Some("alice@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials, "{err}");
    assert!(err.message.contains("assertion"), "{err}");
}

/// A service-account connection holding `key`.
async fn account(kit: &Kit, key: &str) -> ConnectionRecord {
    let id = format!("con_{}", uuid::Uuid::new_v4().simple());
    kit.store
        .create(
            TENANT,
            &id,
            "Workspace",
            json!({"client_email": "sync@project.iam.example"}),
            secrets(&[("private_key", key)]),
        )
        .await
        .unwrap()
}
