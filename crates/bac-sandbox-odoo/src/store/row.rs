//! A stored row and Odoo's time values: microseconds in the database, seconds when read.

use super::*;

/// Stored values of one record (stored fields only; `Null` means unset), or a
/// set of values to write. A small vector rather than a map: field names are the
/// `&'static str` of the model definition, so a lookup is mostly a scan of
/// pointer comparisons over one contiguous allocation, which keeps scans of
/// large tables cache-friendly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(Vec<(&'static str, Value)>);

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        // same static string first (the common case), then by content
        self.0
            .iter()
            .position(|(k, _)| std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len())
            .or_else(|| self.0.iter().position(|(k, _)| *k == key))
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.0[i].1)
    }

    /// The value of a field expected at `slot` (see [`row_slot`]).
    pub(crate) fn get_at(&self, slot: Option<usize>, key: &str) -> Option<&Value> {
        match slot.and_then(|i| self.0.get(i)) {
            Some((k, v)) if std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len() => {
                Some(v)
            }
            _ => self.get(key),
        }
    }

    /// Orders the values like the model's fields, with the model's own names as
    /// keys, so that every record of a model has the same layout.
    pub(crate) fn canonical(self, def: &ModelDef) -> Self {
        let mut src = self.0;
        let mut out = Vec::with_capacity(src.len());
        for field in &def.fields {
            if let Some(i) = src.iter().position(|(k, _)| *k == field.name) {
                let (_, v) = src.swap_remove(i);
                out.push((field.name, v));
            }
        }
        out.extend(src);
        Self(out)
    }

    /// Whether the row has a value for the field.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets the value of a field.
    pub fn insert(&mut self, key: &'static str, value: Value) {
        match self.position(key) {
            Some(i) => self.0[i].1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Sets the value of a field unless it has one.
    pub fn insert_missing(&mut self, key: &'static str, value: Value) {
        if !self.contains_key(key) {
            self.0.push((key, value));
        }
    }

    /// The (field, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }
}

/// Where a stored field sits in the canonical layout of the model's rows.
pub(crate) fn row_slot(def: &ModelDef, name: &str) -> Option<usize> {
    def.fields
        .iter()
        .filter(|f| f.store && f.name != "id" && !matches!(f.ftype, FieldType::One2many(..)))
        .position(|f| f.name == name)
}

impl<const N: usize> From<[(&'static str, Value); N]> for Row {
    fn from(pairs: [(&'static str, Value); N]) -> Self {
        let mut row = Self::new();
        for (k, v) in pairs {
            row.insert(k, v);
        }
        row
    }
}

/// Odoo's `DEFAULT_SERVER_DATETIME_FORMAT`.
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Magic fields silently dropped from `create`/`write` values (as Odoo does).
pub(crate) const MAGIC_WRITE_IGNORED: &[&str] = &[
    "id",
    "create_date",
    "create_uid",
    "write_date",
    "write_uid",
    "display_name",
];

/// The current UTC time in Odoo's string format (second precision).
pub fn now_string() -> String {
    chrono::Utc::now().format(DATETIME_FORMAT).to_string()
}

/// A datetime as PostgreSQL prints a `timestamp`: `'YYYY-MM-DD HH:MM:SS'` on a
/// whole second, `'YYYY-MM-DD HH:MM:SS.ffffff'` otherwise.
pub fn datetime_string(dt: NaiveDateTime) -> String {
    let micros = dt.nanosecond() / 1000;
    if micros == 0 {
        dt.format(DATETIME_FORMAT).to_string()
    } else {
        format!("{}.{micros:06}", dt.format(DATETIME_FORMAT))
    }
}

/// Parses the datetime forms PostgreSQL accepts from Odoo clients.
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// How the store keeps a datetime: microseconds since the epoch (UTC), so that
/// comparing and sorting never touch the heap. PostgreSQL keeps the same precision.
pub(crate) fn micros_value(dt: NaiveDateTime) -> Value {
    Value::from(dt.and_utc().timestamp_micros())
}

/// The stored form of a datetime string (`Null` when it is not one).
pub fn datetime_value(s: &str) -> Value {
    parse_datetime(s).map_or(Value::Null, micros_value)
}

/// Odoo's `convert_to_read` of a stored datetime: `'YYYY-MM-DD HH:MM:SS'`, the
/// microseconds dropped.
pub(crate) fn datetime_for_read(v: &Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map_or(Value::Bool(false), |dt| {
                Value::String(dt.naive_utc().format(DATETIME_FORMAT).to_string())
            }),
        Value::String(s) if s.len() > 19 => Value::String(s[..19].to_owned()),
        Value::Null => Value::Bool(false),
        other => other.clone(),
    }
}

/// A datetime operand of a domain leaf, as PostgreSQL would read it. Like Odoo's
/// `expression.parse`, a bare date means the end of the day for `>`/`<=` and
/// its start otherwise.
pub(crate) fn datetime_operand(op: Operator, v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.len() == 10 && NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() {
                let time = if matches!(op, Operator::Gt | Operator::Le) {
                    "23:59:59"
                } else {
                    "00:00:00"
                };
                datetime_value(&format!("{t} {time}"))
            } else if let Some(dt) = parse_datetime(t) {
                micros_value(dt)
            } else {
                v.clone()
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| datetime_operand(op, i)).collect())
        }
        other => other.clone(),
    }
}

/// Rounds a monetary amount like Odoo rounds to the currency (2 digits).
pub(crate) fn round_money(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
