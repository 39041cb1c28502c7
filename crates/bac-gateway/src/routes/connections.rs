//! `/api/v1/integrations/connections`: create, list, get, update (PATCH), delete and test.
//!
//! Settings and secrets live in the owning service (settings in its schema, secrets in Vault);
//! the gateway keeps a directory row (`connections`: which tenant and service own an id) and
//! checks bodies against the catalog's JSON Schema. Each change writes the directory row and
//! its audit entry in one transaction after the service call succeeded. A create opens it
//! before the call (the new id is reserved); an update or a delete holds no transaction or
//! lock across the call: an update carries the version it merged from (`if_unmodified_since`,
//! a concurrent change gets 409), a delete that was interrupted is finished by a retry.
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use bac_proto::integration::v1::{
    integration_service_client::IntegrationServiceClient, Connection, CreateConnectionRequest,
    DeleteConnectionRequest, GetConnectionRequest, SecretFields, TestConnectionRequest,
    UpdateConnectionRequest,
};
use bac_runtime::{connections::valid_connection_id, ServiceKind};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ApiJson;
use crate::{
    audit::{self, Change, Origin},
    auth::Principal,
    authz::{self, Action},
    catalog::{self, Definition},
    error::ApiError,
    AppState,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// A key of GET /api/v1/integrations/definitions (odoo, zoho, ...).
    #[schema(value_type = crate::openapi::IntegrationName)]
    pub integration: String,
    #[serde(default)]
    pub name: String,
    /// Settings, as the integration's `config_schema` says.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// Secret fields, as the integration's `credentials_schema` says; stored in Vault only.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: Map<String, Value>,
}

/// PATCH body: `config` is a JSON merge patch (RFC 7386) of the settings; `credentials`, when
/// present, replace the stored credentials as a whole.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Merged onto the stored settings (RFC 7386: `null` removes a setting).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    /// Replaces the stored credentials as a whole.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
}

/// A connection as the API shows it: settings and the names of the secret fields that are set.
#[derive(Debug, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub integration: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub config: Value,
    /// Names of the secret fields stored in Vault; never their values.
    pub credentials_set: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct ConnectionSummary {
    pub id: String,
    pub integration: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionSummary>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct TestResult {
    pub connection_id: String,
    pub integration: String,
    pub ok: bool,
    pub message: String,
    pub server_version: String,
    pub latency_ms: u32,
}

/// One integration of the catalog.
#[derive(Debug, utoipa::ToSchema)]
pub struct DefinitionView {
    pub key: String,
    pub name: String,
    pub category: String,
    pub description: String,
    /// basic | oauth2 | api_key | service_account | token | none
    pub auth_type: String,
    /// What works today.
    pub capabilities: Vec<String>,
    /// What the product documents promise and is not built.
    pub planned_capabilities: Vec<String>,
    /// A fleet service serves it with a real domain today.
    pub served: bool,
    /// The binary that answers for it, if any.
    pub service: Option<String>,
    /// built | not_built | no_service
    pub service_state: String,
    /// JSON Schema (draft 2020-12) of the connection's `config`.
    #[schema(value_type = Object)]
    pub config_schema: Value,
    /// JSON Schema (draft 2020-12) of the connection's `credentials`.
    #[schema(value_type = Object)]
    pub credentials_schema: Value,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DefinitionList {
    pub definitions: Vec<DefinitionView>,
}

pub(crate) fn integration_client(
    state: &AppState,
    kind: ServiceKind,
) -> Result<IntegrationServiceClient<crate::services::GrpcChannel>, ApiError> {
    state
        .services
        .channel(kind)
        .map(IntegrationServiceClient::new)
        .ok_or_else(|| ApiError::internal(format!("no channel for {}", kind.key())))
}

/// A connection's settings as JSON: a `Struct` carries numbers as doubles, a port is an
/// integer again (`wkt::integral`).
pub(crate) fn config_value(c: &Connection) -> Value {
    c.config
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .map(bac_runtime::wkt::integral)
        .unwrap_or_else(|| json!({}))
}

fn connection_json(c: &Connection) -> Value {
    json!({
        "id": c.id,
        "integration": c.integration,
        "name": c.name,
        "config": config_value(c),
        "credentials_set": c.secret_fields,
        "created_at": c.created_at.as_ref().map(bac_runtime::wkt::rfc3339),
        "updated_at": c.updated_at.as_ref().map(bac_runtime::wkt::rfc3339),
    })
}

/// The catalog entry of `key`; 400 when the platform has no such integration.
pub(crate) fn definition(key: &str) -> Result<&'static Definition, ApiError> {
    catalog::get(key).ok_or_else(|| {
        ApiError::bad_request(format!("unknown integration {key:?}"))
            .suggest(format!("One of: {}", catalog::keys()))
    })
}

/// 501 for an integration no fleet service serves.
pub(crate) fn not_served(def: &Definition) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "NOT_IMPLEMENTED",
        format!("the {} integration is not built yet", def.key),
    )
    .integration(def.key)
    .suggest("GET /api/v1/integrations/definitions says what each integration supports today")
}

fn check(schema: &Value, value: &Value, part: &str, def: &Definition) -> Result<(), ApiError> {
    catalog::validate(schema, value, part).map_err(|v| {
        ApiError::bad_request(v.to_string())
            .integration(def.key)
            .suggest(format!(
                "See the {} {part} schema at GET /api/v1/integrations/definitions{}",
                def.key,
                if part == "config" {
                    "; secrets go in credentials"
                } else {
                    ""
                }
            ))
    })
}

/// Credentials as the services take them (strings), after the schema said they are.
fn secret_strings(creds: Map<String, Value>) -> Result<HashMap<String, String>, ApiError> {
    creds
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(ApiError::bad_request(format!(
                "credentials.{k} must be a string"
            ))),
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > 200 {
        return Err(ApiError::bad_request("name is longer than 200 characters"));
    }
    Ok(())
}

fn to_struct(v: Value) -> Result<pbjson_types::Struct, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("config: {e}")))
}

/// `GET /api/v1/integrations/definitions`: the catalog (any authenticated caller).
#[utoipa::path(operation_id = "list_definitions", get, path = "/api/v1/integrations/definitions", tag = "connections",
    summary = "Every integration: what it is, whether it is served today, and the JSON Schemas of its connection config and credentials",
    responses((status = 200, description = "The catalog", body = DefinitionList), crate::openapi::CommonErrors))]
pub async fn definitions(_: Principal) -> Json<Value> {
    let list: Vec<Value> = catalog::CATALOG.iter().map(Definition::to_json).collect();
    Json(json!({ "definitions": list }))
}

#[utoipa::path(operation_id = "create_connection", post, path = "/api/v1/integrations/connections", tag = "connections",
    summary = "Create a connection (settings to the owning service, credentials to Vault)",
    request_body = CreateConnection,
    responses((status = 201, description = "Created", body = ConnectionView), crate::openapi::CommonErrors))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // An OAuth connection without a refresh token (a self-client pastes one) is authorised
    // by its user next: the answer carries where to.
    let def = definition(&body.integration)?;
    let authorize = def.needs_authorization(&body.config, &body.credentials);
    let created = create_connection(
        &state,
        &principal,
        &origin,
        &body.integration,
        &body.name,
        body.config,
        body.credentials,
    )
    .await?;
    let mut answer = connection_json(&created);
    if authorize {
        let kind = def.service().ok_or_else(|| not_served(def))?;
        let started = super::oauth::begin(&state, &principal, &headers, kind, &created.id).await?;
        if let (Value::Object(a), Value::Object(s)) = (&mut answer, started) {
            a.extend(s);
        }
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// A connection create, for REST and the gRPC edge alike: checked against the catalog, made
/// in the owning service, then its directory row and audit entry in one transaction (undone
/// in the service if that commit fails).
pub(crate) async fn create_connection(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    integration: &str,
    name: &str,
    config: Map<String, Value>,
    credentials: Map<String, Value>,
) -> Result<Connection, ApiError> {
    let def = definition(integration)?;
    authz::require(&state.db, principal, def.key, Action::Configure).await?;
    let kind = def.service().ok_or_else(|| not_served(def))?;
    check_name(name)?;
    let config = Value::Object(config);
    if def.keeps_connections() {
        check(&def.config_schema, &config, "config", def)?;
        check(
            &def.credentials_schema,
            &Value::Object(credentials.clone()),
            "credentials",
            def,
        )?;
    }
    let id = format!("con_{}", uuid::Uuid::now_v7().simple());
    let req = CreateConnectionRequest {
        id: id.clone(),
        name: name.trim().to_string(),
        config: Some(to_struct(config)?),
        secrets: secret_strings(credentials)?,
    };
    let mut service = integration_client(state, kind)?;
    let created = service
        .create_connection(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let recorded = async {
        let mut client = state.db.get().await.map_err(ApiError::internal)?;
        let tx = client.transaction().await.map_err(ApiError::internal)?;
        tx.execute(
            "INSERT INTO connections (id, tenant_id, integration, name) VALUES ($1, $2, $3, $4)",
            &[&id, &principal.tenant_id, &kind.key(), &created.name],
        )
        .await
        .map_err(ApiError::internal)?;
        audit::record(
            &tx,
            principal,
            origin,
            Change {
                action: "connection.created",
                target_type: "connection",
                target_id: &id,
                diff: json!({
                    "integration": kind.key(),
                    "name": created.name,
                    "config": config_value(&created),
                    "credentials_set": created.secret_fields,
                }),
            },
        )
        .await?;
        tx.commit().await.map_err(ApiError::internal)
    }
    .await;
    if let Err(e) = recorded {
        // Without its directory row the connection is unreachable: remove it from the service.
        let undo = service
            .delete_connection(
                principal
                    .context()
                    .request(DeleteConnectionRequest { id: id.clone() }),
            )
            .await;
        if let Err(s) = undo {
            tracing::error!(connection = %id, error = %s.message(), "could not undo a connection create");
        }
        return Err(e);
    }
    tracing::info!(connection = %id, integration = kind.key(), "connection created");
    Ok(created)
}

/// Whether the caller may view the status of `integration` (403 is a "no", other errors fail).
pub(crate) async fn may_view(
    state: &AppState,
    principal: &Principal,
    integration: &str,
) -> Result<bool, ApiError> {
    match authz::require(&state.db, principal, integration, Action::ViewStatus).await {
        Ok(()) => Ok(true),
        Err(e) if e.status == StatusCode::FORBIDDEN => Ok(false),
        Err(e) => Err(e),
    }
}

/// The tenant's connections of the integrations the caller may view.
#[utoipa::path(operation_id = "list_connections", get, path = "/api/v1/integrations/connections", tag = "connections",
    summary = "The tenant's connections of the integrations the caller may view",
    responses((status = 200, description = "Connections", body = ConnectionList), crate::openapi::CommonErrors))]
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
    drop(client);
    let mut visible: HashMap<String, bool> = HashMap::new();
    let mut list = Vec::new();
    for r in &rows {
        let integration: String = r.get(1);
        let may = match visible.get(&integration) {
            Some(v) => *v,
            None => {
                let v = may_view(&state, &principal, &integration).await?;
                visible.insert(integration.clone(), v);
                v
            }
        };
        if !may {
            continue;
        }
        let created: chrono::DateTime<chrono::Utc> = r.get(3);
        list.push(json!({
            "id": r.get::<_, String>(0),
            "integration": integration,
            "name": r.get::<_, String>(2),
            "created_at": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }));
    }
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

/// Locks the directory row for this change; its name, or 404 when it went meanwhile.
async fn directory_name(state: &AppState, tenant: &str, id: &str) -> Result<String, ApiError> {
    let client = state.db.get().await.map_err(ApiError::internal)?;
    client
        .query_opt(
            "SELECT name FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&tenant, &id],
        )
        .await
        .map_err(ApiError::internal)?
        .map(|r| r.get(0))
        .ok_or_else(|| ApiError::not_found(format!("no connection {id}")))
}

#[utoipa::path(operation_id = "get_connection", get, path = "/api/v1/integrations/connections/{id}", tag = "connections",
    summary = "One connection: settings and which secret fields are set",
    params(("id" = String, Path, description = "Connection id (con_...)")),
    responses((status = 200, description = "The connection", body = ConnectionView), crate::openapi::CommonErrors))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ViewStatus).await?;
    let conn = integration_client(&state, kind)?
        .get_connection(principal.context().request(GetConnectionRequest { id }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(connection_json(&conn)))
}

#[utoipa::path(operation_id = "update_connection", patch, path = "/api/v1/integrations/connections/{id}", tag = "connections",
    description = "Depends on the connection: `config` and `credentials` must follow the schemas of the connection's integration (GET /api/v1/integrations/definitions), which the path's id decides.",
    summary = "Change a connection's name, settings (merge patch) and/or credentials (replaced)",
    params(("id" = String, Path, description = "Connection id (con_...)")),
    request_body = UpdateConnection,
    responses((status = 200, description = "The changed connection", body = ConnectionView), crate::openapi::CommonErrors))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConnection>,
) -> Result<Json<Value>, ApiError> {
    let change = ConnectionChange {
        name: body.name,
        config: body.config.map(ConfigChange::Merge),
        credentials: body.credentials,
        if_unmodified_since: None,
    };
    let (after, _) = update_connection(&state, &principal, &origin, &id, change).await?;
    Ok(Json(connection_json(&after)))
}

/// How an update gives the settings.
pub(crate) enum ConfigChange {
    /// A JSON merge patch (RFC 7386) onto the stored settings (REST's PATCH).
    Merge(Map<String, Value>),
    /// The complete new settings (gRPC's `UpdateConnectionRequest.config`).
    Replace(Map<String, Value>),
}

/// One connection change; `None` leaves a part as it is.
pub(crate) struct ConnectionChange {
    pub name: Option<String>,
    pub config: Option<ConfigChange>,
    pub credentials: Option<Map<String, Value>>,
    /// The caller's own precondition; without it, the version this change was merged from.
    pub if_unmodified_since: Option<pbjson_types::Timestamp>,
}

/// A connection update, for REST and the gRPC edge alike, audited (settings diff, and the
/// names of changed secret fields). The connection after, and the names of the secret fields
/// that changed.
pub(crate) async fn update_connection(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    id: &str,
    body: ConnectionChange,
) -> Result<(Connection, Vec<String>), ApiError> {
    let id = id.to_string();
    let kind = owner(state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, principal, kind.key(), Action::Configure).await?;
    let def = definition(kind.key())?;
    if body.name.is_none() && body.config.is_none() && body.credentials.is_none() {
        return Err(ApiError::bad_request(
            "nothing to update: give name, config and/or credentials",
        ));
    }
    let name = body.name.as_deref().map(str::trim);
    if let Some(n) = name {
        check_name(n)?;
        if n.is_empty() {
            return Err(ApiError::bad_request("name must not be empty"));
        }
    }
    if def.keeps_connections() {
        if let Some(c) = &body.credentials {
            check(
                &def.credentials_schema,
                &Value::Object(c.clone()),
                "credentials",
                def,
            )?;
        }
    }
    // No transaction or row lock is held across the service calls: the update carries the
    // version it was merged from (if_unmodified_since), so a concurrent change is refused
    // (409) instead of overwritten, and nothing else waits on this request meanwhile.
    let mut service = integration_client(state, kind)?;
    let before = service
        .get_connection(
            principal
                .context()
                .request(GetConnectionRequest { id: id.clone() }),
        )
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let old_config = config_value(&before);
    let new_config = match body.config {
        Some(change) => {
            let merged = match change {
                ConfigChange::Merge(patch) => {
                    let mut merged = old_config.clone();
                    catalog::merge_patch(&mut merged, &Value::Object(patch));
                    merged
                }
                ConfigChange::Replace(all) => Value::Object(all),
            };
            if def.keeps_connections() {
                check(&def.config_schema, &merged, "config", def)?;
            }
            Some(merged)
        }
        None => None,
    };
    let req = UpdateConnectionRequest {
        id: id.clone(),
        if_unmodified_since: body.if_unmodified_since.or(before.updated_at),
        name: name.map(str::to_string),
        config: new_config.clone().map(to_struct).transpose()?,
        secrets: body
            .credentials
            .map(secret_strings)
            .transpose()?
            .map(|fields| SecretFields { fields }),
    };
    let credentials_given = req.secrets.is_some();
    let resp = service
        .update_connection(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let after = resp
        .connection
        .ok_or_else(|| ApiError::internal("UpdateConnection returned no connection"))?;
    let mut client = state.db.get().await.map_err(ApiError::internal)?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;
    if after.name != before.name {
        tx.execute(
            "UPDATE connections SET name = $3 WHERE tenant_id = $1 AND id = $2",
            &[&principal.tenant_id, &id, &after.name],
        )
        .await
        .map_err(ApiError::internal)?;
    }
    let mut diff = Map::new();
    if after.name != before.name {
        diff.insert(
            "name".into(),
            json!({"from": before.name, "to": after.name}),
        );
    }
    let config_diff = changed_keys(&old_config, &config_value(&after));
    if !config_diff.is_empty() {
        diff.insert("config".into(), Value::Object(config_diff));
    }
    if !diff.is_empty() {
        audit::record(
            &tx,
            principal,
            origin,
            Change {
                action: "connection.updated",
                target_type: "connection",
                target_id: &id,
                diff: Value::Object(diff),
            },
        )
        .await?;
    }
    if credentials_given && !resp.changed_secret_fields.is_empty() {
        audit::record(
            &tx,
            principal,
            origin,
            Change {
                action: "credentials.updated",
                target_type: "connection",
                target_id: &id,
                // Field names only, never values.
                diff: json!({
                    "changed_fields": resp.changed_secret_fields,
                    "fields_set_before": before.secret_fields,
                    "fields_set_after": after.secret_fields,
                }),
            },
        )
        .await?;
    }
    commit(tx, &id).await?;
    tracing::info!(connection = %id, integration = kind.key(), "connection updated");
    Ok((after, resp.changed_secret_fields))
}

/// Commits a change the service already made; if Postgres refuses, say so loudly.
async fn commit(tx: bac_runtime::db::Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.commit().await.map_err(|e| {
        ApiError::internal(format!(
            "connection {id} changed in its service but the directory/audit commit failed: {e}"
        ))
    })
}

/// `{key: {"from", "to"}}` for every top-level key whose value differs.
fn changed_keys(before: &Value, after: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| (k.clone(), json!({"from": b.get(k), "to": a.get(k)})))
        .collect()
}

#[utoipa::path(operation_id = "delete_connection", delete, path = "/api/v1/integrations/connections/{id}", tag = "connections",
    summary = "Delete a connection, its settings and its credentials",
    params(("id" = String, Path, description = "Connection id (con_...)")),
    responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_connection(&state, &principal, &origin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connection delete, for REST and the gRPC edge alike: the service's settings and
/// secrets, then the directory row and the audit entry.
pub(crate) async fn delete_connection(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    id: &str,
) -> Result<(), ApiError> {
    let id = id.to_string();
    let kind = owner(state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, principal, kind.key(), Action::Configure).await?;
    let name = directory_name(state, &principal.tenant_id, &id).await?;
    // The service call holds no transaction or lock here; the directory row and the audit
    // entry follow in one short transaction (a retried delete finishes an interrupted one).
    let deleted = integration_client(state, kind)?
        .delete_connection(
            principal
                .context()
                .request(DeleteConnectionRequest { id: id.clone() }),
        )
        .await;
    match deleted {
        Ok(_) => {}
        // Gone from the service already (an earlier delete whose commit failed): finish it.
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(ApiError::from_status(&s, kind.key())),
    }
    let mut client = state.db.get().await.map_err(ApiError::internal)?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;
    let removed = tx
        .execute(
            "DELETE FROM connections WHERE tenant_id = $1 AND id = $2",
            &[&principal.tenant_id, &id],
        )
        .await
        .map_err(ApiError::internal)?;
    // A concurrent delete got there first: it answered and audited, this one has nothing to do.
    if removed == 0 {
        return Err(ApiError::not_found(format!("no connection {id}")));
    }
    audit::record(
        &tx,
        principal,
        origin,
        Change {
            action: "connection.deleted",
            target_type: "connection",
            target_id: &id,
            diff: json!({"integration": kind.key(), "name": name}),
        },
    )
    .await?;
    commit(tx, &id).await?;
    tracing::info!(connection = %id, integration = kind.key(), "connection deleted");
    Ok(())
}

#[utoipa::path(operation_id = "test_connection", post, path = "/api/v1/integrations/connections/{id}/test", tag = "connections",
    summary = "Log in upstream with the stored credentials",
    params(("id" = String, Path, description = "Connection id (con_...)")),
    responses((status = 200, description = "The upstream answered", body = TestResult), crate::openapi::CommonErrors))]
pub async fn test(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::Configure).await?;
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
