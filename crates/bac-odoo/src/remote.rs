//! The tenant's Odoo as one handle: the session from the connection (secret from Vault), the
//! server's version and the protocol it picked, the uid cache, and the kit's call log. Every upstream call of bac-odoo (API requests, sync runs, commands) goes through
//! [`Remote::execute`], so they share one quota, one uid per connection, one protocol choice
//! and one error mapping. [`Remote::create_once`] makes a `create` safe to retry.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bac_connector::Calls;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Pool,
    upstream::{EgressPolicy, RetryPolicy, UpstreamClient},
    ErrorCode, ServiceError,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::client::{
    service_error, transformers::OdooFault, ModelCall, OdooCallError, OdooClient, OdooSession,
    Protocol,
};

/// How long an Odoo uid from `authenticate` (and a probed version) is reused.
const UID_TTL: Duration = Duration::from_secs(300);
/// Creates [`Remote::create_once`] sends at most, and searches for the intent id after each
/// ambiguous one.
const CREATE_ATTEMPTS: u32 = 3;
const SETTLE_SEARCHES: u32 = 3;
/// First wait before searching for the intent id after an ambiguous create (doubles).
const SETTLE_DELAY: Duration = Duration::from_millis(300);

/// What a connection's server is: the protocol its calls use and its major version (the
/// model/field differences between 16, 17, 18 and 19 depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    pub protocol: Protocol,
    pub major: u32,
}

/// The connection setting `protocol`: "auto" (default), "jsonrpc" or "json2".
pub const PROTOCOLS: &[&str] = &["auto", "jsonrpc", "json2"];

/// The major version of Odoo's `common.version` answer (`server_version_info[0]`, else the
/// leading number of `server_version`: "17.0", "saas~18.3", "19.0+e").
pub fn major_version(version: &Value) -> Option<u32> {
    if let Some(n) = version["server_version_info"]
        .get(0)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
    {
        return Some(n);
    }
    let s = version["server_version"].as_str()?;
    let s = s.strip_prefix("saas~").unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The protocol a connection uses: its `protocol` setting, or with "auto" JSON-2 for Odoo 19+
/// when the connection has an API key, JSON-RPC otherwise.
pub fn pick_protocol(setting: &str, major: u32, has_api_key: bool) -> Protocol {
    match setting {
        "jsonrpc" => Protocol::JsonRpc,
        "json2" => Protocol::Json2,
        _ if major >= 19 && has_api_key => Protocol::Json2,
        _ => Protocol::JsonRpc,
    }
}

/// The technical field an Odoo database may have for intent ids: a custom Char field
/// (`x_bac_intent_id`, not copied on duplicate) that no view shows. An administrator adds it
/// once per model (docs/odoo.md); when a model has it, creates use it.
pub const TECHNICAL_INTENT_FIELD: &str = "x_bac_intent_id";

/// Where each model's creates keep the platform's intent id when the database has no
/// technical field and the connection's `intent_fields` names none: the least visible
/// ordinary field that the fleet's own APIs do not write (a printed customer reference or a
/// product code shown in every product name would put the id in front of customers).
pub const DEFAULT_INTENT_FIELDS: &[(&str, &str)] = &[
    // "Referred By", on the Extra Info tab; not printed
    ("crm.lead", "referred"),
    // "Reference" on the Sales & Purchase tab
    ("res.partner", "ref"),
    // "Source Document" on the Other Info tab (not the printed "Customer Reference")
    ("sale.order", "origin"),
    // "Source Document" on the Other Info tab (`ref` is the customer's reference)
    ("account.move", "invoice_origin"),
    // "Barcode" (not the Internal Reference every product name shows in brackets)
    ("product.product", "barcode"),
    // "Identification No", private information only HR officers see
    ("hr.employee", "identification_id"),
];

/// The intent field a connection's `intent_fields` setting names for `model`, if any.
pub fn configured_intent_field(rec: &ConnectionRecord, model: &str) -> Option<String> {
    rec.config
        .get("intent_fields")
        .and_then(|m| m.get(model))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The ordinary field `model`'s intent ids go to when nothing better exists.
pub fn default_intent_field(model: &str) -> Option<&'static str> {
    DEFAULT_INTENT_FIELDS
        .iter()
        .find(|(m, _)| *m == model)
        .map(|(_, f)| *f)
}

/// A failure after which Odoo may or may not have applied the call: timeouts, lost
/// connections and responses, 5xx, 429 after the request went out.
pub fn ambiguous(e: &ServiceError) -> bool {
    matches!(
        e.code,
        ErrorCode::ConnectionTimeout
            | ErrorCode::UpstreamUnavailable
            | ErrorCode::UpstreamRateLimited
    )
}

/// The id of a `create` answer: an int (JSON-RPC with one dict) or a list of ids (JSON-2).
pub fn created_id(created: &Value) -> Result<i64, ServiceError> {
    created
        .as_i64()
        .or_else(|| {
            created
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_i64)
        })
        .ok_or_else(|| ServiceError::internal("odoo", format!("create returned {created}")))
}

#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

/// The field names of one model on one database.
type FieldNames = std::sync::Arc<std::collections::HashSet<String>>;

struct Inner {
    db: Pool,
    connections: ConnectionStore,
    client: OdooClient,
    /// connection id -> (uid, session fingerprint, when).
    uids: Mutex<HashMap<String, (i64, String, Instant)>>,
    /// connection id -> (protocol and version, session fingerprint + protocol setting, when).
    servers: Mutex<HashMap<String, (ServerInfo, String, Instant)>>,
    /// (connection id, model) -> the model's field names on that database.
    fields: Mutex<HashMap<(String, String), FieldNames>>,
    /// The call log (and the status cache it invalidates).
    calls: Calls,
}

impl Remote {
    pub fn new(
        db: Pool,
        connections: ConnectionStore,
        calls: Calls,
        upstream_deadline: Duration,
        egress: EgressPolicy,
        max_body: usize,
        per_second: Option<u32>,
    ) -> Self {
        let policy = RetryPolicy {
            deadline: upstream_deadline,
            ..RetryPolicy::default()
        };
        Remote {
            inner: Arc::new(Inner {
                db,
                connections,
                // Odoo publishes no quota; 20 calls/s keeps a small self-hosted server healthy
                // (BAC_UPSTREAM_PER_SECOND for a larger one).
                client: OdooClient::new(
                    UpstreamClient::new("odoo", Some(per_second.unwrap_or(20)), policy, egress)
                        .with_max_body(max_body),
                ),
                uids: Mutex::new(HashMap::new()),
                servers: Mutex::new(HashMap::new()),
                fields: Mutex::new(HashMap::new()),
                calls,
            }),
        }
    }

    pub fn db(&self) -> &Pool {
        &self.inner.db
    }

    pub fn connections(&self) -> &ConnectionStore {
        &self.inner.connections
    }

    pub fn client(&self) -> &OdooClient {
        &self.inner.client
    }

    pub async fn session(&self, rec: &ConnectionRecord) -> Result<OdooSession, ServiceError> {
        let secret = self.inner.connections.secret(rec).await?;
        let api_key = secret.data.get("api_key").cloned();
        let password = api_key
            .clone()
            .or_else(|| secret.data.get("password").cloned())
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
            api_key,
        })
    }

    /// A connection changed or failed: its cached uid and every cached status are stale.
    pub async fn forget_connection(&self, id: &str) {
        self.inner.uids.lock().await.remove(id);
        self.inner.servers.lock().await.remove(id);
        self.inner.fields.lock().await.retain(|(c, _), _| c != id);
        self.inner.calls.forget_statuses();
    }

    /// Runs one upstream operation for `rec` and records it in the call log.
    pub async fn tracked<T>(
        &self,
        rec: &ConnectionRecord,
        operation: &str,
        op: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.inner.calls.tracked(rec, operation, op).await
    }

    /// The protocol and version of the connection's server, from cache or probed with
    /// `common.version` (which needs no credentials).
    pub async fn server(
        &self,
        rec: &ConnectionRecord,
        s: &OdooSession,
    ) -> Result<ServerInfo, ServiceError> {
        let setting = match rec.setting("protocol") {
            "" => "auto",
            p => p,
        };
        let fp = format!("{}/{setting}", session_fingerprint(s));
        if let Some((info, f, at)) = self.inner.servers.lock().await.get(&rec.id) {
            if *f == fp && at.elapsed() < UID_TTL {
                return Ok(*info);
            }
        }
        let major = match self.inner.client.version(&s.url).await {
            Ok(v) => major_version(&v).unwrap_or(0),
            // A server that only speaks JSON-2 (no /jsonrpc) still works when JSON-2 is forced.
            Err(_) if setting == "json2" => 19,
            Err(e) => return Err(service_error(e, &s.url)),
        };
        let info = ServerInfo {
            protocol: pick_protocol(setting, major, s.api_key.is_some()),
            major,
        };
        tracing::debug!(connection = %rec.id, major, protocol = info.protocol.as_str(), "odoo server probed");
        self.inner
            .servers
            .lock()
            .await
            .insert(rec.id.clone(), (info, fp, Instant::now()));
        Ok(info)
    }

    /// The server's major version (16, 17, 18, 19...).
    pub async fn server_major(&self, rec: &ConnectionRecord) -> Result<u32, ServiceError> {
        let s = self.session(rec).await?;
        Ok(self.server(rec, &s).await?.major)
    }

    /// The uid for this connection, from cache or a fresh login: `common.authenticate` over
    /// JSON-RPC, `res.users.context_get` over JSON-2 (which checks the API key).
    pub async fn uid(&self, rec: &ConnectionRecord, s: &OdooSession) -> Result<i64, ServiceError> {
        let fp = session_fingerprint(s);
        if let Some((uid, f, at)) = self.inner.uids.lock().await.get(&rec.id) {
            if *f == fp && at.elapsed() < UID_TTL {
                return Ok(*uid);
            }
        }
        let info = self.server(rec, s).await?;
        let uid = match info.protocol {
            Protocol::JsonRpc => self.inner.client.authenticate(s).await,
            Protocol::Json2 => self
                .inner
                .client
                .execute_json2(
                    s,
                    ModelCall {
                        model: "res.users",
                        method: "context_get",
                        args: vec![],
                        kwargs: json!({}),
                        idempotent: true,
                    },
                )
                .await
                .map(|ctx| ctx["uid"].as_i64().unwrap_or(0)),
        }
        .map_err(|e| service_error(e, &s.url))?;
        self.inner
            .uids
            .lock()
            .await
            .insert(rec.id.clone(), (uid, fp, Instant::now()));
        Ok(uid)
    }

    /// What a probe of the connection's server found last, if any (no call).
    pub async fn known_server(&self, connection_id: &str) -> Option<ServerInfo> {
        self.inner
            .servers
            .lock()
            .await
            .get(connection_id)
            .map(|(info, _, _)| *info)
    }

    /// Whether `model` has `field` on the connection's database (`fields_get`, cached until
    /// the connection changes or a call fails). Which optional fields exist is the database's
    /// installed apps', not the version's: `is_storable` (18+) is the Inventory app's, and
    /// reading a field Odoo does not have is an error.
    pub async fn has_field(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        field: &str,
    ) -> Result<bool, ServiceError> {
        let key = (rec.id.clone(), model.to_string());
        if let Some(known) = self.inner.fields.lock().await.get(&key) {
            return Ok(known.contains(field));
        }
        let got = self
            .execute(
                rec,
                model,
                "fields_get",
                vec![],
                json!({"attributes": ["type"]}),
                true,
            )
            .await?;
        let names: std::collections::HashSet<String> = got
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let has = names.contains(field);
        self.inner
            .fields
            .lock()
            .await
            .insert(key, std::sync::Arc::new(names));
        Ok(has)
    }

    /// Where `model`'s creates on this connection keep the platform's intent id: the field
    /// the connection's `intent_fields` names, else the technical field when the database
    /// has it, else the model's least visible ordinary field ([`DEFAULT_INTENT_FIELDS`]).
    /// None: the model has no place for one (its creates need `intent_fields`).
    pub async fn intent_field(
        &self,
        rec: &ConnectionRecord,
        model: &str,
    ) -> Result<Option<String>, ServiceError> {
        if let Some(field) = configured_intent_field(rec, model) {
            return Ok(Some(field));
        }
        if self.has_field(rec, model, TECHNICAL_INTENT_FIELD).await? {
            return Ok(Some(TECHNICAL_INTENT_FIELD.to_string()));
        }
        Ok(default_intent_field(model).map(str::to_string))
    }

    /// `model.method(*args, **kwargs)` on the connection's Odoo.
    pub async fn execute(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
        idempotent: bool,
    ) -> Result<Value, ServiceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let s = self.session(rec).await?;
            let call = ModelCall {
                model,
                method,
                args: args.clone(),
                kwargs: kwargs.clone(),
                idempotent,
            };
            let result = match self.server(rec, &s).await?.protocol {
                Protocol::JsonRpc => {
                    let uid = self.uid(rec, &s).await?;
                    self.inner.client.execute_kw(&s, uid, call).await
                }
                Protocol::Json2 => self.inner.client.execute_json2(&s, call).await,
            };
            if result.is_err() {
                // A changed password or a revoked key must not stay cached.
                self.forget_connection(&rec.id).await;
            }
            match result {
                // Refused credentials: what was cached (the uid, the secret) may be stale, so
                // log in again from the stored secret once. Odoo checks credentials before
                // running anything, so even a create is safe to send again.
                // A database failure Odoo rolled back: a read is simply asked again once (a
                // create is not: `create_once` checks whether it happened first).
                Err(OdooCallError::Fault(OdooFault::Transient(_)))
                    if attempt == 1 && idempotent =>
                {
                    tracing::info!(connection = %rec.id, model, method, "odoo rolled back a read; asking again");
                    continue;
                }
                Err(OdooCallError::Fault(OdooFault::AccessDenied | OdooFault::ApiKeyRefused))
                    if attempt == 1 =>
                {
                    tracing::info!(connection = %rec.id, model, method, "odoo refused the cached credentials; logging in again");
                    continue;
                }
                other => return other.map_err(|e| service_error(e, &s.url)),
            }
        }
    }

    /// Creates one `model` record at most once: `vals` carry `intent_id` in `intent_field`;
    /// with `search_first` a record already carrying it is returned instead. The create itself
    /// is never blindly retried: after an ambiguous failure (timeout, lost response, 5xx, 429)
    /// the intent id is searched for, and the create is sent again only when Odoo certainly
    /// has no such record (up to three creates in all).
    pub async fn create_once(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        vals: Value,
        intent_field: &str,
        intent_id: &str,
        search_first: bool,
    ) -> Result<i64, ServiceError> {
        let mut vals = vals;
        let Some(obj) = vals.as_object_mut() else {
            return Err(ServiceError::new(
                "odoo",
                ErrorCode::InvalidRequest,
                format!("the values of a {model} create must be an object"),
            ));
        };
        obj.insert(intent_field.to_string(), json!(intent_id));
        let domain = json!([[intent_field, "=", intent_id]]);
        if search_first {
            if let Some(id) = self.find_intent(rec, model, &domain).await? {
                return Ok(id);
            }
        }
        let mut last = None;
        for attempt in 1..=CREATE_ATTEMPTS {
            match self
                .execute(rec, model, "create", vec![vals.clone()], json!({}), false)
                .await
            {
                Ok(created) => return created_id(&created),
                Err(e) if !ambiguous(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(connection = %rec.id, %model, attempt, error = %e, %intent_id,
                        "create outcome unknown; searching for its intent id");
                    last = Some(e);
                }
            }
            if let Some(id) = self
                .settle(rec, model, &domain, intent_field, intent_id)
                .await?
            {
                return Ok(id);
            }
        }
        Err(last.unwrap_or_else(|| ServiceError::internal("odoo", "create_once without attempt")))
    }

    /// After an ambiguous create: the record carrying the intent id, or None when Odoo
    /// certainly has none. When even the searches fail, the outcome stays unknown: an error
    /// that names the intent id (never a second create).
    async fn settle(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        domain: &Value,
        intent_field: &str,
        intent_id: &str,
    ) -> Result<Option<i64>, ServiceError> {
        let mut delay = SETTLE_DELAY;
        let mut last = None;
        for _ in 0..SETTLE_SEARCHES {
            tokio::time::sleep(delay).await;
            delay *= 2;
            match self.find_intent(rec, model, domain).await {
                Ok(found) => return Ok(found),
                Err(e) if ambiguous(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let e = last.unwrap_or_else(|| ServiceError::internal("odoo", "no search"));
        Err(ServiceError::new(
            "odoo",
            e.code,
            format!(
                "{}; whether Odoo created the {model} is unknown (look for {intent_field} = {intent_id})",
                e.message
            ),
        )
        .suggest("Retry the request with the same Idempotency-Key: it returns the record if it was created"))
    }

    async fn find_intent(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        domain: &Value,
    ) -> Result<Option<i64>, ServiceError> {
        let ids = self
            .execute(
                rec,
                model,
                "search",
                vec![domain.clone()],
                json!({"limit": 1, "order": "id", "context": {"active_test": false}}),
                true,
            )
            .await?;
        Ok(ids
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_i64))
    }
}

/// Any change of where or as whom we log in invalidates a cached uid, not only the password
/// (another replica may have changed the url, database or username).
pub fn session_fingerprint(s: &OdooSession) -> String {
    bac_runtime::events::content_hash(&json!([
        s.url,
        s.database,
        s.username,
        s.password.expose_secret()
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_version_comes_from_version_info_or_the_string() {
        assert_eq!(
            major_version(
                &json!({"server_version": "17.0", "server_version_info": [17, 0, 0, "final", 0]})
            ),
            Some(17)
        );
        assert_eq!(
            major_version(&json!({"server_version": "saas~18.3"})),
            Some(18)
        );
        assert_eq!(
            major_version(&json!({"server_version": "19.0+e"})),
            Some(19)
        );
        assert_eq!(major_version(&json!({})), None);
    }

    #[test]
    fn auto_picks_json2_for_19_with_an_api_key() {
        assert_eq!(pick_protocol("auto", 19, true), Protocol::Json2);
        assert_eq!(pick_protocol("", 20, true), Protocol::Json2);
        assert_eq!(pick_protocol("auto", 19, false), Protocol::JsonRpc);
        assert_eq!(pick_protocol("auto", 18, true), Protocol::JsonRpc);
        assert_eq!(pick_protocol("jsonrpc", 19, true), Protocol::JsonRpc);
        assert_eq!(pick_protocol("json2", 17, false), Protocol::Json2);
    }

    #[test]
    fn intent_fields_have_defaults_and_a_setting() {
        let rec = |config: Value| ConnectionRecord {
            id: "con_1".into(),
            tenant_id: "t".into(),
            name: "x".into(),
            config,
            secret_fields: vec![],
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        assert_eq!(default_intent_field("crm.lead"), Some("referred"));
        assert_eq!(default_intent_field("sale.order"), Some("origin"));
        assert_eq!(default_intent_field("project.task"), None);
        assert_eq!(configured_intent_field(&rec(json!({})), "crm.lead"), None);
        let custom = rec(json!({"intent_fields": {"crm.lead": "x_bac_intent"}}));
        assert_eq!(
            configured_intent_field(&custom, "crm.lead").as_deref(),
            Some("x_bac_intent")
        );
        assert_eq!(configured_intent_field(&custom, "res.partner"), None);
    }

    #[test]
    fn ambiguous_failures_are_the_ones_that_may_have_happened() {
        let e = |code| ServiceError::new("odoo", code, "x");
        assert!(ambiguous(&e(ErrorCode::ConnectionTimeout)));
        assert!(ambiguous(&e(ErrorCode::UpstreamUnavailable)));
        assert!(ambiguous(&e(ErrorCode::UpstreamRateLimited)));
        assert!(!ambiguous(&e(ErrorCode::UpstreamRejected)));
        assert!(!ambiguous(&e(ErrorCode::InvalidCredentials)));
        assert_eq!(created_id(&json!(7)).ok(), Some(7));
        assert_eq!(created_id(&json!([8])).ok(), Some(8));
        assert!(created_id(&json!(false)).is_err());
    }
}
