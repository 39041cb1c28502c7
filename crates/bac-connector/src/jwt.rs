//! Bearer tokens that providers sign for the requests they send (Microsoft's Bot Framework to
//! a bot, Google Chat to an app): verified here against the provider's published keys, so no
//! provider crate writes its own. The keys come from OpenID metadata (`jwks_uri`) or a JWKS
//! URL, are cached for an hour, and fetched again at once (at most every minute) when a token
//! names a key id not yet seen: providers rotate keys without notice. RS256 only; the issuer,
//! the audience and the expiry (five minutes of clock skew, as the Bot Framework asks) are
//! checked; what a key is endorsed for (the Bot Framework's channel ids) is returned for the
//! caller to check.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bac_runtime::{
    upstream::{UpstreamClient, UpstreamRequest},
    ErrorCode, ServiceError,
};
use serde_json::Value;

/// Where a provider publishes its keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// OpenID metadata whose `jwks_uri` is the key set.
    OpenId(String),
    /// A JWKS document.
    Jwks(String),
}

/// What a token must say.
#[derive(Debug, Clone)]
pub struct Expect {
    pub issuers: Vec<String>,
    pub audience: String,
}

/// A verified token: its claims and the endorsements of the key that signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Value,
    pub endorsements: Vec<String>,
}

struct Key {
    decoding: jsonwebtoken::DecodingKey,
    endorsements: Vec<String>,
}

struct Cache {
    keys: HashMap<String, std::sync::Arc<Key>>,
    fetched: Instant,
}

const KEYS_FOR: Duration = Duration::from_secs(3600);
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 300;

/// Verifies one provider's tokens.
pub struct JwtVerifier {
    integration: &'static str,
    http: UpstreamClient,
    source: KeySource,
    cache: Mutex<Option<Cache>>,
    /// When the keys were last asked for (successfully or not).
    last_fetch: Mutex<Option<Instant>>,
    fetch: tokio::sync::Mutex<()>,
}

impl JwtVerifier {
    pub fn new(integration: &'static str, http: UpstreamClient, source: KeySource) -> Self {
        JwtVerifier {
            integration,
            http,
            source,
            cache: Mutex::new(None),
            last_fetch: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    fn refused(&self, why: impl std::fmt::Display) -> ServiceError {
        ServiceError::new(
            self.integration,
            ErrorCode::Unauthenticated,
            format!("the request's bearer token is not valid: {why}"),
        )
    }

    /// Checks the bearer token of an upstream's request (its `Authorization` header).
    pub async fn verify_webhook(
        &self,
        webhook: &crate::Webhook,
        expect: &Expect,
    ) -> Result<Verified, ServiceError> {
        let auth = webhook
            .headers
            .get("authorization")
            .map(String::as_str)
            .unwrap_or("");
        self.verify(auth, expect).await
    }

    /// Checks `token` (the `Authorization` header's value, `Bearer ` included or not).
    pub async fn verify(&self, token: &str, expect: &Expect) -> Result<Verified, ServiceError> {
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        if token.is_empty() {
            return Err(self.refused("there is none"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| self.refused(e))?;
        if header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(self.refused(format!("{:?} is not RS256", header.alg)));
        }
        let kid = header.kid.unwrap_or_default();
        let key = self.key(&kid).await?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.leeway = LEEWAY_SECS;
        v.set_audience(&[&expect.audience]);
        v.set_issuer(&expect.issuers);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &v).map_err(|e| {
            self.refused(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "it expired".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "it is for another audience".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    "another issuer signed it".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "its signature does not match".to_string()
                }
                other => format!("{other:?}"),
            })
        })?;
        Ok(Verified {
            claims: data.claims,
            endorsements: key.endorsements.clone(),
        })
    }

    /// Fetches the published keys now (a connection test): how many there are.
    pub async fn key_count(&self) -> Result<usize, ServiceError> {
        let keys = self.fetch_keys().await?;
        let n = keys.len();
        if n == 0 {
            return Err(ServiceError::new(
                self.integration,
                ErrorCode::UpstreamUnavailable,
                "the provider publishes no RSA signing keys",
            ));
        }
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cache {
            keys,
            fetched: Instant::now(),
        });
        Ok(n)
    }

    /// The key `kid`, fetching the key set when it is not known (or the cache is old).
    async fn key(&self, kid: &str) -> Result<std::sync::Arc<Key>, ServiceError> {
        let lookup = |fresh_only: bool| {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.as_ref().and_then(|c| {
                if fresh_only && c.fetched.elapsed() > KEYS_FOR {
                    return None;
                }
                c.keys.get(kid).cloned()
            })
        };
        if let Some(k) = lookup(true) {
            return Ok(k);
        }
        let _one = self.fetch.lock().await;
        if let Some(k) = lookup(true) {
            return Ok(k);
        }
        let recently = self
            .last_fetch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < REFETCH_AT_MOST_EVERY);
        if !recently {
            // tried, whatever comes of it: a key endpoint that is down is not asked on every
            // request
            *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            match self.fetch_keys().await {
                Ok(keys) if !keys.is_empty() => {
                    *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cache {
                        keys,
                        fetched: Instant::now(),
                    });
                }
                // an empty set or a failure never replaces keys known to be good
                Ok(_) => {
                    tracing::warn!("the provider's key set holds no RSA keys; the known keys stay")
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "could not fetch the provider's signing keys");
                    if let Some(k) = lookup(false) {
                        return Ok(k);
                    }
                    return Err(e);
                }
            }
        }
        lookup(false).ok_or_else(|| self.refused(format!("no published key has id {kid:?}")))
    }

    async fn get_json(&self, url: &str) -> Result<Value, ServiceError> {
        let req = UpstreamRequest {
            method: http::Method::GET,
            url: url.to_string(),
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
            idempotent: true,
            operation: "signing_keys".into(),
            quota: None,
        };
        let resp = self.http.send(&req).await.map_err(|e| {
            ServiceError::new(
                self.integration,
                ErrorCode::UpstreamUnavailable,
                format!("fetching the provider's signing keys failed: {e}"),
            )
        })?;
        if !resp.status.is_success() {
            return Err(ServiceError::new(
                self.integration,
                ErrorCode::UpstreamUnavailable,
                format!(
                    "the provider's signing keys answered HTTP {}",
                    resp.status.as_u16()
                ),
            ));
        }
        serde_json::from_slice(&resp.body).map_err(|_| {
            ServiceError::new(
                self.integration,
                ErrorCode::UpstreamUnavailable,
                "the provider's signing keys are not JSON",
            )
        })
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, std::sync::Arc<Key>>, ServiceError> {
        let jwks_url = match &self.source {
            KeySource::Jwks(u) => u.clone(),
            KeySource::OpenId(u) => {
                let meta = self.get_json(u).await?;
                meta["jwks_uri"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ServiceError::new(
                            self.integration,
                            ErrorCode::UpstreamUnavailable,
                            "the provider's OpenID metadata names no jwks_uri",
                        )
                    })?
            }
        };
        let jwks = self.get_json(&jwks_url).await?;
        let mut keys = HashMap::new();
        for k in jwks["keys"].as_array().into_iter().flatten() {
            let (Some(kid), Some(n), Some(e)) =
                (k["kid"].as_str(), k["n"].as_str(), k["e"].as_str())
            else {
                continue;
            };
            if k["kty"] != "RSA" {
                continue;
            }
            let Ok(decoding) = jsonwebtoken::DecodingKey::from_rsa_components(n, e) else {
                continue;
            };
            let endorsements = k["endorsements"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            keys.insert(
                kid.to_string(),
                std::sync::Arc::new(Key {
                    decoding,
                    endorsements,
                }),
            );
        }
        Ok(keys)
    }
}
