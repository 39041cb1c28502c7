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

mod evaluation;
mod relations;
mod row;
mod search;
mod values;

use evaluation::*;
use relations::*;
pub use row::*;

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
            (FieldType::Many2many(_), Value::Null) => json!([]),
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
        // Every row is checked before any is stored: a violated constraint changes nothing.
        let mut written = Vec::with_capacity(ids.len());
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
            self.recompute_row(&def, &mut row);
            row.insert("write_date", stamp.clone());
            row.insert("write_uid", uid_value.clone());
            super::actions::check_row(model, &row)?;
            written.push((*id, row));
        }
        if let Ok(table) = self.table_mut(model) {
            for (id, row) in written {
                table.rows.insert(id, row);
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
        // `(4, id)` / `(3, id)` change each record's own set: written record by record as
        // the absolute set it comes to
        let relative = vals.as_object().and_then(|m| {
            m.iter().find(|(k, v)| {
                matches!(
                    def.field(k).map(|f| &f.ftype),
                    Some(FieldType::Many2many(_))
                ) && values::m2m_is_relative(v)
            })
        });
        if let Some((name, value)) = relative {
            for id in ids {
                let old: Vec<i64> = self
                    .row(model, *id)
                    .and_then(|r| r.get(name.as_str()))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                let new = values::m2m_apply(&old, value).map_err(|_| {
                    OdooError::value_error(format!(
                        "Wrong value for {}.{}: {}",
                        def.name,
                        name,
                        py_repr(value)
                    ))
                })?;
                let mut one = vals.clone();
                one[name.as_str()] = json!([[6, 0, new]]);
                self.write(model, &[*id], &one, uid)?;
            }
            return Ok(());
        }
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
                FieldType::Many2many(comodel) => {
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
