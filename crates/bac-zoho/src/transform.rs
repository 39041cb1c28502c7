//! Zoho CRM records (Zoho's API names: `Last_Name`, `Owner.name`) to the platform's messages
//! and back to the canonical values the sync entities write.
use bac_proto::{
    wkt::Timestamp,
    zoho::v1::{Contact, Deal, Lead, UpdateContactRequest, UpdateLeadRequest},
};
use serde_json::{json, Map, Value};

use crate::sync::parse_time;

fn text(r: &Value, k: &str) -> String {
    match &r[k] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn number(r: &Value, k: &str) -> f64 {
    r[k].as_f64().unwrap_or(0.0)
}

fn nested(r: &Value, k: &str, inner: &str) -> String {
    r[k][inner].as_str().unwrap_or_default().to_string()
}

fn time(r: &Value, k: &str) -> Option<Timestamp> {
    parse_time(&r[k]).map(|t| Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

pub fn lead(r: &Value, connection_id: &str) -> Option<Lead> {
    Some(Lead {
        id: r["id"].as_str()?.to_string(),
        first_name: text(r, "First_Name"),
        last_name: text(r, "Last_Name"),
        company: text(r, "Company"),
        email: text(r, "Email"),
        phone: text(r, "Phone"),
        mobile: text(r, "Mobile"),
        lead_source: text(r, "Lead_Source"),
        lead_status: text(r, "Lead_Status"),
        industry: text(r, "Industry"),
        annual_revenue: number(r, "Annual_Revenue"),
        description: text(r, "Description"),
        owner: nested(r, "Owner", "name"),
        connection_id: connection_id.to_string(),
        created_time: time(r, "Created_Time"),
        modified_time: time(r, "Modified_Time"),
    })
}

pub fn contact(r: &Value, connection_id: &str) -> Option<Contact> {
    Some(Contact {
        id: r["id"].as_str()?.to_string(),
        first_name: text(r, "First_Name"),
        last_name: text(r, "Last_Name"),
        email: text(r, "Email"),
        phone: text(r, "Phone"),
        mobile: text(r, "Mobile"),
        title: text(r, "Title"),
        department: text(r, "Department"),
        account_name: nested(r, "Account_Name", "name"),
        mailing_city: text(r, "Mailing_City"),
        mailing_country: text(r, "Mailing_Country"),
        description: text(r, "Description"),
        owner: nested(r, "Owner", "name"),
        connection_id: connection_id.to_string(),
        created_time: time(r, "Created_Time"),
        modified_time: time(r, "Modified_Time"),
    })
}

pub fn deal(r: &Value, connection_id: &str) -> Option<Deal> {
    Some(Deal {
        id: r["id"].as_str()?.to_string(),
        name: text(r, "Deal_Name"),
        stage: text(r, "Stage"),
        amount: number(r, "Amount"),
        closing_date: text(r, "Closing_Date"),
        probability: number(r, "Probability"),
        account_name: nested(r, "Account_Name", "name"),
        contact_id: nested(r, "Contact_Name", "id"),
        description: text(r, "Description"),
        owner: nested(r, "Owner", "name"),
        connection_id: connection_id.to_string(),
        created_time: time(r, "Created_Time"),
        modified_time: time(r, "Modified_Time"),
    })
}

/// Canonical values of the non-empty fields of a create.
fn present(pairs: &[(&str, Value)]) -> Value {
    let mut out = Map::new();
    for (k, v) in pairs {
        let keep = match v {
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::Null => false,
            _ => true,
        };
        if keep {
            out.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

pub fn lead_values(l: &Lead) -> Value {
    present(&[
        ("first_name", json!(l.first_name)),
        ("last_name", json!(l.last_name.trim())),
        ("company", json!(l.company)),
        ("email", json!(l.email)),
        ("phone", json!(l.phone)),
        ("mobile", json!(l.mobile)),
        ("lead_source", json!(l.lead_source)),
        ("lead_status", json!(l.lead_status)),
        ("industry", json!(l.industry)),
        ("annual_revenue", json!(l.annual_revenue)),
        ("description", json!(l.description)),
    ])
}

pub fn contact_values(c: &Contact) -> Value {
    present(&[
        ("first_name", json!(c.first_name)),
        ("last_name", json!(c.last_name.trim())),
        ("email", json!(c.email)),
        ("phone", json!(c.phone)),
        ("mobile", json!(c.mobile)),
        ("title", json!(c.title)),
        ("department", json!(c.department)),
        ("mailing_city", json!(c.mailing_city)),
        ("mailing_country", json!(c.mailing_country)),
        ("description", json!(c.description)),
    ])
}

pub fn deal_values(d: &Deal) -> Value {
    present(&[
        ("name", json!(d.name.trim())),
        ("stage", json!(d.stage)),
        ("amount", json!(d.amount)),
        ("closing_date", json!(d.closing_date)),
        ("probability", json!(d.probability.round() as i64)),
        ("contact_id", json!(d.contact_id)),
        ("description", json!(d.description)),
    ])
}

/// An update's given fields; an empty string clears a field (Zoho's null).
fn given(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut out = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            let v = match v {
                Value::String(s) if s.is_empty() => Value::Null,
                other => other,
            };
            out.insert(k.to_string(), v);
        }
    }
    Value::Object(out)
}

pub fn lead_patch(r: &UpdateLeadRequest) -> Value {
    let s = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    given(vec![
        ("first_name", s(&r.first_name)),
        ("last_name", s(&r.last_name)),
        ("company", s(&r.company)),
        ("email", s(&r.email)),
        ("phone", s(&r.phone)),
        ("mobile", s(&r.mobile)),
        ("lead_source", s(&r.lead_source)),
        ("lead_status", s(&r.lead_status)),
        ("industry", s(&r.industry)),
        ("annual_revenue", r.annual_revenue.map(|n| json!(n))),
        ("description", s(&r.description)),
    ])
}

pub fn contact_patch(r: &UpdateContactRequest) -> Value {
    let s = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    given(vec![
        ("first_name", s(&r.first_name)),
        ("last_name", s(&r.last_name)),
        ("email", s(&r.email)),
        ("phone", s(&r.phone)),
        ("mobile", s(&r.mobile)),
        ("title", s(&r.title)),
        ("department", s(&r.department)),
        ("mailing_city", s(&r.mailing_city)),
        ("mailing_country", s(&r.mailing_country)),
        ("description", s(&r.description)),
    ])
}
