//! Zoho CRM through the gateway (issue 14): leads, contacts and deals created, listed, read
//! and changed over REST against the Zoho sandbox, each write's event on
//! `bac.zoho.<entity>.v1`, Idempotency-Key retries answered with the first record, Zoho's
//! own error codes kept in the error's details, Zoho's paging rules, and the organisation's
//! API credits running out answered as a rate limit that names when to retry.
use std::time::Duration;

use bac_e2e::{kafka, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

async fn zoho_fleet(sandbox: bac_sandbox_zoho::ZohoSandboxConfig) -> Fleet {
    Fleet::start_opts(FleetOptions {
        zoho: true,
        zoho_sandbox: sandbox,
        ..Default::default()
    })
    .await
}

const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

async fn post(fleet: &Fleet, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = fleet
        .http
        .post(format!("{}{path}", fleet.api))
        .bearer_auth(&fleet.key)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// The sandbox's records of a module (what Zoho holds), read as a Zoho user.
async fn upstream(fleet: &Fleet, token: &str, dc: &str, path: &str) -> (u16, Value) {
    let zoho = &fleet.zoho.as_ref().unwrap().0;
    let r = fleet
        .http
        .get(format!("{zoho}/{dc}/crm/v8/{path}"))
        .header("authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn leads_contacts_and_deals_round_trip_with_their_events() {
    let fleet = zoho_fleet(Default::default()).await;
    let leads_topic = kafka::consumer(&fleet.infra.brokers, "bac.zoho.crm_lead.v1");
    let conn = fleet.connect_zoho("eu", SCOPE, json!({})).await;
    let user = fleet.zoho_user_token("eu").await;

    // The documented create, with an idempotency key, and its retry.
    let body = json!({"first_name": "Ada", "last_name": "Lovelace", "company": "Acme Corp",
                      "email": "ada@acmecorp.com", "phone": "+1-555-0123", "lead_source": "Web Download",
                      "annual_revenue": 50000});
    let (status, lead) = post(
        &fleet,
        "/api/v1/zoho/crm/leads",
        body.clone(),
        Some("lead-key-1"),
    )
    .await;
    assert_eq!(status, 201, "{lead}");
    let id = lead["id"].as_str().unwrap().to_string();
    assert_eq!(lead["last_name"], "Lovelace");
    assert_eq!(lead["company"], "Acme Corp");
    assert_eq!(lead["annual_revenue"].as_f64(), Some(50000.0));
    assert_eq!(lead["owner"], "Sandbox Admin");
    assert_eq!(lead["connection_id"], conn.as_str());
    assert!(lead["modified_time"].as_str().is_some(), "{lead}");
    let (status, again) = post(&fleet, "/api/v1/zoho/crm/leads", body, Some("lead-key-1")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], id.as_str(), "the retry answers the first lead");
    let (_, all) = upstream(&fleet, &user, "eu", "Leads?fields=Last_Name").await;
    assert_eq!(
        all["data"].as_array().map(Vec::len),
        Some(1),
        "one lead in Zoho: {all}"
    );

    // Read, list and change it.
    let (status, got) = fleet
        .call(Method::GET, &format!("/api/v1/zoho/crm/leads/{id}"), None)
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["email"], "ada@acmecorp.com");
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads?per_page=10", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["leads"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["pagination"]["more_records"], false, "{list}");
    assert_eq!(list["pagination"]["count"], 1, "{list}");
    let (status, changed) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/zoho/crm/leads/{id}"),
            Some(json!({"lead_status": "Contacted", "phone": ""})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["lead_status"], "Contacted");
    assert_eq!(changed["phone"], "", "an empty string clears the field");
    let (_, zoho_lead) = upstream(&fleet, &user, "eu", &format!("Leads/{id}")).await;
    assert_eq!(
        zoho_lead["data"][0]["Lead_Status"], "Contacted",
        "{zoho_lead}"
    );
    assert_eq!(zoho_lead["data"][0]["Phone"], Value::Null, "{zoho_lead}");

    // Unknown ids are 404s, malformed ones 400s.
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads/999999999999", None)
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = fleet
        .call(
            Method::PATCH,
            "/api/v1/zoho/crm/leads/999999999999",
            Some(json!({"company": "X"})),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads/12ab", None)
        .await;
    assert_eq!(status, 400, "{e}");

    // Contacts and deals; a deal naming a contact Zoho does not have keeps Zoho's code.
    let (status, contact) = post(
        &fleet,
        "/api/v1/zoho/crm/contacts",
        json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@acmecorp.com", "title": "CTO"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{contact}");
    let contact_id = contact["id"].as_str().unwrap().to_string();
    let (status, deal) = post(
        &fleet,
        "/api/v1/zoho/crm/deals",
        json!({"name": "Acme renewal", "stage": "Qualification", "amount": 25000,
               "closing_date": "2027-01-31", "contact_id": contact_id}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{deal}");
    assert_eq!(deal["contact_id"], contact_id.as_str(), "{deal}");
    assert_eq!(deal["closing_date"], "2027-01-31", "{deal}");
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/crm/deals",
        json!({"name": "Ghost", "stage": "Qualification", "contact_id": "4242424242"}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["details"]["error_code"], "UPSTREAM_REJECTED", "{e}");
    assert_eq!(e["details"]["upstream_code"], "INVALID_DATA", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("Contact_Name"),
        "{e}"
    );
    let (status, e) = post(
        &fleet,
        "/api/v1/zoho/crm/contacts",
        json!({"first_name": "No last"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");

    // Each write's event: the lead's created then updated, by subject, as the platform's.
    let got = kafka::collect(&leads_topic, Duration::from_secs(30), |r| r.len() >= 2).await;
    let mine: Vec<&kafka::Record> = got
        .iter()
        .filter(|r| r.headers["ce_subject"] == format!("crm_lead/{id}"))
        .collect();
    let types: Vec<&str> = mine.iter().map(|r| r.headers["ce_type"].as_str()).collect();
    assert_eq!(
        types,
        ["bac.zoho.crm_lead.created", "bac.zoho.crm_lead.updated"],
        "{got:?}"
    );
    assert_eq!(mine[0].headers["ce_tenantid"], fleet.tenant);
    assert_eq!(mine[0].headers["ce_connectionid"], conn);
    let payload = mine[1].json();
    assert_eq!(payload["origin"], "platform", "{payload}");
    assert_eq!(payload["after"]["lead_status"], "Contacted", "{payload}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zoho_paging_rules_and_exhausted_credits() {
    let fleet = zoho_fleet(bac_sandbox_zoho::ZohoSandboxConfig {
        credits_per_window: Some(12),
        credit_window_secs: 3600,
        ..Default::default()
    })
    .await;
    let zoho = fleet.zoho.as_ref().unwrap().0.clone();
    let conn = fleet.connect_zoho("com", SCOPE, json!({})).await;
    let seeded: Value = fleet
        .http
        .post(format!("{zoho}/com/_sandbox/zoho/records/Leads"))
        .json(&json!({"count": 450, "fields": {"Company": "Seeded Inc"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["created"], 450);

    // page/per_page walk the first 2,000 records; past them page_token does.
    let (status, e) = fleet
        .call(
            Method::GET,
            "/api/v1/zoho/crm/leads?page=11&per_page=200",
            None,
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["details"]["suggestion"]
            .as_str()
            .unwrap_or_default()
            .contains("page_token"),
        "{e}"
    );
    let (status, first) = fleet
        .call(
            Method::GET,
            "/api/v1/zoho/crm/leads?per_page=200&sort_order=asc",
            None,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["leads"].as_array().unwrap().len(), 200);
    assert_eq!(first["pagination"]["more_records"], true, "{first}");
    let token = first["pagination"]["next_page_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, second) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/zoho/crm/leads?per_page=200&sort_order=asc&page_token={token}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["leads"][0]["id"], first["leads"][0]["id"]);
    let seen: std::collections::HashSet<&str> = first["leads"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["leads"].as_array().unwrap())
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen.len(), 400, "two pages, no record twice");
    assert_eq!(first["leads"][0]["company"], "Seeded Inc");

    // The organisation's credits run out: a rate limit that says when to retry, Zoho's
    // code kept, and the connection's calls counted at Zoho never past the limit.
    let mut last = (0, Value::Null);
    for _ in 0..12 {
        last = fleet
            .call(Method::GET, "/api/v1/zoho/crm/leads?per_page=1", None)
            .await;
        if last.0 != 200 {
            break;
        }
    }
    assert_eq!(last.0, 429, "{}", last.1);
    assert_eq!(
        last.1["details"]["error_code"], "UPSTREAM_RATE_LIMITED",
        "{}",
        last.1
    );
    let hint = last.1["details"]["suggestion"].as_str().unwrap_or_default();
    assert!(hint.contains("seconds"), "says when to retry: {}", last.1);
    let credits: Value = fleet
        .http
        .get(format!("{zoho}/com/_sandbox/zoho/credits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(credits["used"], 12, "{credits}");
    let _ = conn;
}

/// Zoho failing as it can (the sandbox's fault rules, per data centre): a 502 is retried, an
/// access token Zoho stopped accepting is refreshed once and the call goes on, a Zoho slower
/// than the call's deadline is a 504 that says so, each in the one error shape.
#[tokio::test(flavor = "multi_thread")]
async fn zoho_faults_are_retried_refreshed_or_reported() {
    let fleet = zoho_fleet(Default::default()).await;
    let zoho = fleet.zoho.as_ref().unwrap().0.clone();
    fleet.connect_zoho("com", SCOPE, json!({})).await;
    let rule = |spec: Value| {
        let (http, url) = (
            fleet.http.clone(),
            format!("{zoho}/com/_sandbox/zoho/faults"),
        );
        async move {
            let r = http.post(url).json(&spec).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201, "{spec}");
        }
    };
    let stats = || {
        let (http, url) = (
            fleet.http.clone(),
            format!("{zoho}/com/_sandbox/oauth/stats"),
        );
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["refreshes"].as_u64().unwrap_or(0)
        }
    };
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads", None)
        .await;
    assert_eq!(status, 200, "{list}");

    rule(json!({"protocol": "crm", "model": "Leads", "method": "get", "status": 502, "for_calls": 1})).await;
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads", None)
        .await;
    assert_eq!(status, 200, "a 502 is retried: {list}");

    let before = stats().await;
    rule(json!({"protocol": "crm", "model": "Leads", "session_expired": true, "for_calls": 1}))
        .await;
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads", None)
        .await;
    assert_eq!(status, 200, "a refused token is refreshed once: {list}");
    assert_eq!(stats().await, before + 1, "one refresh");

    rule(json!({"protocol": "crm", "model": "Leads", "slow_ms": 5000, "for_calls": 4})).await;
    let (status, e) = fleet
        .call(Method::GET, "/api/v1/zoho/crm/leads", None)
        .await;
    assert_eq!(status, 504, "{e}");
    assert_eq!(e["details"]["error_code"], "CONNECTION_TIMEOUT", "{e}");
    let calls: Value = fleet
        .http
        .get(format!("{zoho}/com/_sandbox/zoho/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        calls["calls"]["crm Leads/get"].as_u64() >= Some(4),
        "{calls}"
    );
}
