//! An OAuth 2.0 authorisation server as providers run them: the token endpoint (RFC 6749 §6
//! refresh-token grant, RFC 7523 JWT-bearer grant for service accounts), access tokens that
//! expire, refresh tokens that may rotate and may be revoked, and a per-refresh-token limit
//! (Zoho allows ten refreshes in ten minutes). Errors use RFC 6749 §5.2's body; Zoho's
//! dialect answers them with HTTP 200 ([`OAuthConfig::errors_with_http_200`]).
//!
//! Tests drive it through admin routes: `POST /_sandbox/oauth/grants` (a client and its refresh
//! token), `POST /_sandbox/oauth/accounts` (a service account's public key), `POST
//! /_sandbox/oauth/revoke`, `POST /_sandbox/oauth/expire` (every access token dies now), `GET
//! /_sandbox/oauth/stats`, and `GET /_sandbox/oauth/userinfo`, a resource that answers 401 to a
//! token that is not (or no longer) valid.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::clock::SandboxClock;

/// How this authorisation server behaves.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub token_lifetime_secs: i64,
    /// Zoho answers token errors with HTTP 200 and an `error` field.
    pub errors_with_http_200: bool,
    /// Each refresh answers a new refresh token and retires the one used.
    pub rotate_refresh_tokens: bool,
    /// At most `n` refreshes of one refresh token in `window` seconds.
    pub refresh_limit: Option<(usize, i64)>,
    /// Fields added to every token answer (Zoho's `api_domain`).
    pub extra: Map<String, Value>,
    /// The `error` of an unknown, expired or revoked refresh token: RFC 6749's
    /// `invalid_grant`, Zoho's `invalid_code`.
    pub invalid_grant_error: String,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            token_lifetime_secs: 3600,
            errors_with_http_200: false,
            rotate_refresh_tokens: false,
            refresh_limit: None,
            extra: Map::new(),
            invalid_grant_error: "invalid_grant".into(),
        }
    }
}

/// A client's refresh token.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    client_secret: Option<String>,
    scope: String,
    subject: String,
    /// When it was used to refresh, for the limit.
    uses: Vec<i64>,
}

#[derive(Debug, Clone)]
struct Account {
    public_key_pem: String,
    /// Scopes the account may be granted (empty: any).
    scopes: Vec<String>,
}

/// An access token handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub subject: String,
    pub scope: String,
    pub expires_at: i64,
    /// The refresh token it came from (revoking that kills it too).
    from: Option<String>,
}

#[derive(Debug, Default)]
struct State_ {
    grants: HashMap<String, Grant>,
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, Issued>,
    token_requests: u64,
    refreshes: u64,
    jwt_grants: u64,
    refused: u64,
}

/// One authorisation server; clone it into the provider sandbox that checks its tokens.
#[derive(Debug, Clone)]
pub struct OAuthServer {
    cfg: Arc<OAuthConfig>,
    clock: SandboxClock,
    state: Arc<Mutex<State_>>,
}

/// RFC 6749 §5.2.
struct OAuthError {
    status: StatusCode,
    error: String,
    description: String,
}

fn refuse(status: StatusCode, error: &str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status,
        error: error.to_string(),
        description: description.into(),
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

impl OAuthServer {
    pub fn new(cfg: OAuthConfig, clock: SandboxClock) -> OAuthServer {
        OAuthServer {
            cfg: Arc::new(cfg),
            clock,
            state: Arc::new(Mutex::new(State_::default())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State_) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// The token endpoint at each of `token_paths` (`/oauth/v2/token` for Zoho, `/token` for
    /// Google), and the admin routes.
    pub fn router(&self, token_paths: &[&str]) -> Router {
        let mut r = Router::new();
        for p in token_paths {
            r = r.route(p, post(token));
        }
        r.route("/_sandbox/oauth/grants", post(add_grant))
            .route("/_sandbox/oauth/accounts", post(add_account))
            .route("/_sandbox/oauth/revoke", post(revoke))
            .route("/_sandbox/oauth/expire", post(expire))
            .route("/_sandbox/oauth/stats", get(stats))
            .route("/_sandbox/oauth/userinfo", get(userinfo))
            .with_state(self.clone())
    }

    /// The access token of an `Authorization: Bearer` header, if it is valid now.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Option<Issued> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("Zoho-oauthtoken "))?;
        let now = self.clock.now();
        self.with(|s| s.tokens.get(token).filter(|t| t.expires_at > now).cloned())
    }

    fn issue(&self, s: &mut State_, subject: &str, scope: &str, from: Option<&str>) -> Value {
        let access = random_token("sbx_at_");
        let now = self.clock.now();
        s.tokens.insert(
            access.clone(),
            Issued {
                subject: subject.to_string(),
                scope: scope.to_string(),
                expires_at: now + self.cfg.token_lifetime_secs,
                from: from.map(str::to_string),
            },
        );
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.cfg.token_lifetime_secs,
            "scope": scope,
        });
        if let Value::Object(m) = &mut answer {
            for (k, v) in &self.cfg.extra {
                m.insert(k.clone(), v.clone());
            }
        }
        answer
    }

    fn refresh(&self, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let (refresh_token, client_id) = (field("refresh_token"), field("client_id"));
        if refresh_token.is_empty() || client_id.is_empty() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "refresh_token and client_id are required",
            ));
        }
        let now = self.clock.now();
        let rotate = self.cfg.rotate_refresh_tokens;
        let limit = self.cfg.refresh_limit;
        self.with(|s| {
            let Some(grant) = s.grants.get_mut(refresh_token) else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    &self.cfg.invalid_grant_error,
                    "the refresh token is invalid, expired or revoked",
                ));
            };
            if grant.client_id != client_id
                || grant
                    .client_secret
                    .as_deref()
                    .is_some_and(|want| want != field("client_secret"))
            {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication failed",
                ));
            }
            if let Some((n, window)) = limit {
                grant.uses.retain(|at| now - at < window);
                if grant.uses.len() >= n {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "Access Denied",
                        "You have made too many requests continuously. Please try again after some time.",
                    ));
                }
                grant.uses.push(now);
            }
            let grant = grant.clone();
            s.refreshes += 1;
            let mut from = refresh_token.to_string();
            let rotated = rotate.then(|| {
                let new = random_token("sbx_rt_");
                s.grants.remove(refresh_token);
                s.grants.insert(new.clone(), grant.clone());
                // Tokens of the retired refresh token stay valid until they expire.
                from.clone_from(&new);
                new
            });
            let mut answer = self.issue(s, &grant.subject, &grant.scope, Some(&from));
            if let (Some(new), Value::Object(m)) = (rotated, &mut answer) {
                m.insert("refresh_token".into(), json!(new));
            }
            Ok(answer)
        })
    }

    fn jwt_bearer(&self, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
        let bad = |d: &str| refuse(StatusCode::BAD_REQUEST, "invalid_grant", d);
        // The issuer names the key to verify with: read it before verifying.
        let mut peek = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        peek.insecure_disable_signature_validation();
        peek.validate_exp = false;
        peek.validate_aud = false;
        peek.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(
            assertion,
            &jsonwebtoken::DecodingKey::from_secret(&[]),
            &peek,
        )
        .map_err(|_| bad("the assertion is not a JWT"))?
        .claims;
        let issuer = claims["iss"].as_str().unwrap_or("").to_string();
        let Some(account) = self.with(|s| s.accounts.get(&issuer).cloned()) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the assertion's issuer is not a known service account",
            ));
        };
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(account.public_key_pem.as_bytes())
            .map_err(|_| bad("the account's registered key is not an RSA public key"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // Times are checked below against the sandbox's clock; the audience against the path.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let verified = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|_| bad("Invalid JWT Signature."))?
            .claims;
        let now = self.clock.now();
        let (iat, exp) = (
            verified["iat"].as_i64().unwrap_or(0),
            verified["exp"].as_i64().unwrap_or(0),
        );
        if exp <= now || iat > now + 300 || exp - iat > 3600 {
            return Err(bad(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
            ));
        }
        if !verified["aud"]
            .as_str()
            .is_some_and(|a| a.ends_with("/token"))
        {
            return Err(bad("Invalid JWT: the audience is not this token endpoint"));
        }
        let scope = verified["scope"].as_str().unwrap_or("").to_string();
        if scope.is_empty()
            || (!account.scopes.is_empty()
                && scope
                    .split(' ')
                    .any(|sc| !account.scopes.iter().any(|a| a == sc)))
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "a requested scope is not allowed for this account",
            ));
        }
        let subject = verified["sub"].as_str().unwrap_or(&issuer).to_string();
        Ok(self.with(|s| {
            s.jwt_grants += 1;
            self.issue(s, &subject, &scope, None)
        }))
    }
}

/// `POST <token path>`: a form-encoded token request.
async fn token(State(server): State<OAuthServer>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    server.with(|s| s.token_requests += 1);
    let result = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => server.refresh(&form),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => server.jwt_bearer(&form),
        Some(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this server issues tokens for refresh_token and jwt-bearer grants",
        )),
        None => Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )),
    };
    match result {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => {
            server.with(|s| s.refused += 1);
            let status = if server.cfg.errors_with_http_200 {
                StatusCode::OK
            } else {
                e.status
            };
            (
                status,
                Json(json!({"error": e.error, "error_description": e.description})),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct NewGrant {
    client_id: String,
    client_secret: Option<String>,
    refresh_token: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    subject: String,
}

async fn add_grant(State(server): State<OAuthServer>, Json(g): Json<NewGrant>) -> StatusCode {
    server.with(|s| {
        s.grants.insert(
            g.refresh_token,
            Grant {
                client_id: g.client_id,
                client_secret: g.client_secret,
                scope: g.scope,
                subject: g.subject,
                uses: Vec::new(),
            },
        )
    });
    StatusCode::CREATED
}

#[derive(Deserialize)]
struct NewAccount {
    client_email: String,
    public_key_pem: String,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn add_account(State(server): State<OAuthServer>, Json(a): Json<NewAccount>) -> StatusCode {
    server.with(|s| {
        s.accounts.insert(
            a.client_email,
            Account {
                public_key_pem: a.public_key_pem,
                scopes: a.scopes,
            },
        )
    });
    StatusCode::CREATED
}

#[derive(Deserialize)]
struct Revoke {
    refresh_token: String,
}

/// Revokes a refresh token and every access token it gave.
async fn revoke(State(server): State<OAuthServer>, Json(r): Json<Revoke>) -> StatusCode {
    let found = server.with(|s| {
        let found = s.grants.remove(&r.refresh_token).is_some();
        s.tokens
            .retain(|_, t| t.from.as_deref() != Some(r.refresh_token.as_str()));
        found
    });
    if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Every access token handed out so far expires now.
async fn expire(State(server): State<OAuthServer>) -> Json<Value> {
    let now = server.clock.now();
    let n = server.with(|s| {
        for t in s.tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
        s.tokens.len()
    });
    Json(json!({ "expired": n }))
}

async fn stats(State(server): State<OAuthServer>) -> Json<Value> {
    Json(server.with(|s| {
        json!({
            "token_requests": s.token_requests,
            "refreshes": s.refreshes,
            "jwt_grants": s.jwt_grants,
            "refused": s.refused,
        })
    }))
}

/// A protected resource: who the bearer token speaks for, or 401.
async fn userinfo(State(server): State<OAuthServer>, headers: HeaderMap) -> Response {
    match server.check_bearer(&headers) {
        Some(t) => Json(json!({"subject": t.subject, "scope": t.scope})).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\"")],
            Json(json!({"error": "invalid_token"})),
        )
            .into_response(),
    }
}
