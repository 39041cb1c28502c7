//! The field rules connectors write their default mappings with, so every provider's table
//! reads the same way (`rename("last_name", "Last_Name")`).
use serde_json::{json, Value};

/// `target` is the upstream's `source` as it is.
pub fn rename(target: &str, source: &str) -> Value {
    json!({"target": target, "source": source})
}

/// `target` is `source`, an empty string or `false` read as null.
pub fn optional(target: &str, source: &str) -> Value {
    json!({"target": target, "source": source, "transforms": [{"op": "empty_to_null"}]})
}

/// `target` is the time `source` written as `from` (`rfc3339`, `unix` or a strftime pattern
/// such as Odoo's `%Y-%m-%d %H:%M:%S`), as RFC 3339; empty is null.
pub fn datetime(target: &str, source: &str, from: &str) -> Value {
    json!({"target": target, "source": source, "transforms": [
        {"op": "empty_to_null"}, {"op": "datetime", "from": from, "to": "rfc3339"}]})
}

/// A mapping of these rules.
pub fn fields(list: Vec<Value>) -> Value {
    json!({ "fields": list })
}
