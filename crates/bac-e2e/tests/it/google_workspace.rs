//! Google Workspace through the gateway (issue 15), against the Google sandbox: the
//! documented Gmail send body makes a message whose MIME parses back to what was asked;
//! a service account acting for two users keeps a token and a Calendar cursor per user, and
//! one user's 410 resyncs that user's calendar only; Calendar push channels are verified,
//! trigger an incremental run of the user's partition, are replaced before expiry and
//! stopped when the connection goes.
use std::time::Duration;

use bac_e2e::{conformance, connect, kafka, wait_until, Fleet, FleetOptions};
use base64::Engine as _;
use mail_parser::MimeHeaders;
use reqwest::Method;
use serde_json::{json, Value};

const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
];

async fn google_fleet(push: Option<bac_connector::channels::KeeperTimes>) -> Fleet {
    Fleet::start_opts(FleetOptions {
        google: true,
        google_push: push,
        ..Default::default()
    })
    .await
}

fn sandbox(fleet: &Fleet) -> &str {
    &fleet.google.as_ref().unwrap().0
}

async fn sandbox_get(fleet: &Fleet, path: &str) -> Value {
    fleet
        .http
        .get(format!("{}{path}", sandbox(fleet)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

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

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_gmail_body_sends_a_message_that_parses_back() {
    let fleet = google_fleet(None).await;
    let topic = kafka::consumer(
        &fleet.infra.brokers,
        "bac.google_workspace.gmail_message.v1",
    );
    fleet.connect_google(SCOPES, json!({})).await;

    let pdf = b"%PDF-1.4 the terms".to_vec();
    let body = json!({
        "to": "customer@example.com",
        "from": "sales@example.com",
        "subject": "Welcome to BAC Platform",
        "body": "Thank you for signing up!",
        "html_body": "<p>Thank you for <b>signing up</b>!</p>",
        "attachments": [{"filename": "terms.pdf", "content_type": "application/pdf",
                         "content": base64::engine::general_purpose::STANDARD.encode(&pdf)}],
    });
    let (status, sent) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        body.clone(),
        Some("welcome-1"),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();
    assert_eq!(
        sent["user"], "sales@example.com",
        "a service account sends as from"
    );
    let (status, again) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        body,
        Some("welcome-1"),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], id.as_str(), "the retry answers the first send");

    let mailbox = sandbox_get(&fleet, "/_sandbox/google/gmail/sales@example.com").await;
    let messages = mailbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "sent once: {mailbox}");
    let raw = messages[0]["raw"].as_str().unwrap().as_bytes().to_vec();
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some("Welcome to BAC Platform"));
    let to: Vec<&str> = parsed
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["customer@example.com"]);
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some("sales@example.com")
    );
    assert_eq!(
        parsed.body_text(0).unwrap().trim(),
        "Thank you for signing up!"
    );
    assert!(parsed.body_html(0).unwrap().contains("<b>signing up</b>"));
    let attachment = parsed.attachment(0).unwrap();
    assert_eq!(attachment.attachment_name(), Some("terms.pdf"));
    assert_eq!(attachment.contents(), pdf.as_slice());

    // One event, for the one send.
    let got = kafka::collect(&topic, Duration::from_secs(30), |r| !r.is_empty()).await;
    let more = kafka::collect(&topic, Duration::from_secs(1), |_| false).await;
    assert_eq!(got.len() + more.len(), 1, "one event for one message");
    assert_eq!(
        got[0].headers["ce_subject"],
        format!("gmail_message/sales@example.com/{id}")
    );
    let event = got[0].json();
    assert_eq!(
        event["after"]["subject"], "Welcome to BAC Platform",
        "{event}"
    );
    assert_eq!(event["after"]["to"], "customer@example.com", "{event}");

    // The message is listed in the sender's mailbox with its headers.
    let (status, list) = fleet
        .call(
            Method::GET,
            "/api/v1/google-workspace/gmail/messages?user=sales@example.com&q=subject:Welcome",
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["messages"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["messages"][0]["subject"], "Welcome to BAC Platform");

    // Bad input: the one error shape, nothing sent.
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        json!({"to": "customer@example.com", "from": "sales@example.com", "body": "x"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("subject"),
        "{err}"
    );
    assert_eq!(err["error"], "invalid_request", "{err}");
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        json!({"to": "customer@example.com", "from": "ceo@elsewhere.com", "subject": "s", "body": "x"}),
        None,
    )
    .await;
    assert_eq!(status, 403, "another domain's user: {err}");
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        json!({"to": "customer@example.com", "from": "sales@example.com",
               "subject": "s\r\nBcc: victim@example.com", "body": "x"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "a header smuggled in the subject: {err}");
    let mailbox = sandbox_get(&fleet, "/_sandbox/google/gmail/sales@example.com").await;
    assert_eq!(mailbox["messages"].as_array().unwrap().len(), 1);
}

/// (partition, status, records_seen) of the connection's calendar runs, oldest first.
async fn calendar_runs(fleet: &Fleet, conn: &str) -> Vec<(String, String, i64)> {
    let db = connect(&fleet.infra.database_url).await;
    db.query(
        "SELECT partition, status, records_seen FROM google_workspace.sync_runs
          WHERE connection_id = $1 AND entity = 'calendar_event' AND partition <> ''
          ORDER BY queued_at, partition",
        &[&conn],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Waits until `n` partition runs of the connection's calendars ended; them.
async fn ended_runs(fleet: &Fleet, conn: &str, n: usize) -> Vec<(String, String, i64)> {
    let ok = wait_until(Duration::from_secs(90), || async {
        let runs = calendar_runs(fleet, conn).await;
        runs.len() >= n && runs.iter().all(|r| r.1 == "succeeded" || r.1 == "failed")
    })
    .await;
    let runs = calendar_runs(fleet, conn).await;
    assert!(ok, "{n} partition runs did not end: {runs:?}");
    runs
}

async fn cursors(fleet: &Fleet, conn: &str) -> Vec<(String, String)> {
    let db = connect(&fleet.infra.database_url).await;
    db.query(
        "SELECT partition, cursor->>'sync_token' FROM google_workspace.sync_cursors
          WHERE connection_id = $1 AND entity = 'calendar_event' ORDER BY partition",
        &[&conn],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
    .collect()
}

async fn create_event(fleet: &Fleet, user: &str, summary: &str, key: &str) -> Value {
    let (status, ev) = post(
        fleet,
        &format!("/api/v1/google-workspace/calendar/events?user={user}&add_meet=true"),
        json!({"summary": summary, "start": "2026-12-10T10:00:00+05:30",
               "end": "2026-12-10T11:00:00+05:30", "time_zone": "Asia/Kolkata",
               "attendees": [{"email": "guest@partner.com"}]}),
        Some(key),
    )
    .await;
    assert_eq!(status, 201, "{ev}");
    ev
}

#[tokio::test(flavor = "multi_thread")]
async fn two_delegated_users_keep_their_own_tokens_and_cursors_and_a_410_resyncs_one() {
    let fleet = google_fleet(None).await;
    let conn = fleet
        .connect_google(
            SCOPES,
            json!({"users": ["alice@example.com", "bob@example.com"]}),
        )
        .await;
    let alice = create_event(&fleet, "alice@example.com", "Alice's review", "ev-a").await;
    assert!(
        alice["meet_link"]
            .as_str()
            .unwrap()
            .starts_with("https://meet.google.com/"),
        "{alice}"
    );
    assert_eq!(alice["attendees"][0]["email"], "guest@partner.com");
    let again = create_event(&fleet, "alice@example.com", "Alice's review", "ev-a").await;
    assert_eq!(
        again["id"], alice["id"],
        "the retried create is the first event"
    );
    create_event(&fleet, "bob@example.com", "Bob's standup", "ev-b").await;
    let stats = sandbox_get(&fleet, "/_sandbox/oauth/stats").await;
    assert_eq!(stats["jwt_grants"], 2, "one assertion per user: {stats}");

    // The first run lists both calendars, each in its own partition run with its own cursor.
    conformance::sync(&fleet, &conn, "calendar_event", "incremental").await;
    let runs = ended_runs(&fleet, &conn, 2).await;
    assert!(runs.iter().all(|r| r.1 == "succeeded"), "{runs:?}");
    let first = cursors(&fleet, &conn).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0].0, "alice@example.com");
    assert_eq!(first[1].0, "bob@example.com");
    assert!(first.iter().all(|c| !c.1.is_empty()), "{first:?}");

    // Alice's sync tokens stop being honoured: her calendar is listed whole again, Bob's is
    // read from his cursor.
    let status = fleet
        .http
        .post(format!(
            "{}/_sandbox/google/calendar/alice@example.com/expire-sync-tokens",
            sandbox(&fleet)
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    conformance::sync(&fleet, &conn, "calendar_event", "incremental").await;
    let runs = ended_runs(&fleet, &conn, 4).await;
    let (a, b) = (&runs[2], &runs[3]);
    assert_eq!(
        (a.0.as_str(), a.1.as_str()),
        ("alice@example.com", "succeeded"),
        "{runs:?}"
    );
    assert_eq!(
        (b.0.as_str(), b.1.as_str()),
        ("bob@example.com", "succeeded"),
        "{runs:?}"
    );
    assert_eq!(a.2, 1, "alice's calendar was listed again: {runs:?}");
    assert_eq!(b.2, 0, "bob's was read from his cursor: {runs:?}");
    let second = cursors(&fleet, &conn).await;
    assert_ne!(second[0].1, first[0].1, "alice has a new cursor");
    assert_eq!(
        sandbox_get(&fleet, "/_sandbox/oauth/stats").await["jwt_grants"],
        2,
        "the tokens were reused"
    );
}

/// An access token of `user` of the sandbox's domain (as their own app has), for changing
/// their calendar behind the fleet's back.
async fn user_token(fleet: &Fleet, user: &str) -> String {
    let n = uuid::Uuid::new_v4().simple().to_string();
    let base = sandbox(fleet);
    let status = fleet
        .http
        .post(format!("{base}/_sandbox/oauth/grants"))
        .json(
            &json!({"client_id": format!("app-{}", &n[..6]), "client_secret": "s",
            "refresh_token": format!("rt-{n}"), "subject": user,
            "scope": "https://www.googleapis.com/auth/calendar.events"}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let answer: Value = fleet
        .http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &format!("app-{}", &n[..6])),
            ("client_secret", "s"),
            ("refresh_token", &format!("rt-{n}")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

/// The sandbox's channels that are not expired.
fn live(report: &Value) -> Vec<Value> {
    report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["expired"] == false)
        .cloned()
        .collect()
}

/// The live channel watching `key` (`calendar:<user>`, `drive:<user>`).
fn live_on(report: &Value, key: &str) -> Option<Value> {
    live(report).into_iter().find(|c| c["key"] == key)
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_pushes_are_verified_trigger_the_users_partition_renew_and_stop() {
    let fleet = google_fleet(Some(bac_connector::channels::KeeperTimes {
        lifetime: Duration::from_secs(3600),
        renew_before: Duration::from_secs(600),
        every: Duration::from_millis(300),
    }))
    .await;
    let topic = kafka::consumer(
        &fleet.infra.brokers,
        "bac.google_workspace.calendar_event.v1",
    );
    let conn = fleet
        .connect_google(SCOPES, json!({"users": ["alice@example.com"]}))
        .await;
    // The first runs give alice cursors, so what follows is incremental.
    conformance::sync(&fleet, &conn, "calendar_event", "incremental").await;
    ended_runs(&fleet, &conn, 1).await;
    conformance::sync(&fleet, &conn, "drive_file", "incremental").await;

    // The keeper opens alice's channels (calendar, Drive) to the gateway's push route.
    let opened = wait_until(Duration::from_secs(60), || async {
        live(&sandbox_get(&fleet, "/_sandbox/google/channels").await).len() == 2
    })
    .await;
    let report = sandbox_get(&fleet, "/_sandbox/google/channels").await;
    assert!(opened, "{report}");
    let channel = live_on(&report, "calendar:alice@example.com").expect("alice's calendar channel");
    assert!(
        live_on(&report, "drive:alice@example.com").is_some(),
        "{report}"
    );
    assert!(
        channel["address"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/integrations/connections/{conn}/push")),
        "{channel}"
    );
    assert!(channel["id"]
        .as_str()
        .unwrap()
        .ends_with(".alice@example.com"));

    // A notification with the wrong token is refused and queues nothing.
    let push_url = format!("{}/api/v1/integrations/connections/{conn}/push", fleet.api);
    let forged = fleet
        .http
        .post(&push_url)
        .header("X-Goog-Channel-ID", channel["id"].as_str().unwrap())
        .header("X-Goog-Channel-Token", "not-the-token")
        .header("X-Goog-Resource-State", "exists")
        .header(
            "X-Goog-Resource-ID",
            channel["resourceId"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(
        calendar_runs(&fleet, &conn).await.len(),
        1,
        "nothing queued"
    );

    // Alice adds an event in her own calendar app: Google pushes, the fleet runs alice's
    // partition and publishes the event.
    let token = user_token(&fleet, "alice@example.com").await;
    let created: Value = fleet
        .http
        .post(format!(
            "{}/calendar/v3/calendars/primary/events",
            sandbox(&fleet)
        ))
        .bearer_auth(&token)
        .json(
            &json!({"summary": "Dentist", "start": {"dateTime": "2026-12-11T09:00:00Z"},
                      "end": {"dateTime": "2026-12-11T10:00:00Z"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subject = format!(
        "calendar_event/alice@example.com/{}",
        created["id"].as_str().unwrap()
    );
    let got = kafka::collect(&topic, Duration::from_secs(60), |r| {
        r.iter().any(|e| e.headers["ce_subject"] == subject)
    })
    .await;
    assert!(
        got.iter().any(|e| e.headers["ce_subject"] == subject),
        "the pushed change was published: {:?}",
        got.iter()
            .map(|e| &e.headers["ce_subject"])
            .collect::<Vec<_>>()
    );
    let runs = calendar_runs(&fleet, &conn).await;
    assert!(
        runs.len() >= 2 && runs.iter().all(|r| r.0 == "alice@example.com"),
        "{runs:?}"
    );

    // A file added to her Drive is pushed and published the same way.
    let token = user_token_scoped(
        &fleet,
        "alice@example.com",
        "https://www.googleapis.com/auth/drive",
    )
    .await;
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{\"name\": \"notes.txt\"}}\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let file: Value = fleet
        .http
        .post(format!(
            "{}/upload/drive/v3/files?uploadType=multipart",
            sandbox(&fleet)
        ))
        .bearer_auth(&token)
        .header(
            "Content-Type",
            format!("multipart/related; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_subject = format!(
        "drive_file/alice@example.com/{}",
        file["id"].as_str().unwrap()
    );
    let got = conformance::events(&fleet, "bac.google_workspace.drive_file.v1", |r| {
        r.iter().any(|e| e.headers["ce_subject"] == file_subject)
    })
    .await;
    assert!(
        got.iter().any(|e| e.headers["ce_subject"] == file_subject),
        "the pushed Drive change was published"
    );

    // Deleting the connection stops its channel at Google.
    let (status, _) = fleet
        .call(
            Method::DELETE,
            &format!("/api/v1/integrations/connections/{conn}"),
            None,
        )
        .await;
    assert!(status == 204 || status == 200, "{status}");
    let report = sandbox_get(&fleet, "/_sandbox/google/channels").await;
    let stops = report["stops"].to_string();
    assert!(
        stops.contains(channel["id"].as_str().unwrap()),
        "the sandbox saw the stop: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_near_expiry_is_replaced_and_the_old_one_stopped() {
    // every channel is "near expiry" at once: each pass replaces it
    let fleet = google_fleet(Some(bac_connector::channels::KeeperTimes {
        lifetime: Duration::from_secs(3600),
        renew_before: Duration::from_secs(7200),
        every: Duration::from_millis(300),
    }))
    .await;
    let conn = fleet
        .connect_google(SCOPES, json!({"users": ["carol@example.com"]}))
        .await;
    let renewed = wait_until(Duration::from_secs(60), || async {
        let r = sandbox_get(&fleet, "/_sandbox/google/channels").await;
        r["stops"].as_array().is_some_and(|s| !s.is_empty())
            && r["channels"].as_array().is_some_and(|c| c.len() >= 2)
    })
    .await;
    let report = sandbox_get(&fleet, "/_sandbox/google/channels").await;
    assert!(renewed, "{report}");
    // The channel the fleet keeps (once the pass that replaced it committed) is live and was
    // not stopped: each pass replaces it again here, so the check waits for a moment between
    // two passes.
    let db = connect(&fleet.infra.database_url).await;
    let consistent = wait_until(Duration::from_secs(60), || async {
        let kept: String = db
            .query_one(
                "SELECT channel_id FROM google_workspace.push_channels
                  WHERE connection_id = $1 AND key = 'calendar:carol@example.com'",
                &[&conn],
            )
            .await
            .unwrap()
            .get(0);
        let r = sandbox_get(&fleet, "/_sandbox/google/channels").await;
        let id = format!("{kept}.carol@example.com");
        !r["stops"].to_string().contains(&format!("\"{id}\""))
            && live_on(&r, "calendar:carol@example.com").is_some_and(|c| c["id"] == id.as_str())
    })
    .await;
    let report = sandbox_get(&fleet, "/_sandbox/google/channels").await;
    assert!(consistent, "the kept channel is the live one: {report}");
}

/// The service's own Drive upload (its client, token source and connection) for `conn`.
async fn service_client(
    fleet: &Fleet,
    conn: &str,
) -> (
    bac_google_workspace::client::GoogleClient,
    bac_runtime::connections::ConnectionRecord,
    bac_connector::TokenSource,
) {
    use bac_runtime::{db, upstream::UpstreamClient, vault, ServiceKind};
    let cfg = fleet.infra.config(ServiceKind::GoogleWorkspace);
    let pool = db::pool(&fleet.infra.database_url, "google_workspace", 4).unwrap();
    let vault = vault::Vault::new(fleet.vault.config()).unwrap();
    let store = bac_runtime::connections::ConnectionStore::new(
        pool.clone(),
        vault.clone(),
        "google-workspace",
    );
    let rec = store.get(&fleet.tenant, conn).await.unwrap();
    let http = UpstreamClient::new(
        "google-workspace",
        cfg.upstream_per_second,
        bac_runtime::upstream::RetryPolicy::default(),
        cfg.upstream_egress.clone(),
    );
    let calls = bac_connector::Calls::new(pool.clone(), "google-workspace", "Google Workspace");
    let hosts = bac_google_workspace::client::Hosts {
        base: Some(sandbox(fleet).to_string()),
    };
    let tokens = bac_connector::TokenSource::new(
        "google-workspace",
        "Google",
        pool,
        vault,
        http.clone(),
        calls.clone(),
        bac_google_workspace::connector::GoogleGrant {
            hosts: hosts.clone(),
        },
    );
    (
        bac_google_workspace::client::GoogleClient::new(hosts, tokens.clone(), http, calls),
        rec,
        tokens,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_upload_cut_off_midway_resumes_from_the_last_acknowledged_byte() {
    use bac_google_workspace::upload::{self, NewFile, CHUNK};
    const MB: usize = 1024 * 1024;
    let fleet = google_fleet(None).await;
    let conn = fleet.connect_google(SCOPES, json!({})).await;
    let (client, rec, tokens) = service_client(&fleet, &conn).await;
    let content: Vec<u8> = (0..50 * MB as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // The third chunk (bytes 16 MB..24 MB) is cut off after 3 MB: Google keeps those.
    let status = fleet
        .http
        .post(format!(
            "{}/_sandbox/google/drive/interrupt",
            sandbox(&fleet)
        ))
        .json(&json!({"chunk": 3, "keep_bytes": 3 * MB}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let file = upload::upload(
        &client,
        &rec,
        "admin@example.com",
        &NewFile {
            name: "backup.bin".into(),
            mime_type: "application/octet-stream".into(),
            parents: Vec::new(),
            description: String::new(),
            content: content.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(file["size"], (50 * MB).to_string(), "{file}");

    let log = sandbox_get(&fleet, "/_sandbox/google/drive/uploads").await;
    let entries = log["log"].as_array().unwrap();
    let cut = entries
        .iter()
        .position(|e| e["cut"] == true)
        .expect("a chunk was cut");
    assert_eq!(entries[cut]["from"], 2 * CHUNK as u64, "{log}");
    assert_eq!(entries[cut]["held"], (2 * CHUNK + 3 * MB) as u64, "{log}");
    // then the status query (no bytes), then the next chunk from the acknowledged byte
    assert!(entries[cut + 1]["from"].is_null(), "{log}");
    assert_eq!(
        entries[cut + 2]["from"],
        (2 * CHUNK + 3 * MB) as u64,
        "resumed from the last acknowledged byte, not the chunk's start: {log}"
    );
    assert_eq!(entries.last().unwrap()["held"], (50 * MB) as u64);

    // Drive holds exactly the bytes sent.
    let id = file["id"].as_str().unwrap();
    let token = tokens.token(&rec, Some("admin@example.com")).await.unwrap();
    let resp = fleet
        .http
        .get(format!("{}/drive/v3/files/{id}?alt=media", sandbox(&fleet)))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token.value))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let held = resp.bytes().await.unwrap();
    use sha2::Digest;
    assert_eq!(held.len(), content.len());
    assert_eq!(sha2::Sha256::digest(&held), sha2::Sha256::digest(&content));
}

/// Delivers a message from outside to `user`'s inbox at the sandbox; its Gmail id.
async fn deliver(fleet: &Fleet, user: &str, subject: &str) -> String {
    let raw = format!(
        "From: Grace <grace@partner.com>\r\nTo: {user}\r\nSubject: {subject}\r\nMessage-ID: <{}@partner.com>\r\n\r\nHello.\r\n",
        uuid::Uuid::new_v4().simple()
    );
    let answer: Value = fleet
        .http
        .post(format!(
            "{}/_sandbox/google/gmail/{user}/deliver",
            sandbox(fleet)
        ))
        .json(&json!({"raw": raw}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id"].as_str().unwrap().to_string()
}

/// (partition, records_seen, created, deleted) of the newest run of each partition.
async fn newest_runs(fleet: &Fleet, conn: &str, entity: &str) -> Vec<(String, i64, i64, i64)> {
    let db = connect(&fleet.infra.database_url).await;
    db.query(
        "SELECT DISTINCT ON (partition) partition, records_seen, records_created, records_deleted
           FROM google_workspace.sync_runs
          WHERE connection_id = $1 AND entity = $2 AND partition <> ''
          ORDER BY partition, queued_at DESC",
        &[&conn, &entity],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mailboxes_sync_by_history_and_a_lost_history_relists_one_mailbox() {
    let fleet = google_fleet(None).await;
    let conn = fleet
        .connect_google(
            SCOPES,
            json!({"users": ["alice@example.com", "bob@example.com"]}),
        )
        .await;
    let a1 = deliver(&fleet, "alice@example.com", "Invoice 1").await;
    deliver(&fleet, "alice@example.com", "Invoice 2").await;
    deliver(&fleet, "bob@example.com", "Hello Bob").await;
    let run = conformance::sync(&fleet, &conn, "gmail_message", "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(conformance::counts(&run), (3, 0, 0), "{run}");

    // Alice gets mail and deletes one; she sends one through the fleet; Bob gets mail and
    // his history is lost.
    let a3 = deliver(&fleet, "alice@example.com", "Invoice 3").await;
    let token = user_token_scoped(&fleet, "alice@example.com", "https://mail.google.com/").await;
    let status = fleet
        .http
        .delete(format!(
            "{}/gmail/v1/users/alice@example.com/messages/{a1}",
            sandbox(&fleet)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let (status, sent) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        json!({"to": "customer@example.com", "user": "alice@example.com",
               "subject": "Re: Invoice 2", "body": "Paid."}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    deliver(&fleet, "bob@example.com", "Hello again").await;
    let status = fleet
        .http
        .post(format!(
            "{}/_sandbox/google/gmail/bob@example.com/expire-history",
            sandbox(&fleet)
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let run = conformance::sync(&fleet, &conn, "gmail_message", "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let runs = newest_runs(&fleet, &conn, "gmail_message").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (alice, bob) = (&runs[0], &runs[1]);
    assert_eq!(alice.0, "alice@example.com");
    // Invoice 3 is new, Invoice 1 is gone; the fleet's own send is no news.
    assert_eq!(
        (alice.2, alice.3),
        (1, 1),
        "alice read from her history: {runs:?}"
    );
    assert_eq!(bob.0, "bob@example.com");
    assert_eq!(bob.1, 2, "bob's mailbox was listed again: {runs:?}");
    assert_eq!((bob.2, bob.3), (1, 0), "{runs:?}");

    let subject = |id: &str| format!("gmail_message/alice@example.com/{id}");
    let sent_id = sent["id"].as_str().unwrap();
    // every record's events, then a second more for any that should not be there
    let got = conformance::events(&fleet, "bac.google_workspace.gmail_message.v1", |r| {
        [&a3, sent_id]
            .iter()
            .all(|id| r.iter().any(|e| e.headers["ce_subject"] == subject(id)))
            && r.iter().any(|e| e.headers["ce_type"].ends_with(".deleted"))
    })
    .await;
    let of = |id: &str| {
        got.iter()
            .filter(|e| e.headers["ce_subject"] == subject(id))
            .map(|e| e.headers["ce_type"].rsplit('.').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(of(&a1), ["created", "deleted"]);
    assert_eq!(of(&a3), ["created"]);
    assert_eq!(of(sent_id), ["created"], "the send is published once");
    let e = got
        .iter()
        .find(|e| e.headers["ce_subject"] == subject(&a3))
        .unwrap()
        .json();
    assert_eq!(e["after"]["from"], "grace@partner.com", "{e}");
    assert_eq!(e["after"]["subject"], "Invoice 3", "{e}");
}

/// An access token of `user` with `scope`, as their own mail app has.
async fn user_token_scoped(fleet: &Fleet, user: &str, scope: &str) -> String {
    let n = uuid::Uuid::new_v4().simple().to_string();
    let base = sandbox(fleet);
    let (client, refresh) = (format!("app-{}", &n[..6]), format!("rt-{n}"));
    fleet
        .http
        .post(format!("{base}/_sandbox/oauth/grants"))
        .json(
            &json!({"client_id": client, "client_secret": "s", "refresh_token": refresh,
                      "subject": user, "scope": scope}),
        )
        .send()
        .await
        .unwrap();
    let answer: Value = fleet
        .http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.as_str()),
            ("client_secret", "s"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_oauth_connection_acts_for_that_user_only_and_names_missing_scopes() {
    let fleet = google_fleet(None).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let callback = format!("{}/api/v1/integrations/oauth/callback", fleet.api);
    let client_id = "1234-web.apps.googleusercontent.com";
    let status = http
        .post(format!("{}/_sandbox/oauth/clients", sandbox(&fleet)))
        .json(&json!({"client_id": client_id, "client_secret": "g-secret",
                      "user": "ada@example.com", "redirect_uris": [callback]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let scopes = [
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/gmail.readonly",
    ];
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(
                json!({"integration": "google-workspace", "name": "Ada's Workspace",
                "config": {"auth": "oauth", "client_id": client_id, "domain": "example.com",
                           "subject": "ada@example.com", "scopes": scopes},
                "credentials": {"client_secret": "g-secret"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{conn}");
    let url = conn["authorization_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/o/oauth2/v2/auth?", sandbox(&fleet))),
        "{url}"
    );
    for part in [
        "access_type=offline",
        "include_granted_scopes=true",
        "code_challenge_method=S256",
        "login_hint=ada%40example.com",
    ] {
        assert!(url.contains(part), "{part}: {url}");
    }
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    let done: Value = http.get(&back).send().await.unwrap().json().await.unwrap();
    assert_eq!(done["authorized"], true, "{done}");
    assert_eq!(done["granted_scopes"], json!(scopes), "{done}");

    // Ada's own calendar: yes. Bob's: not with Ada's consent.
    create_event(&fleet, "ada@example.com", "Ada's planning", "oauth-ev").await;
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/calendar/events?user=bob@example.com",
        json!({"summary": "x", "start": "2026-12-10T10:00:00Z", "end": "2026-12-10T11:00:00Z"}),
        None,
    )
    .await;
    assert_eq!(status, 403, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot act as bob@example.com"),
        "{err}"
    );

    // Sending needs gmail.send, which Ada did not grant: Google's reason and where to add it.
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/gmail/send",
        json!({"to": "customer@example.com", "subject": "s", "body": "b"}),
        None,
    )
    .await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        err["details"]["upstream_code"], "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "{err}"
    );
    assert!(
        err["message"].as_str().unwrap().contains("missing scope"),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("https://www.googleapis.com/auth/gmail.send"),
        "the scope to add is named: {err}"
    );
    assert!(
        err["details"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("Domain-wide delegation"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_rate_limit_parks_that_users_partition_only() {
    let fleet = google_fleet(None).await;
    let conn = fleet
        .connect_google(
            SCOPES,
            json!({"users": ["alice@example.com", "bob@example.com"]}),
        )
        .await;
    // Alice is over her quota for her next call (Google asks for a second's rest).
    let status = fleet
        .http
        .post(format!("{}/_sandbox/google/quota", sandbox(&fleet)))
        .json(&json!({"user": "alice@example.com", "calls": 1,
                      "reason": "userRateLimitExceeded", "retry_after_secs": 1}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let run = conformance::sync(&fleet, &conn, "calendar_event", "incremental").await;
    assert_eq!(
        run["status"], "succeeded",
        "alice's run parked, then succeeded: {run}"
    );
    let db = connect(&fleet.infra.database_url).await;
    let rows = db
        .query(
            "SELECT partition, finished_at FROM google_workspace.sync_runs
              WHERE connection_id = $1 AND partition <> '' ORDER BY partition",
            &[&conn],
        )
        .await
        .unwrap();
    let finished: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(
        finished[1].1 < finished[0].1,
        "bob's calendar was not held up by alice's limit: {finished:?}"
    );
    let report = sandbox_get(&fleet, "/_sandbox/google/quota").await;
    assert_eq!(report["refused"]["alice@example.com"], 1, "{report}");
    assert!(report["refused"]["bob@example.com"].is_null(), "{report}");
}

/// A GET of the sandbox as `user` with their own token for `scope`.
async fn as_user(fleet: &Fleet, user: &str, scope: &str, path: &str) -> Value {
    let n = uuid::Uuid::new_v4().simple().to_string();
    let base = sandbox(fleet);
    let (client, refresh) = (format!("app-{}", &n[..6]), format!("rt-{n}"));
    fleet
        .http
        .post(format!("{base}/_sandbox/oauth/grants"))
        .json(
            &json!({"client_id": client, "client_secret": "s", "refresh_token": refresh,
                      "subject": user, "scope": scope}),
        )
        .send()
        .await
        .unwrap();
    let answer: Value = fleet
        .http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.as_str()),
            ("client_secret", "s"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fleet
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(answer["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_sheets_slides_and_forms_are_created_with_their_content() {
    let fleet = google_fleet(None).await;
    let mut scopes = SCOPES.to_vec();
    scopes.extend([
        "https://www.googleapis.com/auth/documents",
        "https://www.googleapis.com/auth/spreadsheets",
        "https://www.googleapis.com/auth/presentations",
        "https://www.googleapis.com/auth/forms.body",
        "https://www.googleapis.com/auth/forms.responses.readonly",
    ]);
    fleet.connect_google(&scopes, json!({})).await;
    let docs_topic = kafka::consumer(&fleet.infra.brokers, "bac.google_workspace.document.v1");

    // A Doc with its text, once for one key.
    let body = json!({"title": "Proposal", "content": "Scope of work\nPhase one."});
    let (status, doc) = post(
        &fleet,
        "/api/v1/google-workspace/docs/documents",
        body.clone(),
        Some("doc-1"),
    )
    .await;
    assert_eq!(status, 201, "{doc}");
    let (_, again) = post(
        &fleet,
        "/api/v1/google-workspace/docs/documents",
        body,
        Some("doc-1"),
    )
    .await;
    assert_eq!(again["id"], doc["id"], "one document for one key");
    let id = doc["id"].as_str().unwrap();
    let got = as_user(
        &fleet,
        "admin@example.com",
        "https://www.googleapis.com/auth/documents",
        &format!("/v1/documents/{id}"),
    )
    .await;
    let text: String = got["body"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["paragraph"]["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|e| e["textRun"]["content"].as_str().map(String::from))
        .collect();
    assert!(text.contains("Scope of work\nPhase one."), "{got}");
    let events = kafka::collect(&docs_topic, Duration::from_secs(30), |r| !r.is_empty()).await;
    assert_eq!(events[0].headers["ce_subject"], format!("document/{id}"));

    // A Sheet with rows, then a write and an append.
    let (status, sheet) = post(
        &fleet,
        "/api/v1/google-workspace/sheets/spreadsheets",
        json!({"title": "Pipeline", "rows": [{"cells": ["Customer", "Amount"]}, {"cells": ["Acme", "5000"]}]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{sheet}");
    let sid = sheet["id"].as_str().unwrap().to_string();
    let values_path = format!("/api/v1/google-workspace/sheets/spreadsheets/{sid}/values");
    let (status, up) = fleet
        .call(
            Method::PUT,
            &values_path,
            Some(json!({"range": "Sheet1!B2", "rows": [{"cells": ["7500"]}]})),
        )
        .await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["updated_cells"], 1, "{up}");
    let (status, ap) = post(
        &fleet,
        &values_path,
        json!({"range": "Sheet1!A1", "rows": [{"cells": ["Globex", "1200"]}]}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ap}");
    assert_eq!(ap["updated_rows"], 1, "{ap}");
    let values = as_user(
        &fleet,
        "admin@example.com",
        "https://www.googleapis.com/auth/spreadsheets",
        &format!("/v4/spreadsheets/{sid}/values/Sheet1!A1:B3"),
    )
    .await;
    assert_eq!(
        values["values"],
        json!([["Customer", "Amount"], ["Acme", "7500"], ["Globex", "1200"]]),
        "{values}"
    );
    let (status, err) = fleet
        .call(
            Method::PUT,
            &values_path,
            Some(json!({"range": "Sheet1!A1", "rows": []})),
        )
        .await;
    assert_eq!(status, 400, "{err}");

    // A presentation with a slide of text.
    let (status, deck) = post(
        &fleet,
        "/api/v1/google-workspace/slides/presentations",
        json!({"title": "Kick-off", "slides": [{"title": "Agenda", "body": "Goals\nTimeline"}]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{deck}");
    let pid = deck["id"].as_str().unwrap();
    let got = as_user(
        &fleet,
        "admin@example.com",
        "https://www.googleapis.com/auth/presentations",
        &format!("/v1/presentations/{pid}"),
    )
    .await;
    assert!(
        got.to_string().contains("Agenda") && got.to_string().contains("Goals\\nTimeline"),
        "{got}"
    );

    // A form with two questions; a respondent answers; the responses are listed.
    let (status, form) = post(
        &fleet,
        "/api/v1/google-workspace/forms/forms",
        json!({"title": "Customer feedback", "questions": [
            {"title": "Your name", "kind": "text", "required": true},
            {"title": "How did we do?", "kind": "choice", "options": ["Well", "Badly"]}]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{form}");
    let fid = form["id"].as_str().unwrap();
    let qids: Vec<String> = form["question_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().to_string())
        .collect();
    assert_eq!(qids.len(), 2, "{form}");
    let status = fleet
        .http
        .post(format!(
            "{}/_sandbox/google/forms/{fid}/responses",
            sandbox(&fleet)
        ))
        .json(&json!({"answers": {qids[0].clone(): ["Ada"], qids[1].clone(): ["Well"]}}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let (status, list) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/google-workspace/forms/forms/{fid}/responses"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let answers = list["responses"][0]["answers"].to_string();
    assert!(
        answers.contains("Ada") && answers.contains("Well"),
        "{list}"
    );
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/forms/forms",
        json!({"title": "x", "questions": [{"title": "Pick", "kind": "choice"}]}),
        None,
    )
    .await;
    assert_eq!(status, 400, "a choice without options: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_messages_and_tasks_are_posted_once_per_key() {
    let fleet = google_fleet(None).await;
    let mut scopes = SCOPES.to_vec();
    scopes.extend([
        "https://www.googleapis.com/auth/chat.messages",
        "https://www.googleapis.com/auth/tasks",
    ]);
    fleet.connect_google(&scopes, json!({})).await;
    let space: Value = fleet
        .http
        .post(format!("{}/_sandbox/google/chat/spaces", sandbox(&fleet)))
        .json(&json!({"displayName": "Sales", "members": ["admin@example.com"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let space = space["name"].as_str().unwrap().to_string();
    let body = json!({"space": space, "text": "Deal closed: Acme", "thread_key": "acme"});
    let (status, first) = post(
        &fleet,
        "/api/v1/google-workspace/chat/messages",
        body.clone(),
        Some("chat-1"),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert!(
        first["thread"].as_str().unwrap().ends_with("/threads/acme"),
        "{first}"
    );
    let (_, again) = post(
        &fleet,
        "/api/v1/google-workspace/chat/messages",
        body,
        Some("chat-1"),
    )
    .await;
    assert_eq!(again["name"], first["name"], "one message for one key");
    let (status, list) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/google-workspace/chat/messages?space={space}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["messages"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["messages"][0]["text"], "Deal closed: Acme");
    // a space the user is not in
    let other: Value = fleet
        .http
        .post(format!("{}/_sandbox/google/chat/spaces", sandbox(&fleet)))
        .json(&json!({"displayName": "Private", "members": ["ceo@example.com"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/chat/messages",
        json!({"space": other["name"], "text": "hi"}),
        None,
    )
    .await;
    assert_eq!(status, 403, "{err}");

    let (status, task) = post(
        &fleet,
        "/api/v1/google-workspace/tasks",
        json!({"title": "Call Acme back", "notes": "About the renewal", "due": "2026-12-20T00:00:00Z"}),
        Some("task-1"),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["status"], "needsAction");
    let (_, again) = post(
        &fleet,
        "/api/v1/google-workspace/tasks",
        json!({"title": "Call Acme back"}),
        Some("task-1"),
    )
    .await;
    assert_eq!(again["id"], task["id"], "one task for one key");
    let (status, list) = fleet
        .call(Method::GET, "/api/v1/google-workspace/tasks", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["tasks"][0]["notes"], "About the renewal");
    let (status, err) = post(
        &fleet,
        "/api/v1/google-workspace/tasks",
        json!({"title": "x", "due": "tomorrow"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{err}");
}
