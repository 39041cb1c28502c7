//! The edge options of every message field, read once from the descriptor set: the REST name,
//! `google.api.field_behavior` and `(bac.api.v1.field)`. Requests then never decode options.
use std::{collections::HashMap, sync::Arc};

use bac_proto::api::v1::FieldRule;
use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, FieldDescriptor, MessageDescriptor, Value,
};

/// One field as the edge sees it.
#[derive(Debug, Clone)]
pub struct FieldMeta {
    pub desc: FieldDescriptor,
    /// The name in REST bodies and query strings.
    pub rest_name: String,
    pub rule: FieldRule,
    /// `google.api.field_behavior = REQUIRED`: a REST request must carry it.
    pub required: bool,
    /// `OUTPUT_ONLY`: answers carry it, a REST request that sends it is refused.
    pub output_only: bool,
    /// `INPUT_ONLY`: requests carry it, answers leave it out.
    pub input_only: bool,
    /// `(bac.api.v1.field).default`, parsed.
    pub default: Option<serde_json::Value>,
    /// `(bac.api.v1.field).pattern`, compiled.
    pub pattern: Option<regex::Regex>,
}

/// The field tables of every message of the pool.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub pool: DescriptorPool,
    messages: HashMap<String, Arc<[FieldMeta]>>,
    /// `(bac.api.v1.message).any_of_fields` by message.
    any_of: HashMap<String, Vec<String>>,
}

const FIELD_BEHAVIOR: &str = "google.api.field_behavior";
const FIELD_RULE: &str = "bac.api.v1.field";
const MESSAGE_RULE: &str = "bac.api.v1.message";
// google.api.FieldBehavior numbers.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;
const INPUT_ONLY: i32 = 4;

impl Metadata {
    pub fn new(pool: DescriptorPool) -> Result<Metadata, String> {
        let behavior = pool.get_extension_by_name(FIELD_BEHAVIOR);
        let rule_ext = pool.get_extension_by_name(FIELD_RULE);
        let message_ext = pool.get_extension_by_name(MESSAGE_RULE);
        let mut messages = HashMap::new();
        let mut any_of = HashMap::new();
        for m in pool.all_messages() {
            let mut fields = Vec::new();
            for f in m.fields() {
                fields.push(field_meta(&f, behavior.as_ref(), rule_ext.as_ref())?);
            }
            if let Some(ext) = &message_ext {
                let opts = m.options();
                if opts.has_extension(ext) {
                    if let Value::Message(rule) = opts.get_extension(ext).as_ref() {
                        let rule: bac_proto::api::v1::MessageRule = rule
                            .transcode_to()
                            .map_err(|e| format!("{}: (bac.api.v1.message): {e}", m.full_name()))?;
                        for name in &rule.any_of_fields {
                            if !fields.iter().any(|f: &FieldMeta| &f.rest_name == name) {
                                return Err(format!(
                                    "{}: any_of_fields names no field {name:?}",
                                    m.full_name()
                                ));
                            }
                        }
                        any_of.insert(m.full_name().to_string(), rule.any_of_fields);
                    }
                }
            }
            messages.insert(m.full_name().to_string(), Arc::from(fields));
        }
        Ok(Metadata {
            pool,
            messages,
            any_of,
        })
    }

    /// The fields of which a request must set at least one (`any_of_fields`), if any.
    pub fn any_of(&self, desc: &MessageDescriptor) -> &[String] {
        self.any_of.get(desc.full_name()).map_or(&[], Vec::as_slice)
    }

    /// The fields of `desc`, in declaration order.
    pub fn fields(&self, desc: &MessageDescriptor) -> Arc<[FieldMeta]> {
        self.messages
            .get(desc.full_name())
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// `desc`'s field whose REST name is `name`.
    pub fn field(&self, desc: &MessageDescriptor, name: &str) -> Option<FieldMeta> {
        self.fields(desc)
            .iter()
            .find(|f| f.rest_name == name)
            .cloned()
    }
}

fn field_meta(
    f: &FieldDescriptor,
    behavior: Option<&ExtensionDescriptor>,
    rule_ext: Option<&ExtensionDescriptor>,
) -> Result<FieldMeta, String> {
    let opts = f.options();
    let mut behaviors = Vec::new();
    if let Some(ext) = behavior {
        if opts.has_extension(ext) {
            if let Value::List(items) = opts.get_extension(ext).as_ref() {
                behaviors.extend(items.iter().filter_map(Value::as_enum_number));
            }
        }
    }
    let mut rule = FieldRule::default();
    if let Some(ext) = rule_ext {
        if opts.has_extension(ext) {
            if let Value::Message(m) = opts.get_extension(ext).as_ref() {
                rule = m
                    .transcode_to()
                    .map_err(|e| format!("{}: (bac.api.v1.field): {e}", f.full_name()))?;
            }
        }
    }
    let default = if rule.default.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&rule.default).map_err(|e| {
            format!(
                "{}: (bac.api.v1.field).default is not JSON: {e}",
                f.full_name()
            )
        })?)
    };
    let pattern = if rule.pattern.is_empty() {
        None
    } else {
        Some(
            regex::Regex::new(&rule.pattern)
                .map_err(|e| format!("{}: (bac.api.v1.field).pattern: {e}", f.full_name()))?,
        )
    };
    let rest_name = if rule.name.is_empty() {
        f.name().to_string()
    } else {
        rule.name.clone()
    };
    Ok(FieldMeta {
        desc: f.clone(),
        rest_name,
        required: behaviors.contains(&REQUIRED),
        output_only: behaviors.contains(&OUTPUT_ONLY),
        input_only: behaviors.contains(&INPUT_ONLY),
        rule,
        default,
        pattern,
    })
}
