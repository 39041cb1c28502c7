//! REST JSON <-> protobuf messages, by the descriptors and their edge options.
//!
//! Proto3 JSON with the choices the documents made for the REST API: snake_case field names
//! (the proto names, or `(bac.api.v1.field).name`), 64-bit integers as JSON numbers, every
//! field present in answers (an unset message or optional as `null`, an empty `date` string
//! as `null`), times as RFC 3339 seconds in UTC. Requests are strict: unknown and output-only
//! fields, wrong types, values out of range and missing required fields are refused with a
//! message naming the field by its path (`lines[0].quantity`).
use std::collections::HashMap;

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value as PValue,
};
use serde_json::{json, Map, Number, Value};

use bac_runtime::wkt;

use super::meta::{FieldMeta, Metadata};

/// A request the REST caller got wrong: the message says which field and why. `rule` is set
/// when the value is well-formed but breaks the integration's declared rules (an enum, a
/// range, a format, a count): such an error names the integration, as the service's own
/// checks do; a malformed request (wrong type, unknown or missing field) does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid(pub String, pub bool);

impl Invalid {
    pub fn shape(msg: impl Into<String>) -> Invalid {
        Invalid(msg.into(), false)
    }
    pub fn rule(msg: impl Into<String>) -> Invalid {
        Invalid(msg.into(), true)
    }
}

type Result<T> = std::result::Result<T, Invalid>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Invalid::shape(msg))
}

fn broken<T>(msg: impl Into<String>) -> Result<T> {
    Err(Invalid::rule(msg))
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// What a JSON value is, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Metadata {
    /// Decodes a JSON object into `desc`, leaving out `skip` (fields bound to the path, the
    /// query string or a header). `path` names the object in messages ("" for the body).
    pub fn message_from_json(
        &self,
        desc: &MessageDescriptor,
        v: &Value,
        path: &str,
        skip: &[String],
    ) -> Result<DynamicMessage> {
        if let Some(m) = self.wkt_from_json(desc, v, path)? {
            return Ok(m);
        }
        let Value::Object(obj) = v else {
            let what = if path.is_empty() { "the body" } else { path };
            return invalid(format!("{what} must be a JSON object, not {}", kind_of(v)));
        };
        let fields = self.fields(desc);
        let mut msg = DynamicMessage::new(desc.clone());
        for (key, value) in obj {
            let Some(f) = fields
                .iter()
                .find(|f| f.rest_name == *key && !f.output_only && !skip.contains(&f.rest_name))
            else {
                return invalid(format!(
                    "unknown field {:?}{}",
                    join(path, key),
                    self.expected(desc, skip)
                ));
            };
            if value.is_null() {
                if optional_scalar(&f.desc) {
                    // Absent keeps the value and "" clears it: null would say neither.
                    return invalid(format!(
                        "{} must not be null: leave it out to keep the value",
                        join(path, key)
                    ));
                }
                continue;
            }
            let here = join(path, key);
            let decoded = self.field_from_json(f, value, &here)?;
            msg.set_field(&f.desc, decoded);
        }
        let any_of = self.any_of(desc);
        if !any_of.is_empty()
            && !any_of.iter().any(|name| {
                fields
                    .iter()
                    .find(|f| &f.rest_name == name)
                    .is_some_and(|f| {
                        msg.has_field(&f.desc) && set_to_something(&msg.get_field(&f.desc))
                    })
            })
        {
            let what = if path.is_empty() { "the body" } else { path };
            return broken(format!(
                "{what} needs at least one of {}",
                any_of.join(", ")
            ));
        }
        for f in fields.iter() {
            if f.output_only || skip.contains(&f.rest_name) {
                continue;
            }
            let given = obj.get(&f.rest_name).is_some_and(|v| !v.is_null());
            if !given {
                if f.required {
                    return invalid(format!("{} is required", join(path, &f.rest_name)));
                }
                if let Some(default) = &f.default {
                    let here = join(path, &f.rest_name);
                    let decoded = self.field_from_json(f, default, &here)?;
                    msg.set_field(&f.desc, decoded);
                }
            }
        }
        Ok(msg)
    }

    /// ", expected one of ..." for an unknown-field message.
    fn expected(&self, desc: &MessageDescriptor, skip: &[String]) -> String {
        let fields = self.fields(desc);
        let names: Vec<&str> = fields
            .iter()
            .filter(|f| !f.output_only && !skip.contains(&f.rest_name))
            .map(|f| f.rest_name.as_str())
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("; expected one of {}", names.join(", "))
        }
    }

    /// One field's JSON value (not null) as a protobuf value, checked against its rule.
    pub fn field_from_json(&self, f: &FieldMeta, v: &Value, path: &str) -> Result<PValue> {
        if f.desc.is_map() {
            let Value::Object(obj) = v else {
                return invalid(format!("{path} must be an object, not {}", kind_of(v)));
            };
            let Kind::Message(entry) = f.desc.kind() else {
                return invalid(format!("{path}: not a map"));
            };
            let key_field = entry.map_entry_key_field();
            let value_field = entry.map_entry_value_field();
            let mut map = HashMap::new();
            for (k, item) in obj {
                let key = match key_field.kind() {
                    Kind::String => MapKey::String(k.clone()),
                    _ => return invalid(format!("{path}: only string keys are supported")),
                };
                let here = format!("{path}.{k}");
                let value = self.scalar_from_json(&value_field, None, item, &here)?;
                map.insert(key, value);
            }
            return Ok(PValue::Map(map));
        }
        if f.desc.is_list() {
            let Value::Array(items) = v else {
                return invalid(format!("{path} must be an array, not {}", kind_of(v)));
            };
            if let Some(min) = f.rule.min_items {
                if items.len() < min as usize {
                    return broken(format!("{path} must hold at least {min} item(s)"));
                }
            }
            if let Some(max) = f.rule.max_items {
                if items.len() > max as usize {
                    return broken(format!("{path} holds more than {max} items"));
                }
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let here = format!("{path}[{i}]");
                if item.is_null() {
                    return invalid(format!("{here} must not be null"));
                }
                out.push(self.scalar_from_json(&f.desc, Some(f), item, &here)?);
            }
            return Ok(PValue::List(out));
        }
        self.scalar_from_json(&f.desc, Some(f), v, path)
    }

    /// One value of `f` (one element when it is repeated).
    pub fn single_from_json(&self, f: &FieldMeta, v: &Value, path: &str) -> Result<PValue> {
        self.scalar_from_json(&f.desc, Some(f), v, path)
    }

    /// A single (not repeated) value of `field`'s kind.
    fn scalar_from_json(
        &self,
        field: &FieldDescriptor,
        meta: Option<&FieldMeta>,
        v: &Value,
        path: &str,
    ) -> Result<PValue> {
        let out = match field.kind() {
            Kind::Message(m) => PValue::Message(self.message_from_json(&m, v, path, &[])?),
            Kind::String => {
                let Value::String(s) = v else {
                    return invalid(format!("{path} must be a string, not {}", kind_of(v)));
                };
                if let Some(meta) = meta {
                    check_string(meta, s, path)?;
                }
                PValue::String(s.clone())
            }
            Kind::Bool => match v {
                Value::Bool(b) => PValue::Bool(*b),
                _ => return invalid(format!("{path} must be true or false, not {}", kind_of(v))),
            },
            Kind::Enum(e) => match v {
                Value::String(s) => match e.get_value_by_name(s) {
                    Some(ev) => PValue::EnumNumber(ev.number()),
                    None => {
                        let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                        return invalid(format!(
                            "{path} must be one of {} (got {s:?})",
                            names.join(", ")
                        ));
                    }
                },
                _ => return invalid(format!("{path} must be a string, not {}", kind_of(v))),
            },
            Kind::Bytes => {
                use base64::Engine;
                let Value::String(s) = v else {
                    return invalid(format!("{path} must be base64 text, not {}", kind_of(v)));
                };
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| Invalid::shape(format!("{path} must be base64 text")))?;
                PValue::Bytes(bytes.into())
            }
            Kind::Double | Kind::Float => {
                let Some(x) = v.as_f64() else {
                    return invalid(format!("{path} must be a number, not {}", kind_of(v)));
                };
                if let Some(meta) = meta {
                    check_range(meta, x, path)?;
                }
                if matches!(field.kind(), Kind::Float) {
                    PValue::F32(x as f32)
                } else {
                    PValue::F64(x)
                }
            }
            k => integer_from_json(&k, meta, v, path)?,
        };
        Ok(out)
    }

    /// Timestamps, Struct, Value and ListValue have JSON forms of their own.
    fn wkt_from_json(
        &self,
        desc: &MessageDescriptor,
        v: &Value,
        path: &str,
    ) -> Result<Option<DynamicMessage>> {
        let encoded = match desc.full_name() {
            "google.protobuf.Timestamp" => {
                let Value::String(s) = v else {
                    return invalid(format!(
                        "{path} must be an RFC 3339 time, not {}",
                        kind_of(v)
                    ));
                };
                let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
                    Invalid::shape(format!("{path} must be an RFC 3339 time (got {s:?})"))
                })?;
                prost::Message::encode_to_vec(&pbjson_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                })
            }
            "google.protobuf.Struct" => {
                let Value::Object(_) = v else {
                    return invalid(format!("{path} must be a JSON object, not {}", kind_of(v)));
                };
                let s: pbjson_types::Struct = serde_json::from_value(v.clone())
                    .map_err(|e| Invalid::shape(format!("{path}: {e}")))?;
                prost::Message::encode_to_vec(&s)
            }
            "google.protobuf.ListValue" => {
                let Value::Array(_) = v else {
                    return invalid(format!("{path} must be a JSON array, not {}", kind_of(v)));
                };
                let l: pbjson_types::ListValue = serde_json::from_value(v.clone())
                    .map_err(|e| Invalid::shape(format!("{path}: {e}")))?;
                prost::Message::encode_to_vec(&l)
            }
            "google.protobuf.Value" => {
                let x: pbjson_types::Value = serde_json::from_value(v.clone())
                    .map_err(|e| Invalid::shape(format!("{path}: {e}")))?;
                prost::Message::encode_to_vec(&x)
            }
            _ => return Ok(None),
        };
        DynamicMessage::decode(desc.clone(), encoded.as_slice())
            .map(Some)
            .map_err(|e| Invalid::shape(format!("{path}: {e}")))
    }

    /// A message as the REST API shows it: every field, by its REST name.
    pub fn message_to_json(&self, msg: &DynamicMessage) -> Value {
        let desc = msg.descriptor();
        if let Some(v) = wkt_to_json(msg) {
            return v;
        }
        let mut out = Map::new();
        for f in self.fields(&desc).iter() {
            if f.input_only {
                continue;
            }
            let value = if f.desc.is_list() || f.desc.is_map() {
                self.value_to_json(&msg.get_field(&f.desc), f)
            } else if f.desc.supports_presence() && !msg.has_field(&f.desc) {
                Value::Null
            } else {
                self.value_to_json(&msg.get_field(&f.desc), f)
            };
            out.insert(f.rest_name.clone(), value);
        }
        Value::Object(out)
    }

    fn value_to_json(&self, v: &PValue, f: &FieldMeta) -> Value {
        match v {
            PValue::Bool(b) => Value::Bool(*b),
            PValue::I32(n) => json!(n),
            PValue::I64(n) => json!(n),
            PValue::U32(n) => json!(n),
            PValue::U64(n) => json!(n),
            PValue::F32(x) => float(f64::from(*x)),
            PValue::F64(x) => float(*x),
            PValue::String(s) if s.is_empty() && f.rule.format == "date" => Value::Null,
            PValue::String(s) => Value::String(s.clone()),
            PValue::Bytes(b) => {
                use base64::Engine;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            PValue::EnumNumber(n) => match f.desc.kind() {
                Kind::Enum(e) => e
                    .get_value(*n)
                    .map_or_else(|| json!(n), |ev| json!(ev.name())),
                _ => json!(n),
            },
            PValue::Message(m) => self.message_to_json(m),
            PValue::List(items) => {
                Value::Array(items.iter().map(|i| self.value_to_json(i, f)).collect())
            }
            PValue::Map(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let key = match k {
                        MapKey::String(s) => s.clone(),
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(n) => n.to_string(),
                        MapKey::I64(n) => n.to_string(),
                        MapKey::U32(n) => n.to_string(),
                        MapKey::U64(n) => n.to_string(),
                    };
                    out.insert(key, self.value_to_json(v, f));
                }
                Value::Object(out)
            }
        }
    }
}

/// A proto3 `optional` scalar: present or not, and null is neither.
pub fn optional_scalar(f: &FieldDescriptor) -> bool {
    f.supports_presence() && !f.is_list() && !matches!(f.kind(), Kind::Message(_))
}

/// Not empty, not zero, not blank.
fn set_to_something(v: &PValue) -> bool {
    match v {
        PValue::String(s) => !s.trim().is_empty(),
        PValue::I32(n) => *n != 0,
        PValue::I64(n) => *n != 0,
        PValue::U32(n) => *n != 0,
        PValue::U64(n) => *n != 0,
        PValue::F32(x) => *x != 0.0,
        PValue::F64(x) => *x != 0.0,
        PValue::Bool(b) => *b,
        PValue::List(l) => !l.is_empty(),
        PValue::Map(m) => !m.is_empty(),
        _ => true,
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn check_string(meta: &FieldMeta, s: &str, path: &str) -> Result<()> {
    if let Some(max) = meta.rule.max_length {
        if s.chars().count() > max as usize {
            return broken(format!("{path} is longer than {max} characters"));
        }
    }
    if let Some(min) = meta.rule.min_length {
        if s.chars().count() < min as usize {
            return broken(format!("{path} must be at least {min} characters"));
        }
    }
    // Proto3: an empty string is the unset value, which a field that is not required and
    // has no presence may always be.
    if s.is_empty() && !meta.required && !meta.desc.supports_presence() {
        return Ok(());
    }
    if let Some(re) = &meta.pattern {
        if !re.is_match(s) {
            return broken(format!(
                "{path} is not valid: {s:?} does not match {}",
                meta.rule.pattern
            ));
        }
    }
    if !meta.rule.r#enum.is_empty() && !meta.rule.r#enum.iter().any(|e| e == s) {
        return broken(format!(
            "{path} must be one of {} (got {s:?})",
            meta.rule.r#enum.join(", ")
        ));
    }
    match meta.rule.format.as_str() {
        "date" if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() || s.len() != 10 => {
            broken(format!("{path} must be a date, YYYY-MM-DD (got {s:?})"))
        }
        "uuid" if uuid::Uuid::parse_str(s).is_err() => {
            broken(format!("{path} must be a UUID (got {s:?})"))
        }
        _ => Ok(()),
    }
}

fn check_range(meta: &FieldMeta, x: f64, path: &str) -> Result<()> {
    if !x.is_finite() {
        return broken(format!("{path} must be a finite number"));
    }
    if let Some(min) = meta.rule.exclusive_minimum {
        if x <= min {
            return broken(format!("{path} must be greater than {min}"));
        }
    }
    if let Some(min) = meta.rule.minimum {
        if x < min {
            return broken(format!("{path} must be at least {min}"));
        }
    }
    if let Some(max) = meta.rule.maximum {
        if x > max {
            return broken(format!("{path} must be at most {max}"));
        }
    }
    Ok(())
}

/// An integer field: a JSON number without a fraction, in the kind's range.
fn integer_from_json(
    kind: &Kind,
    meta: Option<&FieldMeta>,
    v: &Value,
    path: &str,
) -> Result<PValue> {
    let Value::Number(n) = v else {
        return invalid(format!("{path} must be an integer, not {}", kind_of(v)));
    };
    let wide: i128 = if let Some(i) = n.as_i64() {
        i128::from(i)
    } else if let Some(u) = n.as_u64() {
        i128::from(u)
    } else {
        return invalid(format!("{path} must be an integer (got {n})"));
    };
    integer_value(kind, meta, wide, path)
}

/// `wide` as a value of `kind`, checked against the kind's range and the field's rule.
pub fn integer_value(
    kind: &Kind,
    meta: Option<&FieldMeta>,
    wide: i128,
    path: &str,
) -> Result<PValue> {
    if let Some(meta) = meta {
        check_range(meta, wide as f64, path)?;
    }
    let out_of_range = || Invalid::shape(format!("{path} is out of range ({wide})"));
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            PValue::I32(i32::try_from(wide).map_err(|_| out_of_range())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            PValue::I64(i64::try_from(wide).map_err(|_| out_of_range())?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            PValue::U32(u32::try_from(wide).map_err(|_| out_of_range())?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            PValue::U64(u64::try_from(wide).map_err(|_| out_of_range())?)
        }
        _ => return invalid(format!("{path}: not an integer field")),
    })
}

/// Timestamps as RFC 3339 seconds in UTC; Struct, Value and ListValue as the JSON they hold,
/// whole numbers shown as integers (a `Value` carries every number as a double, and Odoo's
/// ids and counts are integers).
fn wkt_to_json(msg: &DynamicMessage) -> Option<Value> {
    let desc = msg.descriptor();
    match desc.full_name() {
        "google.protobuf.Timestamp" => {
            let t: pbjson_types::Timestamp = msg.transcode_to().ok()?;
            Some(match wkt::rfc3339(&t) {
                s if s.is_empty() => Value::Null,
                s => Value::String(s),
            })
        }
        "google.protobuf.Struct" => {
            let s: pbjson_types::Struct = msg.transcode_to().ok()?;
            Some(wkt::integral(serde_json::to_value(s).ok()?))
        }
        "google.protobuf.ListValue" => {
            let l: pbjson_types::ListValue = msg.transcode_to().ok()?;
            Some(wkt::integral(serde_json::to_value(l).ok()?))
        }
        "google.protobuf.Value" => {
            let v: pbjson_types::Value = msg.transcode_to().ok()?;
            Some(wkt::integral(serde_json::to_value(v).ok()?))
        }
        _ => None,
    }
}
