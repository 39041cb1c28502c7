//! Tenants, users, API keys: who may call the fleet. Every change is audited.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use bac_runtime::context::valid_tenant_id;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiJson, ApiQuery};
use crate::{
    audit::{self, Change, Origin},
    auth::{mint_key, Principal, Role},
    error::ApiError,
    AppState,
};

/// Super admins of this tenant operate the platform (create and list tenants).
pub const PLATFORM_TENANT: &str = "platform";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn require_operator(p: &Principal) -> Result<(), ApiError> {
    if p.tenant_id == PLATFORM_TENANT && p.role == Role::SuperAdmin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only platform operators manage tenants",
        ))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub id: String,
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "access",
    summary = "Create a tenant (platform operators)",
    request_body = CreateTenant,
    responses((status = 201, description = "Created", body = crate::openapi::TenantView), crate::openapi::CommonErrors))]
pub async fn create_tenant(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_operator(&principal)?;
    if !valid_tenant_id(&body.id) {
        return Err(ApiError::bad_request(
            "id must be 1-63 lowercase letters, digits, - or _, starting with a letter or digit",
        ));
    }
    if body.name.trim().is_empty() || body.name.len() > 200 {
        return Err(ApiError::bad_request("name must be 1-200 characters"));
    }
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let inserted = tx
        .execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&body.id, &body.name.trim()],
        )
        .await
        .map_err(ApiError::internal)?;
    if inserted == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "ALREADY_EXISTS",
            format!("tenant {} exists", body.id),
        ));
    }
    let change = Change {
        action: "tenant.created",
        target_type: "tenant",
        target_id: &body.id,
        diff: json!({"name": body.name.trim()}),
    };
    let actor = format!("operator:{}", principal.user_id);
    audit::record_as(
        &tx,
        &body.id,
        &actor,
        &principal.request_id,
        &origin,
        change,
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": body.id, "name": body.name.trim()})),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "access",
    summary = "List tenants (operators: all; others: their own)",
    responses((status = 200, description = "Tenants", body = crate::openapi::TenantList), crate::openapi::CommonErrors))]
pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let c = state.db.get().await.map_err(ApiError::internal)?;
    // Operators see every tenant; anyone else sees their own.
    let rows = if require_operator(&principal).is_ok() {
        c.query("SELECT id, name, created_at FROM tenants ORDER BY id", &[])
            .await
    } else {
        c.query(
            "SELECT id, name, created_at FROM tenants WHERE id = $1",
            &[&principal.tenant_id],
        )
        .await
    }
    .map_err(ApiError::internal)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| json!({"id": r.get::<_, String>(0), "name": r.get::<_, String>(1), "created_at": rfc3339(r.get(2))}))
        .collect();
    Ok(Json(json!({ "tenants": list })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = "@", max_length = 254)]
    pub email: String,
    #[schema(value_type = crate::openapi::RoleName)]
    pub role: String,
}

fn user_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "email": r.get::<_, String>(1),
        "role": r.get::<_, String>(2),
        "created_at": rfc3339(r.get(3)),
        "active": r.get::<_, bool>(4),
    })
}

const USER_COLUMNS: &str = "id, email, role, created_at, disabled_at IS NULL";

#[utoipa::path(post, path = "/api/v1/users", tag = "access",
    summary = "Create a user of the caller's tenant (super admin)",
    request_body = CreateUser,
    responses((status = 201, description = "Created", body = crate::openapi::UserView), crate::openapi::CommonErrors))]
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::SuperAdmin, "creating users")?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::bad_request("role must be super_admin, admin or user"))?;
    let email = body.email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::bad_request("email is not an email address"));
    }
    let id = format!("usr_{}", uuid::Uuid::now_v7().simple());
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let row = tx
        .query_opt(
            "INSERT INTO users (id, tenant_id, email, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, email) DO NOTHING
             RETURNING id, email, role, created_at, disabled_at IS NULL",
            &[&id, &principal.tenant_id, &email, &role.as_str()],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "ALREADY_EXISTS",
                format!("a user with email {email} exists"),
            )
        })?;
    let change = Change {
        action: "user.created",
        target_type: "user",
        target_id: &id,
        diff: json!({"email": email, "role": role.as_str()}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(user_json(&row))))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    summary = "List the tenant's users (admin+)",
    responses((status = 200, description = "Users", body = crate::openapi::UserList), crate::openapi::CommonErrors))]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Admin, "listing users")?;
    let c = state.db.get().await.map_err(ApiError::internal)?;
    let rows = c
        .query(
            &format!(
                "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY created_at, id"
            ),
            &[&principal.tenant_id],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "users": rows.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// super_admin | admin | user
    #[schema(value_type = Option<crate::openapi::RoleName>)]
    pub role: Option<String>,
    /// false: deactivate (every key of the user stops at once, on every replica); true:
    /// reactivate.
    pub active: Option<bool>,
}

/// Tells every replica to drop the user's keys from its cache (at commit); returns their
/// prefixes, which the caller drops from this replica's cache itself once committed, so its
/// own next request never waits for the notification to come round.
async fn forget_keys_of(
    tx: &bac_runtime::db::Transaction<'_>,
    user: &str,
) -> Result<Vec<String>, ApiError> {
    let rows = tx
        .query(
            "SELECT prefix, pg_notify('gateway_api_keys', prefix)::text FROM api_keys WHERE user_id = $1",
            &[&user],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "access",
    summary = "Change a user's role, or deactivate or reactivate the user (super admin)",
    description = "Depends on who calls: a super admin cannot deactivate themselves or lower their own role (400).",
    params(("id" = String, Path, description = "User id")),
    request_body = UpdateUser,
    responses((status = 200, description = "Updated", body = crate::openapi::UserView), crate::openapi::CommonErrors))]
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::SuperAdmin, "changing users")?;
    if body.role.is_none() && body.active.is_none() {
        return Err(ApiError::bad_request(
            "nothing to update: give role and/or active",
        ));
    }
    let role = body
        .role
        .as_deref()
        .map(|r| {
            Role::parse(r)
                .ok_or_else(|| ApiError::bad_request("role must be super_admin, admin or user"))
        })
        .transpose()?;
    if body.active == Some(false) && id == principal.user_id {
        return Err(ApiError::bad_request("you cannot deactivate yourself")
            .suggest("Ask another super admin of the tenant"));
    }
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let before = tx
        .query_opt(
            "SELECT role, disabled_at IS NULL FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            &[&principal.tenant_id, &id],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    let (old_role, was_active): (String, bool) = (before.get(0), before.get(1));
    let new_role = role.map_or(old_role.clone(), |r| r.as_str().to_string());
    let active = body.active.unwrap_or(was_active);
    let row = tx
        .query_one(
            &format!(
                "UPDATE users SET role = $3,
                   disabled_at = CASE WHEN $4 THEN NULL ELSE COALESCE(disabled_at, now()) END
                 WHERE tenant_id = $1 AND id = $2
                 RETURNING {USER_COLUMNS}"
            ),
            &[&principal.tenant_id, &id, &new_role, &active],
        )
        .await
        .map_err(ApiError::internal)?;
    // Cached keys of this user carry the old role and state: drop them on every replica.
    let dropped = forget_keys_of(&tx, &id).await?;
    if new_role != old_role {
        let change = Change {
            action: "user.role_changed",
            target_type: "user",
            target_id: &id,
            diff: json!({"role": {"from": old_role, "to": new_role}}),
        };
        audit::record(&tx, &principal, &origin, change).await?;
    }
    if active != was_active {
        let change = Change {
            action: if active {
                "user.activated"
            } else {
                "user.deactivated"
            },
            target_type: "user",
            target_id: &id,
            diff: json!({"active": {"from": was_active, "to": active}}),
        };
        audit::record(&tx, &principal, &origin, change).await?;
    }
    tx.commit().await.map_err(ApiError::internal)?;
    for prefix in &dropped {
        state.keys.forget(prefix);
    }
    Ok(Json(user_json(&row)))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "access",
    summary = "Delete a user with their keys and grants (super admin)",
    description = "Depends on who calls: a super admin cannot delete (or deactivate) themselves (400), so that a tenant always keeps one.",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors))]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::SuperAdmin, "deleting users")?;
    if id == principal.user_id {
        return Err(ApiError::bad_request("you cannot delete yourself")
            .suggest("Ask another super admin of the tenant"));
    }
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let user = tx
        .query_opt(
            "SELECT email, role FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            &[&principal.tenant_id, &id],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    let (email, role): (String, String) = (user.get(0), user.get(1));
    let dropped = forget_keys_of(&tx, &id).await?;
    let keys = tx
        .execute("DELETE FROM api_keys WHERE user_id = $1", &[&id])
        .await
        .map_err(ApiError::internal)?;
    let grants = tx
        .execute("DELETE FROM grants WHERE user_id = $1", &[&id])
        .await
        .map_err(ApiError::internal)?;
    tx.execute(
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
        &[&principal.tenant_id, &id],
    )
    .await
    .map_err(ApiError::internal)?;
    let change = Change {
        action: "user.deleted",
        target_type: "user",
        target_id: &id,
        diff: json!({"email": email, "role": role, "keys_deleted": keys, "grants_deleted": grants}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    for prefix in &dropped {
        state.keys.forget(prefix);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Another user of the tenant (super admins only); default: the caller.
    pub user_id: Option<String>,
    #[serde(default)]
    pub name: String,
    /// When the key stops working: a time in the future (a past one is a 400, so whether a
    /// value is accepted depends on when it is sent).
    pub expires_at: Option<DateTime<Utc>>,
}

fn key_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "prefix": r.get::<_, String>(1),
        "name": r.get::<_, String>(2),
        "user_id": r.get::<_, String>(3),
        "created_at": rfc3339(r.get(4)),
        "expires_at": r.get::<_, Option<DateTime<Utc>>>(5).map(rfc3339),
        "revoked_at": r.get::<_, Option<DateTime<Utc>>>(6).map(rfc3339),
        "last_used_at": r.get::<_, Option<DateTime<Utc>>>(7).map(rfc3339),
        "replaced_by": r.get::<_, Option<String>>(8),
    })
}

const KEY_COLUMNS: &str =
    "id, prefix, name, user_id, created_at, expires_at, revoked_at, last_used_at, replaced_by";

pub(crate) async fn insert_key(
    tx: &bac_runtime::db::Transaction<'_>,
    tenant: &str,
    user: &str,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, Value), ApiError> {
    let key = mint_key();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, tenant_id, user_id, prefix, key_hash, name, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
            ),
            &[
                &key.id,
                &tenant,
                &user,
                &key.prefix,
                &key.hash,
                &name,
                &expires_at,
            ],
        )
        .await
        .map_err(ApiError::internal)?;
    let mut body = key_json(&row);
    // Shown once; only its hash is stored.
    body["key"] = json!(key.key);
    Ok((key.id, body))
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "access",
    summary = "Create an API key (shown once)",
    description = "Depends on when it is sent: `expires_at` must be in the future.",
    request_body = CreateKey,
    responses((status = 201, description = "Created; `key` is shown only now", body = crate::openapi::ApiKeyView), crate::openapi::CommonErrors))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = body
        .user_id
        .clone()
        .unwrap_or_else(|| principal.user_id.clone());
    if user != principal.user_id {
        principal.require(Role::SuperAdmin, "creating keys for other users")?;
    }
    if body.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::bad_request("expires_at is in the past"));
    }
    if body.name.len() > 200 {
        return Err(ApiError::bad_request("name is longer than 200 characters"));
    }
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    tx.query_opt(
        "SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2",
        &[&principal.tenant_id, &user],
    )
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::not_found(format!("no user {user}")))?;
    let (id, out) = insert_key(
        &tx,
        &principal.tenant_id,
        &user,
        &body.name,
        body.expires_at,
    )
    .await?;
    let change = Change {
        action: "api_key.created",
        target_type: "api_key",
        target_id: &id,
        diff: json!({"user_id": user, "name": body.name, "expires_at": body.expires_at.map(rfc3339)}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "access",
    summary = "List API keys (super admin: the tenant's; others: their own)",
    responses((status = 200, description = "Keys, without secrets", body = crate::openapi::ApiKeyList), crate::openapi::CommonErrors))]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let c = state.db.get().await.map_err(ApiError::internal)?;
    // Super admins see the tenant's keys; others their own.
    let all = principal.role == Role::SuperAdmin;
    let rows = c
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND ($2 OR user_id = $3)
                 ORDER BY created_at, id"
            ),
            &[&principal.tenant_id, &all, &principal.user_id],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "api_keys": rows.iter().map(key_json).collect::<Vec<_>>() }),
    ))
}

/// The key, if the caller may change it (its owner or a super admin of the tenant).
async fn own_key(
    tx: &bac_runtime::db::Transaction<'_>,
    p: &Principal,
    id: &str,
) -> Result<tokio_postgres::Row, ApiError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
            ),
            &[&p.tenant_id, &id],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no API key {id}")))?;
    if row.get::<_, String>(3) != p.user_id && p.role != Role::SuperAdmin {
        return Err(ApiError::not_found(format!("no API key {id}")));
    }
    Ok(row)
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "access",
    summary = "Revoke an API key (effective on every replica as soon as it is notified)",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "Revoked", body = crate::openapi::ApiKeyView), crate::openapi::CommonErrors))]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    own_key(&tx, &principal, &id).await?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                 WHERE tenant_id = $1 AND id = $2 RETURNING {KEY_COLUMNS}"
            ),
            &[&principal.tenant_id, &id],
        )
        .await
        .map_err(ApiError::internal)?;
    let change = Change {
        action: "api_key.revoked",
        target_type: "api_key",
        target_id: &id,
        diff: json!({}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    // Every replica hears of it (the table's trigger NOTIFYs); this one knows now.
    state.keys.forget(&row.get::<_, String>(1));
    Ok(Json(key_json(&row)))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default 3600, at most 30 days).
    #[schema(minimum = 0, maximum = 2592000)]
    pub overlap_seconds: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "access",
    summary = "Rotate an API key; the old one keeps working for the overlap",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<RotateKey>, description = "Optional overlap"),
    responses((status = 201, description = "The new key", body = crate::openapi::ApiKeyView), crate::openapi::CommonErrors))]
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The body is optional, but a body that is there must be valid: a malformed one must not
    // silently fall back to the default overlap.
    let body: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let overlap = body.overlap_seconds.unwrap_or(3600);
    if !(0..=30 * 24 * 3600).contains(&overlap) {
        return Err(ApiError::bad_request(
            "overlap_seconds must be between 0 and 2592000",
        ));
    }
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let old = own_key(&tx, &principal, &id).await?;
    if old.get::<_, Option<DateTime<Utc>>>(6).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "KEY_REVOKED",
            "a revoked key cannot be rotated",
        ));
    }
    let user: String = old.get(3);
    let name: String = old.get(2);
    let keep_expiry: Option<DateTime<Utc>> = old.get(5);
    if keep_expiry.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "KEY_EXPIRED",
            "an expired key cannot be rotated; create a new key",
        ));
    }
    let (new_id, out) = insert_key(&tx, &principal.tenant_id, &user, &name, keep_expiry).await?;
    let until = Utc::now() + Duration::seconds(overlap);
    let old_until = keep_expiry.map_or(until, |e| e.min(until));
    tx.execute(
        "UPDATE api_keys SET expires_at = $3, replaced_by = $4 WHERE tenant_id = $1 AND id = $2",
        &[&principal.tenant_id, &id, &old_until, &new_id],
    )
    .await
    .map_err(ApiError::internal)?;
    let change = Change {
        action: "api_key.rotated",
        target_type: "api_key",
        target_id: &id,
        diff: json!({"replaced_by": new_id, "old_key_expires_at": rfc3339(old_until)}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/integrations/audit", tag = "audit",
    summary = "The audit trail of the tenant (admin+)",
    params(AuditQuery),
    responses((status = 200, description = "Entries, newest first", body = crate::openapi::AuditPage), crate::openapi::CommonErrors))]
pub async fn list_audit(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Admin, "reading the audit trail")?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative"));
    }
    let c = state.db.get().await.map_err(ApiError::internal)?;
    let filter = "tenant_id = $1
        AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target_type = $3)
        AND ($4::text IS NULL OR target_id = $4) AND ($5::text IS NULL OR actor = $5)
        AND ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at < $7)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &principal.tenant_id,
        &q.action,
        &q.target_type,
        &q.target_id,
        &q.actor,
        &q.since,
        &q.until,
    ];
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM audit_log WHERE {filter}"),
            &params,
        )
        .await
        .map_err(ApiError::internal)?
        .get(0);
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
    all.push(&limit);
    all.push(&offset);
    let rows = c
        .query(
            &format!(
                "SELECT id, actor, action, target_type, target_id, diff, source_ip, user_agent, request_id, created_at
                 FROM audit_log WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
            ),
            &all,
        )
        .await
        .map_err(ApiError::internal)?;
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, String>(0),
                "tenant_id": principal.tenant_id,
                "actor": r.get::<_, String>(1),
                "action": r.get::<_, String>(2),
                "target_type": r.get::<_, String>(3),
                "target_id": r.get::<_, String>(4),
                "diff": r.get::<_, Value>(5),
                "source_ip": r.get::<_, Option<String>>(6),
                "user_agent": r.get::<_, Option<String>>(7),
                "request_id": r.get::<_, Option<String>>(8),
                "created_at": rfc3339(r.get(9)),
            })
        })
        .collect();
    let next = offset + entries.len() as i64;
    Ok(Json(json!({
        "entries": entries,
        "pagination": {"limit": limit, "offset": offset, "total": total,
                       "next_offset": (next < total).then_some(next)},
    })))
}
