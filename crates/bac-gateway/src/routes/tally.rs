//! Tally's configuration and test-connection routes, as the integration-management document
//! gives them. A configuration is a connection of bac-tally underneath (one per company in
//! Tally): the routes find the tenant's Tally connection and go through the same create,
//! update, delete and test paths as `/api/v1/integrations/connections` (catalog checks,
//! authorisation, audit). A tenant with several companies configured names one with
//! `?connection_id=con_...`; with one, it is found by itself.
use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    Json,
};
use bac_proto::integration::v1::{
    Connection, ListConnectionsRequest, TestConnectionRequest, TestSettingsRequest,
};
use bac_runtime::ServiceKind;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::connections::{
    config_value, create_connection, delete_connection, integration_client, update_connection,
    ConfigChange, ConnectionChange,
};
use crate::{
    audit::Origin,
    auth::{Principal, Role},
    authz::{self, Action},
    error::ApiError,
    routes::ApiJson,
    AppState,
};

/// Which configuration a call is about, when the tenant has several.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct Which {
    /// The configuration's connection id; needed only when several companies are configured.
    pub connection_id: Option<String>,
}

fn kind() -> ServiceKind {
    ServiceKind::Tally
}

/// The tenant's Tally connections.
async fn configurations(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<Connection>, ApiError> {
    authz::require(&state.db, principal, "tally", Action::Configure).await?;
    Ok(integration_client(state, kind())?
        .list_connections(principal.context().request(ListConnectionsRequest {}))
        .await
        .map_err(|s| ApiError::from_status(&s, "tally"))?
        .into_inner()
        .connections)
}

/// The configuration a call is about.
async fn find(
    state: &AppState,
    principal: &Principal,
    which: &Which,
) -> Result<Connection, ApiError> {
    let all = configurations(state, principal).await?;
    match (&which.connection_id, all.len()) {
        (Some(id), _) => all.into_iter().find(|c| &c.id == id).ok_or_else(|| {
            ApiError::not_found(format!("no Tally configuration {id}")).integration("tally")
        }),
        (None, 0) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "integration_error",
            "NOT_CONNECTED",
            "Tally is not configured",
        )
        .integration("tally")
        .suggest("Create the configuration with POST /api/v1/integrations/tally/configuration")),
        (None, 1) => Ok(all.into_iter().next().unwrap_or_default()),
        (None, n) => Err(ApiError::bad_request(format!(
            "{n} Tally configurations (one per company): name one with ?connection_id="
        ))
        .integration("tally")),
    }
}

/// A configuration as the document shows it, with its connection's id and times.
fn view(c: &Connection) -> Value {
    let mut out = Map::new();
    out.insert("connection_id".into(), json!(c.id));
    if let Value::Object(m) = config_value(c) {
        out.extend(m);
    }
    out.insert(
        "created_at".into(),
        json!(c.created_at.as_ref().map(bac_runtime::wkt::rfc3339)),
    );
    out.insert(
        "updated_at".into(),
        json!(c.updated_at.as_ref().map(bac_runtime::wkt::rfc3339)),
    );
    Value::Object(out)
}

#[utoipa::path(operation_id = "tally_get_configuration", get, path = "/api/v1/integrations/tally/configuration", tag = "tally",
    summary = "The Tally configuration",
    params(Which),
    responses((status = 200, description = "{connection_id, tally_server_host, tally_server_port, company_name_in_tally, is_enabled, sync_frequency, auto_sync_enabled, created_at, updated_at}"), crate::openapi::CommonErrors))]
pub async fn get_configuration(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(which): Query<Which>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&find(&state, &principal, &which).await?)))
}

#[utoipa::path(operation_id = "tally_create_configuration", post, path = "/api/v1/integrations/tally/configuration", tag = "tally",
    summary = "Create the Tally configuration (one per company)",
    request_body(content = Object, description = r#"{"tally_server_host": "localhost", "tally_server_port": 9000, "company_name_in_tally": "Demo Company", "is_enabled": true, "sync_frequency": "manual", "auto_sync_enabled": false}"#),
    responses((status = 201, description = "The configuration"), crate::openapi::CommonErrors))]
pub async fn create_configuration(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let company = body
        .get("company_name_in_tally")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let name = if company.is_empty() {
        "Tally".to_string()
    } else {
        format!("Tally: {}", company.chars().take(100).collect::<String>())
    };
    // one create of a company at a time (across the gateway's replicas), so two at once
    // cannot both find it unconfigured
    let lock = company_lock(&state, &principal, &company).await?;
    let created = async {
        refuse_twice(&state, &principal, &company, None).await?;
        create_connection(
            &state,
            &principal,
            &origin,
            "tally",
            &name,
            body,
            Map::new(),
        )
        .await
    }
    .await;
    unlock(lock, &principal, &company).await;
    Ok((StatusCode::CREATED, Json(view(&created?))))
}

/// A session-level advisory lock on (tenant, company), held on a connection of its own.
async fn company_lock(
    state: &AppState,
    principal: &Principal,
    company: &str,
) -> Result<bac_runtime::db::Client, ApiError> {
    let client = state.db.get().await.map_err(ApiError::internal)?;
    client
        .execute(
            "SELECT pg_advisory_lock(hashtext($1))",
            &[&lock_key(principal, company)],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(client)
}

fn lock_key(principal: &Principal, company: &str) -> String {
    format!(
        "tally/{}/{}",
        principal.tenant_id,
        company.trim().to_lowercase()
    )
}

async fn unlock(client: bac_runtime::db::Client, principal: &Principal, company: &str) {
    if let Err(e) = client
        .execute(
            "SELECT pg_advisory_unlock(hashtext($1))",
            &[&lock_key(principal, company)],
        )
        .await
    {
        // never back to the pool holding the lock
        tracing::warn!(error = %e, "could not release a Tally configuration lock");
        let _ = bac_runtime::db::Client::take(client);
    }
}

/// 409 when `company` is configured already (by a configuration other than `except`).
async fn refuse_twice(
    state: &AppState,
    principal: &Principal,
    company: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let wanted = company.trim().to_lowercase();
    let existing = configurations(state, principal).await?;
    let same = |c: &&Connection| {
        Some(c.id.as_str()) != except
            && config_value(c)["company_name_in_tally"]
                .as_str()
                .is_some_and(|n| n.trim().to_lowercase() == wanted)
    };
    if let Some(c) = existing.iter().find(same) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "CONFLICT",
            format!("'{}' is configured already ({})", company.trim(), c.id),
        )
        .integration("tally")
        .suggest("Change it with PUT /api/v1/integrations/tally/configuration"));
    }
    Ok(())
}

#[utoipa::path(operation_id = "tally_update_configuration", put, path = "/api/v1/integrations/tally/configuration", tag = "tally",
    summary = "Change the Tally configuration (the fields given)",
    params(Which),
    request_body(content = Object, description = "Any of the configuration's fields"),
    responses((status = 200, description = "The configuration"), crate::openapi::CommonErrors))]
pub async fn update_configuration(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Query(which): Query<Which>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let current = find(&state, &principal, &which).await?;
    if let Some(company) = body.get("company_name_in_tally").and_then(Value::as_str) {
        refuse_twice(&state, &principal, company, Some(&current.id)).await?;
    }
    let change = ConnectionChange {
        name: None,
        config: Some(ConfigChange::Merge(body)),
        credentials: None,
        if_unmodified_since: None,
    };
    let (after, _) = update_connection(&state, &principal, &origin, &current.id, change).await?;
    Ok(Json(view(&after)))
}

#[utoipa::path(operation_id = "tally_delete_configuration", delete, path = "/api/v1/integrations/tally/configuration", tag = "tally",
    summary = "Delete the Tally configuration",
    params(Which),
    responses((status = 204, description = "Deleted"), crate::openapi::CommonErrors))]
pub async fn delete_configuration(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Query(which): Query<Which>,
) -> Result<StatusCode, ApiError> {
    let current = find(&state, &principal, &which).await?;
    delete_connection(&state, &principal, &origin, &current.id).await?;
    // its agent's keys end with it
    let c = state.db.get().await.map_err(ApiError::internal)?;
    let agent = format!("usr_agent_{}", current.id);
    c.execute(
        "UPDATE api_keys SET revoked_at = now()
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        &[&principal.tenant_id, &agent],
    )
    .await
    .map_err(ApiError::internal)?;
    c.execute(
        "UPDATE users SET disabled_at = now() WHERE tenant_id = $1 AND id = $2",
        &[&principal.tenant_id, &agent],
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "tally_issue_agent_key", post, path = "/api/v1/integrations/tally/agent-key", tag = "tally",
    summary = "Issue the key bac-tally-agent dials the fleet with (shown once; the previous one stops working)",
    description = "Super admin. The key belongs to a user of the tenant made for this configuration's agent (`usr_agent_<connection_id>`, `tally-agent+<connection_id>@agents.invalid`) with a View grant on Tally: only it may open this configuration's agent stream, and it reads the tenant's Tally data. Issuing a new key revokes the configuration's previous agent keys; deleting the configuration revokes them and disables the user.",
    params(Which),
    responses((status = 201, description = "{connection_id, key, key_id, user_id}"), crate::openapi::CommonErrors))]
pub async fn issue_agent_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Query(which): Query<Which>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // a user and a key that outlive the caller: what only a super admin makes
    principal.require(Role::SuperAdmin, "issuing a Tally agent key")?;
    let config = find(&state, &principal, &which).await?;
    let email = format!(
        "tally-agent+{}@agents.invalid",
        config.id.to_ascii_lowercase()
    );
    let mut c = state.db.get().await.map_err(ApiError::internal)?;
    let tx = c.transaction().await.map_err(ApiError::internal)?;
    // the user bac-tally lets join this configuration's stream, and no other
    let user = format!("usr_agent_{}", config.id);
    tx.execute(
        "INSERT INTO users (id, tenant_id, email, role) VALUES ($1, $2, $3, 'user')
         ON CONFLICT (id) DO UPDATE SET disabled_at = NULL, role = 'user'",
        &[&user, &principal.tenant_id, &email],
    )
    .await
    .map_err(ApiError::internal)?;
    tx.execute(
        "INSERT INTO grants (id, tenant_id, user_id, integration, permission_type, granted_by)
         VALUES ($1, $2, $3, 'tally', 'view', $4)
         ON CONFLICT (tenant_id, user_id, integration, permission_type) DO NOTHING",
        &[
            &format!("grt_{}", uuid::Uuid::now_v7().simple()),
            &principal.tenant_id,
            &user,
            &principal.user_id,
        ],
    )
    .await
    .map_err(ApiError::internal)?;
    let revoked = tx
        .execute(
            "UPDATE api_keys SET revoked_at = now()
             WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[&principal.tenant_id, &user],
        )
        .await
        .map_err(ApiError::internal)?;
    let (key_id, key) = super::access::insert_key(
        &tx,
        &principal.tenant_id,
        &user,
        &format!("bac-tally-agent for {}", config.id),
        None,
    )
    .await?;
    let change = crate::audit::Change {
        action: "tally.agent_key.issued",
        target_type: "connection",
        target_id: &config.id,
        diff: json!({"user_id": user, "key_id": key_id, "revoked_keys": revoked}),
    };
    crate::audit::record(&tx, &principal, &origin, change).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"connection_id": config.id, "key": key["key"], "key_id": key_id,
                    "user_id": user}),
        ),
    ))
}

/// The document's test body: a server and a company to try before (or instead of) the
/// stored configuration.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub company_name: Option<String>,
}

#[utoipa::path(operation_id = "tally_test_connection", post, path = "/api/v1/integrations/tally/test-connection", tag = "tally",
    summary = "Ask a Tally server which companies it has open (the body's server, or the stored configuration's)",
    params(Which),
    request_body(content = TestBody, description = r#"{"host": "localhost", "port": 9000, "company_name": "Demo Company"}; empty: the stored configuration"#),
    responses((status = 200, description = "Tally answered and has the company open"), crate::openapi::CommonErrors))]
pub async fn test_connection(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(which): Query<Which>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be {{\"host\", \"port\", \"company_name\"}} (or empty): {e}"
            ))
        })?
    };
    let mut client = integration_client(&state, kind())?;
    if body.host.is_none() && body.port.is_none() && body.company_name.is_none() {
        let current = find(&state, &principal, &which).await?;
        let resp = client
            .test_connection(principal.context().request(TestConnectionRequest {
                id: current.id.clone(),
            }))
            .await
            .map_err(|s| ApiError::from_status(&s, "tally"))?
            .into_inner();
        return Ok(Json(
            json!({"connection_id": current.id, "integration": "tally",
            "ok": resp.ok, "message": resp.message, "latency_ms": resp.latency_ms}),
        ));
    }
    authz::require(&state.db, &principal, "tally", Action::Configure).await?;
    // what is not given comes from the stored configuration, when there is one
    let stored = match find(&state, &principal, &which).await {
        Ok(c) => config_value(&c),
        // nothing stored: the body is all there is
        Err(e) if e.error_code == "NOT_CONNECTED" => Value::Null,
        Err(e) => return Err(e),
    };
    let mut config = Map::new();
    let host = body
        .host
        .or_else(|| stored["tally_server_host"].as_str().map(str::to_string));
    let port = body
        .port
        .map(Value::from)
        .or_else(|| stored.get("tally_server_port").cloned());
    let company = body
        .company_name
        .or_else(|| stored["company_name_in_tally"].as_str().map(str::to_string));
    for (k, v) in [
        ("tally_server_host", host.map(Value::from)),
        ("tally_server_port", port),
        ("company_name_in_tally", company.map(Value::from)),
    ] {
        if let Some(v) = v {
            config.insert(k.into(), v);
        }
    }
    let resp = client
        .test_settings(
            principal.context().request(TestSettingsRequest {
                config: Some(
                    serde_json::from_value(Value::Object(config))
                        .map_err(|e| ApiError::bad_request(format!("the test body: {e}")))?,
                ),
            }),
        )
        .await
        .map_err(|s| {
            // the settings' checks speak of the configuration's fields; this body has its own
            let mut e = ApiError::from_status(&s, "tally");
            for (field, given) in [
                ("config.tally_server_host", "host"),
                ("config.tally_server_port", "port"),
                ("config.company_name_in_tally", "company_name"),
            ] {
                e.message = e.message.replace(field, given);
            }
            e
        })?
        .into_inner();
    Ok(Json(
        json!({"integration": "tally", "ok": resp.ok, "message": resp.message,
        "latency_ms": resp.latency_ms}),
    ))
}
