//! Parked events: what a service's outbox relay set aside because the broker refuses it for
//! good (docs/security.md, "Fairness"). An administrator of the tenant lists them, puts one
//! back in line after the cause is fixed, or discards it; both decisions are audited.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    routing::{delete, get, post},
    Json, Router,
};
use bac_proto::integration::v1::{ListParkedEventsRequest, ParkedEvent, ParkedEventRequest};
use bac_runtime::ServiceKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{connections::integration_client, ApiQuery};
use crate::{
    audit::{self, Change, Origin},
    auth::Principal,
    authz::{self, Action},
    error::ApiError,
    AppState,
};

/// The services with an outbox of their own.
const SERVICES: &[ServiceKind] = &[
    ServiceKind::GoogleWorkspace,
    ServiceKind::Odoo,
    ServiceKind::Zoho,
    ServiceKind::Tally,
    ServiceKind::Messaging,
];

/// The integration services (path segment of the parked-event routes).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub enum ServiceKey {
    #[schema(rename = "google-workspace")]
    GoogleWorkspace,
    #[schema(rename = "odoo")]
    Odoo,
    #[schema(rename = "zoho")]
    Zoho,
    #[schema(rename = "tally")]
    Tally,
    #[schema(rename = "messaging")]
    Messaging,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<u32>,
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[utoipa::path(operation_id = "list_parked_events", get, path = "/api/v1/integrations/{service}/parked-events", tag = "events",
    summary = "Events the broker refused for good, set aside so the others keep flowing",
    params(("service" = inline(ServiceKey), Path, description = "The integration service"),
           ("limit" = Option<u32>, Query, description = "Default 50, at most 500", minimum = 1, maximum = 500)),
    responses((status = 200, description = "{events: [{id, topic, key, event_count, bytes, reason, attempts, created_at, parked_at, status}]}"), crate::openapi::CommonErrors))]
pub async fn list(
    state: Arc<AppState>,
    principal: Principal,
    kind: ServiceKind,
    q: ListQuery,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, kind.key(), Action::Configure).await?;
    if q.limit.is_some_and(|l| l == 0 || l > 500) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let resp = integration_client(&state, kind)?
        .list_parked_events(principal.context().request(ListParkedEventsRequest {
            limit: q.limit.unwrap_or(0),
        }))
        .await
        .map_err(|s| ApiError::from_status(&s, kind.key()))?
        .into_inner();
    Ok(Json(to_json(&resp)))
}

#[utoipa::path(operation_id = "retry_parked_event", post, path = "/api/v1/integrations/{service}/parked-events/{id}/retry", tag = "events",
    summary = "Put a parked event back in line (e.g. after the broker's limit was raised)",
    params(("service" = inline(ServiceKey), Path, description = "The integration service"),
           ("id" = String, Path, description = "Parked event id (out_...)")),
    responses((status = 200, description = "The event, status queued"), crate::openapi::CommonErrors))]
pub async fn retry(
    state: Arc<AppState>,
    principal: Principal,
    origin: Origin,
    kind: ServiceKind,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let event = decide(&state, &principal, &origin, kind, &id, true).await?;
    Ok(Json(to_json(&event)))
}

#[utoipa::path(operation_id = "discard_parked_event", delete, path = "/api/v1/integrations/{service}/parked-events/{id}", tag = "events",
    summary = "Give a parked event up: kept, marked discarded, never published",
    params(("service" = inline(ServiceKey), Path, description = "The integration service"),
           ("id" = String, Path, description = "Parked event id (out_...)")),
    responses((status = 200, description = "The event, status discarded"), crate::openapi::CommonErrors))]
pub async fn discard(
    state: Arc<AppState>,
    principal: Principal,
    origin: Origin,
    kind: ServiceKind,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let event = decide(&state, &principal, &origin, kind, &id, false).await?;
    Ok(Json(to_json(&event)))
}

/// Retries (`retry`) or discards a parked event, for REST and the gRPC edge alike, audited.
pub(crate) async fn decide(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    kind: ServiceKind,
    id: &str,
    retry: bool,
) -> Result<ParkedEvent, ApiError> {
    authz::require(&state.db, principal, kind.key(), Action::Configure).await?;
    if !id.starts_with("out_") || id.len() > 40 {
        return Err(ApiError::not_found(format!("no parked event {id}")));
    }
    let mut client = integration_client(state, kind)?;
    let req = principal
        .context()
        .request(ParkedEventRequest { id: id.to_string() });
    let event = if retry {
        client.retry_parked_event(req).await
    } else {
        client.discard_parked_event(req).await
    }
    .map_err(|s| ApiError::from_status(&s, kind.key()))?
    .into_inner();
    let mut db = state.db.get().await.map_err(ApiError::internal)?;
    let tx = db.transaction().await.map_err(ApiError::internal)?;
    audit::record(
        &tx,
        principal,
        origin,
        Change {
            action: if retry {
                "parked_event.retried"
            } else {
                "parked_event.discarded"
            },
            target_type: "parked_event",
            target_id: id,
            diff: json!({"service": kind.key(), "topic": event.topic, "key": event.key,
                         "event_count": event.event_count, "reason": event.reason}),
        },
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(event)
}

/// The three routes for every integration service.
pub fn routes(mut router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    for &kind in SERVICES {
        let base = format!("/api/v1/integrations/{}/parked-events", kind.key());
        router = router
            .route(
                &base,
                get(
                    move |State(state): State<Arc<AppState>>,
                          principal: Principal,
                          ApiQuery(q): ApiQuery<ListQuery>| {
                        list(state, principal, kind, q)
                    },
                ),
            )
            .route(
                &format!("{base}/:id/retry"),
                post(
                    move |State(state): State<Arc<AppState>>,
                          principal: Principal,
                          origin: Origin,
                          Path(id): Path<String>| {
                        retry(state, principal, origin, kind, id)
                    },
                ),
            )
            .route(
                &format!("{base}/:id"),
                delete(
                    move |State(state): State<Arc<AppState>>,
                          principal: Principal,
                          origin: Origin,
                          Path(id): Path<String>| {
                        discard(state, principal, origin, kind, id)
                    },
                ),
            );
    }
    router
}
