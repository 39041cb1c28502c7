//! An OAuth 2.0 authorisation server as providers run them: the token endpoint (RFC 6749 §6
//! refresh-token grant, RFC 7523 JWT-bearer grant for service accounts), access tokens that
//! expire, refresh tokens that may rotate and may be revoked, and a per-refresh-token limit
//! (Zoho allows ten refreshes in ten minutes), and the authorisation-code grant with PKCE
//! behind an authorise endpoint that consents at once as the client's configured user
//! ([`OAuthServer::authorize_router`]; clients registered with `POST /_sandbox/oauth/clients`). Errors use RFC 6749 §5.2's body; Zoho's
//! dialect answers them with HTTP 200 ([`OAuthConfig::errors_with_http_200`]).
//!
//! The client credentials grant serves registered clients with a secret.
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
    /// Query parameters the authorise endpoint adds to its redirect (Zoho: `location` and
    /// `accounts-server`).
    pub redirect_extra: Vec<(String, String)>,
    /// A code gives a refresh token only when `access_type=offline` was asked (Zoho, Google).
    pub refresh_token_needs_offline: bool,
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
            redirect_extra: Vec::new(),
            refresh_token_needs_offline: false,
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

/// A registered client of the authorisation-code grant.
#[derive(Debug, Clone)]
struct Client {
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
    /// The user who consents (the sandbox has no login page).
    subject: String,
    /// Scopes it may ask for (empty: any).
    scopes: Vec<String>,
}

/// An authorisation code handed out by the authorise endpoint.
#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    scope: String,
    subject: String,
    /// `(method, challenge)` of PKCE.
    challenge: Option<(String, String)>,
    offline: bool,
    expires_at: i64,
    used: bool,
    /// The refresh token the code's exchange gave (revoked if the code is replayed).
    refresh_token: Option<String>,
}

/// How long a code is good for (RFC 6749 §4.1.2 recommends at most ten minutes).
const CODE_LIFETIME_SECS: i64 = 60;

#[derive(Debug, Default)]
struct State_ {
    clients: HashMap<String, Client>,
    codes: HashMap<String, Code>,
    code_exchanges: u64,
    grants: HashMap<String, Grant>,
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, Issued>,
    token_requests: u64,
    refreshes: u64,
    jwt_grants: u64,
    refused: u64,
}

impl State_ {
    /// Revokes a refresh token and every access token it gave; whether it was known.
    fn revoke_grant(&mut self, refresh_token: &str) -> bool {
        let found = self.grants.remove(refresh_token).is_some();
        self.tokens
            .retain(|_, t| t.from.as_deref() != Some(refresh_token));
        found
    }
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
            .route("/_sandbox/oauth/clients", post(add_client))
            .route("/_sandbox/oauth/accounts", post(add_account))
            .route("/_sandbox/oauth/revoke", post(revoke))
            .route("/_sandbox/oauth/expire", post(expire))
            .route("/_sandbox/oauth/stats", get(stats))
            .route("/_sandbox/oauth/userinfo", get(userinfo))
            .with_state(self.clone())
    }

    /// The authorise endpoint (RFC 6749 §4.1.1) at `path` (Zoho: `/oauth/v2/auth`; Google:
    /// `/o/oauth2/v2/auth`) and token revocation (RFC 7009) at `revoke_path` (Zoho:
    /// `/oauth/v2/token/revoke`). Consent is given at once by the client's configured user.
    pub fn authorize_router(&self, path: &str, revoke_path: &str) -> Router {
        Router::new()
            .route(path, get(authorize))
            .route(revoke_path, post(revoke_token))
            .with_state(self.clone())
    }

    /// The client credentials grant (RFC 6749 §4.4): a registered client with its secret gets
    /// a token for itself (Microsoft's Bot Framework: a bot's token for the connector service).
    fn client_credentials(&self, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        self.with(|s| {
            let ok = s.clients.get(field("client_id")).is_some_and(|c| {
                c.client_secret
                    .as_deref()
                    .is_some_and(|want| want == field("client_secret"))
            });
            if !ok {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication failed",
                ));
            }
            let id = field("client_id").to_string();
            Ok(self.issue(s, &id, field("scope"), None))
        })
    }

    /// Redeems an authorisation code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6).
    fn code(&self, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        let invalid = |d: &str| refuse(StatusCode::BAD_REQUEST, &self.cfg.invalid_grant_error, d);
        let now = self.clock.now();
        let always_refresh = !self.cfg.refresh_token_needs_offline;
        self.with(|s| {
            s.code_exchanges += 1;
            let Some(code) = s.codes.get(field("code")).cloned() else {
                return Err(invalid("the authorisation code is invalid"));
            };
            if code.used {
                // A replayed code: what its first exchange gave is revoked (RFC 6749 §4.1.2).
                if let Some(rt) = &code.refresh_token {
                    s.revoke_grant(rt);
                }
                return Err(invalid("the authorisation code was used already"));
            }
            if code.expires_at <= now {
                return Err(invalid("the authorisation code expired"));
            }
            let client = s.clients.get(&code.client_id).cloned();
            let secret_ok = client.as_ref().is_some_and(|c| {
                c.client_secret
                    .as_deref()
                    .is_none_or(|want| want == field("client_secret"))
            });
            if field("client_id") != code.client_id || !secret_ok {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication failed",
                ));
            }
            if field("redirect_uri") != code.redirect_uri {
                return Err(invalid(
                    "redirect_uri differs from the authorisation request's",
                ));
            }
            if let Some((method, challenge)) = &code.challenge {
                let verifier = field("code_verifier");
                let derived = if method == "S256" {
                    use base64::Engine;
                    use sha2::Digest;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()))
                } else {
                    verifier.to_string()
                };
                if verifier.is_empty() || &derived != challenge {
                    return Err(invalid(
                        "the code_verifier does not match the code_challenge",
                    ));
                }
            }
            let refresh = (code.offline || always_refresh).then(|| random_token("sbx_rt_"));
            if let Some(rt) = &refresh {
                s.grants.insert(
                    rt.clone(),
                    Grant {
                        client_id: code.client_id.clone(),
                        client_secret: client.and_then(|c| c.client_secret),
                        scope: code.scope.clone(),
                        subject: code.subject.clone(),
                        uses: Vec::new(),
                    },
                );
            }
            if let Some(c) = s.codes.get_mut(field("code")) {
                c.used = true;
                c.refresh_token.clone_from(&refresh);
            }
            let mut answer = self.issue(s, &code.subject, &code.scope, refresh.as_deref());
            if let (Some(rt), Value::Object(m)) = (refresh, &mut answer) {
                m.insert("refresh_token".into(), json!(rt));
            }
            Ok(answer)
        })
    }

    /// The access token of an `Authorization: Bearer` header, if it is valid now.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Option<Issued> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("Zoho-oauthtoken "))?;
        self.check_token(token)
    }

    /// An access token given some other way (Slack takes a `token` form field), if it is
    /// valid now.
    pub fn check_token(&self, token: &str) -> Option<Issued> {
        let now = self.clock.now();
        self.with(|s| s.tokens.get(token).filter(|t| t.expires_at > now).cloned())
    }

    /// Redeems an authorisation code for a provider whose token endpoint speaks its own
    /// dialect (Slack's `oauth.v2.access`): the RFC 6749 answer, or `(error, description)`.
    pub fn redeem_code(&self, form: &HashMap<String, String>) -> Result<Value, (String, String)> {
        self.with(|s| s.token_requests += 1);
        self.code(form).map_err(|e| {
            self.with(|s| s.refused += 1);
            (e.error, e.description)
        })
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
        Some("authorization_code") => server.code(&form),
        Some("client_credentials") => server.client_credentials(&form),
        Some(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this server issues tokens for authorization_code, refresh_token, client_credentials and jwt-bearer grants",
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
    let found = server.with(|s| s.revoke_grant(&r.refresh_token));
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
            "code_exchanges": s.code_exchanges,
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

#[derive(Deserialize)]
struct NewClient {
    client_id: String,
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn add_client(State(server): State<OAuthServer>, Json(c): Json<NewClient>) -> StatusCode {
    server.with(|s| {
        s.clients.insert(
            c.client_id,
            Client {
                client_secret: c.client_secret,
                redirect_uris: c.redirect_uris,
                subject: if c.user.is_empty() {
                    "sandbox-user".into()
                } else {
                    c.user
                },
                scopes: c.scopes,
            },
        )
    });
    StatusCode::CREATED
}

/// `GET <authorise path>`: consent at once, then back to the client with a code, or with an
/// error (RFC 6749 §4.1.2.1); never back to a URI the client did not register.
async fn authorize(
    State(server): State<OAuthServer>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let client = server.with(|s| s.clients.get(field("client_id")).cloned());
    let redirect_uri = field("redirect_uri");
    let Some(client) = client.filter(|c| c.redirect_uris.iter().any(|u| u == redirect_uri)) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown client, or a redirect_uri it did not register",
        )
            .into_response();
    };
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let state = field("state").to_string();
    let scope = field("scope").to_string();
    let error = if field("response_type") != "code" {
        Some((
            "unsupported_response_type",
            "only response_type=code is served",
        ))
    } else if !client.scopes.is_empty()
        && scope
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .any(|sc| !client.scopes.iter().any(|a| a == sc))
    {
        Some((
            "invalid_scope",
            "a requested scope is not allowed for this client",
        ))
    } else if !matches!(field("code_challenge_method"), "" | "S256" | "plain") {
        Some((
            "invalid_request",
            "code_challenge_method must be S256 or plain",
        ))
    } else {
        None
    };
    {
        let mut pairs = back.query_pairs_mut();
        if let Some((error, description)) = error {
            pairs
                .append_pair("error", error)
                .append_pair("error_description", description);
        } else {
            let code = random_token("sbx_code_");
            let challenge = (!field("code_challenge").is_empty()).then(|| {
                let method = match field("code_challenge_method") {
                    "" => "plain",
                    m => m,
                };
                (method.to_string(), field("code_challenge").to_string())
            });
            let expires_at = server.clock.now() + CODE_LIFETIME_SECS;
            server.with(|s| {
                s.codes.insert(
                    code.clone(),
                    Code {
                        client_id: field("client_id").to_string(),
                        redirect_uri: redirect_uri.to_string(),
                        scope: scope.clone(),
                        subject: client.subject.clone(),
                        challenge,
                        offline: field("access_type") == "offline",
                        expires_at,
                        used: false,
                        refresh_token: None,
                    },
                )
            });
            pairs.append_pair("code", &code);
            for (k, v) in &server.cfg.redirect_extra {
                pairs.append_pair(k, v);
            }
        }
        if !state.is_empty() {
            pairs.append_pair("state", &state);
        }
    }
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, back.to_string())],
    )
        .into_response()
}

/// RFC 7009 revocation (`token` as a query or form parameter): a refresh token goes with
/// every access token it gave; an access token alone.
async fn revoke_token(
    State(server): State<OAuthServer>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = q
        .get("token")
        .or_else(|| form.get("token"))
        .cloned()
        .unwrap_or_default();
    server.with(|s| {
        if s.grants.contains_key(&token) {
            s.revoke_grant(&token);
        } else {
            s.tokens.remove(&token);
        }
    });
    // RFC 7009 §2.2: an unknown token is answered 200 too
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACK: &str = "https://app.test/cb";

    async fn serve(cfg: OAuthConfig) -> (String, OAuthServer, SandboxClock, reqwest::Client) {
        let clock = SandboxClock::default();
        let server = OAuthServer::new(cfg, clock.clone());
        let app = server
            .router(&["/token"])
            .merge(server.authorize_router("/auth", "/revoke"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let status = http
            .post(format!("{base}/_sandbox/oauth/clients"))
            .json(&json!({"client_id": "c", "client_secret": "s", "redirect_uris": [BACK]}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
        (base, server, clock, http)
    }

    /// The redirect's query, or the status of an answer that is not a redirect.
    async fn authorise(
        http: &reqwest::Client,
        base: &str,
        query: &str,
    ) -> Result<HashMap<String, String>, u16> {
        let resp = http
            .get(format!("{base}/auth?{query}"))
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::FOUND {
            return Err(resp.status().as_u16());
        }
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with(BACK), "{loc}");
        Ok(url::Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect())
    }

    async fn exchange(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = http
            .post(format!("{base}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    #[tokio::test]
    async fn authorisation_code_with_pkce_once_and_in_time() {
        let (base, _server, clock, http) = serve(OAuthConfig {
            refresh_token_needs_offline: true,
            redirect_extra: vec![("location".into(), "eu".into())],
            ..OAuthConfig::default()
        })
        .await;
        // never back to an unregistered address
        let cb = url::form_urlencoded::byte_serialize(BACK.as_bytes()).collect::<String>();
        assert_eq!(
            authorise(
                &http,
                &base,
                "response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fevil.test%2Fcb"
            )
            .await,
            Err(400)
        );
        let bad = authorise(
            &http,
            &base,
            &format!("response_type=token&client_id=c&redirect_uri={cb}&state=x"),
        )
        .await
        .unwrap();
        assert_eq!(bad["error"], "unsupported_response_type");
        assert_eq!(bad["state"], "x");
        // S256: BASE64URL(SHA256("verifier-0123456789-0123456789-0123456789"))
        let verifier = "verifier-0123456789-0123456789-0123456789";
        let challenge = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
        };
        let query = format!("response_type=code&client_id=c&redirect_uri={cb}&scope=a&state=st&code_challenge={challenge}&code_challenge_method=S256&access_type=offline");
        let back = authorise(&http, &base, &query).await.unwrap();
        assert_eq!(
            (back["state"].as_str(), back["location"].as_str()),
            ("st", "eu")
        );
        let code = back["code"].clone();
        let form = |v: &'static str| {
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", "c"),
                ("client_secret", "s"),
                ("redirect_uri", BACK),
                ("code_verifier", v),
            ]
        };
        let mut wrong = form("wrong");
        wrong.push(("code", &code));
        let (status, body) = exchange(&http, &base, &wrong).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // that spent the code; a fresh one, the right verifier
        let back = authorise(&http, &base, &query).await.unwrap();
        let code = back["code"].clone();
        let mut right = form(verifier);
        right.push(("code", &code));
        let (status, body) = exchange(&http, &base, &right).await;
        assert_eq!(status, 200, "{body}");
        let refresh = body["refresh_token"].as_str().unwrap().to_string();
        // replayed: refused, and what it gave is revoked
        let (status, _) = exchange(&http, &base, &right).await;
        assert_eq!(status, 400);
        let (status, body) = exchange(
            &http,
            &base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "c"),
                ("client_secret", "s"),
                ("refresh_token", &refresh),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // no offline access: no refresh token; a code a minute old is dead
        let online = query.replace("&access_type=offline", "");
        let back = authorise(&http, &base, &online).await.unwrap();
        let code = back["code"].clone();
        let mut f = form(verifier);
        f.push(("code", &code));
        let (status, body) = exchange(&http, &base, &f).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        let back = authorise(&http, &base, &online).await.unwrap();
        clock.advance(CODE_LIFETIME_SECS);
        let code = back["code"].clone();
        let mut f = form(verifier);
        f.push(("code", &code));
        let (status, body) = exchange(&http, &base, &f).await;
        assert_eq!(
            (status, body["error_description"].as_str()),
            (400, Some("the authorisation code expired"))
        );
    }
}
