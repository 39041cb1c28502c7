//! Zoho CRM's organisation and current-user resources (`/crm/v6/org`,
//! `/crm/v6/users?type=CurrentUser`), what a connection test reads, behind Zoho's
//! `Authorization: Zoho-oauthtoken` header and its 401 body.
use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use crate::{apps::allows, records, DataCenter};

/// API versions the sandbox answers under `/crm/{version}/` (Zoho serves v2 to v8; the
/// fleet speaks v8, as Zoho's SDK for v8 does).
pub const VERSIONS: &[&str] = &["v2", "v2.1", "v3", "v4", "v5", "v6", "v7", "v8"];

pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route("/crm/:version/org", get(org))
        .route("/crm/:version/users", get(users))
        .route("/crm/:version/settings/modules", get(modules))
        .route("/crm/:version/settings/fields", get(fields))
        .route("/crm/:version/:module", get(list).post(insert))
        .route("/crm/:version/:module/search", get(search))
        .route("/crm/:version/:module/deleted", get(deleted))
        .route(
            "/crm/:version/:module/:id",
            get(get_one).put(update).delete(delete),
        )
        .with_state(dc)
}

fn bad_url() -> Response {
    records::zoho_error(
        StatusCode::NOT_FOUND,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    )
}

/// The caller's token, its scope checked: `Ok(())` or Zoho's 401.
pub(crate) fn authorised(
    dc: &DataCenter,
    headers: &HeaderMap,
    needed: &[&str],
) -> Result<(), Response> {
    let Some(token) = dc.oauth.check_bearer(headers) else {
        return Err(invalid_token());
    };
    if !needed.iter().any(|n| allows(&token.scope, n)) {
        return Err(scope_mismatch());
    }
    Ok(())
}

/// Credits and the call's version, then the scope of a module operation
/// (`ZohoCRM.modules.ALL`, `ZohoCRM.modules.leads.ALL`, `ZohoCRM.modules.leads.READ`).
fn module_call(
    dc: &DataCenter,
    version: &str,
    headers: &HeaderMap,
    module: &str,
    op: &str,
) -> Result<&'static records::ModuleDef, Response> {
    if !VERSIONS.contains(&version) {
        return Err(bad_url());
    }
    let m = records::module_or_error(module)?;
    let lower = m.api_name.to_ascii_lowercase();
    authorised(
        dc,
        headers,
        &[
            &format!("ZohoCRM.modules.{lower}.{op}"),
            &format!("ZohoCRM.modules.{op}"),
        ],
    )?;
    dc.spend_credit()?;
    Ok(m)
}

type Params = Query<HashMap<String, String>>;

async fn list(
    State(dc): State<DataCenter>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    match module_call(&dc, &version, &headers, &module, "READ") {
        Ok(m) => records::list(&dc.org, m, &q, &headers),
        Err(r) => r,
    }
}

async fn insert(
    State(dc): State<DataCenter>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let m = match module_call(&dc, &version, &headers, &module, "CREATE") {
        Ok(m) => m,
        Err(r) => return r,
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => announced_insert(&dc, m, records::insert(&dc.org, m, &v)).await,
        Err(_) => records::zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not a valid JSON",
            json!({}),
        ),
    }
}

async fn search(
    State(dc): State<DataCenter>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    match module_call(&dc, &version, &headers, &module, "READ") {
        Ok(m) => records::search(&dc.org, m, &q),
        Err(r) => r,
    }
}

async fn deleted(
    State(dc): State<DataCenter>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    match module_call(&dc, &version, &headers, &module, "READ") {
        Ok(m) => records::deleted(&dc.org, m, &q, &headers),
        Err(r) => r,
    }
}

async fn get_one(
    State(dc): State<DataCenter>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match module_call(&dc, &version, &headers, &module, "READ") {
        Ok(m) => records::get_one(&dc.org, m, &id),
        Err(r) => r,
    }
}

async fn update(
    State(dc): State<DataCenter>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let m = match module_call(&dc, &version, &headers, &module, "UPDATE") {
        Ok(m) => m,
        Err(r) => return r,
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let r = records::update(&dc.org, m, &id, &v);
            if r.status().is_success() {
                crate::notifications::announce(&dc, m.api_name, "update", vec![id]);
            }
            r
        }
        Err(_) => records::zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not a valid JSON",
            json!({}),
        ),
    }
}

async fn delete(
    State(dc): State<DataCenter>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match module_call(&dc, &version, &headers, &module, "DELETE") {
        Ok(m) => {
            let r = records::delete(&dc.org, m, &id);
            if r.status().is_success() {
                crate::notifications::announce(&dc, m.api_name, "delete", vec![id]);
            }
            r
        }
        Err(r) => r,
    }
}

/// An insert's answer, its created ids announced to the module's notification channels.
async fn announced_insert(dc: &DataCenter, m: &records::ModuleDef, answer: Response) -> Response {
    if !answer.status().is_success() {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ids: Vec<String> = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["data"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|r| r["code"] == "SUCCESS")
        .filter_map(|r| r["details"]["id"].as_str().map(str::to_string))
        .collect();
    crate::notifications::announce(dc, m.api_name, "insert", ids);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn modules(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !VERSIONS.contains(&version.as_str()) {
        return bad_url();
    }
    if let Err(r) = authorised(
        &dc,
        &headers,
        &["ZohoCRM.settings.modules.READ", "ZohoCRM.settings.READ"],
    ) {
        return r;
    }
    records::modules()
}

async fn fields(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    if !VERSIONS.contains(&version.as_str()) {
        return bad_url();
    }
    if let Err(r) = authorised(
        &dc,
        &headers,
        &["ZohoCRM.settings.fields.READ", "ZohoCRM.settings.READ"],
    ) {
        return r;
    }
    records::fields(&dc.org, &q)
}

/// Zoho's answer to a missing, expired or foreign token.
fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})),
    )
        .into_response()
}

fn scope_mismatch() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope to access this URL", "status": "error"})),
    )
        .into_response()
}

async fn org(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !VERSIONS.contains(&version.as_str()) {
        return bad_url();
    }
    let Some(token) = dc.oauth.check_bearer(&headers) else {
        return invalid_token();
    };
    if !allows(&token.scope, "ZohoCRM.org.READ") {
        return scope_mismatch();
    }
    Json(json!({"org": [{
        "id": "111000000000001",
        "company_name": dc.company_name,
        "primary_email": dc.user_email,
        "domain_name": format!("org{}", dc.key.replace('.', "")),
        "country_code": match dc.key.as_str() { "eu" => "DE", "in" => "IN", "com.au" => "AU", "jp" => "JP", _ => "US" },
        "time_zone": "UTC",
        "currency": "USD",
        "zgid": "700000001",
    }]}))
    .into_response()
}

async fn users(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    if !VERSIONS.contains(&version.as_str()) {
        return bad_url();
    }
    let Some(token) = dc.oauth.check_bearer(&headers) else {
        return invalid_token();
    };
    if !allows(&token.scope, "ZohoCRM.users.READ") {
        return scope_mismatch();
    }
    if q.get("type").map(String::as_str) != Some("CurrentUser") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "INVALID_DATA", "details": {"param_name": "type"}, "message": "the sandbox serves type=CurrentUser only", "status": "error"})),
        )
            .into_response();
    }
    Json(json!({
        "users": [{"id": "111000000000101", "email": token.subject, "full_name": "Sandbox Admin",
                   "status": "active", "role": {"name": "CEO", "id": "111000000000201"},
                   "profile": {"name": "Administrator", "id": "111000000000301"}}],
        "info": {"per_page": 200, "count": 1, "page": 1, "more_records": false},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn scopes_cover_as_zoho_documents() {
        assert!(super::allows(
            "ZohoCRM.modules.ALL,ZohoCRM.org.READ",
            "ZohoCRM.org.READ"
        ));
        assert!(super::allows("ZohoCRM.org.ALL", "ZohoCRM.org.READ"));
        assert!(!super::allows("ZohoCRM.modules.ALL", "ZohoCRM.org.READ"));
    }
}
