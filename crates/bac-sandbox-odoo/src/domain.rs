//! Odoo search domains: parsing (exactly like `odoo.osv.expression.normalize_domain`)
//! and in-memory evaluation with the same semantics as the SQL Odoo generates.
//!
//! A domain is a JSON list of terms `[field, operator, value]` and the prefix
//! operators `"&"`, `"|"` (arity 2) and `"!"` (arity 1), in Polish notation, with
//! an implicit `"&"` between consecutive expressions. `[1, "=", 1]` and
//! `[0, "=", 1]` are the constant true and false leaves.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::{py_repr, py_tuple_repr};

/// A comparison operator of a domain leaf (after Odoo's `normalize_leaf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Eq,
    /// `!=` (and its alias `<>`)
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `like`: case-sensitive substring match (`%value%`).
    Like,
    /// `ilike`: case-insensitive substring match.
    ILike,
    /// `not like`
    NotLike,
    /// `not ilike`
    NotILike,
    /// `=like`: SQL `LIKE` pattern as given (`%` and `_` wildcards).
    EqLike,
    /// `=ilike`: case-insensitive `=like`.
    EqILike,
    /// `in`
    In,
    /// `not in`
    NotIn,
}

impl Operator {
    /// The operator as written in a domain.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Like => "like",
            Self::ILike => "ilike",
            Self::NotLike => "not like",
            Self::NotILike => "not ilike",
            Self::EqLike => "=like",
            Self::EqILike => "=ilike",
            Self::In => "in",
            Self::NotIn => "not in",
        }
    }

    fn from_str(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" | "<>" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "like" => Self::Like,
            "ilike" => Self::ILike,
            "not like" => Self::NotLike,
            "not ilike" => Self::NotILike,
            "=like" => Self::EqLike,
            "=ilike" => Self::EqILike,
            "in" => Self::In,
            "not in" => Self::NotIn,
            _ => return None,
        })
    }

    /// Negative operators also match records whose field is NULL (as in Odoo's SQL).
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            Self::Ne | Self::NotLike | Self::NotILike | Self::NotIn
        )
    }

    /// The positive counterpart of a negative operator (`not in` -> `in`...).
    pub fn positive(self) -> Self {
        match self {
            Self::Ne => Self::Eq,
            Self::NotLike => Self::Like,
            Self::NotILike => Self::ILike,
            Self::NotIn => Self::In,
            other => other,
        }
    }
}

/// Operators Odoo accepts in a leaf (`TERM_OPERATORS` plus `<>`).
const ODOO_TERM_OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<>",
    "<=",
    "<",
    ">",
    ">=",
    "=?",
    "=like",
    "=ilike",
    "like",
    "not like",
    "ilike",
    "not ilike",
    "in",
    "not in",
    "child_of",
    "parent_of",
    "any",
    "not any",
];

/// One `[field, operator, value]` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// Field name, possibly a dotted path through many2one fields (`stage_id.name`).
    pub field: String,
    /// Normalized operator.
    pub op: Operator,
    /// Right operand as sent by the client.
    pub value: Value,
    /// The leaf as received (for error messages).
    pub raw: Vec<Value>,
}

impl Leaf {
    /// Python `repr()` of the leaf as a tuple, as Odoo prints it in errors.
    pub fn repr(&self) -> String {
        py_tuple_repr(&self.raw)
    }
}

/// A parsed domain expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// `(1, '=', 1)` (true) or `(0, '=', 1)` (false).
    Const(bool),
    /// A condition on a field.
    Leaf(Leaf),
    /// `'!'`
    Not(Box<Domain>),
    /// `'&'`
    And(Box<Domain>, Box<Domain>),
    /// `'|'`
    Or(Box<Domain>, Box<Domain>),
}

/// A malformed domain; Odoo raises `ValueError` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

/// A token of a normalized domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// `'&'`
    And,
    /// `'|'`
    Or,
    /// `'!'`
    Not,
    /// Anything else: a term (normally a 3-item list), validated by [`parse`].
    Term(Value),
}

/// Odoo's `expression.normalize_domain`: makes the implicit `'&'` explicit and
/// checks that the operator arities add up. An empty domain is `[TRUE_LEAF]`.
pub fn normalize(domain: &Value) -> Result<Vec<Token>, DomainError> {
    let items = match domain {
        Value::Array(items) => items,
        other => {
            return Err(DomainError(format!(
                "Domains to normalize must have a 'domain' form: a list or tuple of domain \
                 components, got {}",
                py_repr(other)
            )))
        }
    };
    if items.is_empty() {
        return Ok(vec![Token::Term(serde_json::json!([1, "=", 1]))]);
    }
    let mut result: Vec<Token> = Vec::with_capacity(items.len() + 2);
    let mut expected: i64 = 1;
    for item in items {
        if expected == 0 {
            // more expressions than expected, like in [A, B]: put an extra '&' in front
            result.insert(0, Token::And);
            expected = 1;
        }
        let token = match item {
            Value::String(s) if s == "&" => Token::And,
            Value::String(s) if s == "|" => Token::Or,
            Value::String(s) if s == "!" => Token::Not,
            other => Token::Term(other.clone()),
        };
        expected += match token {
            Token::And | Token::Or => 1,
            Token::Not => 0,
            Token::Term(_) => -1,
        };
        result.push(token);
    }
    if expected != 0 {
        return Err(DomainError(format!(
            "Domain {} is syntactically not correct.",
            py_repr(domain)
        )));
    }
    Ok(result)
}

/// Parses a domain (JSON list) into a [`Domain`] tree, validating every leaf.
pub fn parse(domain: &Value) -> Result<Domain, DomainError> {
    let tokens = normalize(domain)?;
    let mut pos = 0;
    let tree = parse_expr(&tokens, &mut pos, domain)?;
    if pos != tokens.len() {
        return Err(DomainError(format!(
            "Domain {} is syntactically not correct.",
            py_repr(domain)
        )));
    }
    Ok(tree)
}

fn parse_expr(tokens: &[Token], pos: &mut usize, domain: &Value) -> Result<Domain, DomainError> {
    let Some(token) = tokens.get(*pos) else {
        return Err(DomainError(format!(
            "Domain {} is syntactically not correct.",
            py_repr(domain)
        )));
    };
    *pos += 1;
    Ok(match token {
        Token::And => {
            let a = parse_expr(tokens, pos, domain)?;
            let b = parse_expr(tokens, pos, domain)?;
            Domain::And(Box::new(a), Box::new(b))
        }
        Token::Or => {
            let a = parse_expr(tokens, pos, domain)?;
            let b = parse_expr(tokens, pos, domain)?;
            Domain::Or(Box::new(a), Box::new(b))
        }
        Token::Not => Domain::Not(Box::new(parse_expr(tokens, pos, domain)?)),
        Token::Term(term) => parse_leaf(term)?,
    })
}

fn is_number(v: &Value, n: f64) -> bool {
    match v {
        Value::Number(x) => x.as_f64() == Some(n),
        Value::Bool(b) => f64::from(u8::from(*b)) == n,
        _ => false,
    }
}

fn parse_leaf(term: &Value) -> Result<Domain, DomainError> {
    let items = match term {
        Value::Array(items) if items.len() == 3 => items,
        Value::Array(items) => {
            return Err(DomainError(format!(
                "Invalid leaf {}",
                py_tuple_repr(items)
            )))
        }
        other => return Err(DomainError(format!("Invalid leaf {}", py_repr(other)))),
    };
    let invalid = || DomainError(format!("Invalid leaf {}", py_tuple_repr(items)));
    let op_str = items[1].as_str().ok_or_else(invalid)?;
    if !ODOO_TERM_OPERATORS.contains(&op_str) {
        return Err(invalid());
    }
    let field = match &items[0] {
        Value::String(s) if !s.is_empty() => s.clone(),
        left if op_str == "=" && is_number(&items[2], 1.0) && is_number(left, 1.0) => {
            return Ok(Domain::Const(true))
        }
        left if op_str == "=" && is_number(&items[2], 1.0) && is_number(left, 0.0) => {
            return Ok(Domain::Const(false))
        }
        _ => return Err(invalid()),
    };
    let mut value = items[2].clone();
    // `=?` is "unset or equals": a false/None right operand makes the leaf TRUE.
    if op_str == "=?" {
        if matches!(value, Value::Null | Value::Bool(false)) {
            return Ok(Domain::Const(true));
        }
        return Ok(Domain::Leaf(Leaf {
            field,
            op: Operator::Eq,
            value,
            raw: items.clone(),
        }));
    }
    let Some(mut op) = Operator::from_str(op_str) else {
        return Err(DomainError(format!(
            "Operator {} is not supported by bac-sandbox in leaf {}",
            py_repr(&items[1]),
            py_tuple_repr(items)
        )));
    };
    // odoo.osv.expression.normalize_leaf
    match (&value, op) {
        (Value::Bool(_), Operator::In) => op = Operator::Eq,
        (Value::Bool(_), Operator::NotIn) => op = Operator::Ne,
        (Value::Array(_), Operator::Eq) => op = Operator::In,
        (Value::Array(_), Operator::Ne) => op = Operator::NotIn,
        _ => {}
    }
    // a scalar with `in` behaves as `=`
    if matches!(op, Operator::In | Operator::NotIn) && !value.is_array() {
        value = Value::Array(vec![value]);
    }
    Ok(Domain::Leaf(Leaf {
        field,
        op,
        value,
        raw: items.clone(),
    }))
}

/// Evaluates single leaves against one record; implemented by the record store.
pub trait LeafEval {
    /// Whether the record satisfies `leaf`; `Err` for an invalid field.
    fn eval_leaf(&self, leaf: &Leaf) -> Result<bool, DomainError>;
}

impl Domain {
    /// Evaluates the domain against one record.
    pub fn eval<E: LeafEval + ?Sized>(&self, rec: &E) -> Result<bool, DomainError> {
        Ok(match self {
            Self::Const(b) => *b,
            Self::Leaf(leaf) => rec.eval_leaf(leaf)?,
            Self::Not(d) => !d.eval(rec)?,
            Self::And(a, b) => a.eval(rec)? && b.eval(rec)?,
            Self::Or(a, b) => a.eval(rec)? || b.eval(rec)?,
        })
    }

    /// All leaves of the tree (for validating field names up front).
    pub fn leaves(&self) -> Vec<&Leaf> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Leaf>) {
        match self {
            Self::Const(_) => {}
            Self::Leaf(l) => out.push(l),
            Self::Not(d) => d.collect(out),
            Self::And(a, b) | Self::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

/// How a stored value compares, derived from the field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Boolean fields: NULL is false.
    Boolean,
    /// char/text/html/selection/date(time): NULL or `""` is "not set".
    Text,
    /// integer/float/many2one/id.
    Number,
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn is_unset(kind: Kind, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => kind == Kind::Text && s.is_empty(),
        _ => false,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// SQL-like equality of a stored value and a domain operand.
pub fn values_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Number(_), _) | (_, Value::Number(_)) => {
            matches!((as_number(left), as_number(right)), (Some(a), Some(b)) if a == b)
        }
        (a, b) => a == b,
    }
}

/// SQL-like ordering of two non-NULL values (None when not comparable).
pub fn values_cmp(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => as_number(left)?.partial_cmp(&as_number(right)?),
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// SQL `LIKE` matching: `%` any sequence, `_` any one character, `\` escapes.
pub fn like_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if case_insensitive {
            s.chars().flat_map(char::to_lowercase).collect()
        } else {
            s.chars().collect()
        }
    };
    // Compile the pattern into tokens.
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let pchars = norm(pattern);
    let mut toks = Vec::with_capacity(pchars.len());
    let mut i = 0;
    while i < pchars.len() {
        match pchars[i] {
            '%' => toks.push(Tok::Any),
            '_' => toks.push(Tok::One),
            '\\' if i + 1 < pchars.len() => {
                i += 1;
                toks.push(Tok::Lit(pchars[i]));
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    let t = norm(text);
    // Iterative wildcard matching with backtracking on the last '%'.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match toks.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(Tok::One) => {
                ti += 1;
                pi += 1;
            }
            Some(Tok::Lit(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| matches!(t, Tok::Any))
}

/// Whether a stored value (`Null` when unset) satisfies `op value`, with the
/// semantics of the SQL Odoo generates (negative operators include NULLs,
/// `= False` means "not set", `in` with `False` includes NULLs...).
pub fn compare(op: Operator, kind: Kind, left: &Value, right: &Value) -> bool {
    if kind == Kind::Boolean {
        let l = truthy(left);
        return match op {
            Operator::Eq => l == truthy(right),
            Operator::Ne => l != truthy(right),
            Operator::In => list(right).iter().any(|r| truthy(r) == l),
            Operator::NotIn => !list(right).iter().any(|r| truthy(r) == l),
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => {
                ordered(op, u8::from(l).cmp(&u8::from(truthy(right))))
            }
            _ => compare(op, Kind::Text, &Value::String(l.to_string()), right),
        };
    }
    let unset = is_unset(kind, left);
    match op {
        Operator::Eq if is_false(right) => unset,
        Operator::Ne if is_false(right) => !unset,
        Operator::Eq => !left.is_null() && values_eq(left, right),
        Operator::Ne => left.is_null() || !values_eq(left, right),
        Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => {
            if left.is_null() || is_false(right) {
                return false;
            }
            values_cmp(left, right).is_some_and(|o| ordered(op, o))
        }
        Operator::In | Operator::NotIn => {
            let items = list(right);
            let with_false = items.iter().any(is_false);
            let hit = if unset {
                with_false
                    || (!left.is_null() && items.iter().any(|r| !is_false(r) && values_eq(left, r)))
            } else {
                items.iter().any(|r| !is_false(r) && values_eq(left, r))
            };
            if op == Operator::In {
                hit
            } else {
                !hit
            }
        }
        Operator::Like
        | Operator::ILike
        | Operator::NotLike
        | Operator::NotILike
        | Operator::EqLike
        | Operator::EqILike => {
            if is_false(right) {
                return if op.is_negative() { !unset } else { unset };
            }
            let Some(text) = as_text(left) else {
                // NULL: positive operators never match, negative ones always do
                return op.is_negative();
            };
            let needle = as_text(right).unwrap_or_default();
            let (pattern, ci) = match op {
                Operator::Like | Operator::NotLike => (format!("%{needle}%"), false),
                Operator::ILike | Operator::NotILike => (format!("%{needle}%"), true),
                Operator::EqLike => (needle, false),
                _ => (needle, true),
            };
            like_match(&pattern, &text, ci) != op.is_negative()
        }
    }
}

fn ordered(op: Operator, o: Ordering) -> bool {
    match op {
        Operator::Lt => o == Ordering::Less,
        Operator::Le => o != Ordering::Greater,
        Operator::Gt => o == Ordering::Greater,
        Operator::Ge => o != Ordering::Less,
        _ => false,
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    /// A flat record: field kinds are inferred from a fixed schema.
    struct Rec(Map<String, Value>);

    fn kind_of(field: &str) -> Option<Kind> {
        Some(match field {
            "id" | "revenue" | "stage_id" => Kind::Number,
            "active" => Kind::Boolean,
            "name" | "email" | "priority" | "city" => Kind::Text,
            _ => return None,
        })
    }

    impl LeafEval for Rec {
        fn eval_leaf(&self, leaf: &Leaf) -> Result<bool, DomainError> {
            let kind = kind_of(&leaf.field)
                .ok_or_else(|| DomainError(format!("Invalid field {}", leaf.field)))?;
            let left = self.0.get(&leaf.field).cloned().unwrap_or(Value::Null);
            Ok(compare(leaf.op, kind, &left, &leaf.value))
        }
    }

    fn rec(v: Value) -> Rec {
        match v {
            Value::Object(m) => Rec(m),
            _ => panic!("not an object"),
        }
    }

    fn records() -> Vec<Rec> {
        vec![
            rec(
                json!({"id": 1, "name": "Acme Corp", "email": "sales@acme.com", "revenue": 1000.0, "priority": "2", "active": true, "stage_id": 1, "city": "Paris"}),
            ),
            rec(
                json!({"id": 2, "name": "Globex", "email": null, "revenue": 250.5, "priority": "0", "active": true, "stage_id": 2, "city": ""}),
            ),
            rec(
                json!({"id": 3, "name": "Initech 100%", "email": "bill@initech.io", "revenue": 0.0, "priority": "3", "active": false, "stage_id": null, "city": "Austin"}),
            ),
            rec(
                json!({"id": 4, "name": "acme labs", "email": "info@ACME.com", "revenue": 99.0, "priority": "1", "active": null, "stage_id": 1}),
            ),
        ]
    }

    fn ids(domain: Value) -> Vec<i64> {
        let d = parse(&domain).unwrap();
        records()
            .iter()
            .filter(|r| d.eval(*r).unwrap())
            .map(|r| r.0["id"].as_i64().unwrap())
            .collect()
    }

    fn err(domain: Value) -> String {
        parse(&domain).unwrap_err().0
    }

    #[test]
    fn normalize_adds_implicit_and() {
        let n = normalize(&json!([["a", "=", 1], ["b", "=", 2], ["c", "=", 3]])).unwrap();
        assert_eq!(
            n,
            vec![
                Token::And,
                Token::And,
                Token::Term(json!(["a", "=", 1])),
                Token::Term(json!(["b", "=", 2])),
                Token::Term(json!(["c", "=", 3])),
            ]
        );
        // ['|', A, B, C] -> ['&', '|', A, B, C]
        let n = normalize(&json!(["|", ["a", "=", 1], ["b", "=", 2], ["c", "=", 3]])).unwrap();
        assert_eq!(n[0], Token::And);
        assert_eq!(n[1], Token::Or);
        // A, '!', B -> '&', A, '!', B
        let n = normalize(&json!([["a", "=", 1], "!", ["b", "=", 2]])).unwrap();
        assert_eq!(n[0], Token::And);
        assert_eq!(n[2], Token::Not);
    }

    #[test]
    fn normalize_empty_is_true_leaf() {
        assert_eq!(
            normalize(&json!([])).unwrap(),
            vec![Token::Term(json!([1, "=", 1]))]
        );
        assert_eq!(parse(&json!([])).unwrap(), Domain::Const(true));
        assert_eq!(ids(json!([])), vec![1, 2, 3, 4]);
    }

    #[test]
    fn normalize_rejects_bad_arity() {
        assert_eq!(
            err(json!(["|", ["name", "=", "x"]])),
            "Domain ['|', ['name', '=', 'x']] is syntactically not correct."
        );
        assert!(err(json!(["&"])).contains("syntactically not correct"));
        assert!(err(json!(["!"])).contains("syntactically not correct"));
        assert!(err(json!([["a", "=", 1], "|"])).contains("syntactically not correct"));
        assert!(err(json!("name")).contains("must have a 'domain' form"));
        assert!(err(json!({"name": 1})).contains("must have a 'domain' form"));
    }

    #[test]
    fn invalid_leaves() {
        assert_eq!(
            err(json!([["name", "==", "x"]])),
            "Invalid leaf ('name', '==', 'x')"
        );
        assert_eq!(err(json!([["name", "="]])), "Invalid leaf ('name', '=')");
        assert_eq!(err(json!([["", "=", 1]])), "Invalid leaf ('', '=', 1)");
        assert_eq!(err(json!([[5, "=", 1]])), "Invalid leaf (5, '=', 1)");
        assert_eq!(err(json!([[1, "=", 2]])), "Invalid leaf (1, '=', 2)");
        assert_eq!(err(json!(["name"])), "Invalid leaf 'name'");
        assert_eq!(err(json!([42])), "Invalid leaf 42");
        assert_eq!(
            err(json!([["name", 1, "x"]])),
            "Invalid leaf ('name', 1, 'x')"
        );
        assert!(err(json!([["parent_id", "child_of", 1]])).contains("not supported"));
    }

    #[test]
    fn constant_leaves() {
        assert_eq!(parse(&json!([[1, "=", 1]])).unwrap(), Domain::Const(true));
        assert_eq!(parse(&json!([[0, "=", 1]])).unwrap(), Domain::Const(false));
        assert_eq!(
            parse(&json!([[true, "=", 1]])).unwrap(),
            Domain::Const(true)
        );
        assert_eq!(ids(json!([[0, "=", 1]])), Vec::<i64>::new());
        assert_eq!(ids(json!(["|", [0, "=", 1], ["id", "=", 2]])), vec![2]);
        assert_eq!(ids(json!(["!", [0, "=", 1]])), vec![1, 2, 3, 4]);
    }

    #[test]
    fn polish_notation() {
        // (id = 1 OR id = 2) AND revenue > 500
        assert_eq!(
            ids(json!([
                "|",
                ["id", "=", 1],
                ["id", "=", 2],
                ["revenue", ">", 500]
            ])),
            vec![1]
        );
        // id = 1 OR (id = 2 AND revenue > 500)
        assert_eq!(
            ids(json!([
                "|",
                ["id", "=", 1],
                "&",
                ["id", "=", 2],
                ["revenue", ">", 500]
            ])),
            vec![1]
        );
        // '|', '&', A, B, '!', C
        assert_eq!(
            ids(json!([
                "|",
                "&",
                ["priority", "=", "2"],
                ["id", "=", 1],
                "!",
                ["id", "<", 4]
            ])),
            vec![1, 4]
        );
        assert_eq!(
            ids(json!(["!", "|", ["id", "=", 1], ["id", "=", 2]])),
            vec![3, 4]
        );
        assert_eq!(ids(json!(["!", "!", ["id", "=", 3]])), vec![3]);
        // implicit & of three terms
        assert_eq!(
            ids(json!([
                ["revenue", ">=", 99],
                ["revenue", "<=", 1000],
                ["priority", "!=", "2"]
            ])),
            vec![2, 4]
        );
        // '|' with three operands: ['|', '|', A, B, C]
        assert_eq!(
            ids(json!([
                "|",
                "|",
                ["id", "=", 1],
                ["id", "=", 2],
                ["id", "=", 3]
            ])),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn equality_and_false() {
        assert_eq!(ids(json!([["name", "=", "Globex"]])), vec![2]);
        assert_eq!(ids(json!([["name", "=", "globex"]])), Vec::<i64>::new());
        assert_eq!(ids(json!([["email", "=", false]])), vec![2]);
        assert_eq!(ids(json!([["email", "!=", false]])), vec![1, 3, 4]);
        // unset char (missing or "") counts as False
        assert_eq!(ids(json!([["city", "=", false]])), vec![2, 4]);
        // != value includes NULLs
        assert_eq!(ids(json!([["stage_id", "!=", 1]])), vec![2, 3]);
        assert_eq!(ids(json!([["stage_id", "=", false]])), vec![3]);
        assert_eq!(ids(json!([["stage_id", "<>", 1]])), vec![2, 3]);
        // numbers compare numerically across int/float
        assert_eq!(ids(json!([["revenue", "=", 1000]])), vec![1]);
        assert_eq!(ids(json!([["id", "=", 2.0]])), vec![2]);
    }

    #[test]
    fn booleans() {
        assert_eq!(ids(json!([["active", "=", true]])), vec![1, 2]);
        assert_eq!(ids(json!([["active", "=", false]])), vec![3, 4]);
        assert_eq!(ids(json!([["active", "!=", true]])), vec![3, 4]);
        assert_eq!(ids(json!([["active", "=", 1]])), vec![1, 2]);
        assert_eq!(
            ids(json!([["active", "in", [true, false]]])),
            vec![1, 2, 3, 4]
        );
        // `in` with a bool is normalized to `=`
        assert_eq!(ids(json!([["active", "in", true]])), vec![1, 2]);
        assert_eq!(ids(json!([["active", "not in", true]])), vec![3, 4]);
    }

    #[test]
    fn ordering_operators() {
        assert_eq!(ids(json!([["revenue", ">", 250.5]])), vec![1]);
        assert_eq!(ids(json!([["revenue", ">=", 250.5]])), vec![1, 2]);
        assert_eq!(ids(json!([["revenue", "<", 99]])), vec![3]);
        assert_eq!(ids(json!([["revenue", "<=", 99]])), vec![3, 4]);
        assert_eq!(ids(json!([["priority", ">", "1"]])), vec![1, 3]);
        // NULL never compares
        assert_eq!(ids(json!([["stage_id", "<", 5]])), vec![1, 2, 4]);
        assert_eq!(ids(json!([["stage_id", ">", false]])), Vec::<i64>::new());
        assert_eq!(ids(json!([["name", ">=", "I"]])), vec![3, 4]);
    }

    #[test]
    fn in_and_not_in() {
        assert_eq!(ids(json!([["id", "in", [1, 3]]])), vec![1, 3]);
        assert_eq!(ids(json!([["id", "in", []]])), Vec::<i64>::new());
        assert_eq!(ids(json!([["id", "not in", []]])), vec![1, 2, 3, 4]);
        assert_eq!(ids(json!([["id", "not in", [1, 3]]])), vec![2, 4]);
        // `=` with a list is normalized to `in`
        assert_eq!(ids(json!([["id", "=", [2, 4]]])), vec![2, 4]);
        assert_eq!(ids(json!([["id", "!=", [2, 4]]])), vec![1, 3]);
        // NULL handling
        assert_eq!(ids(json!([["stage_id", "in", [2]]])), vec![2]);
        assert_eq!(ids(json!([["stage_id", "in", [2, false]]])), vec![2, 3]);
        assert_eq!(ids(json!([["stage_id", "not in", [1]]])), vec![2, 3]);
        assert_eq!(ids(json!([["stage_id", "not in", [1, false]]])), vec![2]);
        assert_eq!(ids(json!([["priority", "in", ["0", "3"]]])), vec![2, 3]);
        // a scalar is accepted
        assert_eq!(ids(json!([["id", "in", 4]])), vec![4]);
    }

    #[test]
    fn like_family() {
        assert_eq!(ids(json!([["name", "like", "cme"]])), vec![1, 4]);
        assert_eq!(ids(json!([["name", "like", "Acme"]])), vec![1]);
        assert_eq!(ids(json!([["name", "ilike", "ACME"]])), vec![1, 4]);
        assert_eq!(ids(json!([["email", "ilike", "acme.com"]])), vec![1, 4]);
        assert_eq!(ids(json!([["email", "like", "acme.com"]])), vec![1]);
        // negative operators include NULLs
        assert_eq!(ids(json!([["email", "not ilike", "acme"]])), vec![2, 3]);
        assert_eq!(ids(json!([["email", "not like", "acme"]])), vec![2, 3, 4]);
        // =like / =ilike use the pattern as given
        assert_eq!(ids(json!([["name", "=like", "Acme%"]])), vec![1]);
        assert_eq!(ids(json!([["name", "=like", "acme"]])), Vec::<i64>::new());
        assert_eq!(ids(json!([["name", "=ilike", "acme%"]])), vec![1, 4]);
        assert_eq!(ids(json!([["name", "=ilike", "GLOBE_"]])), vec![2]);
        assert_eq!(ids(json!([["priority", "=like", "_"]])), vec![1, 2, 3, 4]);
        // wildcards in like values are not escaped (as in Odoo); \ escapes
        assert_eq!(ids(json!([["name", "like", "Initech 1_0"]])), vec![3]);
        assert_eq!(ids(json!([["name", "like", "100\\%"]])), vec![3]);
        assert_eq!(ids(json!([["name", "like", "1\\_0"]])), Vec::<i64>::new());
        // empty needle matches every set value
        assert_eq!(ids(json!([["email", "ilike", ""]])), vec![1, 3, 4]);
        // numbers are matched on their text
        assert_eq!(ids(json!([["revenue", "like", "250"]])), vec![2]);
    }

    #[test]
    fn or_with_ilike() {
        assert_eq!(
            ids(json!([
                "|",
                ["name", "ilike", "globex"],
                ["email", "ilike", "initech"]
            ])),
            vec![2, 3]
        );
    }

    #[test]
    fn eq_optional() {
        assert_eq!(
            parse(&json!([["name", "=?", false]])).unwrap(),
            Domain::Const(true)
        );
        assert_eq!(ids(json!([["name", "=?", "Globex"]])), vec![2]);
    }

    #[test]
    fn unknown_field_propagates() {
        let d = parse(&json!([["nope", "=", 1]])).unwrap();
        assert!(d.eval(&records()[0]).is_err());
        assert_eq!(d.leaves().len(), 1);
        assert_eq!(d.leaves()[0].repr(), "('nope', '=', 1)");
    }

    #[test]
    fn like_matcher() {
        assert!(like_match("%", "", false));
        assert!(like_match("a%c", "abbbc", false));
        assert!(like_match("a%c%", "abcxc", false));
        assert!(!like_match("a_c", "abbc", false));
        assert!(like_match("%ÉTÉ%", "un été chaud", true));
        assert!(like_match("%%%", "x", false));
        assert!(!like_match("abc", "ab", false));
        assert!(like_match("a\\%", "a%", false));
        assert!(!like_match("a\\%", "ab", false));
    }
}
