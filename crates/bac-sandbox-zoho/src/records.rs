//! Zoho CRM's record APIs for the modules the fleet uses (Leads, Contacts, Deals): insert,
//! list (`fields` required, `page`/`per_page` up to the first 2,000 records, `page_token`
//! past them, `sort_by`/`sort_order`, `If-Modified-Since`), get, update, delete, the
//! deleted-records list, search by criteria, and the metadata Zoho's SDKs read first
//! (`settings/modules`, `settings/fields`). Answers, errors and status codes are Zoho's:
//! 201 for an insert, 204 for an empty list or an unknown record, per-record errors inside
//! `data` (`MANDATORY_NOT_FOUND`, `INVALID_DATA` with `api_name` and `expected_data_type`).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bac_sandbox_kit::{RecordTable, SandboxClock, Stored};
use serde_json::{json, Map, Value};

/// A field of a module as `settings/fields` describes it.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub api_name: &'static str,
    pub label: &'static str,
    /// Zoho's `data_type`: text, email, phone, picklist, currency, double, integer, date,
    /// datetime, textarea, lookup, ownerlookup.
    pub data_type: &'static str,
    pub mandatory: bool,
    pub read_only: bool,
    pub length: u32,
}

const fn f(api_name: &'static str, label: &'static str, data_type: &'static str) -> FieldDef {
    FieldDef {
        api_name,
        label,
        data_type,
        mandatory: false,
        read_only: false,
        length: 255,
    }
}

const fn required(mut d: FieldDef) -> FieldDef {
    d.mandatory = true;
    d
}

const fn read_only(mut d: FieldDef) -> FieldDef {
    d.read_only = true;
    d
}

const COMMON: &[FieldDef] = &[
    f("Owner", "Lead Owner", "ownerlookup"),
    read_only(f("Created_Time", "Created Time", "datetime")),
    read_only(f("Modified_Time", "Modified Time", "datetime")),
    read_only(f("Created_By", "Created By", "ownerlookup")),
    read_only(f("Modified_By", "Modified By", "ownerlookup")),
    f("Description", "Description", "textarea"),
];

/// A CRM module the sandbox serves.
#[derive(Debug, Clone, Copy)]
pub struct ModuleDef {
    pub api_name: &'static str,
    pub singular: &'static str,
    /// The field shown as the record's name (`display_name` of a deleted record).
    pub name_field: &'static str,
    pub fields: &'static [FieldDef],
}

pub const MODULES: &[ModuleDef] = &[
    ModuleDef {
        api_name: "Leads",
        singular: "Lead",
        name_field: "Last_Name",
        fields: &[
            f("First_Name", "First Name", "text"),
            required(f("Last_Name", "Last Name", "text")),
            f("Company", "Company", "text"),
            f("Email", "Email", "email"),
            f("Phone", "Phone", "phone"),
            f("Mobile", "Mobile", "phone"),
            f("Lead_Source", "Lead Source", "picklist"),
            f("Lead_Status", "Lead Status", "picklist"),
            f("Industry", "Industry", "picklist"),
            f("Annual_Revenue", "Annual Revenue", "currency"),
        ],
    },
    ModuleDef {
        api_name: "Contacts",
        singular: "Contact",
        name_field: "Last_Name",
        fields: &[
            f("First_Name", "First Name", "text"),
            required(f("Last_Name", "Last Name", "text")),
            f("Email", "Email", "email"),
            f("Phone", "Phone", "phone"),
            f("Mobile", "Mobile", "phone"),
            f("Title", "Title", "text"),
            f("Department", "Department", "text"),
            f("Account_Name", "Account Name", "lookup"),
            f("Mailing_City", "Mailing City", "text"),
            f("Mailing_Country", "Mailing Country", "text"),
        ],
    },
    ModuleDef {
        api_name: "Deals",
        singular: "Deal",
        name_field: "Deal_Name",
        fields: &[
            required(f("Deal_Name", "Deal Name", "text")),
            required(f("Stage", "Stage", "picklist")),
            f("Amount", "Amount", "currency"),
            f("Closing_Date", "Closing Date", "date"),
            f("Probability", "Probability (%)", "integer"),
            f("Account_Name", "Account Name", "lookup"),
            f("Contact_Name", "Contact Name", "lookup"),
        ],
    },
];

/// The module named in a path, as Zoho matches it (case-insensitively).
pub fn module(name: &str) -> Option<&'static ModuleDef> {
    MODULES
        .iter()
        .find(|m| m.api_name.eq_ignore_ascii_case(name))
}

/// The field definitions of a module: its own, the common ones, the organisation's custom
/// fields (text).
fn field_defs(m: &ModuleDef, custom: &[String]) -> Vec<FieldDef> {
    let mut out: Vec<FieldDef> = m.fields.to_vec();
    out.extend(COMMON.iter().copied());
    for c in custom {
        // leaked once per configured name at start: custom fields live as long as the sandbox
        let name: &'static str = Box::leak(c.clone().into_boxed_str());
        out.push(f(name, name, "text"));
    }
    out
}

/// The records of one organisation (one data centre), per module.
pub struct Org {
    clock: SandboxClock,
    tables: BTreeMap<&'static str, RecordTable>,
    /// Custom fields per module (`BAC_Intent_Id`), as an administrator would add them.
    custom: HashMap<&'static str, Vec<FieldDef>>,
    /// Page tokens handed out: token -> (module, the list query it continues, next offset).
    tokens: HashMap<String, (String, ListQuery, usize)>,
    next_token: u64,
    user: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct ListQuery {
    since: Option<i64>,
    sort_by: String,
    desc: bool,
}

pub type SharedOrg = Arc<Mutex<Org>>;

impl Org {
    pub fn new(clock: SandboxClock, dc_digit: u64, custom_fields: &[String], email: &str) -> Org {
        let mut tables = BTreeMap::new();
        let mut custom = HashMap::new();
        for (i, m) in MODULES.iter().enumerate() {
            // Zoho ids are long numbers unique in the organisation
            let prefix = format!("{dc_digit}{}000000", 4150868 + i as u64);
            tables.insert(m.api_name, RecordTable::new(clock.clone(), &prefix));
            custom.insert(m.api_name, field_defs(m, custom_fields));
        }
        Org {
            clock,
            tables,
            custom,
            tokens: HashMap::new(),
            next_token: 1,
            user: json!({"name": "Sandbox Admin", "id": "111000000000101", "email": email}),
        }
    }

    fn defs(&self, m: &ModuleDef) -> &[FieldDef] {
        self.custom
            .get(m.api_name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Live records of a module (tests and the SDK check count them).
    pub fn count(&self, module: &str) -> usize {
        self.tables.get(module).map_or(0, RecordTable::len)
    }

    /// Inserts records straight into a module (a test's fixture), as if created now.
    pub fn seed(&mut self, module: &str, records: Vec<Map<String, Value>>) -> Vec<String> {
        let Some(t) = self.tables.get_mut(module) else {
            return Vec::new();
        };
        records.into_iter().map(|r| t.create(r)).collect()
    }

    fn time(&self, secs: i64) -> String {
        zoho_time(secs)
    }

    /// A stored record as Zoho answers it: every field (null when unset), id, owner, times.
    fn render(&self, m: &ModuleDef, row: &Stored, created: i64) -> Value {
        let mut out = Map::new();
        for d in self.defs(m) {
            out.insert(d.api_name.to_string(), Value::Null);
        }
        if let Some(fields) = &row.fields {
            for (k, v) in fields {
                if !k.starts_with('$') {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out.insert("id".into(), json!(row.id));
        out.insert("Owner".into(), self.user.clone());
        out.insert("Created_By".into(), self.user.clone());
        out.insert("Modified_By".into(), self.user.clone());
        out.insert("Created_Time".into(), json!(self.time(created)));
        out.insert("Modified_Time".into(), json!(self.time(row.modified)));
        Value::Object(out)
    }

    fn created_of(row: &Stored) -> i64 {
        row.fields
            .as_ref()
            .and_then(|f| f.get("$created"))
            .and_then(Value::as_i64)
            .unwrap_or(row.modified)
    }

    /// Checks one record's fields against the module; the cleaned fields or Zoho's error.
    fn check(
        &self,
        m: &ModuleDef,
        input: &Map<String, Value>,
        creating: bool,
    ) -> Result<Map<String, Value>, Value> {
        let defs = self.defs(m);
        let mut out = Map::new();
        for (k, v) in input {
            // Zoho ignores fields it does not know and the ones it sets itself
            let Some(d) = defs.iter().find(|d| d.api_name == k) else {
                continue;
            };
            if d.read_only || d.data_type == "ownerlookup" {
                continue;
            }
            if v.is_null() {
                out.insert(k.clone(), Value::Null);
                continue;
            }
            let ok = match d.data_type {
                "currency" | "double" => v.is_number(),
                "integer" => v.is_i64() || v.is_u64(),
                "date" => v.as_str().is_some_and(|s| {
                    s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-'
                }),
                "lookup" => v.get("id").and_then(Value::as_str).is_some() || v.is_string(),
                "email" => v.as_str().is_some_and(|s| s.is_empty() || s.contains('@')),
                _ => v.is_string(),
            };
            if !ok {
                return Err(record_error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": k, "expected_data_type": d.data_type, "json_path": format!("$.data[0].{k}")}),
                ));
            }
            if let Some(s) = v.as_str() {
                if s.chars().count() > d.length as usize && d.data_type != "textarea" {
                    return Err(record_error(
                        "INVALID_DATA",
                        "invalid data",
                        json!({"api_name": k, "maximum_length": d.length, "json_path": format!("$.data[0].{k}")}),
                    ));
                }
            }
            let v = if d.data_type == "lookup" {
                let id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .or(v.as_str())
                    .unwrap_or_default()
                    .to_string();
                let target = match k.as_str() {
                    "Contact_Name" => Some("Contacts"),
                    _ => None,
                };
                match target.and_then(|t| self.tables.get(t)).map(|t| t.get(&id)) {
                    Some(Some(r)) => {
                        json!({"id": id, "name": r.get("Last_Name").cloned().unwrap_or(Value::Null)})
                    }
                    Some(None) => {
                        return Err(record_error(
                            "INVALID_DATA",
                            "the related id given seems to be invalid",
                            json!({"api_name": k, "id": id, "json_path": format!("$.data[0].{k}.id")}),
                        ))
                    }
                    None => {
                        json!({"id": id, "name": v.get("name").cloned().unwrap_or(Value::Null)})
                    }
                }
            } else {
                v.clone()
            };
            out.insert(k.clone(), v);
        }
        for d in defs.iter().filter(|d| d.mandatory) {
            let missing = match out.get(d.api_name) {
                None => creating,
                Some(v) => v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()),
            };
            if missing {
                return Err(record_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": d.api_name, "json_path": format!("$.data[0].{}", d.api_name)}),
                ));
            }
        }
        Ok(out)
    }
}

/// Zoho's time format: ISO 8601 to the second with the organisation's offset (UTC here).
pub fn zoho_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

fn parse_since(headers: &HeaderMap) -> Result<Option<i64>, Response> {
    let Some(v) = headers.get("if-modified-since") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.timestamp()))
        .map_err(|_| {
            zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"header_name": "If-Modified-Since"}),
            )
        })
}

pub fn zoho_error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    (
        status,
        Json(json!({"code": code, "details": details, "message": message, "status": "error"})),
    )
        .into_response()
}

fn record_error(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

fn no_module(name: &str) -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({"resource_path_index": 0, "module": name}),
    )
}

/// Most records one `page`/`per_page` walk reaches.
const PAGE_WINDOW: usize = 2000;

/// `GET /crm/{v}/{module}`.
pub fn list(
    org: &SharedOrg,
    m: &ModuleDef,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let Some(fields) = q.get("fields").filter(|f| !f.trim().is_empty()) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "fields"}),
        );
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    if wanted.len() > 50 {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of fields exceeds the limit",
            json!({"param_name": "fields", "limit": 50}),
        );
    }
    let per_page = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        _ => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "per_page", "maximum_value": 200}),
            )
        }
    };
    let since = match parse_since(headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let sort_by = q.get("sort_by").cloned().unwrap_or_else(|| "id".into());
    if !matches!(sort_by.as_str(), "id" | "Created_Time" | "Modified_Time") {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({"param_name": "sort_by", "supported_values": ["id", "Created_Time", "Modified_Time"]}),
        );
    }
    let desc = match q.get("sort_order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "sort_order", "supported_values": ["asc", "desc"]}),
            )
        }
    };
    let query = ListQuery {
        since,
        sort_by,
        desc,
    };
    let Ok(mut o) = org.lock() else {
        return zoho_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
            json!({}),
        );
    };
    let (offset, page) = match q.get("page_token") {
        Some(token) => match o.tokens.get(token) {
            Some((module, stored, offset)) if module == m.api_name && *stored == query => {
                (*offset, 0)
            }
            _ => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"param_name": "page_token"}),
                )
            }
        },
        None => {
            let page = match q.get("page").map(|p| p.parse::<usize>()) {
                None => 1,
                Some(Ok(n)) if n >= 1 => n,
                _ => {
                    return zoho_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_DATA",
                        "invalid data",
                        json!({"param_name": "page"}),
                    )
                }
            };
            if page * per_page > PAGE_WINDOW {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "Cannot fetch more than 2000 records. Use page_token to fetch more records",
                    json!({"limit": PAGE_WINDOW}),
                );
            }
            ((page - 1) * per_page, page)
        }
    };
    let Some(table) = o.tables.get(m.api_name) else {
        return no_module(m.api_name);
    };
    let mut rows: Vec<&Stored> =
        table.changed_since(query.since.unwrap_or(i64::MIN), None, usize::MAX, false);
    match query.sort_by.as_str() {
        "Modified_Time" => rows.sort_by(|a, b| (a.modified, &a.id).cmp(&(b.modified, &b.id))),
        "Created_Time" => {
            rows.sort_by(|a, b| (Org::created_of(a), &a.id).cmp(&(Org::created_of(b), &b.id)))
        }
        _ => rows.sort_by(|a, b| natural(&a.id).cmp(&natural(&b.id))),
    }
    if query.desc {
        rows.reverse();
    }
    let total = rows.len();
    let page_rows: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(per_page)
        .map(|r| {
            let full = o.render(m, r, Org::created_of(r));
            let mut picked = Map::new();
            picked.insert("id".into(), full["id"].clone());
            for w in &wanted {
                if let Some(v) = full.get(*w) {
                    picked.insert((*w).to_string(), v.clone());
                }
            }
            Value::Object(picked)
        })
        .collect();
    if page_rows.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = offset + page_rows.len() < total;
    let count = page_rows.len();
    let next_token = if more {
        let token = format!("sbxpt{:016x}{}", o.next_token, o.clock.now());
        o.next_token += 1;
        o.tokens.insert(
            token.clone(),
            (m.api_name.to_string(), query.clone(), offset + count),
        );
        Value::String(token)
    } else {
        Value::Null
    };
    let expiry = zoho_time(o.clock.now() + 86_400);
    Json(json!({
        "data": page_rows,
        "info": {
            "per_page": per_page,
            "count": count,
            "page": if page == 0 { offset / per_page + 1 } else { page },
            "sort_by": query.sort_by,
            "sort_order": if query.desc { "desc" } else { "asc" },
            "more_records": more,
            "next_page_token": next_token,
            "previous_page_token": Value::Null,
            "page_token_expiry": if more { json!(expiry) } else { Value::Null },
        }
    }))
    .into_response()
}

/// Ids compare as numbers (they are digits of one length per module, but say so).
fn natural(id: &str) -> (usize, &str) {
    (id.len(), id)
}

/// `POST /crm/{v}/{module}`: up to 100 records; each answered in `data` in order.
pub fn insert(org: &SharedOrg, m: &ModuleDef, body: &Value) -> Response {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "data"}),
        );
    };
    if data.is_empty() || data.len() > 100 {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit",
            json!({"limit": 100}),
        );
    }
    let Ok(mut o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut answers = Vec::new();
    let mut failed = 0;
    for rec in data {
        let Some(input) = rec.as_object() else {
            answers.push(record_error(
                "INVALID_DATA",
                "invalid data",
                json!({"expected_data_type": "jsonobject"}),
            ));
            failed += 1;
            continue;
        };
        match o.check(m, input, true) {
            Ok(mut fields) => {
                let now = o.clock.now();
                fields.insert("$created".into(), json!(now));
                let Some(t) = o.tables.get_mut(m.api_name) else {
                    return no_module(m.api_name);
                };
                let id = t.create(fields);
                answers.push(json!({
                    "code": "SUCCESS",
                    "details": {"Modified_Time": zoho_time(now), "Modified_By": o.user.clone(),
                                "Created_Time": zoho_time(now), "id": id, "Created_By": o.user.clone()},
                    "message": "record added",
                    "status": "success",
                }));
            }
            Err(e) => {
                failed += 1;
                answers.push(e);
            }
        }
    }
    let status = if failed == answers.len() {
        StatusCode::BAD_REQUEST
    } else if failed > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::CREATED
    };
    (status, Json(json!({"data": answers}))).into_response()
}

/// `PUT /crm/{v}/{module}/{id}`.
pub fn update(org: &SharedOrg, m: &ModuleDef, id: &str, body: &Value) -> Response {
    let Some(input) = body
        .get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(Value::as_object)
    else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "data"}),
        );
    };
    let Ok(mut o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if o.tables.get(m.api_name).and_then(|t| t.get(id)).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"data": [record_error("INVALID_DATA", "the id given seems to be invalid", json!({"id": id}))]})),
        )
            .into_response();
    }
    match o.check(m, input, false) {
        Ok(fields) => {
            let now = o.clock.now();
            if let Some(t) = o.tables.get_mut(m.api_name) {
                t.update(id, fields);
            }
            Json(json!({"data": [{
                "code": "SUCCESS",
                "details": {"Modified_Time": zoho_time(now), "Modified_By": o.user.clone(),
                            "Created_Time": zoho_time(now), "id": id, "Created_By": o.user.clone()},
                "message": "record updated",
                "status": "success",
            }]}))
            .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"data": [e]}))).into_response(),
    }
}

/// `GET /crm/{v}/{module}/{id}`: the record, or 204 when there is none.
pub fn get_one(org: &SharedOrg, m: &ModuleDef, id: &str) -> Response {
    let Ok(o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(t) = o.tables.get(m.api_name) else {
        return no_module(m.api_name);
    };
    match t.row(id).filter(|r| r.fields.is_some()).cloned() {
        Some(r) => Json(json!({"data": [o.render(m, &r, Org::created_of(&r))]})).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `DELETE /crm/{v}/{module}/{id}`: to the recycle bin (the deleted-records list).
pub fn delete(org: &SharedOrg, m: &ModuleDef, id: &str) -> Response {
    let Ok(mut o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let gone = o.tables.get_mut(m.api_name).is_some_and(|t| t.delete(id));
    if !gone {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"data": [record_error("INVALID_DATA", "the id given seems to be invalid", json!({"id": id}))]})),
        )
            .into_response();
    }
    Json(json!({"data": [{"code": "SUCCESS", "details": {"id": id}, "message": "record deleted", "status": "success"}]}))
        .into_response()
}

/// `GET /crm/{v}/{module}/deleted`: records deleted at or after `If-Modified-Since`, oldest
/// first, paged by `page`/`per_page`.
pub fn deleted(
    org: &SharedOrg,
    m: &ModuleDef,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let since = match parse_since(headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(t) = q.get("type") {
        if !matches!(t.as_str(), "all" | "recycle" | "permanent") {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "type"}),
            );
        }
    }
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|n| (1..=200).contains(n))
        .unwrap_or(200);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let Ok(o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(t) = o.tables.get(m.api_name) else {
        return no_module(m.api_name);
    };
    let gone: Vec<&Stored> = t
        .changed_since(since.unwrap_or(i64::MIN), None, usize::MAX, true)
        .into_iter()
        .filter(|r| r.fields.is_none())
        .collect();
    let total = gone.len();
    let rows: Vec<Value> = gone
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| {
            json!({"deleted_by": o.user, "id": r.id, "display_name": Value::Null, "type": "recycle",
                   "created_by": o.user, "deleted_time": zoho_time(r.modified)})
        })
        .collect();
    if rows.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let count = rows.len();
    Json(
        json!({"data": rows, "info": {"per_page": per_page, "count": count, "page": page,
                                      "more_records": (page - 1) * per_page + count < total}}),
    )
    .into_response()
}

/// `GET /crm/{v}/{module}/search?criteria=(Field:equals:value)` (also `email=`): the
/// matching live records, or 204.
pub fn search(org: &SharedOrg, m: &ModuleDef, q: &HashMap<String, String>) -> Response {
    let (field, value) = if let Some(c) = q.get("criteria") {
        let inner = c.trim().trim_start_matches('(').trim_end_matches(')');
        let mut parts = inner.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some("equals"), Some(v)) if !f.is_empty() => (
                f.to_string(),
                v.replace("\\(", "(")
                    .replace("\\)", ")")
                    .replace("\\,", ","),
            ),
            _ => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_QUERY",
                    "invalid query formed",
                    json!({"reason": "the sandbox serves (Field:equals:value)"}),
                )
            }
        }
    } else if let Some(e) = q.get("email") {
        ("Email".to_string(), e.clone())
    } else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "criteria"}),
        );
    };
    let Ok(o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !o.defs(m).iter().any(|d| d.api_name == field) && field != "id" {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "invalid query formed",
            json!({"api_name": field, "reason": "the field is not available for search"}),
        );
    }
    let Some(t) = o.tables.get(m.api_name) else {
        return no_module(m.api_name);
    };
    let found: Vec<Value> = t
        .changed_since(i64::MIN, None, usize::MAX, false)
        .into_iter()
        .filter(|r| {
            if field == "id" {
                return r.id == value;
            }
            r.fields
                .as_ref()
                .and_then(|f| f.get(&field))
                .is_some_and(|v| {
                    let shown = match v.as_str() {
                        Some(s) => s.to_string(),
                        None => v.to_string(),
                    };
                    shown.eq_ignore_ascii_case(&value)
                })
        })
        .take(200)
        .map(|r| o.render(m, r, Org::created_of(r)))
        .collect();
    if found.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let count = found.len();
    Json(json!({"data": found, "info": {"per_page": 200, "count": count, "page": 1, "more_records": false}}))
        .into_response()
}

/// A module's id (`settings/modules`, a notification channel's `resource_id`).
pub fn module_id(m: &ModuleDef) -> String {
    let i = MODULES
        .iter()
        .position(|d| d.api_name == m.api_name)
        .unwrap_or(0);
    format!("111000000002{:03}", i + 1)
}

/// `GET /crm/{v}/settings/modules`.
pub fn modules() -> Response {
    let list: Vec<Value> = MODULES
        .iter()
        .map(|m| {
            json!({"api_name": m.api_name, "module_name": m.api_name, "singular_label": m.singular,
                   "plural_label": m.api_name, "api_supported": true, "generated_type": "default",
                   "creatable": true, "editable": true, "deletable": true, "viewable": true,
                   "id": module_id(m)})
        })
        .collect();
    Json(json!({"modules": list})).into_response()
}

/// `GET /crm/{v}/settings/fields?module=Leads`.
pub fn fields(org: &SharedOrg, q: &HashMap<String, String>) -> Response {
    let Some(name) = q.get("module") else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "module"}),
        );
    };
    let Some(m) = module(name) else {
        return no_module(name);
    };
    let Ok(o) = org.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let list: Vec<Value> = o
        .defs(m)
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let json_type = match d.data_type {
                "currency" | "double" => "double",
                "integer" => "integer",
                "lookup" | "ownerlookup" => "jsonobject",
                _ => "string",
            };
            let custom = !m.fields.iter().chain(COMMON).any(|c| c.api_name == d.api_name);
            json!({"api_name": d.api_name, "field_label": d.label, "display_label": d.label,
                   "data_type": d.data_type, "json_type": json_type, "system_mandatory": d.mandatory,
                   "read_only": d.read_only, "custom_field": custom, "length": d.length,
                   "visible": true, "id": format!("111000000003{:03}", i + 1)})
        })
        .collect();
    Json(json!({"fields": list})).into_response()
}

/// The module of a path, or Zoho's error.
pub fn module_or_error(name: &str) -> Result<&'static ModuleDef, Response> {
    module(name).ok_or_else(|| no_module(name))
}
