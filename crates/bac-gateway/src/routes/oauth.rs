//! The browser's side of OAuth's authorisation-code flow (RFC 6749 §4.1 with PKCE), the same
//! for every OAuth integration. Starting it (a create without a refresh token, or
//! `POST .../connections/{id}/authorize`) keeps a single-use state bound to tenant, user and
//! connection, with the PKCE verifier, for ten minutes; the owning service builds the
//! provider's URL. The provider sends the user back to the public callback, which spends the
//! state and has the service redeem the code (only it holds the client secret).
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap},
    Json,
};
use bac_proto::integration::v1::{BeginAuthorizationRequest, CompleteAuthorizationRequest};
use bac_runtime::{RequestContext, ServiceKind};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::connections::{integration_client, owner};
use crate::{
    audit::{self, Change, Origin},
    auth::{hash_key, Principal},
    authz::{self, Action},
    error::ApiError,
    AppState,
};

/// How long a started authorisation may wait for its callback.
const STATE_LIFETIME_MINUTES: i64 = 10;

/// The callback route, relative to the gateway's public URL.
pub const CALLBACK_PATH: &str = "/api/v1/integrations/oauth/callback";

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn sha256_b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

/// Where the provider sends the user back: `BAC_PUBLIC_URL` + the callback path, or (when
/// unset, for a laptop) the URL the request came to.
fn redirect_uri(state: &AppState, headers: &HeaderMap) -> String {
    let base = match &state.settings.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost:8080");
            format!("http://{host}")
        }
    };
    format!("{base}{CALLBACK_PATH}")
}

/// Starts an authorisation of connection `id` of `kind` for `principal`: the JSON members
/// a create or an authorise answer carries (`authorization_url`, its expiry, the scopes).
pub(crate) async fn begin(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    kind: ServiceKind,
    id: &str,
) -> Result<Value, ApiError> {
    let oauth_state = random_b64(32);
    let verifier = random_b64(48);
    let redirect = redirect_uri(state, headers);
    let expires_at = Utc::now() + Duration::minutes(STATE_LIFETIME_MINUTES);
    let started = integration_client(state, kind)?
        .begin_authorization(principal.context().request(BeginAuthorizationRequest {
            connection_id: id.to_string(),
            state: oauth_state.clone(),
            code_challenge: sha256_b64(&verifier),
            redirect_uri: redirect.clone(),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let client = state.db.get().await.map_err(ApiError::internal)?;
    // expired states go with each new one: the table holds minutes of starts, no more
    client
        .execute("DELETE FROM oauth_states WHERE expires_at < now()", &[])
        .await
        .map_err(ApiError::internal)?;
    client
        .execute(
            "INSERT INTO oauth_states (state_hash, tenant_id, user_id, connection_id, integration, code_verifier, redirect_uri, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &hash_key(&oauth_state),
                &principal.tenant_id,
                &principal.user_id,
                &id,
                &kind.key(),
                &verifier,
                &redirect,
                &expires_at,
            ],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({
        "authorization_url": started.authorization_url,
        "authorization_expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "scopes": started.scopes,
        "redirect_uri": redirect,
    }))
}

#[utoipa::path(operation_id = "authorize_connection", post, path = "/api/v1/integrations/connections/{id}/authorize", tag = "connections",
    summary = "Start (again) the OAuth authorisation of a connection: the URL its user opens",
    params(("id" = String, Path, description = "Connection id (con_...)")),
    responses((status = 200, description = "The authorisation URL, valid ten minutes, single use"), crate::openapi::CommonErrors))]
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = owner(&state, &principal.tenant_id, &id).await?;
    authz::require(&state.db, &principal, kind.key(), Action::Configure).await?;
    let mut answer = begin(&state, &principal, &headers, kind, &id).await?;
    answer["connection_id"] = json!(id);
    Ok(Json(answer))
}

/// A started authorisation, spent.
struct Started {
    tenant_id: String,
    user_id: String,
    connection_id: String,
    integration: String,
    code_verifier: String,
    redirect_uri: String,
    expires_at: DateTime<Utc>,
}

/// Spends a state: found once, never again (a replayed callback finds nothing).
async fn spend(state: &AppState, oauth_state: &str) -> Result<Option<Started>, ApiError> {
    let client = state.db.get().await.map_err(ApiError::internal)?;
    let row = client
        .query_opt(
            "DELETE FROM oauth_states WHERE state_hash = $1
             RETURNING tenant_id, user_id, connection_id, integration, code_verifier, redirect_uri, expires_at",
            &[&hash_key(oauth_state)],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(row.map(|r| Started {
        tenant_id: r.get(0),
        user_id: r.get(1),
        connection_id: r.get(2),
        integration: r.get(3),
        code_verifier: r.get(4),
        redirect_uri: r.get(5),
        expires_at: r.get(6),
    }))
}

#[utoipa::path(operation_id = "oauth_callback", get, path = "/api/v1/integrations/oauth/callback", tag = "connections",
    summary = "Where the provider sends the user back after consent (no API key: the state is the credential)",
    params(("state" = String, Query, description = "The state of the authorisation URL"),
           ("code" = Option<String>, Query, description = "The authorisation code"),
           ("error" = Option<String>, Query, description = "The provider's refusal (access_denied)")),
    security(()),
    responses((status = 200, description = "The connection is authorised (404: no started authorisation has this state)"), crate::openapi::CommonErrors))]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    crate::http::Source(source): crate::http::Source,
    origin: Origin,
    Query(mut query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    // an unknown state costs the source like a wrong API key does
    state.guard.spend_if_failing(source)?;
    let oauth_state = query.remove("state").unwrap_or_default();
    let started = if oauth_state.is_empty() || oauth_state.len() > 256 {
        None
    } else {
        spend(&state, &oauth_state).await?
    };
    let Some(started) = started else {
        state.guard.failed(source);
        // a state names a started authorisation: none has this one (any more)
        return Err(ApiError::not_found(
            "no started authorisation has this state (unknown, already used or expired)",
        )
        .suggest(
            "Start the authorisation again: POST /api/v1/integrations/connections/{id}/authorize",
        ));
    };
    if started.expires_at < Utc::now() {
        return Err(ApiError::bad_request(format!(
            "the authorisation of connection {} expired (it is good for {STATE_LIFETIME_MINUTES} minutes)",
            started.connection_id
        ))
        .suggest(format!(
            "Start the authorisation again: POST /api/v1/integrations/connections/{}/authorize",
            started.connection_id
        )));
    }
    let kind = ServiceKind::parse(&started.integration).ok_or_else(|| {
        ApiError::internal(format!("unknown integration {}", started.integration))
    })?;
    if let Some(error) = query.remove("error") {
        let description = query.remove("error_description").unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "{} did not grant access to connection {} ({error}{}{description})",
            kind.key(),
            started.connection_id,
            if description.is_empty() { "" } else { ": " },
        ))
        .suggest("Start the authorisation again and grant access on the provider's consent page"));
    }
    let code = query.remove("code").unwrap_or_default();
    if code.is_empty() || code.len() > 4096 {
        return Err(ApiError::bad_request(
            "the callback carries no authorisation code",
        ));
    }
    let ctx = RequestContext {
        tenant_id: started.tenant_id.clone(),
        principal: format!("user:{}", started.user_id),
        request_id: format!("req_{}", uuid::Uuid::now_v7().simple()),
        traceparent: bac_runtime::telemetry::current_traceparent(),
    };
    let done = integration_client(&state, kind)?
        .complete_authorization(ctx.request(CompleteAuthorizationRequest {
            connection_id: started.connection_id.clone(),
            code,
            code_verifier: started.code_verifier,
            redirect_uri: started.redirect_uri,
            callback: query,
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    let mut client = state.db.get().await.map_err(ApiError::internal)?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;
    audit::record_as(
        &tx,
        &started.tenant_id,
        &ctx.principal,
        &ctx.request_id,
        &origin,
        Change {
            action: "connection.authorized",
            target_type: "connection",
            target_id: &started.connection_id,
            diff: json!({"integration": kind.key(), "granted_scopes": done.granted_scopes}),
        },
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(Json(json!({
        "connection_id": started.connection_id,
        "integration": kind.key(),
        "authorized": true,
        "granted_scopes": done.granted_scopes,
    })))
}
