//! `GET /api/v1/integrations/dashboard` and `GET /api/v1/integrations/<name>/status`: each
//! integration's status as its service reports it (`IntegrationService.GetStatus`), asked of
//! every service at once with a short deadline. A service that does not answer in time, or is
//! down, shows `error` with the reason; an integration no service serves shows `disabled`.
//! Numbers a service does not report stay `null`, never a made-up zero.
//!
//! A caller whose only right is the role's "status only" (a `user` on email, calendar or
//! messaging) sees the status itself, not the details (reason, counts, metrics): that is the
//! matrix's "Status only" against an admin's "Full status".
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::State, routing::get, Json, Router};
use bac_proto::integration::v1::{GetStatusRequest, IntegrationStatus};
use serde_json::{json, Map, Value};

use super::connections::{integration_client, may_view};
use crate::{
    auth::{Principal, Role},
    authz::{self, Action},
    catalog::{self, Definition, Serving},
    error::ApiError,
    AppState,
};

/// One integration's status (absent fields: not in the caller's "status only" view; `null`:
/// not measured by its service).
#[derive(Debug, utoipa::ToSchema)]
pub struct IntegrationStatusView {
    pub integration: String,
    pub integration_name: String,
    /// healthy | warning | error | disabled
    pub status: String,
    pub reason: Option<String>,
    pub last_sync_at: Option<String>,
    /// manual | real-time | hourly | daily | weekly | a cron expression; each in use,
    /// comma-separated, when the connections' entities differ ("hourly, manual")
    pub sync_frequency: Option<String>,
    /// Failed upstream calls in the last 24 hours.
    pub error_count: Option<u32>,
    pub configuration_valid: Option<bool>,
    /// Number of the tenant's connections.
    pub connections: Option<u32>,
    pub last_call_at: Option<String>,
    pub performance_metrics: Option<PerformanceView>,
    /// `status_only` when the caller sees only the status.
    pub view: Option<String>,
}

/// Upstream calls of the last 24 hours.
#[derive(Debug, utoipa::ToSchema)]
pub struct PerformanceView {
    pub calls_24h: Option<u64>,
    pub avg_response_time_ms: Option<f64>,
    pub p95_response_time_ms: Option<f64>,
    /// 0..1
    pub success_rate: Option<f64>,
    /// The last successful sync run: how long it took (ms) and how many records it read.
    pub last_sync_duration_ms: Option<u64>,
    pub last_sync_records: Option<u64>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct SystemHealth {
    /// healthy | error
    pub database_status: String,
    pub database_response_time_ms: Option<u64>,
    /// How long asking every service took, e.g. "12ms".
    pub api_response_time: String,
    pub api_response_time_ms: u64,
    pub services_answering: u32,
    pub services_not_answering: u32,
    pub checked_at: String,
}

/// `<key>_integration` (e.g. `odoo_integration`, `google_workspace_integration`) for every
/// integration the caller may view, plus `system_health`.
#[derive(Debug, utoipa::ToSchema)]
pub struct Dashboard {
    pub system_health: SystemHealth,
    pub email_integration: Option<IntegrationStatusView>,
    pub calendar_integration: Option<IntegrationStatusView>,
    pub tally_integration: Option<IntegrationStatusView>,
    pub payments_integration: Option<IntegrationStatusView>,
    pub zoho_integration: Option<IntegrationStatusView>,
    pub odoo_integration: Option<IntegrationStatusView>,
    pub google_workspace_integration: Option<IntegrationStatusView>,
    pub messaging_integration: Option<IntegrationStatusView>,
}

/// The integrations of the catalog.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub enum IntegrationKey {
    #[schema(rename = "email")]
    Email,
    #[schema(rename = "calendar")]
    Calendar,
    #[schema(rename = "tally")]
    Tally,
    #[schema(rename = "payments")]
    Payments,
    #[schema(rename = "zoho")]
    Zoho,
    #[schema(rename = "odoo")]
    Odoo,
    #[schema(rename = "google-workspace")]
    GoogleWorkspace,
    #[schema(rename = "messaging")]
    Messaging,
}

/// How long the gateway waits for one service's status.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(2);

/// Whether the integration's service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    NoService,
    Answered,
    NotAnswering,
}

/// One integration's status, as the service reported it (or why it could not).
async fn fetch(state: &AppState, principal: &Principal, def: &Definition) -> (Value, Reach) {
    let kind = match def.serving {
        Serving::NoService => {
            let e = entry(
                def,
                &IntegrationStatus {
                    integration: def.key.into(),
                    status: "disabled".into(),
                    reason: format!(
                        "the {} integration is not built yet: no fleet service serves it",
                        def.key
                    ),
                    ..Default::default()
                },
            );
            return (e, Reach::NoService);
        }
        Serving::Domain(k) | Serving::NotBuilt(k) | Serving::Connections(k) => k,
    };
    let unreachable = |why: String| {
        let e = entry(
            def,
            &IntegrationStatus {
                integration: def.key.into(),
                status: "error".into(),
                reason: why,
                ..Default::default()
            },
        );
        (e, Reach::NotAnswering)
    };
    let mut client = match integration_client(state, kind) {
        Ok(c) => c,
        Err(_) => return unreachable(format!("no channel to {}", kind.binary())),
    };
    let mut req = principal.context().request(GetStatusRequest {});
    req.set_timeout(STATUS_DEADLINE);
    match tokio::time::timeout(STATUS_DEADLINE, client.get_status(req)).await {
        Ok(Ok(resp)) => (entry(def, resp.get_ref()), Reach::Answered),
        Ok(Err(s)) => {
            tracing::warn!(integration = def.key, grpc_code = ?s.code(), detail = %s.message(), "status call failed");
            unreachable(match s.code() {
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
                    format!("{} is unreachable", kind.binary())
                }
                tonic::Code::DeadlineExceeded => format!(
                    "{} did not answer within {} s",
                    kind.binary(),
                    STATUS_DEADLINE.as_secs()
                ),
                code => format!("{} answered {code:?}: {}", kind.binary(), s.message()),
            })
        }
        Err(_) => unreachable(format!(
            "{} did not answer within {} s",
            kind.binary(),
            STATUS_DEADLINE.as_secs()
        )),
    }
}

fn entry(def: &Definition, s: &IntegrationStatus) -> Value {
    let perf = s
        .performance
        .as_ref()
        .map(|p| {
            json!({
                "calls_24h": p.calls_24h,
                "avg_response_time_ms": p.avg_response_time_ms.map(round1),
                "p95_response_time_ms": p.p95_response_time_ms.map(round1),
                "success_rate": p.success_rate.map(|r| (r * 10_000.0).round() / 10_000.0),
                "last_sync_duration_ms": p.last_sync_duration_ms,
                "last_sync_records": p.last_sync_records,
            })
        })
        .unwrap_or_else(|| json!({}));
    json!({
        "integration": def.key,
        "integration_name": def.name,
        "status": s.status,
        "reason": (!s.reason.is_empty()).then_some(&s.reason),
        "last_sync_at": s.last_sync_at.as_ref().map(bac_runtime::wkt::rfc3339),
        "sync_frequency": (!s.sync_frequency.is_empty()).then_some(&s.sync_frequency),
        "error_count": s.error_count_24h,
        "configuration_valid": s.configuration_valid,
        "connections": s.connection_count,
        "last_call_at": s.last_call_at.as_ref().map(bac_runtime::wkt::rfc3339),
        "performance_metrics": perf,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The matrix's "status only": what a caller without the full view sees.
fn status_only(full: Value) -> Value {
    let keep = ["integration", "integration_name", "status", "last_sync_at"];
    let mut out: Map<String, Value> = full
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.insert("view".into(), json!("status_only"));
    Value::Object(out)
}

/// Admins and above, and grantees of the integration, see the full status.
async fn full_view(state: &AppState, p: &Principal, integration: &str) -> Result<bool, ApiError> {
    if p.role >= Role::Admin {
        return Ok(true);
    }
    Ok(
        !authz::grants_of(&state.db, &p.tenant_id, &p.user_id, integration)
            .await?
            .is_empty(),
    )
}

async fn view(
    state: &AppState,
    p: &Principal,
    def: &Definition,
) -> Result<(Value, Reach), ApiError> {
    let full = full_view(state, p, def.key).await?;
    let (status, reach) = fetch(state, p, def).await;
    Ok((if full { status } else { status_only(status) }, reach))
}

/// `GET /api/v1/integrations/<key>/status`.
#[utoipa::path(get, path = "/api/v1/integrations/{name}/status", tag = "status",
    summary = "One integration's status, as its service reports it",
    params(("name" = inline(IntegrationKey), Path, description = "The integration")),
    responses((status = 200, description = "The status", body = IntegrationStatusView), crate::openapi::CommonErrors))]
pub async fn integration_status(
    state: Arc<AppState>,
    principal: Principal,
    key: &'static str,
) -> Result<Json<Value>, ApiError> {
    let def = catalog::get(key).ok_or_else(|| ApiError::not_found("no such integration"))?;
    authz::require(&state.db, &principal, def.key, Action::ViewStatus).await?;
    Ok(Json(view(&state, &principal, def).await?.0))
}

/// `GET /api/v1/integrations/<key>/status` for every integration of the catalog.
pub fn routes(mut router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    for def in catalog::CATALOG.iter() {
        let key = def.key;
        router = router.route(
            &format!("/api/v1/integrations/{key}/status"),
            get(
                move |State(state): State<Arc<AppState>>, principal: Principal| {
                    integration_status(state, principal, key)
                },
            ),
        );
    }
    router
}

/// `GET /api/v1/integrations/dashboard`: `<key>_integration` per integration the caller may
/// view, plus `system_health`.
#[utoipa::path(operation_id = "dashboard", get, path = "/api/v1/integrations/dashboard", tag = "status",
    summary = "Every integration the caller may view, with its status, and the system's health",
    responses((status = 200, description = "The dashboard", body = Dashboard), crate::openapi::CommonErrors))]
pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let mut visible = Vec::new();
    for def in catalog::CATALOG.iter() {
        if may_view(&state, &principal, def.key).await? {
            visible.push(def);
        }
    }
    let started = Instant::now();
    let statuses = futures::future::join_all(
        visible
            .iter()
            .map(|def| async { (def.key, view(&state, &principal, def).await) }),
    );
    let (statuses, database) = tokio::join!(statuses, database_health(&state));
    let fan_out_ms = started.elapsed().as_millis();
    let mut out = Map::new();
    let (mut answering, mut failing) = (0u32, 0u32);
    for (key, result) in statuses {
        let (status, reach) = result?;
        match reach {
            Reach::Answered => answering += 1,
            Reach::NotAnswering => failing += 1,
            Reach::NoService => {}
        }
        out.insert(format!("{}_integration", key.replace('-', "_")), status);
    }
    let (db_status, db_ms) = database;
    out.insert(
        "system_health".into(),
        json!({
            "database_status": db_status,
            "database_response_time_ms": db_ms,
            "api_response_time": format!("{fan_out_ms}ms"),
            "api_response_time_ms": fan_out_ms,
            "services_answering": answering,
            "services_not_answering": failing,
            "checked_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    );
    Ok(Json(Value::Object(out)))
}

/// The gateway's own database: `healthy` or `error`, and how long `SELECT 1` took.
async fn database_health(state: &AppState) -> (&'static str, Option<u64>) {
    let started = Instant::now();
    let ok = tokio::time::timeout(STATUS_DEADLINE, async {
        let c = state.db.get().await.ok()?;
        c.query_one("SELECT 1", &[]).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    if ok {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        ("healthy", Some(ms))
    } else {
        ("error", None)
    }
}
