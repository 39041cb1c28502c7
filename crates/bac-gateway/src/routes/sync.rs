//! Sync management: trigger a sync, its run log, per-entity settings (frequency, conflict
//! strategy), field mappings with a preview, and the conflict review queue. Each route finds
//! the connection's owning service and calls its `IntegrationService`.
use std::{collections::BTreeMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use bac_proto::integration::v1::{
    Conflict, FieldMapping, FieldOwners, GetConflictRequest, GetMappingRequest,
    ListConflictsRequest, ListSyncRunsRequest, ListSyncSettingsRequest, PreviewMappingRequest,
    PutMappingRequest, ResolveConflictRequest, SyncSettings, TriggerSyncRequest,
    UpdateSyncSettingsRequest, WebhookRequest,
};
use bac_runtime::ServiceKind;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{
    connections::{integration_client, owner},
    ApiJson, ApiQuery,
};
use crate::{
    audit::{self, Change, Origin},
    auth::Principal,
    authz::{self, Action},
    error::ApiError,
    AppState,
};

/// Services that run the sync engine (conflict ids are looked up in each).
const SYNCING: &[ServiceKind] = &[ServiceKind::Odoo];

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn to_struct(v: Value, what: &str) -> Result<pbjson_types::Struct, ApiError> {
    serde_json::from_value(v)
        .map_err(|_| ApiError::bad_request(format!("{what} must be an object")))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// One entity (e.g. `crm_lead`); absent: every entity.
    #[schema(value_type = Option<crate::openapi::EntityName>)]
    pub entity: Option<String>,
    /// `incremental` (default) or `full`.
    #[schema(value_type = Option<crate::openapi::SyncMode>)]
    pub mode: Option<String>,
}

#[utoipa::path(operation_id = "trigger_sync", post, path = "/api/v1/integrations/connections/{id}/sync", tag = "sync",
    summary = "Start a sync now (one entity or all); a run already queued or running is reused",
    params(("id" = String, Path, description = "Connection id")),
    request_body(content = Option<TriggerBody>, description = "Optional"),
    responses((status = 202, description = "Queued: {sync_run_id, sync_run_ids}"), crate::openapi::CommonErrors))]
pub async fn trigger(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // No body, or JSON null (an absent optional body): every entity, incremental.
    let body: TriggerBody =
        if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            TriggerBody::default()
        } else {
            super::object_body(&body)?;
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
        };
    // Absent means every entity and incremental; an empty text names neither.
    if body.entity.as_deref() == Some("") {
        return Err(ApiError::bad_request(
            "entity must name an entity (e.g. crm_lead), or be left out for every entity",
        ));
    }
    if body
        .mode
        .as_deref()
        .is_some_and(|m| m != "incremental" && m != "full")
    {
        return Err(ApiError::bad_request("mode must be incremental or full"));
    }
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::WriteData).await?;
    let resp = integration_client(&state, kind)?
        .trigger_sync(principal.context().request(TriggerSyncRequest {
            connection_id: id,
            entity: body.entity.unwrap_or_default(),
            mode: body.mode.unwrap_or_default(),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(to_json(&resp))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    pub entity: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(operation_id = "list_sync_runs", get, path = "/api/v1/integrations/connections/{id}/sync-runs", tag = "sync",
    summary = "The connection's sync runs, newest first, with counts, errors and timings",
    params(("id" = String, Path, description = "Connection id"),
           ("entity" = Option<String>, Query, description = "Only this entity (e.g. crm_lead; an entity the connection does not sync lists nothing)"),
           ("limit" = Option<u32>, Query, maximum = 200, description = "Default 20, at most 200")),
    responses((status = 200, description = "{runs: [...]}"), crate::openapi::CommonErrors))]
pub async fn runs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ViewStatus).await?;
    if q.limit.is_some_and(|l| l > 200) {
        return Err(ApiError::bad_request("limit must be at most 200"));
    }
    let resp = integration_client(&state, kind)?
        .list_sync_runs(principal.context().request(ListSyncRunsRequest {
            connection_id: id,
            entity: q.entity.unwrap_or_default(),
            limit: q.limit.unwrap_or(0),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[utoipa::path(operation_id = "list_sync_settings", get, path = "/api/v1/integrations/connections/{id}/sync-settings", tag = "sync",
    summary = "Frequency, conflict strategy and field owners of every synced entity",
    params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, description = "{settings: [...]}"), crate::openapi::CommonErrors))]
pub async fn settings(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ViewStatus).await?;
    let resp = integration_client(&state, kind)?
        .list_sync_settings(
            principal
                .context()
                .request(ListSyncSettingsRequest { connection_id: id }),
        )
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// manual | hourly | daily | weekly | a cron expression ("*/15 * * * *", UTC)
    pub frequency: Option<String>,
    /// last_write_wins | merge | prefer_remote | prefer_local | manual
    pub conflict_strategy: Option<String>,
    /// For merge: field -> "platform" | "remote" (who wins when both changed it).
    pub field_owners: Option<BTreeMap<String, String>>,
}

#[utoipa::path(operation_id = "update_sync_settings", patch, path = "/api/v1/integrations/connections/{id}/sync-settings/{entity}", tag = "sync",
    summary = "Change an entity's sync frequency, conflict strategy or field owners",
    description = "Checked beyond the schema: `frequency` is manual, hourly, daily, weekly or a cron expression that must parse (at least a minute apart); a schema cannot say which texts are cron expressions.",
    params(("id" = String, Path, description = "Connection id"), ("entity" = crate::openapi::EntityName, Path, description = "The entity (an Odoo connection's; see GET /api/v1/integrations/definitions)")),
    request_body = SettingsBody,
    responses((status = 200, description = "The entity's settings"), crate::openapi::CommonErrors))]
pub async fn update_settings(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((id, entity)): Path<(String, String)>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    let req = UpdateSyncSettingsRequest {
        connection_id: id,
        entity,
        frequency: body.frequency,
        conflict_strategy: body.conflict_strategy,
        field_owners: body.field_owners.map(|o| FieldOwners {
            owners: o.into_iter().collect(),
        }),
    };
    let resp = update_sync_settings(&state, &principal, &origin, req).await?;
    Ok(Json(to_json(&resp)))
}

/// A change of an entity's sync settings, for REST and the gRPC edge alike, audited.
pub(crate) async fn update_sync_settings(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    req: UpdateSyncSettingsRequest,
) -> Result<SyncSettings, ApiError> {
    let id = req.connection_id.clone();
    let kind = owner(state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, principal, kind.key(), Action::Configure).await?;
    if req.frequency.is_none() && req.conflict_strategy.is_none() && req.field_owners.is_none() {
        return Err(ApiError::bad_request(
            "nothing to update: give frequency, conflict_strategy and/or field_owners",
        ));
    }
    let diff = json!({"entity": req.entity, "frequency": req.frequency,
        "conflict_strategy": req.conflict_strategy,
        "field_owners": req.field_owners.as_ref().map(|o| o.owners.iter().collect::<BTreeMap<_, _>>())});
    let resp = integration_client(state, kind)?
        .update_sync_settings(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    audited(state, principal, origin, "sync_settings.updated", &id, diff).await?;
    Ok(resp)
}

async fn audited(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    action: &'static str,
    id: &str,
    diff: Value,
) -> Result<(), ApiError> {
    let mut client = state.db.get().await.map_err(ApiError::internal)?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;
    audit::record(
        &tx,
        principal,
        origin,
        Change {
            action,
            target_type: "connection",
            target_id: id,
            diff,
        },
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/v1/integrations/connections/{id}/mappings/{entity}", tag = "sync",
    summary = "The field mapping in force (version 0: the integration's default)",
    params(("id" = String, Path, description = "Connection id"), ("entity" = crate::openapi::EntityName, Path, description = "The entity (an Odoo connection's; see GET /api/v1/integrations/definitions)")),
    responses((status = 200, description = "{connection_id, entity, version, rules, created_at}"), crate::openapi::CommonErrors))]
pub async fn get_mapping(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((id, entity)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ViewStatus).await?;
    let resp = integration_client(&state, kind)?
        .get_mapping(principal.context().request(GetMappingRequest {
            connection_id: id,
            entity,
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[utoipa::path(put, path = "/api/v1/integrations/connections/{id}/mappings/{entity}", tag = "sync",
    summary = "Validate and save a new version of an entity's field mapping",
    description = "Checked beyond the schema: the rules must make a valid mapping (docs/sync.md: paths, one source per target, known transforms, strftime patterns and time zones); a refused mapping is a 400 listing every problem.",
    params(("id" = String, Path, description = "Connection id"), ("entity" = crate::openapi::EntityName, Path, description = "The entity (an Odoo connection's; see GET /api/v1/integrations/definitions)")),
    request_body(content = Object, description = "{\"fields\": [{\"target\", \"source\" | \"constant\" | \"concat\", \"transforms\", \"default\", \"required\"}]}"),
    responses((status = 200, description = "The saved mapping with its version"), crate::openapi::CommonErrors))]
pub async fn put_mapping(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((id, entity)): Path<(String, String)>,
    ApiJson(rules): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let req = PutMappingRequest {
        connection_id: id,
        entity,
        rules: Some(to_struct(rules, "the mapping")?),
    };
    let resp = save_mapping(&state, &principal, &origin, req).await?;
    Ok(Json(to_json(&resp)))
}

/// A new mapping version, for REST and the gRPC edge alike, audited.
pub(crate) async fn save_mapping(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    req: PutMappingRequest,
) -> Result<FieldMapping, ApiError> {
    let id = req.connection_id.clone();
    let entity = req.entity.clone();
    let kind = owner(state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, principal, kind.key(), Action::Configure).await?;
    let resp = integration_client(state, kind)?
        .put_mapping(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    audited(
        state,
        principal,
        origin,
        "mapping.updated",
        &id,
        json!({"entity": entity, "version": resp.version}),
    )
    .await?;
    Ok(resp)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// A mapping to try; absent: the one in force.
    #[schema(value_type = Option<Object>)]
    pub rules: Option<Value>,
    /// Upstream records to map; absent: the first five upstream records, fetched live.
    #[schema(value_type = Option<Vec<Object>>)]
    pub samples: Option<Vec<Value>>,
}

#[utoipa::path(post, path = "/api/v1/integrations/connections/{id}/mappings/{entity}/preview", tag = "sync",
    summary = "Apply a mapping to sample records without saving anything",
    description = "Checked beyond the schema: `rules`, when given, must make a valid mapping (as for PUT); without `samples` the first five upstream records are fetched, so the answer depends on the upstream's data.",
    params(("id" = String, Path, description = "Connection id"), ("entity" = crate::openapi::EntityName, Path, description = "The entity (an Odoo connection's; see GET /api/v1/integrations/definitions)")),
    request_body = PreviewBody,
    responses((status = 200, description = "{results: [{input, output, error}]}"), crate::openapi::CommonErrors))]
pub async fn preview_mapping(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((id, entity)): Path<(String, String)>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ReadData).await?;
    let samples = body
        .samples
        .unwrap_or_default()
        .into_iter()
        .map(|s| to_struct(s, "every sample"))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = body.rules.map(|r| to_struct(r, "rules")).transpose()?;
    let resp = integration_client(&state, kind)?
        .preview_mapping(principal.context().request(PreviewMappingRequest {
            connection_id: id,
            entity,
            rules,
            samples,
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictsQuery {
    /// open (default) | resolved | all
    pub status: Option<String>,
}

#[utoipa::path(operation_id = "list_conflicts", get, path = "/api/v1/integrations/connections/{id}/conflicts", tag = "sync",
    summary = "Conflicts of two-way sync (open ones by default)",
    params(("id" = String, Path, description = "Connection id"),
           ("status" = Option<crate::openapi::ConflictStatus>, Query, description = "open (default) | resolved | all")),
    responses((status = 200, description = "{conflicts: [...]}"), crate::openapi::CommonErrors))]
pub async fn conflicts(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ConflictsQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::ReadData).await?;
    if q.status.as_deref() == Some("") {
        return Err(ApiError::bad_request(
            "status must be open, resolved or all (or left out: open)",
        ));
    }
    let resp = integration_client(&state, kind)?
        .list_conflicts(principal.context().request(ListConflictsRequest {
            connection_id: id,
            status: q.status.unwrap_or_default(),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// remote (keep upstream's record) | local (write the platform's values) | merged
    pub resolution: String,
    /// The field values to write when resolution is "merged".
    #[schema(value_type = Option<Object>)]
    pub merged: Option<Value>,
}

#[utoipa::path(operation_id = "resolve_conflict", post, path = "/api/v1/integrations/conflicts/{id}/resolve", tag = "sync",
    summary = "Resolve a conflict from the review queue",
    params(("id" = String, Path, description = "Conflict id (cfl_...)")),
    request_body = ResolveBody,
    responses((status = 200, description = "The resolved conflict"), crate::openapi::CommonErrors))]
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<Value>, ApiError> {
    let req = ResolveConflictRequest {
        id,
        resolution: body.resolution,
        merged: body.merged.map(|m| to_struct(m, "merged")).transpose()?,
    };
    let c = resolve_conflict(&state, &principal, &origin, req).await?;
    Ok(Json(to_json(&c)))
}

/// A conflict resolution, for REST and the gRPC edge alike, audited. The conflict says whose
/// it is (the service that holds it); the caller's right to write that integration's data is
/// checked then, and only that one.
pub(crate) async fn resolve_conflict(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    req: ResolveConflictRequest,
) -> Result<Conflict, ApiError> {
    let id = req.id.clone();
    let kind = conflict_owner(state, principal, &id).await?;
    authz::require(&state.db, principal, kind.key(), Action::WriteData).await?;
    let c = integration_client(state, kind)?
        .resolve_conflict(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    audited(
        state,
        principal,
        origin,
        "conflict.resolved",
        &c.connection_id,
        json!({"conflict": id, "resolution": c.resolution}),
    )
    .await?;
    Ok(c)
}

/// The service holding the tenant's conflict `id` (conflict ids do not name it); 404 when none.
async fn conflict_owner(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<ServiceKind, ApiError> {
    if !id.starts_with("cfl_") || id.len() > 64 {
        return Err(ApiError::not_found(format!("no conflict {id}")));
    }
    for kind in SYNCING {
        let found = integration_client(state, *kind)?
            .get_conflict(
                principal
                    .context()
                    .request(GetConflictRequest { id: id.into() }),
            )
            .await;
        match found {
            Ok(_) => return Ok(*kind),
            Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::Unimplemented) => {}
            Err(s) => return Err(ApiError::from_status(&s, kind.key())),
        }
    }
    Err(ApiError::not_found(format!("no conflict {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTokenQuery {
    /// `query`: also give the URL with the token in its query string, for an upstream that
    /// cannot send headers (Odoo's "Send Webhook Notification" automation).
    pub form: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/integrations/connections/{id}/webhook-token", tag = "sync",
    summary = "Create (or replace) the connection's webhook token; shown once",
    params(("id" = String, Path, description = "Connection id"),
           ("form" = Option<crate::openapi::TokenForm>, Query, description = "\"query\": also return webhook_url_with_token, for upstreams that cannot send the X-Webhook-Token header")),
    responses((status = 201, description = "{token, header, webhook_url[, webhook_url_with_token]}: the upstream posts to webhook_url with the token in the X-Webhook-Token header"), crate::openapi::CommonErrors))]
pub async fn create_webhook_token(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WebhookTokenQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let with_query = match q.form.as_deref() {
        None | Some("header") => false,
        Some("query") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "form must be header or query, not {other:?}"
            )))
        }
    };
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::Configure).await?;
    let token = format!("whk_{}", crate::auth::mint_key().key.replace("bac_", ""));
    let mut client = state.db.get().await.map_err(ApiError::internal)?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;
    let n = tx
        .execute(
            "UPDATE connections SET webhook_token_sha256 = $3 WHERE tenant_id = $1 AND id = $2",
            &[&principal.tenant_id, &id, &crate::auth::hash_key(&token)],
        )
        .await
        .map_err(ApiError::internal)?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no connection {id}")));
    }
    audit::record(
        &tx,
        &principal,
        &origin,
        Change {
            action: "webhook_token.created",
            target_type: "connection",
            target_id: &id,
            diff: json!({"integration": kind.key()}),
        },
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    // The token goes in a header by default: a URL ends up in proxies' access logs.
    let url = format!("/api/v1/integrations/connections/{id}/webhook");
    let mut body = json!({
        "connection_id": id,
        "token": token,
        "header": "X-Webhook-Token",
        "webhook_url": url,
    });
    if with_query {
        body["webhook_url_with_token"] = json!(format!("{url}?token={token}"));
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(operation_id = "receive_webhook", post, path = "/api/v1/integrations/connections/{id}/webhook", tag = "sync",
    summary = "Upstream webhook: the named records changed (authenticated by the webhook token)",
    params(("id" = String, Path, description = "Connection id"),
           ("token" = Option<String>, Query, description = "The connection's webhook token (or the X-Webhook-Token header)")),
    request_body(content = Object, description = "What the upstream sends, as it sends it; the owning service reads it (Odoo: the automation webhook body {\"_model\", \"_id\", ...} or {\"entity\", \"ids\"})"),
    responses((status = 202, description = "What the service made of it (Odoo: {entity, created, updated, deleted, unchanged})"), crate::openapi::CommonErrors),
    security(()))]
pub async fn webhook(
    State(state): State<Arc<AppState>>,
    crate::http::Source(source): crate::http::Source,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    // A source that sent a wrong token lately pays for each check (ratelimit::SourceGuard).
    state.guard.spend_if_failing(source)?;
    let result = webhook_call(&state, id, uri.query().unwrap_or(""), &headers, body).await;
    // Only the gateway's own refusal (a wrong webhook token) costs the source: an upstream's
    // signature the owning service refused (a tenant's misconfigured Slack app) must not
    // throttle the provider's address for every other tenant.
    if matches!(&result, Err(e) if e.status == StatusCode::UNAUTHORIZED && e.integration.is_none())
    {
        state.guard.failed(source);
    }
    result
}

#[utoipa::path(operation_id = "receive_push", post, path = "/api/v1/integrations/connections/{id}/push", tag = "sync",
    summary = "Push channel notification: a provider tells which records changed (authenticated by the channel's own token)",
    params(("id" = String, Path, description = "Connection id")),
    request_body(content = Object, description = "What the provider sends on a push channel the fleet opened, as it sends it (Zoho CRM: {channel_id, token, module, ids, operation}); the owning service checks the channel and its token"),
    responses((status = 202, description = "What the service made of it ({entity, created, updated, deleted, unchanged})"), crate::openapi::CommonErrors),
    security(()))]
pub async fn push(
    State(state): State<Arc<AppState>>,
    crate::http::Source(source): crate::http::Source,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    state.guard.spend_if_failing(source)?;
    let result = forward_webhook(&state, id, uri.query().unwrap_or(""), &headers, body, None).await;
    if matches!(&result, Err(e) if e.status == StatusCode::UNAUTHORIZED) {
        state.guard.failed(source);
    }
    result
}

/// Headers the service never sees: the gateway's own business (credentials, the token,
/// hop-by-hop and size headers). An `Authorization` that carries an upstream's signed JWT
/// (the Bot Framework's, Google Chat's) is the exception: it is how those upstreams sign.
const WEBHOOK_DROPPED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "x-webhook-token",
    "x-api-key",
    "connection",
    "content-length",
    "transfer-encoding",
    "host",
];

/// A bearer JWT (three base64url parts, a JSON header): an upstream's signature, never one of
/// the fleet's API keys.
fn upstream_jwt(value: &str) -> bool {
    value.strip_prefix("Bearer ").is_some_and(|t| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() == 3
            && t.starts_with("eyJ")
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    })
}

/// Checks the connection's webhook token, then hands the request as it came to the owning
/// service (`HandleWebhook`): its connector verifies, answers and reads it.
async fn webhook_call(
    state: &AppState,
    id: String,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let refused = || ApiError::unauthorized("invalid or missing webhook token");
    if crate::routes::query_has_nul(query) {
        return Err(crate::routes::nul_refused());
    }
    // The header keeps the token out of access logs; the query form is for upstreams (Odoo's
    // automation webhooks) that cannot set headers. The rest of the query goes to the service.
    let mut query_token = None;
    let rest = {
        let mut rest = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == "token" {
                query_token = Some(v.into_owned());
            } else {
                rest.append_pair(&k, &v);
            }
        }
        rest.finish()
    };
    let token = headers
        .get("x-webhook-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query_token)
        .filter(|t| t.starts_with("whk_"))
        .ok_or_else(refused)?;
    forward_webhook(state, id, &rest, headers, body, Some(&token)).await
}

/// Hands an upstream's request to the service that owns connection `id`: a webhook whose
/// gateway token is checked here (`token`), or a push notification (`None`) the service
/// authenticates by its channel's token.
async fn forward_webhook(
    state: &AppState,
    id: String,
    rest: &str,
    headers: &axum::http::HeaderMap,
    body: Bytes,
    token: Option<&str>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use subtle::ConstantTimeEq;
    let refused = || match token {
        Some(_) => ApiError::unauthorized("invalid or missing webhook token"),
        None => ApiError::unauthorized("not a notification of this connection's push channels"),
    };
    if crate::routes::query_has_nul(rest) {
        return Err(crate::routes::nul_refused());
    }
    let client = state.db.get().await.map_err(ApiError::internal)?;
    let row = client
        .query_opt(
            "SELECT tenant_id, integration, webhook_token_sha256 FROM connections WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(refused)?;
    drop(client);
    let (tenant, integration, stored): (String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    if let Some(token) = token {
        let given = crate::auth::hash_key(token);
        let ok = stored.is_some_and(|s| bool::from(s.as_bytes().ct_eq(given.as_bytes())));
        if !ok {
            return Err(refused());
        }
    }
    let kind = ServiceKind::parse(&integration).ok_or_else(refused)?;
    let mut forwarded: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let Ok(value) = value.to_str() else { continue };
        if WEBHOOK_DROPPED_HEADERS.contains(&name)
            && !(name == "authorization" && upstream_jwt(value))
        {
            continue;
        }
        forwarded
            .entry(name.to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_string());
    }
    let ctx = bac_runtime::RequestContext {
        tenant_id: tenant,
        principal: format!("webhook:{id}"),
        request_id: crate::error::current_request_id(),
        traceparent: bac_runtime::telemetry::current_traceparent(),
    };
    let answer = integration_client(state, kind)?
        .handle_webhook(ctx.request(WebhookRequest {
            connection_id: id,
            headers: forwarded,
            body: body.to_vec(),
            query: rest.to_string(),
            push: token.is_none(),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let status = u16::try_from(answer.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| {
            ApiError::internal(format!(
                "{} answered HTTP status {}",
                kind.key(),
                answer.status
            ))
        })?;
    let content_type = axum::http::HeaderValue::from_str(&answer.content_type)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("application/octet-stream"));
    Ok((
        status,
        [(axum::http::header::CONTENT_TYPE, content_type)],
        answer.body,
    )
        .into_response())
}
