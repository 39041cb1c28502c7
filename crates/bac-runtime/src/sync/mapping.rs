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

use std::{collections::BTreeMap, fmt::Write as _};

use chrono::{
    format::{Item, ParseErrorKind, Parsed, StrftimeItems},
    DateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeFormat<'a> {
    Rfc3339,
    Unix,
    Date,
    Pattern(&'a str),
}

impl<'a> TimeFormat<'a> {
    fn of(s: &'a str) -> TimeFormat<'a> {
        match s {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::Unix,
            "date" => TimeFormat::Date,
            p => TimeFormat::Pattern(p),
        }
    }
}

fn zone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| format!("unknown time zone \"{n}\"")),
    }
}

fn read_datetime(v: &Value, from: TimeFormat<'_>, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = || match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(format!(
            "expected a date/time string, got {}",
            type_name(other)
        )),
    };
    match from {
        TimeFormat::Unix => read_unix(v),
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(text()?.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("{} is not RFC 3339: {e}", render(v))),
        TimeFormat::Date => parse_with_pattern(text()?, "%Y-%m-%d", tz),
        TimeFormat::Pattern(p) => parse_with_pattern(text()?, p, tz),
    }
}

fn read_unix(v: &Value) -> Result<DateTime<Utc>, String> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        other => return Err(format!("expected unix seconds, got {}", type_name(other))),
    }
    .filter(|f| f.is_finite())
    .ok_or_else(|| format!("not unix seconds: {}", render(v)))?;
    let whole = secs.floor();
    let nanos = (((secs - whole) * 1e9).round() as u32).min(999_999_999);
    DateTime::from_timestamp(whole as i64, nanos)
        .ok_or_else(|| format!("unix seconds out of range: {}", render(v)))
}

/// With an offset in the pattern the input is an instant; without, a wall-clock time in `tz`
/// (midnight when the pattern has no time).
fn parse_with_pattern(s: &str, pattern: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let fail = |e: chrono::ParseError| format!("\"{s}\" does not match \"{pattern}\": {e}");
    // One parse, then read as an instant, a wall-clock time or a date, whichever the pattern
    // gave enough for.
    let mut parsed = Parsed::new();
    match pattern_items(pattern) {
        Some(items) => chrono::format::parse(&mut parsed, s, items.iter()),
        None => chrono::format::parse(&mut parsed, s, StrftimeItems::new(pattern)),
    }
    .map_err(fail)?;
    match parsed.to_datetime() {
        Ok(d) => return Ok(d.with_timezone(&Utc)),
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(fail(e)),
        Err(_) => {}
    }
    let naive = match parsed.to_naive_datetime_with_offset(0) {
        Ok(n) => n,
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(fail(e)),
        Err(_) => parsed
            .to_naive_date()
            .map_err(fail)?
            .and_time(chrono::NaiveTime::MIN),
    };
    // A repeated wall-clock hour (DST end) takes its first occurrence; a skipped one is refused.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| format!("{naive} does not exist in {tz} (a daylight-saving gap)"))
}

/// A pattern split into chrono's items, once per thread: a mapping applies the same few
/// patterns to every record, and splitting the pattern again each time was the largest single
/// cost of mapping a page (perf, `scripts/bench sync`). `None` for a pattern chrono refuses.
fn pattern_items(pattern: &str) -> Option<std::rc::Rc<[Item<'static>]>> {
    type Cache = std::collections::HashMap<String, Option<std::rc::Rc<[Item<'static>]>>>;
    thread_local! {
        static PATTERNS: std::cell::RefCell<Cache> = Default::default();
    }
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(items) = cache.get(pattern) {
            return items.clone();
        }
        // Patterns come from tenants' mappings: keep the cache bounded.
        if cache.len() >= 256 {
            cache.clear();
        }
        let items = StrftimeItems::new(pattern)
            .parse_to_owned()
            .ok()
            .map(std::rc::Rc::from);
        cache.insert(pattern.to_owned(), items.clone());
        items
    })
}

fn write_datetime(d: DateTime<Tz>, to: TimeFormat<'_>) -> Result<Value, String> {
    Ok(match to {
        TimeFormat::Rfc3339 => Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        TimeFormat::Unix => Value::from(d.timestamp()),
        TimeFormat::Date => Value::String(d.format("%Y-%m-%d").to_string()),
        TimeFormat::Pattern(p) => Value::String(format_pattern(&d, p)?),
    })
}

/// `DelayedFormat`'s `to_string` panics on a bad pattern; `write!` reports it instead.
fn format_pattern(d: &DateTime<Tz>, pattern: &str) -> Result<String, String> {
    let items =
        pattern_items(pattern).ok_or_else(|| format!("invalid strftime pattern \"{pattern}\""))?;
    let mut s = String::new();
    write!(s, "{}", d.format_with_items(items.iter()))
        .map_err(|_| format!("cannot format with \"{pattern}\""))?;
    Ok(s)
}

fn sample_instants() -> [DateTime<Tz>; 2] {
    [
        (981_173_106, 789_000_000), // 2001-02-03T04:05:06.789Z
        (1_352_553_255, 0),         // 2012-11-10T13:14:15Z
    ]
    .map(|(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos)
            .unwrap_or_default()
            .with_timezone(&Tz::UTC)
    })
}

/// Usable for output: it formats, and two different instants do not come out the same.
fn check_write_pattern(pattern: &str) -> Result<(), String> {
    let [a, b] = sample_instants();
    let (a, b) = (format_pattern(&a, pattern)?, format_pattern(&b, pattern)?);
    if a == b {
        return Err(format!("\"{pattern}\" has no date or time fields"));
    }
    Ok(())
}

/// Usable for input: also, what it writes it can read back as a date.
fn check_read_pattern(pattern: &str) -> Result<(), String> {
    check_write_pattern(pattern)?;
    let [a, _] = sample_instants();
    let written = format_pattern(&a, pattern)?;
    parse_with_pattern(&written, pattern, Tz::UTC)
        .map(|_| ())
        .map_err(|e| format!("cannot read a date with it ({e})"))
}

fn type_name(v: &Value) -> &'static str {
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
fn render(v: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> Mapping {
        Mapping::parse(&json!({ "fields": [v] })).unwrap()
    }

    fn one(rule_json: Value, record: Value) -> Result<Value, MappingError> {
        let m = rule(rule_json);
        let target = m.fields[0].target.clone();
        m.apply(&record).map(|out| {
            target
                .split('.')
                .try_fold(&out, |cur, seg| cur.get(seg))
                .cloned()
                .unwrap()
        })
    }

    fn err(rule_json: Value, record: Value) -> String {
        one(rule_json, record).unwrap_err().to_string()
    }

    fn parse_errors(v: Value) -> Vec<String> {
        Mapping::parse(&v).unwrap_err()
    }

    fn odoo_lead() -> Value {
        json!({
            "id": 7, "name": " Deal ", "email_from": "A@B.COM", "partner_id": [3, "Acme"],
            "expected_revenue": 1250.5, "priority": "2", "write_date": "2026-11-22 06:51:34",
            "phone": false, "first": "Ada", "last": "Lovelace", "tags": " vip , new",
            "lines": [{"qty": 2}, {"qty": 5}]
        })
    }

    #[test]
    fn the_documented_example_maps_an_odoo_lead() {
        let m = Mapping::parse(&json!({"fields": [
          {"target": "email", "source": "email_from", "transforms": [{"op": "trim"}, {"op": "lower"}]},
          {"target": "company", "source": "partner_id.1"},
          {"target": "kind", "constant": "lead"},
          {"target": "full_name", "concat": ["first", "last"], "separator": " "},
          {"target": "revenue_cents", "source": "expected_revenue", "transforms": [{"op": "scale", "factor": 100, "decimals": 0}]},
          {"target": "priority", "source": "priority", "transforms": [{"op": "lookup", "table": {"0": "low", "1": "medium", "2": "high", "3": "very_high"}, "default": "low"}]},
          {"target": "updated_at", "source": "write_date", "transforms": [{"op": "datetime", "from": "%Y-%m-%d %H:%M:%S", "from_tz": "UTC", "to_tz": "Europe/Paris", "to": "rfc3339"}]},
          {"target": "first_tag", "source": "tags", "transforms": [{"op": "split", "separator": ",", "index": 0}, {"op": "trim"}]},
          {"target": "phone", "source": "phone", "transforms": [{"op": "empty_to_null"}], "default": "n/a"},
          {"target": "name", "source": "name", "required": true}
        ]}))
        .unwrap();
        assert_eq!(
            m.apply(&odoo_lead()).unwrap(),
            json!({
                "email": "a@b.com", "company": "Acme", "kind": "lead", "full_name": "Ada Lovelace",
                "revenue_cents": 125050, "priority": "high",
                "updated_at": "2026-11-22T07:51:34+01:00", "first_tag": "vip", "phone": "n/a",
                "name": " Deal "
            })
        );
    }

    #[test]
    fn rename_follows_nested_paths_and_array_indexes() {
        let r = odoo_lead();
        assert_eq!(
            one(json!({"target": "c", "source": "partner_id.1"}), r.clone()).unwrap(),
            json!("Acme")
        );
        assert_eq!(
            one(json!({"target": "c", "source": "partner_id.0"}), r.clone()).unwrap(),
            json!(3)
        );
        assert_eq!(
            one(json!({"target": "q", "source": "lines.1.qty"}), r.clone()).unwrap(),
            json!(5)
        );
        assert_eq!(
            one(json!({"target": "l", "source": "lines"}), r.clone()).unwrap(),
            json!([{"qty": 2}, {"qty": 5}])
        );
        let obj = json!({"m": {"1": "key one"}});
        assert_eq!(
            one(json!({"target": "x", "source": "m.1"}), obj).unwrap(),
            json!("key one")
        );
    }

    #[test]
    fn a_missing_path_is_null_unless_required() {
        let r = odoo_lead();
        for path in [
            "nope",
            "partner_id.9",
            "name.x",
            "lines.x",
            "lines.-1",
            "lines.+1",
            "phone.1",
        ] {
            assert_eq!(
                one(json!({"target": "t", "source": path}), r.clone()).unwrap(),
                Value::Null,
                "{path}"
            );
        }
        assert_eq!(
            one(
                json!({"target": "t", "source": "nope", "required": true}),
                r.clone()
            )
            .unwrap_err(),
            MappingError {
                field: "t".into(),
                message: "required but missing".into()
            }
        );
        assert_eq!(
            err(
                json!({"target": "t", "source": "nope", "required": true}),
                r
            ),
            "t: required but missing"
        );
    }

    #[test]
    fn constant_is_any_json_value_including_null() {
        let r = odoo_lead();
        assert_eq!(
            one(
                json!({"target": "k", "constant": {"a": [1, true]}}),
                r.clone()
            )
            .unwrap(),
            json!({"a": [1, true]})
        );
        let m = rule(json!({"target": "k", "constant": null}));
        assert_eq!(m.fields[0].constant, Some(Value::Null));
        assert_eq!(m.apply(&r).unwrap(), json!({"k": null}));
        assert_eq!(
            one(
                json!({"target": "k", "constant": " X ", "transforms": [{"op": "trim"}]}),
                r
            )
            .unwrap(),
            json!("X")
        );
    }

    #[test]
    fn default_fills_null_after_transforms_and_required_checks_after_default() {
        let r = json!({"a": "", "b": "x"});
        let tf = json!([{"op": "empty_to_null"}]);
        assert_eq!(
            one(
                json!({"target": "t", "source": "a", "transforms": tf, "default": 0}),
                r.clone()
            )
            .unwrap(),
            json!(0)
        );
        assert_eq!(
            one(
                json!({"target": "t", "source": "b", "transforms": tf, "default": 0}),
                r.clone()
            )
            .unwrap(),
            json!("x")
        );
        assert_eq!(one(json!({"target": "t", "source": "a", "transforms": tf, "default": "d", "required": true}), r.clone()).unwrap(), json!("d"));
        assert_eq!(
            err(
                json!({"target": "t", "source": "a", "transforms": tf, "required": true}),
                r.clone()
            ),
            "t: required but missing"
        );
        // An explicit null default is still no value.
        assert_eq!(
            err(
                json!({"target": "t", "source": "zz", "default": null, "required": true}),
                r
            ),
            "t: required but missing"
        );
    }

    #[test]
    fn trim_lower_upper_take_strings_and_pass_null() {
        let r = json!({"s": "  MiXeD Çase ", "n": 5, "z": null, "b": false});
        assert_eq!(
            one(
                json!({"target": "t", "source": "s", "transforms": [{"op": "trim"}]}),
                r.clone()
            )
            .unwrap(),
            json!("MiXeD Çase")
        );
        assert_eq!(
            one(
                json!({"target": "t", "source": "s", "transforms": [{"op": "lower"}]}),
                r.clone()
            )
            .unwrap(),
            json!("  mixed çase ")
        );
        assert_eq!(
            one(
                json!({"target": "t", "source": "s", "transforms": [{"op": "upper"}]}),
                r.clone()
            )
            .unwrap(),
            json!("  MIXED ÇASE ")
        );
        for op in ["trim", "lower", "upper"] {
            assert_eq!(
                one(
                    json!({"target": "t", "source": "z", "transforms": [{"op": op}]}),
                    r.clone()
                )
                .unwrap(),
                Value::Null
            );
            assert_eq!(
                one(
                    json!({"target": "t", "source": "missing", "transforms": [{"op": op}]}),
                    r.clone()
                )
                .unwrap(),
                Value::Null
            );
        }
        assert_eq!(
            err(
                json!({"target": "email", "source": "n", "transforms": [{"op": "trim"}, {"op": "lower"}]}),
                r.clone()
            ),
            "email: transforms[0] (trim): expected a string, got a number"
        );
        assert_eq!(
            err(
                json!({"target": "t", "source": "b", "transforms": [{"op": "upper"}]}),
                r
            ),
            "t: transforms[0] (upper): expected a string, got a boolean"
        );
    }

    #[test]
    fn empty_to_null_clears_odoo_false_empty_string_and_empty_array() {
        let r = json!({"f": false, "e": "", "a": [], "t": true, "s": " ", "z": 0, "o": {}, "full": [1]});
        let get = |k: &str| {
            one(
                json!({"target": "x", "source": k, "transforms": [{"op": "empty_to_null"}]}),
                r.clone(),
            )
            .unwrap()
        };
        assert_eq!(get("f"), Value::Null);
        assert_eq!(get("e"), Value::Null);
        assert_eq!(get("a"), Value::Null);
        assert_eq!(get("t"), json!(true));
        assert_eq!(get("s"), json!(" "));
        assert_eq!(get("z"), json!(0));
        assert_eq!(get("o"), json!({}));
        assert_eq!(get("full"), json!([1]));
    }

    #[test]
    fn scale_multiplies_numbers_and_numeric_strings() {
        let sc = |v: Value, factor: f64, decimals: Option<u32>| {
            let mut op = json!({"op": "scale", "factor": factor});
            if let Some(d) = decimals {
                op["decimals"] = json!(d);
            }
            one(
                json!({"target": "t", "source": "v", "transforms": [op]}),
                json!({"v": v}),
            )
        };
        assert_eq!(sc(json!(1250.5), 100.0, Some(0)).unwrap(), json!(125050));
        assert!(sc(json!(1250.5), 100.0, Some(0)).unwrap().is_i64());
        assert_eq!(sc(json!("12.345"), 1.0, Some(2)).unwrap(), json!(12.35));
        assert_eq!(sc(json!(" 3 "), 2.0, None).unwrap(), json!(6.0));
        assert_eq!(sc(json!(3), 0.5, None).unwrap(), json!(1.5));
        // Half away from zero, on the decimal value (1.005 is 1.00499999… in binary).
        assert_eq!(sc(json!(2.5), 1.0, Some(0)).unwrap(), json!(3));
        assert_eq!(sc(json!(-2.5), 1.0, Some(0)).unwrap(), json!(-3));
        assert_eq!(sc(json!(1.005), 1.0, Some(2)).unwrap(), json!(1.01));
        assert_eq!(sc(json!(0.285), 100.0, Some(0)).unwrap(), json!(29));
        assert_eq!(sc(json!(-0.4), 1.0, Some(0)).unwrap(), json!(0));
        assert_eq!(sc(json!("1e3"), 1.0, Some(0)).unwrap(), json!(1000));
        // Too big for i64: stays a float.
        assert_eq!(sc(json!(1e19), 1.0, Some(0)).unwrap(), json!(1e19));
        assert_eq!(sc(Value::Null, 2.0, Some(0)).unwrap(), Value::Null);
        assert_eq!(
            sc(json!("abc"), 2.0, None).unwrap_err().to_string(),
            "t: transforms[0] (scale): not a number: \"abc\""
        );
        assert_eq!(
            sc(json!(""), 2.0, None).unwrap_err().to_string(),
            "t: transforms[0] (scale): not a number: \"\""
        );
        assert_eq!(
            sc(json!(false), 2.0, None).unwrap_err().to_string(),
            "t: transforms[0] (scale): expected a number, got a boolean"
        );
        assert_eq!(
            sc(json!(1e300), 1e300, None).unwrap_err().to_string(),
            "t: transforms[0] (scale): 1e+300 * 1e+300 is not a finite number"
        );
        assert_eq!(sc(json!(1e300), 1.0, Some(15)).unwrap(), json!(1e300));
        assert!(sc(json!("NaN"), 1.0, None)
            .unwrap_err()
            .message
            .contains("not a finite number"));
        assert!(sc(json!("inf"), 1.0, Some(0))
            .unwrap_err()
            .message
            .contains("not a finite number"));
    }

    #[test]
    fn datetime_converts_formats_and_time_zones() {
        let dt = |v: Value, op: Value| {
            one(
                json!({"target": "t", "source": "v", "transforms": [op]}),
                json!({"v": v}),
            )
        };
        let op = |from: &str, from_tz: &str, to: &str, to_tz: &str| json!({"op": "datetime", "from": from, "from_tz": from_tz, "to": to, "to_tz": to_tz});
        let odoo = "%Y-%m-%d %H:%M:%S";
        assert_eq!(
            dt(
                json!("2026-11-22 06:51:34"),
                op(odoo, "UTC", "rfc3339", "Europe/Paris")
            )
            .unwrap(),
            json!("2026-11-22T07:51:34+01:00")
        );
        assert_eq!(
            dt(
                json!("2026-07-01 12:00:00"),
                op(odoo, "Europe/Paris", "rfc3339", "UTC")
            )
            .unwrap(),
            json!("2026-07-01T10:00:00Z")
        );
        assert_eq!(
            dt(
                json!("2026-11-22 06:51:34"),
                json!({"op": "datetime", "from": odoo, "to": "unix"})
            )
            .unwrap(),
            json!(1_795_330_294)
        );
        assert_eq!(
            dt(
                json!(1_795_330_294),
                json!({"op": "datetime", "from": "unix", "to": "rfc3339"})
            )
            .unwrap(),
            json!("2026-11-22T06:51:34Z")
        );
        assert_eq!(
            dt(
                json!("1795330294.5"),
                json!({"op": "datetime", "from": "unix", "to": "rfc3339"})
            )
            .unwrap(),
            json!("2026-11-22T06:51:34.500Z")
        );
        assert_eq!(
            dt(
                json!("2026-11-22T23:30:00-05:00"),
                op("rfc3339", "Asia/Tokyo", "date", "UTC")
            )
            .unwrap(),
            json!("2026-11-23")
        );
        assert_eq!(
            dt(
                json!("2026-11-22"),
                op("date", "Asia/Kolkata", "rfc3339", "UTC")
            )
            .unwrap(),
            json!("2026-11-21T18:30:00Z")
        );
        assert_eq!(
            dt(
                json!("22/11/2026"),
                op("%d/%m/%Y", "UTC", "%d.%m.%Y %H:%M", "Asia/Kolkata")
            )
            .unwrap(),
            json!("22.11.2026 05:30")
        );
        // An offset in the input wins over from_tz.
        assert_eq!(
            dt(
                json!("2026-11-22 06:51:34 +0200"),
                op("%Y-%m-%d %H:%M:%S %z", "Asia/Tokyo", "rfc3339", "UTC")
            )
            .unwrap(),
            json!("2026-11-22T04:51:34Z")
        );
        // DST: the repeated hour takes its first occurrence, the skipped hour is refused.
        assert_eq!(
            dt(
                json!("2026-10-25 02:30:00"),
                op(odoo, "Europe/Paris", "rfc3339", "UTC")
            )
            .unwrap(),
            json!("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            dt(json!("2026-03-29 02:30:00"), op(odoo, "Europe/Paris", "rfc3339", "UTC")).unwrap_err().to_string(),
            "t: transforms[0] (datetime): 2026-03-29 02:30:00 does not exist in Europe/Paris (a daylight-saving gap)"
        );
        assert_eq!(
            dt(Value::Null, op(odoo, "UTC", "rfc3339", "UTC")).unwrap(),
            Value::Null
        );
        assert_eq!(
            dt(json!(false), op(odoo, "UTC", "rfc3339", "UTC"))
                .unwrap_err()
                .to_string(),
            "t: transforms[0] (datetime): expected a date/time string, got a boolean"
        );
        assert!(dt(json!("22/11/2026"), op(odoo, "UTC", "rfc3339", "UTC"))
            .unwrap_err()
            .message
            .contains("does not match \"%Y-%m-%d %H:%M:%S\""));
        assert!(
            dt(json!("yesterday"), op("rfc3339", "UTC", "rfc3339", "UTC"))
                .unwrap_err()
                .message
                .contains("is not RFC 3339")
        );
        assert!(dt(json!("soon"), op("unix", "UTC", "rfc3339", "UTC"))
            .unwrap_err()
            .message
            .contains("not unix seconds"));
        assert!(dt(json!(1e20), op("unix", "UTC", "rfc3339", "UTC"))
            .unwrap_err()
            .message
            .contains("out of range"));
    }

    #[test]
    fn datetime_problems_are_caught_by_validate_not_apply() {
        let errs = parse_errors(json!({"fields": [
            {"target": "a", "source": "a", "transforms": [{"op": "datetime", "from": "rfc3339", "from_tz": "Mars/Olympus", "to": "rfc3339", "to_tz": "Europe/Pariss"}]},
            {"target": "b", "source": "b", "transforms": [{"op": "datetime", "from": "%Y-%Q", "to": "%Y %"}]},
            {"target": "c", "source": "c", "transforms": [{"op": "datetime", "from": "%H:%M", "to": "hello"}]},
            {"target": "d", "source": "d", "transforms": [{"op": "datetime", "from": "", "to": ""}]}
        ]}));
        assert_eq!(errs, vec![
            "fields[0].transforms[0].from_tz: unknown time zone \"Mars/Olympus\"",
            "fields[0].transforms[0].to_tz: unknown time zone \"Europe/Pariss\"",
            "fields[1].transforms[0].from: invalid strftime pattern \"%Y-%Q\"",
            "fields[1].transforms[0].to: invalid strftime pattern \"%Y %\"",
            "fields[2].transforms[0].from: cannot read a date with it (\"04:05\" does not match \"%H:%M\": input is not enough for unique date and time)",
            "fields[2].transforms[0].to: \"hello\" has no date or time fields",
            "fields[3].transforms[0].from: \"\" has no date or time fields",
            "fields[3].transforms[0].to: \"\" has no date or time fields",
        ]);
        // Unvalidated (built in code) it still fails cleanly at apply time, never panics.
        let m = Mapping {
            fields: vec![FieldRule {
                target: "t".into(),
                source: Some("v".into()),
                transforms: vec![Transform::Datetime {
                    from: "unix".into(),
                    from_tz: None,
                    to: "%Q".into(),
                    to_tz: Some("Nowhere".into()),
                }],
                ..FieldRule::default()
            }],
        };
        assert_eq!(
            m.apply(&json!({"v": 0})).unwrap_err().to_string(),
            "t: transforms[0] (datetime): unknown time zone \"Nowhere\""
        );
        let mut m2 = m.clone();
        m2.fields[0].transforms[0] = Transform::Datetime {
            from: "unix".into(),
            from_tz: None,
            to: "%Q".into(),
            to_tz: None,
        };
        assert_eq!(
            m2.apply(&json!({"v": 0})).unwrap_err().to_string(),
            "t: transforms[0] (datetime): invalid strftime pattern \"%Q\""
        );
    }

    #[test]
    fn lookup_maps_keys_with_json_text_and_default() {
        let table = json!({"0": "low", "2": "high", "true": "yes", "x": {"nested": 1}});
        let lk = |v: Value, default: Option<Value>| {
            let mut op = json!({"op": "lookup", "table": table});
            if let Some(d) = default {
                op["default"] = d;
            }
            one(
                json!({"target": "p", "source": "v", "transforms": [op]}),
                json!({"v": v}),
            )
        };
        assert_eq!(lk(json!("2"), None).unwrap(), json!("high"));
        assert_eq!(lk(json!(2), None).unwrap(), json!("high"));
        assert_eq!(lk(json!(2.0), None).unwrap(), json!("high"));
        assert_eq!(lk(json!(true), None).unwrap(), json!("yes"));
        assert_eq!(lk(json!("x"), None).unwrap(), json!({"nested": 1}));
        assert_eq!(lk(json!("9"), Some(json!("low"))).unwrap(), json!("low"));
        assert_eq!(lk(json!("9"), Some(Value::Null)).unwrap(), Value::Null);
        assert_eq!(lk(Value::Null, None).unwrap(), Value::Null);
        assert_eq!(
            lk(json!("9"), None).unwrap_err().to_string(),
            "p: transforms[0] (lookup): no entry for \"9\" in the table and no default"
        );
        assert_eq!(
            lk(json!(2.5), None).unwrap_err().to_string(),
            "p: transforms[0] (lookup): no entry for 2.5 in the table and no default"
        );
        assert_eq!(
            lk(json!([1]), Some(json!("d"))).unwrap_err().to_string(),
            "p: transforms[0] (lookup): expected a string, number or boolean, got an array"
        );
    }

    #[test]
    fn concat_joins_skipping_nulls_and_renders_non_strings_as_json() {
        let r = json!({"first": "Ada", "last": "Lovelace", "n": 3, "f": 1.5, "b": true, "z": null, "o": {"k": "v"}});
        let cc = |paths: Value, sep: Option<&str>| {
            let mut rule = json!({"target": "t", "concat": paths});
            if let Some(s) = sep {
                rule["separator"] = json!(s);
            }
            one(rule, r.clone()).unwrap()
        };
        assert_eq!(
            cc(json!(["first", "last"]), Some(" ")),
            json!("Ada Lovelace")
        );
        assert_eq!(cc(json!(["first", "last"]), None), json!("AdaLovelace"));
        assert_eq!(
            cc(json!(["first", "z", "missing", "last"]), Some("-")),
            json!("Ada-Lovelace")
        );
        assert_eq!(
            cc(json!(["n", "f", "b", "o"]), Some("|")),
            json!("3|1.5|true|{\"k\":\"v\"}")
        );
        assert_eq!(cc(json!(["z", "missing"]), Some(" ")), Value::Null);
        assert_eq!(
            one(
                json!({"target": "t", "concat": ["z"], "default": "none"}),
                r
            )
            .unwrap(),
            json!("none")
        );
    }

    #[test]
    fn split_gives_parts_or_one_part() {
        let r = json!({"tags": "vip, new,,old", "n": 1});
        let sp = |index: Option<usize>| {
            let mut op = json!({"op": "split", "separator": ","});
            if let Some(i) = index {
                op["index"] = json!(i);
            }
            one(
                json!({"target": "t", "source": "tags", "transforms": [op]}),
                r.clone(),
            )
        };
        assert_eq!(sp(None).unwrap(), json!(["vip", " new", "", "old"]));
        assert_eq!(sp(Some(1)).unwrap(), json!(" new"));
        assert_eq!(sp(Some(4)).unwrap(), Value::Null);
        assert_eq!(
            err(
                json!({"target": "t", "source": "n", "transforms": [{"op": "split", "separator": ","}]}),
                r.clone()
            ),
            "t: transforms[0] (split): expected a string, got a number"
        );
        // Index given as 1.0 (rules saved through a protobuf Struct) is still an index.
        assert_eq!(rule(json!({"target": "t", "source": "tags", "transforms": [{"op": "split", "separator": ",", "index": 1.0}]})).fields[0].transforms[0],
            Transform::Split { separator: ",".into(), index: Some(1) });
    }

    #[test]
    fn dotted_targets_build_nested_objects() {
        let m = Mapping::parse(&json!({"fields": [
            {"target": "address.city", "source": "city"},
            {"target": "address.geo.lat", "source": "lat"},
            {"target": "address.geo.lng", "constant": 2.35},
            {"target": "name", "source": "name"},
            {"target": "lines.0", "source": "missing"}
        ]}))
        .unwrap();
        assert_eq!(
            m.apply(&json!({"city": "Paris", "lat": 48.85, "name": "n"}))
                .unwrap(),
            json!({"address": {"city": "Paris", "geo": {"lat": 48.85, "lng": 2.35}}, "name": "n", "lines": {"0": null}})
        );
    }

    #[test]
    fn unvalidated_overlapping_targets_fail_at_apply_without_panicking() {
        let m = Mapping {
            fields: vec![
                FieldRule {
                    target: "a".into(),
                    constant: Some(json!(1)),
                    ..FieldRule::default()
                },
                FieldRule {
                    target: "a.b".into(),
                    constant: Some(json!(2)),
                    ..FieldRule::default()
                },
            ],
        };
        assert_eq!(
            m.apply(&json!({})).unwrap_err().to_string(),
            "a.b: \"a\" is already a value, not an object"
        );
        let m = Mapping {
            fields: vec![
                FieldRule {
                    target: "a.b".into(),
                    constant: Some(json!(1)),
                    ..FieldRule::default()
                },
                FieldRule {
                    target: "a".into(),
                    constant: Some(json!(2)),
                    ..FieldRule::default()
                },
            ],
        };
        assert_eq!(
            m.apply(&json!({})).unwrap_err().to_string(),
            "a: written twice (duplicate or overlapping target)"
        );
        let m = Mapping {
            fields: vec![FieldRule {
                target: "a".into(),
                ..FieldRule::default()
            }],
        };
        assert_eq!(
            m.apply(&json!({})).unwrap_err().to_string(),
            "a: no source, constant or concat"
        );
    }

    #[test]
    fn a_record_must_be_an_object() {
        let m = Mapping::identity(&["id"]);
        assert_eq!(
            m.apply(&json!([1])).unwrap_err().to_string(),
            "(record): expected an object, got an array"
        );
    }

    #[test]
    fn identity_copies_named_fields() {
        let m = Mapping::identity(&["id", "name", "missing"]);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m.apply(&odoo_lead()).unwrap(),
            json!({"id": 7, "name": " Deal ", "missing": null})
        );
        assert_eq!(
            serde_json::to_value(&m).unwrap()["fields"][0],
            json!({"target": "id", "source": "id"})
        );
    }

    #[test]
    fn validation_names_the_place_of_every_problem() {
        let errs = parse_errors(json!({"fields": [
            {"target": "", "source": "a"},
            {"target": "b"},
            {"target": "c", "source": "c", "constant": 1},
            {"target": "d", "source": "d", "transforms": [{"op": "lookup", "table": {}}]},
            {"target": "e", "source": "e", "transforms": [{"op": "split", "separator": ""}]},
            {"target": "f", "source": "a..b"},
            {"target": "g", "concat": []},
            {"target": "h", "source": "h", "separator": " "},
            {"target": "i", "concat": ["ok", "bad."]},
            {"target": "j", "source": "j", "transforms": [{"op": "scale", "factor": 2, "decimals": 16}]}
        ]}));
        assert_eq!(
            errs,
            vec![
                "fields[0].target: must not be empty",
                "fields[1]: needs one of source, constant or concat",
                "fields[2]: source, constant and concat are exclusive (got source and constant)",
                "fields[3].transforms[0].table: must not be empty",
                "fields[4].transforms[0].separator: must not be empty",
                "fields[5].source: empty segment in \"a..b\"",
                "fields[6].concat: must list at least one path",
                "fields[7].separator: only applies to concat",
                "fields[8].concat[1]: empty segment in \"bad.\"",
                "fields[9].transforms[0].decimals: at most 15",
            ]
        );
    }

    #[test]
    fn deserialization_errors_name_their_place_and_do_not_hide_the_rest() {
        let errs = parse_errors(json!({"fields": [
            {"target": "a", "source": "a", "transforms": [{"op": "trim"}, {"op": "titlecase"}, {"op": "scale"}]},
            {"target": "b", "sauce": "b"},
            {"target": "c", "source": "c", "transforms": [{"op": "trim", "extra": 1}]},
            {"target": "a", "source": "x"},
            7
        ], "version": 2}));
        assert_eq!(errs.len(), 7, "{errs:#?}");
        assert_eq!(errs[0], "version: unknown field, expected `fields`");
        assert!(
            errs[1].starts_with("fields[0].transforms[1]: unknown variant `titlecase`"),
            "{}",
            errs[1]
        );
        assert!(
            errs[2].starts_with("fields[0].transforms[2]: missing field `factor`"),
            "{}",
            errs[2]
        );
        assert!(
            errs[3].starts_with("fields[1]: unknown field `sauce`"),
            "{}",
            errs[3]
        );
        assert!(
            errs[4].starts_with("fields[2].transforms[0]: unknown field `extra`"),
            "{}",
            errs[4]
        );
        assert!(
            errs[5].starts_with("fields[4]: invalid type: integer `7`"),
            "{}",
            errs[5]
        );
        // Rules that did deserialize are still checked against each other.
        assert_eq!(
            errs[6],
            "fields[3].target: duplicate target \"a\" (fields[0])"
        );

        assert_eq!(
            parse_errors(json!([])),
            vec!["expected an object with \"fields\", got an array"]
        );
        assert_eq!(parse_errors(json!({})), vec!["fields: missing"]);
        assert_eq!(
            parse_errors(json!({"fields": {}})),
            vec!["fields: expected an array, got an object"]
        );
        assert_eq!(
            parse_errors(json!({"fields": []})),
            vec!["fields: must hold at least one rule"]
        );
        assert!(parse_errors(json!({"fields": [{"target": "t", "source": "s", "transforms": [{"op": "split", "separator": ",", "index": -1}]}]}))[0]
            .starts_with("fields[0].transforms[0]: expected a small non-negative whole number, got -1"));
    }

    #[test]
    fn duplicate_and_nested_targets_are_refused() {
        let errs = parse_errors(json!({"fields": [
            {"target": "a.b", "constant": 1},
            {"target": "x", "constant": 1},
            {"target": "a", "constant": 1},
            {"target": "x", "constant": 2},
            {"target": "a.b.c", "constant": 3},
            {"target": "ab", "constant": 3},
            {"target": "a.bc", "constant": 3}
        ]}));
        assert_eq!(
            errs,
            vec![
                "fields[0].target: target inside another target \"a\" (fields[2])",
                "fields[3].target: duplicate target \"x\" (fields[1])",
                "fields[4].target: target inside another target \"a\" (fields[2])",
                "fields[6].target: target inside another target \"a\" (fields[2])",
            ]
        );
        // Neither a sibling nor a name sharing a prefix overlaps.
        assert!(Mapping::parse(&json!({"fields": [
            {"target": "a.b", "constant": 1}, {"target": "a.bc", "constant": 1},
            {"target": "ab", "constant": 1}, {"target": "a.c.d", "constant": 1}
        ]}))
        .is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let many: Vec<Value> = (0..=MAX_FIELDS)
            .map(|i| json!({"target": format!("f{i}"), "constant": i}))
            .collect();
        assert_eq!(
            parse_errors(json!({"fields": many})),
            vec!["fields: at most 500 rules (got 501)"]
        );
        let ok: Vec<Value> = (0..MAX_FIELDS)
            .map(|i| json!({"target": format!("f{i}"), "constant": i}))
            .collect();
        assert!(Mapping::parse(&json!({"fields": ok})).is_ok());

        let ts: Vec<Value> = (0..=MAX_TRANSFORMS)
            .map(|_| json!({"op": "trim"}))
            .collect();
        assert_eq!(
            parse_errors(json!({"fields": [{"target": "t", "source": "s", "transforms": ts}]})),
            vec!["fields[0].transforms: at most 20 transforms (got 21)"]
        );
        let deep = vec!["p"; MAX_PATH_SEGMENTS + 1].join(".");
        assert_eq!(
            parse_errors(json!({"fields": [{"target": deep, "source": deep}]})),
            vec![
                "fields[0].target: at most 16 segments (got 17)",
                "fields[0].source: at most 16 segments (got 17)"
            ]
        );
        let ok_path = vec!["p"; MAX_PATH_SEGMENTS].join(".");
        assert!(
            Mapping::parse(&json!({"fields": [{"target": ok_path, "source": ok_path}]})).is_ok()
        );
    }

    #[test]
    fn serialization_is_minimal_and_round_trips() {
        let v = json!({"fields": [
            {"target": "k", "constant": null, "default": null, "required": true},
            {"target": "p", "source": "p", "transforms": [
                {"op": "lookup", "table": {"1": 1}, "default": null},
                {"op": "scale", "factor": 2.0, "decimals": 0},
                {"op": "datetime", "from": "unix", "to": "date", "to_tz": "Asia/Kolkata"},
                {"op": "empty_to_null"}
            ]}
        ]});
        let m = Mapping::parse(&v).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), v);
        assert_eq!(
            Mapping::parse(&serde_json::to_value(&m).unwrap()).unwrap(),
            m
        );
    }

    // ---- property tests ----

    fn arb_key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "0", "1", "name"]).prop_map(str::to_owned)
    }

    fn arb_path() -> impl Strategy<Value = String> {
        prop::collection::vec(arb_key(), 1..4).prop_map(|s| s.join("."))
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1_000_000i64..1_000_000).prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[ a-zA-Z0-9,;:./+-]{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "2026-11-22 06:51:34",
                "2026-03-29 02:30:00",
                "2026-11-22T06:51:34+01:00",
                "1795330294",
                " 12.5 ",
                "",
                "2",
                "a,b,c",
                "22/11/2026",
                "true",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(arb_key(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_record() -> impl Strategy<Value = Value> {
        prop_oneof![
            9 => prop::collection::btree_map(arb_key(), arb_json(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => arb_json(),
        ]
    }

    fn arb_tz() -> impl Strategy<Value = Option<String>> {
        prop::option::of(
            prop::sample::select(vec![
                "UTC",
                "Europe/Paris",
                "Asia/Kolkata",
                "America/New_York",
                "Australia/Lord_Howe",
            ])
            .prop_map(str::to_owned),
        )
    }

    fn arb_transform() -> impl Strategy<Value = Transform> {
        prop_oneof![
            Just(Transform::Trim {}),
            Just(Transform::Lower {}),
            Just(Transform::Upper {}),
            Just(Transform::EmptyToNull {}),
            (-1e4f64..1e4, prop::option::of(0u32..=MAX_DECIMALS))
                .prop_map(|(factor, decimals)| Transform::Scale { factor, decimals }),
            (
                prop::sample::select(vec![
                    "rfc3339",
                    "unix",
                    "date",
                    "%Y-%m-%d %H:%M:%S",
                    "%d/%m/%Y",
                    "%Y-%m-%dT%H:%M:%S%z",
                    "%s"
                ]),
                arb_tz(),
                prop::sample::select(vec![
                    "rfc3339",
                    "unix",
                    "date",
                    "%d.%m.%Y %H:%M",
                    "%A %e %B %Y %Z",
                    "%s"
                ]),
                arb_tz(),
            )
                .prop_map(|(from, from_tz, to, to_tz)| Transform::Datetime {
                    from: from.to_owned(),
                    from_tz,
                    to: to.to_owned(),
                    to_tz,
                }),
            (
                prop::collection::btree_map(
                    prop::sample::select(vec!["0", "1", "2", "a", "true", "2.5"])
                        .prop_map(str::to_owned),
                    arb_json(),
                    1..4
                ),
                prop::option::of(arb_json()),
            )
                .prop_map(|(table, default)| Transform::Lookup { table, default }),
            (
                prop::sample::select(vec![",", ";", " - ", "/", "a"]).prop_map(str::to_owned),
                prop::option::of(0usize..3),
            )
                .prop_map(|(separator, index)| Transform::Split { separator, index }),
        ]
    }

    /// Everything of a rule but its target, which the mapping strategy makes unique.
    fn arb_rule() -> impl Strategy<Value = FieldRule> {
        let source = prop_oneof![
            arb_path().prop_map(|p| (Some(p), None, None, None)),
            arb_json().prop_map(|c| (None, Some(c), None, None)),
            (
                prop::collection::vec(arb_path(), 1..4),
                prop::option::of(prop::sample::select(vec!["", " ", ", "]).prop_map(str::to_owned)),
            )
                .prop_map(|(paths, sep)| (None, None, Some(paths), sep)),
        ];
        (
            source,
            prop::collection::vec(arb_transform(), 0..4),
            prop::option::of(arb_json()),
            any::<bool>(),
        )
            .prop_map(
                |((source, constant, concat, separator), transforms, default, required)| {
                    FieldRule {
                        target: String::new(),
                        source,
                        constant,
                        concat,
                        separator,
                        transforms,
                        default,
                        required,
                    }
                },
            )
    }

    fn arb_mapping() -> impl Strategy<Value = Mapping> {
        prop::collection::vec((arb_rule(), prop::option::of(0u8..3)), 1..8).prop_map(|rules| {
            Mapping {
                fields: rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (mut rule, group))| {
                        // Leaves `t<i>` are unique, groups `g<n>` are never leaves: no overlaps.
                        rule.target = match group {
                            Some(g) => format!("g{g}.t{i}"),
                            None => format!("t{i}"),
                        };
                        rule
                    })
                    .collect(),
            }
        })
    }

    proptest! {
        #[test]
        fn valid_mappings_validate_apply_without_panicking_and_round_trip(
            m in arb_mapping(),
            record in arb_record(),
        ) {
            prop_assert_eq!(m.validate(), Ok(()));
            match m.apply(&record) {
                Ok(out) => {
                    prop_assert!(out.is_object());
                    for rule in &m.fields {
                        let at = rule.target.split('.').try_fold(&out, |cur, seg| cur.get(seg));
                        prop_assert!(at.is_some(), "{} missing from {}", rule.target, out);
                    }
                }
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
            let v = serde_json::to_value(&m).unwrap();
            prop_assert_eq!(Mapping::parse(&v), Ok(m));
        }
    }
}
