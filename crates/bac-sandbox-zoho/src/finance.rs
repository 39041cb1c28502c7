//! Zoho Books (`/books/v3`: contacts, invoices) and Zoho Inventory (`/inventory/v1`: items),
//! which Zoho builds on one "Zoho Finance" platform and so answer alike: `{"code": 0,
//! "message": "success", ...}`, errors as HTTP 4xx with a numeric `code`, an
//! `organization_id` query parameter on every call naming the one organisation both products
//! share, `page`/`per_page` paging with `page_context.has_more_page`, `sort_column`/
//! `sort_order`, and the `last_modified_time` filter incremental syncs read. One
//! implementation serves every resource; a [`Resource`] says what differs.
use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, MethodRouter},
    Json, Router,
};
use bac_sandbox_kit::Stored;
use serde_json::{json, Map, Value};

use crate::{
    apps::{self, Apps, Bad, Denials, Fields, PathId, Refusal, Table},
    DataCenter,
};

/// The two products on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Books,
    Inventory,
}

impl Product {
    pub fn base(self) -> &'static str {
        match self {
            Product::Books => "/books/v3",
            Product::Inventory => "/inventory/v1",
        }
    }

    /// The service its scopes name (`ZohoBooks.invoices.READ`).
    pub fn service(self) -> &'static str {
        match self {
            Product::Books => "ZohoBooks",
            Product::Inventory => "ZohoInventory",
        }
    }
}

/// A query parameter that filters a list by a stored field's exact value.
#[derive(Debug)]
pub struct Filter {
    pub param: &'static str,
    /// The values it takes (`None`: any).
    pub values: Option<&'static [&'static str]>,
}

/// Checks a body and gives the fields to store: all of them when creating (`None`), the
/// changes when updating the given record.
pub type Build =
    fn(&mut Apps, Fields, Option<&Map<String, Value>>) -> Result<Map<String, Value>, Refusal>;

/// What one resource of a finance product is: its paths, names, messages and fields.
#[derive(Debug)]
pub struct Resource {
    pub product: Product,
    /// Its name on the admin routes (`books_contacts`).
    pub admin: &'static str,
    pub table: Table,
    /// Its scopes' resource (`ZohoBooks.contacts.READ`) and its path (`/books/v3/contacts`).
    pub plural: &'static str,
    /// The key of one record in an answer (`contact`); its id is `<singular>_id`.
    pub singular: &'static str,
    /// `Contact does not exist.`
    pub label: &'static str,
    pub added: &'static str,
    /// The answer to an update; `None`: the resource takes no `PUT`.
    pub updated: Option<&'static str>,
    /// Text columns it sorts by beside `created_time` and `last_modified_time`.
    pub sort_columns: &'static [&'static str],
    pub filters: &'static [Filter],
    /// Fields lists leave out (an invoice's `line_items`).
    pub list_omits: &'static [&'static str],
    /// The field a generated record is named by.
    pub name_field: &'static str,
    pub build: Build,
    /// The fields of generated record `i` (admin seeding).
    pub generated: fn(u64) -> Map<String, Value>,
}

pub static CONTACTS: Resource = Resource {
    product: Product::Books,
    admin: "books_contacts",
    table: Table::BooksContacts,
    plural: "contacts",
    singular: "contact",
    label: "Contact",
    added: "The contact has been added.",
    updated: None,
    sort_columns: &["contact_name"],
    filters: &[Filter {
        param: "contact_type",
        values: Some(&["customer", "vendor"]),
    }],
    list_omits: &[],
    name_field: "contact_name",
    build: build_contact,
    generated: |i| object(json!({"contact_name": format!("Seeded Contact {i}")})),
};

pub static INVOICES: Resource = Resource {
    product: Product::Books,
    admin: "books_invoices",
    table: Table::BooksInvoices,
    plural: "invoices",
    singular: "invoice",
    label: "Invoice",
    added: "The invoice has been created.",
    updated: Some("Invoice information has been updated."),
    sort_columns: &["customer_name", "invoice_number", "date", "due_date"],
    filters: &[
        Filter {
            param: "customer_id",
            values: None,
        },
        Filter {
            param: "status",
            values: None,
        },
    ],
    list_omits: &["line_items"],
    name_field: "reference_number",
    build: build_invoice,
    generated: |i| {
        object(json!({"reference_number": format!("Seeded Invoice {i}"),
                      "line_items": [{"name": format!("Seeded Invoice {i}"), "rate": 100.0, "quantity": 1}]}))
    },
};

pub static ITEMS: Resource = Resource {
    product: Product::Inventory,
    admin: "inventory_items",
    table: Table::InventoryItems,
    plural: "items",
    singular: "item",
    label: "Item",
    added: "The item has been added.",
    updated: None,
    sort_columns: &["name", "sku"],
    filters: &[],
    list_omits: &[],
    name_field: "name",
    build: build_item,
    generated: |i| object(json!({"name": format!("Seeded Item {i}"), "rate": 0.0})),
};

pub static RESOURCES: [&Resource; 3] = [&CONTACTS, &INVOICES, &ITEMS];

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Books' time format: to the second, the offset without a colon.
pub fn books_time(secs: i64) -> String {
    apps::format_time(secs, "%Y-%m-%dT%H:%M:%S+0000")
}

fn refusal(status: StatusCode, code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        body: json!({"code": code, "message": message.into()}),
    }
}

/// Code 4: a body field the product does not take (missing ones are answered the same).
fn invalid(field: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        4,
        format!("Invalid value passed for {field}"),
    )
}

fn bad(b: Bad) -> Refusal {
    invalid(b.field())
}

/// Code 2: a query parameter the product does not take.
fn invalid_param(param: &str) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        2,
        format!("Invalid value passed for {param}"),
    )
    .into_response()
}

fn not_authorised() -> Response {
    refusal(
        StatusCode::UNAUTHORIZED,
        57,
        "You are not authorized to perform this operation",
    )
    .into_response()
}

const DENIALS: Denials = Denials {
    invalid_token: not_authorised,
    scope: not_authorised,
};

pub fn router(dc: DataCenter) -> Router {
    let mut r = Router::new();
    for product in [Product::Books, Product::Inventory] {
        r = r.route(
            &format!("{}/organizations", product.base()),
            get(
                move |State(dc): State<DataCenter>, headers: HeaderMap| async move {
                    organizations(&dc, product, &headers)
                },
            ),
        );
    }
    for res in RESOURCES {
        let path = format!("{}/{}", res.product.base(), res.plural);
        r = r.route(
            &path,
            get(
                move |State(dc): State<DataCenter>, headers: HeaderMap, Query(q): Params| async move {
                    list(&dc, res, &headers, &q)
                },
            )
            .post(
                move |State(dc): State<DataCenter>,
                      headers: HeaderMap,
                      Query(q): Params,
                      body: Bytes| async move { create(&dc, res, &headers, &q, &body) },
            ),
        );
        let mut one: MethodRouter<DataCenter> = get(
            move |State(dc): State<DataCenter>,
                  headers: HeaderMap,
                  id: PathId,
                  Query(q): Params| async move {
                get_one(&dc, res, &headers, &apps::path_id(id), &q)
            },
        );
        if res.updated.is_some() {
            one = one.put(
                move |State(dc): State<DataCenter>,
                      headers: HeaderMap,
                      id: PathId,
                      Query(q): Params,
                      body: Bytes| async move {
                    update(&dc, res, &headers, &apps::path_id(id), &q, &body)
                },
            );
        }
        r = r.route(&format!("{path}/:id"), one);
    }
    r.with_state(dc)
}

type Params = Query<HashMap<String, String>>;

/// Token, scope, credit, then the `organization_id` every call but the organisations list
/// names.
fn admit(
    dc: &DataCenter,
    res: &Resource,
    op: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(), Response> {
    let service = res.product.service();
    apps::admit(
        dc,
        headers,
        &[&format!("{service}.{}.{op}", res.plural)],
        &DENIALS,
    )?;
    let org = q.get("organization_id").map(|s| s.trim()).unwrap_or("");
    if org.is_empty() || !org.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_param("organization_id"));
    }
    if org != dc.apps.with(|a| a.finance_org()) {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            6024,
            "You are not a member of this organization",
        )
        .into_response());
    }
    Ok(())
}

fn organizations(dc: &DataCenter, product: Product, headers: &HeaderMap) -> Response {
    let scope = format!("{}.settings.READ", product.service());
    if let Err(r) = apps::admit(dc, headers, &[&scope], &DENIALS) {
        return r;
    }
    let org = dc.apps.with(|a| a.finance_org());
    Json(json!({
        "code": 0,
        "message": "success",
        "organizations": [{
            "organization_id": org,
            "name": dc.company_name,
            "is_default_org": true,
            "currency_code": "USD",
            "time_zone": "UTC",
        }],
    }))
    .into_response()
}

/// A record as the product answers it: its id, its fields, its times.
fn render(res: &Resource, row: &Stored, in_list: bool) -> Value {
    let mut out = apps::public_fields(row);
    if in_list {
        for k in res.list_omits {
            out.remove(*k);
        }
    }
    out.insert(format!("{}_id", res.singular), json!(row.id));
    out.insert(
        "created_time".into(),
        json!(books_time(apps::created_of(row))),
    );
    out.insert("last_modified_time".into(), json!(books_time(row.modified)));
    Value::Object(out)
}

fn success(message: &str, key: &str, record: Value) -> Value {
    let mut out = json!({"code": 0, "message": message});
    out[key] = record;
    out
}

/// A whole-number query parameter with a default and a lower bound.
fn count_param(
    q: &HashMap<String, String>,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, Response> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| invalid_param(name)),
    }
}

fn list(
    dc: &DataCenter,
    res: &'static Resource,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    if let Err(r) = admit(dc, res, "READ", headers, q) {
        return r;
    }
    let page = match count_param(q, "page", 1, 1..=usize::MAX / 1024) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let per_page = match count_param(q, "per_page", 200, 1..=200) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let sort_column = q
        .get("sort_column")
        .map_or("created_time", String::as_str)
        .to_string();
    if !matches!(sort_column.as_str(), "created_time" | "last_modified_time")
        && !res.sort_columns.contains(&sort_column.as_str())
    {
        return invalid_param("sort_column");
    }
    let descending = match q.get("sort_order").map(String::as_str) {
        None | Some("A") => false,
        Some("D") => true,
        Some(_) => return invalid_param("sort_order"),
    };
    let since = match q.get("last_modified_time") {
        None => i64::MIN,
        Some(t) => match apps::parse_time_ms(t) {
            // records modified at or after it, to the second the product keeps
            Some(ms) => ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0),
            None => return invalid_param("last_modified_time"),
        },
    };
    let mut filters = Vec::new();
    for f in res.filters {
        if let Some(v) = q.get(f.param) {
            if f.values
                .is_some_and(|allowed| !allowed.contains(&v.as_str()))
            {
                return invalid_param(f.param);
            }
            filters.push((f.param, v.as_str()));
        }
    }
    let (records, more) = dc.apps.with(|a| {
        let mut rows = a
            .table(res.table)
            .changed_since(since, None, usize::MAX, false);
        rows.retain(|r| {
            filters.iter().all(|(k, v)| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get(*k))
                    .and_then(Value::as_str)
                    == Some(*v)
            })
        });
        match sort_column.as_str() {
            // the table's own order: (modified, id)
            "last_modified_time" => {}
            "created_time" => rows.sort_by(|x, y| {
                (apps::created_of(x), apps::natural(&x.id))
                    .cmp(&(apps::created_of(y), apps::natural(&y.id)))
            }),
            column => {
                let key = |r: &Stored| {
                    r.fields
                        .as_ref()
                        .and_then(|f| f.get(column))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_lowercase()
                };
                rows.sort_by_cached_key(|r| (key(r), r.id.len(), r.id.clone()));
            }
        }
        if descending {
            rows.reverse();
        }
        let offset = (page - 1).saturating_mul(per_page);
        let records: Vec<Value> = rows
            .iter()
            .skip(offset)
            .take(per_page)
            .map(|r| render(res, r, true))
            .collect();
        let more = offset.saturating_add(records.len()) < rows.len();
        (records, more)
    });
    let mut answer = json!({
        "code": 0,
        "message": "success",
        "page_context": {
            "page": page,
            "per_page": per_page,
            "has_more_page": more,
            "sort_column": sort_column,
            "sort_order": if descending { "D" } else { "A" },
        },
    });
    answer[res.plural] = Value::Array(records);
    Json(answer).into_response()
}

fn not_found(res: &Resource) -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        1002,
        format!("{} does not exist.", res.label),
    )
    .into_response()
}

fn get_one(
    dc: &DataCenter,
    res: &'static Resource,
    headers: &HeaderMap,
    id: &str,
    q: &HashMap<String, String>,
) -> Response {
    if let Err(r) = admit(dc, res, "READ", headers, q) {
        return r;
    }
    let found = dc.apps.with(|a| {
        a.table(res.table)
            .row(id)
            .filter(|r| r.fields.is_some())
            .map(|r| render(res, r, false))
    });
    match found {
        Some(record) => Json(success("success", res.singular, record)).into_response(),
        None => not_found(res),
    }
}

/// Checks and stores a new record as the API does (the admin routes seed through it).
pub fn insert(a: &mut Apps, res: &Resource, body: &Map<String, Value>) -> Result<String, Refusal> {
    let fields = (res.build)(a, Fields::new(body, ""), None)?;
    Ok(a.create(res.table, fields))
}

fn create(
    dc: &DataCenter,
    res: &'static Resource,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    if let Err(r) = admit(dc, res, "CREATE", headers, q) {
        return r;
    }
    let Some(body) = apps::json_object(body) else {
        // Zoho Finance names the whole body by the form field it once came in
        return invalid("JSONString").into_response();
    };
    let created = dc.apps.with(|a| {
        let id = insert(a, res, &body)?;
        a.table(res.table)
            .row(&id)
            .map(|r| render(res, r, false))
            .ok_or_else(|| invalid(res.singular))
    });
    match created {
        Ok(record) => (
            StatusCode::CREATED,
            Json(success(res.added, res.singular, record)),
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

fn update(
    dc: &DataCenter,
    res: &'static Resource,
    headers: &HeaderMap,
    id: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    if let Err(r) = admit(dc, res, "UPDATE", headers, q) {
        return r;
    }
    let Some(current) = dc.apps.with(|a| a.table(res.table).get(id).cloned()) else {
        return not_found(res);
    };
    let Some(body) = apps::json_object(body) else {
        return invalid("JSONString").into_response();
    };
    let updated = dc.apps.with(|a| {
        let changes = (res.build)(a, Fields::new(&body, ""), Some(&current))?;
        a.table_mut(res.table).update(id, changes);
        a.table(res.table)
            .row(id)
            .filter(|r| r.fields.is_some())
            .map(|r| render(res, r, false))
            .ok_or_else(|| invalid(res.singular))
    });
    match updated {
        Ok(record) => Json(success(
            res.updated.unwrap_or("success"),
            res.singular,
            record,
        ))
        .into_response(),
        Err(r) => r.into_response(),
    }
}

/// Text fields a record keeps as `""` when not given, as Zoho Finance answers them.
fn texts(
    b: &Fields,
    out: &mut Map<String, Value>,
    keys: &[&str],
    creating: bool,
) -> Result<(), Refusal> {
    for k in keys {
        match b.text(k).map_err(bad)? {
            Some(v) => {
                out.insert((*k).into(), json!(v));
            }
            None if creating => {
                out.insert((*k).into(), json!(""));
            }
            None => {}
        }
    }
    Ok(())
}

fn build_contact(
    _: &mut Apps,
    b: Fields,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, Refusal> {
    let creating = current.is_none();
    let mut out = Map::new();
    if creating || b.has("contact_name") {
        out.insert(
            "contact_name".into(),
            json!(b.required_text("contact_name").map_err(bad)?),
        );
    }
    texts(&b, &mut out, &["company_name", "phone"], creating)?;
    if let Some(email) = b.text("email").map_err(bad)? {
        if !email.is_empty() && !apps::is_address(&email) {
            return Err(invalid("email"));
        }
        out.insert("email".into(), json!(email));
    } else if creating {
        out.insert("email".into(), json!(""));
    }
    match b.text("contact_type").map_err(bad)?.as_deref() {
        Some(t @ ("customer" | "vendor")) => {
            out.insert("contact_type".into(), json!(t));
        }
        Some(_) => return Err(invalid("contact_type")),
        None if creating => {
            out.insert("contact_type".into(), json!("customer"));
        }
        None => {}
    }
    if creating {
        out.insert("status".into(), json!("active"));
        out.insert("currency_code".into(), json!("USD"));
        out.insert("outstanding_receivable_amount".into(), json!(0.0));
    }
    Ok(out)
}

/// A `YYYY-MM-DD` field.
fn date(b: &Fields, key: &str) -> Result<Option<String>, Refusal> {
    match b.text(key).map_err(bad)? {
        None => Ok(None),
        Some(d) if d.len() == 10 && chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").is_ok() => {
            Ok(Some(d))
        }
        Some(_) => Err(invalid(key)),
    }
}

/// Money rounded to the cent, as the product shows it.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn build_invoice(
    a: &mut Apps,
    b: Fields,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, Refusal> {
    let creating = current.is_none();
    let mut out = Map::new();
    match b.id("customer_id").map_err(bad)? {
        Some(customer) => {
            let Some(name) = a
                .table(Table::BooksContacts)
                .get(&customer)
                .map(|c| c.get("contact_name").cloned().unwrap_or(Value::Null))
            else {
                return Err(invalid("customer_id"));
            };
            out.insert("customer_id".into(), json!(customer));
            out.insert("customer_name".into(), name);
        }
        None if creating => return Err(invalid("customer_id")),
        None => {}
    }
    let today = apps::format_time(a.now(), "%Y-%m-%d");
    let given_date = date(&b, "date")?;
    if let Some(d) = &given_date {
        out.insert("date".into(), json!(d));
    } else if creating {
        out.insert("date".into(), json!(today));
    }
    match date(&b, "due_date")? {
        Some(d) => {
            out.insert("due_date".into(), json!(d));
        }
        None if creating => {
            out.insert("due_date".into(), json!(given_date.unwrap_or(today)));
        }
        None => {}
    }
    texts(&b, &mut out, &["reference_number", "notes"], creating)?;
    match b.text("currency_code").map_err(bad)? {
        Some(c) if c.trim().is_empty() => return Err(invalid("currency_code")),
        Some(c) => {
            out.insert("currency_code".into(), json!(c));
        }
        None if creating => {
            out.insert("currency_code".into(), json!("USD"));
        }
        None => {}
    }
    match b.array("line_items").map_err(bad)? {
        Some(list) if !list.is_empty() => {
            let previous: Vec<&str> = current
                .and_then(|c| c.get("line_items"))
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|li| li.get("line_item_id").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let mut lines = Vec::new();
            let mut sub_total = 0.0;
            for (i, line) in list.iter().enumerate() {
                let Some(line) = line.as_object() else {
                    return Err(invalid("line_items"));
                };
                let path = format!("/line_items/{i}");
                let l = Fields::new(line, &path);
                let item_id = l.id("item_id").map_err(bad)?;
                let mut name = l.text("name").map_err(bad)?;
                if let Some(item) = &item_id {
                    // Books and Inventory share the organisation's items
                    let Some(item) = a.table(Table::InventoryItems).get(item) else {
                        return Err(invalid("item_id"));
                    };
                    if name.is_none() {
                        name = item.get("name").and_then(Value::as_str).map(str::to_string);
                    }
                }
                let Some(name) = name.filter(|n| !n.trim().is_empty() || item_id.is_some()) else {
                    return Err(invalid("name"));
                };
                let rate = match l.number("rate").map_err(bad)? {
                    Some(r) if r >= 0.0 => r,
                    _ => return Err(invalid("rate")),
                };
                let quantity = match l.number("quantity").map_err(bad)? {
                    None => 1.0,
                    Some(q) if q > 0.0 => q,
                    Some(_) => return Err(invalid("quantity")),
                };
                let description = l.text("description").map_err(bad)?.unwrap_or_default();
                let kept = l
                    .id("line_item_id")
                    .map_err(bad)?
                    .filter(|id| previous.contains(&id.as_str()));
                let line_item_id = match kept {
                    Some(id) => id,
                    None => {
                        a.line_items += 1;
                        format!("46{}9{:09}", a.digit, a.line_items)
                    }
                };
                let item_total = cents(rate * quantity);
                sub_total += item_total;
                lines.push(json!({
                    "line_item_id": line_item_id,
                    "item_id": item_id.unwrap_or_default(),
                    "name": name,
                    "description": description,
                    "rate": rate,
                    "quantity": quantity,
                    "item_total": item_total,
                }));
            }
            let total = cents(sub_total);
            out.insert("line_items".into(), Value::Array(lines));
            out.insert("sub_total".into(), json!(total));
            out.insert("total".into(), json!(total));
            out.insert("balance".into(), json!(total));
        }
        Some(_) => return Err(invalid("line_items")),
        None if creating => return Err(invalid("line_items")),
        None => {}
    }
    if creating {
        a.invoice_numbers += 1;
        out.insert(
            "invoice_number".into(),
            json!(format!("INV-{:06}", a.invoice_numbers)),
        );
        out.insert("status".into(), json!("draft"));
    }
    Ok(out)
}

fn build_item(
    a: &mut Apps,
    b: Fields,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, Refusal> {
    let creating = current.is_none();
    let mut out = Map::new();
    if creating || b.has("name") {
        out.insert("name".into(), json!(b.required_text("name").map_err(bad)?));
    }
    match b.number("rate").map_err(bad)? {
        Some(r) if r >= 0.0 => {
            out.insert("rate".into(), json!(r));
        }
        None if !creating => {}
        _ => return Err(invalid("rate")),
    }
    match b.number("purchase_rate").map_err(bad)? {
        Some(r) if r >= 0.0 => {
            out.insert("purchase_rate".into(), json!(r));
        }
        Some(_) => return Err(invalid("purchase_rate")),
        None if creating => {
            out.insert("purchase_rate".into(), json!(0.0));
        }
        None => {}
    }
    texts(&b, &mut out, &["sku", "description"], creating)?;
    match b.text("unit").map_err(bad)? {
        Some(u) if !u.trim().is_empty() => {
            out.insert("unit".into(), json!(u));
        }
        _ if creating => {
            out.insert("unit".into(), json!("pcs"));
        }
        _ => {}
    }
    if creating {
        let stock = b.number("initial_stock").map_err(bad)?.unwrap_or(0.0);
        out.insert("stock_on_hand".into(), json!(stock));
        out.insert("available_stock".into(), json!(stock));
        out.insert("status".into(), json!("active"));
    }
    if let Some(sku) = out
        .get("sku")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let taken = a
            .table(Table::InventoryItems)
            .changed_since(i64::MIN, None, usize::MAX, false)
            .iter()
            .any(|r| {
                r.fields
                    .as_ref()
                    .and_then(|f| f.get("sku"))
                    .and_then(Value::as_str)
                    == Some(sku)
            });
        if taken {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                1001,
                format!("Item \"{sku}\" already exists."),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_writes_its_offset_without_a_colon() {
        assert_eq!(books_time(1_767_225_600), "2026-01-01T00:00:00+0000");
    }

    #[test]
    fn invoices_total_their_lines_to_the_cent() {
        let mut a = Apps::new(bac_sandbox_kit::SandboxClock::default(), 1, "eu", "a@b.c");
        let customer = a.create(Table::BooksContacts, object(json!({"contact_name": "Ana"})));
        let body = object(json!({"customer_id": customer, "line_items": [
            {"name": "A", "rate": 0.1, "quantity": 3}, {"name": "B", "rate": 10}]}));
        let fields = build_invoice(&mut a, Fields::new(&body, ""), None).unwrap();
        assert_eq!(fields["total"], json!(10.3));
        assert_eq!(fields["customer_name"], "Ana");
        assert_eq!(fields["invoice_number"], "INV-000001");
        assert_eq!(fields["date"], fields["due_date"]);
        let no_rate = object(json!({"customer_id": customer, "line_items": [{"name": "A"}]}));
        let err = build_invoice(&mut a, Fields::new(&no_rate, ""), None).unwrap_err();
        assert_eq!(err.body["message"], "Invalid value passed for rate");
    }
}
