//! `/api/v1/integrations/connections`: create (settings to the owning service, secrets to
//! Vault through it), list, and test.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use bac_proto::integration::v1::{
    integration_service_client::IntegrationServiceClient, CreateConnectionRequest,
    TestConnectionRequest,
};
use bac_runtime::{connections::valid_connection_id, ServiceKind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiJson;
use crate::{
    auth::{Principal, Role},
    error::ApiError,
    AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    pub integration: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    #[serde(default)]
    pub credentials: HashMap<String, String>,
}

pub(crate) fn integration_client(
    state: &AppState,
    kind: ServiceKind,
) -> Result<IntegrationServiceClient<tonic::transport::Channel>, ApiError> {
    state
        .services
        .channel(kind)
        .map(IntegrationServiceClient::new)
        .ok_or_else(|| ApiError::internal(format!("no channel for {}", kind.key())))
}

fn connection_json(c: &bac_proto::integration::v1::Connection) -> Value {
    json!({
        "id": c.id,
        "integration": c.integration,
        "name": c.name,
        "config": c.config.as_ref().and_then(|s| serde_json::to_value(s).ok()).unwrap_or(json!({})),
        "credentials_set": c.secret_fields,
        "created_at": c.created_at.as_ref().map(ts),
        "updated_at": c.updated_at.as_ref().map(ts),
    })
}

pub(crate) fn ts(t: &pbjson_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::SuperAdmin, "creating a connection")?;
    let kind = ServiceKind::parse(&body.integration)
        .filter(|k| *k != ServiceKind::Gateway)
        .ok_or_else(|| {
            ApiError::bad_request(format!("unknown integration {:?}", body.integration))
                .suggest("One of: google-workspace, odoo, zoho, tally, messaging")
        })?;
    if body.name.len() > 200 {
        return Err(ApiError::bad_request("name is longer than 200 characters"));
    }
    let id = format!("con_{}", uuid::Uuid::now_v7().simple());
    let config = serde_json::from_value(Value::Object(body.config))
        .map_err(|e| ApiError::bad_request(format!("config: {e}")))?;
    let req = CreateConnectionRequest {
        id: id.clone(),
        name: body.name.clone(),
        config: Some(config),
        secrets: body.credentials,
    };
    let created = integration_client(&state, kind)?
        .create_connection(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let client = state.db.get().await.map_err(ApiError::internal)?;
    client
        .execute(
            "INSERT INTO connections (id, tenant_id, integration, name) VALUES ($1, $2, $3, $4)",
            &[&id, &principal.tenant_id, &kind.key(), &created.name],
        )
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(connection = %id, integration = kind.key(), "connection created");
    Ok((StatusCode::CREATED, Json(connection_json(&created))))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let client = state.db.get().await.map_err(ApiError::internal)?;
    let rows = client
        .query(
            "SELECT id, integration, name, created_at FROM connections
             WHERE tenant_id = $1 ORDER BY created_at, id",
            &[&principal.tenant_id],
        )
        .await
        .map_err(ApiError::internal)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let created: chrono::DateTime<chrono::Utc> = r.get(3);
            json!({
                "id": r.get::<_, String>(0),
                "integration": r.get::<_, String>(1),
                "name": r.get::<_, String>(2),
                "created_at": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    Ok(Json(json!({ "connections": list })))
}

/// The owning integration of a tenant's connection; 404 for another tenant's id.
pub(crate) async fn owner(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<ServiceKind, ApiError> {
    let missing = || ApiError::not_found(format!("no connection {id}"));
    if !valid_connection_id(id) {
        return Err(missing());
    }
    let client = state.db.get().await.map_err(ApiError::internal)?;
    let row = client
        .query_opt(
            "SELECT integration FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &id],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    ServiceKind::parse(&row.get::<_, String>(0)).ok_or_else(missing)
}

pub async fn test(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Admin, "testing a connection")?;
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    let resp = integration_client(&state, kind)?
        .test_connection(
            principal
                .context()
                .request(TestConnectionRequest { id: id.clone() }),
        )
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(json!({
        "connection_id": id,
        "integration": kind.key(),
        "ok": resp.ok,
        "message": resp.message,
        "server_version": resp.server_version,
        "latency_ms": resp.latency_ms,
    })))
}
