//! The generic in-memory record store: one table per model, keyed by id.
//!
//! It implements the ORM semantics the external API exposes (`create`, `read`,
//! `search`, `write`, `unlink`, `fields_get`...) for any [`ModelDef`], with
//! Odoo's value conversions, defaults, required checks and error messages.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::domain::{
    self, compare, values_cmp, Domain, DomainError, Kind, Leaf, LeafEval, Operator,
};
use super::error::{py_repr, py_type_name, OdooError, OdooResult};
use super::models::{Default, FieldDef, FieldType, ModelDef};

/// Stored values of one record (stored fields only; `Null` means unset).
pub type Row = BTreeMap<String, Value>;

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

/// The current UTC time in Odoo's string format.
pub fn now_string() -> String {
    chrono::Utc::now().format(DATETIME_FORMAT).to_string()
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
}

/// Python `repr()` of a recordset, e.g. `crm.lead(4, 5)` or `crm.lead(4,)`.
fn recordset_repr(model: &str, ids: &[i64]) -> String {
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
        FieldType::Integer | FieldType::Float | FieldType::Many2one(_) => Kind::Number,
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

/// One sort criterion of an `order` specification.
#[derive(Debug, Clone)]
struct OrderTerm {
    field: String,
    desc: bool,
    nulls_first: bool,
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
        Self { tables }
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
                        json!(dt.format(DATETIME_FORMAT).to_string())
                    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                        json!(format!("{} 00:00:00", d.format("%Y-%m-%d")))
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
    fn prepare_vals(&self, def: &ModelDef, vals: &Value) -> OdooResult<Row> {
        let Value::Object(map) = vals else {
            return Err(OdooError::type_error(format!(
                "values must be a dict, not '{}'",
                py_type_name(vals)
            )));
        };
        let mut row = Row::new();
        for (key, value) in map {
            let Some(field) = def.field(key) else {
                return Err(invalid_field(def.name, key));
            };
            if MAGIC_WRITE_IGNORED.contains(&field.name) {
                continue;
            }
            let v = self.convert(def, field, value)?;
            if Self::is_missing_required(field, &v) {
                return Err(Self::required_error(def, field));
            }
            row.insert(field.name.to_owned(), v);
        }
        Ok(row)
    }

    fn default_value(&self, field: &FieldDef, uid: i64, context: &Map<String, Value>) -> Value {
        if let Some(v) = context.get(&format!("default_{}", field.name)) {
            return v.clone();
        }
        match &field.default {
            Default::None => Value::Null,
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
        }
    }

    /// Builds a complete row (values, defaults, magic fields) for a new record.
    fn build_row(
        &self,
        def: &ModelDef,
        vals: &Value,
        uid: i64,
        context: &Map<String, Value>,
        now: &str,
    ) -> OdooResult<Row> {
        let mut row = self.prepare_vals(def, vals)?;
        for field in &def.fields {
            if !field.store || MAGIC_WRITE_IGNORED.contains(&field.name) {
                continue;
            }
            if !row.contains_key(field.name) {
                let raw = self.default_value(field, uid, context);
                let v = self.convert(def, field, &raw)?;
                if Self::is_missing_required(field, &v) {
                    return Err(Self::required_error(def, field));
                }
                row.insert(field.name.to_owned(), v);
            }
        }
        let uid_value = if self.contains("res.users", uid) {
            json!(uid)
        } else {
            Value::Null
        };
        row.insert("create_date".into(), json!(now));
        row.insert("write_date".into(), json!(now));
        row.insert("create_uid".into(), uid_value.clone());
        row.insert("write_uid".into(), uid_value);
        Ok(row)
    }

    // ------------------------------------------------------------------- CRUD

    /// `create(vals_list)`: all records are validated before any is inserted.
    pub fn create(
        &mut self,
        model: &str,
        vals_list: &[Value],
        uid: i64,
        context: &Map<String, Value>,
    ) -> OdooResult<Vec<i64>> {
        let now = now_string();
        let def = self.table(model)?.def.clone();
        let rows = vals_list
            .iter()
            .map(|vals| self.build_row(&def, vals, uid, context, &now))
            .collect::<OdooResult<Vec<_>>>()?;
        let table = self.table_mut(model)?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let id = table.next_id;
            table.next_id += 1;
            table.rows.insert(id, row);
            ids.push(id);
        }
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
        let row = self.build_row(&def, vals, uid, &Map::new(), &now_string())?;
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
        match table.rows.get(&id).and_then(|r| r.get(table.def.rec_name)) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Null) | None => Value::Bool(false),
            Some(other) => Value::String(py_str(other)),
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
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(row) = table.rows.get(&id) else {
                continue;
            };
            let mut rec = Map::new();
            rec.insert("id".into(), json!(id));
            for field in &fields {
                rec.insert(
                    field.name.to_owned(),
                    self.read_value(&table.def, id, row, field, load),
                );
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
            return Err(OdooError::missing(format!(
                "Record does not exist or has been deleted.\n(Record: {}, User: {})",
                recordset_repr(model, &missing),
                uid
            )));
        }
        let def = table.def.clone();
        let updates = self.prepare_vals(&def, vals)?;
        let now = now_string();
        let uid_value = if self.contains("res.users", uid) {
            json!(uid)
        } else {
            Value::Null
        };
        let table = self.table_mut(model)?;
        for id in ids {
            if let Some(row) = table.rows.get_mut(id) {
                for (k, v) in &updates {
                    row.insert(k.clone(), v.clone());
                }
                row.insert("write_date".into(), json!(now));
                row.insert("write_uid".into(), uid_value.clone());
            }
        }
        Ok(())
    }

    /// `unlink(ids)`: deleting unknown ids is not an error; references are set to NULL.
    pub fn unlink(&mut self, model: &str, ids: &[i64]) -> OdooResult<()> {
        let name = self.table(model)?.def.name;
        if let Ok(table) = self.table_mut(model) {
            for id in ids {
                table.rows.remove(id);
            }
        }
        for table in self.tables.values_mut() {
            let refs: Vec<&'static str> = table
                .def
                .fields
                .iter()
                .filter(|f| f.ftype == FieldType::Many2one(name))
                .map(|f| f.name)
                .collect();
            if refs.is_empty() {
                continue;
            }
            for row in table.rows.values_mut() {
                for f in &refs {
                    if row
                        .get(*f)
                        .and_then(Value::as_i64)
                        .is_some_and(|v| ids.contains(&v))
                    {
                        row.insert((*f).to_owned(), Value::Null);
                    }
                }
            }
        }
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
            (Some(rest), FieldType::Many2one(comodel)) => match self.model(comodel) {
                Some(codef) => self.check_path(codef, rest, leaf),
                None => Ok(()),
            },
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
        let mut ids = Vec::new();
        for (&id, row) in &table.rows {
            let rec = RecordRef {
                store: self,
                def: &table.def,
                id,
                row,
            };
            if tree.eval(&rec).map_err(domain_error)? {
                ids.push(id);
            }
        }
        self.sort_ids(&table.def, &mut ids, &terms, 0);
        Ok(ids
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect())
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
            if !fdef.store {
                return Err(OdooError::value_error(format!(
                    "Cannot convert {}.{} to SQL because it is not stored",
                    def.name, fdef.name
                )));
            }
            terms.push(OrderTerm {
                field: fdef.name.to_owned(),
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
        let mut ids: Vec<i64> = table.rows.keys().copied().collect();
        self.sort_ids(&table.def, &mut ids, &terms, depth);
        Ok(ids)
    }

    fn sort_ids(&self, def: &ModelDef, ids: &mut [i64], terms: &[OrderTerm], depth: usize) {
        let Some(table) = self.tables.get(def.name) else {
            return;
        };
        // many2one columns sort by the comodel's own order, like Odoo's joins
        let mut ranks: HashMap<&str, HashMap<i64, usize>> = HashMap::new();
        for term in terms {
            if let Some(FieldType::Many2one(comodel)) = def.field(&term.field).map(|f| &f.ftype) {
                let sorted = if depth < 3 {
                    self.sorted_ids(comodel, None, depth + 1)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                ranks.insert(
                    term.field.as_str(),
                    sorted
                        .into_iter()
                        .enumerate()
                        .map(|(i, id)| (id, i))
                        .collect(),
                );
            }
        }
        let key = |id: i64, field: &str| -> Value {
            if field == "id" {
                return json!(id);
            }
            let v = table
                .rows
                .get(&id)
                .and_then(|r| r.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            match (ranks.get(field), &v) {
                (Some(rank), Value::Number(n)) => n
                    .as_i64()
                    .map(|rid| json!(rank.get(&rid).copied().unwrap_or(usize::MAX)))
                    .unwrap_or(Value::Null),
                _ => v,
            }
        };
        ids.sort_by(|&a, &b| {
            for term in terms {
                let (va, vb) = (key(a, &term.field), key(b, &term.field));
                let ord = match (va.is_null(), vb.is_null()) {
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
                        let o = values_cmp(&va, &vb).unwrap_or(Ordering::Equal);
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
            a.cmp(&b)
        });
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
            desc.insert("sortable".into(), json!(field.store));
            desc.insert("groupable".into(), json!(field.store));
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
        let mut out = Map::new();
        for name in fields {
            let Some(field) = table.def.field(name) else {
                continue;
            };
            if !field.store || MAGIC_WRITE_IGNORED.contains(&field.name) {
                continue;
            }
            let v = self.default_value(field, uid, context);
            if v.is_null() {
                continue;
            }
            let v = self.convert(&table.def, field, &v)?;
            out.insert(field.name.to_owned(), v);
        }
        Ok(Value::Object(out))
    }
}

/// One record seen by the domain evaluator.
struct RecordRef<'a> {
    store: &'a Store,
    def: &'a ModelDef,
    id: i64,
    row: &'a Row,
}

impl RecordRef<'_> {
    fn eval_path(&self, path: &str, leaf: &Leaf) -> Result<bool, DomainError> {
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
        let value = if head == "id" {
            json!(self.id)
        } else {
            self.row.get(head).cloned().unwrap_or(Value::Null)
        };
        match (rest, &field.ftype) {
            (Some(rest), FieldType::Many2one(comodel)) => {
                let Some(target) = value.as_i64() else {
                    return Ok(false);
                };
                let Some(table) = self.store.tables.get(comodel) else {
                    return Ok(false);
                };
                let Some(row) = table.rows.get(&target) else {
                    return Ok(false);
                };
                RecordRef {
                    store: self.store,
                    def: &table.def,
                    id: target,
                    row,
                }
                .eval_path(rest, leaf)
            }
            (Some(_), _) => Err(invalid()),
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
                            .flat_map(|n| self.store.name_match_ids(comodel, op, n))
                            .map(|id| json!(id))
                            .collect();
                        let set_op = if op.is_negative() {
                            Operator::NotIn
                        } else {
                            Operator::In
                        };
                        Ok(compare(set_op, Kind::Number, &value, &Value::Array(ids)))
                    }
                    None => Ok(compare(leaf.op, Kind::Number, &value, &leaf.value)),
                }
            }
            (None, ftype) => Ok(compare(leaf.op, kind_of(ftype), &value, &leaf.value)),
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
