//! Zoho People's form API for the employee form (`/people/api/forms/employee/getRecords` on
//! People's host, served at `/<dc>/people`), with People's ways: HTTP 200 for every answer
//! but an authentication failure, failures inside `{"response": {"errors": ..., "status": 1}}`
//! (an empty result is one too, code 7024), `sIndex`/`limit` paging from 1, records keyed by
//! their record id, and the `modifiedtime` filter in epoch milliseconds.
use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use bac_sandbox_kit::Stored;
use serde_json::{json, Map, Value};

use crate::{
    apps::{self, Apps, Denials, Fields, Refusal, Table},
    DataCenter,
};

/// The path People names in its answers (relative to its API root).
const URI: &str = "/api/forms/employee/getRecords";

fn failure(code: u32, message: &str) -> Value {
    json!({"response": {"message": "Error occurred", "uri": URI,
                        "errors": {"code": code, "message": message}, "status": 1}})
}

const DENIALS: Denials = Denials {
    invalid_token: || {
        (
            StatusCode::UNAUTHORIZED,
            Json(failure(7218, "Invalid OAuthtoken")),
        )
            .into_response()
    },
    scope: || {
        (
            StatusCode::UNAUTHORIZED,
            Json(failure(7219, "Invalid OAuthScope")),
        )
            .into_response()
    },
};

/// People answers bad input with HTTP 200 and code 7016 (invalid input data).
fn invalid(message: &str) -> Response {
    Json(failure(7016, message)).into_response()
}

/// Routes relative to People's host (the data centre nests them under `/people`).
pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route("/people/api/forms/employee/getRecords", get(get_records))
        .with_state(dc)
}

/// The employee fields People answers, `""` when unset.
const FIELDS: &[&str] = &[
    "EmployeeID",
    "FirstName",
    "LastName",
    "EmailID",
    "Department",
    "Designation",
    "Employeestatus",
    "Mobile",
    "Date_of_joining",
];

fn render(row: &Stored) -> Value {
    let f = apps::public_fields(row);
    let mut out = Map::new();
    for k in FIELDS {
        out.insert((*k).into(), f.get(*k).cloned().unwrap_or_else(|| json!("")));
    }
    out.insert(
        "Zoho_ID".into(),
        row.id
            .parse::<u64>()
            .map_or_else(|_| json!(row.id), |n| json!(n)),
    );
    out.insert(
        "AddedTime".into(),
        json!(apps::format_time(
            apps::created_of(row),
            "%d-%b-%Y %H:%M:%S"
        )),
    );
    out.insert(
        "ModifiedTime".into(),
        json!(row.modified.saturating_mul(1000).to_string()),
    );
    json!({ row.id.clone(): [Value::Object(out)] })
}

async fn get_records(
    State(dc): State<DataCenter>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = apps::admit(&dc, &headers, &["ZOHOPEOPLE.forms.READ"], &DENIALS) {
        return r;
    }
    let start = match q.get("sIndex").map(|s| s.trim().parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return invalid("Invalid sIndex"),
    };
    let limit = match q.get("limit").map(|s| s.trim().parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=200).contains(&n) => n,
        Some(_) => return invalid("Invalid limit"),
    };
    let since_ms = match q.get("modifiedtime").map(|s| s.trim().parse::<i64>()) {
        None => None,
        Some(Ok(ms)) if ms >= 0 => Some(ms),
        Some(_) => return invalid("Invalid modifiedtime"),
    };
    let result: Vec<Value> = dc.apps.with(|a| {
        a.table(Table::PeopleEmployees)
            .changed_since(
                since_ms.map_or(i64::MIN, |ms| ms.div_euclid(1000)),
                None,
                usize::MAX,
                false,
            )
            .into_iter()
            .filter(|r| since_ms.is_none_or(|ms| r.modified.saturating_mul(1000) >= ms))
            .skip(start - 1)
            .take(limit)
            .map(render)
            .collect()
    });
    if result.is_empty() {
        let mut none = failure(7024, "No records found");
        none["response"]["result"] = json!([]);
        return Json(none).into_response();
    }
    Json(
        json!({"response": {"result": result, "message": "Data fetched successfully",
                             "uri": URI, "status": 0}}),
    )
    .into_response()
}

/// Stores an employee (People's API here only reads; the admin routes seed): the fields
/// People answers, as text, with its defaults (`EMP<n>`, `Active`, joined today).
pub fn insert(a: &mut Apps, body: &Map<String, Value>) -> Result<String, Refusal> {
    let b = Fields::new(body, "");
    let mut out = Map::new();
    for k in FIELDS {
        match b.text(k) {
            Ok(Some(v)) => {
                out.insert((*k).into(), json!(v));
            }
            Ok(None) => {}
            Err(bad) => {
                return Err(Refusal {
                    status: StatusCode::OK,
                    body: failure(7016, &format!("Invalid value for {}", bad.field())),
                })
            }
        }
    }
    if let Some(email) = out.get("EmailID").and_then(Value::as_str) {
        if !email.is_empty() && !apps::is_address(email) {
            return Err(Refusal {
                status: StatusCode::OK,
                body: failure(7053, "Invalid email address"),
            });
        }
    }
    a.employee_numbers += 1;
    let n = a.employee_numbers;
    out.entry("EmployeeID")
        .or_insert_with(|| json!(format!("EMP{n}")));
    out.entry("Employeestatus")
        .or_insert_with(|| json!("Active"));
    let today = apps::format_time(a.now(), "%d-%b-%Y");
    out.entry("Date_of_joining").or_insert_with(|| json!(today));
    Ok(a.create(Table::PeopleEmployees, out))
}

/// The fields of generated employee `i`.
pub fn generated(i: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("LastName".into(), json!(format!("Seeded Employee {i}")));
    m.insert(
        "EmailID".into(),
        json!(format!("seeded.employee.{i}@sandbox.zoho")),
    );
    m
}
