//! The small JSON Schema (draft 2020-12) validator the catalog's connection schemas are
//! checked with: the keywords in [`SUPPORTED_KEYWORDS`], annotations ignored, anything else
//! refused by the catalog's own test. And RFC 7386 merge patches, how a PATCH changes settings.
use serde_json::{Map, Value};

/// A value that does not satisfy its schema: where (`config.url`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, self.message)
    }
}

/// Keywords [`validate`] checks, and annotations it may ignore.
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
];
pub const ANNOTATIONS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "examples",
    "writeOnly",
    "readOnly",
];

fn fail(path: &str, message: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        path: path.to_string(),
        message: message.into(),
    })
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        // An absolute URI (RFC 3986): a scheme and what the scheme needs.
        "uri" => url::Url::parse(s).is_ok(),
        "email" => s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
        // Unknown formats are annotations (draft 2020-12 default).
        _ => true,
    }
}

fn list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `value` against `schema`; the first violation found, with its path under `path`.
pub fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), Violation> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    if let Some(ty) = s.get("type").and_then(Value::as_str) {
        if !type_ok(ty, value) {
            let article = if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            return fail(path, format!("must be {article} {ty}"));
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return fail(path, format!("must be one of: {}", list(allowed)));
        }
    }
    if let Some(text) = value.as_str() {
        validate_string(s, text, path)?;
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return fail(path, format!("must be at least {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return fail(path, format!("must be at most {max}"));
            }
        }
    }
    if let Some(obj) = value.as_object() {
        validate_object(s, obj, path)?;
    }
    Ok(())
}

fn validate_string(s: &Map<String, Value>, text: &str, path: &str) -> Result<(), Violation> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
        if len < min {
            return if min == 1 {
                fail(path, "must not be empty")
            } else {
                fail(path, format!("must be at least {min} characters"))
            };
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            return fail(path, format!("must be at most {max} characters"));
        }
    }
    if let Some(format) = s.get("format").and_then(Value::as_str) {
        if !format_ok(format, text) {
            return fail(path, format!("is not a valid {format}"));
        }
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        let matches = regex::Regex::new(pattern)
            .map(|re| re.is_match(text))
            // A schema of ours with a bad pattern is our bug; the unit tests compile them all.
            .unwrap_or(true);
        if !matches {
            let why = s
                .get("description")
                .and_then(Value::as_str)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return fail(path, format!("does not match the pattern {pattern}{why}"));
        }
    }
    Ok(())
}

fn validate_object(
    s: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
) -> Result<(), Violation> {
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let known = || props.keys().cloned().collect::<Vec<_>>().join(", ");
    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
        if let Some(extra) = obj.keys().find(|k| !props.contains_key(*k)) {
            let allowed = if props.is_empty() {
                "this object takes no fields".to_string()
            } else {
                format!("one of: {}", known())
            };
            return fail(
                &format!("{path}.{extra}"),
                format!("is not a known field ({allowed})"),
            );
        }
    }
    for req in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !obj.contains_key(req) {
            return fail(&format!("{path}.{req}"), "is required");
        }
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
        if (obj.len() as u64) < min {
            return fail(
                path,
                format!("needs at least {min} of its fields ({})", known()),
            );
        }
    }
    for (k, v) in obj {
        if let Some(sub) = props.get(k) {
            validate(sub, v, &format!("{path}.{k}"))?;
        }
    }
    Ok(())
}

/// RFC 7386 JSON merge patch: `patch`'s fields replace `target`'s, `null` removes one.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
