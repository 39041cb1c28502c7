//! Seeded data: plausible records of any served model, created in one batch
//! (so they share one `create_date`/`write_date`, like a single Odoo import).
//!
//! Records that need others (an order needs a customer and products, a quant a
//! product) reuse existing ones and create a few when there are none.

use serde_json::{json, Map, Value};

use super::error::{OdooError, OdooResult};
use super::store::{datetime_value, Store};

/// What to seed.
#[derive(Debug, Clone, Default)]
pub struct SeedRequest {
    /// Model to seed.
    pub model: String,
    /// Number of records.
    pub count: usize,
    /// Values merged into every generated record (e.g. `{"active": false}`).
    pub values: Map<String, Value>,
    /// Backdates `create_date` and `write_date` of the new records (and their lines).
    pub write_date: Option<String>,
}

const JOBS: &[&str] = &[
    "Sales Manager",
    "Account Executive",
    "Developer",
    "Accountant",
    "Warehouse Operator",
];
const CITIES: &[&str] = &["Brussels", "Mumbai", "Lyon", "Austin", "Nairobi", "Osaka"];

/// The ids of up to `n` records of `model` (lowest ids first).
fn some_ids(store: &Store, model: &str, n: usize) -> OdooResult<Vec<i64>> {
    store.search(model, &json!([]), 0, Some(n), Some("id"), &Map::new())
}

/// Existing records of `model`, or `create` seeded ones when there are none.
fn ensure(store: &mut Store, model: &str, create: usize, uid: i64) -> OdooResult<Vec<i64>> {
    let ids = some_ids(store, model, 100)?;
    if !ids.is_empty() {
        return Ok(ids);
    }
    let req = SeedRequest {
        model: model.to_owned(),
        count: create,
        ..SeedRequest::default()
    };
    seed(store, &req, uid)
}

fn pick(ids: &[i64], k: usize) -> Value {
    ids.get(k % ids.len().max(1))
        .map_or(Value::Null, |id| json!(id))
}

/// Creates `req.count` records of `req.model`; returns their ids.
pub fn seed(store: &mut Store, req: &SeedRequest, uid: i64) -> OdooResult<Vec<i64>> {
    let model = req.model.as_str();
    let Some(def) = store.model(model) else {
        return Err(OdooError::key_error(model));
    };
    let has_name = def.field("name").is_some();
    let stamp = match &req.write_date {
        Some(s) => match datetime_value(s) {
            Value::Null => {
                return Err(OdooError::value_error(format!(
                    "write_date must look like 'YYYY-MM-DD HH:MM:SS', not {s:?}"
                )))
            }
            v => Some(v),
        },
        None => None,
    };
    let start = usize::try_from(store.next_id(model)).unwrap_or(1);
    let (partners, products, departments) = match model {
        "sale.order" | "account.move" => (
            ensure(store, "res.partner", 10, uid)?,
            ensure(store, "product.product", 10, uid)?,
            Vec::new(),
        ),
        "stock.quant" => (
            Vec::new(),
            ensure(store, "product.product", 10, uid)?,
            Vec::new(),
        ),
        "hr.employee" => (
            Vec::new(),
            Vec::new(),
            some_ids(store, "hr.department", 10)?,
        ),
        _ => (Vec::new(), Vec::new(), Vec::new()),
    };
    // A database without the Inventory app has no locations (and no quants to seed).
    let locations = if store.model("stock.location").is_some() {
        some_ids(store, "stock.location", 10)?
    } else {
        Vec::new()
    };
    let stock = locations
        .into_iter()
        .find(|id| {
            store
                .row("stock.location", *id)
                .and_then(|r| r.get("usage"))
                .is_some_and(|u| u == "internal")
        })
        .unwrap_or(1);
    let mut vals_list = Vec::with_capacity(req.count);
    for i in 0..req.count {
        let k = start + i;
        let mut vals = match model {
            "crm.lead" => json!({
                "name": format!("Seed lead {k}"),
                "partner_name": format!("Seed Company {k}"),
                "contact_name": format!("Seed Contact {k}"),
                "email_from": format!("seed{k}@example.com"),
                "phone": format!("+1 555 {:04}", k % 10_000),
                "expected_revenue": (k * 100) as f64,
                "priority": ((k % 4).to_string()),
            }),
            "res.partner" => json!({
                "name": format!("Seed Partner {k}"),
                "is_company": k % 3 == 0,
                "email": format!("partner{k}@example.com"),
                "phone": format!("+1 555 {:04}", k % 10_000),
                "city": CITIES[k % CITIES.len()],
                "customer_rank": 1,
            }),
            "product.product" => json!({
                "name": format!("Seed Product {k}"),
                "default_code": format!("SEED-{k:06}"),
                "list_price": 10.0 + (k % 100) as f64 * 1.5,
                "standard_price": 5.0 + (k % 100) as f64,
                "type": if k % 5 == 0 { "service" } else { "consu" },
            }),
            "sale.order" => json!({
                "partner_id": pick(&partners, k),
                "order_line": [
                    [0, 0, {"product_id": pick(&products, k), "product_uom_qty": (k % 5 + 1) as f64}],
                    [0, 0, {"product_id": pick(&products, k + 1), "product_uom_qty": 1.0}],
                ],
            }),
            "account.move" => json!({
                "move_type": "out_invoice",
                "partner_id": pick(&partners, k),
                "invoice_line_ids": [
                    [0, 0, {"product_id": pick(&products, k), "quantity": (k % 5 + 1) as f64}],
                ],
            }),
            "stock.quant" => json!({
                "product_id": pick(&products, k),
                "location_id": stock,
                "quantity": (k % 50 + 1) as f64,
            }),
            "hr.employee" => json!({
                "name": format!("Seed Employee {k}"),
                "work_email": format!("employee{k}@example.com"),
                "job_title": JOBS[k % JOBS.len()],
                "department_id": pick(&departments, k),
            }),
            _ if has_name => json!({"name": format!("Seed {model} {k}")}),
            _ => {
                return Err(OdooError::value_error(format!(
                    "model '{model}' has no name field"
                )))
            }
        };
        if let Value::Object(map) = &mut vals {
            for (key, value) in &req.values {
                map.insert(key.clone(), value.clone());
            }
        }
        vals_list.push(vals);
    }
    let ids = store.create(model, &vals_list, uid, &Map::new())?;
    if let Some(stamp) = stamp {
        backdate(store, model, &ids, &stamp);
    }
    Ok(ids)
}

/// Sets `create_date`/`write_date` of records and of their one2many lines.
fn backdate(store: &mut Store, model: &str, ids: &[i64], stamp: &Value) {
    let lines: Vec<(&'static str, &'static str)> = store
        .model(model)
        .map(|d| {
            d.fields
                .iter()
                .filter_map(|f| match f.ftype {
                    super::models::FieldType::One2many(co, inv) => Some((co, inv)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for id in ids {
        store.set_raw(model, *id, "create_date", stamp.clone());
        store.set_raw(model, *id, "write_date", stamp.clone());
    }
    for (comodel, inverse) in lines {
        let index = store.children_index(comodel, inverse);
        for id in ids {
            for child in index.get(id).cloned().unwrap_or_default() {
                store.set_raw(comodel, child, "create_date", stamp.clone());
                store.set_raw(comodel, child, "write_date", stamp.clone());
            }
        }
    }
}

/// Parses `BAC_SANDBOX_ODOO_SEED`: `crm.lead=1000,res.partner=100`.
pub fn parse_seed_spec(spec: &str) -> Result<Vec<(String, u64)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (model, count) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not model=count"))?;
            let count = count
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("'{part}': the count must be a number"))?;
            Ok((model.trim().to_owned(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spec() {
        assert_eq!(
            parse_seed_spec("crm.lead=1000, res.partner=100,").unwrap(),
            vec![
                ("crm.lead".to_owned(), 1000),
                ("res.partner".to_owned(), 100)
            ]
        );
        assert!(parse_seed_spec("crm.lead").is_err());
        assert!(parse_seed_spec("crm.lead=x").is_err());
        assert!(parse_seed_spec("").unwrap().is_empty());
    }
}
