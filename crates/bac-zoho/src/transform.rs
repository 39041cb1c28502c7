//! Zoho records (CRM's API names: `Last_Name`, `Owner.name`; Books' `invoice_id`; Desk's
//! `ticketNumber`; People's `EmailID`) to the platform's messages, and the platform's
//! messages to the canonical values the sync entities write.
use bac_proto::{
    wkt::Timestamp,
    zoho::v1::{
        Contact, Customer, Deal, Employee, Invoice, InvoiceLine, Item, Lead, SendMailRequest,
        SentMail, Ticket, UpdateContactRequest, UpdateDealRequest, UpdateLeadRequest,
    },
};
use serde_json::{json, Map, Value};

use crate::{apps::parse_any_time, sync::parse_time};

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

pub fn deal_patch(r: &UpdateDealRequest) -> Value {
    let s = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    given(vec![
        ("name", s(&r.name)),
        ("stage", s(&r.stage)),
        ("amount", r.amount.map(|n| json!(n))),
        ("closing_date", s(&r.closing_date)),
        (
            "probability",
            r.probability.map(|n| json!(n.round() as i64)),
        ),
        ("description", s(&r.description)),
    ])
}

/// A time in any Zoho product's format.
fn any_time(r: &Value, k: &str) -> Option<Timestamp> {
    parse_any_time(&r[k]).map(|t| Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

fn id(r: &Value, k: &str) -> Option<String> {
    Some(text(r, k)).filter(|s| !s.is_empty())
}

pub fn invoice(r: &Value, connection_id: &str) -> Option<Invoice> {
    Some(Invoice {
        id: id(r, "invoice_id")?,
        invoice_number: text(r, "invoice_number"),
        customer_id: text(r, "customer_id"),
        customer_name: text(r, "customer_name"),
        status: text(r, "status"),
        date: text(r, "date"),
        due_date: text(r, "due_date"),
        reference_number: text(r, "reference_number"),
        currency_code: text(r, "currency_code"),
        line_items: r["line_items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| InvoiceLine {
                item_id: text(l, "item_id"),
                name: text(l, "name"),
                description: text(l, "description"),
                rate: number(l, "rate"),
                quantity: number(l, "quantity"),
                total: number(l, "item_total"),
            })
            .collect(),
        sub_total: number(r, "sub_total"),
        total: number(r, "total"),
        balance: number(r, "balance"),
        notes: text(r, "notes"),
        connection_id: connection_id.to_string(),
        created_time: any_time(r, "created_time"),
        modified_time: any_time(r, "last_modified_time"),
    })
}

pub fn invoice_values(i: &Invoice) -> Value {
    let lines: Vec<Value> = i
        .line_items
        .iter()
        .map(|l| {
            present(&[
                ("item_id", json!(l.item_id)),
                ("name", json!(l.name)),
                ("description", json!(l.description)),
                ("rate", json!(l.rate)),
                (
                    "quantity",
                    json!(if l.quantity == 0.0 { 1.0 } else { l.quantity }),
                ),
            ])
        })
        .map(|mut l| {
            // a line at no charge still says so
            if let Some(o) = l.as_object_mut() {
                o.entry("rate").or_insert(json!(0.0));
            }
            l
        })
        .collect();
    let mut v = present(&[
        ("customer_id", json!(i.customer_id)),
        ("date", json!(i.date)),
        ("due_date", json!(i.due_date)),
        ("reference_number", json!(i.reference_number)),
        ("currency_code", json!(i.currency_code)),
        ("notes", json!(i.notes)),
    ]);
    v["line_items"] = json!(lines);
    v
}

pub fn customer(r: &Value, connection_id: &str) -> Option<Customer> {
    Some(Customer {
        id: id(r, "contact_id")?,
        name: text(r, "contact_name"),
        company_name: text(r, "company_name"),
        email: text(r, "email"),
        phone: text(r, "phone"),
        currency_code: text(r, "currency_code"),
        outstanding: number(r, "outstanding_receivable_amount"),
        status: text(r, "status"),
        connection_id: connection_id.to_string(),
        created_time: any_time(r, "created_time"),
        modified_time: any_time(r, "last_modified_time"),
    })
}

pub fn customer_values(c: &Customer) -> Value {
    present(&[
        ("name", json!(c.name.trim())),
        ("company_name", json!(c.company_name)),
        ("email", json!(c.email)),
        ("phone", json!(c.phone)),
    ])
}

pub fn item(r: &Value, connection_id: &str) -> Option<Item> {
    Some(Item {
        id: id(r, "item_id")?,
        name: text(r, "name"),
        sku: text(r, "sku"),
        unit: text(r, "unit"),
        status: text(r, "status"),
        rate: number(r, "rate"),
        purchase_rate: number(r, "purchase_rate"),
        description: text(r, "description"),
        stock_on_hand: number(r, "stock_on_hand"),
        available_stock: number(r, "available_stock"),
        connection_id: connection_id.to_string(),
        created_time: any_time(r, "created_time"),
        modified_time: any_time(r, "last_modified_time"),
    })
}

pub fn ticket(r: &Value, connection_id: &str) -> Option<Ticket> {
    Some(Ticket {
        id: id(r, "id")?,
        ticket_number: text(r, "ticketNumber"),
        subject: text(r, "subject"),
        description: text(r, "description"),
        email: text(r, "email"),
        phone: text(r, "phone"),
        priority: text(r, "priority"),
        status: text(r, "status"),
        contact_id: text(r, "contactId"),
        department_id: text(r, "departmentId"),
        channel: text(r, "channel"),
        web_url: text(r, "webUrl"),
        connection_id: connection_id.to_string(),
        created_time: any_time(r, "createdTime"),
        modified_time: any_time(r, "modifiedTime"),
    })
}

pub fn ticket_values(t: &Ticket) -> Value {
    present(&[
        ("subject", json!(t.subject.trim())),
        ("description", json!(t.description)),
        ("email", json!(t.email)),
        ("phone", json!(t.phone)),
        ("priority", json!(t.priority)),
        ("status", json!(t.status)),
        ("contact_id", json!(t.contact_id)),
        ("department_id", json!(t.department_id)),
    ])
}

pub fn employee(r: &Value, connection_id: &str) -> Option<Employee> {
    Some(Employee {
        id: id(r, "Zoho_ID")?,
        employee_id: text(r, "EmployeeID"),
        first_name: text(r, "FirstName"),
        last_name: text(r, "LastName"),
        email: text(r, "EmailID"),
        department: text(r, "Department"),
        designation: text(r, "Designation"),
        status: text(r, "Employeestatus"),
        mobile: text(r, "Mobile"),
        date_of_joining: text(r, "Date_of_joining"),
        connection_id: connection_id.to_string(),
        modified_time: any_time(r, crate::apps::PEOPLE_MODIFIED),
    })
}

pub fn mail_values(m: &SendMailRequest) -> Value {
    let mut v = present(&[
        ("to", json!(m.to)),
        ("from", json!(m.from)),
        ("cc", json!(m.cc)),
        ("bcc", json!(m.bcc)),
        ("subject", json!(m.subject)),
        ("body", json!(m.body)),
    ]);
    if m.plain_text {
        v["plain_text"] = json!(true);
    }
    v
}

pub fn sent_mail(r: &Value, connection_id: &str) -> Option<SentMail> {
    Some(SentMail {
        id: id(r, "messageId")?,
        from: text(r, "fromAddress"),
        to: text(r, "toAddress"),
        subject: text(r, "subject"),
        connection_id: connection_id.to_string(),
    })
}
