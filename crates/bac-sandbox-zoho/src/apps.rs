//! What Zoho's other products (Books, Inventory, Desk, People, Mail) share in the sandbox: one
//! organisation per data centre whose ids derive from the data centre's number, as each
//! product names it (Books' and Inventory's `organization_id`, Desk's `orgId`, Mail's
//! `accountId`); their records in the kit's record tables; Zoho Accounts' scope rule
//! (`<Service>.<resource>.ALL` covers each operation, `ZohoBooks.fullaccess.all` the whole
//! product); reading JSON bodies by hand, so a wrong body gets the product's own error and
//! never axum's; and the admin routes tests seed and inspect the products with.
use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use bac_sandbox_kit::{oauth::Issued, RecordTable, SandboxClock, Stored};
use serde_json::{json, Map, Value};

use crate::{desk, finance, mail, people, DataCenter};

/// The record tables of one data centre's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    BooksContacts,
    BooksInvoices,
    InventoryItems,
    DeskTickets,
    DeskContacts,
    PeopleEmployees,
    MailMessages,
}

const TABLES: [Table; 7] = [
    Table::BooksContacts,
    Table::BooksInvoices,
    Table::InventoryItems,
    Table::DeskTickets,
    Table::DeskContacts,
    Table::PeopleEmployees,
    Table::MailMessages,
];

impl Table {
    fn index(self) -> usize {
        self as usize
    }

    /// Ids are long numbers, as Zoho's are: a product's digits, the data centre's, the table's.
    fn prefix(self, digit: u64) -> String {
        let product = match self {
            Table::BooksContacts | Table::BooksInvoices | Table::InventoryItems => "46",
            Table::DeskTickets | Table::DeskContacts => "90",
            Table::PeopleEmployees => "50",
            Table::MailMessages => "17",
        };
        format!("{product}{digit}{}000000", self.index() + 1)
    }
}

/// The products' records and counters of one data centre.
#[derive(Debug)]
pub struct Apps {
    /// The data centre's 1-based position in the configuration; every organisation id
    /// carries it.
    pub digit: u64,
    /// The data centre's key (`eu`), for Desk's `webUrl`.
    pub dc: String,
    /// The address of the one Mail account (the configured user).
    pub user_email: String,
    clock: SandboxClock,
    tables: Vec<RecordTable>,
    /// Books' invoice numbers (`INV-000001`), per organisation.
    pub(crate) invoice_numbers: u64,
    pub(crate) line_items: u64,
    /// Desk's ticket numbers start at 101.
    pub(crate) ticket_numbers: u64,
    /// People's `EmployeeID`s (`EMP1`).
    pub(crate) employee_numbers: u64,
}

impl Apps {
    pub fn new(clock: SandboxClock, digit: u64, dc: &str, user_email: &str) -> Apps {
        Apps {
            digit,
            dc: dc.to_string(),
            user_email: user_email.to_string(),
            tables: TABLES
                .iter()
                .map(|t| RecordTable::new(clock.clone(), &t.prefix(digit)))
                .collect(),
            clock,
            invoice_numbers: 0,
            line_items: 0,
            ticket_numbers: 100,
            employee_numbers: 0,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn table(&self, t: Table) -> &RecordTable {
        &self.tables[t.index()]
    }

    pub fn table_mut(&mut self, t: Table) -> &mut RecordTable {
        &mut self.tables[t.index()]
    }

    /// Stores a new record, stamping its creation time (`$created`, never answered).
    pub fn create(&mut self, t: Table, mut fields: Map<String, Value>) -> String {
        fields.insert("$created".into(), json!(self.now()));
        self.table_mut(t).create(fields)
    }

    /// Books' and Inventory's `organization_id` (one organisation serves both, as in Zoho).
    pub fn finance_org(&self) -> String {
        format!("6000{}0000101", self.digit)
    }

    /// Desk's `orgId`.
    pub fn desk_org(&self) -> String {
        format!("7000{}0001", self.digit)
    }

    /// The id of Desk's one department, "Support".
    pub fn desk_department(&self) -> String {
        format!("9000{}000000001", self.digit)
    }

    /// The `accountId` of Mail's one account.
    pub fn mail_account(&self) -> String {
        format!("2560{}00000001", self.digit)
    }
}

/// One data centre's products, shared by its routes.
#[derive(Debug, Clone)]
pub struct SharedApps(Arc<Mutex<Apps>>);

impl SharedApps {
    pub fn new(apps: Apps) -> SharedApps {
        SharedApps(Arc::new(Mutex::new(apps)))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Apps) -> T) -> T {
        let mut a = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut a)
    }
}

/// When a record was created (the table keeps only when it last changed).
pub fn created_of(row: &Stored) -> i64 {
    row.fields
        .as_ref()
        .and_then(|f| f.get("$created"))
        .and_then(Value::as_i64)
        .unwrap_or(row.modified)
}

/// A record's own fields, without the sandbox's `$` bookkeeping.
pub fn public_fields(row: &Stored) -> Map<String, Value> {
    row.fields
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Ids compare as numbers (digits of the same prefix), not as text.
pub fn natural(id: &str) -> (usize, &str) {
    (id.len(), id)
}

/// A time on the sandbox clock in a product's format.
pub fn format_time(secs: i64, pattern: &str) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format(pattern)
        .to_string()
}

/// An ISO 8601 time with an offset (`+00:00`, `+0000`, `Z`, with or without milliseconds) in
/// seconds. A `+` a client forgot to percent-encode reaches us as a space and is read back.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim().replace(' ', "+");
    chrono::DateTime::parse_from_rfc3339(&s)
        .or_else(|_| chrono::DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Whether the scopes a token was granted (comma or space separated, compared without case
/// as Zoho Accounts does) cover `needed`: the scope itself, `<Service>.<resource>.ALL`,
/// `<Service>.ALL`, or `<Service>.fullaccess.all` (Books' and Inventory's whole product).
pub fn allows(granted: &str, needed: &str) -> bool {
    let (service, rest) = needed.split_once('.').unwrap_or((needed, ""));
    let (resource, _) = rest.rsplit_once('.').unwrap_or((rest, ""));
    let covering = [
        needed.to_string(),
        format!("{service}.{resource}.ALL"),
        format!("{service}.ALL"),
        format!("{service}.fullaccess.all"),
    ];
    granted
        .split([',', ' '])
        .filter(|g| !g.is_empty())
        .any(|g| covering.iter().any(|c| c.eq_ignore_ascii_case(g)))
}

/// A product's answers to a token it refuses.
pub struct Denials {
    pub invalid_token: fn() -> Response,
    pub scope: fn() -> Response,
}

/// The checks every product call starts with: a valid token, one of the `needed` scopes,
/// then one credit of the organisation (its 429 as the CRM answers it).
pub fn admit(
    dc: &DataCenter,
    headers: &HeaderMap,
    needed: &[&str],
    denials: &Denials,
) -> Result<Issued, Response> {
    let Some(token) = dc.oauth.check_bearer(headers) else {
        return Err((denials.invalid_token)());
    };
    if !needed.iter().any(|n| allows(&token.scope, n)) {
        return Err((denials.scope)());
    }
    dc.spend_credit()?;
    Ok(token)
}

/// A path parameter (a record's id), its decoding failure (`%FF`) kept for the handler to
/// answer in its product's shape instead of axum's plain-text 400.
pub type PathId = Result<Path<String>, axum::extract::rejection::PathRejection>;

/// The id of a [`PathId`]; `""`, which names no record, when it could not be decoded.
pub fn path_id(p: PathId) -> String {
    p.map(|Path(id)| id).unwrap_or_default()
}

/// An error answer in a product's shape; the admin routes show its body.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub body: Value,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A body field that is missing or holds what the product does not take, by its JSON
/// pointer (`/contact/lastName`).
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    Missing(String),
    Invalid(String),
}

impl Bad {
    pub fn pointer(&self) -> &str {
        match self {
            Bad::Missing(p) | Bad::Invalid(p) => p,
        }
    }

    /// The field's own name (`lastName`).
    pub fn field(&self) -> &str {
        let p = self.pointer();
        p.rsplit('/').find(|s| !s.is_empty()).unwrap_or(p)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Bad::Missing(_) => "missing",
            Bad::Invalid(_) => "invalid",
        }
    }
}

/// A JSON object body, read field by field with its types checked.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// The body as a JSON object, or `None` when it is not one.
pub fn json_object(body: &Bytes) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, path: &'a str) -> Fields<'a> {
        Fields { map, path }
    }

    pub fn pointer(&self, key: &str) -> String {
        format!("{}/{key}", self.path)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A text field: absent or null is `None`; anything but a string is invalid.
    pub fn text(&self, key: &str) -> Result<Option<String>, Bad> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Bad::Invalid(self.pointer(key))),
        }
    }

    /// A text field that must be there and not blank.
    pub fn required_text(&self, key: &str) -> Result<String, Bad> {
        match self.text(key)? {
            None => Err(Bad::Missing(self.pointer(key))),
            Some(s) if s.trim().is_empty() => Err(Bad::Invalid(self.pointer(key))),
            Some(s) => Ok(s),
        }
    }

    /// A number field.
    pub fn number(&self, key: &str) -> Result<Option<f64>, Bad> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| Bad::Invalid(self.pointer(key))),
        }
    }

    /// An id: a string (blank is none, as an empty `item_id` is to Zoho), or a whole number
    /// (Zoho's ids are long numbers some clients send unquoted).
    pub fn id(&self, key: &str) -> Result<Option<String>, Bad> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => Err(Bad::Invalid(self.pointer(key))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, Bad> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(Bad::Invalid(self.pointer(key))),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, Bad> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Bad::Invalid(self.pointer(key))),
        }
    }
}

/// An email address as the products check one: something around an `@`.
pub fn is_address(s: &str) -> bool {
    let s = s.trim();
    s.split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty() && !s.contains(' '))
}

/// The resources the admin routes seed, count and delete.
#[derive(Debug, Clone, Copy)]
enum Seedable {
    Finance(&'static finance::Resource),
    DeskTickets,
    PeopleEmployees,
}

impl Seedable {
    fn named(name: &str) -> Option<Seedable> {
        if let Some(r) = finance::RESOURCES.into_iter().find(|r| r.admin == name) {
            return Some(Seedable::Finance(r));
        }
        match name {
            "desk_tickets" => Some(Seedable::DeskTickets),
            "people_employees" => Some(Seedable::PeopleEmployees),
            _ => None,
        }
    }

    fn table(self) -> Table {
        match self {
            Seedable::Finance(r) => r.table,
            Seedable::DeskTickets => Table::DeskTickets,
            Seedable::PeopleEmployees => Table::PeopleEmployees,
        }
    }

    /// The fields a generated record `i` starts from: what the API requires, and its name
    /// ("Seeded Contact 3").
    fn generated(self, a: &Apps, i: u64) -> Map<String, Value> {
        match self {
            Seedable::Finance(r) => (r.generated)(i),
            Seedable::DeskTickets => desk::generated(a, i),
            Seedable::PeopleEmployees => people::generated(i),
        }
    }

    fn insert(self, a: &mut Apps, record: &Map<String, Value>) -> Result<String, Refusal> {
        match self {
            Seedable::Finance(r) => finance::insert(a, r, record),
            Seedable::DeskTickets => desk::insert_ticket(a, &desk::with_seed_defaults(a, record)),
            Seedable::PeopleEmployees => people::insert(a, record),
        }
    }
}

/// Admin routes of one data centre's products (no token, no credits):
/// `POST /_sandbox/zoho/apps/<resource>` seeds `{"records": [...]}` or
/// `{"count": n, "fields": {...}}` through the API's own checks, `GET` counts live records,
/// `DELETE /_sandbox/zoho/apps/<resource>/<id>` deletes one, `GET /_sandbox/zoho/mail/sent`
/// lists what Mail sent.
pub fn admin_router(dc: DataCenter) -> Router {
    Router::new()
        .route("/_sandbox/zoho/apps/:resource", get(count).post(seed))
        .route(
            "/_sandbox/zoho/apps/:resource/:id",
            axum::routing::delete(delete),
        )
        .route("/_sandbox/zoho/mail/sent", get(sent))
        .with_state(dc)
}

fn unknown_resource(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no such resource: {name}; one of books_contacts, books_invoices, inventory_items, desk_tickets, people_employees")})),
    )
        .into_response()
}

async fn count(State(dc): State<DataCenter>, Path(resource): Path<String>) -> Response {
    let Some(s) = Seedable::named(&resource) else {
        return unknown_resource(&resource);
    };
    let n = dc.apps.with(|a| a.table(s.table()).len());
    Json(json!({"count": n})).into_response()
}

/// Most records one seeding call makes.
const SEED_LIMIT: u64 = 1_000_000;
/// Up to this many, the answer lists every id.
const LISTED_IDS: usize = 1000;

async fn seed(State(dc): State<DataCenter>, Path(resource): Path<String>, body: Bytes) -> Response {
    let Some(s) = Seedable::named(&resource) else {
        return unknown_resource(&resource);
    };
    let Some(body) = json_object(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the body is not a JSON object"})),
        )
            .into_response();
    };
    let records: Vec<Map<String, Value>> = match body.get("records") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            let objects: Vec<_> = list.iter().filter_map(|r| r.as_object().cloned()).collect();
            if objects.len() != list.len() {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "records must be JSON objects"})),
                )
                    .into_response();
            }
            objects
        }
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "records must be a list"})),
            )
                .into_response()
        }
    };
    let n = body
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(SEED_LIMIT);
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    dc.apps.with(|a| {
        let mut ids = Vec::new();
        let generated = (0..n).map(|i| {
            let mut r = s.generated(a, i);
            for (k, v) in &fields {
                // the generated name wins, as the CRM's seeding does
                if !r.contains_key(k) || !is_name(s, k) {
                    r.insert(k.clone(), v.clone());
                }
            }
            r
        });
        let all: Vec<Map<String, Value>> = records.into_iter().chain(generated).collect();
        for (index, r) in all.iter().enumerate() {
            match s.insert(a, r) {
                Ok(id) => ids.push(id),
                Err(refusal) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": refusal.body, "index": index, "created": ids.len()})),
                    )
                        .into_response()
                }
            }
        }
        let mut answer = json!({"created": ids.len(), "first": ids.first(), "last": ids.last()});
        if ids.len() <= LISTED_IDS {
            answer["ids"] = json!(ids);
        }
        Json(answer).into_response()
    })
}

/// Whether `key` is the field a generated record is named by.
fn is_name(s: Seedable, key: &str) -> bool {
    match s {
        Seedable::Finance(r) => r.name_field == key,
        Seedable::DeskTickets => key == "subject",
        Seedable::PeopleEmployees => key == "LastName",
    }
}

async fn delete(
    State(dc): State<DataCenter>,
    Path((resource, id)): Path<(String, String)>,
) -> Response {
    let Some(s) = Seedable::named(&resource) else {
        return unknown_resource(&resource);
    };
    if dc.apps.with(|a| a.table_mut(s.table()).delete(&id)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no {resource} record {id}")})),
        )
            .into_response()
    }
}

async fn sent(State(dc): State<DataCenter>) -> Json<Value> {
    Json(json!({"messages": dc.apps.with(|a| mail::sent(a))}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_as_zoho_accounts_documents() {
        assert!(allows(
            "ZohoBooks.fullaccess.all",
            "ZohoBooks.invoices.CREATE"
        ));
        assert!(!allows(
            "ZohoBooks.fullaccess.all",
            "ZohoInventory.items.READ"
        ));
        assert!(allows(
            "ZohoInventory.FullAccess.ALL",
            "ZohoInventory.items.READ"
        ));
        assert!(allows("Desk.tickets.ALL", "Desk.tickets.UPDATE"));
        assert!(!allows("Desk.tickets.ALL", "Desk.contacts.READ"));
        assert!(allows("ZOHOPEOPLE.forms.ALL", "ZOHOPEOPLE.forms.READ"));
        assert!(allows(
            "ZohoMail.accounts.READ ZohoMail.messages.ALL",
            "ZohoMail.messages.CREATE"
        ));
        assert!(!allows(
            "ZohoMail.messages.READ",
            "ZohoMail.messages.CREATE"
        ));
        assert!(allows(
            "ZohoCRM.modules.ALL,ZohoCRM.org.READ",
            "ZohoCRM.org.READ"
        ));
        assert!(!allows("", "ZohoCRM.org.READ"));
    }

    #[test]
    fn times_are_read_in_zoho_s_offsets() {
        let want = Some(1_767_225_600_000);
        assert_eq!(parse_time_ms("2026-01-01T00:00:00+0000"), want);
        assert_eq!(parse_time_ms("2026-01-01T00:00:00+00:00"), want);
        assert_eq!(parse_time_ms("2026-01-01T00:00:00 0000"), want);
        assert_eq!(parse_time_ms("2026-01-01T00:00:00.000Z"), want);
        assert_eq!(parse_time_ms("2026-01-01T01:00:00+01:00"), want);
        assert_eq!(parse_time_ms("2026-01-01"), None);
        assert_eq!(parse_time_ms("yesterday"), None);
    }

    #[test]
    fn body_fields_name_what_is_wrong() {
        let m = json!({"a": "x", "n": 2, "blank": " ", "o": {"b": 1}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let f = Fields::new(&m, "");
        assert_eq!(f.required_text("a"), Ok("x".into()));
        assert_eq!(f.required_text("z"), Err(Bad::Missing("/z".into())));
        assert_eq!(f.required_text("blank"), Err(Bad::Invalid("/blank".into())));
        assert_eq!(f.text("n"), Err(Bad::Invalid("/n".into())));
        assert_eq!(f.id("n"), Ok(Some("2".into())));
        assert_eq!(f.id("blank"), Ok(None));
        assert_eq!(f.id("o"), Err(Bad::Invalid("/o".into())));
        let inner = f.object("o").ok().flatten().cloned().unwrap_or_default();
        let nested = Fields::new(&inner, "/o");
        let bad = nested.text("b").unwrap_err();
        assert_eq!(
            (bad.pointer(), bad.field(), bad.kind()),
            ("/o/b", "b", "invalid")
        );
        assert!(is_address("a@b.c") && !is_address("a b@c") && !is_address("@c"));
    }
}
