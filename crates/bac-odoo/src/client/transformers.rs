//! Odoo's wire types (JSON-RPC envelopes, JSON-2 errors, the records of `crm.lead`,
//! `sale.order`, `account.move`, `product.product`, `stock.quant`, `hr.employee`) and their
//! conversion to and from the platform's proto types. No I/O here.
use bac_proto::odoo::v1::{
    Employee, Invoice, InvoiceLine, Lead, Product, SaleOrder, SaleOrderLine, StockQuant,
    UpdateLeadRequest,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `POST /jsonrpc` body.
#[derive(Debug, Serialize)]
pub struct OdooRpcRequest<'a> {
    pub jsonrpc: &'static str,
    pub method: &'static str,
    pub params: OdooRpcParams<'a>,
    pub id: u64,
}

#[derive(Debug, Serialize)]
pub struct OdooRpcParams<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub args: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct OdooRpcResponse {
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<OdooError>,
}

/// Odoo's JSON-RPC error (`{"code":200,"message":"Odoo Server Error","data":{...}}`).
#[derive(Debug, Clone, Deserialize)]
pub struct OdooError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: Option<OdooErrorData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OdooErrorData {
    /// Python exception class, e.g. `odoo.exceptions.AccessDenied`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub message: String,
}

/// The error body of the JSON-2 API (`/json/2/...`, Odoo 19+), sent with a 4xx/5xx status:
/// `{"name": "odoo.exceptions.UserError", "message": "...", "arguments": [...], ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct OdooJson2Error {
    /// Python exception class (`werkzeug.exceptions.NotFound` for routing errors).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub message: String,
}

impl OdooJson2Error {
    /// The same classification as a JSON-RPC error, plus JSON-2's routing errors.
    pub fn fault(&self, status: u16) -> OdooFault {
        let msg = self.message.trim();
        if status == 401 {
            return OdooFault::ApiKeyRefused;
        }
        // A lock or serialization conflict: the transaction was rolled back, a retry may pass.
        if status == 409 {
            return OdooFault::Transient(format!("{}: {msg}", self.name));
        }
        if self.name == "werkzeug.exceptions.NotFound" {
            if let Some(model) = msg
                .strip_prefix("the model '")
                .and_then(|m| m.strip_suffix("' does not exist"))
            {
                return OdooFault::UnknownModel(model.to_string());
            }
            return OdooFault::Rejected(msg.to_string());
        }
        if self.name.starts_with("werkzeug.exceptions.") && (400..500).contains(&status) {
            return OdooFault::Rejected(msg.to_string());
        }
        OdooError {
            code: i64::from(status),
            message: msg.to_string(),
            data: Some(OdooErrorData {
                name: self.name.clone(),
                message: msg.to_string(),
            }),
        }
        .fault()
    }
}

/// Exception classes of failures the database had for now, whatever the protocol: over
/// `/jsonrpc` they come back as HTTP 200 with an error body, over JSON-2 as a 500 or a 409.
const TRANSIENT: &[&str] = &[
    "OperationalError",
    "SerializationFailure",
    "TransactionRollbackError",
    "LockNotAvailable",
    "DeadlockDetected",
    "ConcurrencyError",
    "InterfaceError",
];

/// What kind of failure an Odoo error is, decided by the exception class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OdooFault {
    /// `odoo.exceptions.AccessDenied`: the credentials (login, password, API key) are refused.
    AccessDenied,
    /// JSON-2's 401 "API key invalid or expired": Odoo 19's keys expire (three months at
    /// most).
    ApiKeyRefused,
    /// `odoo.exceptions.AccessError`: the user may not do this (no Sales, Inventory or HR
    /// rights, a record rule); Odoo's message names the model.
    Forbidden(String),
    /// The database failed the request for now (a lost connection, a serialization failure,
    /// a lock not available); Odoo rolled the transaction back and a retry may pass.
    Transient(String),
    /// `KeyError: 'crm.lead'`: the module providing the model is not installed.
    UnknownModel(String),
    /// Validation/User/Value errors: the request's data was refused; Odoo's message says why.
    Rejected(String),
    /// Record does not exist or has been deleted.
    Missing(String),
    UnknownDatabase(String),
    Other(String),
}

impl OdooError {
    pub fn fault(&self) -> OdooFault {
        let (name, msg) = match &self.data {
            Some(d) => (d.name.as_str(), d.message.clone()),
            None => ("", self.message.clone()),
        };
        let msg = msg.trim().to_string();
        if name.ends_with("AccessDenied") {
            OdooFault::AccessDenied
        } else if name.ends_with("AccessError") {
            OdooFault::Forbidden(msg)
        } else if msg.contains("does not exist") && msg.contains("database") {
            // An OperationalError too, but one no retry cures.
            OdooFault::UnknownDatabase(msg)
        } else if TRANSIENT.iter().any(|t| name.ends_with(t)) {
            OdooFault::Transient(format!("{name}: {msg}"))
        } else if name == "builtins.KeyError" {
            OdooFault::UnknownModel(msg.trim_matches('\'').to_string())
        } else if let Some(model) = msg
            .strip_prefix("Object ")
            .and_then(|m| m.strip_suffix(" doesn't exist"))
        {
            // What `/jsonrpc` execute_kw answers for a model whose app is not installed.
            OdooFault::UnknownModel(model.to_string())
        } else if name.ends_with("MissingError") {
            OdooFault::Missing(msg)
        } else if msg.contains("does not exist") && msg.contains("database") {
            OdooFault::UnknownDatabase(msg)
        } else if name.ends_with("ValidationError")
            || name.ends_with("UserError")
            || name.ends_with("ValueError")
            || name.ends_with("TypeError")
        {
            OdooFault::Rejected(msg)
        } else {
            OdooFault::Other(format!("{name}: {msg}"))
        }
    }
}

/// The `crm.lead` fields the platform reads.
pub const LEAD_FIELDS: &[&str] = &[
    "id",
    "name",
    "partner_name",
    "email_from",
    "phone",
    "expected_revenue",
    "priority",
    "create_date",
    "write_date",
];

/// Platform priority names and Odoo's selection keys ('0' Low .. '3' Very High).
const PRIORITIES: [(&str, &str); 4] = [
    ("low", "0"),
    ("medium", "1"),
    ("high", "2"),
    ("very_high", "3"),
];

pub fn priority_to_odoo(p: &str) -> Option<&'static str> {
    let p = p.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    if p.is_empty() {
        return Some("0");
    }
    PRIORITIES
        .iter()
        .find(|(name, key)| *name == p || *key == p)
        .map(|(_, key)| *key)
}

pub fn priority_from_odoo(key: &str) -> &'static str {
    PRIORITIES
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(n, _)| *n)
        .unwrap_or("low")
}

/// `vals` for `crm.lead.create` (the entity's create defaults are added by the caller, as for
/// every create: `sync::OdooEntity::create_defaults_into`). `priority` must already be
/// validated.
pub fn lead_to_vals(lead: &Lead) -> Value {
    let mut vals = json!({ "name": lead.name.trim() });
    let opt = |s: &str| (!s.trim().is_empty()).then(|| Value::String(s.trim().to_string()));
    if let Some(v) = opt(&lead.partner_name) {
        vals["partner_name"] = v;
    }
    if let Some(v) = opt(&lead.email) {
        vals["email_from"] = v;
    }
    if let Some(v) = opt(&lead.phone) {
        vals["phone"] = v;
    }
    vals["expected_revenue"] = json!(lead.expected_revenue);
    vals["priority"] = json!(priority_to_odoo(&lead.priority).unwrap_or("0"));
    vals
}

/// Odoo answers `false` for an empty field.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Odoo datetimes are naive UTC `YYYY-MM-DD HH:MM:SS`.
pub fn odoo_datetime(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc())
}

/// A `search_read` row of `crm.lead` as the platform's lead.
pub fn lead_from_record(rec: &Value, connection_id: &str) -> Option<Lead> {
    Some(Lead {
        id: rec.get("id")?.as_i64()?,
        name: text(&rec["name"]),
        partner_name: text(&rec["partner_name"]),
        email: text(&rec["email_from"]),
        phone: text(&rec["phone"]),
        expected_revenue: rec["expected_revenue"].as_f64().unwrap_or(0.0),
        priority: priority_from_odoo(rec["priority"].as_str().unwrap_or("0")).to_string(),
        connection_id: connection_id.to_string(),
        create_date: odoo_datetime(&rec["create_date"]).map(bac_runtime::connections::timestamp),
        write_date: odoo_datetime(&rec["write_date"]).map(bac_runtime::connections::timestamp),
    })
}

/// `vals` for `crm.lead.write` from the fields an update names (`priority` validated).
pub fn lead_patch_vals(req: &UpdateLeadRequest) -> Value {
    let mut vals = serde_json::Map::new();
    let mut text = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            let v = v.trim();
            vals.insert(
                key.to_string(),
                if v.is_empty() {
                    Value::Bool(false)
                } else {
                    json!(v)
                },
            );
        }
    };
    text("name", &req.name);
    text("partner_name", &req.partner_name);
    text("email_from", &req.email);
    text("phone", &req.phone);
    if let Some(r) = req.expected_revenue {
        vals.insert("expected_revenue".into(), json!(r));
    }
    if let Some(p) = &req.priority {
        vals.insert("priority".into(), json!(priority_to_odoo(p).unwrap_or("0")));
    }
    Value::Object(vals)
}

/// A many2one value: `[id, "display name"]`, or `false` when empty.
pub fn many2one(v: &Value) -> (i64, String) {
    match v.as_array().map(Vec::as_slice) {
        Some([id, name, ..]) => (id.as_i64().unwrap_or(0), text(name)),
        _ => (v.as_i64().unwrap_or(0), String::new()),
    }
}

fn ts(v: &Value) -> Option<pbjson_types::Timestamp> {
    odoo_datetime(v).map(bac_runtime::connections::timestamp)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The `res.partner` fields read back after the fleet creates a partner.
pub const PARTNER_FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "phone",
    "is_company",
    "ref",
    "create_date",
    "write_date",
];

/// The `sale.order` fields the platform reads.
pub const SALE_ORDER_FIELDS: &[&str] = &[
    "id",
    "name",
    "partner_id",
    "state",
    "date_order",
    "client_order_ref",
    "order_line",
    "amount_untaxed",
    "amount_tax",
    "amount_total",
    "create_date",
    "write_date",
];

pub const SALE_ORDER_LINE_FIELDS: &[&str] = &[
    "id",
    "order_id",
    "display_type",
    "product_id",
    "name",
    "product_uom_qty",
    "price_unit",
    "price_subtotal",
];

/// The `order_line` ids of `sale.order` rows.
pub fn order_line_ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().flat_map(|r| ids(&r["order_line"])).collect()
}

/// The `invoice_line_ids` of `account.move` rows.
pub fn invoice_line_ids(rows: &[Value]) -> Vec<i64> {
    rows.iter()
        .flat_map(|r| ids(&r["invoice_line_ids"]))
        .collect()
}

/// `vals` for `sale.order.create`; lines as one2many `(0, 0, vals)` commands.
pub fn sale_order_vals(partner_id: i64, lines: &[SaleOrderLine], note: &str) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| {
            if let Some(kind) = &l.display_type {
                // Odoo's non_accountable_null_fields: no product, quantity or price.
                return json!([0, 0, {
                    "display_type": kind,
                    "name": l.description.trim(),
                    "product_uom_qty": 0,
                    "price_unit": 0,
                }]);
            }
            let mut v = json!({ "product_uom_qty": l.quantity });
            if l.product_id > 0 {
                v["product_id"] = json!(l.product_id);
            }
            if !l.description.trim().is_empty() {
                v["name"] = json!(l.description.trim());
            }
            if let Some(p) = l.price_unit {
                v["price_unit"] = json!(p);
            }
            json!([0, 0, v])
        })
        .collect();
    let mut vals = json!({ "partner_id": partner_id, "order_line": lines });
    if !note.trim().is_empty() {
        vals["note"] = json!(note.trim());
    }
    vals
}

fn sale_order_line(r: &Value) -> SaleOrderLine {
    let (product_id, product_name) = many2one(&r["product_id"]);
    SaleOrderLine {
        id: r["id"].as_i64().unwrap_or(0),
        product_id,
        product_name,
        description: text(&r["name"]),
        quantity: num(&r["product_uom_qty"]),
        price_unit: Some(num(&r["price_unit"])),
        subtotal: num(&r["price_subtotal"]),
        display_type: r["display_type"].as_str().map(str::to_string),
    }
}

/// A `sale.order` row with the rows of its lines (any order; matched by `order_line`).
pub fn sale_order_from_record(
    rec: &Value,
    lines: &[Value],
    connection_id: &str,
) -> Option<SaleOrder> {
    let (partner_id, partner_name) = many2one(&rec["partner_id"]);
    let lines = ids(&rec["order_line"])
        .into_iter()
        .filter_map(|id| lines.iter().find(|l| l["id"].as_i64() == Some(id)))
        .map(sale_order_line)
        .collect();
    Some(SaleOrder {
        id: rec.get("id")?.as_i64()?,
        name: text(&rec["name"]),
        partner_id,
        partner_name,
        state: text(&rec["state"]),
        order_date: ts(&rec["date_order"]),
        client_reference: text(&rec["client_order_ref"]),
        lines,
        amount_untaxed: num(&rec["amount_untaxed"]),
        amount_tax: num(&rec["amount_tax"]),
        amount_total: num(&rec["amount_total"]),
        connection_id: connection_id.to_string(),
        create_date: ts(&rec["create_date"]),
        write_date: ts(&rec["write_date"]),
    })
}

/// The `account.move` fields the platform reads.
pub const INVOICE_FIELDS: &[&str] = &[
    "id",
    "name",
    "move_type",
    "partner_id",
    "state",
    "payment_state",
    "invoice_date",
    "invoice_date_due",
    "ref",
    "invoice_line_ids",
    "amount_untaxed",
    "amount_tax",
    "amount_total",
    "create_date",
    "write_date",
];

pub const INVOICE_LINE_FIELDS: &[&str] = &[
    "id",
    "move_id",
    "product_id",
    "name",
    "quantity",
    "price_unit",
    "price_subtotal",
    "tax_ids",
    // journal items have no price_tax: the tax is total minus subtotal
    "price_total",
];

/// `vals` for `account.move.create` of a customer invoice.
pub fn invoice_vals(
    partner_id: i64,
    lines: &[InvoiceLine],
    invoice_date: &str,
    due_date: &str,
) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut v = json!({ "quantity": l.quantity });
            if l.product_id > 0 {
                v["product_id"] = json!(l.product_id);
            }
            if !l.description.trim().is_empty() {
                v["name"] = json!(l.description.trim());
            }
            if let Some(p) = l.price_unit {
                v["price_unit"] = json!(p);
            }
            if !l.tax_ids.is_empty() {
                v["tax_ids"] = json!([[6, 0, l.tax_ids]]);
            }
            if !l.tax_ids.is_empty() {
                v["tax_ids"] = json!([[6, 0, l.tax_ids]]);
            }
            json!([0, 0, v])
        })
        .collect();
    let mut vals = json!({
        "move_type": "out_invoice",
        "partner_id": partner_id,
        "invoice_line_ids": lines,
    });
    if !invoice_date.is_empty() {
        vals["invoice_date"] = json!(invoice_date);
    }
    if !due_date.is_empty() {
        vals["invoice_date_due"] = json!(due_date);
    }
    vals
}

fn invoice_line(r: &Value) -> InvoiceLine {
    let (product_id, product_name) = many2one(&r["product_id"]);
    InvoiceLine {
        id: r["id"].as_i64().unwrap_or(0),
        product_id,
        product_name,
        description: text(&r["name"]),
        quantity: num(&r["quantity"]),
        price_unit: Some(num(&r["price_unit"])),
        subtotal: num(&r["price_subtotal"]),
        tax_ids: ids(&r["tax_ids"]),
        tax: ((num(&r["price_total"]) - num(&r["price_subtotal"])) * 100.0).round() / 100.0,
        total: num(&r["price_total"]),
    }
}

/// An `account.move` row with the rows of its invoice lines.
pub fn invoice_from_record(rec: &Value, lines: &[Value], connection_id: &str) -> Option<Invoice> {
    let (partner_id, partner_name) = many2one(&rec["partner_id"]);
    let lines = ids(&rec["invoice_line_ids"])
        .into_iter()
        .filter_map(|id| lines.iter().find(|l| l["id"].as_i64() == Some(id)))
        .map(invoice_line)
        .collect();
    Some(Invoice {
        id: rec.get("id")?.as_i64()?,
        number: text(&rec["name"]),
        partner_id,
        partner_name,
        state: text(&rec["state"]),
        payment_state: text(&rec["payment_state"]),
        invoice_date: text(&rec["invoice_date"]),
        due_date: text(&rec["invoice_date_due"]),
        reference: text(&rec["ref"]),
        lines,
        amount_untaxed: num(&rec["amount_untaxed"]),
        amount_tax: num(&rec["amount_tax"]),
        amount_total: num(&rec["amount_total"]),
        connection_id: connection_id.to_string(),
        create_date: ts(&rec["create_date"]),
        write_date: ts(&rec["write_date"]),
    })
}

/// The `product.product` fields read: 18 replaced the 'product' (storable) type by the
/// `is_storable` flag, which exists only where the Inventory app is installed (`storable`:
/// the database has it). (16 and 17 also have `detailed_type`, which mirrors `type`; we read
/// `type`, which every version has.)
pub fn product_fields(storable: bool) -> Vec<&'static str> {
    let mut f = vec![
        "id",
        "name",
        "default_code",
        "barcode",
        "list_price",
        "standard_price",
        "type",
        "sale_ok",
        "purchase_ok",
        "active",
        "write_date",
    ];
    if storable {
        f.push("is_storable");
    }
    f
}

/// A `product.product` row in the platform's words, whatever the version.
pub fn product_from_record(rec: &Value, connection_id: &str) -> Option<Product> {
    let ty = rec["type"].as_str().unwrap_or("consu");
    let (product_type, storable) = match ty {
        "service" => ("service", false),
        "combo" => ("combo", false),
        // Odoo 16-17: the storable product type
        "product" => ("goods", true),
        _ => ("goods", rec["is_storable"].as_bool().unwrap_or(false)),
    };
    Some(Product {
        id: rec.get("id")?.as_i64()?,
        name: text(&rec["name"]),
        internal_reference: text(&rec["default_code"]),
        barcode: text(&rec["barcode"]),
        sales_price: num(&rec["list_price"]),
        cost: num(&rec["standard_price"]),
        product_type: product_type.to_string(),
        storable,
        can_be_sold: rec["sale_ok"].as_bool().unwrap_or(false),
        can_be_purchased: rec["purchase_ok"].as_bool().unwrap_or(false),
        active: rec["active"].as_bool().unwrap_or(true),
        connection_id: connection_id.to_string(),
        write_date: ts(&rec["write_date"]),
    })
}

/// The `stock.quant` fields the platform reads.
pub const STOCK_QUANT_FIELDS: &[&str] = &[
    "id",
    "product_id",
    "location_id",
    "quantity",
    "reserved_quantity",
    "write_date",
];

pub fn stock_quant_from_record(rec: &Value, connection_id: &str) -> Option<StockQuant> {
    let (product_id, product_name) = many2one(&rec["product_id"]);
    let (location_id, location_name) = many2one(&rec["location_id"]);
    let quantity = num(&rec["quantity"]);
    let reserved = num(&rec["reserved_quantity"]);
    Some(StockQuant {
        id: rec.get("id")?.as_i64()?,
        product_id,
        product_name,
        location_id,
        location_name,
        quantity,
        reserved_quantity: reserved,
        available_quantity: quantity - reserved,
        connection_id: connection_id.to_string(),
        write_date: ts(&rec["write_date"]),
    })
}

/// The `hr.employee` fields the platform reads.
pub const EMPLOYEE_FIELDS: &[&str] = &[
    "id",
    "name",
    "job_title",
    "work_email",
    "work_phone",
    "department_id",
    "parent_id",
    "write_date",
];

pub fn employee_from_record(rec: &Value, connection_id: &str) -> Option<Employee> {
    let (department_id, department_name) = many2one(&rec["department_id"]);
    let (manager_id, manager_name) = many2one(&rec["parent_id"]);
    Some(Employee {
        id: rec.get("id")?.as_i64()?,
        name: text(&rec["name"]),
        job_title: text(&rec["job_title"]),
        work_email: text(&rec["work_email"]),
        work_phone: text(&rec["work_phone"]),
        department_id,
        department_name,
        manager_id,
        manager_name,
        connection_id: connection_id.to_string(),
        write_date: ts(&rec["write_date"]),
    })
}

/// The platform entity (topic `bac.odoo.<entity>.v1`) of a synced Odoo model, and the fields
/// read back after the fleet writes one through `ExecuteKw`.
pub fn entity_of(model: &str) -> Option<(&'static str, Vec<&'static str>)> {
    Some(match model {
        "crm.lead" => ("crm_lead", LEAD_FIELDS.to_vec()),
        "res.partner" => ("partner", PARTNER_FIELDS.to_vec()),
        "sale.order" => ("sale_order", SALE_ORDER_FIELDS.to_vec()),
        "account.move" => ("invoice", INVOICE_FIELDS.to_vec()),
        "product.product" => ("product", product_fields(false)),
        "stock.quant" => ("stock_quant", STOCK_QUANT_FIELDS.to_vec()),
        "hr.employee" => ("employee", EMPLOYEE_FIELDS.to_vec()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_map_both_ways() {
        assert_eq!(priority_to_odoo("high"), Some("2"));
        assert_eq!(priority_to_odoo("Very High"), Some("3"));
        assert_eq!(priority_to_odoo(""), Some("0"));
        assert_eq!(priority_to_odoo("urgent"), None);
        assert_eq!(priority_from_odoo("1"), "medium");
    }

    #[test]
    fn record_becomes_lead_with_false_as_empty() {
        let rec = json!({"id": 7, "name": "Deal", "partner_name": false, "email_from": "a@b.c",
            "phone": false, "expected_revenue": 50000.0, "priority": "2",
            "create_date": "2024-08-29 10:30:00", "write_date": "2024-08-29 10:31:00"});
        let lead = lead_from_record(&rec, "con_1").unwrap();
        assert_eq!(lead.id, 7);
        assert_eq!(lead.partner_name, "");
        assert_eq!(lead.priority, "high");
        assert_eq!(lead.write_date.unwrap().seconds, 1_724_927_460);
    }

    #[test]
    fn products_read_the_same_across_versions() {
        let v17 = json!({"id": 1, "name": "Desk", "type": "product", "default_code": "D1",
            "list_price": 250.0, "sale_ok": true, "purchase_ok": false, "active": true});
        let p = product_from_record(&v17, "c").unwrap();
        assert_eq!((p.product_type.as_str(), p.storable), ("goods", true));
        let v18 = json!({"id": 1, "name": "Desk", "type": "consu", "is_storable": true});
        let p = product_from_record(&v18, "c").unwrap();
        assert_eq!((p.product_type.as_str(), p.storable), ("goods", true));
        let svc = json!({"id": 2, "name": "Support", "type": "service", "barcode": false});
        let p = product_from_record(&svc, "c").unwrap();
        assert_eq!(
            (p.product_type.as_str(), p.storable, p.barcode.as_str()),
            ("service", false, "")
        );
        assert!(product_fields(true).contains(&"is_storable"));
        assert!(!product_fields(false).contains(&"is_storable"));
    }

    #[test]
    fn orders_carry_their_lines_in_odoo_order() {
        let order = json!({"id": 5, "name": "S00005", "partner_id": [3, "Acme"], "state": "draft",
            "order_line": [11, 10], "amount_total": 90.0, "client_order_ref": false,
            "date_order": "2024-08-29 10:30:00"});
        let lines = [
            json!({"id": 10, "product_id": [1, "Chair"], "name": "Chair", "product_uom_qty": 2.0,
                "price_unit": 40.0, "price_subtotal": 80.0}),
            json!({"id": 11, "product_id": false, "name": "Delivery", "product_uom_qty": 1.0,
                "price_unit": 10.0, "price_subtotal": 10.0}),
        ];
        let o = sale_order_from_record(&order, &lines, "c").unwrap();
        assert_eq!((o.partner_id, o.partner_name.as_str()), (3, "Acme"));
        assert_eq!(o.lines.len(), 2);
        assert_eq!(o.lines[0].description, "Delivery");
        assert_eq!(o.lines[0].product_id, 0);
        assert_eq!(o.lines[1].price_unit, Some(40.0));
        let vals = sale_order_vals(3, &o.lines, "");
        assert_eq!(
            vals["order_line"][1],
            json!([0, 0, {"product_id": 1, "name": "Chair",
            "product_uom_qty": 2.0, "price_unit": 40.0}])
        );
        assert!(vals.get("note").is_none());
    }

    #[test]
    fn lead_updates_send_only_named_fields() {
        let req = UpdateLeadRequest {
            name: Some(" Renamed ".into()),
            phone: Some(String::new()),
            priority: Some("very_high".into()),
            ..Default::default()
        };
        assert_eq!(
            lead_patch_vals(&req),
            json!({"name": "Renamed", "phone": false, "priority": "3"})
        );
    }

    #[test]
    fn json2_errors_map_to_the_same_faults() {
        let e = |name: &str, message: &str| OdooJson2Error {
            name: name.into(),
            message: message.into(),
        };
        assert_eq!(
            e("werkzeug.exceptions.Unauthorized", "Invalid apikey").fault(401),
            OdooFault::ApiKeyRefused
        );
        assert_eq!(
            e(
                "werkzeug.exceptions.NotFound",
                "the model 'x.y' does not exist"
            )
            .fault(404),
            OdooFault::UnknownModel("x.y".into())
        );
        assert!(matches!(
            e("odoo.exceptions.ValidationError", "bad").fault(422),
            OdooFault::Rejected(_)
        ));
        assert!(matches!(
            e("odoo.exceptions.MissingError", "gone").fault(404),
            OdooFault::Missing(_)
        ));
        // A lost database connection or a lock conflict: transient, as over /jsonrpc.
        assert!(matches!(
            e("psycopg2.OperationalError", "closed").fault(500),
            OdooFault::Transient(_)
        ));
        assert!(matches!(
            e("psycopg2.errors.LockNotAvailable", "could not obtain lock").fault(409),
            OdooFault::Transient(_)
        ));
        assert!(matches!(
            e("odoo.exceptions.AccessError", "You are not allowed").fault(403),
            OdooFault::Forbidden(_)
        ));
    }

    #[test]
    fn faults_are_classified_by_exception_class() {
        let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
            "data":{"name":"odoo.exceptions.AccessDenied","message":"Access Denied"}}))
        .unwrap();
        assert_eq!(e.fault(), OdooFault::AccessDenied);
        let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
            "data":{"name":"builtins.KeyError","message":"'crm.lead'"}}))
        .unwrap();
        assert_eq!(e.fault(), OdooFault::UnknownModel("crm.lead".into()));
        let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
            "data":{"name":"odoo.exceptions.UserError","message":"Object crm.lead doesn't exist"}}))
        .unwrap();
        assert_eq!(e.fault(), OdooFault::UnknownModel("crm.lead".into()));
        // Rights are not credentials; a rolled-back transaction is not a refusal.
        let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
            "data":{"name":"odoo.exceptions.AccessError","message":"You are not allowed to create 'Lead' (crm.lead) records."}}))
        .unwrap();
        assert!(matches!(e.fault(), OdooFault::Forbidden(m) if m.contains("crm.lead")));
        for name in [
            "psycopg2.errors.SerializationFailure",
            "psycopg2.OperationalError",
            "psycopg2.errors.LockNotAvailable",
        ] {
            let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
                "data":{"name": name,"message":"could not serialize access due to concurrent update"}}))
            .unwrap();
            assert!(matches!(e.fault(), OdooFault::Transient(_)), "{name}");
        }
        let e: OdooError = serde_json::from_value(json!({"code":200,"message":"Odoo Server Error",
            "data":{"name":"psycopg2.OperationalError","message":"FATAL:  database \"nope\" does not exist"}}))
        .unwrap();
        assert!(
            matches!(e.fault(), OdooFault::UnknownDatabase(_)),
            "a wrong database is not transient"
        );
    }
}
