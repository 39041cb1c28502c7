//! Odoo-shaped errors and the Python `repr()` helper used in their messages.
//!
//! Odoo serializes every exception raised while serving a JSON-RPC request as
//! `{"code": 200, "message": "Odoo Server Error", "data": {"name": <module.Class>,
//! "debug": <traceback>, "message": <str(exc)>, "arguments": <exc.args>, "context": {}}}`
//! (HTTP status 200). [`OdooError`] carries exactly those pieces.

use serde_json::{json, Value};

/// An exception as Odoo would serialize it in a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct OdooError {
    /// JSON-RPC level code: 200 for server errors, 100 for an expired session,
    /// 404 for an unknown route; the same in Odoo 17, 18 and 19 (a body that is not a
    /// JSON object never gets this far: it is a bare HTTP 400).
    pub code: i64,
    /// Top level `error.message` (`"Odoo Server Error"` for server errors).
    pub title: &'static str,
    /// Fully qualified Python exception class, e.g. `odoo.exceptions.AccessDenied`.
    pub name: &'static str,
    /// `str(exception)`.
    pub message: String,
    /// `exception.args`.
    pub arguments: Vec<Value>,
}

impl std::fmt::Display for OdooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for OdooError {}

/// The exceptions a fault rule may make a call raise (`"error"` of `/_sandbox/odoo/faults`).
pub const INJECTABLE: &[&str] = &[
    "odoo.exceptions.AccessError",
    "odoo.exceptions.UserError",
    "odoo.exceptions.ValidationError",
    "psycopg2.OperationalError",
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.LockNotAvailable",
];

/// The exception a fault rule names, raised by `method` on `model` with the message Odoo
/// (or PostgreSQL under it) gives it.
pub fn injected(name: &str, model: Option<&str>, method: Option<&str>) -> OdooError {
    let model = model.unwrap_or("-");
    let op = match method {
        Some("create") => "create",
        Some("write") => "write",
        Some("unlink") => "delete",
        _ => "access",
    };
    match name {
        "odoo.exceptions.AccessError" => OdooError::access_error(format!(
            "You are not allowed to {op} '{model}' ({model}) records.\n\nThis operation is allowed for the following groups:\n\t- Sales/User: Own Documents Only\n\nContact your administrator to request access if necessary."
        )),
        "odoo.exceptions.UserError" => OdooError::user_error("The operation cannot be completed."),
        "odoo.exceptions.ValidationError" => {
            OdooError::validation("The operation cannot be completed.")
        }
        "psycopg2.errors.SerializationFailure" => OdooError::new(
            "psycopg2.errors.SerializationFailure",
            "could not serialize access due to concurrent update\n",
        ),
        "psycopg2.errors.LockNotAvailable" => OdooError::new(
            "psycopg2.errors.LockNotAvailable",
            format!(
                "could not obtain lock on row in relation \"{}\"\n",
                model.replace('.', "_")
            ),
        ),
        _ => OdooError::new(
            "psycopg2.OperationalError",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n",
        ),
    }
}

/// Shorthand for results of sandbox operations.
pub type OdooResult<T> = Result<T, OdooError>;

impl OdooError {
    /// A server error (code 200) whose single argument is its message.
    pub fn new(name: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code: 200,
            title: "Odoo Server Error",
            name,
            arguments: vec![Value::String(message.clone())],
            message,
        }
    }

    /// `odoo.exceptions.AccessDenied` ("Access Denied"): bad login, password or uid.
    pub fn access_denied() -> Self {
        Self::new("odoo.exceptions.AccessDenied", "Access Denied")
    }

    /// `odoo.exceptions.AccessError`.
    pub fn access_error(message: impl Into<String>) -> Self {
        Self::new("odoo.exceptions.AccessError", message)
    }

    /// `odoo.exceptions.ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("odoo.exceptions.ValidationError", message)
    }

    /// `odoo.exceptions.UserError`.
    pub fn user_error(message: impl Into<String>) -> Self {
        Self::new("odoo.exceptions.UserError", message)
    }

    /// `odoo.exceptions.MissingError`.
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new("odoo.exceptions.MissingError", message)
    }

    /// `builtins.ValueError`.
    pub fn value_error(message: impl Into<String>) -> Self {
        Self::new("builtins.ValueError", message)
    }

    /// `builtins.TypeError`.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new("builtins.TypeError", message)
    }

    /// `builtins.IndexError`.
    pub fn index_error(message: impl Into<String>) -> Self {
        Self::new("builtins.IndexError", message)
    }

    /// `builtins.AttributeError`.
    pub fn attribute_error(message: impl Into<String>) -> Self {
        Self::new("builtins.AttributeError", message)
    }

    /// `builtins.NameError`.
    pub fn name_error(message: impl Into<String>) -> Self {
        Self::new("builtins.NameError", message)
    }

    /// `builtins.Exception`.
    pub fn exception(message: impl Into<String>) -> Self {
        Self::new("builtins.Exception", message)
    }

    /// `builtins.KeyError`: `str(KeyError(k))` is `repr(k)`, its args are `[k]`.
    pub fn key_error(key: &str) -> Self {
        Self {
            code: 200,
            title: "Odoo Server Error",
            name: "builtins.KeyError",
            message: py_str_repr(key),
            arguments: vec![Value::String(key.to_owned())],
        }
    }

    /// `psycopg2.OperationalError` raised by Odoo when the database does not exist.
    pub fn unknown_database(db: &str) -> Self {
        Self::new(
            "psycopg2.OperationalError",
            format!(
                "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: \
                 FATAL:  database \"{db}\" does not exist\n"
            ),
        )
    }

    /// `odoo.http.SessionExpiredException` (code 100) for `auth="user"` routes without a session.
    pub fn session_expired() -> Self {
        Self {
            code: 100,
            title: "Odoo Session Expired",
            ..Self::new("odoo.http.SessionExpiredException", "Session expired")
        }
    }

    /// Python-like traceback text for `data.debug`.
    fn debug_text(&self) -> String {
        format!(
            "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/odoo/http.py\", \
             line 1, in _serve_db\n    (bac-sandbox: simulated Odoo server)\n{}: {}\n",
            self.name, self.message
        )
    }

    /// The `error` member of the JSON-RPC response.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.title,
            "data": {
                "name": self.name,
                "debug": self.debug_text(),
                "message": self.message,
                "arguments": self.arguments,
                "context": {},
            }
        })
    }
}

/// Python `repr()` of a `str`.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `repr()` of a JSON value once decoded by Python's `json` module.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    format!("{f}")
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python `repr()` of a tuple built from the given items.
pub fn py_tuple_repr(items: &[Value]) -> String {
    let inner: Vec<String> = items.iter().map(py_repr).collect();
    if inner.len() == 1 {
        format!("({},)", inner[0])
    } else {
        format!("({})", inner.join(", "))
    }
}

/// Python's `type(v).__name__` for a decoded JSON value.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_str_repr("abc"), "'abc'");
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a\"b'c"), "'a\"b\\'c'");
        assert_eq!(py_str_repr("a\nb"), "'a\\nb'");
        assert_eq!(
            py_repr(&json!(["|", ["name", "=", 1.0], [true, null]])),
            "['|', ['name', '=', 1.0], [True, None]]"
        );
        assert_eq!(
            py_tuple_repr(&[json!("id"), json!("in"), json!([1, 2])]),
            "('id', 'in', [1, 2])"
        );
        assert_eq!(py_tuple_repr(&[json!(1)]), "(1,)");
    }

    #[test]
    fn key_error_message_is_repr() {
        let e = OdooError::key_error("crm.foo");
        assert_eq!(e.message, "'crm.foo'");
        assert_eq!(e.arguments, vec![json!("crm.foo")]);
        let j = e.to_json();
        assert_eq!(j["code"], 200);
        assert_eq!(j["data"]["name"], "builtins.KeyError");
    }
}
