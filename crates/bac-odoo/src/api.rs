//! The gRPC face of bac-odoo: `bac.odoo.v1.OdooService` (leads) and the shared
//! `bac.integration.v1.IntegrationService` (connections and their test).
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bac_proto::{
    common::v1::PageInfo,
    integration::v1::{
        integration_service_server::IntegrationService, Conflict, Connection,
        CreateConnectionRequest, DeleteConnectionRequest, DeleteConnectionResponse,
        GetConnectionRequest, GetStatusRequest, IntegrationStatus, ListConflictsRequest,
        ListConflictsResponse, ListConnectionsRequest, ListConnectionsResponse,
        ListSyncRunsRequest, ListSyncRunsResponse, ResolveConflictRequest, TestConnectionRequest,
        TestConnectionResponse, TriggerSyncRequest, TriggerSyncResponse, UpdateConnectionRequest,
        UpdateConnectionResponse,
    },
    odoo::v1::{
        odoo_service_server::OdooService, CreateLeadRequest, Lead, ListLeadsRequest,
        ListLeadsResponse,
    },
};
use bac_runtime::db::Pool;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    upstream::{RetryPolicy, UpstreamClient},
    ErrorCode, RequestContext, ServiceError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use crate::{
    calls,
    client::{
        service_error,
        transformers::{lead_from_record, lead_to_vals, priority_to_odoo, LEAD_FIELDS},
        ModelCall, OdooClient, OdooSession,
    },
    mirror::{self, Op, LEAD_MODEL},
};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 200;
/// How long an Odoo uid from `authenticate` is reused.
const UID_TTL: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct OdooApi {
    inner: Arc<Inner>,
}

struct Inner {
    db: Pool,
    connections: ConnectionStore,
    client: OdooClient,
    /// connection id -> (uid, password fingerprint, when).
    uids: Mutex<HashMap<String, (i64, String, Instant)>>,
    /// tenant -> its status, reused for STATUS_TTL: dashboards poll it, and each answer costs
    /// three queries. Any call or connection change on this replica drops the cache.
    statuses: std::sync::Mutex<HashMap<String, (Instant, IntegrationStatus)>>,
}

const STATUS_TTL: Duration = Duration::from_secs(1);

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("odoo", ErrorCode::InvalidRequest, msg)
}

impl OdooApi {
    pub fn new(db: Pool, connections: ConnectionStore, upstream_deadline: Duration) -> Self {
        let policy = RetryPolicy {
            deadline: upstream_deadline,
            ..RetryPolicy::default()
        };
        OdooApi {
            inner: Arc::new(Inner {
                db,
                connections,
                // Odoo publishes no quota; 20 calls/s keeps a small self-hosted server healthy.
                client: OdooClient::new(UpstreamClient::new("odoo", Some(20), policy)),
                uids: Mutex::new(HashMap::new()),
                statuses: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    async fn session(&self, rec: &ConnectionRecord) -> Result<OdooSession, ServiceError> {
        let secret = self.inner.connections.secret(rec).await?;
        let password = secret
            .data
            .get("api_key")
            .or_else(|| secret.data.get("password"))
            .cloned()
            .ok_or_else(|| {
                ServiceError::new(
                    "odoo",
                    ErrorCode::InvalidCredentials,
                    "the connection has no password or api_key",
                )
            })?;
        Ok(OdooSession {
            url: rec.setting("url").to_string(),
            database: rec.setting("database").to_string(),
            username: rec.setting("username").to_string(),
            password,
        })
    }

    /// Runs one upstream operation for `rec` and records it in the call log (what the
    /// dashboard's error count, response times and health come from).
    /// A connection changed or failed: its cached uid and every cached status are stale.
    async fn forget_connection(&self, id: &str) {
        self.inner.uids.lock().await.remove(id);
        self.forget_statuses();
    }

    fn forget_statuses(&self) {
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.clear();
        }
    }

    async fn tracked<T>(
        &self,
        rec: &ConnectionRecord,
        operation: &str,
        op: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        let result = op.await;
        calls::record(
            &self.inner.db,
            &rec.tenant_id,
            &rec.id,
            operation,
            result.as_ref().err().map(|e| e.code),
            started.elapsed(),
        )
        .await;
        self.forget_statuses();
        result
    }

    /// The uid for this connection, from cache or a fresh `authenticate`.
    async fn uid(&self, rec: &ConnectionRecord, s: &OdooSession) -> Result<i64, ServiceError> {
        let fp = session_fingerprint(s);
        if let Some((uid, f, at)) = self.inner.uids.lock().await.get(&rec.id) {
            if *f == fp && at.elapsed() < UID_TTL {
                return Ok(*uid);
            }
        }
        let uid = self
            .inner
            .client
            .authenticate(s)
            .await
            .map_err(|e| service_error(e, &s.url))?;
        self.inner
            .uids
            .lock()
            .await
            .insert(rec.id.clone(), (uid, fp, Instant::now()));
        Ok(uid)
    }

    async fn execute(
        &self,
        rec: &ConnectionRecord,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
        idempotent: bool,
    ) -> Result<Value, ServiceError> {
        let s = self.session(rec).await?;
        let uid = self.uid(rec, &s).await?;
        let result = self
            .inner
            .client
            .execute_kw(
                &s,
                uid,
                ModelCall {
                    model: LEAD_MODEL,
                    method,
                    args,
                    kwargs,
                    idempotent,
                },
            )
            .await;
        if result.is_err() {
            // A changed password or a revoked key must not stay cached.
            self.forget_connection(&rec.id).await;
        }
        result.map_err(|e| service_error(e, &s.url))
    }
}

/// Any change of where or as whom we log in invalidates a cached uid, not only the password
/// (another replica may have changed the url, database or username).
fn session_fingerprint(s: &OdooSession) -> String {
    bac_runtime::events::content_hash(&json!([
        s.url,
        s.database,
        s.username,
        s.password.expose_secret()
    ]))
}

fn validate_lead(lead: &Lead) -> Result<(), ServiceError> {
    if lead.name.trim().is_empty() {
        return Err(bad("name is required"));
    }
    if lead.name.len() > 512 {
        return Err(bad("name is longer than 512 characters"));
    }
    if priority_to_odoo(&lead.priority).is_none() {
        return Err(bad(format!(
            "priority {:?} is not one of low, medium, high, very_high",
            lead.priority
        )));
    }
    if !lead.expected_revenue.is_finite() || lead.expected_revenue < 0.0 {
        return Err(bad("expected_revenue must be a non-negative number"));
    }
    if !lead.email.is_empty() && !lead.email.contains('@') {
        return Err(bad("email is not an email address"));
    }
    Ok(())
}

fn validate_config(req: &CreateConnectionRequest) -> Result<Value, ServiceError> {
    let config = req
        .config
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| json!({}));
    validate_connection(&config, &req.secrets)
}

/// Checks a connection's settings and credentials; returns the settings as stored. The
/// gateway's catalog publishes the same rules as a JSON Schema (an e2e test keeps the two
/// in agreement).
pub fn validate_connection(
    config: &Value,
    secrets: &HashMap<String, String>,
) -> Result<Value, ServiceError> {
    let settings = validate_settings(config)?;
    validate_secrets(secrets)?;
    Ok(settings)
}

/// `url` (http or https, no credentials in it), `database` and `username`, nothing else.
pub fn validate_settings(config: &Value) -> Result<Value, ServiceError> {
    let field = |k: &str| -> Result<String, ServiceError> {
        match config.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) | None => Err(bad(format!("config.{k} is required"))),
            Some(_) => Err(bad(format!("config.{k} must be a string"))),
        }
    };
    let url = field("url")?;
    let parsed = url::Url::parse(&url).map_err(|_| bad("config.url is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad(
            "config.url must be an http(s) URL such as https://mycompany.odoo.com",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "config.url must not contain credentials; use credentials.password",
        ));
    }
    let database = field("database")?;
    let username = field("username")?;
    if let Some(extra) = config.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["url", "database", "username"].contains(&k.as_str()))
    }) {
        return Err(bad(format!(
            "config.{extra} is not an Odoo setting (url, database, username); secrets go in credentials"
        )));
    }
    Ok(json!({ "url": url.trim_end_matches('/'), "database": database, "username": username }))
}

/// `password` or `api_key`, at least one of them non-empty.
pub fn validate_secrets(secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
    if secrets.keys().any(|k| k != "password" && k != "api_key") {
        return Err(bad("credentials accept password or api_key"));
    }
    if !secrets.values().any(|v| !v.is_empty()) {
        return Err(bad(
            "credentials.password or credentials.api_key is required",
        ));
    }
    Ok(())
}

/// The stored settings and secret fields of a connection are complete.
fn stored_valid(rec: &ConnectionRecord) -> bool {
    validate_settings(&rec.config).is_ok()
        && rec
            .secret_fields
            .iter()
            .any(|f| f == "password" || f == "api_key")
}

fn non_empty_secrets(secrets: HashMap<String, String>) -> HashMap<String, SecretString> {
    secrets
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect()
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

#[tonic::async_trait]
impl OdooService for OdooApi {
    async fn create_lead(
        &self,
        request: Request<CreateLeadRequest>,
    ) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let lead = req.lead.ok_or_else(|| bad("lead is required"))?;
        validate_lead(&lead)?;
        let rec = self
            .inner
            .connections
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (id, rows) = self
            .tracked(&rec, "create_lead", async {
                let created = self
                    .execute(&rec, "create", vec![lead_to_vals(&lead)], json!({}), false)
                    .await?;
                let id = created
                    .as_i64()
                    .or_else(|| {
                        created
                            .as_array()
                            .and_then(|a| a.first())
                            .and_then(Value::as_i64)
                    })
                    .ok_or_else(|| {
                        ServiceError::internal("odoo", format!("create returned {created}"))
                    })?;
                // Read back what Odoo stored (dates, normalised values).
                let rows = self
                    .execute(
                        &rec,
                        "read",
                        vec![json!([id])],
                        json!({ "fields": LEAD_FIELDS }),
                        true,
                    )
                    .await?;
                Ok((id, rows))
            })
            .await?;
        let stored = rows
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| lead_from_record(r, &rec.id))
            .ok_or_else(|| ServiceError::internal("odoo", "read after create returned no row"))?;
        mirror::record_lead(&self.inner.db, &ctx, &stored, Op::Created, "platform").await?;
        tracing::info!(lead_id = id, connection = %rec.id, "lead created");
        Ok(Response::new(stored))
    }

    async fn list_leads(
        &self,
        request: Request<ListLeadsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let limit = match page.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(bad(format!("limit must be at most {MAX_PAGE}")).into())
            }
            n => n,
        };
        let offset = page.offset;
        let rec = self
            .inner
            .connections
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = if req.name_contains.trim().is_empty() {
            json!([])
        } else {
            json!([["name", "ilike", req.name_contains.trim()]])
        };
        let (rows, total) = self
            .tracked(&rec, "list_leads", async {
                let rows = self
                    .execute(
                        &rec,
                        "search_read",
                        vec![domain.clone()],
                        json!({ "fields": LEAD_FIELDS, "limit": limit, "offset": offset, "order": "id desc" }),
                        true,
                    )
                    .await?;
                let total = self
                    .execute(&rec, "search_count", vec![domain], json!({}), true)
                    .await?
                    .as_u64()
                    .unwrap_or(0);
                Ok((rows, total))
            })
            .await?;
        let leads: Vec<Lead> = rows
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| lead_from_record(r, &rec.id))
                    .collect()
            })
            .unwrap_or_default();
        let next = u64::from(offset) + u64::from(limit);
        Ok(Response::new(ListLeadsResponse {
            leads,
            page: Some(PageInfo {
                limit,
                offset,
                total,
                next_offset: (next < total).then_some(next as u32),
            }),
        }))
    }
}

fn not_built(what: &str) -> Status {
    ServiceError::new(
        "odoo",
        ErrorCode::NotImplemented,
        format!("{what} is not available yet in bac-odoo (the sync engine is not built)"),
    )
    .into_status()
}

#[tonic::async_trait]
impl IntegrationService for OdooApi {
    async fn create_connection(
        &self,
        request: Request<CreateConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = validate_config(&req)?;
        let name = if req.name.trim().is_empty() {
            "Odoo".to_string()
        } else {
            req.name.trim().to_string()
        };
        let secrets = non_empty_secrets(req.secrets);
        let rec = self
            .inner
            .connections
            .create(&ctx.tenant_id, &req.id, &name, config, secrets)
            .await?;
        self.forget_connection(&rec.id).await;
        Ok(Response::new(rec.to_proto("odoo")))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .inner
            .connections
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(rec.to_proto("odoo")))
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let ctx = ctx(&request)?;
        let list = self.inner.connections.list(&ctx.tenant_id).await?;
        Ok(Response::new(ListConnectionsResponse {
            connections: list.iter().map(|r| r.to_proto("odoo")).collect(),
        }))
    }

    async fn update_connection(
        &self,
        request: Request<UpdateConnectionRequest>,
    ) -> Result<Response<UpdateConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = match &req.config {
            Some(c) => Some(validate_settings(
                &serde_json::to_value(c).map_err(|e| ServiceError::internal("odoo", e))?,
            )?),
            None => None,
        };
        let secrets = match req.secrets {
            Some(s) => {
                validate_secrets(&s.fields)?;
                Some(non_empty_secrets(s.fields))
            }
            None => None,
        };
        let name = match req.name.as_deref().map(str::trim) {
            Some("") => return Err(bad("name must not be empty").into()),
            other => other,
        };
        let (rec, changed) = self
            .inner
            .connections
            .update(&ctx.tenant_id, &req.id, name, config, secrets)
            .await?;
        self.forget_connection(&rec.id).await;
        Ok(Response::new(UpdateConnectionResponse {
            connection: Some(rec.to_proto("odoo")),
            changed_secret_fields: changed,
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<DeleteConnectionRequest>,
    ) -> Result<Response<DeleteConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let id = request.into_inner().id;
        self.inner.connections.delete(&ctx.tenant_id, &id).await?;
        self.forget_connection(&id).await;
        Ok(Response::new(DeleteConnectionResponse {}))
    }

    async fn test_connection(
        &self,
        request: Request<TestConnectionRequest>,
    ) -> Result<Response<TestConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .inner
            .connections
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        let started = Instant::now();
        let (s, version) = self
            .tracked(&rec, "test_connection", async {
                let s = self.session(&rec).await?;
                let version = self
                    .inner
                    .client
                    .version(&s.url)
                    .await
                    .map_err(|e| service_error(e, &s.url))?;
                self.forget_connection(&rec.id).await;
                self.uid(&rec, &s).await?;
                Ok((s, version))
            })
            .await?;
        let server_version = version["server_version"].as_str().unwrap_or("").to_string();
        Ok(Response::new(TestConnectionResponse {
            ok: true,
            message: format!(
                "logged in to Odoo {server_version} database {} as {}",
                s.database, s.username
            ),
            server_version,
            latency_ms: started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32,
        }))
    }

    async fn trigger_sync(
        &self,
        _request: Request<TriggerSyncRequest>,
    ) -> Result<Response<TriggerSyncResponse>, Status> {
        Err(not_built("TriggerSync"))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<IntegrationStatus>, Status> {
        let ctx = ctx(&request)?;
        if let Ok(m) = self.inner.statuses.lock() {
            if let Some((at, status)) = m.get(&ctx.tenant_id) {
                if at.elapsed() < STATUS_TTL {
                    return Ok(Response::new(status.clone()));
                }
            }
        }
        let connections = self.inner.connections.list(&ctx.tenant_id).await?;
        let ids: Vec<String> = connections.iter().map(|c| c.id.clone()).collect();
        let last = calls::last_calls(&self.inner.db, &ctx.tenant_id, &ids).await?;
        let window = calls::window_24h(&self.inner.db, &ctx.tenant_id).await?;
        let status = calls::status(&connections, &last, &window, stored_valid);
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.insert(ctx.tenant_id.clone(), (Instant::now(), status.clone()));
        }
        Ok(Response::new(status))
    }

    async fn list_sync_runs(
        &self,
        _request: Request<ListSyncRunsRequest>,
    ) -> Result<Response<ListSyncRunsResponse>, Status> {
        Err(not_built("ListSyncRuns"))
    }

    async fn list_conflicts(
        &self,
        _request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        Err(not_built("ListConflicts"))
    }

    async fn resolve_conflict(
        &self,
        _request: Request<ResolveConflictRequest>,
    ) -> Result<Response<Conflict>, Status> {
        Err(not_built("ResolveConflict"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_req(config: Value, secrets: &[(&str, &str)]) -> CreateConnectionRequest {
        CreateConnectionRequest {
            id: "con_1".into(),
            name: "x".into(),
            config: serde_json::from_value(config).ok(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn connection_settings_are_validated() {
        let ok = json!({"url": "http://odoo:8069/", "database": "db", "username": "u"});
        assert_eq!(
            validate_config(&conn_req(ok.clone(), &[("password", "p")])).unwrap()["url"],
            "http://odoo:8069"
        );
        assert!(validate_config(&conn_req(ok.clone(), &[])).is_err());
        assert!(validate_config(&conn_req(ok.clone(), &[("token", "p")])).is_err());
        let no_db = json!({"url": "http://odoo:8069", "username": "u"});
        let e = validate_config(&conn_req(no_db, &[("password", "p")])).unwrap_err();
        assert!(e.message.contains("config.database"));
        let ftp = json!({"url": "ftp://odoo", "database": "d", "username": "u"});
        assert!(validate_config(&conn_req(ftp, &[("password", "p")])).is_err());
        let secret_in_config =
            json!({"url": "http://o", "database": "d", "username": "u", "password": "p"});
        assert!(validate_config(&conn_req(secret_in_config, &[("password", "p")])).is_err());
    }

    #[test]
    fn a_uid_is_bound_to_url_database_user_and_password() {
        let s = |url: &str, db: &str, user: &str, pw: &str| OdooSession {
            url: url.into(),
            database: db.into(),
            username: user.into(),
            password: SecretString::from(pw.to_string()),
        };
        let base = session_fingerprint(&s("http://o", "d", "u", "p"));
        assert_eq!(base, session_fingerprint(&s("http://o", "d", "u", "p")));
        for other in [
            s("http://x", "d", "u", "p"),
            s("http://o", "x", "u", "p"),
            s("http://o", "d", "x", "p"),
            s("http://o", "d", "u", "x"),
        ] {
            assert_ne!(base, session_fingerprint(&other));
        }
    }

    #[test]
    fn leads_are_validated_before_odoo_sees_them() {
        let mut lead = Lead {
            name: "Deal".into(),
            priority: "high".into(),
            ..Default::default()
        };
        assert!(validate_lead(&lead).is_ok());
        lead.priority = "urgent".into();
        assert!(validate_lead(&lead).is_err());
        lead.priority = String::new();
        lead.name = "  ".into();
        assert!(validate_lead(&lead).is_err());
    }
}
