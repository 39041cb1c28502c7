//! Email through the gateway (issue 16), against a real SMTP server (aiosmtpd, the project's
//! `scripts/mail_sink.py`): a templated email arrives with both parts and its states are
//! events on `bac.messaging.delivery.v1`; a repeated Idempotency-Key sends once; temporary
//! refusals (451) are retried with backoff until delivered, permanent ones (550) fail at
//! once; bad input is refused before anything is queued; the connection test logs in.
use std::time::Duration;

use bac_e2e::{kafka, wait_until, Fleet, FleetOptions, MailSink};
use mail_parser::MessageParser;
use reqwest::Method;
use serde_json::{json, Value};

const TOPIC: &str = "bac.messaging.delivery.v1";

async fn fleet() -> Fleet {
    Fleet::start_opts(FleetOptions {
        messaging: Some(bac_messaging::deliveries::RetryOptions {
            base: Duration::from_millis(100),
            max: Duration::from_millis(400),
            max_attempts: 4,
            lease: Duration::from_secs(60),
            concurrency: 4,
            per_tenant: 4,
        }),
        ..Default::default()
    })
    .await
}

/// An email connection to `sink` logging in as `user` / `password`; its id.
async fn connect(fleet: &Fleet, sink: &MailSink, password: &str) -> String {
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Billing mail",
                "config": {"channel": "email", "smtp_host": "localhost", "smtp_port": sink.port,
                    "smtp_security": "none", "username": "billing",
                    "from_address": "billing@acme.example", "from_name": "Acme Billing"},
                "credentials": {"password": password}})),
        )
        .await;
    assert_eq!(status, 201, "{conn}");
    conn["id"].as_str().unwrap().to_string()
}

async fn send(fleet: &Fleet, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = fleet
        .http
        .post(format!("{}/api/v1/messaging/email/send", fleet.api))
        .bearer_auth(&fleet.key)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn delivery(fleet: &Fleet, id: &str) -> Value {
    let (status, d) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/messaging/deliveries/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

/// Waits until delivery `id` is in `status`; the delivery.
async fn until_status(fleet: &Fleet, id: &str, status: &str) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let reached = wait_until(Duration::from_secs(60), || async {
        let d = delivery(fleet, id).await;
        let done = d["status"] == status;
        *last.lock().unwrap() = d;
        done
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(reached, "delivery {id} never became {status}: {last}");
    last
}

/// The statuses of delivery `id`'s events, in order, once `done` holds for them.
async fn statuses(fleet: &Fleet, id: &str, done: impl Fn(&[String]) -> bool) -> Vec<kafka::Record> {
    let c = kafka::consumer(&fleet.kafka.brokers(), TOPIC);
    let subject = format!("delivery/{id}");
    let records = kafka::collect(&c, Duration::from_secs(60), |rs| {
        let mine: Vec<String> = rs
            .iter()
            .filter(|r| r.headers.get("ce_subject") == Some(&subject))
            .map(|r| r.json()["status"].as_str().unwrap_or("").to_string())
            .collect();
        done(&mine)
    })
    .await;
    records
        .into_iter()
        .filter(|r| r.headers.get("ce_subject") == Some(&subject))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_templated_email_arrives_with_both_parts_and_each_state_is_an_event() {
    let sink = MailSink::start("billing", "s3cret-pw");
    let fleet = fleet().await;
    let conn = connect(&fleet, &sink, "s3cret-pw").await;

    // a template: the variables it uses are found when it is stored; a change is a new version
    let (status, v1) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/templates",
            Some(
                json!({"name": "invoice.ready", "subject": "Invoice {{ number }}",
                "text": "Dear {{ customer.name }}, invoice {{ number }} is {{ amount }}.",
                "html": "<p>Dear {{ customer.name }},</p><p>invoice <b>{{ number }}</b></p>"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["variables"], json!(["amount", "customer", "number"]));
    let (_, v2) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/templates",
            Some(
                json!({"name": "invoice.ready", "subject": "Invoice {{ number }} from Acme",
                "text": "Dear {{ customer.name }}, invoice {{ number }} is {{ amount }}.",
                "html": "<p>Dear {{ customer.name }},</p><p>invoice <b>{{ number }}</b></p>"}),
            ),
        )
        .await;
    assert_eq!(v2["version"], 2, "{v2}");

    let body = json!({"to": ["Ada Lovelace <ada@customer.example>"], "bcc": ["audit@acme.example"],
        "template": "invoice.ready",
        "variables": {"number": "INV-7", "amount": "$120.00", "customer": {"name": "Ada <3"}}});
    let (status, queued) = send(&fleet, body.clone(), Some("inv-7-mail")).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["template_version"], 2);
    assert_eq!(queued["connection_id"], conn.as_str());
    let id = queued["id"].as_str().unwrap().to_string();

    let sent = until_status(&fleet, &id, "sent").await;
    assert_eq!(sent["attempts"], 1);
    assert!(
        sent["last_response"].as_str().unwrap().starts_with("250"),
        "{sent}"
    );

    // the same key again: the first delivery, nothing sent twice
    let (status, again) = send(&fleet, body, Some("inv-7-mail")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], id.as_str());

    let events = statuses(&fleet, &id, |s| s.len() >= 2).await;
    let seen: Vec<&str> = events
        .iter()
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(
        seen,
        [
            "bac.messaging.delivery.queued",
            "bac.messaging.delivery.sent"
        ]
    );
    let last = events[1].json();
    assert_eq!(last["previous_status"], "queued");
    assert_eq!(last["tenant_id"], fleet.tenant.as_str());
    assert_eq!(last["message_id"], sent["message_id"]);
    assert_eq!(events[1].headers["ce_tenantid"], fleet.tenant);
    assert_eq!(events[1].key, format!("{}/delivery/{id}", fleet.tenant));
    assert!(!String::from_utf8_lossy(&events[1].payload).contains("s3cret"));

    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "one email for two requests with one key");
    let m = MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(m.subject(), Some("Invoice INV-7 from Acme"));
    assert_eq!(
        m.body_text(0).unwrap().trim(),
        "Dear Ada <3, invoice INV-7 is $120.00."
    );
    let html = m.body_html(0).unwrap();
    assert!(
        html.contains("Dear Ada &lt;3,"),
        "the HTML part escapes variables: {html}"
    );
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some("billing@acme.example")
    );
    assert_eq!(
        m.message_id(),
        Some(
            sent["message_id"]
                .as_str()
                .unwrap()
                .trim_matches(['<', '>'])
        )
    );
    let raw = String::from_utf8_lossy(&mails[0]);
    assert!(
        raw.contains("X-Sink-Rcpt-To: ada@customer.example, audit@acme.example"),
        "{raw}"
    );
    assert!(!raw.contains("\nBcc:"), "Bcc stays in the envelope: {raw}");

    // another tenant neither sees the delivery nor the template
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet
        .call_as(
            &other,
            Method::GET,
            &format!("/api/v1/messaging/deliveries/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = fleet
        .call_as(
            &other,
            Method::GET,
            "/api/v1/messaging/templates/invoice.ready",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, list) = fleet
        .call(
            Method::GET,
            "/api/v1/messaging/deliveries?status=sent",
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_refusals_are_retried_until_delivered_and_permanent_ones_fail_at_once() {
    let sink = MailSink::start("billing", "pw");
    let fleet = fleet().await;
    connect(&fleet, &sink, "pw").await;

    let (status, d) = send(
        &fleet,
        json!({"to": ["busy+defer2@customer.example"], "subject": "Hello", "text": "hi"}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{d}");
    let deferred_id = d["id"].as_str().unwrap().to_string();
    let (_, d) = send(
        &fleet,
        json!({"to": ["gone+reject@customer.example"], "subject": "Hello", "html": "<p>hi</p>"}),
        None,
    )
    .await;
    let failed_id = d["id"].as_str().unwrap().to_string();

    let sent = until_status(&fleet, &deferred_id, "sent").await;
    assert_eq!(sent["attempts"], 3, "two 451s, then accepted: {sent}");
    let events = statuses(&fleet, &deferred_id, |s| s.len() >= 4).await;
    let seen: Vec<String> = events
        .iter()
        .map(|r| r.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["queued", "deferred", "deferred", "sent"]);
    let deferred = events[1].json();
    assert!(
        deferred["reason"].as_str().unwrap().contains("451"),
        "{deferred}"
    );
    assert!(deferred["next_attempt_at"].is_string(), "{deferred}");

    let failed = until_status(&fleet, &failed_id, "failed").await;
    assert_eq!(failed["attempts"], 1, "a 550 is not retried: {failed}");
    assert!(
        failed["last_response"].as_str().unwrap().contains("550"),
        "{failed}"
    );
    let events = statuses(&fleet, &failed_id, |s| s.len() >= 2).await;
    assert_eq!(
        events[1].headers["ce_type"],
        "bac.messaging.delivery.failed"
    );

    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "only the deferred one arrived, once");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_before_anything_is_queued() {
    let sink = MailSink::start("billing", "right");
    let fleet = fleet().await;

    // no email connection yet
    let (status, e) = send(
        &fleet,
        json!({"to": ["a@b.example"], "subject": "x", "text": "y"}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["details"]["error_code"], "NOT_CONNECTED", "{e}");

    let conn = connect(&fleet, &sink, "wrong").await;
    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/test"),
            None,
        )
        .await;
    assert_eq!(status, 422, "{test}");
    assert_eq!(
        test["details"]["error_code"], "INVALID_CREDENTIALS",
        "{test}"
    );
    assert_eq!(test["details"]["upstream_code"], "535", "{test}");
    assert!(
        !test.to_string().contains("wrong"),
        "the password is never echoed: {test}"
    );

    fleet
        .call(Method::POST, "/api/v1/messaging/templates",
            Some(json!({"name": "welcome", "subject": "Welcome {{ name }}", "text": "Hi {{ name }}, code {{ code }}"})))
        .await;
    for (body, says) in [
        (
            json!({"to": ["a@b.example"], "template": "welcome", "variables": {"name": "Ada"}}),
            "code",
        ),
        (
            json!({"to": ["a@b.example"], "template": "nope"}),
            "does not exist",
        ),
        (
            json!({"to": ["not an address"], "subject": "x", "text": "y"}),
            "not an email address",
        ),
        (
            json!({"to": ["a@b.example\r\nBcc: x@evil.example"], "subject": "x", "text": "y"}),
            "not an email address",
        ),
        (
            json!({"to": ["a@b.example"], "subject": "x"}),
            "text, html or both",
        ),
        (json!({"to": [], "subject": "x", "text": "y"}), "to"),
    ] {
        let (status, e) = send(&fleet, body.clone(), None).await;
        assert!(status == 400 || status == 404, "{body}: {status} {e}");
        assert!(
            e["message"].as_str().unwrap_or("").contains(says),
            "{body}: {e}"
        );
    }
    let (_, list) = fleet
        .call(Method::GET, "/api/v1/messaging/deliveries", None)
        .await;
    assert_eq!(list["deliveries"], json!([]), "nothing was queued: {list}");

    // a template that does not parse is refused with its line
    let (status, e) = fleet
        .call(
            Method::POST,
            "/api/v1/messaging/templates",
            Some(json!({"name": "broken", "subject": "x", "text": "one\n{% if %}"})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("line 2"), "{e}");
}
