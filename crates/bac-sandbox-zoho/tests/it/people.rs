//! Zoho People: the employee form's records, HTTP 200 for everything but authentication.
use axum::http::Method;
use serde_json::{json, Value};

use crate::Sandbox;

const RECORDS: &str = "/eu/people/people/api/forms/employee/getRecords";

/// The employees of an answer's `result`: (record id, employee).
fn employees(body: &Value) -> Vec<(String, Value)> {
    body["response"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let (id, list) = entry.as_object().unwrap().iter().next().unwrap();
            (id.clone(), list[0].clone())
        })
        .collect()
}

#[tokio::test]
async fn employees_page_by_index_and_filter_by_modified_time() {
    let s = Sandbox::new();
    let t = s.token("ZOHOPEOPLE.forms.ALL").await;
    let a = s.get(RECORDS, &t).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"response": {"result": [], "message": "Error occurred", "uri": "/api/forms/employee/getRecords",
                            "errors": {"code": 7024, "message": "No records found"}, "status": 1}})
    );

    let seeded = s
        .seed(
            "people_employees",
            json!({"records": [{"FirstName": "Ana", "LastName": "Lima", "EmailID": "ana@example.test",
                                "Department": "Sales", "Designation": "Rep", "Mobile": "1"}]}),
        )
        .await;
    assert_eq!(seeded.body["created"], 1, "{seeded:?}");
    let a = s
        .seed(
            "people_employees",
            json!({"count": 4, "fields": {"Department": "Ops"}}),
        )
        .await;
    assert_eq!(a.body["created"], 4, "{a:?}");

    let a = s.get(RECORDS, &t).await;
    assert_eq!(a.body["response"]["status"], 0, "{a:?}");
    assert_eq!(a.body["response"]["message"], "Data fetched successfully");
    let all = employees(&a.body);
    assert_eq!(all.len(), 5);
    let (id, ana) = &all[0];
    assert_eq!(ana["EmployeeID"], "EMP1");
    assert_eq!(ana["Employeestatus"], "Active");
    assert_eq!(ana["Zoho_ID"], json!(id.parse::<u64>().unwrap()));
    let modified: i64 = ana["ModifiedTime"].as_str().unwrap().parse().unwrap();
    assert_eq!(modified % 1000, 0, "epoch milliseconds of a whole second");
    let joined = ana["Date_of_joining"].as_str().unwrap();
    assert_eq!(joined.len(), 11, "{joined}");
    assert_eq!(ana["AddedTime"].as_str().unwrap().len(), 20);
    assert_eq!(all[1].1["LastName"], "Seeded Employee 0");
    assert_eq!(all[1].1["Department"], "Ops");

    let page = s.get(&format!("{RECORDS}?sIndex=4&limit=2"), &t).await;
    let names: Vec<Value> = employees(&page.body)
        .into_iter()
        .map(|(_, e)| e["LastName"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("Seeded Employee 2"), json!("Seeded Employee 3")]
    );
    let past = s.get(&format!("{RECORDS}?sIndex=6"), &t).await;
    assert_eq!(past.body["response"]["errors"]["code"], 7024);

    s.clock.advance(90);
    let since_ms = s.clock.now() * 1000;
    s.seed(
        "people_employees",
        json!({"records": [{"LastName": "Late"}]}),
    )
    .await;
    let a = s
        .get(&format!("{RECORDS}?modifiedtime={since_ms}"), &t)
        .await;
    let late = employees(&a.body);
    assert_eq!(late.len(), 1, "{a:?}");
    assert_eq!(late[0].1["LastName"], "Late");
    assert_eq!(late[0].1["EmployeeID"], "EMP6");
    let late_ms: i64 = late[0].1["ModifiedTime"].as_str().unwrap().parse().unwrap();
    let a = s
        .get(&format!("{RECORDS}?modifiedtime={}", late_ms + 1), &t)
        .await;
    assert_eq!(a.body["response"]["errors"]["code"], 7024);
}

#[tokio::test]
async fn refusals_are_people_s() {
    let s = Sandbox::new();
    let a = s.get(RECORDS, "bad").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.body,
        json!({"response": {"message": "Error occurred", "uri": "/api/forms/employee/getRecords",
                            "errors": {"code": 7218, "message": "Invalid OAuthtoken"}, "status": 1}})
    );
    let t = s.token("ZOHOPEOPLE.employee.ALL").await;
    let a = s.get(RECORDS, &t).await;
    assert_eq!(
        (a.status, &a.body["response"]["errors"]),
        (401, &json!({"code": 7219, "message": "Invalid OAuthScope"}))
    );

    let t = s.token("ZOHOPEOPLE.forms.READ").await;
    for (query, message) in [
        ("limit=0", "Invalid limit"),
        ("limit=201", "Invalid limit"),
        ("sIndex=0", "Invalid sIndex"),
        ("modifiedtime=yesterday", "Invalid modifiedtime"),
    ] {
        let a = s.get(&format!("{RECORDS}?{query}"), &t).await;
        assert_eq!(a.status, 200, "{query}");
        assert_eq!(
            a.body["response"]["errors"],
            json!({"code": 7016, "message": message}),
            "{query}"
        );
        assert_eq!(a.body["response"]["status"], 1);
    }

    // seeding checks what it stores; a malformed body is refused
    let a = s
        .seed("people_employees", json!({"records": [{"LastName": 5}]}))
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    let a = s
        .send(
            Method::POST,
            "/eu/_sandbox/zoho/apps/people_employees",
            &[],
            Some("{".into()),
        )
        .await;
    assert_eq!(a.status, 400);
    let a = s.seed("people_teams", json!({"count": 1})).await;
    assert_eq!(a.status, 404);
}
