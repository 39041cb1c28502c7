//! Field mappings: how the fields of one upstream record become the platform's canonical record.
//!
//! Every provider names and shapes its fields its own way (Odoo answers `false` for an empty
//! field and `[id, "name"]` for a link), and tenants disagree on what they want downstream. A
//! mapping says declaratively where each canonical field comes from and how it is cleaned, so
//! it can change per connection and entity without code. The sync engine stores every saved
//! mapping as a new version; [`Mapping::parse`] validates it on save, so a bad rule is refused
//! once there instead of failing every record later. [`Mapping::apply`] is pure: a record it
//! rejects goes to the dead letters with the [`MappingError`] text, which is why every error
//! names the target field and the reason.

mod dates;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use dates::*;
use serde::{de::Error as _, Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

// Limits checked on save: a mapping runs on every record pulled, so its cost per record is
// bounded by what a tenant may store.
pub const MAX_FIELDS: usize = 500;
pub const MAX_TRANSFORMS: usize = 20;
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Beyond 15 decimals an f64 has nothing left to round.
pub const MAX_DECIMALS: u32 = 15;

/// The rules that build one canonical record, one per target field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub fields: Vec<FieldRule>,
}

/// Where one target field's value comes from (exactly one of `source`, `constant`, `concat`),
/// then how it is cleaned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// A dotted path in the output; the segments before the last build nested objects.
    pub target: String,
    /// A dotted path in the upstream record; numeric segments index arrays. Missing is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `Some(Value::Null)` is a real constant (`"constant": null`), not an absent one.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub constant: Option<Value>,
    /// Paths whose values are joined with `separator`; null and missing ones are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<Vec<String>>,
    /// Only for `concat`; `""` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// Used when the value after the transforms is null.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    /// Null after the default fails the record instead of writing null.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
}

/// One cleaning step. Null passes through every step, so `default` and `required` alone decide
/// what an absent value becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    // `{}` rather than unit variants: serde lets unknown fields through on an internally
    // tagged unit variant, so `{"op": "trim", "sepratr": ","}` would be accepted silently.
    Trim {},
    Lower {},
    Upper {},
    /// `false`, `""` and `[]` become null: Odoo answers `false` for an empty field.
    EmptyToNull {},
    /// Multiplies a number or numeric string; `decimals` rounds half away from zero, and
    /// `decimals: 0` gives an integer.
    Scale {
        factor: f64,
        #[serde(
            default,
            deserialize_with = "whole",
            skip_serializing_if = "Option::is_none"
        )]
        decimals: Option<u32>,
    },
    /// `from`: a strftime pattern, `rfc3339`, `unix` (seconds) or `date`; `to`: the same.
    /// `from_tz` is used only when the input carries no offset. Time zones are IANA names.
    Datetime {
        from: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_tz: Option<String>,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_tz: Option<String>,
    },
    /// Numbers and booleans are looked up by their JSON text (`2` by `"2"`).
    Lookup {
        table: BTreeMap<String, Value>,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        default: Option<Value>,
    },
    /// Without `index`: the array of parts; an index past the end gives null.
    Split {
        separator: String,
        #[serde(
            default,
            deserialize_with = "whole",
            skip_serializing_if = "Option::is_none"
        )]
        index: Option<usize>,
    },
}

/// Why one record could not be mapped: the target field (or `(record)` when the record is not
/// an object) and the reason; its text is what the dead-letter row keeps.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MappingError {
    pub field: String,
    pub message: String,
}

impl Mapping {
    /// Deserializes and validates; every problem, each naming its place
    /// ("fields[2].transforms[0]: ...").
    pub fn parse(v: &Value) -> Result<Mapping, Vec<String>> {
        let Some(obj) = v.as_object() else {
            return Err(vec![format!(
                "expected an object with \"fields\", got {}",
                type_name(v)
            )]);
        };
        let mut errors: Vec<String> = obj
            .keys()
            .filter(|k| k.as_str() != "fields")
            .map(|k| format!("{k}: unknown field, expected `fields`"))
            .collect();
        let items = match obj.get("fields") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                errors.push(format!(
                    "fields: expected an array, got {}",
                    type_name(other)
                ));
                return Err(errors);
            }
            None => {
                errors.push("fields: missing".to_owned());
                return Err(errors);
            }
        };
        // Rules that deserialize are still validated (under their own index), so one save
        // reports every problem at once.
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let (rule, errs) = parse_rule(item);
            errors.extend(errs.into_iter().map(|e| format!("fields[{i}]{e}")));
            parsed.extend(rule.map(|r| (i, r)));
        }
        let indexed: Vec<(usize, &FieldRule)> = parsed.iter().map(|(i, r)| (*i, r)).collect();
        errors.extend(problems(&indexed, items.len()));
        if errors.is_empty() {
            Ok(Mapping {
                fields: parsed.into_iter().map(|(_, r)| r).collect(),
            })
        } else {
            Err(errors)
        }
    }

    /// The checks of [`Mapping::parse`], for a mapping built in code.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let indexed: Vec<(usize, &FieldRule)> = self.fields.iter().enumerate().collect();
        let errors = problems(&indexed, self.fields.len());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Applies to one upstream record; returns the canonical JSON object.
    ///
    /// Every target is present in the output, null when the rule produced nothing.
    pub fn apply(&self, record: &Value) -> Result<Value, MappingError> {
        if !record.is_object() {
            return Err(MappingError {
                field: "(record)".to_owned(),
                message: format!("expected an object, got {}", type_name(record)),
            });
        }
        let mut out = Map::new();
        for rule in &self.fields {
            let fail = |message: String| MappingError {
                field: rule.target.clone(),
                message,
            };
            let value = rule.evaluate(record).map_err(fail)?;
            insert_path(&mut out, &rule.target, value).map_err(fail)?;
        }
        Ok(Value::Object(out))
    }

    /// Convenience: target = source for each name, no transforms.
    pub fn identity(fields: &[&str]) -> Mapping {
        Mapping {
            fields: fields
                .iter()
                .map(|f| FieldRule {
                    target: (*f).to_owned(),
                    source: Some((*f).to_owned()),
                    ..FieldRule::default()
                })
                .collect(),
        }
    }
}

impl FieldRule {
    fn evaluate(&self, record: &Value) -> Result<Value, String> {
        let mut value = match (&self.source, &self.constant, &self.concat) {
            (Some(path), None, None) => resolve(record, path).cloned().unwrap_or(Value::Null),
            (None, Some(c), None) => c.clone(),
            (None, None, Some(paths)) => {
                concat(record, paths, self.separator.as_deref().unwrap_or(""))
            }
            (None, None, None) => return Err("no source, constant or concat".to_owned()),
            _ => return Err("source, constant and concat are exclusive".to_owned()),
        };
        for (j, t) in self.transforms.iter().enumerate() {
            value = t
                .apply(value)
                .map_err(|m| format!("transforms[{j}] ({}): {m}", t.op()))?;
        }
        if value.is_null() {
            if let Some(d) = &self.default {
                value = d.clone();
            }
        }
        if value.is_null() && self.required {
            return Err("required but missing".to_owned());
        }
        Ok(value)
    }

    fn problems(&self, place: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if let Err(e) = check_path(&self.target) {
            errs.push(format!("{place}.target: {e}"));
        }
        let kinds: Vec<&str> = [
            ("source", self.source.is_some()),
            ("constant", self.constant.is_some()),
            ("concat", self.concat.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match kinds.len() {
            0 => errs.push(format!("{place}: needs one of source, constant or concat")),
            1 => {}
            _ => errs.push(format!(
                "{place}: source, constant and concat are exclusive (got {})",
                kinds.join(" and ")
            )),
        }
        if let Some(source) = &self.source {
            if let Err(e) = check_path(source) {
                errs.push(format!("{place}.source: {e}"));
            }
        }
        match &self.concat {
            Some(paths) if paths.is_empty() => {
                errs.push(format!("{place}.concat: must list at least one path"));
            }
            Some(paths) => {
                for (k, p) in paths.iter().enumerate() {
                    if let Err(e) = check_path(p) {
                        errs.push(format!("{place}.concat[{k}]: {e}"));
                    }
                }
            }
            None => {
                if self.separator.is_some() {
                    errs.push(format!("{place}.separator: only applies to concat"));
                }
            }
        }
        if self.transforms.len() > MAX_TRANSFORMS {
            errs.push(format!(
                "{place}.transforms: at most {MAX_TRANSFORMS} transforms (got {})",
                self.transforms.len()
            ));
        }
        for (j, t) in self.transforms.iter().enumerate() {
            errs.extend(t.problems(&format!("{place}.transforms[{j}]")));
        }
        errs
    }
}

impl Transform {
    fn op(&self) -> &'static str {
        match self {
            Transform::Trim {} => "trim",
            Transform::Lower {} => "lower",
            Transform::Upper {} => "upper",
            Transform::EmptyToNull {} => "empty_to_null",
            Transform::Scale { .. } => "scale",
            Transform::Datetime { .. } => "datetime",
            Transform::Lookup { .. } => "lookup",
            Transform::Split { .. } => "split",
        }
    }

    fn apply(&self, v: Value) -> Result<Value, String> {
        if v.is_null() {
            return Ok(v);
        }
        match self {
            Transform::Trim {} => with_str(v, |s| s.trim().to_owned()),
            Transform::Lower {} => with_str(v, str::to_lowercase),
            Transform::Upper {} => with_str(v, str::to_uppercase),
            Transform::EmptyToNull {} => Ok(match &v {
                Value::Bool(false) => Value::Null,
                Value::String(s) if s.is_empty() => Value::Null,
                Value::Array(a) if a.is_empty() => Value::Null,
                _ => v,
            }),
            Transform::Scale { factor, decimals } => scale(&v, *factor, *decimals),
            Transform::Datetime {
                from,
                from_tz,
                to,
                to_tz,
            } => {
                let from_tz = zone(from_tz.as_deref())?;
                let to_tz = zone(to_tz.as_deref())?;
                let instant = read_datetime(&v, TimeFormat::of(from), from_tz)?;
                write_datetime(instant.with_timezone(&to_tz), TimeFormat::of(to))
            }
            Transform::Lookup { table, default } => lookup(&v, table, default.as_ref()),
            Transform::Split { separator, index } => {
                if separator.is_empty() {
                    return Err("the separator is empty".to_owned());
                }
                let Value::String(s) = &v else {
                    return Err(format!("expected a string, got {}", type_name(&v)));
                };
                let mut parts = s.split(separator.as_str());
                Ok(match index {
                    Some(i) => parts.nth(*i).map_or(Value::Null, Value::from),
                    None => Value::Array(parts.map(Value::from).collect()),
                })
            }
        }
    }

    fn problems(&self, place: &str) -> Vec<String> {
        let mut errs = Vec::new();
        match self {
            Transform::Trim {}
            | Transform::Lower {}
            | Transform::Upper {}
            | Transform::EmptyToNull {} => {}
            Transform::Scale { factor, decimals } => {
                if !factor.is_finite() {
                    errs.push(format!("{place}.factor: must be a finite number"));
                }
                if decimals.is_some_and(|d| d > MAX_DECIMALS) {
                    errs.push(format!("{place}.decimals: at most {MAX_DECIMALS}"));
                }
            }
            Transform::Datetime {
                from,
                from_tz,
                to,
                to_tz,
            } => {
                for (name, tz) in [("from_tz", from_tz), ("to_tz", to_tz)] {
                    if let Err(e) = zone(tz.as_deref()) {
                        errs.push(format!("{place}.{name}: {e}"));
                    }
                }
                if let TimeFormat::Pattern(p) = TimeFormat::of(from) {
                    if let Err(e) = check_read_pattern(p) {
                        errs.push(format!("{place}.from: {e}"));
                    }
                }
                if let TimeFormat::Pattern(p) = TimeFormat::of(to) {
                    if let Err(e) = check_write_pattern(p) {
                        errs.push(format!("{place}.to: {e}"));
                    }
                }
            }
            Transform::Lookup { table, .. } => {
                if table.is_empty() {
                    errs.push(format!("{place}.table: must not be empty"));
                }
            }
            Transform::Split { separator, .. } => {
                if separator.is_empty() {
                    errs.push(format!("{place}.separator: must not be empty"));
                }
            }
        }
        errs
    }
}

/// Every problem of `rules` (each with its index in the stored list of `total` rules).
fn problems(rules: &[(usize, &FieldRule)], total: usize) -> Vec<String> {
    let mut errs = Vec::new();
    if total == 0 {
        errs.push("fields: must hold at least one rule".to_owned());
    }
    if total > MAX_FIELDS {
        errs.push(format!("fields: at most {MAX_FIELDS} rules (got {total})"));
    }
    for (i, rule) in rules {
        errs.extend(rule.problems(&format!("fields[{i}]")));
    }
    // Sorted by segments, the targets that repeat or extend a target come right after it, so
    // one pass finds every overlap without a quadratic scan.
    let mut targets: Vec<(Vec<&str>, usize)> = rules
        .iter()
        .map(|(i, r)| (r.target.split('.').collect(), *i))
        .collect();
    targets.sort();
    let mut overlaps = Vec::new();
    let mut outer: Option<&(Vec<&str>, usize)> = None;
    for t in &targets {
        match outer {
            Some((a, ia)) if t.0.starts_with(a) => {
                let why = if *a == t.0 {
                    "duplicate target"
                } else {
                    "target inside another target"
                };
                overlaps.push((
                    t.1,
                    format!(
                        "fields[{}].target: {why} \"{}\" (fields[{ia}])",
                        t.1,
                        a.join(".")
                    ),
                ));
            }
            _ => outer = Some(t),
        }
    }
    overlaps.sort();
    errs.extend(overlaps.into_iter().map(|(_, e)| e));
    errs
}

/// Deserializes one rule, its transforms one by one so an error names the transform's index.
/// The rule comes back whenever its own fields deserialize, even with errors, so it is still
/// validated and checked against the others; a transform that failed is replaced by `trim`
/// (which has nothing to validate) to keep the indexes of the rest.
fn parse_rule(item: &Value) -> (Option<FieldRule>, Vec<String>) {
    let mut item = item.clone();
    let mut transforms = Vec::new();
    let mut errs = Vec::new();
    if let Some(obj) = item.as_object_mut() {
        if matches!(obj.get("transforms"), Some(Value::Array(_))) {
            if let Some(Value::Array(ts)) = obj.remove("transforms") {
                for (j, t) in ts.into_iter().enumerate() {
                    match serde_json::from_value::<Transform>(t) {
                        Ok(t) => transforms.push(t),
                        Err(e) => {
                            errs.push(format!(".transforms[{j}]: {e}"));
                            transforms.push(Transform::Trim {});
                        }
                    }
                }
            }
        }
    }
    match serde_json::from_value::<FieldRule>(item) {
        Ok(mut rule) => {
            rule.transforms = transforms;
            (Some(rule), errs)
        }
        Err(e) => {
            errs.insert(0, format!(": {e}"));
            (None, errs)
        }
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let segments = path.split('.').count();
    if segments > MAX_PATH_SEGMENTS {
        return Err(format!(
            "at most {MAX_PATH_SEGMENTS} segments (got {segments})"
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!("empty segment in \"{path}\""));
    }
    Ok(())
}

/// Objects are entered by key, arrays by a numeric segment; anything else is missing.
fn resolve<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(record, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => {
            a.get(seg.parse::<usize>().ok()?)
        }
        _ => None,
    })
}

fn insert_path(out: &mut Map<String, Value>, target: &str, value: Value) -> Result<(), String> {
    let mut segments = target.split('.').peekable();
    let mut cur = out;
    while let Some(seg) = segments.next() {
        if segments.peek().is_none() {
            if cur.contains_key(seg) {
                return Err("written twice (duplicate or overlapping target)".to_owned());
            }
            cur.insert(seg.to_owned(), value);
            return Ok(());
        }
        let next = cur
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(m) = next else {
            return Err(format!("\"{seg}\" is already a value, not an object"));
        };
        cur = m;
    }
    Ok(())
}

/// Null when every part is null or missing, so `default` and `required` still apply.
fn concat(record: &Value, paths: &[String], separator: &str) -> Value {
    let parts: Vec<String> = paths
        .iter()
        .filter_map(|p| match resolve(record, p) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect();
    if parts.is_empty() {
        Value::Null
    } else {
        Value::String(parts.join(separator))
    }
}

fn with_str(v: Value, f: impl Fn(&str) -> String) -> Result<Value, String> {
    match v {
        Value::String(s) => Ok(Value::String(f(&s))),
        other => Err(format!("expected a string, got {}", type_name(&other))),
    }
}

fn scale(v: &Value, factor: f64, decimals: Option<u32>) -> Result<Value, String> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        other => return Err(format!("expected a number, got {}", type_name(other))),
    }
    .ok_or_else(|| format!("not a number: {}", render(v)))?;
    let mut y = x * factor;
    if let Some(d) = decimals {
        y = round_half_away(y, d.min(MAX_DECIMALS));
    }
    let not_finite = || {
        format!(
            "{} * {} is not a finite number",
            render(v),
            render(&Value::from(factor))
        )
    };
    if !y.is_finite() {
        return Err(not_finite());
    }
    if y == 0.0 {
        y = 0.0; // no "-0.0" in the output
    }
    // i64::MIN is exactly -2^63 as f64, and i64::MAX rounds up to 2^63: hence `<`.
    if decimals == Some(0) && y >= i64::MIN as f64 && y < i64::MAX as f64 {
        return Ok(Value::from(y as i64));
    }
    serde_json::Number::from_f64(y)
        .map(Value::Number)
        .ok_or_else(not_finite)
}

/// Half away from zero on the decimal value the user sees: `1.005 * 100` is
/// `100.49999999999999` in binary, so the product is first cut to 15 significant digits.
fn round_half_away(y: f64, decimals: u32) -> f64 {
    let p = 10f64.powi(decimals as i32);
    let shifted = y * p;
    if !shifted.is_finite() {
        return y; // so large that it has no decimals left to round
    }
    if shifted.abs() >= 1e15 {
        return shifted.round() / p;
    }
    let cut: f64 = format!("{shifted:.14e}").parse().unwrap_or(shifted);
    cut.round() / p
}

fn lookup(
    v: &Value,
    table: &BTreeMap<String, Value>,
    default: Option<&Value>,
) -> Result<Value, String> {
    let key = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => {
            return Err(format!(
                "expected a string, number or boolean, got {}",
                type_name(other)
            ))
        }
    };
    // A number that went through a protobuf Struct comes back as 2.0: try it as 2 too.
    let whole = v
        .as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
        .map(|f| format!("{}", f as i64));
    table
        .get(&key)
        .or_else(|| whole.and_then(|k| table.get(&k)))
        .or(default)
        .cloned()
        .ok_or_else(|| format!("no entry for {} in the table and no default", render(v)))
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value's JSON text, cut to 80 characters: error text lands in the dead-letter table.
pub(super) fn render(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// For `Option<Value>` fields where an explicit `null` is a value, not an absence.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A whole number that may arrive as `2.0`: rules saved through a protobuf `Struct` carry
/// every number as a double.
fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = Value::deserialize(d)?;
    let n = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "expected a small non-negative whole number, got {v}"
            ))
        })
}
