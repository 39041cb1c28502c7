//! Values as Odoo takes them: conversion of client values, defaults, required fields,
//! related and computed values, and the row a create builds.

use super::*;

impl Store {
    /// Odoo's `convert_to_cache` for a client-provided value.
    pub(crate) fn convert(
        &self,
        def: &ModelDef,
        field: &FieldDef,
        value: &Value,
    ) -> OdooResult<Value> {
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
            FieldType::Many2many(comodel) => {
                let ids = m2m_apply(&[], value).map_err(|_| wrong())?;
                if let Some(bad) = ids.iter().find(|id| !self.contains(comodel, **id)) {
                    return Err(OdooError::new(
                        "psycopg2.errors.ForeignKeyViolation",
                        format!(
                            "insert or update on table \"{0}_{1}_rel\" violates foreign key constraint \"{0}_{1}_rel_{1}_id_fkey\"\nDETAIL:  Key ({1}_id)=({bad}) is not present in table \"{1}\".\n",
                            def.name.replace('.', "_"),
                            comodel.replace('.', "_"),
                        ),
                    ));
                }
                json!(ids)
            }
        })
    }

    pub(crate) fn required_error(def: &ModelDef, field: &FieldDef) -> OdooError {
        OdooError::validation(format!(
            "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n\
             - Delete: another model requires the record being deleted. If possible, archive it \
             instead.\n\nModel: {} ({}), Field: {} ({})",
            def.description, def.name, field.string, field.name
        ))
    }

    pub(crate) fn is_missing_required(field: &FieldDef, v: &Value) -> bool {
        field.required
            && match v {
                Value::Null => true,
                Value::String(s) => s.trim().is_empty(),
                _ => false,
            }
    }

    /// Converts client values for `create`/`write` (unknown fields -> ValueError).
    /// One2many values are parsed into commands and returned aside.
    pub(crate) fn prepare_vals(
        &self,
        def: &ModelDef,
        vals: &Value,
    ) -> OdooResult<(Row, Vec<FieldCommands>)> {
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
    pub(crate) fn default_per_record(field: &FieldDef) -> bool {
        matches!(field.default, Default::Related(..) | Default::Sequence(..))
            || field.compute.is_some()
            || matches!(field.ftype, FieldType::One2many(..))
    }

    pub(crate) fn default_value(
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
    pub(crate) fn batch_defaults(
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
    pub(crate) fn related_value(
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

    /// A line's taxes from the `account.tax` records its `taxes` many2many names: percent
    /// taxes on the base, fixed ones per unit; prices are taken tax-excluded
    /// (`price_include` is not served).
    fn taxes_on(&self, row: &Row, base: f64, taxes: &str, quantity: &str) -> f64 {
        let qty = as_f64(row.get(quantity));
        row.get(taxes)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .filter_map(|id| self.row("account.tax", id))
            .map(|t| {
                let amount = as_f64(t.get("amount"));
                match t.get("amount_type").and_then(Value::as_str) {
                    Some("fixed") => amount * qty,
                    _ => base * amount / 100.0,
                }
            })
            .sum()
    }

    /// Stored computed fields of the record itself, in field order (a line's total with
    /// taxes comes after its subtotal); the sums over one2many are the parents' business.
    pub(crate) fn recompute_row(&self, def: &ModelDef, row: &mut Row) {
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
                Some(Compute::WithTaxes(base, taxes, quantity)) => {
                    let base = as_f64(row.get(base));
                    let v = round_money(base + self.taxes_on(row, base, taxes, quantity));
                    row.insert(field.name, json!(v));
                }
                Some(Compute::Sum(..) | Compute::Diff(..)) => {
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
    pub(crate) fn build_row(
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
        self.recompute_row(def, &mut row);
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
        crate::actions::check_row(def.name, &row)?;
        let x2m = commands
            .into_iter()
            .map(|(field, cmds)| self.prepare_x2m(def, field, cmds, uid, context, now))
            .collect::<OdooResult<Vec<_>>>()?;
        Ok((row.canonical(def), x2m))
    }
}

/// Applies a many2many value as Odoo reads it to the ids `old`: a list of ids, or commands
/// `(6, 0, ids)` (set), `(5,)` (clear), `(4, id)` (link), `(3, id)` (unlink). Creating or
/// changing the related records through the field (`0`, `1`, `2`) is not served.
pub(crate) fn m2m_apply(old: &[i64], value: &Value) -> Result<Vec<i64>, ()> {
    let mut ids: Vec<i64> = old.to_vec();
    let items = match value {
        Value::Null | Value::Bool(false) => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(()),
    };
    if items.iter().all(Value::is_i64) {
        return Ok(dedup(items.iter().filter_map(Value::as_i64).collect()));
    }
    for item in items {
        let Value::Array(cmd) = item else {
            return Err(());
        };
        let id = || cmd.get(1).and_then(Value::as_i64).ok_or(());
        match cmd.first().and_then(Value::as_i64) {
            Some(6) => {
                let Some(Value::Array(new)) = cmd.get(2) else {
                    return Err(());
                };
                ids = new
                    .iter()
                    .map(|v| v.as_i64().ok_or(()))
                    .collect::<Result<_, _>>()?;
            }
            Some(5) => ids.clear(),
            Some(4) => ids.push(id()?),
            Some(3) => {
                let gone = id()?;
                ids.retain(|i| *i != gone);
            }
            _ => return Err(()),
        }
    }
    Ok(dedup(ids))
}

/// Whether a many2many value changes the ids relative to what they were (`(4,)`, `(3,)`).
pub(crate) fn m2m_is_relative(value: &Value) -> bool {
    value.as_array().is_some_and(|items| {
        items.iter().any(|c| {
            matches!(
                c.as_array().and_then(|c| c.first()).and_then(Value::as_i64),
                Some(3 | 4)
            )
        })
    })
}

fn dedup(ids: Vec<i64>) -> Vec<i64> {
    let mut seen = std::collections::BTreeSet::new();
    ids.into_iter().filter(|i| seen.insert(*i)).collect()
}
