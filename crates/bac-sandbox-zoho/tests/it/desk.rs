//! Zoho Desk: tickets and their contacts behind the `orgId` header, Desk's errors.
use axum::http::Method;
use serde_json::{json, Value};

use crate::{Answer, Sandbox, DESK_DEPT, DESK_ORG};

const ORG: (&str, &str) = ("orgId", DESK_ORG);

async fn desk(s: &Sandbox, method: Method, path: &str, t: &str, body: Option<Value>) -> Answer {
    s.call(
        method,
        &format!("/eu/desk/api/v1/{path}"),
        t,
        &[ORG],
        body.map(|b| b.to_string()),
    )
    .await
}

#[tokio::test]
async fn tickets_are_created_with_their_contacts_listed_read_and_patched() {
    let s = Sandbox::new();
    let t = s
        .token("Desk.basic.READ,Desk.tickets.ALL,Desk.contacts.READ")
        .await;
    // the organisations list needs no orgId
    let a = s.get("/eu/desk/api/v1/organizations", &t).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["data"][0]["id"], DESK_ORG);
    assert_eq!(a.body["data"][0]["companyName"], "Sandbox Org");
    let a = desk(&s, Method::GET, "departments", &t, None).await;
    assert_eq!(
        a.body,
        json!({"data": [{"id": DESK_DEPT, "name": "Support", "isDefault": true, "isEnabled": true}]})
    );

    let a = desk(
        &s,
        Method::POST,
        "tickets",
        &t,
        Some(json!({"subject": "Printer on fire", "departmentId": DESK_DEPT,
                    "contact": {"lastName": "Lima", "firstName": "Ana", "email": "ana@example.test"},
                    "description": "smoke", "cf": {"cf_plan": "gold"}})),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let ticket = a.body.clone();
    assert_eq!(ticket["ticketNumber"], "101");
    assert_eq!(
        (&ticket["status"], &ticket["statusType"], &ticket["channel"]),
        (&json!("Open"), &json!("Open"), &json!("Web"))
    );
    assert_eq!(ticket["priority"], Value::Null);
    assert_eq!(ticket["assigneeId"], Value::Null);
    assert_eq!(ticket["email"], "ana@example.test");
    assert_eq!(ticket["departmentId"], DESK_DEPT);
    let created = ticket["createdTime"].as_str().unwrap();
    assert!(
        created.ends_with(".000Z") && created.len() == 24,
        "{created}"
    );
    let id = ticket["id"].as_str().unwrap().to_string();
    assert_eq!(
        ticket["webUrl"],
        format!("https://desk.zoho.eu/support/sandbox/ShowHomePage.do#Cases/dv/{id}")
    );
    let contact_id = ticket["contactId"].as_str().unwrap().to_string();
    let c = desk(&s, Method::GET, &format!("contacts/{contact_id}"), &t, None).await;
    assert_eq!(
        (&c.body["lastName"], &c.body["firstName"], &c.body["email"]),
        (&json!("Lima"), &json!("Ana"), &json!("ana@example.test"))
    );

    // the same email finds the same contact; a contactId works as well
    let a = desk(
        &s,
        Method::POST,
        "tickets",
        &t,
        Some(json!({"subject": "Again", "departmentId": DESK_DEPT,
                    "contact": {"email": "ANA@example.test"}, "status": "Closed", "priority": "High"})),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["contactId"], contact_id.as_str());
    assert_eq!(a.body["ticketNumber"], "102");
    assert_eq!(a.body["statusType"], "Closed");
    let a = desk(
        &s,
        Method::POST,
        "tickets",
        &t,
        Some(
            json!({"subject": "Third", "departmentId": DESK_DEPT, "contactId": contact_id,
                    "email": "other@example.test"}),
        ),
    )
    .await;
    assert_eq!(a.body["email"], "other@example.test", "{a:?}");

    let got = desk(&s, Method::GET, &format!("tickets/{id}"), &t, None).await;
    assert_eq!(got.body["subject"], "Printer on fire");
    assert_eq!(got.body["cf"], json!({"cf_plan": "gold"}));

    s.clock.advance(120);
    let a = desk(
        &s,
        Method::PATCH,
        &format!("tickets/{id}"),
        &t,
        Some(json!({"status": "Closed", "priority": "Low", "phone": "+351 1"})),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        (
            &a.body["status"],
            &a.body["statusType"],
            &a.body["priority"]
        ),
        (&json!("Closed"), &json!("Closed"), &json!("Low"))
    );
    assert_eq!(a.body["subject"], "Printer on fire");
    assert_ne!(a.body["modifiedTime"], a.body["createdTime"]);
}

#[tokio::test]
async fn lists_page_by_from_and_limit_and_search_by_modified_time() {
    let s = Sandbox::new();
    let t = s.token("Desk.tickets.READ,Desk.tickets.UPDATE").await;
    let a = desk(&s, Method::GET, "tickets", &t, None).await;
    assert_eq!((a.status, &a.body), (200, &json!({"data": []})));
    let a = s.seed("desk_tickets", json!({"count": 12})).await;
    assert_eq!(a.body["created"], 12, "{a:?}");

    let first = desk(&s, Method::GET, "tickets", &t, None).await;
    assert_eq!(
        first.body["data"].as_array().unwrap().len(),
        10,
        "default limit"
    );
    assert_eq!(first.body["data"][0]["subject"], "Seeded Ticket 0");
    let rest = desk(&s, Method::GET, "tickets?from=10&limit=5", &t, None).await;
    let subjects: Vec<&str> = rest.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Seeded Ticket 10", "Seeded Ticket 11"]);
    let newest = desk(
        &s,
        Method::GET,
        "tickets?sortBy=-createdTime&limit=1",
        &t,
        None,
    )
    .await;
    assert_eq!(newest.body["data"][0]["subject"], "Seeded Ticket 11");

    // two tickets change later; the search over that window finds only them
    let before = s.clock.now();
    s.clock.advance(600);
    let ids: Vec<String> = first.body["data"].as_array().unwrap()[3..5]
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let a = desk(
            &s,
            Method::PATCH,
            &format!("tickets/{id}"),
            &t,
            Some(json!({"status": "On Hold"})),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let start = millis(before + 1);
    let end = millis(s.clock.now());
    let a = desk(
        &s,
        Method::GET,
        &format!("tickets/search?modifiedTimeRange={start},{end}&limit=1"),
        &t,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["count"], 2);
    assert_eq!(a.body["data"][0]["id"], ids[0].as_str());
    let a = desk(
        &s,
        Method::GET,
        &format!("tickets/search?modifiedTimeRange={start},{end}&from=1&limit=1"),
        &t,
        None,
    )
    .await;
    assert_eq!(a.body["data"][0]["id"], ids[1].as_str());
    let a = desk(
        &s,
        Method::GET,
        &format!("tickets/search?modifiedTimeRange={start},{end}&sortBy=-modifiedTime"),
        &t,
        None,
    )
    .await;
    assert_eq!(a.body["data"][0]["id"], ids[1].as_str());
    let on_hold = desk(&s, Method::GET, "tickets?status=On%20Hold", &t, None).await;
    assert_eq!(on_hold.body["data"].as_array().unwrap().len(), 2);
    // nothing in the window: 204 and no body
    let (a0, a1) = (millis(before - 3600), millis(before - 60));
    let a = desk(
        &s,
        Method::GET,
        &format!("tickets/search?modifiedTimeRange={a0},{a1}"),
        &t,
        None,
    )
    .await;
    assert_eq!((a.status, &a.body), (204, &Value::Null));

    for (query, field, kind) in [
        ("tickets?limit=0", "/limit", "invalid"),
        ("tickets?limit=101", "/limit", "invalid"),
        ("tickets?from=-1", "/from", "invalid"),
        ("tickets?sortBy=subject", "/sortBy", "invalid"),
        ("tickets/search", "/modifiedTimeRange", "missing"),
        (
            "tickets/search?modifiedTimeRange=yesterday",
            "/modifiedTimeRange",
            "invalid",
        ),
    ] {
        let a = desk(&s, Method::GET, query, &t, None).await;
        assert_eq!(a.status, 422, "{query}");
        assert_eq!(a.body["errorCode"], "INVALID_DATA", "{query}");
        assert_eq!(a.body["errors"][0]["fieldName"], field, "{query}");
        assert_eq!(a.body["errors"][0]["errorType"], kind, "{query}");
    }
}

fn millis(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string()
}

#[tokio::test]
async fn refusals_are_desk_s() {
    let s = Sandbox::new();
    let t = s.token("Desk.tickets.READ,Desk.tickets.CREATE").await;
    let a = s.get("/eu/desk/api/v1/tickets", &t).await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.body,
        json!({"errorCode": "INVALID_DATA", "message": "An invalid value has been passed in the input.",
               "errors": [{"fieldName": "orgId", "errorType": "missing", "errorMessage": "orgId header is required"}]})
    );
    let a = s
        .call(
            Method::GET,
            "/eu/desk/api/v1/tickets",
            &t,
            &[("orgId", "700010001")],
            None,
        )
        .await;
    assert_eq!(
        (a.status, &a.body["errorCode"]),
        (401, &json!("UNAUTHORIZED"))
    );
    let a = desk(&s, Method::GET, "tickets", "expired", None).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            401,
            json!({"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."})
        )
    );
    for (method, path) in [
        (Method::GET, "organizations"),
        (Method::GET, "contacts/1"),
        (Method::PATCH, "tickets/1"),
    ] {
        let a = desk(&s, method, path, &t, Some(json!({}))).await;
        assert_eq!(
            (a.status, &a.body["errorCode"]),
            (401, &json!("SCOPE_MISMATCH")),
            "{path}"
        );
    }
    let a = desk(&s, Method::GET, "tickets/%C3%28", &t, None).await;
    assert_eq!(
        (a.status, &a.body["errorCode"]),
        (404, &json!("RESOURCE_NOT_FOUND"))
    );
    let a = desk(&s, Method::GET, "tickets/9020000009", &t, None).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (
            404,
            json!({"errorCode": "RESOURCE_NOT_FOUND", "message": "The requested resource does not exist."})
        )
    );

    let a = s
        .call(
            Method::POST,
            "/eu/desk/api/v1/tickets",
            &t,
            &[ORG],
            Some("{\"subject\": \"x\"".into()),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["errorCode"]),
        (422, &json!("INVALID_DATA"))
    );
    let contact = json!({"lastName": "L"});
    for (body, field, kind) in [
        (
            json!({"departmentId": DESK_DEPT, "contact": contact}),
            "/subject",
            "missing",
        ),
        (
            json!({"subject": 5, "departmentId": DESK_DEPT, "contact": contact}),
            "/subject",
            "invalid",
        ),
        (
            json!({"subject": "S", "contact": contact}),
            "/departmentId",
            "missing",
        ),
        (
            json!({"subject": "S", "departmentId": "1", "contact": contact}),
            "/departmentId",
            "invalid",
        ),
        (
            json!({"subject": "S", "departmentId": DESK_DEPT}),
            "/contactId",
            "missing",
        ),
        (
            json!({"subject": "S", "departmentId": DESK_DEPT, "contactId": "1"}),
            "/contactId",
            "invalid",
        ),
        (
            json!({"subject": "S", "departmentId": DESK_DEPT, "contact": {"email": "a@b.c"}}),
            "/contact/lastName",
            "missing",
        ),
        (
            json!({"subject": "S", "departmentId": DESK_DEPT, "contact": contact, "cf": []}),
            "/cf",
            "invalid",
        ),
        (
            json!({"subject": "S", "departmentId": DESK_DEPT, "contact": contact, "priority": 1}),
            "/priority",
            "invalid",
        ),
    ] {
        let a = desk(&s, Method::POST, "tickets", &t, Some(body.clone())).await;
        assert_eq!(a.status, 422, "{body}");
        assert_eq!(
            (
                &a.body["errors"][0]["fieldName"],
                &a.body["errors"][0]["errorType"]
            ),
            (&json!(field), &json!(kind)),
            "{body}"
        );
    }
    // nothing refused was stored
    let count = s
        .send(
            Method::GET,
            "/eu/_sandbox/zoho/apps/desk_tickets",
            &[],
            None,
        )
        .await;
    assert_eq!(count.body, json!({"count": 0}));
}
