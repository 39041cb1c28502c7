//! The OpenAPI operations and schemas of the transcoded routes, from the same descriptors the
//! routes are served from: proto comments are descriptions, field behaviours and edge rules
//! are `required`, `readOnly`, enums, ranges, formats, defaults and examples. Answers list
//! every field as required (the REST API always shows every field); request bodies refuse
//! what they do not name (`additionalProperties: false`), as the server does.
use std::collections::{BTreeMap, HashMap};

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};

use super::{meta::FieldMeta, BodyTarget, Route, Transcoder};

/// Leading comments by (file, source path).
struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    fn of(pool: &DescriptorPool) -> Comments {
        let mut map = HashMap::new();
        for file in pool.files() {
            let proto = file.file_descriptor_proto();
            let Some(info) = &proto.source_code_info else {
                continue;
            };
            for loc in &info.location {
                let text = loc.leading_comments();
                if text.trim().is_empty() {
                    continue;
                }
                let text = text
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_string();
                map.insert((file.name().to_string(), loc.path.clone()), text);
            }
        }
        Comments(map)
    }

    fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0
            .get(&(file.to_string(), path.to_vec()))
            .map(String::as_str)
    }
}

/// Which face of a message a schema shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    /// What answers carry: every field, output-only included, unset ones as null.
    Output,
    /// What a request body may carry.
    Input,
}

struct Builder<'a> {
    tc: &'a Transcoder,
    comments: Comments,
    schemas: BTreeMap<String, Value>,
}

/// `(paths, schemas)` of every transcoded route, to merge into the document.
pub fn operations(tc: &Transcoder) -> (Map<String, Value>, BTreeMap<String, Value>) {
    let mut b = Builder {
        tc,
        comments: Comments::of(&tc.meta.pool),
        schemas: BTreeMap::new(),
    };
    let mut paths = Map::new();
    for r in &tc.routes {
        let op = b.operation(r);
        let item = paths.entry(r.template.clone()).or_insert_with(|| json!({}));
        item[r.method.as_str().to_ascii_lowercase()] = op;
    }
    (paths, b.schemas)
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The failures any authenticated route may answer: the hand-written routes' `CommonErrors`.
pub fn common_errors() -> Map<String, Value> {
    use utoipa::IntoResponses;
    crate::openapi::CommonErrors::responses()
        .into_iter()
        .filter_map(|(code, r)| Some((code, serde_json::to_value(r).ok()?)))
        .collect()
}

impl Builder<'_> {
    fn field_doc(&self, f: &FieldMeta) -> Option<String> {
        let file = f.desc.parent_file();
        self.comments
            .get(file.name(), f.desc.path())
            .map(str::to_string)
    }

    fn operation(&mut self, r: &Route) -> Value {
        let file = r.rpc.parent_file();
        let description = self.comments.get(file.name(), r.rpc.path());
        let mut params = Vec::new();
        for f in &r.path_params {
            let mut p = json!({
                "name": f.desc.name(), "in": "path", "required": true,
                "schema": self.scalar_schema(f, Face::Input),
            });
            if let Some(d) = self.field_doc(f) {
                p["description"] = json!(d);
            }
            params.push(p);
        }
        for q in &r.query {
            let mut schema = self.scalar_schema(&q.field, Face::Input);
            if q.field.desc.is_list() {
                schema = json!({"type": "array", "items": schema});
            }
            let mut p = json!({"name": q.name, "in": "query", "required": false, "schema": schema});
            if let Some(d) = self.field_doc(&q.field) {
                p["description"] = json!(d);
            }
            if q.field.desc.is_list() {
                p["explode"] = json!(true);
                p["style"] = json!("form");
            }
            params.push(p);
        }
        for (h, f) in &r.headers {
            let mut p = json!({
                "name": canonical_header(h.as_str()), "in": "header", "required": false,
                "schema": self.scalar_schema(f, Face::Input),
            });
            if let Some(d) = self.field_doc(f) {
                p["description"] = json!(d);
            }
            params.push(p);
        }
        let mut op = json!({
            "tags": [r.tag],
            // unique across integrations (Odoo and Zoho both have CreateLead)
            "operationId": format!("{}_{}", r.integration.replace('-', "_"), snake(r.rpc.name())),
            "summary": r.summary,
            "parameters": params,
        });
        if let Some(d) = description {
            op["description"] = json!(d);
        }
        match &r.body {
            BodyTarget::None => {}
            BodyTarget::All { skip } => {
                let name = format!("{}Body", r.rpc.name());
                let mut schema = self.message_schema(&r.rpc.input(), Face::Input, skip);
                if r.body_min_fields > 0 {
                    schema["minProperties"] = json!(r.body_min_fields);
                }
                self.schemas.insert(name.clone(), schema);
                op["requestBody"] = json!({"required": true, "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{name}")}}}});
            }
            BodyTarget::Field(f) => {
                if let Kind::Message(m) = f.desc.kind() {
                    let schema = self.message_ref(&m, Face::Input);
                    op["requestBody"] = json!({"required": true,
                        "content": {"application/json": {"schema": schema}}});
                }
            }
        }
        let output = self.message_ref(&r.rpc.output(), Face::Output);
        let mut responses = Map::new();
        let text = if r.success == axum::http::StatusCode::CREATED {
            "Created"
        } else {
            "OK"
        };
        responses.insert(
            r.success.as_u16().to_string(),
            json!({"description": text, "content": {"application/json": {"schema": output}}}),
        );
        responses.extend(common_errors());
        op["responses"] = Value::Object(responses);
        op
    }

    /// A `$ref` to the message's schema of that face, adding the schema when it is new.
    fn message_ref(&mut self, m: &MessageDescriptor, face: Face) -> Value {
        if let Some(wkt) = wkt_schema(m.full_name()) {
            return wkt;
        }
        let has_output_only = self.tc.meta.fields(m).iter().any(|f| f.output_only);
        let name = if face == Face::Input && has_output_only {
            format!("{}Input", m.name())
        } else {
            m.name().to_string()
        };
        if !self.schemas.contains_key(&name) {
            // Placeholder first: a message may refer to itself.
            self.schemas.insert(name.clone(), json!({}));
            let schema = self.message_schema(m, face, &[]);
            self.schemas.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn message_schema(&mut self, m: &MessageDescriptor, face: Face, skip: &[String]) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in self.tc.meta.fields(m).iter() {
            if skip.contains(&f.rest_name) {
                continue;
            }
            if face == Face::Input && f.output_only || face == Face::Output && f.input_only {
                continue;
            }
            let mut schema = self.field_schema(f, face);
            if face == Face::Input && !f.required && !super::json::optional_scalar(&f.desc) {
                // A request may send null for what it leaves out (proto3 JSON).
                schema = nullable(schema);
            }
            if let Some(d) = self.field_doc(f) {
                schema = with(schema, "description", json!(d));
            }
            if face == Face::Output || f.required {
                required.push(json!(f.rest_name));
            }
            props.insert(f.rest_name.clone(), schema);
        }
        let mut s = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            s["required"] = Value::Array(required);
        }
        if face == Face::Input {
            s["additionalProperties"] = json!(false);
            let any_of: Vec<Value> = self
                .tc
                .meta
                .any_of(m)
                .iter()
                .filter_map(|name| self.tc.meta.field(m, name))
                .map(|f| {
                    let set = match f.desc.kind() {
                        Kind::String => json!({"type": "string", "pattern": "\\S"}),
                        Kind::Bool => json!({"const": true}),
                        Kind::Double | Kind::Float => {
                            json!({"type": "number", "not": {"const": 0}})
                        }
                        Kind::Message(_) => json!({"type": "object"}),
                        _ => json!({"type": "integer", "not": {"const": 0}}),
                    };
                    json!({"required": [f.rest_name], "properties": {f.rest_name.clone(): set}})
                })
                .collect();
            if !any_of.is_empty() {
                s["anyOf"] = Value::Array(any_of);
            }
        }
        let file = m.parent_file();
        if let Some(d) = self.comments.get(file.name(), m.path()) {
            s["description"] = json!(d);
        }
        s
    }

    fn field_schema(&mut self, f: &FieldMeta, face: Face) -> Value {
        if f.desc.is_map() {
            let Kind::Message(entry) = f.desc.kind() else {
                return json!({});
            };
            let v = entry.map_entry_value_field();
            let inner = match v.kind() {
                Kind::Message(m) => self.message_ref(&m, face),
                _ => {
                    let meta = FieldMeta {
                        desc: v.clone(),
                        rest_name: v.name().to_string(),
                        rule: Default::default(),
                        required: false,
                        output_only: false,
                        input_only: false,
                        default: None,
                        pattern: None,
                    };
                    self.scalar_schema(&meta, face)
                }
            };
            return json!({"type": "object", "additionalProperties": inner});
        }
        let item = match f.desc.kind() {
            Kind::Message(m) => {
                let r = self.message_ref(&m, face);
                if face == Face::Output && !f.desc.is_list() && f.desc.supports_presence() {
                    nullable(r)
                } else {
                    r
                }
            }
            _ => self.scalar_schema(f, face),
        };
        if f.desc.is_list() {
            let mut s = json!({"type": "array", "items": item});
            if face == Face::Input {
                if let Some(n) = f.rule.min_items {
                    s["minItems"] = json!(n);
                }
                if let Some(n) = f.rule.max_items {
                    s["maxItems"] = json!(n);
                }
            }
            return s;
        }
        item
    }

    /// A non-message field's schema.
    fn scalar_schema(&self, f: &FieldMeta, face: Face) -> Value {
        let rule = &f.rule;
        let mut s = match f.desc.kind() {
            Kind::String => {
                let mut s = json!({"type": "string"});
                if !rule.r#enum.is_empty() {
                    let mut values: Vec<Value> = rule.r#enum.iter().map(|e| json!(e)).collect();
                    if face == Face::Input && !f.required && !f.desc.supports_presence() {
                        // Proto3: the empty string is the unset value.
                        values.push(json!(""));
                    }
                    s["enum"] = Value::Array(values);
                }
                match rule.format.as_str() {
                    "" => {}
                    "date" if face == Face::Output => {
                        s = json!({"type": ["string", "null"], "format": "date"});
                    }
                    "date" if !f.required => {
                        s = json!({"type": "string", "anyOf": [{"format": "date"}, {"const": ""}]});
                    }
                    "uuid" if !f.required => {
                        s = json!({"type": "string", "anyOf": [{"format": "uuid"}, {"const": ""}]});
                    }
                    other => s["format"] = json!(other),
                }
                if let Some(n) = rule.max_length {
                    s["maxLength"] = json!(n);
                }
                if let Some(n) = rule.min_length {
                    s["minLength"] = json!(n);
                }
                if !rule.pattern.is_empty() && face == Face::Input {
                    s["pattern"] = json!(rule.pattern);
                }
                s
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "integer", "format": "int64"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "integer", "minimum": 0}),
            Kind::Enum(e) => {
                json!({"type": "string", "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>()})
            }
            Kind::Message(m) => wkt_schema(m.full_name()).unwrap_or_else(|| json!({})),
        };
        if face == Face::Input {
            if let Some(min) = rule.minimum {
                s["minimum"] = number(min);
            }
            if let Some(min) = rule.exclusive_minimum {
                s["exclusiveMinimum"] = number(min);
            }
            if let Some(max) = rule.maximum {
                s["maximum"] = number(max);
            }
            if let Some(d) = &f.default {
                s["default"] = d.clone();
            }
        }
        if !rule.example.is_empty() {
            if let Ok(ex) = serde_json::from_str::<Value>(&rule.example) {
                s["examples"] = json!([ex]);
            }
        }
        if face == Face::Output
            && f.desc.supports_presence()
            && !matches!(f.desc.kind(), Kind::Message(_))
        {
            s = nullable(s);
        }
        s
    }
}

fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    if v.get("$ref").is_some() {
        // Siblings of $ref are allowed in 3.1, but renderers read them best wrapped.
        return json!({"allOf": [v], key: value});
    }
    v[key] = value;
    v
}

fn nullable(v: Value) -> Value {
    match v.get("type").cloned() {
        Some(Value::String(t)) => {
            let mut v = v;
            v["type"] = json!([t, "null"]);
            if let Some(Value::Array(values)) = v.get_mut("enum") {
                values.push(Value::Null);
            }
            if v.get("anyOf").is_some() || v.get("pattern").is_some() {
                // Keep the string rules for strings only.
                let mut strict = v.clone();
                strict["type"] = json!(t);
                return json!({"anyOf": [strict, {"type": "null"}]});
            }
            v
        }
        Some(Value::Array(_)) => v,
        _ => json!({"anyOf": [v, {"type": "null"}]}),
    }
}

fn wkt_schema(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Value" => json!({}),
        _ => return None,
    })
}

/// `idempotency-key` -> `Idempotency-Key`.
fn canonical_header(h: &str) -> String {
    h.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
