//! Odoo 19's External JSON-2 API: `POST /json/2/<model>/<method>`.
//!
//! As in Odoo 19 (`addons/web/controllers/json2.py`, `ir.http._auth_method_bearer`):
//!
//! * `Authorization: bearer <api key>` (401 without or with a bad key),
//!   optional `X-Odoo-Database` (another database: 404, as Odoo serving no db);
//! * the body is a JSON object of named arguments: `ids`, `context`, and the
//!   method's own parameters (`domain`, `fields`, `vals_list`, `vals`...);
//! * success is HTTP 200 with the method's JSON result (recordsets as id lists);
//! * errors are 4xx/5xx with `{"name", "message", "arguments", "context", "debug"}`:
//!   401 bad key, 403 AccessError, 404 unknown model/method or MissingError,
//!   422 bad arguments or UserError/ValidationError, 500 anything else.
//!
//! Served only when the configured version is 19 or later; an older Odoo has
//! no such route and answers 404.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::actions;
use super::error::{OdooError, OdooResult};
use super::service::OdooService;

/// An error of the JSON-2 API: HTTP status and Odoo's serialized exception.
#[derive(Debug, Clone, PartialEq)]
pub struct Json2Error {
    /// HTTP status.
    pub status: StatusCode,
    /// Fully qualified exception class.
    pub name: String,
    /// `str(exception)` (for HTTP exceptions, their description).
    pub message: String,
    /// `exception.args`.
    pub arguments: Vec<Value>,
}

impl Json2Error {
    /// A `werkzeug.exceptions.*` error (arguments: description and code).
    pub fn http(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let class = match status.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            422 => "UnprocessableEntity",
            _ => "InternalServerError",
        };
        Self {
            status,
            name: format!("werkzeug.exceptions.{class}"),
            arguments: vec![json!(message), json!(status.as_u16())],
            message,
        }
    }

    /// An Odoo/Python exception raised by the method, with the status Odoo 19
    /// gives it (`UserError.http_status` and subclasses, 500 otherwise).
    pub fn from_odoo(e: &OdooError) -> Self {
        let status = match e.name {
            "odoo.exceptions.UserError" | "odoo.exceptions.ValidationError" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "odoo.exceptions.AccessError"
            | "odoo.exceptions.AccessDenied"
            | "odoo.http.SessionExpiredException" => StatusCode::FORBIDDEN,
            "odoo.exceptions.MissingError" => StatusCode::NOT_FOUND,
            "psycopg2.errors.SerializationFailure" | "psycopg2.errors.LockNotAvailable" => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            name: e.name.to_owned(),
            message: e.message.clone(),
            arguments: e.arguments.clone(),
        }
    }

    /// The response: JSON body, `WWW-Authenticate: Bearer` on 401.
    pub fn into_response(self) -> Response {
        let debug = if self.name.starts_with("werkzeug.exceptions.") {
            format!(
                "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/odoo/http.py\", \
                 line 1, in _serve_db\n    (bac-sandbox: simulated Odoo server)\n{}: {} {}: {}\n",
                self.name,
                self.status.as_u16(),
                self.status.canonical_reason().unwrap_or_default(),
                self.message
            )
        } else {
            format!(
                "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/odoo/http.py\", \
                 line 1, in _serve_db\n    (bac-sandbox: simulated Odoo server)\n{}: {}\n",
                self.name, self.message
            )
        };
        let body = json!({
            "name": self.name,
            "message": self.message,
            "arguments": self.arguments,
            "context": {},
            "debug": debug,
        });
        let mut resp = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON response with Odoo's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// werkzeug's HTML 404 page (what Odoo answers for a route it does not have).
pub fn html_not_found() -> Response {
    let body =
        "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n\
                <p>The requested URL was not found on the server. If you entered the URL manually \
                please check your spelling and try again.</p>\n";
    let mut resp = (StatusCode::NOT_FOUND, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// A parameter of a method signature: name and whether it has no default.
type Param = (&'static str, bool);

/// The Python signature of a method as `inspect.signature` sees it.
struct Signature {
    params: &'static [Param],
    /// `@api.model` (or `model_create_multi`): no `ids` allowed.
    api_model: bool,
    /// Has `**kwargs` (`search_read(**read_kwargs)`).
    varkw: bool,
}

fn signature(model: &str, method: &str) -> Option<Signature> {
    let sig = |params: &'static [Param], api_model: bool| Signature {
        params,
        api_model,
        varkw: false,
    };
    Some(match method {
        "create" => sig(&[("vals_list", true)], true),
        "read" => sig(&[("fields", false), ("load", false)], false),
        "search" => sig(
            &[
                ("domain", true),
                ("offset", false),
                ("limit", false),
                ("order", false),
            ],
            true,
        ),
        "search_count" => sig(&[("domain", true), ("limit", false)], true),
        "search_read" => Signature {
            params: &[
                ("domain", false),
                ("fields", false),
                ("offset", false),
                ("limit", false),
                ("order", false),
            ],
            api_model: true,
            varkw: true,
        },
        "write" => sig(&[("vals", true)], false),
        "unlink" | "exists" => sig(&[], false),
        "fields_get" => sig(&[("allfields", false), ("attributes", false)], true),
        "default_get" => sig(&[("fields", true)], true),
        "name_search" => sig(
            &[
                ("name", false),
                ("domain", false),
                ("operator", false),
                ("limit", false),
            ],
            true,
        ),
        "check_access" | "has_access" => sig(&[("operation", true)], false),
        "context_get" if model == "res.users" => sig(&[], true),
        _ if actions::exists(model, method) => sig(&[], false),
        _ => return None,
    })
}

/// Default values of optional parameters, positionally as `call_kw` binds them.
fn default_of(method: &str, param: &str) -> Value {
    match (method, param) {
        ("read", "load") => json!("_classic_read"),
        (_, "offset") => json!(0),
        ("name_search", "name") => json!(""),
        ("name_search", "operator") => json!("ilike"),
        ("name_search", "limit") => json!(100),
        _ => Value::Null,
    }
}

/// The bearer token of an `Authorization` header (`^bearer\s+(.+)$`, any case).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_at(value.len().min(6));
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Splits the `<model>/<method>` part of a `/json/2/...` path.
pub fn split_path(rest: &str) -> Option<(&str, &str)> {
    let (model, method) = rest.split_once('/')?;
    (!model.is_empty() && !method.is_empty() && !method.contains('/')).then_some((model, method))
}

/// Serves `/json/2/<rest>` (the fault layer already ran).
pub fn serve(
    svc: &OdooService,
    http_method: &Method,
    rest: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if svc.major() < 19 {
        return html_not_found();
    }
    // X-Odoo-Database naming another database: Odoo serves without a database,
    // where the JSON-2 routes do not exist
    if let Some(db) = headers.get("x-odoo-database") {
        if db.to_str().ok() != Some(svc.database()) {
            return html_not_found();
        }
    }
    let target = rest.and_then(split_path);
    let (model, method) = match target {
        Some(t) if http_method == Method::POST => t,
        _ => {
            return Json2Error::http(
                StatusCode::NOT_FOUND,
                "Did you mean POST /json/2/<model>/<method>?",
            )
            .into_response()
        }
    };
    match call(svc, model, method, headers, body) {
        Ok(result) => json_response(StatusCode::OK, &result),
        Err(e) => {
            tracing::debug!(error = %e.name, status = e.status.as_u16(), "odoo sandbox json2 error");
            e.into_response()
        }
    }
}

fn call(
    svc: &OdooService,
    model: &str,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Json2Error> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(Json2Error::http(
            StatusCode::BAD_REQUEST,
            "Request inferred type is incompatible with /json/2/rpc, use Content-Type: \
             application/json",
        ));
    }
    let uid = match bearer_token(headers) {
        Some(token) => svc
            .bearer_uid(&token)
            .ok_or_else(|| Json2Error::http(StatusCode::UNAUTHORIZED, "Invalid apikey"))?,
        None => {
            return Err(Json2Error::http(
                StatusCode::UNAUTHORIZED,
                "User not authenticated, use the \"Authorization\" header",
            ))
        }
    };
    let mut params: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(Json2Error::http(
                    StatusCode::BAD_REQUEST,
                    "could not parse the body, expecting a json object",
                ))
            }
            Err(e) => {
                return Err(Json2Error::http(
                    StatusCode::BAD_REQUEST,
                    format!("could not parse the body as json: {e}"),
                ))
            }
        }
    };
    if svc.store().model(model).is_none() {
        return Err(Json2Error::http(
            StatusCode::NOT_FOUND,
            format!("the model '{model}' does not exist"),
        ));
    }
    if method.starts_with('_') {
        return Err(Json2Error::from_odoo(&OdooError::access_error(format!(
            "Private methods (such as '{model}.{method}') cannot be called remotely."
        ))));
    }
    let Some(sig) = signature(model, method) else {
        return Err(Json2Error::http(
            StatusCode::NOT_FOUND,
            format!("The method '{model}.{method}' does not exist"),
        ));
    };
    let ids = match params.remove("ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_i64().ok_or_else(|| {
                    Json2Error::http(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("ids must be a list of integers, got {i}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(Json2Error::http(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("ids must be a list of integers, got {other}"),
            ))
        }
    };
    let context = match params.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c,
        Some(_) => {
            return Err(Json2Error::http(
                StatusCode::UNPROCESSABLE_ENTITY,
                "context must be a JSON object",
            ))
        }
    };
    if sig.api_model && !ids.is_empty() {
        return Err(Json2Error::http(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("cannot call {model}.{method} with ids"),
        ));
    }
    // inspect.signature(func).bind(records, **kwargs)
    let mut extra = Map::new();
    for key in params.keys() {
        if !sig.params.iter().any(|(name, _)| name == key) {
            if sig.varkw {
                extra.insert(key.clone(), params[key].clone());
            } else {
                return Err(Json2Error::http(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("got an unexpected keyword argument '{key}'"),
                ));
            }
        }
    }
    if let Some((missing, _)) = sig
        .params
        .iter()
        .find(|(name, required)| *required && !params.contains_key(*name))
    {
        return Err(Json2Error::http(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("missing a required argument: '{missing}'"),
        ));
    }
    let mut args: Vec<Value> = Vec::with_capacity(sig.params.len() + 1);
    if !sig.api_model {
        args.push(json!(ids));
    }
    for (name, _) in sig.params {
        let value = params
            .get(*name)
            .cloned()
            .unwrap_or_else(|| default_of(method, name));
        // create(vals_list) with a dict creates one record, still returned as ids
        let value = match (method, *name, value) {
            ("create", "vals_list", v @ Value::Object(_)) => json!([v]),
            ("search_read" | "name_search", "domain", Value::Null) => json!([]),
            (_, _, v) => v,
        };
        args.push(value);
    }
    let mut kwargs = extra;
    if !context.is_empty() {
        kwargs.insert("context".into(), Value::Object(context));
    }
    tracing::debug!(%model, %method, "odoo sandbox /json/2");
    let result: OdooResult<Value> = svc.call_kw(uid, model, method, &args, &kwargs);
    result.map_err(|e| Json2Error::from_odoo(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_paths() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc "),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer   k1"),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("k1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearerabc"));
        assert_eq!(bearer_token(&h), None);
        assert_eq!(split_path("crm.lead/search"), Some(("crm.lead", "search")));
        assert_eq!(split_path("crm.lead"), None);
        assert_eq!(split_path("crm.lead/search/x"), None);
        assert_eq!(split_path("/search"), None);
    }

    #[test]
    fn error_statuses() {
        let e = Json2Error::from_odoo(&OdooError::validation("x"));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e = Json2Error::from_odoo(&OdooError::missing("x"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = Json2Error::from_odoo(&OdooError::access_error("x"));
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e = Json2Error::from_odoo(&OdooError::value_error("x"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        let e = Json2Error::http(StatusCode::UNAUTHORIZED, "Invalid apikey");
        assert_eq!(e.name, "werkzeug.exceptions.Unauthorized");
        assert_eq!(e.arguments, vec![json!("Invalid apikey"), json!(401)]);
    }
}
