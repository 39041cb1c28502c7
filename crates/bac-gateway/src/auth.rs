//! API keys: `bac_<prefix>_<secret>`, shown once, stored as a SHA-256 hash and found by their
//! public prefix. [`Principal`] is the authenticated caller every route receives.
use std::sync::Arc;

use axum::{
    async_trait,
    extract::FromRequestParts,
    http::{header::AUTHORIZATION, request::Parts},
};
use bac_runtime::{db::Pool, RequestContext};
use rand::{distributions::Alphanumeric, Rng};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{error::ApiError, keys::CachedKey, AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    Admin,
    SuperAdmin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "super_admin" => Some(Role::SuperAdmin),
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
    pub key_id: String,
    pub request_id: String,
}

impl Principal {
    /// The gRPC metadata context for calls made on this caller's behalf.
    pub fn context(&self) -> RequestContext {
        RequestContext {
            tenant_id: self.tenant_id.clone(),
            principal: format!("user:{}", self.user_id),
            request_id: self.request_id.clone(),
            traceparent: bac_runtime::telemetry::current_traceparent(),
        }
    }

    pub fn require(&self, at_least: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= at_least {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{action} needs the {} role; this key's user is {}",
                at_least.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A freshly minted key; `secret` is the only time the full key exists outside the caller.
pub struct NewKey {
    pub id: String,
    pub prefix: String,
    pub key: String,
    pub hash: String,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub fn mint_key() -> NewKey {
    let mut rng = rand::thread_rng();
    let prefix: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let key = format!("bac_{prefix}_{secret}");
    NewKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        hash: hash_key(&key),
        prefix,
        key,
    }
}

/// `bac_<prefix>_<secret>` -> prefix, if the shape is right.
pub fn key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("bac_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (!prefix.is_empty() && prefix.len() <= 32 && secret.len() >= 16).then_some(prefix)
}

/// Looks the key up (through the invalidated cache) and checks it is current. A source that
/// failed lately pays for every lookup the cache cannot answer (`ratelimit::SourceGuard`).
pub async fn authenticate(
    state: &AppState,
    key: &str,
    request_id: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let result = check_key(state, key, request_id, source).await;
    if matches!(&result, Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED) {
        state.guard.failed(source);
    }
    result
}

async fn check_key(
    state: &AppState,
    key: &str,
    request_id: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let invalid = || ApiError::unauthorized("invalid API key");
    let prefix = key_prefix(key).ok_or_else(invalid)?;
    let found = match state.keys.get(prefix) {
        Some(k) => k,
        None => {
            state.guard.spend_if_failing(source)?;
            // A prefix no key has, seen lately: no query.
            if state.keys.is_missing(prefix) {
                return Err(invalid());
            }
            let started = std::time::Instant::now();
            let Some(k) = lookup(&state.db, prefix).await? else {
                state.keys.put_missing(prefix, started);
                return Err(invalid());
            };
            state.keys.put(prefix, k.clone(), started);
            k
        }
    };
    if !bool::from(found.key_hash.as_bytes().ct_eq(hash_key(key).as_bytes())) {
        return Err(invalid());
    }
    if found.revoked {
        return Err(ApiError::unauthorized("this API key was revoked"));
    }
    if found.user_disabled {
        return Err(ApiError::unauthorized("this API key's user is deactivated"));
    }
    if found.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
        return Err(ApiError::unauthorized("this API key has expired").suggest("Create a new key"));
    }
    if state.keys.due_for_touch(&found.key_id) {
        touch(&state.db, &found.key_id);
    }
    Ok(Principal {
        key_id: found.key_id,
        tenant_id: found.tenant_id,
        user_id: found.user_id,
        role: found.role,
        request_id: request_id.to_string(),
    })
}

async fn lookup(db: &Pool, prefix: &str) -> Result<Option<CachedKey>, ApiError> {
    metrics::counter!("bac_gateway_key_lookups_total").increment(1);
    let client = db.get().await.map_err(ApiError::internal)?;
    let Some(row) = client
        .query_opt(
            "SELECT k.id, k.tenant_id, k.user_id, k.key_hash, u.role, k.revoked_at IS NOT NULL,
                    k.expires_at, u.disabled_at IS NOT NULL
             FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.prefix = $1",
            &[&prefix],
        )
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    let role: String = row.get(4);
    Ok(Some(CachedKey {
        key_id: row.get(0),
        tenant_id: row.get(1),
        user_id: row.get(2),
        key_hash: row.get(3),
        role: Role::parse(&role)
            .ok_or_else(|| ApiError::internal(format!("unknown role {role}")))?,
        revoked: row.get(5),
        expires_at: row.get(6),
        user_disabled: row.get(7),
    }))
}

/// Records `last_used_at` off the request's path (the caller limits it to once a minute per
/// key and replica; the SQL guard keeps replicas from writing more often than that).
fn touch(db: &Pool, key_id: &str) {
    let db = db.clone();
    let key_id = key_id.to_string();
    tokio::spawn(async move {
        if let Ok(c) = db.get().await {
            let _ = c
                .execute(
                    "UPDATE api_keys SET last_used_at = now() WHERE id = $1
                     AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                    &[&key_id],
                )
                .await;
        }
    });
}

#[async_trait]
impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let source = crate::http::client_ip(parts, &state.settings.trusted_proxies);
        let Some(key) = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
        else {
            state.guard.spend_if_failing(source)?;
            state.guard.failed(source);
            return Err(ApiError::unauthorized("missing API key"));
        };
        let request_id = crate::error::current_request_id();
        let principal = authenticate(state, key, &request_id, source).await?;
        // Rate limits (bac_gateway::ratelimit): per key and per tenant, after authentication.
        state
            .limits
            .check(&principal.tenant_id, &principal.key_id)?;
        tracing::Span::current().record("tenant", principal.tenant_id.as_str());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_hash() {
        let k = mint_key();
        assert_eq!(key_prefix(&k.key), Some(k.prefix.as_str()));
        assert_eq!(hash_key(&k.key), k.hash);
        assert_ne!(k.hash, k.key);
        assert_eq!(key_prefix("bac_abc"), None);
        assert_eq!(key_prefix("nope"), None);
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::SuperAdmin > Role::Admin && Role::Admin > Role::User);
    }
}
