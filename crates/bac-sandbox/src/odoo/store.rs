//! The generic in-memory record store: one table per model, keyed by id.
//!
//! It implements the ORM semantics the external API exposes (`create`, `read`,
//! `search`, `write`, `unlink`, `fields_get`...) for any [`ModelDef`], with
//! Odoo's value conversions, defaults, required checks and error messages,
//! one2many commands (`(0, 0, vals)`...), stored computed totals, `ondelete`
//! policies and `create_date`/`write_date` kept like Odoo keeps them: with
//! microseconds in the database, read back as `'YYYY-MM-DD HH:MM:SS'`.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use serde_json::{json, Map, Value};

use super::domain::{
    self, compare, values_cmp, Domain, DomainError, Kind, Leaf, LeafEval, Operator,
};
use super::error::{py_repr, py_type_name, OdooError, OdooResult};
use super::models::{Compute, Default, FieldDef, FieldType, ModelDef, OnDelete};

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

    fn position(&self, key: &str) -> Option<usize> {
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
    fn get_at(&self, slot: Option<usize>, key: &str) -> Option<&Value> {
        match slot.and_then(|i| self.0.get(i)) {
            Some((k, v)) if std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len() => {
                Some(v)
            }
            _ => self.get(key),
        }
    }

    /// Orders the values like the model's fields, with the model's own names as
    /// keys, so that every record of a model has the same layout.
    fn canonical(self, def: &ModelDef) -> Self {
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
fn row_slot(def: &ModelDef, name: &str) -> Option<usize> {
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
const MAGIC_WRITE_IGNORED: &[&str] = &[
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
fn micros_value(dt: NaiveDateTime) -> Value {
    Value::from(dt.and_utc().timestamp_micros())
}

/// The stored form of a datetime string (`Null` when it is not one).
pub fn datetime_value(s: &str) -> Value {
    parse_datetime(s).map_or(Value::Null, micros_value)
}

/// Odoo's `convert_to_read` of a stored datetime: `'YYYY-MM-DD HH:MM:SS'`, the
/// microseconds dropped.
fn datetime_for_read(v: &Value) -> Value {
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
fn datetime_operand(op: Operator, v: &Value) -> Value {
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
fn round_money(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Debug, Clone)]
struct Table {
    def: ModelDef,
    rows: BTreeMap<i64, Row>,
    next_id: i64,
}

/// All tables of one database.
#[derive(Debug, Clone)]
pub struct Store {
    tables: BTreeMap<&'static str, Table>,
    /// `ir.sequence` counters by prefix.
    sequences: HashMap<String, u64>,
    /// The last transaction time handed out (strictly increasing).
    last_now: Option<NaiveDateTime>,
}

/// Python `repr()` of a recordset, e.g. `crm.lead(4, 5)` or `crm.lead(4,)`.
pub(crate) fn recordset_repr(model: &str, ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(6).map(i64::to_string).collect();
    if shown.len() == 1 {
        format!("{model}({},)", shown[0])
    } else {
        format!("{model}({})", shown.join(", "))
    }
}

fn kind_of(ftype: &FieldType) -> Kind {
    match ftype {
        FieldType::Boolean => Kind::Boolean,
        FieldType::Integer | FieldType::Float | FieldType::Many2one(_) | FieldType::Datetime => {
            Kind::Number
        }
        _ => Kind::Text,
    }
}

fn invalid_field(model: &str, field: &str) -> OdooError {
    OdooError::value_error(format!(
        "Invalid field {} on model {}",
        py_repr(&Value::String(field.to_owned())),
        py_repr(&Value::String(model.to_owned()))
    ))
}

fn domain_error(e: DomainError) -> OdooError {
    OdooError::value_error(e.0)
}

/// Python `str()` of a JSON value (for char fields given numbers).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn as_f64(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or_default()
}

/// The `psycopg2` foreign key error Odoo turns into a ValidationError.
fn fkey_error(def: &ModelDef, field: &str) -> OdooError {
    OdooError::validation(format!(
        "The operation cannot be completed: another model requires the record being deleted. \
         If possible, archive it instead.\n\nModel: {} ({}), Constraint: {}_{}_fkey",
        def.description,
        def.name,
        def.name.replace('.', "_"),
        field
    ))
}

/// `MissingError` for ids of `model` that do not exist.
pub(crate) fn missing_error(model: &str, missing: &[i64], uid: i64) -> OdooError {
    OdooError::missing(format!(
        "Record does not exist or has been deleted.\n(Record: {}, User: {})",
        recordset_repr(model, missing),
        uid
    ))
}

/// One sort criterion of an `order` specification.
#[derive(Debug, Clone)]
struct OrderTerm {
    field: &'static str,
    desc: bool,
    nulls_first: bool,
}

/// A sort key of one record for one term (borrowed from the row: no copies).
#[derive(Debug, Clone, Copy)]
enum SortKey<'a> {
    Null,
    /// Numbers (and datetimes) are copied: sorting never goes back to the rows.
    Num(f64),
    Val(&'a Value),
    Rank(usize),
    Id(i64),
}

fn sort_key_cmp(a: &SortKey<'_>, b: &SortKey<'_>) -> Ordering {
    match (a, b) {
        (SortKey::Num(x), SortKey::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortKey::Val(x), SortKey::Val(y)) => values_cmp(x, y).unwrap_or(Ordering::Equal),
        (SortKey::Rank(x), SortKey::Rank(y)) => x.cmp(y),
        (SortKey::Id(x), SortKey::Id(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// A one2many command as sent by clients (`odoo.fields.Command`).
#[derive(Debug, Clone)]
enum Command {
    /// `(0, 0, vals)`
    Create(Value),
    /// `(1, id, vals)`
    Update(i64, Value),
    /// `(2, id, 0)`
    Delete(i64),
    /// `(3, id, 0)`
    Unlink(i64),
    /// `(4, id, 0)`
    Link(i64),
    /// `(5, 0, 0)`
    Clear,
    /// `(6, 0, ids)`
    Set(Vec<i64>),
}

/// The one2many commands given for one field.
type FieldCommands = (&'static str, Vec<Command>);

/// A validated one2many command, ready to apply without failing.
#[derive(Debug, Clone)]
enum Prepared {
    Create(Row),
    Update(i64, Row),
    Delete(i64),
    Detach(i64),
    Link(i64),
    Clear,
    Set(Vec<i64>),
}

/// The one2many commands of one field in a `create`/`write`.
#[derive(Debug, Clone)]
struct X2m {
    comodel: &'static str,
    inverse: &'static str,
    commands: Vec<Prepared>,
}

/// Parent id -> child ids of one one2many (children in the comodel's order).
type ChildIndex = HashMap<i64, Vec<i64>>;

/// Records by model (parents whose stored sums need recomputing).
type Parents = BTreeMap<&'static str, BTreeSet<i64>>;

fn merge(into: &mut Parents, from: Parents) {
    for (model, ids) in from {
        into.entry(model).or_default().extend(ids);
    }
}

impl Store {
    /// Creates empty tables for the given models.
    pub fn new(models: Vec<ModelDef>) -> Self {
        let tables = models
            .into_iter()
            .map(|def| {
                (
                    def.name,
                    Table {
                        def,
                        rows: BTreeMap::new(),
                        next_id: 1,
                    },
                )
            })
            .collect();
        Self {
            tables,
            sequences: HashMap::new(),
            last_now: None,
        }
    }

    /// The definition of `model`, if served.
    pub fn model(&self, model: &str) -> Option<&ModelDef> {
        self.tables.get(model).map(|t| &t.def)
    }

    /// Names of all served models.
    pub fn model_names(&self) -> Vec<&'static str> {
        self.tables.keys().copied().collect()
    }

    fn table(&self, model: &str) -> OdooResult<&Table> {
        self.tables
            .get(model)
            .ok_or_else(|| OdooError::key_error(model))
    }

    fn table_mut(&mut self, model: &str) -> OdooResult<&mut Table> {
        self.tables
            .get_mut(model)
            .ok_or_else(|| OdooError::key_error(model))
    }

    /// Whether record `id` of `model` exists.
    pub fn contains(&self, model: &str, id: i64) -> bool {
        self.tables
            .get(model)
            .is_some_and(|t| t.rows.contains_key(&id))
    }

    /// The stored row of a record.
    pub fn row(&self, model: &str, id: i64) -> Option<&Row> {
        self.tables.get(model).and_then(|t| t.rows.get(&id))
    }

    /// The id the next created record of `model` gets.
    pub fn next_id(&self, model: &str) -> i64 {
        self.tables.get(model).map_or(1, |t| t.next_id)
    }

    /// Sets one stored value without any check or side effect (sandbox helpers).
    pub fn set_raw(&mut self, model: &str, id: i64, field: &'static str, value: Value) {
        if let Some(row) = self.tables.get_mut(model).and_then(|t| t.rows.get_mut(&id)) {
            row.insert(field, value);
        }
    }

    /// The next number of the `ir.sequence` with this prefix (1, 2, 3...).
    pub fn next_sequence(&mut self, prefix: &str) -> u64 {
        let n = self.sequences.entry(prefix.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// The time of a new transaction (`cr.now()`): UTC with microseconds, and
    /// strictly after the previous one so that every write moves `write_date`.
    pub fn tick(&mut self) -> String {
        let now = chrono::Utc::now().naive_utc();
        let mut now = now
            .with_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        if let Some(last) = self.last_now {
            if now <= last {
                now = last + chrono::Duration::microseconds(1);
            }
        }
        self.last_now = Some(now);
        datetime_string(now)
    }

    // ----------------------------------------------------------------- values

    /// Odoo's `convert_to_cache` for a client-provided value.
    fn convert(&self, def: &ModelDef, field: &FieldDef, value: &Value) -> OdooResult<Value> {
        let wrong = || {
            OdooError::value_error(format!(
                "Wrong value for {}.{}: {}",
                def.name,
                field.name,
                py_repr(value)
            ))
        };
        let unset = matches!(value, Value::Null | Value::Bool(false));
        Ok(match &field.ftype {
            FieldType::Char | FieldType::Text | FieldType::Html => {
                if unset {
                    Value::Null
                } else {
                    Value::String(py_str(value))
                }
            }
            FieldType::Integer => match value {
                Value::Null | Value::Bool(false) => json!(0),
                Value::Bool(true) => json!(1),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => json!(i),
                    None => json!(n.as_f64().unwrap_or_default().trunc() as i64),
                },
                Value::String(s) => match s.trim().parse::<i64>() {
                    Ok(i) => json!(i),
                    Err(_) => {
                        return Err(OdooError::value_error(format!(
                            "invalid literal for int() with base 10: {}",
                            py_repr(value)
                        )))
                    }
                },
                other => {
                    return Err(OdooError::type_error(format!(
                        "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                        py_type_name(other)
                    )))
                }
            },
            FieldType::Float => match value {
                Value::Null | Value::Bool(false) => json!(0.0),
                Value::Bool(true) => json!(1.0),
                Value::Number(n) => json!(n.as_f64().unwrap_or_default()),
                Value::String(s) => match s.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => json!(f),
                    _ => {
                        return Err(OdooError::value_error(format!(
                            "could not convert string to float: {}",
                            py_repr(value)
                        )))
                    }
                },
                other => {
                    return Err(OdooError::type_error(format!(
                        "float() argument must be a string or a real number, not '{}'",
                        py_type_name(other)
                    )))
                }
            },
            FieldType::Boolean => Value::Bool(match value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            }),
            FieldType::Selection(options) => match value {
                _ if unset => Value::Null,
                Value::String(s) if options.iter().any(|(k, _)| k == s) => value.clone(),
                _ => return Err(wrong()),
            },
            FieldType::Many2one(comodel) => {
                let id = match value {
                    _ if unset => return Ok(Value::Null),
                    Value::Number(n) => n.as_i64(),
                    // (id, display_name) pairs as returned by read()
                    Value::Array(items) => items.first().and_then(Value::as_i64),
                    _ => None,
                };
                let Some(id) = id else { return Err(wrong()) };
                if id == 0 {
                    return Ok(Value::Null);
                }
                if self.tables.contains_key(comodel) && !self.contains(comodel, id) {
                    return Err(OdooError::validation(format!(
                        "The operation cannot be completed: another model requires the record \
                         being deleted. If possible, archive it instead.\n\nModel: {} ({}), \
                         Constraint: {}_{}_fkey",
                        def.description,
                        def.name,
                        def.name.replace('.', "_"),
                        field.name
                    )));
                }
                json!(id)
            }
            FieldType::Datetime => match value {
                _ if unset => Value::Null,
                Value::String(s) => {
                    let s = s.trim();
                    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(
                        s.get(..19).unwrap_or(s),
                        DATETIME_FORMAT,
                    ) {
                        micros_value(dt)
                    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                        micros_value(d.and_time(chrono::NaiveTime::MIN))
                    } else {
                        return Err(OdooError::value_error(format!(
                            "time data {} does not match format '%Y-%m-%d %H:%M:%S'",
                            py_repr(value)
                        )));
                    }
                }
                _ => return Err(wrong()),
            },
            FieldType::Date => match value {
                _ if unset => Value::Null,
                Value::String(s) => {
                    let s = s.trim();
                    match chrono::NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d") {
                        Ok(d) => json!(d.format("%Y-%m-%d").to_string()),
                        Err(_) => {
                            return Err(OdooError::value_error(format!(
                                "time data {} does not match format '%Y-%m-%d'",
                                py_repr(value)
                            )))
                        }
                    }
                }
                _ => return Err(wrong()),
            },
            // one2many values are commands, handled by `prepare_vals`
            FieldType::One2many(..) => return Err(wrong()),
        })
    }

    fn required_error(def: &ModelDef, field: &FieldDef) -> OdooError {
        OdooError::validation(format!(
            "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n\
             - Delete: another model requires the record being deleted. If possible, archive it \
             instead.\n\nModel: {} ({}), Field: {} ({})",
            def.description, def.name, field.string, field.name
        ))
    }

    fn is_missing_required(field: &FieldDef, v: &Value) -> bool {
        field.required
            && match v {
                Value::Null => true,
                Value::String(s) => s.trim().is_empty(),
                _ => false,
            }
    }

    /// Converts client values for `create`/`write` (unknown fields -> ValueError).
    /// One2many values are parsed into commands and returned aside.
    fn prepare_vals(&self, def: &ModelDef, vals: &Value) -> OdooResult<(Row, Vec<FieldCommands>)> {
        let Value::Object(map) = vals else {
            return Err(OdooError::type_error(format!(
                "values must be a dict, not '{}'",
                py_type_name(vals)
            )));
        };
        let mut row = Row::new();
        let mut x2m = Vec::new();
        for (key, value) in map {
            let Some(field) = def.field(key) else {
                return Err(invalid_field(def.name, key));
            };
            if MAGIC_WRITE_IGNORED.contains(&field.name) {
                continue;
            }
            if let FieldType::One2many(..) = field.ftype {
                x2m.push((field.name, parse_commands(def, field, value)?));
                continue;
            }
            let v = self.convert(def, field, value)?;
            if Self::is_missing_required(field, &v) {
                return Err(Self::required_error(def, field));
            }
            row.insert(field.name, v);
        }
        Ok((row, x2m))
    }

    /// Whether the default of `field` is applied record by record (not once per batch).
    fn default_per_record(field: &FieldDef) -> bool {
        matches!(field.default, Default::Related(..) | Default::Sequence(..))
            || field.compute.is_some()
            || matches!(field.ftype, FieldType::One2many(..))
    }

    fn default_value(
        &self,
        field: &FieldDef,
        uid: i64,
        context: &Map<String, Value>,
        now: &str,
    ) -> Value {
        if let Some(v) = context.get(&format!("default_{}", field.name)) {
            return v.clone();
        }
        match &field.default {
            Default::None | Default::Sequence(..) | Default::Related(..) => Value::Null,
            Default::Value(v) => v.clone(),
            Default::CurrentUser => {
                if self.contains("res.users", uid) {
                    json!(uid)
                } else {
                    Value::Null
                }
            }
            Default::FirstRecord => match &field.ftype {
                FieldType::Many2one(comodel) => self
                    .sorted_ids(comodel, None, 0)
                    .ok()
                    .and_then(|ids| ids.first().copied())
                    .map_or(Value::Null, |id| json!(id)),
                _ => Value::Null,
            },
            Default::Today => json!(now.get(..10).unwrap_or(now)),
            Default::Now => json!(now.get(..19).unwrap_or(now)),
        }
    }

    /// The defaults of one `create` call, computed once for all its records.
    fn batch_defaults(
        &self,
        def: &ModelDef,
        uid: i64,
        context: &Map<String, Value>,
        now: &str,
    ) -> OdooResult<Row> {
        let mut out = Row::new();
        for field in &def.fields {
            if !field.store
                || MAGIC_WRITE_IGNORED.contains(&field.name)
                || Self::default_per_record(field)
            {
                continue;
            }
            let raw = self.default_value(field, uid, context, now);
            out.insert(field.name, self.convert(def, field, &raw)?);
        }
        Ok(out)
    }

    /// The value a `Default::Related(m2o, target)` field takes from the row's many2one.
    fn related_value(
        &self,
        def: &ModelDef,
        field: &FieldDef,
        row: &Row,
    ) -> OdooResult<Option<Value>> {
        let Default::Related(m2o, target) = field.default else {
            return Ok(None);
        };
        let Some(FieldType::Many2one(comodel)) = def.field(m2o).map(|f| &f.ftype) else {
            return Ok(None);
        };
        let Some(id) = row.get(m2o).and_then(Value::as_i64) else {
            return Ok(None);
        };
        let raw = if target == "display_name" {
            self.display_name(comodel, id)
        } else {
            match self.row(comodel, id).and_then(|r| r.get(target)) {
                Some(v) => v.clone(),
                None => return Ok(None),
            }
        };
        self.convert(def, field, &raw).map(Some)
    }

    /// Stored computed fields that depend on the record's own values only.
    fn recompute_row(def: &ModelDef, row: &mut Row) {
        for field in &def.fields {
            match field.compute {
                Some(Compute::Mul(a, b)) => {
                    let v = round_money(as_f64(row.get(a)) * as_f64(row.get(b)));
                    row.insert(field.name, json!(v));
                }
                Some(Compute::Copy(src)) => {
                    let v = row.get(src).cloned().unwrap_or(Value::Null);
                    row.insert(field.name, v);
                }
                Some(Compute::Sum(..)) => {
                    row.insert_missing(field.name, json!(0.0));
                }
                None => {}
            }
        }
    }

    /// Builds a complete row (values, defaults, computed and magic fields) for a
    /// new record, and validates its one2many commands. `exempt` is the inverse
    /// many2one of a line created through its parent: set once the parent exists.
    #[allow(clippy::too_many_arguments)]
    fn build_row(
        &self,
        def: &ModelDef,
        vals: &Value,
        uid: i64,
        context: &Map<String, Value>,
        now: &str,
        defaults: &Row,
        exempt: Option<&str>,
    ) -> OdooResult<(Row, Vec<X2m>)> {
        let (mut row, commands) = self.prepare_vals(def, vals)?;
        for field in &def.fields {
            if !field.store
                || MAGIC_WRITE_IGNORED.contains(&field.name)
                || row.contains_key(field.name)
            {
                continue;
            }
            let v = match field.default {
                Default::Related(..) => {
                    self.related_value(def, field, &row)?.unwrap_or(Value::Null)
                }
                _ => defaults.get(field.name).cloned().unwrap_or(Value::Null),
            };
            let exempted = exempt == Some(field.name)
                || matches!(field.default, Default::Sequence(..))
                || field.compute.is_some();
            if !exempted && Self::is_missing_required(field, &v) {
                return Err(Self::required_error(def, field));
            }
            if !matches!(field.ftype, FieldType::One2many(..)) {
                row.insert(field.name, v);
            }
        }
        Self::recompute_row(def, &mut row);
        let uid_value = if self.contains("res.users", uid) {
            json!(uid)
        } else {
            Value::Null
        };
        let stamp = datetime_value(now);
        row.insert("create_date", stamp.clone());
        row.insert("write_date", stamp);
        row.insert("create_uid", uid_value.clone());
        row.insert("write_uid", uid_value);
        let x2m = commands
            .into_iter()
            .map(|(field, cmds)| self.prepare_x2m(def, field, cmds, uid, context, now))
            .collect::<OdooResult<Vec<_>>>()?;
        Ok((row.canonical(def), x2m))
    }

    /// Validates the commands of one one2many field before anything is changed.
    fn prepare_x2m(
        &self,
        def: &ModelDef,
        field: &'static str,
        commands: Vec<Command>,
        uid: i64,
        context: &Map<String, Value>,
        now: &str,
    ) -> OdooResult<X2m> {
        let Some(FieldType::One2many(comodel, inverse)) = def.field(field).map(|f| &f.ftype) else {
            return Err(invalid_field(def.name, field));
        };
        let (comodel, inverse) = (*comodel, *inverse);
        let codef = self.table(comodel)?.def.clone();
        let check = |ids: &[i64]| -> OdooResult<()> {
            let missing: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !self.contains(comodel, *id))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing_error(comodel, &missing, uid))
            }
        };
        let mut defaults: Option<Row> = None;
        let mut out = Vec::with_capacity(commands.len());
        for command in commands {
            out.push(match command {
                Command::Create(vals) => {
                    if defaults.is_none() {
                        defaults = Some(self.batch_defaults(&codef, uid, context, now)?);
                    }
                    let batch = defaults
                        .as_ref()
                        .ok_or_else(|| OdooError::exception("defaults"))?;
                    let (row, nested) =
                        self.build_row(&codef, &vals, uid, context, now, batch, Some(inverse))?;
                    if !nested.is_empty() {
                        return Err(OdooError::value_error(
                            "bac-sandbox: nested one2many commands are not supported",
                        ));
                    }
                    Prepared::Create(row)
                }
                Command::Update(id, vals) => {
                    check(&[id])?;
                    let (row, nested) = self.prepare_vals(&codef, &vals)?;
                    if !nested.is_empty() {
                        return Err(OdooError::value_error(
                            "bac-sandbox: nested one2many commands are not supported",
                        ));
                    }
                    Prepared::Update(id, row)
                }
                Command::Delete(id) => {
                    check(&[id])?;
                    Prepared::Delete(id)
                }
                Command::Unlink(id) => {
                    check(&[id])?;
                    Prepared::Detach(id)
                }
                Command::Link(id) => {
                    check(&[id])?;
                    Prepared::Link(id)
                }
                Command::Clear => Prepared::Clear,
                Command::Set(ids) => {
                    check(&ids)?;
                    Prepared::Set(ids)
                }
            });
        }
        Ok(X2m {
            comodel,
            inverse,
            commands: out,
        })
    }

    /// Applies validated one2many commands to the record `parent`. Returns the
    /// parent records whose stored sums must be recomputed.
    fn apply_x2m(&mut self, parent: i64, x2m: &X2m, uid: i64, now: &str) -> OdooResult<Parents> {
        let (comodel, inverse) = (x2m.comodel, x2m.inverse);
        let cascade = self
            .model(comodel)
            .and_then(|d| d.field(inverse))
            .is_some_and(|f| f.ondelete == OnDelete::Cascade || f.required);
        let uid_value = if self.contains("res.users", uid) {
            json!(uid)
        } else {
            Value::Null
        };
        let mut to_delete: Vec<i64> = Vec::new();
        let stamp = datetime_value(now);
        let detach = |store: &mut Self, ids: Vec<i64>, to_delete: &mut Vec<i64>| {
            if cascade {
                to_delete.extend(ids);
            } else {
                for id in ids {
                    if let Some(row) = store
                        .tables
                        .get_mut(comodel)
                        .and_then(|t| t.rows.get_mut(&id))
                    {
                        row.insert(inverse, Value::Null);
                        row.insert("write_date", stamp.clone());
                        row.insert("write_uid", uid_value.clone());
                    }
                }
            }
        };
        let current = |store: &Self| -> Vec<i64> {
            store
                .children_index(comodel, inverse)
                .remove(&parent)
                .unwrap_or_default()
        };
        let mut touched_parents: BTreeSet<i64> = BTreeSet::new();
        let mut parents = Parents::new();
        for command in &x2m.commands {
            match command {
                Prepared::Create(row) => {
                    let mut row = row.clone();
                    row.insert(inverse, json!(parent));
                    let table = self.table_mut(comodel)?;
                    let id = table.next_id;
                    table.next_id += 1;
                    table.rows.insert(id, row);
                }
                Prepared::Update(id, updates) => {
                    let updates = updates.clone();
                    merge(
                        &mut parents,
                        self.update_rows(comodel, &[*id], &updates, uid, now)?,
                    );
                }
                Prepared::Delete(id) => to_delete.push(*id),
                Prepared::Detach(id) => detach(self, vec![*id], &mut to_delete),
                Prepared::Link(id) => {
                    if let Some(old) = self
                        .row(comodel, *id)
                        .and_then(|r| r.get(inverse))
                        .and_then(Value::as_i64)
                    {
                        touched_parents.insert(old);
                    }
                    let link = Row::from([(inverse, json!(parent))]);
                    merge(
                        &mut parents,
                        self.update_rows(comodel, &[*id], &link, uid, now)?,
                    );
                }
                Prepared::Clear => {
                    let ids = current(self);
                    detach(self, ids, &mut to_delete);
                }
                Prepared::Set(ids) => {
                    let keep: BTreeSet<i64> = ids.iter().copied().collect();
                    let gone: Vec<i64> = current(self)
                        .into_iter()
                        .filter(|id| !keep.contains(id))
                        .collect();
                    detach(self, gone, &mut to_delete);
                    for id in ids {
                        if let Some(old) = self
                            .row(comodel, *id)
                            .and_then(|r| r.get(inverse))
                            .and_then(Value::as_i64)
                        {
                            touched_parents.insert(old);
                        }
                    }
                    let link = Row::from([(inverse, json!(parent))]);
                    merge(
                        &mut parents,
                        self.update_rows(comodel, ids, &link, uid, now)?,
                    );
                }
            }
        }
        if !to_delete.is_empty() {
            self.unlink_records(comodel, &to_delete)?;
        }
        if let Some(parent_model) = self.parent_model(comodel, inverse) {
            touched_parents.insert(parent);
            parents
                .entry(parent_model)
                .or_default()
                .extend(touched_parents);
        }
        Ok(parents)
    }

    // ------------------------------------------------------------ relations

    /// The model whose one2many has `inverse` (a many2one of `child`) as inverse.
    fn parent_model(&self, child: &str, inverse: &str) -> Option<&'static str> {
        let Some(FieldType::Many2one(parent)) = self
            .model(child)
            .and_then(|d| d.field(inverse))
            .map(|f| &f.ftype)
        else {
            return None;
        };
        let pdef = self.model(parent)?;
        pdef.fields
            .iter()
            .any(|f| matches!(f.ftype, FieldType::One2many(c, i) if c == child && i == inverse))
            .then_some(pdef.name)
    }

    /// The parent records (through one2many inverses) of the given records of `child`.
    fn parents_of(&self, child: &str, ids: &[i64]) -> Parents {
        let mut out = Parents::new();
        let Some(table) = self.tables.get(child) else {
            return out;
        };
        for field in &table.def.fields {
            let Some(parent) = self.parent_model(child, field.name) else {
                continue;
            };
            for id in ids {
                if let Some(p) = table
                    .rows
                    .get(id)
                    .and_then(|r| r.get(field.name))
                    .and_then(Value::as_i64)
                {
                    out.entry(parent).or_default().insert(p);
                }
            }
        }
        out
    }

    /// Recomputes the stored sums (`amount_total`...) of the given parent records.
    fn recompute_sums(&mut self, parents: &Parents) {
        for (&pmodel, pids) in parents {
            let Some(pdef) = self.model(pmodel).cloned() else {
                continue;
            };
            // group the sums by one2many so each child table is scanned once
            let mut by_o2m: BTreeMap<&'static str, Vec<(&'static str, &'static str)>> =
                BTreeMap::new();
            for field in &pdef.fields {
                if let Some(Compute::Sum(o2m, child_field)) = field.compute {
                    by_o2m
                        .entry(o2m)
                        .or_default()
                        .push((field.name, child_field));
                }
            }
            for (o2m, targets) in by_o2m {
                let Some(FieldType::One2many(comodel, inverse)) =
                    pdef.field(o2m).map(|f| f.ftype.clone())
                else {
                    continue;
                };
                let mut sums: HashMap<i64, Vec<f64>> = pids
                    .iter()
                    .map(|p| (*p, vec![0.0; targets.len()]))
                    .collect();
                if let Some(ctable) = self.tables.get(comodel) {
                    for row in ctable.rows.values() {
                        let Some(p) = row.get(inverse).and_then(Value::as_i64) else {
                            continue;
                        };
                        if let Some(acc) = sums.get_mut(&p) {
                            for (slot, (_, child_field)) in acc.iter_mut().zip(&targets) {
                                *slot += as_f64(row.get(child_field));
                            }
                        }
                    }
                }
                if let Some(ptable) = self.tables.get_mut(pmodel) {
                    for (p, acc) in sums {
                        if let Some(row) = ptable.rows.get_mut(&p) {
                            for (sum, (name, _)) in acc.iter().zip(&targets) {
                                row.insert(name, json!(round_money(*sum)));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Parent id -> child ids of the one2many `(comodel, inverse)`, children in
    /// the order Odoo reads them (`sequence`, then id, when the comodel has one).
    pub fn children_index(&self, comodel: &str, inverse: &str) -> ChildIndex {
        let mut index: ChildIndex = HashMap::new();
        let Some(table) = self.tables.get(comodel) else {
            return index;
        };
        let has_sequence = table.def.field("sequence").is_some();
        for (id, row) in &table.rows {
            if let Some(p) = row.get(inverse).and_then(Value::as_i64) {
                index.entry(p).or_default().push(*id);
            }
        }
        if has_sequence {
            for children in index.values_mut() {
                children.sort_by_key(|id| {
                    let seq = table
                        .rows
                        .get(id)
                        .and_then(|r| r.get("sequence"))
                        .and_then(Value::as_i64)
                        .unwrap_or_default();
                    (seq, *id)
                });
            }
        }
        index
    }

    // ------------------------------------------------------------------- CRUD

    /// `create(vals_list)`: all records (and their one2many lines) are validated
    /// before any is inserted; they all share one `create_date`/`write_date`.
    pub fn create(
        &mut self,
        model: &str,
        vals_list: &[Value],
        uid: i64,
        context: &Map<String, Value>,
    ) -> OdooResult<Vec<i64>> {
        let def = self.table(model)?.def.clone();
        let now = self.tick();
        let defaults = self.batch_defaults(&def, uid, context, &now)?;
        let built = vals_list
            .iter()
            .map(|vals| self.build_row(&def, vals, uid, context, &now, &defaults, None))
            .collect::<OdooResult<Vec<_>>>()?;
        let sequenced: Vec<(&'static str, &'static str, usize)> = def
            .fields
            .iter()
            .filter_map(|f| match f.default {
                Default::Sequence(prefix, width) => Some((f.name, prefix, width)),
                _ => None,
            })
            .collect();
        let mut ids = Vec::with_capacity(built.len());
        let mut lines = Vec::new();
        for (mut row, x2m) in built {
            for (field, prefix, width) in &sequenced {
                let unset = match row.get(field) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s == "New" || s.is_empty(),
                    _ => false,
                };
                if unset {
                    let n = self.next_sequence(prefix);
                    row.insert(field, json!(format!("{prefix}{n:0width$}")));
                }
            }
            let table = self.table_mut(model)?;
            let id = table.next_id;
            table.next_id += 1;
            table.rows.insert(id, row);
            ids.push(id);
            if !x2m.is_empty() {
                lines.push((id, x2m));
            }
        }
        // a line created directly changes its parent's totals
        let mut parents = self.parents_of(model, &ids);
        for (id, x2ms) in &lines {
            for x2m in x2ms {
                merge(&mut parents, self.apply_x2m(*id, x2m, uid, &now)?);
            }
        }
        self.recompute_sums(&parents);
        Ok(ids)
    }

    /// Inserts a record with a fixed id (used to seed users and stages).
    pub fn insert_with_id(
        &mut self,
        model: &str,
        id: i64,
        vals: &Value,
        uid: i64,
    ) -> OdooResult<()> {
        let def = self.table(model)?.def.clone();
        let now = self.tick();
        let context = Map::new();
        let defaults = self.batch_defaults(&def, uid, &context, &now)?;
        let (row, _) = self.build_row(&def, vals, uid, &context, &now, &defaults, None)?;
        let table = self.table_mut(model)?;
        table.rows.insert(id, row);
        table.next_id = table.next_id.max(id + 1);
        Ok(())
    }

    /// `display_name` of a record (`false` when its name is unset).
    pub fn display_name(&self, model: &str, id: i64) -> Value {
        let Some(table) = self.tables.get(model) else {
            return Value::Bool(false);
        };
        let rec_name = table.def.rec_name;
        let row = table.rows.get(&id);
        let value = row.and_then(|r| r.get(rec_name));
        // product.product: "[default_code] name", as `_compute_display_name` does
        if model == "product.product" {
            let code = row
                .and_then(|r| r.get("default_code"))
                .and_then(Value::as_str);
            if let (Some(code), Some(Value::String(name))) = (code, value) {
                return Value::String(format!("[{code}] {name}"));
            }
        }
        match (table.def.field(rec_name).map(|f| &f.ftype), value) {
            (Some(FieldType::Many2one(comodel)), Some(Value::Number(n))) => {
                self.display_name(comodel, n.as_i64().unwrap_or_default())
            }
            (_, Some(Value::String(s))) => Value::String(s.clone()),
            (_, Some(Value::Null) | None) => Value::Bool(false),
            (_, Some(other)) => Value::String(py_str(other)),
        }
    }

    /// Odoo's `convert_to_read` of one field of one stored record.
    fn read_value(
        &self,
        def: &ModelDef,
        id: i64,
        row: &Row,
        field: &FieldDef,
        load: bool,
    ) -> Value {
        if field.name == "id" {
            return json!(id);
        }
        if field.name == "display_name" {
            return self.display_name(def.name, id);
        }
        let raw = row.get(field.name).unwrap_or(&Value::Null);
        match (&field.ftype, raw) {
            (FieldType::Integer, Value::Null) => json!(0),
            (FieldType::Float, Value::Null) => json!(0.0),
            (FieldType::Many2one(comodel), Value::Number(n)) => {
                let rid = n.as_i64().unwrap_or_default();
                if load {
                    let name = match self.display_name(comodel, rid) {
                        Value::String(s) => s,
                        _ => String::new(),
                    };
                    json!([rid, name])
                } else {
                    json!(rid)
                }
            }
            (FieldType::Datetime, v @ (Value::String(_) | Value::Number(_))) => {
                datetime_for_read(v)
            }
            (_, Value::Null) => Value::Bool(false),
            (_, v) => v.clone(),
        }
    }

    /// Resolves the `fields` argument of `read` (all readable fields when empty).
    fn read_fields<'d>(
        def: &'d ModelDef,
        fields: Option<&[String]>,
    ) -> OdooResult<Vec<&'d FieldDef>> {
        match fields {
            Some(names) if !names.is_empty() => {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let field = def
                        .field(name)
                        .ok_or_else(|| invalid_field(def.name, name))?;
                    if field.name != "id" {
                        out.push(field);
                    }
                }
                Ok(out)
            }
            _ => Ok(def.fields.iter().filter(|f| f.name != "id").collect()),
        }
    }

    /// `read(ids, fields, load)`: missing records are silently left out (Odoo 17).
    pub fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: Option<&[String]>,
        load: bool,
    ) -> OdooResult<Vec<Value>> {
        let table = self.table(model)?;
        let fields = Self::read_fields(&table.def, fields)?;
        let mut children: HashMap<&'static str, ChildIndex> = HashMap::new();
        for field in &fields {
            if let FieldType::One2many(comodel, inverse) = field.ftype {
                if !ids.is_empty() {
                    children.insert(field.name, self.children_index(comodel, inverse));
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(row) = table.rows.get(&id) else {
                continue;
            };
            let mut rec = Map::new();
            rec.insert("id".into(), json!(id));
            for field in &fields {
                let value = match children.get(field.name) {
                    Some(index) => json!(index.get(&id).cloned().unwrap_or_default()),
                    None => self.read_value(&table.def, id, row, field, load),
                };
                rec.insert(field.name.to_owned(), value);
            }
            out.push(Value::Object(rec));
        }
        Ok(out)
    }

    /// Every record of `model` (archived included), in id order, as `read` would return them.
    pub fn dump(&self, model: &str) -> Option<Vec<Value>> {
        let table = self.tables.get(model)?;
        let ids: Vec<i64> = table.rows.keys().copied().collect();
        self.read(model, &ids, None, true).ok()
    }

    /// Applies converted values to existing rows: `write_date`/`write_uid`,
    /// related defaults of changed many2ones and the row's own computed fields.
    /// Returns the parent records (old and new) whose sums must be recomputed.
    fn update_rows(
        &mut self,
        model: &str,
        ids: &[i64],
        updates: &Row,
        uid: i64,
        now: &str,
    ) -> OdooResult<Parents> {
        let def = self.table(model)?.def.clone();
        let uid_value = if self.contains("res.users", uid) {
            json!(uid)
        } else {
            Value::Null
        };
        // fields following a many2one that changes (a line's price when its product changes)
        let related: Vec<&FieldDef> = def
            .fields
            .iter()
            .filter(|f| match f.default {
                Default::Related(m2o, _) => {
                    updates.contains_key(m2o) && !updates.contains_key(f.name)
                }
                _ => false,
            })
            .collect();
        let old_parents = self.parents_of(model, ids);
        let stamp = datetime_value(now);
        for id in ids {
            let Some(mut row) = self.row(model, *id).cloned() else {
                continue;
            };
            for (k, v) in updates.iter() {
                row.insert(k, v.clone());
            }
            for field in &related {
                if let Some(v) = self.related_value(&def, field, &row)? {
                    row.insert(field.name, v);
                }
            }
            Self::recompute_row(&def, &mut row);
            row.insert("write_date", stamp.clone());
            row.insert("write_uid", uid_value.clone());
            if let Ok(table) = self.table_mut(model) {
                table.rows.insert(*id, row);
            }
        }
        let mut parents = self.parents_of(model, ids);
        merge(&mut parents, old_parents);
        Ok(parents)
    }

    /// `write(ids, vals)`.
    pub fn write(&mut self, model: &str, ids: &[i64], vals: &Value, uid: i64) -> OdooResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let table = self.table(model)?;
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !table.rows.contains_key(id))
            .collect();
        if !missing.is_empty() {
            return Err(missing_error(model, &missing, uid));
        }
        let def = table.def.clone();
        let (updates, commands) = self.prepare_vals(&def, vals)?;
        let now = self.tick();
        let context = Map::new();
        let x2ms = commands
            .into_iter()
            .map(|(field, cmds)| self.prepare_x2m(&def, field, cmds, uid, &context, &now))
            .collect::<OdooResult<Vec<_>>>()?;
        let mut parents = self.update_rows(model, ids, &updates, uid, &now)?;
        for id in ids {
            for x2m in &x2ms {
                merge(&mut parents, self.apply_x2m(*id, x2m, uid, &now)?);
            }
        }
        self.recompute_sums(&parents);
        Ok(())
    }

    /// `unlink(ids)`: deleting unknown ids is not an error; `ondelete` policies
    /// of the many2ones pointing at the records apply (cascade, restrict, set null).
    pub fn unlink(&mut self, model: &str, ids: &[i64]) -> OdooResult<()> {
        self.table(model)?;
        super::actions::check_unlink(self, model, ids)?;
        self.unlink_records(model, ids)
    }

    fn unlink_records(&mut self, model: &str, ids: &[i64]) -> OdooResult<()> {
        let name = self.table(model)?.def.name;
        // the records to delete: the given ones and, recursively, their cascades
        let mut doomed: BTreeMap<&'static str, BTreeSet<i64>> = BTreeMap::new();
        let first: BTreeSet<i64> = ids
            .iter()
            .copied()
            .filter(|id| self.contains(name, *id))
            .collect();
        if first.is_empty() {
            return Ok(());
        }
        doomed.insert(name, first.clone());
        let mut queue = vec![(name, first)];
        while let Some((target, set)) = queue.pop() {
            for table in self.tables.values() {
                for field in &table.def.fields {
                    if field.ftype != FieldType::Many2one(target)
                        || field.ondelete != OnDelete::Cascade
                    {
                        continue;
                    }
                    let already = doomed.get(table.def.name);
                    let new: BTreeSet<i64> = table
                        .rows
                        .iter()
                        .filter(|(id, row)| {
                            row.get(field.name)
                                .and_then(Value::as_i64)
                                .is_some_and(|v| set.contains(&v))
                                && !already.is_some_and(|a| a.contains(id))
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    if !new.is_empty() {
                        doomed
                            .entry(table.def.name)
                            .or_default()
                            .extend(new.iter().copied());
                        queue.push((table.def.name, new));
                    }
                }
            }
        }
        // ondelete='restrict': a surviving record still points at a doomed one
        for (target, set) in &doomed {
            for table in self.tables.values() {
                for field in &table.def.fields {
                    if field.ftype != FieldType::Many2one(target)
                        || field.ondelete != OnDelete::Restrict
                    {
                        continue;
                    }
                    let survivors = doomed.get(table.def.name);
                    let blocked = table.rows.iter().any(|(id, row)| {
                        row.get(field.name)
                            .and_then(Value::as_i64)
                            .is_some_and(|v| set.contains(&v))
                            && !survivors.is_some_and(|s| s.contains(id))
                    });
                    if blocked {
                        return Err(fkey_error(&table.def, field.name));
                    }
                }
            }
        }
        // parents whose totals change (the ones that survive)
        let mut parents = Parents::new();
        for (m, set) in &doomed {
            let set: Vec<i64> = set.iter().copied().collect();
            for (p, pids) in self.parents_of(m, &set) {
                parents.entry(p).or_default().extend(pids);
            }
        }
        for (m, set) in &doomed {
            if let Some(table) = self.tables.get_mut(m) {
                for id in set {
                    table.rows.remove(id);
                }
            }
        }
        for (target, set) in &doomed {
            for table in self.tables.values_mut() {
                let refs: Vec<&'static str> = table
                    .def
                    .fields
                    .iter()
                    .filter(|f| {
                        f.ftype == FieldType::Many2one(target) && f.ondelete == OnDelete::SetNull
                    })
                    .map(|f| f.name)
                    .collect();
                if refs.is_empty() {
                    continue;
                }
                for row in table.rows.values_mut() {
                    for f in &refs {
                        if row
                            .get(f)
                            .and_then(Value::as_i64)
                            .is_some_and(|v| set.contains(&v))
                        {
                            row.insert(f, Value::Null);
                        }
                    }
                }
            }
        }
        for (p, pids) in &mut parents {
            pids.retain(|id| self.contains(p, *id));
        }
        self.recompute_sums(&parents);
        Ok(())
    }

    /// `exists()`: the ids that are still in the database.
    pub fn exists(&self, model: &str, ids: &[i64]) -> OdooResult<Vec<i64>> {
        let table = self.table(model)?;
        Ok(ids
            .iter()
            .copied()
            .filter(|id| table.rows.contains_key(id))
            .collect())
    }

    // ----------------------------------------------------------------- search

    /// Checks that every field path of the domain exists (Odoo validates before querying).
    fn check_path(&self, def: &ModelDef, path: &str, leaf: &Leaf) -> OdooResult<()> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let invalid = || {
            OdooError::value_error(format!(
                "Invalid field {}.{} in leaf {}",
                def.name,
                head,
                leaf.repr()
            ))
        };
        let field = def.field(head).ok_or_else(invalid)?;
        match (rest, &field.ftype) {
            (None, _) => Ok(()),
            (Some(rest), FieldType::Many2one(comodel) | FieldType::One2many(comodel, _)) => {
                match self.model(comodel) {
                    Some(codef) => self.check_path(codef, rest, leaf),
                    None => Ok(()),
                }
            }
            (Some(_), _) => Err(invalid()),
        }
    }

    /// `search(domain, offset, limit, order)` returning ids.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        model: &str,
        domain: &Value,
        offset: usize,
        limit: Option<usize>,
        order: Option<&str>,
        context: &Map<String, Value>,
    ) -> OdooResult<Vec<i64>> {
        let table = self.table(model)?;
        let mut tree = domain::parse(domain).map_err(domain_error)?;
        for leaf in tree.leaves() {
            self.check_path(&table.def, &leaf.field, leaf)?;
        }
        self.normalize_leaves(&table.def, &mut tree);
        // active_test: hide archived records unless the domain mentions `active`
        let active_test = !matches!(context.get("active_test"), Some(Value::Bool(false)));
        let mentions_active = domain.as_array().is_some_and(|items| {
            items
                .iter()
                .any(|i| i.as_array().and_then(|t| t.first()) == Some(&json!("active")))
        });
        if table.def.has_active() && active_test && !mentions_active {
            let active = Domain::Leaf(Leaf {
                field: "active".into(),
                op: Operator::Eq,
                value: json!(true),
                raw: vec![json!("active"), json!("="), json!(true)],
            });
            tree = Domain::And(Box::new(active), Box::new(tree));
        }
        let order = order.map(str::trim).filter(|o| !o.is_empty());
        let terms = self.parse_order(&table.def, order.unwrap_or(table.def.order))?;
        let ctx = EvalCtx {
            store: self,
            children: RefCell::new(HashMap::new()),
        };
        let compiled = compile(&table.def, &tree);
        // bounds on `id` in the top-level conjunction narrow the scan (keyset paging)
        let (low, high) = id_bounds(&tree);
        let mut found = Vec::new();
        if low <= high {
            for (&id, row) in table.rows.range(low..=high) {
                let rec = RecordRef {
                    ctx: &ctx,
                    def: &table.def,
                    id,
                    row,
                };
                if compiled.eval(&rec).map_err(domain_error)? {
                    found.push((id, row));
                }
            }
        }
        Ok(self.sort_ids(&table.def, found, &terms, 0, offset, limit))
    }

    /// The field a (possibly dotted) domain path ends on.
    fn path_field<'d>(&'d self, def: &'d ModelDef, path: &str) -> Option<&'d FieldDef> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let field = def.field(head)?;
        match (rest, &field.ftype) {
            (None, _) => Some(field),
            (Some(rest), FieldType::Many2one(co) | FieldType::One2many(co, _)) => {
                self.path_field(self.model(co)?, rest)
            }
            _ => None,
        }
    }

    /// Puts datetime operands in the stored form once, before the records are scanned.
    fn normalize_leaves(&self, def: &ModelDef, tree: &mut Domain) {
        match tree {
            Domain::Const(_) => {}
            Domain::Leaf(leaf) => {
                if self
                    .path_field(def, &leaf.field)
                    .is_some_and(|f| f.ftype == FieldType::Datetime)
                {
                    leaf.value = datetime_operand(leaf.op, &leaf.value);
                }
            }
            Domain::Not(d) => self.normalize_leaves(def, d),
            Domain::And(a, b) | Domain::Or(a, b) => {
                self.normalize_leaves(def, a);
                self.normalize_leaves(def, b);
            }
        }
    }

    fn parse_order(&self, def: &ModelDef, spec: &str) -> OdooResult<Vec<OrderTerm>> {
        let bad = || {
            OdooError::value_error(format!(
                "Invalid \"order\" specified ({spec}). A valid \"order\" specification is a \
                 comma-separated list of valid field names (optionally followed by asc/desc for \
                 the direction)"
            ))
        };
        let mut terms = Vec::new();
        for part in spec.split(',') {
            let words: Vec<String> = part.split_whitespace().map(str::to_lowercase).collect();
            let Some(field) = part.split_whitespace().next() else {
                return Err(bad());
            };
            if !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(bad());
            }
            let (desc, rest) = match words.get(1).map(String::as_str) {
                Some("asc") => (false, &words[2..]),
                Some("desc") => (true, &words[2..]),
                _ => (false, &words[1..]),
            };
            let nulls_first = match rest {
                [] => desc,
                [n, f] if n == "nulls" && f == "first" => true,
                [n, l] if n == "nulls" && l == "last" => false,
                _ => return Err(bad()),
            };
            let fdef = def
                .field(field)
                .ok_or_else(|| invalid_field(def.name, field))?;
            if !fdef.store || matches!(fdef.ftype, FieldType::One2many(..)) {
                return Err(OdooError::value_error(format!(
                    "Cannot convert {}.{} to SQL because it is not stored",
                    def.name, fdef.name
                )));
            }
            terms.push(OrderTerm {
                field: fdef.name,
                desc,
                nulls_first,
            });
        }
        Ok(terms)
    }

    /// All ids of `model` sorted by `order` (default order when None).
    fn sorted_ids(&self, model: &str, order: Option<&str>, depth: usize) -> OdooResult<Vec<i64>> {
        let table = self.table(model)?;
        let terms = self.parse_order(&table.def, order.unwrap_or(table.def.order))?;
        let rows: Vec<(i64, &Row)> = table.rows.iter().map(|(id, row)| (*id, row)).collect();
        Ok(self.sort_ids(&table.def, rows, &terms, depth, 0, None))
    }

    /// Sorts `ids` by `terms` (then id) and applies `offset`/`limit`. Sort keys are
    /// computed once per record and only the first `offset + limit` records are
    /// fully sorted, so a page of a large table costs a linear pass.
    fn sort_ids(
        &self,
        def: &ModelDef,
        rows: Vec<(i64, &Row)>,
        terms: &[OrderTerm],
        depth: usize,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<i64> {
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let wanted = limit.map_or(usize::MAX, |l| offset.saturating_add(l));
        if wanted == 0 || offset >= ids.len() {
            return Vec::new();
        }
        // many2one columns sort by the comodel's own order, like Odoo's joins
        let mut ranks: HashMap<&str, HashMap<i64, usize>> = HashMap::new();
        for term in terms {
            if let Some(FieldType::Many2one(comodel)) = def.field(term.field).map(|f| &f.ftype) {
                let sorted = if depth < 3 {
                    self.sorted_ids(comodel, None, depth + 1)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                ranks.insert(
                    term.field,
                    sorted
                        .into_iter()
                        .enumerate()
                        .map(|(i, id)| (id, i))
                        .collect(),
                );
            }
        }
        let width = terms.len();
        let slots: Vec<Option<usize>> = terms.iter().map(|t| row_slot(def, t.field)).collect();
        let mut keys: Vec<SortKey<'_>> = Vec::with_capacity(ids.len() * width);
        for &(id, row) in &rows {
            for (term, slot) in terms.iter().zip(&slots) {
                let field = term.field;
                let key = if field == "id" {
                    SortKey::Id(id)
                } else {
                    match (row.get_at(*slot, field), ranks.get(field)) {
                        (None | Some(Value::Null), _) => SortKey::Null,
                        (Some(Value::Number(n)), Some(rank)) => {
                            n.as_i64().map_or(SortKey::Null, |rid| {
                                SortKey::Rank(rank.get(&rid).copied().unwrap_or(usize::MAX))
                            })
                        }
                        (Some(Value::Number(n)), None) => {
                            n.as_f64().map_or(SortKey::Null, SortKey::Num)
                        }
                        (Some(v), _) => SortKey::Val(v),
                    }
                };
                keys.push(key);
            }
        }
        let cmp = |&a: &usize, &b: &usize| -> Ordering {
            for (t, term) in terms.iter().enumerate() {
                let (ka, kb) = (&keys[a * width + t], &keys[b * width + t]);
                let ord = match (matches!(ka, SortKey::Null), matches!(kb, SortKey::Null)) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if term.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if term.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, false) => {
                        let o = sort_key_cmp(ka, kb);
                        if term.desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            ids[a].cmp(&ids[b])
        };
        let mut idx: Vec<usize> = (0..ids.len()).collect();
        if wanted < idx.len() {
            idx.select_nth_unstable_by(wanted - 1, cmp);
            idx.truncate(wanted);
        }
        idx.sort_unstable_by(cmp);
        idx.into_iter().skip(offset).map(|i| ids[i]).collect()
    }

    /// Ids of `comodel` records whose display name matches `op value` (many2one name search).
    fn name_match_ids(&self, comodel: &str, op: Operator, value: &Value) -> Vec<i64> {
        let Some(table) = self.tables.get(comodel) else {
            return Vec::new();
        };
        let kind = table
            .def
            .field(table.def.rec_name)
            .map_or(Kind::Text, |f| kind_of(&f.ftype));
        let positive = op.positive();
        table
            .rows
            .iter()
            .filter(|(_, row)| {
                let name = row.get(table.def.rec_name).unwrap_or(&Value::Null);
                compare(positive, kind, name, value)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    // ------------------------------------------------------------ metadata

    /// `fields_get(allfields, attributes)`.
    pub fn fields_get(
        &self,
        model: &str,
        allfields: Option<&[String]>,
        attributes: Option<&[String]>,
    ) -> OdooResult<Value> {
        let table = self.table(model)?;
        let mut out = Map::new();
        for field in &table.def.fields {
            if let Some(only) = allfields {
                if !only.is_empty() && !only.iter().any(|f| f == field.name) {
                    continue;
                }
            }
            let mut desc = Map::new();
            desc.insert("name".into(), json!(field.name));
            desc.insert("type".into(), json!(field.ftype.name()));
            desc.insert("string".into(), json!(field.string));
            desc.insert("required".into(), json!(field.required));
            desc.insert("readonly".into(), json!(field.readonly));
            desc.insert("store".into(), json!(field.store));
            desc.insert("searchable".into(), json!(true));
            let sortable = field.store && !matches!(field.ftype, FieldType::One2many(..));
            desc.insert("sortable".into(), json!(sortable));
            desc.insert("groupable".into(), json!(sortable));
            desc.insert("manual".into(), json!(false));
            desc.insert("company_dependent".into(), json!(false));
            desc.insert("exportable".into(), json!(true));
            desc.insert("change_default".into(), json!(false));
            desc.insert("depends".into(), json!([]));
            match &field.ftype {
                FieldType::Selection(options) => {
                    let opts: Vec<Value> = options.iter().map(|(k, l)| json!([k, l])).collect();
                    desc.insert("selection".into(), Value::Array(opts));
                }
                FieldType::Many2one(comodel) => {
                    desc.insert("relation".into(), json!(comodel));
                    desc.insert("domain".into(), json!([]));
                    desc.insert("context".into(), json!({}));
                }
                FieldType::One2many(comodel, inverse) => {
                    desc.insert("relation".into(), json!(comodel));
                    desc.insert("relation_field".into(), json!(inverse));
                    desc.insert("domain".into(), json!([]));
                    desc.insert("context".into(), json!({}));
                }
                FieldType::Char => {
                    desc.insert("translate".into(), json!(false));
                    desc.insert("trim".into(), json!(true));
                }
                FieldType::Text | FieldType::Html => {
                    desc.insert("translate".into(), json!(false));
                }
                _ => {}
            }
            if let Some(attrs) = attributes {
                if !attrs.is_empty() {
                    desc.retain(|k, _| attrs.iter().any(|a| a == k));
                }
            }
            out.insert(field.name.to_owned(), Value::Object(desc));
        }
        Ok(Value::Object(out))
    }

    /// `default_get(fields_list)`.
    pub fn default_get(
        &self,
        model: &str,
        fields: &[String],
        uid: i64,
        context: &Map<String, Value>,
    ) -> OdooResult<Value> {
        let table = self.table(model)?;
        let now = now_string();
        let mut out = Map::new();
        for name in fields {
            let Some(field) = table.def.field(name) else {
                continue;
            };
            if !field.store
                || MAGIC_WRITE_IGNORED.contains(&field.name)
                || Self::default_per_record(field)
            {
                continue;
            }
            let v = self.default_value(field, uid, context, &now);
            if v.is_null() {
                continue;
            }
            let v = self.convert(&table.def, field, &v)?;
            out.insert(field.name.to_owned(), v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a one2many value: a list of commands, or a list of ids (`SET`).
fn parse_commands(def: &ModelDef, field: &FieldDef, value: &Value) -> OdooResult<Vec<Command>> {
    let wrong = || {
        OdooError::value_error(format!(
            "Wrong value for {}.{}: {}",
            def.name,
            field.name,
            py_repr(value)
        ))
    };
    let items = match value {
        Value::Null | Value::Bool(false) => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(wrong()),
    };
    if !items.is_empty() && items.iter().all(|i| i.as_i64().is_some()) {
        return Ok(vec![Command::Set(
            items.iter().filter_map(Value::as_i64).collect(),
        )]);
    }
    let id_of = |v: Option<&Value>| v.and_then(Value::as_i64).ok_or_else(wrong);
    items
        .iter()
        .map(|item| {
            let Value::Array(c) = item else {
                return Err(wrong());
            };
            let vals = || c.get(2).cloned().unwrap_or(Value::Null);
            Ok(match c.first().and_then(Value::as_i64) {
                Some(0) => Command::Create(vals()),
                Some(1) => Command::Update(id_of(c.get(1))?, vals()),
                Some(2) => Command::Delete(id_of(c.get(1))?),
                Some(3) => Command::Unlink(id_of(c.get(1))?),
                Some(4) => Command::Link(id_of(c.get(1))?),
                Some(5) => Command::Clear,
                Some(6) => Command::Set(match c.get(2) {
                    Some(Value::Array(ids)) => ids
                        .iter()
                        .map(|i| id_of(Some(i)))
                        .collect::<OdooResult<Vec<_>>>()?,
                    None | Some(Value::Null | Value::Bool(false)) => Vec::new(),
                    Some(_) => return Err(wrong()),
                }),
                _ => return Err(wrong()),
            })
        })
        .collect()
}

static NULL: Value = Value::Null;

/// A domain with its plain leaves resolved to their field once, so that
/// scanning a large table compares values without looking fields up.
enum Compiled<'a> {
    Const(bool),
    /// A leaf on a stored, non-relational field (or a many2one compared with ids).
    Plain {
        field: &'static str,
        slot: Option<usize>,
        is_id: bool,
        kind: Kind,
        op: Operator,
        value: &'a Value,
    },
    /// Anything else, evaluated by [`RecordRef::eval_path`].
    Path(&'a Leaf),
    Not(Box<Compiled<'a>>),
    And(Box<Compiled<'a>>, Box<Compiled<'a>>),
    Or(Box<Compiled<'a>>, Box<Compiled<'a>>),
}

fn compile<'a>(def: &ModelDef, tree: &'a Domain) -> Compiled<'a> {
    match tree {
        Domain::Const(b) => Compiled::Const(*b),
        Domain::Not(d) => Compiled::Not(Box::new(compile(def, d))),
        Domain::And(a, b) => Compiled::And(Box::new(compile(def, a)), Box::new(compile(def, b))),
        Domain::Or(a, b) => Compiled::Or(Box::new(compile(def, a)), Box::new(compile(def, b))),
        Domain::Leaf(leaf) => {
            let plain = (!leaf.field.contains('.') && leaf.field != "display_name")
                .then(|| def.field(&leaf.field))
                .flatten()
                .filter(|f| match &f.ftype {
                    FieldType::One2many(..) => false,
                    // many2one compared with names goes through a name search
                    FieldType::Many2one(_) => match &leaf.value {
                        Value::String(_) => false,
                        Value::Array(items) => !items.iter().any(Value::is_string),
                        _ => true,
                    },
                    _ => true,
                });
            match plain {
                Some(f) => Compiled::Plain {
                    field: f.name,
                    slot: row_slot(def, f.name),
                    is_id: f.name == "id",
                    kind: kind_of(&f.ftype),
                    op: leaf.op,
                    value: &leaf.value,
                },
                None => Compiled::Path(leaf),
            }
        }
    }
}

impl Compiled<'_> {
    fn eval(&self, rec: &RecordRef<'_>) -> Result<bool, DomainError> {
        Ok(match self {
            Self::Const(b) => *b,
            Self::Plain {
                field,
                slot,
                is_id,
                kind,
                op,
                value,
            } => {
                if *is_id {
                    compare(*op, *kind, &Value::from(rec.id), value)
                } else {
                    let v = rec.row.get_at(*slot, field).unwrap_or(&NULL);
                    compare(*op, *kind, v, value)
                }
            }
            Self::Path(leaf) => rec.eval_leaf(leaf)?,
            Self::Not(d) => !d.eval(rec)?,
            Self::And(a, b) => a.eval(rec)? && b.eval(rec)?,
            Self::Or(a, b) => a.eval(rec)? || b.eval(rec)?,
        })
    }
}

/// The id range implied by `id` comparisons in the top-level conjunction.
fn id_bounds(tree: &Domain) -> (i64, i64) {
    let (mut low, mut high) = (i64::MIN, i64::MAX);
    let mut stack = vec![tree];
    while let Some(d) = stack.pop() {
        match d {
            Domain::And(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Domain::Const(false) => return (1, 0),
            Domain::Leaf(leaf) if leaf.field == "id" => {
                let Some(v) = leaf.value.as_f64() else {
                    continue;
                };
                match leaf.op {
                    Operator::Gt => low = low.max(v.floor() as i64 + 1),
                    Operator::Ge => low = low.max(v.ceil() as i64),
                    Operator::Lt => high = high.min(v.ceil() as i64 - 1),
                    Operator::Le => high = high.min(v.floor() as i64),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (low, high)
}

/// What one domain evaluation shares between records: the store and the
/// one2many indexes built on first use.
struct EvalCtx<'a> {
    store: &'a Store,
    children: RefCell<HashMap<(&'static str, &'static str), Rc<ChildIndex>>>,
}

impl EvalCtx<'_> {
    fn children(&self, comodel: &'static str, inverse: &'static str) -> Rc<ChildIndex> {
        self.children
            .borrow_mut()
            .entry((comodel, inverse))
            .or_insert_with(|| Rc::new(self.store.children_index(comodel, inverse)))
            .clone()
    }
}

/// One record seen by the domain evaluator.
struct RecordRef<'a> {
    ctx: &'a EvalCtx<'a>,
    def: &'a ModelDef,
    id: i64,
    row: &'a Row,
}

impl RecordRef<'_> {
    fn eval_path(&self, path: &str, leaf: &Leaf) -> Result<bool, DomainError> {
        let store = self.ctx.store;
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let invalid = || {
            DomainError(format!(
                "Invalid field {}.{} in leaf {}",
                self.def.name,
                head,
                leaf.repr()
            ))
        };
        // display_name is searched through the rec_name field
        let head = if head == "display_name" {
            self.def.rec_name
        } else {
            head
        };
        let field = self.def.field(head).ok_or_else(invalid)?;
        let id_value;
        let value: &Value = if head == "id" {
            id_value = json!(self.id);
            &id_value
        } else {
            self.row.get(head).unwrap_or(&NULL)
        };
        match (rest, &field.ftype) {
            (Some(rest), FieldType::Many2one(comodel)) => {
                let Some(target) = value.as_i64() else {
                    return Ok(false);
                };
                let Some(table) = store.tables.get(comodel) else {
                    return Ok(false);
                };
                let Some(row) = table.rows.get(&target) else {
                    return Ok(false);
                };
                RecordRef {
                    ctx: self.ctx,
                    def: &table.def,
                    id: target,
                    row,
                }
                .eval_path(rest, leaf)
            }
            (Some(rest), FieldType::One2many(comodel, inverse)) => {
                // a path through a one2many matches when any line matches
                let Some(table) = store.tables.get(comodel) else {
                    return Ok(false);
                };
                let index = self.ctx.children(comodel, inverse);
                for child in index.get(&self.id).map(Vec::as_slice).unwrap_or_default() {
                    let Some(row) = table.rows.get(child) else {
                        continue;
                    };
                    let rec = RecordRef {
                        ctx: self.ctx,
                        def: &table.def,
                        id: *child,
                        row,
                    };
                    if rec.eval_path(rest, leaf)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            (Some(_), _) => Err(invalid()),
            (None, FieldType::One2many(comodel, inverse)) => {
                let index = self.ctx.children(comodel, inverse);
                let children: Vec<i64> = index.get(&self.id).cloned().unwrap_or_default();
                let wanted: Vec<i64> = match &leaf.value {
                    Value::Null | Value::Bool(false) => {
                        // `= False`: no line at all; `!= False`: at least one
                        return Ok(match leaf.op {
                            Operator::Eq | Operator::In => children.is_empty(),
                            _ => !children.is_empty(),
                        });
                    }
                    Value::String(_) => store.name_match_ids(comodel, leaf.op, &leaf.value),
                    Value::Array(items) => items.iter().filter_map(Value::as_i64).collect(),
                    other => other.as_i64().into_iter().collect(),
                };
                let hit = children.iter().any(|c| wanted.contains(c));
                Ok(if leaf.op.is_negative() { !hit } else { hit })
            }
            (None, FieldType::Many2one(comodel)) => {
                // many2one compared with names: resolve through a name search
                let names: Option<Vec<Value>> = match &leaf.value {
                    Value::String(_) => Some(vec![leaf.value.clone()]),
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(Value::is_string) =>
                    {
                        Some(items.clone())
                    }
                    _ => None,
                };
                match names {
                    Some(names) => {
                        let op = match leaf.op {
                            Operator::In => Operator::Eq,
                            Operator::NotIn => Operator::Ne,
                            other => other,
                        };
                        let ids: Vec<Value> = names
                            .iter()
                            .flat_map(|n| store.name_match_ids(comodel, op, n))
                            .map(|id| json!(id))
                            .collect();
                        let set_op = if op.is_negative() {
                            Operator::NotIn
                        } else {
                            Operator::In
                        };
                        Ok(compare(set_op, Kind::Number, value, &Value::Array(ids)))
                    }
                    None => Ok(compare(leaf.op, Kind::Number, value, &leaf.value)),
                }
            }
            // datetime operands were put in the stored form by `normalize_leaves`
            (None, ftype) => Ok(compare(leaf.op, kind_of(ftype), value, &leaf.value)),
        }
    }
}

impl LeafEval for RecordRef<'_> {
    fn eval_leaf(&self, leaf: &Leaf) -> Result<bool, DomainError> {
        self.eval_path(&leaf.field, leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::super::models::builtin_models;
    use super::*;

    fn store() -> Store {
        let mut s = Store::new(builtin_models());
        s.insert_with_id(
            "res.users",
            2,
            &json!({"name": "Administrator", "login": "admin"}),
            2,
        )
        .unwrap();
        for (i, name) in ["New", "Qualified", "Won"].iter().enumerate() {
            s.insert_with_id(
                "crm.stage",
                i as i64 + 1,
                &json!({"name": name, "sequence": i}),
                2,
            )
            .unwrap();
        }
        s
    }

    fn ctx() -> Map<String, Value> {
        Map::new()
    }

    #[test]
    fn create_read_defaults() {
        let mut s = store();
        let ids = s
            .create("crm.lead", &[json!({"name": "A"})], 2, &ctx())
            .unwrap();
        let rec = &s.read("crm.lead", &ids, None, true).unwrap()[0];
        assert_eq!(rec["name"], "A");
        assert_eq!(rec["priority"], "0");
        assert_eq!(rec["type"], "lead");
        assert_eq!(rec["active"], true);
        assert_eq!(rec["email_from"], false);
        assert_eq!(rec["expected_revenue"], 0.0);
        assert_eq!(rec["stage_id"], json!([1, "New"]));
        assert_eq!(rec["user_id"], json!([2, "Administrator"]));
        assert_eq!(rec["display_name"], "A");
        assert_eq!(rec["create_date"].as_str().unwrap().len(), 19);
        let raw = &s
            .read("crm.lead", &ids, Some(&["stage_id".into()]), false)
            .unwrap()[0];
        assert_eq!(raw, &json!({"id": ids[0], "stage_id": 1}));
    }

    #[test]
    fn validation_errors() {
        let mut s = store();
        let e = s
            .create("crm.lead", &[json!({"partner_name": "x"})], 2, &ctx())
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.ValidationError");
        assert!(
            e.message.contains("Field: Opportunity (name)"),
            "{}",
            e.message
        );
        let e = s
            .create("crm.lead", &[json!({"name": "x", "nope": 1})], 2, &ctx())
            .unwrap_err();
        assert_eq!(e.message, "Invalid field 'nope' on model 'crm.lead'");
        let e = s
            .create(
                "crm.lead",
                &[json!({"name": "x", "priority": "9"})],
                2,
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(e.message, "Wrong value for crm.lead.priority: '9'");
        let e = s
            .create(
                "crm.lead",
                &[json!({"name": "x", "stage_id": 99})],
                2,
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.ValidationError");
        // nothing was inserted by the failed batch
        let e = s
            .create(
                "crm.lead",
                &[json!({"name": "ok"}), json!({"name": ""})],
                2,
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.ValidationError");
        assert!(s
            .search("crm.lead", &json!([]), 0, None, None, &ctx())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn search_order_and_active() {
        let mut s = store();
        let ids = s
            .create(
                "crm.lead",
                &[
                    json!({"name": "low", "priority": "0"}),
                    json!({"name": "high", "priority": "3"}),
                    json!({"name": "mid", "priority": "1", "stage_id": 3}),
                    json!({"name": "archived", "active": false}),
                ],
                2,
                &ctx(),
            )
            .unwrap();
        let found = s
            .search("crm.lead", &json!([]), 0, None, None, &ctx())
            .unwrap();
        assert_eq!(found, vec![ids[1], ids[2], ids[0]]);
        let found = s
            .search("crm.lead", &json!([]), 1, Some(1), Some("name asc"), &ctx())
            .unwrap();
        assert_eq!(found, vec![ids[0]]);
        let found = s
            .search(
                "crm.lead",
                &json!([["active", "=", false]]),
                0,
                None,
                None,
                &ctx(),
            )
            .unwrap();
        assert_eq!(found, vec![ids[3]]);
        let mut no_active = Map::new();
        no_active.insert("active_test".into(), json!(false));
        assert_eq!(
            s.search("crm.lead", &json!([]), 0, None, Some("id"), &no_active)
                .unwrap()
                .len(),
            4
        );
        // many2one by name, dotted path, order by many2one (stage sequence)
        let found = s
            .search(
                "crm.lead",
                &json!([["stage_id", "=", "Won"]]),
                0,
                None,
                None,
                &ctx(),
            )
            .unwrap();
        assert_eq!(found, vec![ids[2]]);
        let found = s
            .search(
                "crm.lead",
                &json!([["stage_id.name", "ilike", "new"]]),
                0,
                None,
                Some("id"),
                &ctx(),
            )
            .unwrap();
        assert_eq!(found, vec![ids[0], ids[1]]);
        let found = s
            .search(
                "crm.lead",
                &json!([]),
                0,
                None,
                Some("stage_id desc, id"),
                &ctx(),
            )
            .unwrap();
        assert_eq!(found, vec![ids[2], ids[0], ids[1]]);
        let e = s
            .search(
                "crm.lead",
                &json!([["nope", "=", 1]]),
                0,
                None,
                None,
                &ctx(),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "Invalid field crm.lead.nope in leaf ('nope', '=', 1)"
        );
        let e = s
            .search("crm.lead", &json!([]), 0, None, Some("name; drop"), &ctx())
            .unwrap_err();
        assert!(e.message.starts_with("Invalid \"order\""));
        let e = s
            .search("crm.lead", &json!([]), 0, None, Some("nope desc"), &ctx())
            .unwrap_err();
        assert_eq!(e.message, "Invalid field 'nope' on model 'crm.lead'");
    }

    #[test]
    fn write_unlink() {
        let mut s = store();
        let ids = s
            .create("crm.lead", &[json!({"name": "A"})], 2, &ctx())
            .unwrap();
        s.write(
            "crm.lead",
            &ids,
            &json!({"expected_revenue": "12.5", "id": 99}),
            2,
        )
        .unwrap();
        assert_eq!(
            s.read("crm.lead", &ids, None, true).unwrap()[0]["expected_revenue"],
            12.5
        );
        let e = s
            .write("crm.lead", &[ids[0], 77], &json!({"name": "B"}), 2)
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.MissingError");
        assert_eq!(
            e.message,
            "Record does not exist or has been deleted.\n(Record: crm.lead(77,), User: 2)"
        );
        let e = s
            .write("crm.lead", &ids, &json!({"name": false}), 2)
            .unwrap_err();
        assert_eq!(e.name, "odoo.exceptions.ValidationError");
        s.unlink("crm.stage", &[1]).unwrap();
        assert_eq!(
            s.read("crm.lead", &ids, None, true).unwrap()[0]["stage_id"],
            false
        );
        s.unlink("crm.lead", &ids).unwrap();
        assert!(s.read("crm.lead", &ids, None, true).unwrap().is_empty());
        s.unlink("crm.lead", &[12345]).unwrap();
    }

    #[test]
    fn fields_get_shape() {
        let s = store();
        let f = s.fields_get("crm.lead", None, None).unwrap();
        assert_eq!(f["priority"]["type"], "selection");
        assert_eq!(f["priority"]["selection"][3], json!(["3", "Very High"]));
        assert_eq!(f["stage_id"]["relation"], "crm.stage");
        assert_eq!(f["name"]["required"], true);
        let f = s
            .fields_get("crm.lead", Some(&["name".into()]), Some(&["type".into()]))
            .unwrap();
        assert_eq!(f, json!({"name": {"type": "char"}}));
    }
}
