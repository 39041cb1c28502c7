//! `/api/v1/odoo/...`: Odoo data routes, forwarded to bac-odoo over gRPC.
use std::sync::Arc;

use axum::{extract::State, http::StatusCode, Json};
use bac_proto::{
    common::v1::PageRequest,
    odoo::v1::{odoo_service_client::OdooServiceClient, CreateLeadRequest, Lead, ListLeadsRequest},
};
use bac_runtime::ServiceKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{connections::ts, ApiJson, ApiQuery};
use crate::{
    auth::Principal,
    authz::{self, Action},
    error::ApiError,
    AppState,
};

/// The documented lead body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLeadBody {
    pub name: String,
    pub partner_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub expected_revenue: Option<f64>,
    pub priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionQuery {
    pub connection_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub connection_id: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub name_contains: Option<String>,
}

fn client(state: &AppState) -> Result<OdooServiceClient<crate::services::GrpcChannel>, ApiError> {
    state
        .services
        .channel(ServiceKind::Odoo)
        .map(OdooServiceClient::new)
        .ok_or_else(|| ApiError::internal("no channel for odoo"))
}

fn lead_json(l: &Lead) -> Value {
    json!({
        "id": l.id,
        "name": l.name,
        "partner_name": l.partner_name,
        "email": l.email,
        "phone": l.phone,
        "expected_revenue": l.expected_revenue,
        "priority": l.priority,
        "connection_id": l.connection_id,
        "create_date": l.create_date.as_ref().map(ts),
        "write_date": l.write_date.as_ref().map(ts),
    })
}

pub async fn create_lead(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<CreateLeadBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let lead = Lead {
        name: body.name,
        partner_name: body.partner_name.unwrap_or_default(),
        email: body.email.unwrap_or_default(),
        phone: body.phone.unwrap_or_default(),
        expected_revenue: body.expected_revenue.unwrap_or(0.0),
        priority: body.priority.unwrap_or_default(),
        ..Default::default()
    };
    let req = CreateLeadRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        lead: Some(lead),
    };
    let created = client(&state)?
        .create_lead(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, "odoo"))?
        .into_inner();
    Ok((StatusCode::CREATED, Json(lead_json(&created))))
}

pub async fn list_leads(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListLeadsRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: Some(PageRequest {
            limit: q.limit.unwrap_or(0),
            offset: q.offset.unwrap_or(0),
        }),
        name_contains: q.name_contains.unwrap_or_default(),
    };
    let resp = client(&state)?
        .list_leads(principal.context().request(req))
        .await
        .map_err(|s| ApiError::from_status(&s, "odoo"))?
        .into_inner();
    let page = resp.page.unwrap_or_default();
    Ok(Json(json!({
        "leads": resp.leads.iter().map(lead_json).collect::<Vec<_>>(),
        "pagination": {
            "limit": page.limit,
            "offset": page.offset,
            "total": page.total,
            "next_offset": page.next_offset,
        },
    })))
}
