//! One2many commands (`(0, 0, vals)`...), their checks and application, parents and the
//! stored sums they recompute.

use super::*;

/// A one2many command as sent by clients (`odoo.fields.Command`).
#[derive(Debug, Clone)]
pub(crate) enum Command {
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
pub(crate) type FieldCommands = (&'static str, Vec<Command>);

/// A validated one2many command, ready to apply without failing.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
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
pub(crate) struct X2m {
    pub(crate) comodel: &'static str,
    pub(crate) inverse: &'static str,
    pub(crate) commands: Vec<Prepared>,
}

/// Parent id -> child ids of one one2many (children in the comodel's order).
pub(crate) type ChildIndex = HashMap<i64, Vec<i64>>;

/// Records by model (parents whose stored sums need recomputing).
pub(crate) type Parents = BTreeMap<&'static str, BTreeSet<i64>>;

pub(crate) fn merge(into: &mut Parents, from: Parents) {
    for (model, ids) in from {
        into.entry(model).or_default().extend(ids);
    }
}

impl Store {
    /// Validates the commands of one one2many field before anything is changed.
    pub(crate) fn prepare_x2m(
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
    pub(crate) fn apply_x2m(
        &mut self,
        parent: i64,
        x2m: &X2m,
        uid: i64,
        now: &str,
    ) -> OdooResult<Parents> {
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

    /// The model whose one2many has `inverse` (a many2one of `child`) as inverse.
    pub(crate) fn parent_model(&self, child: &str, inverse: &str) -> Option<&'static str> {
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
    pub(crate) fn parents_of(&self, child: &str, ids: &[i64]) -> Parents {
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
    pub(crate) fn recompute_sums(&mut self, parents: &Parents) {
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
                            // differences of the sums (amount_tax = total - untaxed)
                            for field in &pdef.fields {
                                if let Some(Compute::Diff(a, b)) = field.compute {
                                    let v = as_f64(row.get(a)) - as_f64(row.get(b));
                                    row.insert(field.name, json!(round_money(v)));
                                }
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
}

/// Parses a one2many value: a list of commands, or a list of ids (`SET`).
pub(crate) fn parse_commands(
    def: &ModelDef,
    field: &FieldDef,
    value: &Value,
) -> OdooResult<Vec<Command>> {
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
