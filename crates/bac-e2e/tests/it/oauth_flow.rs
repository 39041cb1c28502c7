//! OAuth's authorisation-code flow (issue 14, "Connecting"). The gateway's callback is public:
//! its state is the credential, so a missing, made-up or spent state changes nothing and a
//! provider's refusal is said as such. A connection of an integration that is not OAuth has
//! nothing to authorise.
use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::Value;

async fn callback(fleet: &Fleet, query: &str) -> (u16, Value) {
    let resp = fleet
        .http
        .get(format!(
            "{}/api/v1/integrations/oauth/callback?{query}",
            fleet.api
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_without_a_started_authorisation_changes_nothing() {
    let fleet = Fleet::start().await;
    for query in [
        "code=1000.abc",
        "state=made-up&code=1000.abc",
        "state=made-up&error=access_denied",
        &format!("state={}&code=x", "s".repeat(300)),
    ] {
        let (status, body) = callback(&fleet, query).await;
        assert_eq!(status, 404, "{query}: {body}");
        assert_eq!(body["details"]["error_code"], "NOT_FOUND", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("state"),
            "{query}: {body}"
        );
    }
    let (_, audit) = fleet
        .call(Method::GET, "/api/v1/integrations/audit", None)
        .await;
    assert!(
        !audit.to_string().contains("connection.authorized"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_odoo_connection_has_nothing_to_authorise() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    assert!(conn.get("authorization_url").is_none(), "{conn}");
    let id = conn["id"].as_str().unwrap();
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("OAuth"),
        "{body}"
    );
    // another tenant's id is not found
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet
        .call_as(
            &other,
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

mod kit {
    //! The kit's half against real Postgres and Vault and the sandbox kit's authorisation
    //! server (Zoho's dialect: errors with HTTP 200, a refresh token only for offline access,
    //! `location` and `accounts-server` on the redirect).
    use std::{collections::HashMap, sync::Arc};

    use bac_connector::{
        calls,
        oauth::{Authorization, OAuthFlow},
        Calls, Checked, Connector, Grant, IntegrationApi, TokenGrant, TokenSource, Webhook,
        WebhookInput,
    };
    use bac_e2e::{fresh_database, Vault};
    use bac_proto::integration::v1::{
        integration_service_server::IntegrationService, BeginAuthorizationRequest,
        CompleteAuthorizationRequest,
    };
    use bac_runtime::{
        connections::{self, ConnectionRecord, ConnectionStore},
        db,
        upstream::{EgressPolicy, RetryPolicy, UpstreamClient},
        vault::{self, Secret},
        ErrorCode, RequestContext, ServiceError,
    };
    use bac_sandbox_kit::{OAuthConfig, OAuthServer, SandboxClock};
    use secrecy::{ExposeSecret, SecretString};
    use serde_json::{json, Map, Value};

    const TENANT: &str = "t_oauth";
    const REDIRECT: &str = "https://bac.test/api/v1/integrations/oauth/callback";

    /// A Zoho-shaped OAuth connector: settings say the client, the sandbox is the accounts
    /// server, the callback's accounts server is believed only if it is that one.
    struct TestConnector {
        accounts: String,
    }

    impl OAuthFlow for TestConnector {
        fn authorization(&self, _settings: &Value) -> Result<Authorization, ServiceError> {
            Ok(Authorization {
                authorize_url: format!("{}/oauth/v2/auth", self.accounts),
                scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.org.READ".into()],
                scope_separator: ",",
                params: vec![
                    ("access_type".into(), "offline".into()),
                    ("prompt".into(), "consent".into()),
                ],
            })
        }

        fn token_url(
            &self,
            _settings: &Value,
            callback: &HashMap<String, String>,
        ) -> Result<String, ServiceError> {
            match callback.get("accounts-server") {
                Some(s) if *s != self.accounts => Err(ServiceError::new(
                    "zoho",
                    ErrorCode::InvalidRequest,
                    format!("accounts server {s} is not this data centre's"),
                )),
                _ => Ok(format!("{}/oauth/v2/token", self.accounts)),
            }
        }

        fn learnt(&self, token: &bac_connector::AccessToken) -> Map<String, Value> {
            token
                .extra
                .get("api_domain")
                .map(|d| Map::from_iter([("api_domain".to_string(), json!(d))]))
                .unwrap_or_default()
        }
    }

    #[tonic::async_trait]
    impl Connector for TestConnector {
        const KEY: &'static str = "zoho";
        const NAME: &'static str = "Zoho";
        fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
            Ok(config.clone())
        }
        fn secrets(&self, _: &HashMap<String, String>) -> Result<(), ServiceError> {
            Ok(())
        }
        fn configured(&self, _: &ConnectionRecord) -> bool {
            true
        }
        async fn check(&self, _: &ConnectionRecord) -> Result<Checked, ServiceError> {
            Ok(Checked::default())
        }
        fn webhook_entity(&self, _: &str) -> Option<&'static str> {
            None
        }
        async fn webhook(
            &self,
            _: &ConnectionRecord,
            _: &Webhook,
        ) -> Result<WebhookInput, ServiceError> {
            Err(ServiceError::new(
                "zoho",
                ErrorCode::NotImplemented,
                "no webhooks",
            ))
        }
        async fn forget(&self, _: &str) {}
        fn oauth(&self) -> Option<&dyn OAuthFlow> {
            Some(self)
        }
    }

    struct RefreshGrant {
        token_url: String,
    }

    impl TokenGrant for RefreshGrant {
        fn grant(
            &self,
            rec: &ConnectionRecord,
            secret: &Secret,
            _: Option<&str>,
        ) -> Result<Grant, ServiceError> {
            Ok(Grant::RefreshToken {
                token_url: self.token_url.clone(),
                client_id: rec.setting("client_id").to_string(),
                client_secret: secret.data.get("client_secret").cloned(),
                refresh_token: secret.data.get("refresh_token").cloned().ok_or_else(|| {
                    ServiceError::new("zoho", ErrorCode::InvalidCredentials, "no refresh token")
                })?,
                scope: None,
            })
        }
    }

    fn ctx() -> RequestContext {
        RequestContext {
            tenant_id: TENANT.into(),
            principal: "user:usr_1".into(),
            request_id: "req_oauth".into(),
            traceparent: None,
        }
    }

    /// Follows the authorise URL as a browser would, consent included: the redirect's query.
    async fn consent(http: &reqwest::Client, url: &str) -> HashMap<String, String> {
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_kit_redeems_a_code_once_and_keeps_the_refresh_token() {
        let url = fresh_database().await;
        let schema = "zoho_oauth";
        let pool = db::pool(&url, schema, 8).unwrap();
        db::migrate(
            &pool,
            schema,
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
        let vault_client = vault::Vault::new(bao.config()).unwrap();
        bac_runtime::context::load_signing_key(&vault_client)
            .await
            .unwrap();
        let store = ConnectionStore::new(pool.clone(), vault_client.clone(), "zoho");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let accounts = format!("http://{}", listener.local_addr().unwrap());
        let server = OAuthServer::new(
            OAuthConfig {
                errors_with_http_200: true,
                invalid_grant_error: "invalid_code".into(),
                refresh_token_needs_offline: true,
                redirect_extra: vec![
                    ("location".into(), "eu".into()),
                    ("accounts-server".into(), accounts.clone()),
                ],
                extra: Map::from_iter([("api_domain".into(), json!("https://www.zohoapis.eu"))]),
                ..OAuthConfig::default()
            },
            SandboxClock::default(),
        );
        let app = server
            .router(&["/oauth/v2/token"])
            .merge(server.authorize_router("/oauth/v2/auth", "/oauth/v2/token/revoke"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let status = http
            .post(format!("{accounts}/_sandbox/oauth/clients"))
            .json(&json!({"client_id": "1000.CID", "client_secret": "csecret",
                "redirect_uris": [REDIRECT], "user": "ana@example.eu",
                "scopes": ["ZohoCRM.modules.ALL", "ZohoCRM.org.READ"]}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);

        let calls = Calls::new(pool.clone(), "zoho", "Zoho");
        let upstream = UpstreamClient::new(
            "zoho",
            None,
            RetryPolicy::default(),
            EgressPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]),
        );
        let tokens = TokenSource::new(
            "zoho",
            "Zoho",
            pool.clone(),
            vault_client.clone(),
            upstream,
            calls.clone(),
            RefreshGrant {
                token_url: format!("{accounts}/oauth/v2/token"),
            },
        );
        let engine = bac_sync::SyncEngine::new(
            pool.clone(),
            "zoho",
            store.clone(),
            Vec::new(),
            bac_sync::SyncOptions::from_env("zoho"),
        );
        let api = IntegrationApi::new(
            Arc::new(TestConnector {
                accounts: accounts.clone(),
            }),
            pool.clone(),
            store.clone(),
            engine,
            calls,
        )
        .with_tokens(tokens.clone());

        // A connection with its client only: the user authorises it next.
        let id = format!("con_{}", uuid::Uuid::new_v4().simple());
        let rec = store
            .create(
                TENANT,
                &id,
                "Zoho EU",
                json!({"client_id": "1000.CID", "data_center": "eu"}),
                HashMap::from([("client_secret".to_string(), SecretString::from("csecret"))]),
            )
            .await
            .unwrap();
        let verifier = "a-verifier-of-forty-three-characters-or-more-0123";
        let challenge = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
        };
        let begin = |state: &str| BeginAuthorizationRequest {
            connection_id: id.clone(),
            state: state.into(),
            code_challenge: challenge.clone(),
            redirect_uri: REDIRECT.into(),
        };
        let started = api
            .begin_authorization(ctx().request(begin("st-1")))
            .await
            .unwrap()
            .into_inner();
        assert!(started
            .authorization_url
            .contains("code_challenge_method=S256"));
        assert!(started.authorization_url.contains("access_type=offline"));
        let back = consent(&http, &started.authorization_url).await;
        assert_eq!(back["state"], "st-1");
        assert_eq!(back["location"], "eu");
        let complete = |code: &str, verifier: &str| CompleteAuthorizationRequest {
            connection_id: id.clone(),
            code: code.into(),
            code_verifier: verifier.into(),
            redirect_uri: REDIRECT.into(),
            callback: back
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "code" | "state"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };

        // A wrong verifier: refused, nothing stored (and the code is spent).
        let err = api
            .complete_authorization(ctx().request(complete(&back["code"], "not-the-verifier")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("authorisation code"), "{err:?}");
        let secret = vault_client
            .read(&vault::Vault::connection_path(TENANT, "zoho", &id))
            .await
            .unwrap()
            .unwrap();
        assert!(!secret.data.contains_key("refresh_token"));

        // Consent again, the right verifier: the refresh token is in Vault, never answered.
        let started = api
            .begin_authorization(ctx().request(begin("st-2")))
            .await
            .unwrap()
            .into_inner();
        let back2 = consent(&http, &started.authorization_url).await;
        let done = api
            .complete_authorization(ctx().request(complete(&back2["code"], verifier)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            done.granted_scopes,
            vec!["ZohoCRM.modules.ALL", "ZohoCRM.org.READ"]
        );
        let conn = done.connection.unwrap();
        assert!(conn.secret_fields.contains(&"refresh_token".to_string()));
        assert!(
            !format!("{conn:?}").contains("sbx_rt_"),
            "no token in the answer"
        );
        let rec2 = store.get(TENANT, &id).await.unwrap();
        assert_eq!(rec2.config["api_domain"], "https://www.zohoapis.eu");
        assert_eq!(
            rec2.config["granted_scopes"],
            json!(["ZohoCRM.modules.ALL", "ZohoCRM.org.READ"])
        );
        let secret = vault_client
            .read(&vault::Vault::connection_path(TENANT, "zoho", &id))
            .await
            .unwrap()
            .unwrap();
        assert!(secret.data["refresh_token"]
            .expose_secret()
            .starts_with("sbx_rt_"));
        assert_eq!(secret.data["client_secret"].expose_secret(), "csecret");

        // The stored refresh token works: the token source refreshes with it.
        let token = tokens.token(&rec2, None).await.unwrap();
        let who: Value = http
            .get(format!("{accounts}/_sandbox/oauth/userinfo"))
            .bearer_auth(token.value.expose_secret())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(who["subject"], "ana@example.eu");

        // The code again (a replayed callback): refused, never resent upstream more than once.
        let err = api
            .complete_authorization(ctx().request(complete(&back2["code"], verifier)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        // A callback naming another accounts server is not believed.
        let mut forged = complete("whatever", verifier);
        forged.callback.insert(
            "accounts-server".into(),
            "https://accounts.evil.example".into(),
        );
        let err = api
            .complete_authorization(ctx().request(forged))
            .await
            .unwrap_err();
        assert!(err.message().contains("not this data centre"), "{err:?}");
        let stats: Value = http
            .get(format!("{accounts}/_sandbox/oauth/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["code_exchanges"], 3, "{stats}");
        let _ = rec;
    }
}
