//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! schema types below (the gateway's own routes) and from the annotated protos (the domain
//! routes, `crate::transcode::openapi`), served at `/api/v1/openapi.json`, and the reference
//! page at `/api/v1/docs`: Redoc (vendored, `assets/redoc`, served by the gateway itself, so
//! the page makes no outside request), with the same document rendered on the server inside
//! `<noscript>` for readers without JavaScript.
use axum::{
    http::header,
    response::{Html, IntoResponse},
};
use serde::Serialize;
use serde_json::Value;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    IntoResponses, Modify, OpenApi, ToSchema,
};

/// A user's role.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RoleName {
    SuperAdmin,
    Admin,
    User,
}

/// An integration of the access matrix and the catalog.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum IntegrationName {
    Email,
    Calendar,
    Tally,
    Payments,
    Zoho,
    Odoo,
    GoogleWorkspace,
    Messaging,
}

/// A grant: `view` (status and data reads) or `manage` (also writes and configuration).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PermissionType {
    View,
    Manage,
}

/// What a sync run reads: what changed since the last run, or everything.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SyncMode {
    Incremental,
    Full,
}

/// Which conflicts to list.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ConflictStatus {
    Open,
    Resolved,
    All,
}

/// How the webhook token is handed out.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TokenForm {
    Header,
    Query,
}

/// A synced entity. These are Odoo's, the only integration that syncs today; each
/// integration's own are listed by GET /api/v1/integrations/definitions.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EntityName {
    CrmLead,
    Partner,
    SaleOrder,
    Invoice,
    Product,
    StockQuant,
    Employee,
}

/// The one error shape of every failure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Category: invalid_request, unauthorized, forbidden, not_found, conflict,
    /// integration_error, rate_limited, service_unavailable, not_implemented, internal_error.
    pub error: String,
    pub message: String,
    pub details: ErrorDetails,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// The X-Request-Id of the request.
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetails {
    pub integration: Option<String>,
    /// Stable code, see docs/errors.md (e.g. INVALID_CREDENTIALS).
    pub error_code: String,
    pub suggestion: Option<String>,
    /// The provider's own error code (Zoho's `MANDATORY_NOT_FOUND`), present only when the
    /// provider gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<String>,
}

/// Failures any authenticated route may answer.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum CommonErrors {
    /// Malformed or invalid request.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, unknown, revoked or expired API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role and grants do not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource for the caller's tenant.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The resource exists or changed concurrently.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body too large.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// The integration refused (credentials, data, no connection).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Rate limited; see Retry-After.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Not built yet.
    #[response(status = 501)]
    NotImplemented(ErrorBody),
    /// A service or upstream is unavailable.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// An upstream did not answer in time.
    #[response(status = 504)]
    Timeout(ErrorBody),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    /// super_admin | admin | user
    pub role: String,
    pub created_at: String,
    /// False once deactivated: the user's keys are refused.
    pub active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    /// Public part of the key (`bac_<prefix>_...`).
    pub prefix: String,
    pub name: String,
    pub user_id: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<String>,
    /// The full key; only in the answer that created it.
    pub key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
    pub total: i64,
    pub next_offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub tenant_id: String,
    /// `user:<id>` or `operator:<...>`.
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// What changed; secret fields are redacted.
    #[schema(value_type = Object)]
    pub diff: Value,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionEntry {
    pub integration: String,
    /// The caller's grants on it: view, manage.
    pub grants: Vec<String>,
    pub delegable: bool,
    pub view_status: bool,
    pub read_data: bool,
    pub write_data: bool,
    pub configure: bool,
    pub grant: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EffectivePermissions {
    pub user_id: String,
    pub tenant_id: String,
    pub role: String,
    pub permissions: Vec<PermissionEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub user_id: String,
    pub integration: String,
    pub permission_type: String,
    pub granted_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: bool,
    pub id: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bac_<prefix>_<secret>")
                    .description(Some("An API key, as 'Authorization: Bearer <key>'"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BAC integrations API",
        version = "1.0.0",
        description = "The REST API of the BAC integrations fleet: connections to Odoo, Zoho, Google Workspace, Tally and messaging, their data, access control and audit. Errors always use the ErrorBody shape. Text never contains NUL (U+0000): a body or query string holding one is refused with a 400. A field a request body leaves out keeps its default (or, in an update, its value); null means the same for fields that are not optional scalars."
    ),
    paths(
        crate::routes::access::create_tenant,
        crate::routes::access::list_tenants,
        crate::routes::access::create_user,
        crate::routes::access::list_users,
        crate::routes::access::update_user,
        crate::routes::access::delete_user,
        crate::routes::access::create_key,
        crate::routes::access::list_keys,
        crate::routes::access::revoke_key,
        crate::routes::access::rotate_key,
        crate::routes::access::list_audit,
        crate::routes::permissions::effective,
        crate::routes::permissions::grant,
        crate::routes::permissions::revoke,
        crate::routes::connections::definitions,
        crate::routes::connections::create,
        crate::routes::connections::list,
        crate::routes::connections::get,
        crate::routes::connections::update,
        crate::routes::connections::delete,
        crate::routes::connections::test,
        crate::routes::oauth::authorize,
        crate::routes::oauth::callback,
        crate::routes::status::dashboard,
        crate::routes::status::integration_status,
        crate::routes::tally::test_connection,
        crate::routes::tally::get_configuration,
        crate::routes::tally::create_configuration,
        crate::routes::tally::update_configuration,
        crate::routes::tally::delete_configuration,
        crate::routes::tally::issue_agent_key,
        crate::routes::sync::trigger,
        crate::routes::sync::runs,
        crate::routes::sync::settings,
        crate::routes::sync::update_settings,
        crate::routes::sync::get_mapping,
        crate::routes::sync::put_mapping,
        crate::routes::sync::preview_mapping,
        crate::routes::sync::conflicts,
        crate::routes::sync::resolve,
        crate::routes::sync::create_webhook_token,
        crate::routes::sync::webhook,
        crate::routes::sync::push,
        crate::routes::parked::list,
        crate::routes::parked::retry,
        crate::routes::parked::discard,
    ),
    components(schemas(ErrorBody, ErrorDetails, RoleName, IntegrationName, PermissionType, SyncMode, ConflictStatus, TokenForm, EntityName, crate::routes::tally::TestBody)),
    modifiers(&Security),
    security(("api_key" = [])),
    tags(
        (name = "access", description = "Tenants, users and API keys"),
        (name = "permissions", description = "The access matrix and delegated grants"),
        (name = "audit", description = "The audit trail"),
        (name = "connections", description = "Connections to upstream systems"),
        (name = "status", description = "Integration status and the dashboard"),
        (name = "tally", description = "Tally's configuration and connection test, as the integration-management document gives them"),
        (name = "odoo", description = "Odoo ERP data"),
        (name = "sync", description = "Syncs, their runs, field mappings and conflicts"),
        (name = "events", description = "Events the broker refused for good (parked)"),
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served: the hand-written routes' part (utoipa) with the operations and
/// schemas of every transcoded route (from the protos) merged in.
pub fn document_value() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(document()).unwrap_or_default();
        if let Ok(tc) = crate::transcode::fleet() {
            let (paths, schemas) = crate::transcode::openapi::operations(tc);
            if let Some(p) = doc["paths"].as_object_mut() {
                p.extend(paths);
            }
            if let Some(s) = doc["components"]["schemas"].as_object_mut() {
                s.extend(schemas);
            }
        }
        if let Some(s) = doc["components"]["schemas"].as_object_mut() {
            s.insert("CreateConnection".into(), create_connection_schema());
            // An update changes something: at least one of its fields, not null (utoipa has no
            // way to say so on the struct).
            for (schema, fields) in [
                ("UpdateUser", &["role", "active"][..]),
                ("UpdateConnection", &["name", "config", "credentials"][..]),
            ] {
                if let Some(u) = s.get_mut(schema) {
                    u["minProperties"] = serde_json::json!(1);
                    u["anyOf"] = Value::Array(
                        fields
                            .iter()
                            .map(|f| {
                                serde_json::json!({"required": [f], "properties": {*f: {"not": {"type": "null"}}}})
                            })
                            .collect(),
                    );
                }
            }
        }
        add_links(&mut doc);
        doc
    })
}

/// `(operation, status, [(target operation, path parameter)])`.
type Link = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// OpenAPI links: where the id a create answers is used next (client generators and
/// schemathesis' stateful phase follow them); the id is `$response.body#/id` in each.
const LINKS: &[Link] = &[
    (
        "create_connection",
        "201",
        &[
            ("get_connection", "id"),
            ("update_connection", "id"),
            ("delete_connection", "id"),
            ("test_connection", "id"),
            ("trigger_sync", "id"),
            ("list_sync_runs", "id"),
            ("list_sync_settings", "id"),
            ("list_conflicts", "id"),
            ("create_webhook_token", "id"),
        ],
    ),
    (
        "create_user",
        "201",
        &[("update_user", "id"), ("delete_user", "id")],
    ),
    (
        "create_key",
        "201",
        &[("revoke_key", "id"), ("rotate_key", "id")],
    ),
    (
        "odoo_create_lead",
        "201",
        &[("odoo_get_lead", "id"), ("odoo_update_lead", "id")],
    ),
    (
        "zoho_create_lead",
        "201",
        &[("zoho_get_lead", "id"), ("zoho_update_lead", "id")],
    ),
    (
        "zoho_create_contact",
        "201",
        &[("zoho_get_contact", "id"), ("zoho_update_contact", "id")],
    ),
    (
        "zoho_create_deal",
        "201",
        &[("zoho_get_deal", "id"), ("zoho_update_deal", "id")],
    ),
    ("zoho_create_invoice", "201", &[("zoho_get_invoice", "id")]),
    ("zoho_create_ticket", "201", &[("zoho_get_ticket", "id")]),
];

fn add_links(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
    {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        for (from, status, targets) in LINKS {
            if *from != id {
                continue;
            }
            let links: serde_json::Map<String, Value> = targets
                .iter()
                .map(|(target, param)| {
                    (
                        (*target).to_string(),
                        serde_json::json!({
                            "operationId": target,
                            "parameters": {*param: "$response.body#/id"},
                        }),
                    )
                })
                .collect();
            if let Some(r) = op["responses"][*status].as_object_mut() {
                r.insert("links".into(), Value::Object(links));
            }
        }
    }
}

/// `GET /api/v1/openapi.json`: the document, serialised once.
pub async fn openapi_json() -> impl IntoResponse {
    static TEXT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let text = TEXT.get_or_init(|| {
        serde_json::to_vec(document_value())
            .unwrap_or_else(|_| b"{}".to_vec())
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], text.clone())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A connection body is one integration's: its `config` and `credentials` follow that
/// integration's JSON Schemas from the catalog (GET /api/v1/integrations/definitions), one
/// `oneOf` branch per integration, told apart by `integration`.
fn create_connection_schema() -> Value {
    let branches: Vec<Value> = crate::catalog::CATALOG
        .iter()
        .map(|d| {
            // A part whose schema asks for anything must be sent (absent is `{}`).
            let asks = |schema: &Value| {
                schema["required"].as_array().is_some_and(|r| !r.is_empty())
                    || schema["minProperties"].as_u64().is_some_and(|n| n > 0)
            };
            let required_config = asks(&d.config_schema);
            let required_credentials = asks(&d.credentials_schema);
            let mut required = vec![serde_json::json!("integration")];
            if required_config {
                required.push(serde_json::json!("config"));
            }
            if required_credentials {
                required.push(serde_json::json!("credentials"));
            }
            serde_json::json!({
                "title": d.name,
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "integration": {"const": d.key},
                    "name": {"type": "string", "maxLength": 200, "description": "A name for people (default: the integration's)"},
                    "config": d.config_schema,
                    "credentials": d.credentials_schema,
                },
            })
        })
        .collect();
    serde_json::json!({
        "description": "A connection to one integration: its settings (`config`) and secrets (`credentials`, stored in Vault only), each as that integration's schema says.",
        "oneOf": branches,
        "discriminator": {"propertyName": "integration"},
    })
}

/// The Redoc release embedded (`assets/redoc/README.md`).
pub const REDOC_VERSION: &str = "2.5.2";
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

/// `/api/v1/docs/redoc.standalone.js`.
pub async fn redoc_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}

/// The reference page: Redoc renders `/api/v1/openapi.json`; the content security policy
/// keeps every request on this origin.
pub async fn docs_page() -> impl IntoResponse {
    let plain = plain_body();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>BAC integrations API</title><style>body{{margin:0}}</style></head><body>\
         <redoc spec-url=\"/api/v1/openapi.json\" disable-search=\"false\" hide-download-button=\"false\" \
         expand-responses=\"200,201\" required-props-first=\"true\" path-in-middle-panel=\"true\"></redoc>\
         <noscript>{plain}</noscript>\
         <script src=\"/api/v1/docs/redoc.standalone.js?v={REDOC_VERSION}\"></script></body></html>"
    );
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self' blob:; worker-src 'self' blob:; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        )],
        Html(page),
    )
}

/// Every operation and schema as plain HTML, rendered from the document on the server.
fn plain_body() -> String {
    let doc = document_value();
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI {}). Authenticate with <code>Authorization: Bearer &lt;API key&gt;</code>.</p>",
        esc(doc["info"]["title"].as_str().unwrap_or("")),
        esc(doc["info"]["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or("")),
    ));
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                body.push_str(&format!(
                    "<section><h2><code>{} {}</code></h2><p>{}</p>",
                    esc(&method.to_uppercase()),
                    esc(path),
                    esc(op["summary"]
                        .as_str()
                        .or(op["description"].as_str())
                        .unwrap_or(""))
                ));
                if let Some(params) = op["parameters"].as_array() {
                    body.push_str("<h3>Parameters</h3><ul>");
                    for p in params {
                        body.push_str(&format!(
                            "<li><code>{}</code> ({}) {}</li>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            esc(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    body.push_str("</ul>");
                }
                if let Some(rb) = op.get("requestBody") {
                    body.push_str(&format!(
                        "<h3>Request body</h3><pre>{}</pre>",
                        esc(&serde_json::to_string_pretty(
                            &rb["content"]["application/json"]["schema"]
                        )
                        .unwrap_or_default())
                    ));
                }
                if let Some(resps) = op["responses"].as_object() {
                    body.push_str("<h3>Responses</h3><ul>");
                    for (code, r) in resps {
                        body.push_str(&format!(
                            "<li><code>{}</code> {}</li>",
                            esc(code),
                            esc(r["description"].as_str().unwrap_or(""))
                        ));
                    }
                    body.push_str("</ul>");
                }
                body.push_str("</section>");
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        body.push_str("<h1>Schemas</h1>");
        for (name, schema) in schemas {
            body.push_str(&format!(
                "<section><h2 id=\"{0}\">{0}</h2><pre>{1}</pre></section>",
                esc(name),
                esc(&serde_json::to_string_pretty(schema).unwrap_or_default())
            ));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_security_and_error_shape() {
        let doc = document_value();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/integrations/permissions/grant"));
        // Every operation documents its errors and has an id of its own.
        let mut ids = std::collections::HashSet::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id), "operationId {id} twice ({method} {path})");
            }
        }
        // Every link leads from a documented answer to an operation that exists.
        for (from, status, targets) in LINKS {
            let op = paths
                .values()
                .flat_map(|ops| ops.as_object().unwrap().values())
                .find(|op| op["operationId"] == *from)
                .unwrap_or_else(|| panic!("no operation {from}"));
            for (target, _) in *targets {
                assert!(ids.contains(target), "link to unknown {target}");
                assert!(op["responses"][*status]["links"][*target].is_object());
            }
        }
    }
}
