//! `search`: domain checks, `order` specifications and sorting.

use super::*;

/// One sort criterion of an `order` specification.
#[derive(Debug, Clone)]
pub(crate) struct OrderTerm {
    pub(crate) field: &'static str,
    pub(crate) desc: bool,
    pub(crate) nulls_first: bool,
}

/// A sort key of one record for one term (borrowed from the row: no copies).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SortKey<'a> {
    Null,
    /// Numbers (and datetimes) are copied: sorting never goes back to the rows.
    Num(f64),
    Val(&'a Value),
    Rank(usize),
    Id(i64),
}

pub(crate) fn sort_key_cmp(a: &SortKey<'_>, b: &SortKey<'_>) -> Ordering {
    match (a, b) {
        (SortKey::Num(x), SortKey::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortKey::Val(x), SortKey::Val(y)) => values_cmp(x, y).unwrap_or(Ordering::Equal),
        (SortKey::Rank(x), SortKey::Rank(y)) => x.cmp(y),
        (SortKey::Id(x), SortKey::Id(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

impl Store {
    /// Checks that every field path of the domain exists (Odoo validates before querying).
    pub(crate) fn check_path(&self, def: &ModelDef, path: &str, leaf: &Leaf) -> OdooResult<()> {
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
    pub(crate) fn path_field<'d>(&'d self, def: &'d ModelDef, path: &str) -> Option<&'d FieldDef> {
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
    pub(crate) fn normalize_leaves(&self, def: &ModelDef, tree: &mut Domain) {
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

    pub(crate) fn parse_order(&self, def: &ModelDef, spec: &str) -> OdooResult<Vec<OrderTerm>> {
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
    pub(crate) fn sorted_ids(
        &self,
        model: &str,
        order: Option<&str>,
        depth: usize,
    ) -> OdooResult<Vec<i64>> {
        let table = self.table(model)?;
        let terms = self.parse_order(&table.def, order.unwrap_or(table.def.order))?;
        let rows: Vec<(i64, &Row)> = table.rows.iter().map(|(id, row)| (*id, row)).collect();
        Ok(self.sort_ids(&table.def, rows, &terms, depth, 0, None))
    }

    /// Sorts `ids` by `terms` (then id) and applies `offset`/`limit`. Sort keys are
    /// computed once per record and only the first `offset + limit` records are
    /// fully sorted, so a page of a large table costs a linear pass.
    pub(crate) fn sort_ids(
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
    pub(crate) fn name_match_ids(&self, comodel: &str, op: Operator, value: &Value) -> Vec<i64> {
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
}
