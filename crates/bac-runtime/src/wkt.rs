//! Protobuf well-known types as the fleet shows them in JSON.
use serde_json::{json, Value};

/// `google.protobuf.Value` carries every number as a double; ids, limits, offsets and counts
/// are integers to the people and upstreams that read them, so whole numbers (within the range
/// a double holds exactly) become integers again, at any depth.
pub fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

/// A timestamp as the REST API writes instants: RFC 3339, UTC, whole seconds
/// (`2026-12-04T10:00:00Z`); empty for one chrono cannot represent.
pub fn rfc3339(t: &pbjson_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_doubles_become_integers() {
        let v: Value =
            serde_json::from_str(r#"[[7.0, 8.0], {"limit": 5.0, "price": 2.5, "name": "x"}]"#)
                .unwrap();
        assert_eq!(
            integral(v),
            json!([[7, 8], {"limit": 5, "price": 2.5, "name": "x"}])
        );
        assert_eq!(integral(json!(1e300)), json!(1e300));
        assert_eq!(
            rfc3339(&pbjson_types::Timestamp {
                seconds: 1_796_000_000,
                nanos: 5
            }),
            "2026-11-30T00:53:20Z"
        );
        assert_eq!(
            rfc3339(&pbjson_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            ""
        );
    }
}
