//! Domain evaluation against rows: leaves compiled to their fields once, then paths,
//! many2one names and one2many children.

use super::*;

pub(crate) static NULL: Value = Value::Null;

/// A domain with its plain leaves resolved to their field once, so that
/// scanning a large table compares values without looking fields up.
pub(crate) enum Compiled<'a> {
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

pub(crate) fn compile<'a>(def: &ModelDef, tree: &'a Domain) -> Compiled<'a> {
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
    pub(crate) fn eval(&self, rec: &RecordRef<'_>) -> Result<bool, DomainError> {
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
pub(crate) fn id_bounds(tree: &Domain) -> (i64, i64) {
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
pub(crate) struct EvalCtx<'a> {
    pub(crate) store: &'a Store,
    pub(crate) children: RefCell<HashMap<(&'static str, &'static str), Rc<ChildIndex>>>,
}

impl EvalCtx<'_> {
    pub(crate) fn children(&self, comodel: &'static str, inverse: &'static str) -> Rc<ChildIndex> {
        self.children
            .borrow_mut()
            .entry((comodel, inverse))
            .or_insert_with(|| Rc::new(self.store.children_index(comodel, inverse)))
            .clone()
    }
}

/// One record seen by the domain evaluator.
pub(crate) struct RecordRef<'a> {
    pub(crate) ctx: &'a EvalCtx<'a>,
    pub(crate) def: &'a ModelDef,
    pub(crate) id: i64,
    pub(crate) row: &'a Row,
}

impl RecordRef<'_> {
    pub(crate) fn eval_path(&self, path: &str, leaf: &Leaf) -> Result<bool, DomainError> {
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
