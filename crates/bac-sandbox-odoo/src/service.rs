//! The RPC services behind `/jsonrpc` (`common`, `db`, `object`) and the web
//! client's `call_kw`, with Python-like argument binding so that wrong calls
//! fail with the same `TypeError`s as Odoo.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{json, Map, Value};

use super::actions;
use super::error::{py_repr, py_type_name, OdooError, OdooResult};
use super::faults::Faults;
use super::models::{add_custom_fields, major_version, models_for};
use super::seed::{self, SeedRequest};
use super::store::Store;
use super::OdooSandboxConfig;

/// A user able to log in: login and password (or API key), never logged.
#[derive(Clone)]
pub struct User {
    /// `res.users` id.
    pub uid: i64,
    /// Login.
    pub login: String,
    password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("uid", &self.uid)
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A web session (`session_id` cookie) created by `/web/session/authenticate`.
#[derive(Debug, Clone)]
pub struct Session {
    /// Logged-in user.
    pub uid: i64,
    /// Database of the session.
    pub db: String,
    /// Login of the user.
    pub login: String,
}

/// An API key (`res.users.apikeys`), never logged.
#[derive(Clone)]
struct ApiKey {
    key: String,
    uid: i64,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("uid", &self.uid)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The state of one sandboxed Odoo server.
#[derive(Debug)]
pub struct OdooService {
    database: String,
    server_version: String,
    major: u32,
    users: Vec<User>,
    api_keys: Vec<ApiKey>,
    store: Mutex<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Fault injection rules.
    pub faults: std::sync::Arc<Faults>,
}

/// A Python parameter: name and default (`None` when required).
type Param = (&'static str, Option<Value>);

/// Python's "'a', 'b', and 'c'" list formatting of missing argument names.
pub(crate) fn py_name_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        2 => format!("{} and {}", quoted[0], quoted[1]),
        n => format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// Binds positional and keyword arguments like a Python call of `func(self?, *params, **kw?)`.
/// Returns the bound values (defaults filled in) and the leftover keywords (for `**kw`).
fn bind(
    func: &str,
    params: &[Param],
    args: &[Value],
    kwargs: &Map<String, Value>,
    varkw: bool,
    is_method: bool,
) -> OdooResult<(Vec<Value>, Map<String, Value>)> {
    let offset = usize::from(is_method);
    if args.len() > params.len() {
        let required = params.iter().filter(|(_, d)| d.is_none()).count() + offset;
        let max = params.len() + offset;
        let given = args.len() + offset;
        let takes = if required == max {
            format!(
                "{max} positional argument{}",
                if max == 1 { "" } else { "s" }
            )
        } else {
            format!("from {required} to {max} positional arguments")
        };
        return Err(OdooError::type_error(format!(
            "{func}() takes {takes} but {given} {} given",
            if given == 1 { "was" } else { "were" }
        )));
    }
    let mut bound: Vec<Option<Value>> = params.iter().map(|_| None).collect();
    for (slot, arg) in bound.iter_mut().zip(args) {
        *slot = Some(arg.clone());
    }
    let mut rest = Map::new();
    for (key, value) in kwargs {
        match params.iter().position(|(name, _)| name == key) {
            Some(i) if bound[i].is_some() => {
                return Err(OdooError::type_error(format!(
                    "{func}() got multiple values for argument '{key}'"
                )))
            }
            Some(i) => bound[i] = Some(value.clone()),
            None if varkw => {
                rest.insert(key.clone(), value.clone());
            }
            None => {
                return Err(OdooError::type_error(format!(
                    "{func}() got an unexpected keyword argument '{key}'"
                )))
            }
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .zip(&bound)
        .filter(|((_, default), value)| default.is_none() && value.is_none())
        .map(|((name, _), _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(OdooError::type_error(format!(
            "{func}() missing {} required positional argument{}: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            py_name_list(&missing)
        )));
    }
    let values = bound
        .into_iter()
        .zip(params)
        .map(|(v, (_, default))| v.or_else(|| default.clone()).unwrap_or(Value::Null))
        .collect();
    Ok((values, rest))
}

fn is_falsy(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}

/// Record ids from a `browse()` argument: an int, a list of ints, or False/None.
fn to_ids(v: &Value) -> OdooResult<Vec<i64>> {
    let one = |x: &Value| -> OdooResult<i64> {
        match x {
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                OdooError::type_error(format!("ids must be integers, not {}", py_repr(x)))
            }),
            other => Err(OdooError::type_error(format!(
                "ids must be integers, not '{}'",
                py_type_name(other)
            ))),
        }
    };
    match v {
        Value::Null | Value::Bool(false) => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn to_offset(v: &Value) -> OdooResult<usize> {
    match v {
        Value::Null | Value::Bool(false) => Ok(0),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| OdooError::value_error(format!("Invalid offset {}", py_repr(v)))),
        other => Err(OdooError::type_error(format!(
            "offset must be an integer, not '{}'",
            py_type_name(other)
        ))),
    }
}

fn to_limit(v: &Value) -> OdooResult<Option<usize>> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Number(n) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(0) => Ok(None),
            Some(n) => Ok(Some(n)),
            None => Err(OdooError::value_error(format!(
                "Invalid limit {}",
                py_repr(v)
            ))),
        },
        other => Err(OdooError::type_error(format!(
            "limit must be an integer, not '{}'",
            py_type_name(other)
        ))),
    }
}

fn to_order(v: &Value) -> OdooResult<Option<String>> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(OdooError::type_error(format!(
            "order must be a string, not '{}'",
            py_type_name(other)
        ))),
    }
}

fn to_names(v: &Value, what: &str) -> OdooResult<Option<Vec<String>>> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::String(s) => Ok(Some(vec![s.clone()])),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    OdooError::type_error(format!(
                        "{what} must be a list of field names, got {}",
                        py_repr(v)
                    ))
                })
            })
            .collect::<OdooResult<Vec<_>>>()
            .map(Some),
        other => Err(OdooError::type_error(format!(
            "{what} must be a list of field names, not '{}'",
            py_type_name(other)
        ))),
    }
}

/// `int(value)` as Python would do it for the uid argument.
fn py_int(v: &Value) -> OdooResult<i64> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => Ok(n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or_default().trunc() as i64)),
        Value::String(s) => s.trim().parse().map_err(|_| {
            OdooError::value_error(format!(
                "invalid literal for int() with base 10: {}",
                py_repr(v)
            ))
        }),
        other => Err(OdooError::type_error(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            py_type_name(other)
        ))),
    }
}

impl OdooService {
    /// Builds the service and seeds users, CRM stages, stock locations,
    /// departments, `ir.model` and the configured seed data.
    pub fn new(cfg: &OdooSandboxConfig) -> Self {
        let major = major_version(&cfg.server_version);
        let mut models = models_for(major, cfg.stock);
        if let Err(e) = add_custom_fields(&mut models, &cfg.custom_fields) {
            tracing::warn!(error = %e, "odoo sandbox: custom field skipped");
        }
        let mut store = Store::new(models);
        let mut users: Vec<User> = Vec::new();
        // OdooBot (id 1, archived), then the configured users from id 2.
        let _ = store.insert_with_id(
            "res.users",
            1,
            &json!({"name": "OdooBot", "login": "__system__", "active": false}),
            1,
        );
        for (login, password) in &cfg.users {
            if users.iter().any(|u| &u.login == login) {
                continue;
            }
            let uid = 2 + users.len() as i64;
            let name = if login == "admin" {
                "Administrator".to_owned()
            } else {
                login.clone()
            };
            let email = if login.contains('@') {
                Value::String(login.clone())
            } else {
                Value::Bool(false)
            };
            let vals = json!({"name": name, "login": login, "email": email});
            if let Err(e) = store.insert_with_id("res.users", uid, &vals, 1) {
                tracing::warn!(error = %e, uid, "odoo sandbox: could not create the res.users record");
            }
            users.push(User {
                uid,
                login: login.clone(),
                password: password.clone(),
            });
        }
        let stages = [
            ("New", 1, false),
            ("Qualified", 2, false),
            ("Proposition", 3, false),
            ("Won", 70, true),
        ];
        for (i, (name, sequence, won)) in stages.iter().enumerate() {
            let vals = json!({"name": name, "sequence": sequence, "is_won": won});
            let _ = store.insert_with_id("crm.stage", i as i64 + 1, &vals, 1);
        }
        // the generic chart of accounts' default taxes
        let taxes = [("15%", "sale"), ("15%", "purchase")];
        for (i, (name, usage)) in taxes.iter().enumerate() {
            let vals = json!({"name": name, "amount": 15.0, "type_tax_use": usage});
            let _ = store.insert_with_id("account.tax", i as i64 + 1, &vals, 1);
        }
        let locations = [
            ("Physical Locations", "Physical Locations", "view"),
            ("Partners", "Partners", "view"),
            ("Vendors", "Partners/Vendors", "supplier"),
            ("Customers", "Partners/Customers", "customer"),
            ("WH", "WH", "view"),
            ("Stock", "WH/Stock", "internal"),
        ];
        for (i, (name, complete, usage)) in locations.iter().enumerate() {
            let vals = json!({"name": name, "complete_name": complete, "usage": usage});
            let _ = store.insert_with_id("stock.location", i as i64 + 1, &vals, 1);
        }
        for (i, name) in ["Administration", "Sales", "Research & Development"]
            .iter()
            .enumerate()
        {
            let _ = store.insert_with_id("hr.department", i as i64 + 1, &json!({"name": name}), 1);
        }
        let descriptions: Vec<(&str, &str)> = models_for(major, cfg.stock)
            .iter()
            .map(|m| (m.name, m.description))
            .collect();
        for (i, (model, description)) in descriptions.iter().enumerate() {
            let vals = json!({"model": model, "name": description});
            let _ = store.insert_with_id("ir.model", i as i64 + 1, &vals, 1);
        }
        let api_keys = cfg
            .api_keys
            .iter()
            .filter(|(key, _)| !key.is_empty())
            .filter_map(|(key, login)| {
                let user = users.iter().find(|u| &u.login == login);
                if user.is_none() {
                    tracing::warn!(%login, "odoo sandbox: API key of an unknown user ignored");
                }
                user.map(|u| ApiKey {
                    key: key.clone(),
                    uid: u.uid,
                })
            })
            .collect();
        for (model, count) in &cfg.seed {
            let req = SeedRequest {
                model: model.clone(),
                count: usize::try_from(*count).unwrap_or(usize::MAX),
                ..SeedRequest::default()
            };
            let started = std::time::Instant::now();
            match seed::seed(&mut store, &req, 2) {
                Ok(ids) => tracing::info!(
                    %model,
                    created = ids.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "odoo sandbox: seeded"
                ),
                Err(e) => tracing::warn!(%model, error = %e, "odoo sandbox: seeding failed"),
            }
        }
        Self {
            database: cfg.database.clone(),
            server_version: cfg.server_version.clone(),
            major,
            users,
            api_keys,
            store: Mutex::new(store),
            sessions: Mutex::new(HashMap::new()),
            faults: std::sync::Arc::new(Faults::new(
                super::faults::PROTOCOLS,
                super::error::INJECTABLE,
            )),
        }
    }

    /// The major version served (17, 18, 19...).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The user of a `/json/2` bearer token (`res.users.apikeys._check_credentials`).
    pub fn bearer_uid(&self, token: &str) -> Option<i64> {
        self.api_keys.iter().find(|k| k.key == token).map(|k| k.uid)
    }

    /// `common.login`/`authenticate`: a password, or an API key of the user
    /// (Odoo accepts API keys in place of passwords on the RPC APIs).
    fn authenticate_rpc(&self, login: &Value, secret: &Value) -> Option<i64> {
        if let Some(user) = self.authenticate_user(login, secret) {
            return Some(user.uid);
        }
        let (Value::String(login), Value::String(secret)) = (login, secret) else {
            return None;
        };
        let user = self.users.iter().find(|u| &u.login == login)?;
        self.api_keys
            .iter()
            .any(|k| k.uid == user.uid && &k.key == secret)
            .then_some(user.uid)
    }

    /// The database served.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Locks the record store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `common.version()` / `/web/webclient/version_info`.
    pub fn version_info(&self) -> Value {
        let mut parts = self
            .server_version
            .split(['.', '-', '+'])
            .map(|p| p.parse::<i64>().ok());
        let major = parts.next().flatten().unwrap_or(17);
        let minor = parts.next().flatten().unwrap_or(0);
        json!({
            "server_version": self.server_version,
            "server_version_info": [major, minor, 0, "final", 0, ""],
            "server_serie": format!("{major}.{minor}"),
            "protocol_version": 1,
        })
    }

    fn check_db(&self, db: &Value) -> OdooResult<()> {
        match db {
            Value::String(s) if *s == self.database => Ok(()),
            Value::String(s) => Err(OdooError::unknown_database(s)),
            other => Err(OdooError::unknown_database(&py_repr(other))),
        }
    }

    /// The uid for a login/password pair (`None` on bad credentials).
    pub fn authenticate_user(&self, login: &Value, password: &Value) -> Option<&User> {
        let (Value::String(login), Value::String(password)) = (login, password) else {
            return None;
        };
        if password.is_empty() {
            return None;
        }
        self.users
            .iter()
            .find(|u| &u.login == login && &u.password == password)
    }

    /// `security.check(db, uid, password)`.
    fn check_uid(&self, db: &Value, uid: &Value, password: &Value) -> OdooResult<i64> {
        let uid = py_int(uid)?;
        self.check_db(db)?;
        match password {
            Value::String(p)
                if self.users.iter().any(|u| u.uid == uid && &u.password == p)
                    || self.api_keys.iter().any(|k| k.uid == uid && &k.key == p) =>
            {
                Ok(uid)
            }
            _ => Err(OdooError::access_denied()),
        }
    }

    /// Dispatches a `/jsonrpc` call (`dispatch_rpc(service, method, args)`).
    pub fn dispatch_rpc(&self, service: &str, method: &str, args: &[Value]) -> OdooResult<Value> {
        match service {
            "common" => self.dispatch_common(method, args),
            "db" => self.dispatch_db(method, args),
            "object" => self.dispatch_object(method, args),
            other => Err(OdooError::key_error(other)),
        }
    }

    fn dispatch_common(&self, method: &str, args: &[Value]) -> OdooResult<Value> {
        let none = Map::new();
        match method {
            "version" => {
                bind("exp_version", &[], args, &none, false, false)?;
                Ok(self.version_info())
            }
            "about" => {
                let (a, _) = bind(
                    "exp_about",
                    &[("extended", Some(json!(false)))],
                    args,
                    &none,
                    false,
                    false,
                )?;
                let info = json!("See http://openerp.com");
                Ok(if is_falsy(&a[0]) {
                    info
                } else {
                    json!([info, self.server_version])
                })
            }
            "login" => {
                let params = [("db", None), ("login", None), ("password", None)];
                let (a, _) = bind("exp_login", &params, args, &none, false, false)?;
                self.check_db(&a[0])?;
                Ok(match self.authenticate_rpc(&a[1], &a[2]) {
                    Some(uid) => json!(uid),
                    None => json!(false),
                })
            }
            "authenticate" => {
                let params = [
                    ("db", None),
                    ("login", None),
                    ("password", None),
                    ("user_agent_env", None),
                ];
                let (a, _) = bind("exp_authenticate", &params, args, &none, false, false)?;
                self.check_db(&a[0])?;
                // exp_authenticate catches res.users.authenticate()'s AccessDenied and
                // answers False, as login does
                match self.authenticate_rpc(&a[1], &a[2]) {
                    Some(uid) => Ok(json!(uid)),
                    None => Ok(json!(false)),
                }
            }
            "set_loglevel" => Ok(json!(true)),
            other => Err(OdooError::exception(format!("Method not found: {other}"))),
        }
    }

    fn dispatch_db(&self, method: &str, args: &[Value]) -> OdooResult<Value> {
        let none = Map::new();
        match method {
            "list" => {
                bind(
                    "exp_list",
                    &[("document", Some(json!(false)))],
                    args,
                    &none,
                    false,
                    false,
                )?;
                Ok(json!([self.database]))
            }
            "db_exist" => {
                let (a, _) = bind(
                    "exp_db_exist",
                    &[("db_name", None)],
                    args,
                    &none,
                    false,
                    false,
                )?;
                Ok(json!(a[0].as_str() == Some(self.database.as_str())))
            }
            "server_version" => Ok(json!(self.server_version)),
            "list_lang" => Ok(json!([["en_US", "English (US)"]])),
            // every other db method requires the master password, which the sandbox has not
            "create_database"
            | "duplicate_database"
            | "drop"
            | "dump"
            | "restore"
            | "rename"
            | "change_admin_password"
            | "migrate_databases"
            | "list_countries" => Err(OdooError::access_denied()),
            other => Err(OdooError::key_error(&format!("Method not found: {other}"))),
        }
    }

    fn dispatch_object(&self, method: &str, params: &[Value]) -> OdooResult<Value> {
        if params.len() < 3 {
            return Err(OdooError::index_error("list index out of range"));
        }
        let uid = self.check_uid(&params[0], &params[1], &params[2])?;
        let rest = &params[3..];
        let none = Map::new();
        let (model, method_name, args, kwargs) = match method {
            "execute" => {
                if rest.len() < 2 {
                    let missing = ["obj", "method"][rest.len()..].to_vec();
                    return Err(OdooError::type_error(format!(
                        "execute() missing {} required positional argument{}: {}",
                        missing.len(),
                        if missing.len() == 1 { "" } else { "s" },
                        py_name_list(&missing)
                    )));
                }
                (&rest[0], &rest[1], rest[2..].to_vec(), none)
            }
            "execute_kw" => {
                let params = [
                    ("obj", None),
                    ("method", None),
                    ("args", None),
                    ("kw", Some(Value::Null)),
                ];
                let (a, _) = bind("execute_kw", &params, rest, &none, false, false)?;
                let args = match &a[2] {
                    Value::Array(items) => items.clone(),
                    other => {
                        return Err(OdooError::type_error(format!(
                        "odoo.service.model.execute() argument after * must be an iterable, not {}",
                        py_type_name(other)
                    )))
                    }
                };
                let kwargs = match &a[3] {
                    Value::Object(m) => m.clone(),
                    Value::Null | Value::Bool(false) => Map::new(),
                    other => {
                        return Err(OdooError::type_error(format!(
                        "odoo.service.model.execute() argument after ** must be a mapping, not {}",
                        py_type_name(other)
                    )))
                    }
                };
                return self.execute(uid, &a[0], &a[1], &args, &kwargs);
            }
            other => {
                return Err(OdooError::name_error(format!(
                    "Method not available {other}"
                )));
            }
        };
        self.execute(uid, model, method_name, &args, &kwargs)
    }

    /// `odoo.service.model.execute`: method name check, model lookup, `call_kw`.
    fn execute(
        &self,
        uid: i64,
        model: &Value,
        method: &Value,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> OdooResult<Value> {
        let method = match method {
            Value::String(s) => s.as_str(),
            other => {
                return Err(OdooError::attribute_error(format!(
                    "'{}' object has no attribute 'startswith'",
                    py_type_name(other)
                )))
            }
        };
        check_method_name(method)?;
        let model_name = match model {
            Value::String(s) => s.clone(),
            other => py_repr(other),
        };
        if self.store().model(&model_name).is_none() {
            return Err(OdooError::user_error(format!(
                "Object {model_name} doesn't exist"
            )));
        }
        self.call_kw(uid, &model_name, method, args, kwargs)
    }

    /// `odoo.api.call_kw(model, method, args, kwargs)` on a served model.
    pub fn call_kw(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> OdooResult<Value> {
        check_method_name(method)?;
        let mut kwargs = kwargs.clone();
        let context = match kwargs.remove("context") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut store = self.store();
        if store.model(model).is_none() {
            return Err(OdooError::key_error(model));
        }
        // methods decorated @api.multi-like take the record ids as first argument
        let multi = matches!(
            method,
            "read" | "write" | "unlink" | "exists" | "check_access" | "has_access"
        ) || actions::exists(model, method);
        let (ids, args) = if multi {
            let Some(first) = args.first() else {
                return Err(OdooError::index_error("list index out of range"));
            };
            (to_ids(first)?, &args[1..])
        } else {
            (Vec::new(), args)
        };
        match method {
            "create" => {
                let (a, _) = bind("create", &[("vals_list", None)], args, &kwargs, false, true)?;
                match &a[0] {
                    Value::Object(_) => {
                        let ids =
                            store.create(model, std::slice::from_ref(&a[0]), uid, &context)?;
                        Ok(json!(ids.first().copied().unwrap_or_default()))
                    }
                    Value::Array(list) => Ok(json!(store.create(model, list, uid, &context)?)),
                    other => Err(OdooError::type_error(format!(
                        "create() expects a dict or a list of dicts, not '{}'",
                        py_type_name(other)
                    ))),
                }
            }
            "read" => {
                let params = [
                    ("fields", Some(Value::Null)),
                    ("load", Some(json!("_classic_read"))),
                ];
                let (a, _) = bind("read", &params, args, &kwargs, false, true)?;
                let fields = to_names(&a[0], "fields")?;
                let load = a[1].as_str() == Some("_classic_read");
                Ok(json!(store.read(model, &ids, fields.as_deref(), load)?))
            }
            "search" => {
                let params = [
                    ("domain", None),
                    ("offset", Some(json!(0))),
                    ("limit", Some(Value::Null)),
                    ("order", Some(Value::Null)),
                ];
                let (a, _) = bind("search", &params, args, &kwargs, false, true)?;
                let order = to_order(&a[3])?;
                let ids = store.search(
                    model,
                    &a[0],
                    to_offset(&a[1])?,
                    to_limit(&a[2])?,
                    order.as_deref(),
                    &context,
                )?;
                Ok(json!(ids))
            }
            "search_count" => {
                let params = [("domain", None), ("limit", Some(Value::Null))];
                let (a, _) = bind("search_count", &params, args, &kwargs, false, true)?;
                let ids = store.search(model, &a[0], 0, to_limit(&a[1])?, Some("id"), &context)?;
                Ok(json!(ids.len()))
            }
            "search_read" => {
                let params = [
                    ("domain", Some(Value::Null)),
                    ("fields", Some(Value::Null)),
                    ("offset", Some(json!(0))),
                    ("limit", Some(Value::Null)),
                    ("order", Some(Value::Null)),
                ];
                let (a, read_kwargs) = bind("search_read", &params, args, &kwargs, true, true)?;
                let (r, _) = bind(
                    "_read_format",
                    &[("load", Some(json!("_classic_read")))],
                    &[],
                    &read_kwargs,
                    false,
                    true,
                )?;
                let domain = if is_falsy(&a[0]) {
                    json!([])
                } else {
                    a[0].clone()
                };
                let fields = to_names(&a[1], "fields")?;
                let order = to_order(&a[4])?;
                let ids = store.search(
                    model,
                    &domain,
                    to_offset(&a[2])?,
                    to_limit(&a[3])?,
                    order.as_deref(),
                    &context,
                )?;
                let load = r[0].as_str() == Some("_classic_read");
                Ok(json!(store.read(model, &ids, fields.as_deref(), load)?))
            }
            "write" => {
                let (a, _) = bind("write", &[("vals", None)], args, &kwargs, false, true)?;
                store.write(model, &ids, &a[0], uid)?;
                Ok(json!(true))
            }
            "unlink" => {
                bind("unlink", &[], args, &kwargs, false, true)?;
                store.unlink(model, &ids)?;
                Ok(json!(true))
            }
            "exists" => {
                bind("exists", &[], args, &kwargs, false, true)?;
                Ok(json!(store.exists(model, &ids)?))
            }
            "fields_get" => {
                let params = [
                    ("allfields", Some(Value::Null)),
                    ("attributes", Some(Value::Null)),
                ];
                let (a, _) = bind("fields_get", &params, args, &kwargs, false, true)?;
                let allfields = to_names(&a[0], "allfields")?;
                let attributes = to_names(&a[1], "attributes")?;
                store.fields_get(model, allfields.as_deref(), attributes.as_deref())
            }
            "default_get" => {
                let (a, _) = bind(
                    "default_get",
                    &[("fields_list", None)],
                    args,
                    &kwargs,
                    false,
                    true,
                )?;
                let fields = to_names(&a[0], "fields_list")?.unwrap_or_default();
                store.default_get(model, &fields, uid, &context)
            }
            "name_search" => {
                let params = [
                    ("name", Some(json!(""))),
                    ("args", Some(Value::Null)),
                    ("operator", Some(json!("ilike"))),
                    ("limit", Some(json!(100))),
                ];
                let (a, _) = bind("name_search", &params, args, &kwargs, false, true)?;
                let rec_name = store.model(model).map_or("name", |m| m.rec_name);
                let mut domain = match &a[1] {
                    Value::Array(items) => items.clone(),
                    _ => Vec::new(),
                };
                let name = a[0].as_str().unwrap_or_default();
                let operator = a[2].as_str().unwrap_or("ilike");
                if !name.is_empty() || !matches!(operator, "ilike" | "like" | "=like" | "=ilike") {
                    domain.insert(0, json!([rec_name, operator, name]));
                }
                let ids = store.search(
                    model,
                    &Value::Array(domain),
                    0,
                    to_limit(&a[3])?,
                    None,
                    &context,
                )?;
                Ok(Value::Array(
                    ids.iter()
                        .map(|id| json!([id, store.display_name(model, *id)]))
                        .collect(),
                ))
            }
            "check_access" | "has_access" => {
                let (a, _) = bind(method, &[("operation", None)], args, &kwargs, false, true)?;
                if !matches!(a[0].as_str(), Some("read" | "write" | "create" | "unlink")) {
                    return Err(OdooError::value_error(format!(
                        "Invalid access mode {}",
                        py_repr(&a[0])
                    )));
                }
                Ok(if method == "has_access" {
                    json!(true)
                } else {
                    Value::Null
                })
            }
            _ if actions::exists(model, method) => {
                bind(method, &[], args, &kwargs, false, true)?;
                actions::call(&mut store, model, method, &ids, uid)
            }
            "check_access_rights" => {
                let params = [("operation", None), ("raise_exception", Some(json!(true)))];
                bind("check_access_rights", &params, args, &kwargs, false, true)?;
                Ok(json!(true))
            }
            "context_get" if model == "res.users" => {
                bind("context_get", &[], args, &kwargs, false, true)?;
                let user = store.read(model, &[uid], Some(&["lang".into(), "tz".into()]), false)?;
                let (lang, tz) = user
                    .first()
                    .map(|u| (u["lang"].clone(), u["tz"].clone()))
                    .unwrap_or((json!("en_US"), json!(false)));
                Ok(json!({"lang": lang, "tz": tz, "uid": uid}))
            }
            other => Err(OdooError::attribute_error(format!(
                "The method '{other}' does not exist on the model '{model}'"
            ))),
        }
    }

    // --------------------------------------------------------------- sessions

    /// Creates a web session for `uid`; returns its id.
    pub fn open_session(&self, uid: i64, login: &str) -> String {
        use rand::Rng;
        let bytes: [u8; 20] = rand::thread_rng().gen();
        let sid: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.sessions().insert(
            sid.clone(),
            Session {
                uid,
                db: self.database.clone(),
                login: login.to_owned(),
            },
        );
        sid
    }

    /// The session for a `session_id` cookie.
    pub fn session(&self, sid: &str) -> Option<Session> {
        self.sessions().get(sid).cloned()
    }

    /// Destroys a session.
    pub fn close_session(&self, sid: &str) {
        self.sessions().remove(sid);
    }

    /// `ir.http.session_info()` for a logged-in session.
    pub fn session_info(&self, session: &Session, sid: &str) -> Value {
        let store = self.store();
        let name = store.display_name("res.users", session.uid);
        let context = store
            .read(
                "res.users",
                &[session.uid],
                Some(&["lang".into(), "tz".into()]),
                false,
            )
            .ok()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_else(|| json!({"lang": "en_US", "tz": false}));
        let version = self.version_info();
        json!({
            "uid": session.uid,
            "is_system": session.uid == 2,
            "is_admin": session.uid == 2,
            "user_context": {"lang": context["lang"], "tz": context["tz"], "uid": session.uid},
            "db": session.db,
            "server_version": version["server_version"],
            "server_version_info": version["server_version_info"],
            "support_url": "https://www.odoo.com/buy",
            "name": name,
            "username": session.login,
            "partner_display_name": name,
            "partner_id": session.uid + 1,
            "web.base.url": "http://localhost:8069",
            "active_ids_limit": 20000,
            "profile_session": null,
            "profile_collectors": null,
            "profile_params": null,
            "max_file_upload_size": 134_217_728,
            "home_action_id": false,
            "cache_hashes": {},
            "currencies": {"1": {"symbol": "$", "position": "before", "digits": [69, 2]}},
            "bundle_params": {"lang": context["lang"]},
            "user_companies": {
                "current_company": 1,
                "allowed_companies": {"1": {"id": 1, "name": "YourCompany", "sequence": 10, "child_ids": [], "parent_id": false}},
                "disallowed_ancestor_companies": {},
            },
            "show_effect": true,
            "display_switch_company_menu": false,
            "session_id": sid,
        })
    }
}

/// `odoo.models.check_method_name`: private methods cannot be called remotely.
fn check_method_name(method: &str) -> OdooResult<()> {
    if method.starts_with('_') {
        return Err(OdooError::access_error(format!(
            "Private methods (such as {method}) cannot be called remotely."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_like_python() {
        let none = Map::new();
        let params = [
            ("domain", None),
            ("offset", Some(json!(0))),
            ("limit", Some(Value::Null)),
        ];
        let (v, _) = bind("search", &params, &[json!([])], &none, false, true).unwrap();
        assert_eq!(v, vec![json!([]), json!(0), Value::Null]);
        let e = bind("search", &params, &[], &none, false, true).unwrap_err();
        assert_eq!(
            e.message,
            "search() missing 1 required positional argument: 'domain'"
        );
        let e = bind(
            "search",
            &params,
            &[json!(1), json!(2), json!(3), json!(4)],
            &none,
            false,
            true,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "search() takes from 2 to 4 positional arguments but 5 were given"
        );
        let mut kw = Map::new();
        kw.insert("count".into(), json!(true));
        let e = bind("search", &params, &[json!([])], &kw, false, true).unwrap_err();
        assert_eq!(
            e.message,
            "search() got an unexpected keyword argument 'count'"
        );
        let mut kw = Map::new();
        kw.insert("domain".into(), json!([]));
        let e = bind("search", &params, &[json!([])], &kw, false, true).unwrap_err();
        assert_eq!(
            e.message,
            "search() got multiple values for argument 'domain'"
        );
        let login = [("db", None), ("login", None), ("password", None)];
        let e = bind("exp_login", &login, &[json!("demo")], &none, false, false).unwrap_err();
        assert_eq!(
            e.message,
            "exp_login() missing 2 required positional arguments: 'login' and 'password'"
        );
        let e = bind("unlink", &[], &[json!(1)], &none, false, true).unwrap_err();
        assert_eq!(
            e.message,
            "unlink() takes 1 positional argument but 2 were given"
        );
    }

    #[test]
    fn seeded_users_and_auth() {
        let cfg = OdooSandboxConfig {
            users: vec![
                ("admin".into(), "admin".into()),
                ("bob".into(), "key".into()),
            ],
            ..OdooSandboxConfig::default()
        };
        let svc = OdooService::new(&cfg);
        assert_eq!(
            svc.dispatch_rpc(
                "common",
                "login",
                &[json!("demo"), json!("bob"), json!("key")]
            )
            .unwrap(),
            json!(3)
        );
        assert_eq!(
            svc.dispatch_rpc(
                "common",
                "login",
                &[json!("demo"), json!("bob"), json!("x")]
            )
            .unwrap(),
            json!(false)
        );
        let e = svc
            .dispatch_rpc(
                "common",
                "login",
                &[json!("nope"), json!("bob"), json!("key")],
            )
            .unwrap_err();
        assert_eq!(e.name, "psycopg2.OperationalError");
        assert!(e.message.contains("database \"nope\" does not exist"));
        let ctx = svc
            .dispatch_rpc(
                "object",
                "execute",
                &[
                    json!("demo"),
                    json!(2),
                    json!("admin"),
                    json!("res.users"),
                    json!("context_get"),
                ],
            )
            .unwrap();
        assert_eq!(ctx, json!({"lang": "en_US", "tz": "UTC", "uid": 2}));
        let e = svc
            .dispatch_rpc(
                "object",
                "execute_kw",
                &[
                    json!("demo"),
                    json!(3),
                    json!("admin"),
                    json!("crm.lead"),
                    json!("search"),
                    json!([[]]),
                ],
            )
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.AccessDenied");
        let e = svc
            .dispatch_rpc(
                "object",
                "execute_kw",
                &[
                    json!("demo"),
                    json!(2),
                    json!("admin"),
                    json!("crm.foo"),
                    json!("search"),
                    json!([[]]),
                ],
            )
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.UserError");
        assert_eq!(e.message, "Object crm.foo doesn't exist");
        let e = svc
            .call_kw(2, "crm.foo", "search", &[json!([])], &Map::new())
            .unwrap_err();
        assert_eq!(e.name, "builtins.KeyError");
        assert_eq!(e.message, "'crm.foo'");
        let e = svc
            .call_kw(2, "crm.lead", "_private", &[], &Map::new())
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.AccessError");
        let e = svc
            .call_kw(2, "crm.lead", "frobnicate", &[], &Map::new())
            .unwrap_err();
        assert_eq!(
            e.message,
            "The method 'frobnicate' does not exist on the model 'crm.lead'"
        );
        let e = svc
            .call_kw(2, "crm.lead", "read", &[], &Map::new())
            .unwrap_err();
        assert_eq!(e.name, "builtins.IndexError");
    }
}
