//! Odoo's wire types (JSON-RPC envelopes, errors, `crm.lead` records) and their conversion to
//! and from the platform's proto types. No I/O here.
use bac_proto::odoo::v1::Lead;
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

/// What kind of failure an Odoo error is, decided by the exception class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OdooFault {
    AccessDenied,
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
        if name.ends_with("AccessDenied") || name.ends_with("AccessError") {
            OdooFault::AccessDenied
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

/// `vals` for `crm.lead.create`. `priority` must already be validated.
pub fn lead_to_vals(lead: &Lead) -> Value {
    let mut vals = json!({ "name": lead.name.trim(), "type": "opportunity" });
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
    }
}
