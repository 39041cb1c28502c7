//! Zoho Desk's API (`/api/v1` on Desk's own host, served at `/<dc>/desk`): organisations,
//! departments, tickets (create, list, search by modified-time range, get, patch) and
//! contacts, with Desk's ways: the `orgId` header on every call but the organisations list,
//! `{"errorCode", "message"}` errors (422 `INVALID_DATA` naming the field by JSON pointer),
//! `from`/`limit` paging, camelCase times with milliseconds, and a search that answers 204
//! when nothing matches.
use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use bac_sandbox_kit::Stored;
use serde_json::{json, Map, Value};

use crate::{
    apps::{self, Apps, Bad, Denials, Fields, PathId, Refusal, Table},
    DataCenter,
};

fn error(status: StatusCode, code: &str, message: &str) -> Refusal {
    Refusal {
        status,
        body: json!({"errorCode": code, "message": message}),
    }
}

const INVALID_DATA: &str = "An invalid value has been passed in the input.";

/// 422 naming one field (`/subject`) as missing or invalid.
fn invalid_data(field: &str, kind: &str, message: &str) -> Refusal {
    Refusal {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"errorCode": "INVALID_DATA", "message": INVALID_DATA,
                     "errors": [{"fieldName": field, "errorType": kind, "errorMessage": message}]}),
    }
}

fn bad(b: Bad) -> Refusal {
    invalid_data(b.pointer(), b.kind(), "")
}

fn invalid_param(name: &str) -> Response {
    invalid_data(&format!("/{name}"), "invalid", "").into_response()
}

fn unparsable() -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_DATA",
        INVALID_DATA,
    )
    .into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "The requested resource does not exist.",
    )
    .into_response()
}

const DENIALS: Denials = Denials {
    invalid_token: || {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_OAUTH",
            "The OAuth Token you provided is invalid.",
        )
        .into_response()
    },
    scope: || {
        error(
            StatusCode::UNAUTHORIZED,
            "SCOPE_MISMATCH",
            "The OAuth Token you provided does not have the scope for this URL.",
        )
        .into_response()
    },
};

/// Desk's time format: UTC with milliseconds.
pub fn desk_time(secs: i64) -> String {
    apps::format_time(secs, "%Y-%m-%dT%H:%M:%S.000Z")
}

/// Routes relative to Desk's host (the data centre nests them under `/desk`).
pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route("/api/v1/organizations", get(organizations))
        .route("/api/v1/departments", get(departments))
        .route("/api/v1/tickets", get(list).post(create))
        .route("/api/v1/tickets/search", get(search))
        .route("/api/v1/tickets/:id", get(get_ticket).patch(patch))
        .route("/api/v1/contacts/:id", get(get_contact))
        .with_state(dc)
}

type Params = Query<HashMap<String, String>>;

/// Token, scope and credit; then, unless `org` is false, the `orgId` header.
fn admit(dc: &DataCenter, headers: &HeaderMap, needed: &[&str], org: bool) -> Result<(), Response> {
    apps::admit(dc, headers, needed, &DENIALS)?;
    if !org {
        return Ok(());
    }
    let Some(given) = headers.get("orgid") else {
        return Err(invalid_data("orgId", "missing", "orgId header is required").into_response());
    };
    let ours = dc.apps.with(|a| a.desk_org());
    if given.to_str().map(str::trim).ok() != Some(ours.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "You are not authorized to access this organization.",
        )
        .into_response());
    }
    Ok(())
}

async fn organizations(State(dc): State<DataCenter>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.basic.READ"], false) {
        return r;
    }
    let org = dc.apps.with(|a| a.desk_org());
    Json(
        json!({"data": [{"id": org, "companyName": dc.company_name, "portalName": "sandbox",
                          "isDefault": true, "edition": "ENTERPRISE"}]}),
    )
    .into_response()
}

async fn departments(State(dc): State<DataCenter>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.basic.READ"], true) {
        return r;
    }
    let dept = dc.apps.with(|a| a.desk_department());
    Json(json!({"data": [{"id": dept, "name": "Support", "isDefault": true, "isEnabled": true}]}))
        .into_response()
}

/// A ticket as Desk answers it.
fn render(a: &Apps, row: &Stored) -> Value {
    let mut out = apps::public_fields(row);
    let closed = out.get("status").and_then(Value::as_str) == Some("Closed");
    out.insert("id".into(), json!(row.id));
    out.insert(
        "statusType".into(),
        json!(if closed { "Closed" } else { "Open" }),
    );
    out.insert("assigneeId".into(), Value::Null);
    out.insert(
        "createdTime".into(),
        json!(desk_time(apps::created_of(row))),
    );
    out.insert("modifiedTime".into(), json!(desk_time(row.modified)));
    out.insert(
        "webUrl".into(),
        json!(format!(
            "https://desk.zoho.{}/support/sandbox/ShowHomePage.do#Cases/dv/{}",
            a.dc, row.id
        )),
    );
    Value::Object(out)
}

fn render_contact(row: &Stored) -> Value {
    let f = apps::public_fields(row);
    let field = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
    json!({"id": row.id, "email": field("email"), "lastName": field("lastName"),
           "firstName": field("firstName"), "createdTime": desk_time(apps::created_of(row)),
           "modifiedTime": desk_time(row.modified)})
}

/// Optional text fields a ticket keeps as null when not given.
const TEXTS: &[&str] = &[
    "description",
    "priority",
    "email",
    "phone",
    "classification",
];

/// Checks a new ticket and stores it (its contact first, found by email or created), as
/// `POST /api/v1/tickets` does; the admin routes seed through it.
pub fn insert_ticket(a: &mut Apps, body: &Map<String, Value>) -> Result<String, Refusal> {
    let b = Fields::new(body, "");
    let mut out = Map::new();
    out.insert(
        "subject".into(),
        json!(b.required_text("subject").map_err(bad)?),
    );
    let Some(department) = b.id("departmentId").map_err(bad)? else {
        return Err(invalid_data("/departmentId", "missing", ""));
    };
    if department != a.desk_department() {
        return Err(invalid_data("/departmentId", "invalid", ""));
    }
    out.insert("departmentId".into(), json!(department));
    for k in TEXTS {
        out.insert((*k).into(), json!(b.text(k).map_err(bad)?));
    }
    if let Some(email) = out.get("email").and_then(Value::as_str) {
        if !apps::is_address(email) {
            return Err(invalid_data("/email", "invalid", ""));
        }
    }
    let status = b.text("status").map_err(bad)?;
    if status.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(invalid_data("/status", "invalid", ""));
    }
    out.insert(
        "status".into(),
        json!(status.unwrap_or_else(|| "Open".into())),
    );
    let channel = b.text("channel").map_err(bad)?;
    out.insert(
        "channel".into(),
        json!(channel
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "Web".into())),
    );
    out.insert(
        "cf".into(),
        Value::Object(b.object("cf").map_err(bad)?.cloned().unwrap_or_default()),
    );
    // the contact last: nothing is created for a ticket that is refused
    let (contact_id, contact_email) = contact_of(a, &b)?;
    out.insert("contactId".into(), json!(contact_id));
    if out.get("email").is_none_or(Value::is_null) {
        out.insert("email".into(), contact_email);
    }
    a.ticket_numbers += 1;
    out.insert("ticketNumber".into(), json!(a.ticket_numbers.to_string()));
    Ok(a.create(Table::DeskTickets, out))
}

/// The ticket's contact: `contactId`, or `contact` found by its email or created; its id and
/// email.
fn contact_of(a: &mut Apps, b: &Fields) -> Result<(String, Value), Refusal> {
    if let Some(id) = b.id("contactId").map_err(bad)? {
        let Some(c) = a.table(Table::DeskContacts).get(&id) else {
            return Err(invalid_data("/contactId", "invalid", ""));
        };
        let email = c.get("email").cloned().unwrap_or(Value::Null);
        return Ok((id, email));
    }
    let Some(contact) = b.object("contact").map_err(bad)? else {
        return Err(invalid_data("/contactId", "missing", ""));
    };
    let c = Fields::new(contact, "/contact");
    let email = c.text("email").map_err(bad)?;
    if let Some(e) = &email {
        if !apps::is_address(e) {
            return Err(invalid_data("/contact/email", "invalid", ""));
        }
        let found = a
            .table(Table::DeskContacts)
            .changed_since(i64::MIN, None, usize::MAX, false)
            .into_iter()
            .find(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get("email"))
                    .and_then(Value::as_str)
                    .is_some_and(|have| have.eq_ignore_ascii_case(e))
            })
            .map(|r| r.id.clone());
        if let Some(id) = found {
            return Ok((id, json!(e)));
        }
    }
    let last = c.required_text("lastName").map_err(bad)?;
    let first = c.text("firstName").map_err(bad)?;
    let mut fields = Map::new();
    fields.insert("lastName".into(), json!(last));
    fields.insert("firstName".into(), json!(first));
    fields.insert("email".into(), json!(email));
    let id = a.create(Table::DeskContacts, fields);
    Ok((id, json!(email)))
}

/// What a seeded ticket may leave out: the one department, a contact of the sandbox's own.
pub fn with_seed_defaults(a: &Apps, record: &Map<String, Value>) -> Map<String, Value> {
    let mut r = record.clone();
    r.entry("departmentId")
        .or_insert_with(|| json!(a.desk_department()));
    if !r.contains_key("contactId") && !r.contains_key("contact") {
        r.insert(
            "contact".into(),
            json!({"lastName": "Seeded Contact", "email": "seeded.contact@sandbox.zoho"}),
        );
    }
    r
}

/// The fields of generated ticket `i`.
pub fn generated(a: &Apps, i: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("subject".into(), json!(format!("Seeded Ticket {i}")));
    m.insert("departmentId".into(), json!(a.desk_department()));
    m
}

async fn create(State(dc): State<DataCenter>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.tickets.CREATE"], true) {
        return r;
    }
    let Some(body) = apps::json_object(&body) else {
        return unparsable();
    };
    let created = dc.apps.with(|a| {
        let id = insert_ticket(a, &body)?;
        a.table(Table::DeskTickets)
            .row(&id)
            .map(|r| render(a, r))
            .ok_or_else(|| invalid_data("/subject", "invalid", ""))
    });
    match created {
        Ok(ticket) => Json(ticket).into_response(),
        Err(r) => r.into_response(),
    }
}

/// `from` (0-based) and `limit` (1 to 100, 10 by default).
fn window(q: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let from = match q.get("from") {
        None => 0,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => return Err(invalid_param("from")),
        },
    };
    let limit = match q.get("limit") {
        None => 10,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(invalid_param("limit")),
        },
    };
    Ok((from, limit))
}

/// A `sortBy` among `allowed` (a leading `-` for descending): the field and the direction.
fn sort_by<'a>(
    q: &'a HashMap<String, String>,
    default: &'a str,
    allowed: &[&str],
) -> Result<(&'a str, bool), Response> {
    let given = q.get("sortBy").map_or(default, String::as_str);
    let (field, descending) = match given.strip_prefix('-') {
        Some(f) => (f, true),
        None => (given, false),
    };
    if allowed.contains(&field) {
        Ok((field, descending))
    } else {
        Err(invalid_param("sortBy"))
    }
}

/// Rows in (created, id) or the table's (modified, id) order.
fn ordered<'r>(mut rows: Vec<&'r Stored>, field: &str, descending: bool) -> Vec<&'r Stored> {
    if field == "createdTime" {
        rows.sort_by(|x, y| {
            (apps::created_of(x), apps::natural(&x.id))
                .cmp(&(apps::created_of(y), apps::natural(&y.id)))
        });
    }
    if descending {
        rows.reverse();
    }
    rows
}

async fn list(State(dc): State<DataCenter>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.tickets.READ"], true) {
        return r;
    }
    let (from, limit) = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (field, descending) = match sort_by(&q, "createdTime", &["createdTime", "modifiedTime"]) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let statuses: Option<Vec<String>> = q.get("status").map(|s| {
        s.split(',')
            .map(|x| x.trim().to_lowercase())
            .filter(|x| !x.is_empty())
            .collect()
    });
    let data = dc.apps.with(|a| {
        let mut rows = a
            .table(Table::DeskTickets)
            .changed_since(i64::MIN, None, usize::MAX, false);
        if let Some(wanted) = &statuses {
            rows.retain(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get("status"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| wanted.contains(&s.to_lowercase()))
            });
        }
        ordered(rows, field, descending)
            .into_iter()
            .skip(from)
            .take(limit)
            .map(|r| render(a, r))
            .collect::<Vec<_>>()
    });
    Json(json!({ "data": data })).into_response()
}

async fn search(State(dc): State<DataCenter>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = admit(
        &dc,
        &headers,
        &["Desk.tickets.READ", "Desk.search.READ"],
        true,
    ) {
        return r;
    }
    let Some(range) = q.get("modifiedTimeRange") else {
        return invalid_data("/modifiedTimeRange", "missing", "").into_response();
    };
    let bounds = range
        .split_once(',')
        .and_then(|(s, e)| Some((apps::parse_time_ms(s)?, apps::parse_time_ms(e)?)));
    let Some((start_ms, end_ms)) = bounds.filter(|(s, e)| s <= e) else {
        return invalid_param("modifiedTimeRange");
    };
    let (from, limit) = match window(&q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (_, descending) = match sort_by(&q, "modifiedTime", &["modifiedTime"]) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (data, count) = dc.apps.with(|a| {
        let rows: Vec<&Stored> = a
            .table(Table::DeskTickets)
            .changed_since(start_ms.div_euclid(1000), None, usize::MAX, false)
            .into_iter()
            .filter(|r| {
                let ms = r.modified.saturating_mul(1000);
                ms >= start_ms && ms <= end_ms
            })
            .collect();
        let count = rows.len();
        let data: Vec<Value> = ordered(rows, "modifiedTime", descending)
            .into_iter()
            .skip(from)
            .take(limit)
            .map(|r| render(a, r))
            .collect();
        (data, count)
    });
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"data": data, "count": count})).into_response()
}

async fn get_ticket(State(dc): State<DataCenter>, headers: HeaderMap, id: PathId) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.tickets.READ"], true) {
        return r;
    }
    let id = apps::path_id(id);
    let found = dc.apps.with(|a| {
        a.table(Table::DeskTickets)
            .row(&id)
            .filter(|r| r.fields.is_some())
            .map(|r| render(a, r))
    });
    match found {
        Some(t) => Json(t).into_response(),
        None => not_found(),
    }
}

/// The changes a `PATCH` asks for: text fields, `subject` and `status` never blank.
fn changes(body: &Map<String, Value>) -> Result<Map<String, Value>, Refusal> {
    let b = Fields::new(body, "");
    let mut out = Map::new();
    for k in ["subject", "status"] {
        if body.contains_key(k) {
            out.insert(k.into(), json!(b.required_text(k).map_err(bad)?));
        }
    }
    for k in ["description", "priority", "email", "phone"] {
        if body.contains_key(k) {
            out.insert(k.into(), json!(b.text(k).map_err(bad)?));
        }
    }
    if let Some(email) = out.get("email").and_then(Value::as_str) {
        if !apps::is_address(email) {
            return Err(invalid_data("/email", "invalid", ""));
        }
    }
    Ok(out)
}

async fn patch(
    State(dc): State<DataCenter>,
    headers: HeaderMap,
    id: PathId,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.tickets.UPDATE"], true) {
        return r;
    }
    let id = apps::path_id(id);
    if dc
        .apps
        .with(|a| a.table(Table::DeskTickets).get(&id).is_none())
    {
        return not_found();
    }
    let Some(body) = apps::json_object(&body) else {
        return unparsable();
    };
    let fields = match changes(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let updated = dc.apps.with(|a| {
        a.table_mut(Table::DeskTickets).update(&id, fields);
        a.table(Table::DeskTickets)
            .row(&id)
            .filter(|r| r.fields.is_some())
            .map(|r| render(a, r))
    });
    match updated {
        Some(t) => Json(t).into_response(),
        None => not_found(),
    }
}

async fn get_contact(State(dc): State<DataCenter>, headers: HeaderMap, id: PathId) -> Response {
    if let Err(r) = admit(&dc, &headers, &["Desk.contacts.READ"], true) {
        return r;
    }
    let id = apps::path_id(id);
    let found = dc.apps.with(|a| {
        a.table(Table::DeskContacts)
            .row(&id)
            .filter(|r| r.fields.is_some())
            .map(render_contact)
    });
    match found {
        Some(c) => Json(c).into_response(),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_ticket_creates_no_contact() {
        let mut a = Apps::new(bac_sandbox_kit::SandboxClock::default(), 2, "eu", "a@b.c");
        let body = json!({"subject": "", "departmentId": a.desk_department(),
                          "contact": {"lastName": "L", "email": "l@x.y"}});
        let err = insert_ticket(&mut a, body.as_object().unwrap()).unwrap_err();
        assert_eq!(err.body["errors"][0]["fieldName"], "/subject");
        assert!(a.table(Table::DeskContacts).is_empty());
        let body = json!({"subject": "S", "departmentId": a.desk_department(),
                          "contact": {"email": "l@x.y"}});
        let err = insert_ticket(&mut a, body.as_object().unwrap()).unwrap_err();
        assert_eq!(
            (
                &err.body["errors"][0]["fieldName"],
                &err.body["errors"][0]["errorType"]
            ),
            (&json!("/contact/lastName"), &json!("missing"))
        );
        assert_eq!(desk_time(1_767_225_600), "2026-01-01T00:00:00.000Z");
    }
}
