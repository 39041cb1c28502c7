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
        messaging: Some(bac_messaging::MessagingSettings {
            retry: bac_messaging::deliveries::RetryOptions {
                base: Duration::from_millis(100),
                max: Duration::from_millis(400),
                max_attempts: 4,
                lease: Duration::from_secs(60),
                concurrency: 4,
                per_tenant: 4,
            },
            // the mailboxes of the bounce test are read every 200 ms
            imap_every: Duration::from_millis(200),
            webhooks: bac_messaging::webhooks::sender::SenderOptions::from_env(),
            slack_url: bac_messaging::slack::SlackApi::url_from_env(),
            botframework: bac_messaging::teams_bot::BotFrameworkSettings::from_env(),
            google_chat_jwks_url: bac_messaging::chat_app::jwks_url_from_env(),
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

/// A send request on `bac.messaging.commands.v1`, as another platform service publishes it.
async fn command(
    producer: &rdkafka::producer::FutureProducer,
    fleet: &Fleet,
    ce_id: &str,
    data: Value,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", ce_id),
        ("ce_source", "/platform/billing"),
        ("ce_type", "bac.messaging.email.send"),
        ("ce_tenantid", fleet.tenant.as_str()),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    });
    let body = data.to_string();
    producer
        .send(
            // one key: the commands stay in one partition, in the order sent
            rdkafka::producer::FutureRecord::to("bac.messaging.commands.v1")
                .key("billing/email")
                .payload(&body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("command sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_command_sent_twice_is_one_email_and_a_bad_one_a_failed_delivery() {
    let sink = MailSink::start("billing", "pw");
    let fleet = fleet().await;
    connect(&fleet, &sink, "pw").await;
    let producer = bac_e2e::conformance::producer(&fleet);
    let order = json!({"to": ["ada@customer.example"], "subject": "Order shipped",
        "text": "Your order 1042 is on its way."});
    command(&producer, &fleet, "order-1042-shipped", order.clone()).await;
    command(&producer, &fleet, "order-1042-shipped", order).await;
    // text PostgreSQL cannot store (NUL) is a failed delivery, not a consumer stuck on it
    command(
        &producer,
        &fleet,
        "order-1044-nul",
        json!({"to": ["ada@customer.example"], "subject": "a\u{0}b", "text": "x"}),
    )
    .await;
    command(
        &producer,
        &fleet,
        "order-1043-shipped",
        json!({"subject": "x", "text": "no recipient"}),
    )
    .await;

    let c = kafka::consumer(&fleet.kafka.brokers(), TOPIC);
    let records = kafka::collect(&c, Duration::from_secs(60), |rs| {
        let by = |intent: &str, status: &str| {
            rs.iter().any(|r| {
                let d = r.json();
                d["intent_id"] == intent && d["status"] == status
            })
        };
        // each delivery has its own key (partition): wait for every one, not for the last sent
        by("order-1042-shipped", "sent")
            && by("order-1043-shipped", "failed")
            && by("order-1044-nul", "failed")
    })
    .await;
    let of = |intent: &str| -> Vec<Value> {
        records
            .iter()
            .map(|r| r.json())
            .filter(|d| d["intent_id"] == intent)
            .collect()
    };
    let shipped = of("order-1042-shipped");
    let statuses: Vec<&str> = shipped
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["queued", "sent"],
        "one delivery for two commands: {shipped:?}"
    );
    let refused = of("order-1043-shipped");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], "failed");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("to is required"),
        "{refused:?}"
    );

    let nul = of("order-1044-nul");
    assert_eq!(nul.len(), 1, "{nul:?}");
    assert_eq!(nul[0]["status"], "failed");
    assert!(
        nul[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be stored"),
        "{nul:?}"
    );

    let (_, list) = fleet
        .call(Method::GET, "/api/v1/messaging/deliveries", None)
        .await;
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 3, "{list}");
    let mails = sink.messages();
    assert_eq!(
        mails.len(),
        1,
        "one email for the two commands with one ce_id"
    );
    let m = MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(m.subject(), Some("Order shipped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bounce_read_over_imap_marks_the_delivery_bounced() {
    let imap = bac_e2e::Dovecot::start("billing", "pw");
    let sink = MailSink::start_with("billing", "pw", Some(&imap.maildir));
    let fleet = fleet().await;
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Billing mail",
                "config": {"channel": "email", "smtp_host": "localhost", "smtp_port": sink.port,
                    "smtp_security": "none", "username": "billing",
                    "from_address": "billing@acme.example",
                    "imap_host": "localhost", "imap_port": imap.port, "imap_security": "none"},
                "credentials": {"password": "pw"}})),
        )
        .await;
    assert_eq!(status, 201, "{conn}");

    let (_, ok) = send(
        &fleet,
        json!({"to": ["ada@customer.example"], "subject": "Invoice", "text": "hi"}),
        None,
    )
    .await;
    let (_, gone) = send(
        &fleet,
        json!({"to": ["gone+bounce@customer.example"], "subject": "Invoice", "text": "hi"}),
        None,
    )
    .await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let ok_id = ok["id"].as_str().unwrap().to_string();

    // the server took both (250); the bounce arrives later, as mail in the sender's mailbox
    let events = statuses(&fleet, &gone_id, |s| s.len() >= 3).await;
    let seen: Vec<String> = events
        .iter()
        .map(|r| r.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["queued", "sent", "bounced"]);
    let bounced = events[2].json();
    assert_eq!(bounced["previous_status"], "sent");
    let reason = bounced["reason"].as_str().unwrap();
    assert!(
        reason.contains("gone+bounce@customer.example") && reason.contains("5.1.1"),
        "{reason}"
    );
    let d = delivery(&fleet, &gone_id).await;
    assert_eq!(d["status"], "bounced", "{d}");
    // the other delivery stays sent, and the bounce is read once however often the mailbox is
    let sent = until_status(&fleet, &ok_id, "sent").await;
    assert_eq!(sent["status"], "sent");
    assert!(
        sent["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@acme.example>"),
        "{sent}"
    );
    let db = bac_e2e::connect(&fleet.infra.database_url).await;
    let read = std::sync::Mutex::new(0i64);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM messaging.call_log WHERE operation = 'imap.read' AND ok",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            *read.lock().unwrap() = n;
            n >= 3
        })
        .await,
        "the mailbox was read {} times",
        read.lock().unwrap()
    );
    let events = statuses(&fleet, &gone_id, |s| s.len() >= 3).await;
    assert_eq!(events.len(), 3, "one bounced event for one bounce");

    // a person's reply (In-Reply-To the email) is published with the delivery it answers
    let (_, asked) = send(
        &fleet,
        json!({"to": ["ada+reply@customer.example"], "subject": "Your quote", "text": "Attached."}),
        None,
    )
    .await;
    let asked_id = asked["id"].as_str().unwrap().to_string();
    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.reply.v1");
    let replies = kafka::collect(&c, Duration::from_secs(60), |rs| {
        rs.iter()
            .any(|r| r.json()["delivery_id"] == asked_id.as_str())
    })
    .await;
    let reply = replies
        .iter()
        .find(|r| r.json()["delivery_id"] == asked_id.as_str())
        .unwrap_or_else(|| panic!("no reply event: {replies:?}"));
    assert_eq!(reply.headers["ce_type"], "bac.messaging.reply.received");
    let data = reply.json();
    assert_eq!(data["from"], "ada+reply@customer.example");
    assert_eq!(data["subject"], "Re: Your quote");
    assert_eq!(data["text"].as_str().unwrap().trim(), "Thanks, received.");
    assert_eq!(data["tenant_id"], fleet.tenant.as_str());
}
