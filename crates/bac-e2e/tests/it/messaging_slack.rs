//! Slack (issue 16) against the Slack sandbox: messages with Block Kit and threads through
//! `chat.postMessage` (a `ratelimited` 429 deferred, `not_in_channel` failed at once); the
//! Events API through the gateway's webhook route (the `url_verification` challenge, a forged
//! or stale signature refused, an event Slack retries published once); a slash command
//! acknowledged within Slack's three seconds while its answer, written later by another
//! service, reaches the `response_url`; the bot token never in an answer or event; and the
//! app installed through OAuth v2.
use std::time::Duration;

use bac_e2e::{kafka, wait_until, Fleet, FleetOptions};
use bac_sandbox_slack::{SlackSandboxConfig, DEFAULT_BOT_TOKEN, DEFAULT_SIGNING_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

async fn fleet_with_slack() -> (Fleet, String) {
    let (addr, _, _) = bac_sandbox_slack::spawn_slack(
        SlackSandboxConfig::default(),
        ([127, 0, 0, 1], 0).into(),
        None,
    )
    .await
    .unwrap();
    let slack = format!("http://{addr}");
    let mut settings = bac_messaging::MessagingSettings::from_env();
    settings.retry.base = Duration::from_millis(100);
    settings.retry.max = Duration::from_millis(400);
    settings.slack_url = slack.clone();
    let fleet = Fleet::start_opts(FleetOptions {
        messaging: Some(settings),
        ..Default::default()
    })
    .await;
    (fleet, slack)
}

async fn sandbox(fleet: &Fleet, slack: &str, path: &str, body: Value) -> Value {
    fleet.sandbox_post(&format!("{slack}{path}"), body).await
}

async fn settled(fleet: &Fleet, id: &str) -> Value {
    let done = wait_until(Duration::from_secs(60), || async {
        let (_, d) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/messaging/deliveries/{id}"),
                None,
            )
            .await;
        d["status"] == "sent" || d["status"] == "failed"
    })
    .await;
    let (_, d) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/messaging/deliveries/{id}"),
            None,
        )
        .await;
    assert!(done, "delivery {id} did not settle: {d}");
    d
}

async fn send(fleet: &Fleet, body: Value) -> (u16, Value) {
    fleet
        .call(Method::POST, "/api/v1/messaging/slack/messages", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_messages_events_and_slash_commands() {
    let (fleet, slack) = fleet_with_slack().await;
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Slack",
                "config": {"channel": "slack", "team_id": "T0SANDBOX1"},
                "credentials": {"bot_token": DEFAULT_BOT_TOKEN, "signing_secret": DEFAULT_SIGNING_SECRET}})),
        )
        .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert!(
        test.to_string().contains("Sandbox Workspace"),
        "auth.test names the workspace: {test}"
    );

    // a message with Block Kit, then a reply in its thread
    let blocks =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "Invoice *INV-7* paid"}}]);
    let (status, d) = send(
        &fleet,
        json!({"channel": "#general", "text": "Invoice INV-7 paid", "blocks": blocks}),
    )
    .await;
    assert_eq!(status, 202, "{d}");
    let parent = settled(&fleet, d["id"].as_str().unwrap()).await;
    assert_eq!(parent["status"], "sent", "{parent}");
    let ts = parent["message_id"].as_str().unwrap().to_string();
    assert!(
        ts.contains('.'),
        "the delivery names the message's ts: {parent}"
    );
    // Slack is rate limiting the next post once: deferred, then sent
    sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/faults",
        json!({"model": "chat.postMessage", "status": 429, "retry_after": 1, "for_calls": 1}),
    )
    .await;
    let (status, d) = send(
        &fleet,
        json!({"channel": "C0GENERAL1", "text": "Receipt sent to Acme", "thread_ts": ts}),
    )
    .await;
    assert_eq!(status, 202, "{d}");
    let reply_id = d["id"].as_str().unwrap().to_string();
    let reply = settled(&fleet, &reply_id).await;
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(reply["attempts"], 2, "a 429, then the message: {reply}");
    let posted = sandbox_get(&fleet, &slack, "/_sandbox/slack/messages").await;
    let msgs = posted["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{posted}");
    assert_eq!(msgs[0]["blocks"], blocks);
    assert_eq!(msgs[0]["channel"], "C0GENERAL1");
    assert_eq!(msgs[1]["thread_ts"], ts.as_str(), "{posted}");
    // a channel the bot is not in: failed at once, with Slack's reason
    let (_, d) = send(
        &fleet,
        json!({"channel": "#leadership", "text": "Q3 numbers"}),
    )
    .await;
    let failed = settled(&fleet, d["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(
        failed["last_response"]
            .as_str()
            .unwrap()
            .contains("not_in_channel"),
        "{failed}"
    );
    // bad requests are refused before anything is queued
    for (body, says) in [
        (json!({"channel": "#general"}), "text, blocks"),
        (json!({"text": "no channel"}), "channel is required"),
        (
            json!({"channel": "#general", "blocks": [{"text": "no type"}]}),
            "blocks",
        ),
        (
            json!({"channel": "#general", "text": "x", "thread_ts": "yesterday"}),
            "thread_ts",
        ),
        (
            json!({"command_id": "not-a-uuid", "text": "x"}),
            "command_id",
        ),
    ] {
        let (status, e) = send(&fleet, body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{body}: {e}");
    }

    // Slack's side: the Request URL is the connection's webhook URL with its token
    let url = fleet.webhook_url(&id).await;
    let verified = sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/url_verification",
        json!({"url": url}),
    )
    .await;
    assert_eq!(verified["verified"], true, "{verified}");
    // signed by slack_sdk itself (PyPI), as an app's test would sign it
    let body = r#"{"token":"t","challenge":"from-slack-sdk","type":"url_verification"}"#;
    let (ts, signature) = slack_sdk_signature(body);
    let r = fleet
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["challenge"],
        "from-slack-sdk"
    );
    let r = fleet
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", &signature)
        .body(body.replace("from-slack-sdk", "tampered"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a changed body no longer matches");
    // more refusals than the gateway's budget for failing sources: a signature the service
    // refuses is not the gateway's token refused, and Slack's address (every tenant's) is not
    // throttled for it
    let mut hows = vec!["stale"];
    hows.extend(std::iter::repeat_n("forged", 25));
    for how in hows {
        let sent = sandbox(
            &fleet,
            &slack,
            "/_sandbox/slack/events",
            json!({"url": url, "signature": how,
                   "event": {"type": "message", "channel": "C0GENERAL1", "user": "U0HUMAN001",
                             "text": format!("{how} request"), "ts": "1700000000.000001"}}),
        )
        .await;
        assert_eq!(sent["attempts"][0]["status"], 401, "{how}: {sent}");
    }
    let retried = sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/events",
        json!({"url": url, "deliveries": 3,
               "event": {"type": "message", "channel": "C0GENERAL1", "user": "U0HUMAN001",
                         "text": "Can I get a copy of INV-7?", "ts": "1700000000.000200",
                         "thread_ts": ts}}),
    )
    .await;
    let event_id = retried["event_id"].as_str().unwrap().to_string();
    for a in retried["attempts"].as_array().unwrap() {
        assert_eq!(
            a["status"], 200,
            "every delivery is acknowledged: {retried}"
        );
    }
    let marker = sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/events",
        json!({"url": url,
               "event": {"type": "app_mention", "channel": "C0GENERAL1", "user": "U0HUMAN001",
                         "text": "<@U0SANDBOT1> status", "ts": "1700000000.000300"}}),
    )
    .await;
    let marker_id = marker["event_id"].as_str().unwrap().to_string();
    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.slack_event.v1");
    let events = kafka::collect(&c, Duration::from_secs(60), |rs| {
        rs.iter()
            .any(|r| r.json()["event_id"] == marker_id.as_str())
    })
    .await;
    let of_retried: Vec<&kafka::Record> = events
        .iter()
        .filter(|r| r.json()["event_id"] == event_id.as_str())
        .collect();
    assert_eq!(
        of_retried.len(),
        1,
        "one event for three deliveries: {events:?}"
    );
    let e = of_retried[0].json();
    assert_eq!(e["text"], "Can I get a copy of INV-7?");
    assert_eq!(e["thread_ts"], ts.as_str());
    assert_eq!(e["team_id"], "T0SANDBOX1");
    let h = &of_retried[0].headers;
    assert_eq!(h["ce_type"], "bac.messaging.slack.message");
    assert_eq!(h["ce_tenantid"], fleet.tenant);
    assert!(
        events
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.payload).contains("request\"")),
        "the forged and stale requests published nothing"
    );

    // a slash command: acknowledged within Slack's three seconds, answered later
    let cmd = sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/commands",
        json!({"url": url, "command": "/invoice", "text": "INV-7", "deliveries": 2}),
    )
    .await;
    assert_eq!(cmd["answer"]["status"], 200, "{cmd}");
    assert_eq!(cmd["answer"]["timed_out"], false, "{cmd}");
    assert_eq!(
        cmd["answers"][1]["status"], 200,
        "a replay is acknowledged: {cmd}"
    );
    let sandbox_command = cmd["command_id"].as_str().unwrap().to_string();
    // a later command of the same channel: by then a second copy of the first would be there
    sandbox(
        &fleet,
        &slack,
        "/_sandbox/slack/commands",
        json!({"url": url, "command": "/invoice", "text": "INV-8"}),
    )
    .await;
    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.slack_command.v1");
    let commands = kafka::collect(&c, Duration::from_secs(60), |rs| {
        rs.iter().any(|r| r.json()["text"] == "INV-8")
    })
    .await;
    assert_eq!(
        commands
            .iter()
            .filter(|r| r.json()["text"] == "INV-7")
            .count(),
        1,
        "a replayed command is one command: {commands:?}"
    );
    let command = commands[0].json();
    assert_eq!(command["command"], "/invoice");
    assert_eq!(command["text"], "INV-7");
    assert!(
        !String::from_utf8_lossy(&commands[0].payload).contains("/commands/"),
        "the response_url stays in the fleet: {command}"
    );
    let answers = sandbox_get(
        &fleet,
        &slack,
        &format!("/_sandbox/slack/commands/{sandbox_command}"),
    )
    .await;
    assert_eq!(answers["responses"], json!([]), "nothing answered yet");
    let command_id = command["command_id"].as_str().unwrap();
    // another tenant cannot answer it
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet
        .call_as(
            &other,
            Method::POST,
            "/api/v1/messaging/slack/messages",
            Some(json!({"command_id": command_id, "text": "INV-7: paid"})),
        )
        .await;
    assert!(status == 404 || status == 422, "another tenant: {status}");
    let (status, d) = send(
        &fleet,
        json!({"command_id": command_id, "text": "INV-7: $120.00, paid", "response_type": "in_channel"}),
    )
    .await;
    assert_eq!(status, 202, "{d}");
    let answered = settled(&fleet, d["id"].as_str().unwrap()).await;
    assert_eq!(answered["status"], "sent", "{answered}");
    let answers = sandbox_get(
        &fleet,
        &slack,
        &format!("/_sandbox/slack/commands/{sandbox_command}"),
    )
    .await;
    assert_eq!(
        answers["responses"],
        json!([{"text": "INV-7: $120.00, paid", "response_type": "in_channel"}])
    );

    // the bot token and signing secret appear in no answer or event
    let (_, got) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{id}"),
            None,
        )
        .await;
    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.messaging.delivery.v1");
    let deliveries = kafka::collect(&c, Duration::from_secs(60), |rs| {
        rs.iter()
            .any(|r| r.json()["delivery_id"] == answered["id"] && r.json()["status"] == "sent")
    })
    .await;
    for text in std::iter::once(got.to_string())
        .chain(
            deliveries
                .iter()
                .map(|r| String::from_utf8_lossy(&r.payload).to_string()),
        )
        .chain(
            events
                .iter()
                .map(|r| String::from_utf8_lossy(&r.payload).to_string()),
        )
    {
        assert!(!text.contains(DEFAULT_BOT_TOKEN), "{text}");
        assert!(!text.contains(DEFAULT_SIGNING_SECRET), "{text}");
    }
}

async fn sandbox_get(fleet: &Fleet, slack: &str, path: &str) -> Value {
    fleet.sandbox_get(&format!("{slack}{path}")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_app_is_installed_through_oauth_v2() {
    let (fleet, slack) = fleet_with_slack().await;
    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "messaging", "name": "Slack (OAuth)",
                "config": {"channel": "slack", "client_id": "1111.2222"},
                "credentials": {"client_secret": "sandbox-client-secret", "signing_secret": DEFAULT_SIGNING_SECRET}})),
        )
        .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    let (status, started) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let authorize = started["authorization_url"].as_str().unwrap();
    assert!(
        authorize.starts_with(&format!("{slack}/oauth/v2/authorize")),
        "{authorize}"
    );
    assert!(
        authorize.contains("scope=chat%3Awrite%2Ccommands"),
        "{authorize}"
    );
    sandbox(
        &fleet,
        &slack,
        "/_sandbox/oauth/clients",
        json!({"client_id": "1111.2222", "client_secret": "sandbox-client-secret",
               "redirect_uris": [started["redirect_uri"]], "user": "U0INSTALL1"}),
    )
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = no_redirects.get(authorize).send().await.unwrap();
    assert_eq!(consent.status(), 302);
    let back = consent.headers()["location"].to_str().unwrap().to_string();
    let done = fleet.http.get(&back).send().await.unwrap();
    let status = done.status().as_u16();
    let body: Value = done.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, got) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(got["config"]["team_id"], "T0SANDBOX1", "{got}");
    assert_eq!(got["config"]["bot_user_id"], "U0SANDBOT1", "{got}");
    assert!(
        !got.to_string().contains("sbx_at_"),
        "the bot token is not shown: {got}"
    );
    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the installed bot token works: {test}");
    let (status, d) = send(&fleet, json!({"channel": "#alerts", "text": "Installed"})).await;
    assert_eq!(status, 202, "{d}");
    let sent = settled(&fleet, d["id"].as_str().unwrap()).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    // the code was good once
    let replay = fleet.http.get(&back).send().await.unwrap();
    assert_eq!(replay.status(), 404, "a spent state");
}

/// `(timestamp, X-Slack-Signature)` of `body` made by slack_sdk's `SignatureVerifier`.
fn slack_sdk_signature(body: &str) -> (String, String) {
    let script = r#"
import sys, time
from slack_sdk.signature import SignatureVerifier
ts = str(int(time.time()))
print(ts)
print(SignatureVerifier(sys.argv[1]).generate_signature(timestamp=ts, body=sys.argv[2]))
"#;
    let python = std::env::var("BAC_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .args(["-c", script, DEFAULT_SIGNING_SECRET, body])
        .output()
        .expect("python3 with slack_sdk (scripts/install-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    )
}
