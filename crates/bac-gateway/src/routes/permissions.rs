//! `/api/v1/integrations/permissions`: the caller's effective permissions, and delegated
//! grants (`view` | `manage`) that only a super admin gives and takes back.
use std::sync::Arc;

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiJson;
use crate::{
    audit::{self, Change, Origin},
    auth::Principal,
    authz::{self, Action, Permission, INTEGRATIONS},
    error::ApiError,
    AppState,
};

const ACTIONS: [(Action, &str); 5] = [
    (Action::ViewStatus, "view_status"),
    (Action::ReadData, "read_data"),
    (Action::WriteData, "write_data"),
    (Action::Configure, "configure"),
    (Action::Grant, "grant"),
];

#[utoipa::path(operation_id = "effective_permissions", get, path = "/api/v1/integrations/permissions", tag = "permissions",
    summary = "The caller's effective permissions per integration",
    responses((status = 200, description = "Permissions", body = crate::openapi::EffectivePermissions), crate::openapi::CommonErrors))]
pub async fn effective(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let c = state.db.get().await.map_err(ApiError::internal)?;
    let rows = c
        .query(
            "SELECT integration, permission_type FROM grants WHERE tenant_id = $1 AND user_id = $2",
            &[&principal.tenant_id, &principal.user_id],
        )
        .await
        .map_err(ApiError::internal)?;
    let list: Vec<Value> = INTEGRATIONS
        .iter()
        .map(|i| {
            let grants: Vec<Permission> = rows
                .iter()
                .filter(|r| r.get::<_, &str>(0) == *i)
                .filter_map(|r| Permission::parse(r.get::<_, &str>(1)))
                .collect();
            let mut entry = json!({
                "integration": i,
                "grants": grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "delegable": authz::delegable(i),
            });
            for (action, name) in ACTIONS {
                entry[name] = json!(authz::allowed(principal.role, &grants, i, action));
            }
            entry
        })
        .collect();
    Ok(Json(json!({
        "user_id": principal.user_id,
        "tenant_id": principal.tenant_id,
        "role": principal.role.as_str(),
        "permissions": list,
    })))
}

/// The documented body of grant and revoke.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    pub user_id: String,
    #[schema(value_type = crate::openapi::IntegrationName)]
    pub integration: String,
    #[schema(value_type = crate::openapi::PermissionType)]
    pub permission_type: String,
}

fn parse(body: &GrantBody) -> Result<Permission, ApiError> {
    if !INTEGRATIONS.contains(&body.integration.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown integration {:?}; one of {}",
            body.integration,
            INTEGRATIONS.join(", ")
        )));
    }
    Permission::parse(&body.permission_type)
        .ok_or_else(|| ApiError::bad_request("permission_type must be view or manage"))
}

/// Only a super admin grants; payments are never delegable (the matrix says both).
fn may_grant(p: &Principal, integration: &str) -> Result<(), ApiError> {
    if authz::role_allows(p.role, integration, Action::Grant) {
        return Ok(());
    }
    let msg = if !authz::delegable(integration) {
        format!("{integration} permissions cannot be delegated")
    } else {
        "only a super admin grants or revokes permissions".to_string()
    };
    Err(ApiError::forbidden(msg).integration(integration))
}

#[utoipa::path(operation_id = "grant_permission", post, path = "/api/v1/integrations/permissions/grant", tag = "permissions",
    summary = "Grant view or manage on an integration (super admin; payments are not delegable)",
    request_body = GrantBody,
    responses((status = 201, description = "Granted", body = crate::openapi::GrantView),
              (status = 200, description = "Already granted", body = crate::openapi::GrantView), crate::openapi::CommonErrors))]
pub async fn grant(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let permission = parse(&body)?;
    may_grant(&principal, &body.integration)?;
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    tx.query_opt(
        "SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2",
        &[&principal.tenant_id, &body.user_id],
    )
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::not_found(format!("no user {}", body.user_id)))?;
    let id = format!("grt_{}", uuid::Uuid::now_v7().simple());
    let row = tx
        .query_opt(
            "INSERT INTO grants (id, tenant_id, user_id, integration, permission_type, granted_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, user_id, integration, permission_type) DO NOTHING
             RETURNING id, created_at",
            &[
                &id,
                &principal.tenant_id,
                &body.user_id,
                &body.integration,
                &permission.as_str(),
                &principal.user_id,
            ],
        )
        .await
        .map_err(ApiError::internal)?;
    let (status, id) = match row {
        Some(r) => {
            let change = Change {
                action: "grant.created",
                target_type: "grant",
                target_id: &id,
                diff: json!({"user_id": body.user_id, "integration": body.integration,
                             "permission_type": permission.as_str()}),
            };
            audit::record(&tx, &principal, &origin, change).await?;
            (StatusCode::CREATED, r.get::<_, String>(0))
        }
        // Granting what is already granted changes nothing.
        None => {
            let r = tx
                .query_one(
                    "SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2 AND integration = $3
                     AND permission_type = $4",
                    &[&principal.tenant_id, &body.user_id, &body.integration, &permission.as_str()],
                )
                .await
                .map_err(ApiError::internal)?;
            (StatusCode::OK, r.get::<_, String>(0))
        }
    };
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((
        status,
        Json(
            json!({"id": id, "user_id": body.user_id, "integration": body.integration,
                    "permission_type": permission.as_str(), "granted_by": principal.user_id}),
        ),
    ))
}

#[utoipa::path(operation_id = "revoke_permission", delete, path = "/api/v1/integrations/permissions/revoke", tag = "permissions",
    summary = "Revoke a grant (super admin)",
    request_body = GrantBody,
    responses((status = 200, description = "Revoked", body = crate::openapi::Revoked), crate::openapi::CommonErrors))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<Value>, ApiError> {
    let permission = parse(&body)?;
    may_grant(&principal, &body.integration)?;
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    let row = tx
        .query_opt(
            "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2 AND integration = $3
             AND permission_type = $4 RETURNING id",
            &[
                &principal.tenant_id,
                &body.user_id,
                &body.integration,
                &permission.as_str(),
            ],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such grant"))?;
    let id: String = row.get(0);
    let change = Change {
        action: "grant.revoked",
        target_type: "grant",
        target_id: &id,
        diff: json!({"user_id": body.user_id, "integration": body.integration,
                     "permission_type": permission.as_str()}),
    };
    audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(Json(json!({"revoked": true, "id": id})))
}
