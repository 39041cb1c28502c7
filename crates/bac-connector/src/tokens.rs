//! Token sources: the access token an upstream call carries, obtained once and shared.
//!
//! A connector says how a connection gets a token ([`Grant`]: an OAuth 2.0 refresh token, or a
//! service account's signed JWT) and asks [`TokenSource::token`] before each call, or runs the
//! call through [`TokenSource::authorized`], which refreshes once and retries when the upstream
//! refuses the token. What the kit guarantees, because this is where hubs break in public:
//!
//! - **One refresh at a time, across replicas.** A refresh token's access token is kept in the
//!   connection's Vault secret (`bac_token.*` fields) and refreshed under a Postgres advisory
//!   lock; a replica that waited finds the new token there instead of refreshing again. Zoho,
//!   for one, allows ten refreshes per refresh token in ten minutes.
//! - **A rotated refresh token is never lost**: it is written back with check-and-set on the
//!   version read under the lock.
//! - **Refreshed ahead of expiry**, by a margin plus jitter, so replicas do not all refresh at
//!   the same second and a call never carries a token that dies in flight.
//! - **A revoked grant stops the calls**: the status turns to `error` with a sentence saying to
//!   reconnect (the failed refresh is in the call log), the connection gets an audit entry on
//!   `bac.integrations.audit.v1`, and later calls fail at once instead of asking the upstream
//!   again, until new credentials replace the old.
//!
//! A service account's tokens (one per subject and scopes), and those of a client's own
//! credentials, stay in each replica's memory:
//! minting one needs no shared state, rotates nothing, and is not rationed per refresh token.
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex},
};

use bac_runtime::{
    clock::{self, Clock},
    connections::{ConnectionRecord, FLEET_FIELD_PREFIX},
    db::{self, Pool},
    events::CloudEvent,
    outbox,
    upstream::{QuotaKey, UpstreamClient, UpstreamError, UpstreamRequest},
    vault::{Secret, Vault, VaultError},
    ErrorCode, ServiceError,
};
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use crate::Calls;

/// The topic of the platform's audit trail (the gateway writes most of its entries).
pub const AUDIT_TOPIC: &str = "bac.integrations.audit.v1";

/// How a connection obtains its access token.
#[derive(Clone)]
pub enum Grant {
    /// OAuth 2.0 refresh token (RFC 6749 §6).
    RefreshToken {
        token_url: String,
        client_id: String,
        /// `None` for a public client.
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
        /// Scopes to ask for; `None` keeps the grant's own.
        scope: Option<String>,
    },
    /// A service account's RS256 assertion (RFC 7523), e.g. Google's domain-wide delegation.
    JwtBearer {
        token_url: String,
        /// The account (`client_email`): the assertion's issuer.
        issuer: String,
        /// The account's key id, sent as the JWT header's `kid` where known.
        key_id: Option<String>,
        /// PKCS#8 PEM private key.
        private_key: SecretString,
        scopes: Vec<String>,
        /// The user the account acts as (`sub`), if any.
        subject: Option<String>,
    },
    /// The client's own credentials (RFC 6749 §4.4): Microsoft's Bot Framework gives a bot its
    /// token for the connector service this way. Minted like a service account's token.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        scope: String,
    },
    /// An authorisation code a user's consent gave (RFC 6749 §4.1.3, PKCE RFC 7636), redeemed
    /// once by [`TokenSource::redeem`]; never what [`TokenGrant::grant`] answers.
    AuthorizationCode {
        token_url: String,
        client_id: String,
        client_secret: Option<SecretString>,
        code: SecretString,
        code_verifier: Option<SecretString>,
        redirect_uri: String,
    },
}

impl Grant {
    fn token_url(&self) -> &str {
        match self {
            Grant::RefreshToken { token_url, .. }
            | Grant::JwtBearer { token_url, .. }
            | Grant::ClientCredentials { token_url, .. }
            | Grant::AuthorizationCode { token_url, .. } => token_url,
        }
    }
}

/// What a connector tells the kit about its tokens.
pub trait TokenGrant: Send + Sync + 'static {
    /// The grant of `rec` from its settings and stored secret; `subject` is the user a service
    /// account acts as, where the connector asks for one.
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &Secret,
        subject: Option<&str>,
    ) -> Result<Grant, ServiceError>;

    /// The quota unit the token endpoint counts, where the provider counts one.
    fn quota(&self, _rec: &ConnectionRecord) -> Option<QuotaKey> {
        None
    }
}

/// An access token and what came with it.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Non-standard fields of the token answer the provider means for later calls (Zoho's
    /// `api_domain`), as strings.
    pub extra: BTreeMap<String, String>,
    /// The scopes granted, as the answer wrote them (empty when it did not say).
    pub scope: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value.expose_secret())
    }

    fn same(&self, other: &AccessToken) -> bool {
        self.value.expose_secret() == other.value.expose_secret()
    }
}

/// Fields of the connection's secret the kit writes.
const ACCESS: &str = "bac_token.access";
const ISSUED_AT: &str = "bac_token.issued_at";
const EXPIRES_AT: &str = "bac_token.expires_at";
const REVOKED: &str = "bac_token.revoked";
const EXTRA: &str = "bac_token.extra.";

/// How long before expiry a token is refreshed, and the most jitter added to that.
const AHEAD: i64 = 300;
const JITTER: i64 = 60;

/// Check-and-set conflicts tolerated in one refresh (credentials replaced meanwhile).
const CAS_ATTEMPTS: usize = 3;

struct Cached {
    token: AccessToken,
    refresh_at: DateTime<Utc>,
}

/// One service's token source: the connector's [`TokenGrant`], a cache, the refresh.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    integration: &'static str,
    name: &'static str,
    db: Pool,
    vault: Vault,
    upstream: UpstreamClient,
    calls: Calls,
    grant: Box<dyn TokenGrant>,
    clock: Arc<dyn Clock>,
    ahead: Duration,
    jitter: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// One refresh per key in this process; the advisory lock serialises replicas.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why a token endpoint said no.
enum Refused {
    /// The grant is gone (revoked, expired, replaced): only new credentials help.
    Revoked(String),
    Failed(ServiceError),
}

impl TokenSource {
    /// `integration` and `name` as in [`Calls::new`]; the refresh is recorded in `calls` as
    /// the operation `token_refresh`.
    pub fn new(
        integration: &'static str,
        name: &'static str,
        db: Pool,
        vault: Vault,
        upstream: UpstreamClient,
        calls: Calls,
        grant: impl TokenGrant,
    ) -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner {
                integration,
                name,
                db,
                vault,
                upstream,
                calls,
                grant: Box::new(grant),
                clock: clock::system(),
                ahead: Duration::seconds(AHEAD),
                jitter: Duration::seconds(JITTER),
                cache: Mutex::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads time from `clock` (tests) and refreshes `ahead` of expiry plus up to `jitter`.
    pub fn with_timing(mut self, clock: Arc<dyn Clock>, ahead: Duration, jitter: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clock = clock;
            inner.ahead = ahead;
            inner.jitter = jitter;
        }
        self
    }

    /// A token for `rec` (acting as `subject`, for a service account) that is not due for
    /// refresh.
    pub async fn token(
        &self,
        rec: &ConnectionRecord,
        subject: Option<&str>,
    ) -> Result<AccessToken, ServiceError> {
        self.current(rec, subject, None).await
    }

    /// Runs `call` with a token; when the upstream refuses it (`INVALID_CREDENTIALS`, an HTTP
    /// 401), gets a fresh one and runs `call` once more.
    pub async fn authorized<T, F, Fut>(
        &self,
        rec: &ConnectionRecord,
        subject: Option<&str>,
        call: F,
    ) -> Result<T, ServiceError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let token = self.token(rec, subject).await?;
        match call(token.clone()).await {
            Err(e) if e.code == ErrorCode::InvalidCredentials => {
                tracing::info!(connection = %rec.id, "upstream refused the access token; refreshing once");
                let fresh = self.current(rec, subject, Some(&token)).await?;
                call(fresh).await
            }
            other => other,
        }
    }

    /// Drops what this replica caches for a connection (it changed or went).
    pub fn forget(&self, tenant: &str, connection_id: &str) {
        let prefix = format!("{tenant}/{connection_id}/");
        if let Ok(mut c) = self.inner.cache.lock() {
            c.retain(|k, _| !k.starts_with(&prefix));
        }
        if let Ok(mut f) = self.inner.flights.lock() {
            f.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    fn cached(&self, key: &str, rejected: Option<&AccessToken>) -> Option<AccessToken> {
        let now = self.inner.clock.now();
        let cache = self.inner.cache.lock().ok()?;
        let c = cache.get(key)?;
        (now < c.refresh_at && !rejected.is_some_and(|r| r.same(&c.token))).then(|| c.token.clone())
    }

    /// The earliest moment `token` is due for refresh: `ahead` plus the whole jitter before
    /// expiry, or half-way through the life of a token that lives under twice `ahead`.
    fn due(&self, token: &AccessToken) -> DateTime<Utc> {
        let life = token.expires_at - token.issued_at;
        if life < self.inner.ahead * 2 {
            token.issued_at + life / 2
        } else {
            token.expires_at - self.inner.ahead - self.inner.jitter
        }
    }

    /// Caches `token` until a moment between its due time and `ahead` before expiry, drawn
    /// at random so the replicas of a fleet do not all come due at once.
    fn keep(&self, key: &str, token: &AccessToken) {
        let due = self.due(token);
        let jitter_ms = self.inner.jitter.num_milliseconds().max(0);
        let spread = if jitter_ms > 0 && due < token.expires_at - self.inner.ahead {
            Duration::milliseconds(rand::random::<i64>().rem_euclid(jitter_ms + 1))
        } else {
            Duration::zero()
        };
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.insert(
                key.to_string(),
                Cached {
                    token: token.clone(),
                    refresh_at: due + spread,
                },
            );
        }
    }

    /// Whether a token found in Vault may be handed out instead of refreshing: another
    /// replica's fresh token is; the one this replica is replacing is not.
    fn usable(&self, token: &AccessToken, rejected: Option<&AccessToken>) -> bool {
        self.inner.clock.now() < self.due(token) && !rejected.is_some_and(|r| r.same(token))
    }

    async fn current(
        &self,
        rec: &ConnectionRecord,
        subject: Option<&str>,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, ServiceError> {
        let key = format!("{}/{}/{}", rec.tenant_id, rec.id, subject.unwrap_or(""));
        if let Some(t) = self.cached(&key, rejected) {
            return Ok(t);
        }
        let flight = {
            let mut flights = self
                .inner
                .flights
                .lock()
                .map_err(|_| self.internal("token flights poisoned"))?;
            flights.entry(key.clone()).or_default().clone()
        };
        let _one = flight.lock().await;
        // Another task of this replica may have refreshed while this one waited.
        if let Some(t) = self.cached(&key, rejected) {
            return Ok(t);
        }
        let token = self.obtain(rec, subject, rejected).await?;
        self.keep(&key, &token);
        Ok(token)
    }

    async fn obtain(
        &self,
        rec: &ConnectionRecord,
        subject: Option<&str>,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, ServiceError> {
        let path = Vault::connection_path(&rec.tenant_id, self.inner.integration, &rec.id);
        let secret = self.read(&path).await?;
        if let Some(reason) = secret.data.get(REVOKED) {
            return Err(self.revoked_error(rec, reason.expose_secret()));
        }
        let grant = self.inner.grant.grant(rec, &secret, subject)?;
        if matches!(
            grant,
            Grant::JwtBearer { .. } | Grant::ClientCredentials { .. }
        ) {
            let mint = async {
                self.request(rec, &grant)
                    .await
                    .map(|(t, _)| t)
                    .map_err(|r| match r {
                        Refused::Revoked(reason) => self
                            .err(
                                ErrorCode::InvalidCredentials,
                                format!(
                                    "{} refused the service account's assertion ({reason})",
                                    self.inner.name
                                ),
                            )
                            .suggest(
                                "Check that the account's key still exists and that the account may act for this user (domain-wide delegation)",
                            ),
                        Refused::Failed(e) => e,
                    })
            };
            return self.inner.calls.tracked(rec, "token_mint", mint).await;
        }
        if let Some(t) = stored(&secret).filter(|t| self.usable(t, rejected)) {
            return Ok(t);
        }
        self.refresh(rec, subject, &path, rejected).await
    }

    /// The refresh proper, one replica at a time.
    async fn refresh(
        &self,
        rec: &ConnectionRecord,
        subject: Option<&str>,
        path: &str,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, ServiceError> {
        let mut client = self.inner.db.get().await.map_err(|e| self.internal(e))?;
        let tx = client.transaction().await.map_err(|e| self.internal(e))?;
        let lock = db::lock_key(&format!("token/{}", path));
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
            .await
            .map_err(|e| self.internal(e))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Under the lock: what another replica wrote is here now.
            let secret = self.read(path).await?;
            if let Some(reason) = secret.data.get(REVOKED) {
                return Err(self.revoked_error(rec, reason.expose_secret()));
            }
            if let Some(t) = stored(&secret).filter(|t| self.usable(t, rejected)) {
                return Ok(t);
            }
            let grant = self.inner.grant.grant(rec, &secret, subject)?;
            let answer = self
                .inner
                .calls
                .tracked(rec, "token_refresh", async {
                    self.request(rec, &grant).await.map_err(|r| match r {
                        Refused::Revoked(reason) => self.revoked_error(rec, &reason),
                        Refused::Failed(e) => e,
                    })
                })
                .await;
            let (token, rotated) = match answer {
                Ok(a) => a,
                Err(e) if is_revocation(&e) => {
                    self.mark_revoked(rec, path, &secret, &tx, &e).await;
                    tx.commit().await.map_err(|e| self.internal(e))?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let mut data: HashMap<String, SecretString> = secret
                .data
                .iter()
                .filter(|(k, _)| !k.starts_with(FLEET_FIELD_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(r) = rotated {
                data.insert("refresh_token".into(), r);
            }
            data.insert(ACCESS.into(), token.value.clone());
            data.insert(
                ISSUED_AT.into(),
                SecretString::from(token.issued_at.to_rfc3339()),
            );
            data.insert(
                EXPIRES_AT.into(),
                SecretString::from(token.expires_at.to_rfc3339()),
            );
            for (k, v) in &token.extra {
                data.insert(format!("{EXTRA}{k}"), SecretString::from(v.clone()));
            }
            match self
                .inner
                .vault
                .write(path, &data, Some(secret.version))
                .await
            {
                Ok(_) => {
                    tx.commit().await.map_err(|e| self.internal(e))?;
                    return Ok(token);
                }
                // New credentials replaced the ones this refresh used: use theirs.
                Err(VaultError::CasConflict { .. }) if attempts < CAS_ATTEMPTS => continue,
                Err(e) => return Err(self.vault_error(e)),
            }
        }
    }

    async fn read(&self, path: &str) -> Result<Secret, ServiceError> {
        self.inner
            .vault
            .read(path)
            .await
            .map_err(|e| self.vault_error(e))?
            .ok_or_else(|| {
                ServiceError::new(
                    self.inner.integration,
                    ErrorCode::InvalidCredentials,
                    "the connection's credentials are missing from the secret store",
                )
                .suggest("Create the connection again with its credentials")
            })
    }

    /// Asks the token endpoint; returns the token and a rotated refresh token, if any.
    async fn request(
        &self,
        rec: &ConnectionRecord,
        grant: &Grant,
    ) -> Result<(AccessToken, Option<SecretString>), Refused> {
        let now = self.inner.clock.now();
        let body = self.form(grant, now).map_err(Refused::Failed)?;
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: grant.token_url().to_string(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(body.into_bytes()),
            // Refreshing twice yields two tokens, both valid: safe to resend.
            idempotent: true,
            operation: "oauth/token".into(),
            quota: self.inner.grant.quota(rec),
        };
        let resp = self
            .inner
            .upstream
            .send(&req)
            .await
            .map_err(|e| Refused::Failed(self.upstream_error(e)))?;
        let status = resp.status.as_u16();
        let body: Map<String, Value> = match serde_json::from_slice(&resp.body) {
            Ok(Value::Object(m)) => m,
            _ if status >= 500 => {
                return Err(Refused::Failed(self.unavailable(format!("HTTP {status}"))))
            }
            _ => {
                return Err(Refused::Failed(self.err(
                    ErrorCode::UpstreamRejected,
                    format!(
                        "{}'s token endpoint answered HTTP {status} without a JSON body",
                        self.inner.name
                    ),
                )))
            }
        };
        classify(status, &body, now).map_err(|r| match r {
            Classified::Revoked(e) => Refused::Revoked(e),
            Classified::Limited => Refused::Failed(
                self.err(
                    ErrorCode::UpstreamRateLimited,
                    format!("{} is limiting token requests", self.inner.name),
                )
                .suggest("Retry in a few minutes"),
            ),
            Classified::Unavailable(e) => Refused::Failed(self.unavailable(e)),
            Classified::Client(e) => Refused::Failed(
                self.err(
                    ErrorCode::InvalidCredentials,
                    format!(
                        "{} refused the connection's client credentials ({e})",
                        self.inner.name
                    ),
                )
                .suggest("Check the connection's client id and client secret"),
            ),
            Classified::Other(e) => Refused::Failed(self.err(
                ErrorCode::UpstreamRejected,
                format!(
                    "{}'s token endpoint refused the request ({e})",
                    self.inner.name
                ),
            )),
        })
    }

    /// The token request's form body (kept out of any `await`: the serializer is not `Send`).
    fn form(&self, grant: &Grant, now: DateTime<Utc>) -> Result<String, ServiceError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match grant {
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                scope,
                ..
            } => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh_token.expose_secret())
                    .append_pair("client_id", client_id);
                if let Some(s) = client_secret {
                    form.append_pair("client_secret", s.expose_secret());
                }
                if let Some(s) = scope {
                    form.append_pair("scope", s);
                }
            }
            Grant::AuthorizationCode {
                client_id,
                client_secret,
                code,
                code_verifier,
                redirect_uri,
                ..
            } => {
                form.append_pair("grant_type", "authorization_code")
                    .append_pair("code", code.expose_secret())
                    .append_pair("redirect_uri", redirect_uri)
                    .append_pair("client_id", client_id);
                if let Some(s) = client_secret {
                    form.append_pair("client_secret", s.expose_secret());
                }
                if let Some(v) = code_verifier {
                    form.append_pair("code_verifier", v.expose_secret());
                }
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
                scope,
                ..
            } => {
                form.append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", client_secret.expose_secret())
                    .append_pair("scope", scope);
            }
            Grant::JwtBearer { .. } => {
                let assertion = self.assertion(grant, now)?;
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", &assertion);
            }
        }
        Ok(form.finish())
    }

    fn assertion(&self, grant: &Grant, now: DateTime<Utc>) -> Result<String, ServiceError> {
        let Grant::JwtBearer {
            token_url,
            issuer,
            key_id,
            private_key,
            scopes,
            subject,
        } = grant
        else {
            return Err(self.internal("an assertion is made for a JWT-bearer grant only"));
        };
        let mut claims = json!({
            "iss": issuer,
            "scope": scopes.join(" "),
            "aud": token_url,
            "iat": now.timestamp(),
            "exp": now.timestamp() + 3600,
        });
        if let Some(s) = subject {
            claims["sub"] = json!(s);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid.clone_from(key_id);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
            .map_err(|_| {
            self.err(
                ErrorCode::InvalidCredentials,
                "the service account's private key is not an RSA key in PEM form",
            )
            .suggest("Paste the private_key of the account's JSON key file")
        })?;
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| self.internal(format!("signing the assertion: {e}")))
    }

    /// Redeems an authorisation code ([`Grant::AuthorizationCode`]) for the first access
    /// token and the refresh token, which the caller stores as the connection's credentials
    /// (through the connection store, so the secret's field list stays true). A code is
    /// good once: the exchange is never resent.
    pub async fn redeem(
        &self,
        rec: &ConnectionRecord,
        grant: &Grant,
    ) -> Result<(AccessToken, Option<SecretString>), ServiceError> {
        if !matches!(grant, Grant::AuthorizationCode { .. }) {
            return Err(self.internal("redeem takes an authorisation code"));
        }
        let (token, refresh) = self
            .inner
            .calls
            .tracked(rec, "oauth/code_exchange", async {
                self.request(rec, grant).await.map_err(|r| match r {
                    Refused::Revoked(reason) => self
                        .err(
                            ErrorCode::InvalidRequest,
                            format!(
                                "{} refused the authorisation code ({reason}): it expired, was used already or was given to another client",
                                self.inner.name
                            ),
                        )
                        .suggest("Start the authorisation again"),
                    Refused::Failed(e) => e,
                })
            })
            .await?;
        Ok((token, refresh))
    }

    /// The error of a code exchange that gave no refresh token where one is needed.
    pub fn no_refresh_token(&self) -> ServiceError {
        self.err(
            ErrorCode::UpstreamRejected,
            format!("{} gave no refresh token for offline access", self.inner.name),
        )
        .suggest("Authorise again; if it persists, remove the app's earlier grant in the provider's account settings so it asks for consent anew")
    }

    /// Marks the grant revoked in Vault (so no replica asks again) and audits it.
    async fn mark_revoked(
        &self,
        rec: &ConnectionRecord,
        path: &str,
        secret: &Secret,
        tx: &db::Transaction<'_>,
        e: &ServiceError,
    ) {
        let reason = revocation_reason(e).unwrap_or("invalid_grant").to_string();
        let mut data: HashMap<String, SecretString> = secret
            .data
            .iter()
            .filter(|(k, _)| !k.starts_with(FLEET_FIELD_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        data.insert(REVOKED.into(), SecretString::from(reason.clone()));
        if let Err(err) = self
            .inner
            .vault
            .write(path, &data, Some(secret.version))
            .await
        {
            // New credentials arrived meanwhile, or Vault is down: the next call asks again.
            tracing::warn!(connection = %rec.id, error = %err, "could not mark the grant revoked");
            return;
        }
        let now = Utc::now();
        let id = format!("aud_{}", uuid::Uuid::now_v7().simple());
        let actor = format!("service:{}", self.inner.integration);
        let data = json!({
            "id": id,
            "tenant_id": rec.tenant_id,
            "actor": actor,
            "action": "connection.authorization_revoked",
            "target_type": "connection",
            "target_id": rec.id,
            "diff": {"integration": self.inner.integration, "reason": reason},
            "source_ip": null,
            "user_agent": null,
            "request_id": null,
            "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let event = CloudEvent {
            id: uuid::Uuid::now_v7(),
            source: format!("/bac/{}", self.inner.integration),
            ty: "bac.integrations.audit.connection.authorization_revoked".into(),
            subject: Some(format!("connection/{}", rec.id)),
            time: now,
            tenant_id: rec.tenant_id.clone(),
            connection_id: Some(rec.id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&data).unwrap_or_default(),
            topic: AUDIT_TOPIC.into(),
            key: format!("{}/audit/{id}", rec.tenant_id),
        };
        if let Err(err) = outbox::enqueue(tx, &event).await {
            tracing::error!(connection = %rec.id, error = %err, "could not audit the revoked grant");
        }
        tracing::warn!(connection = %rec.id, tenant = %rec.tenant_id, %reason, "upstream revoked the connection's grant");
    }

    fn revoked_error(&self, rec: &ConnectionRecord, reason: &str) -> ServiceError {
        self.err(
            ErrorCode::InvalidCredentials,
            format!(
                "{} no longer accepts this connection's authorisation ({REVOCATION}{reason}): it was revoked, expired or replaced",
                self.inner.name
            ),
        )
        .suggest(format!(
            "Reconnect connection {}: authorise it again or PATCH /api/v1/integrations/connections/{} with new credentials",
            rec.id, rec.id
        ))
    }

    fn err(&self, code: ErrorCode, msg: impl Into<String>) -> ServiceError {
        ServiceError::new(self.inner.integration, code, msg)
    }

    fn internal(&self, e: impl std::fmt::Display) -> ServiceError {
        ServiceError::internal(self.inner.integration, e)
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> ServiceError {
        self.err(
            ErrorCode::UpstreamUnavailable,
            format!(
                "{}'s token endpoint is unavailable ({what})",
                self.inner.name
            ),
        )
        .suggest("Retry later")
    }

    fn vault_error(&self, e: VaultError) -> ServiceError {
        if e.is_outage() {
            self.err(
                ErrorCode::SecretStoreUnavailable,
                "the secret store is unavailable",
            )
            .suggest("Retry shortly; if it persists, check Vault's health")
        } else {
            self.internal(e)
        }
    }

    fn upstream_error(&self, e: UpstreamError) -> ServiceError {
        match e {
            UpstreamError::RateLimited { retry_after, .. } => self
                .err(
                    ErrorCode::UpstreamRateLimited,
                    format!("{} is limiting token requests", self.inner.name),
                )
                .suggest("Retry in a few minutes")
                .retry_after(retry_after),
            UpstreamError::Timeout { .. } => self.err(
                ErrorCode::ConnectionTimeout,
                format!(
                    "{}'s token endpoint did not answer in time",
                    self.inner.name
                ),
            ),
            UpstreamError::AddressNotAllowed(r) => {
                self.err(ErrorCode::UpstreamAddressNotAllowed, r.to_string())
            }
            other => self.unavailable(other),
        }
    }
}

/// Marks a revocation inside the error's message, so the refresh can tell it apart from
/// refused client credentials (both are `INVALID_CREDENTIALS`).
const REVOCATION: &str = "revoked: ";

fn is_revocation(e: &ServiceError) -> bool {
    e.message.contains(REVOCATION)
}

fn revocation_reason(e: &ServiceError) -> Option<&str> {
    let (_, rest) = e.message.split_once(REVOCATION)?;
    rest.split(')').next()
}

/// The token kept in a connection's secret, if any.
fn stored(secret: &Secret) -> Option<AccessToken> {
    let value = secret.data.get(ACCESS)?.clone();
    let time = |field: &str| {
        DateTime::parse_from_rfc3339(secret.data.get(field)?.expose_secret())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let (issued_at, expires_at) = (time(ISSUED_AT)?, time(EXPIRES_AT)?);
    let extra = secret
        .data
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(EXTRA)
                .map(|name| (name.to_string(), v.expose_secret().to_string()))
        })
        .collect();
    Some(AccessToken {
        value,
        issued_at,
        expires_at,
        extra,
        scope: String::new(),
    })
}

enum Classified {
    Revoked(String),
    Limited,
    Unavailable(String),
    Client(String),
    Other(String),
}

/// Standard token-answer fields; anything else string-valued is the provider's `extra`.
const STANDARD: &[&str] = &[
    "access_token",
    "refresh_token",
    "expires_in",
    "expires_in_sec",
    "token_type",
    "scope",
    "id_token",
];

/// Reads a token endpoint's answer (RFC 6749 §5.1 and §5.2). Some providers (Zoho) answer
/// errors with HTTP 200, so the `error` field decides, not the status.
fn classify(
    status: u16,
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(AccessToken, Option<SecretString>), Classified> {
    if let Some(error) = body.get("error").and_then(Value::as_str) {
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let said = if description.is_empty() {
            error.to_string()
        } else {
            format!("{error}: {description}")
        };
        let lower = said.to_ascii_lowercase();
        return Err(match error {
            // `invalid_code` is Zoho's word for a refresh token it no longer knows.
            "invalid_grant" | "invalid_code" => Classified::Revoked(error.to_string()),
            // Slack: `bad_client_secret`, `invalid_client_id`
            "invalid_client"
            | "unauthorized_client"
            | "invalid_client_secret"
            | "bad_client_secret"
            | "invalid_client_id" => Classified::Client(said),
            "slow_down" | "ratelimited" => Classified::Limited,
            "temporarily_unavailable" | "server_error" => Classified::Unavailable(said),
            _ if status == 429 || lower.contains("too many requests") => Classified::Limited,
            _ if status >= 500 => Classified::Unavailable(said),
            _ => Classified::Other(said),
        });
    }
    if status == 429 {
        return Err(Classified::Limited);
    }
    if status >= 500 {
        return Err(Classified::Unavailable(format!("HTTP {status}")));
    }
    let Some(access) = body.get("access_token").and_then(Value::as_str) else {
        return Err(Classified::Other(format!(
            "HTTP {status} without an access_token"
        )));
    };
    let lifetime = ["expires_in", "expires_in_sec"]
        .iter()
        .find_map(|k| match body.get(*k) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        })
        // RFC 6749 leaves it optional; an hour is what the providers here give.
        .unwrap_or(3600)
        .clamp(1, 366 * 86_400);
    // strings, and the strings of nested objects by their path (Slack's `team.id`)
    let mut extra = BTreeMap::new();
    for (k, v) in body.iter().filter(|(k, _)| !STANDARD.contains(&k.as_str())) {
        match v {
            Value::String(s) => {
                extra.insert(k.clone(), s.clone());
            }
            // a nested object's names and ids (Slack's `team`), never a credential in it
            // (Slack's `authed_user.access_token`, `incoming_webhook.url`)
            Value::Object(inner) => {
                for (ik, iv) in inner {
                    let credential = ["token", "secret", "url"].iter().any(|w| ik.contains(w));
                    if let (Some(s), false) = (iv.as_str(), credential) {
                        extra.insert(format!("{k}.{ik}"), s.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let scope = body
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let rotated = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .map(|s| SecretString::from(s.to_string()));
    Ok((
        AccessToken {
            value: SecretString::from(access.to_string()),
            issued_at: now,
            expires_at: now + Duration::seconds(lifetime),
            extra,
            scope,
        },
        rotated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn token_answers_are_read_as_the_rfc_and_zoho_write_them() {
        let now = Utc::now();
        let (t, rotated) = classify(
            200,
            &body(json!({"access_token": "a", "expires_in": 3600, "api_domain": "https://www.zohoapis.eu", "token_type": "Bearer"})),
            now,
        )
        .ok()
        .unwrap();
        assert_eq!(t.value.expose_secret(), "a");
        assert_eq!(t.expires_at, now + Duration::seconds(3600));
        assert_eq!(
            t.extra.get("api_domain").map(String::as_str),
            Some("https://www.zohoapis.eu")
        );
        assert!(rotated.is_none());
        let (_, rotated) = classify(
            200,
            &body(json!({"access_token": "a", "refresh_token": "r2"})),
            now,
        )
        .ok()
        .unwrap();
        assert_eq!(
            rotated.map(|r| r.expose_secret().to_string()).as_deref(),
            Some("r2")
        );
        // Zoho answers a dead refresh token with HTTP 200.
        assert!(matches!(
            classify(200, &body(json!({"error": "invalid_code"})), now),
            Err(Classified::Revoked(_))
        ));
        assert!(matches!(
            classify(
                400,
                &body(
                    json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                ),
                now
            ),
            Err(Classified::Revoked(_))
        ));
        assert!(matches!(
            classify(401, &body(json!({"error": "invalid_client"})), now),
            Err(Classified::Client(_))
        ));
        assert!(matches!(
            classify(
                200,
                &body(
                    json!({"error": "Access Denied", "error_description": "You have made too many requests continuously. Please try again after some time."})
                ),
                now
            ),
            Err(Classified::Limited)
        ));
        assert!(matches!(
            classify(503, &body(json!({})), now),
            Err(Classified::Unavailable(_))
        ));
        assert!(matches!(
            classify(200, &body(json!({"token_type": "Bearer"})), now),
            Err(Classified::Other(_))
        ));
    }

    #[test]
    fn a_revocation_is_told_apart_from_refused_client_credentials() {
        let e = ServiceError::new(
            "zoho",
            ErrorCode::InvalidCredentials,
            format!("Zoho no longer accepts this connection's authorisation ({REVOCATION}invalid_code): it was revoked"),
        );
        assert!(is_revocation(&e));
        assert_eq!(revocation_reason(&e), Some("invalid_code"));
        let client = ServiceError::new(
            "zoho",
            ErrorCode::InvalidCredentials,
            "Zoho refused the client",
        );
        assert!(!is_revocation(&client));
    }
}
