//! Zoho CRM's organisation and current-user resources (`/crm/v6/org`,
//! `/crm/v6/users?type=CurrentUser`), what a connection test reads, behind Zoho's
//! `Authorization: Zoho-oauthtoken` header and its 401 body.
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::DataCenter;

pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route("/crm/v6/org", get(org))
        .route("/crm/v6/users", get(users))
        .with_state(dc)
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

/// Whether a granted scope list covers `needed` (`ZohoCRM.org.READ` is covered by
/// `ZohoCRM.org.ALL` and `ZohoCRM.org.READ`).
fn allows(granted: &str, needed: &str) -> bool {
    let (service, rest) = needed.split_once('.').unwrap_or((needed, ""));
    let (resource, _) = rest.rsplit_once('.').unwrap_or((rest, ""));
    granted.split([',', ' ']).any(|g| {
        g == needed || g == format!("{service}.{resource}.ALL") || g == format!("{service}.ALL")
    })
}

async fn org(State(dc): State<DataCenter>, headers: HeaderMap) -> Response {
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
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
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
