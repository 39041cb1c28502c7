//! The dashboard and per-integration status, built from every service's `GetStatus`: Odoo's
//! real numbers, `disabled` with a reason for what is not built, `error` within the deadline
//! for a service that is down or never answers, and only what the caller may view.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bac_e2e::{Fleet, FleetOptions};
use bac_runtime::ServiceKind;
use reqwest::Method;
use serde_json::{json, Value};

const ALL: [&str; 8] = [
    "email",
    "calendar",
    "tally",
    "payments",
    "zoho",
    "odoo",
    "google-workspace",
    "messaging",
];

fn entry_key(integration: &str) -> String {
    format!("{}_integration", integration.replace('-', "_"))
}

async fn dashboard(fleet: &Fleet, key: &str) -> (Value, Duration) {
    let started = Instant::now();
    let (status, b) = fleet
        .call_as(key, Method::GET, "/api/v1/integrations/dashboard", None)
        .await;
    assert_eq!(status, 200, "{b}");
    (b, started.elapsed())
}

async fn odoo_status(fleet: &Fleet) -> Value {
    let (status, b) = fleet
        .call(Method::GET, "/api/v1/integrations/odoo/status", None)
        .await;
    assert_eq!(status, 200, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_status_of_every_integration() {
    // A gRPC "service" that accepts connections and never answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut fleet = Fleet::start_opts(FleetOptions {
        stand_ins: true,
        service_urls: HashMap::from([(
            ServiceKind::Messaging,
            format!("http://{}", black_hole.local_addr().unwrap()),
        )]),
        ..Default::default()
    })
    .await;

    // No connection yet: Odoo is disabled, with a reason.
    let s = odoo_status(&fleet).await;
    assert_eq!(s["status"], "disabled", "{s}");
    assert!(s["reason"].as_str().unwrap().contains("no Odoo connection"));
    assert_eq!(s["connections"], 0);
    assert_eq!(s["configuration_valid"], false);

    // A connection, never used: a warning that says to test it.
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let good = conn["id"].as_str().unwrap().to_string();
    let s = odoo_status(&fleet).await;
    assert_eq!(s["status"], "warning", "{s}");
    assert_eq!(s["performance_metrics"]["calls_24h"], 0);
    assert!(s["performance_metrics"]["success_rate"].is_null(), "{s}");

    // Used successfully: healthy, with real numbers.
    let (status, _) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{good}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = fleet.create_lead("Dashboard lead", None).await;
    assert_eq!(status, 201);
    let s = odoo_status(&fleet).await;
    assert_eq!(s["status"], "healthy", "{s}");
    assert!(s["reason"].is_null());
    assert_eq!(s["error_count"], 0);
    assert_eq!(s["configuration_valid"], true);
    assert_eq!(s["connections"], 1);
    assert_eq!(s["sync_frequency"], "manual");
    assert!(s["last_sync_at"].is_null(), "no sync has run yet: {s}");
    assert!(s["last_call_at"].is_string());
    let perf = &s["performance_metrics"];
    assert_eq!(perf["calls_24h"], 2, "{s}");
    assert_eq!(perf["success_rate"], 1.0);
    assert!(perf["avg_response_time_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        perf["last_sync_records"].is_null(),
        "no sync has run yet: {s}"
    );

    // Leads synced hourly, the other entities by hand, and a sync run: the status says so.
    let (status, b) = fleet
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/connections/{good}/sync-settings/crm_lead"),
            Some(json!({"frequency": "hourly"})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let run = crate::sync_engine::sync(&fleet, &good, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // The status is cached a second; the run's end is what this waits for.
    let shown = bac_e2e::wait_until(Duration::from_secs(30), || async {
        !odoo_status(&fleet).await["performance_metrics"]["last_sync_records"].is_null()
    })
    .await;
    let s = odoo_status(&fleet).await;
    assert!(shown, "the status never showed the run: {s}");
    assert_eq!(s["sync_frequency"], "hourly, manual", "{s}");
    assert_eq!(
        s["performance_metrics"]["last_sync_records"], run["records_seen"],
        "{s}"
    );
    assert!(
        s["performance_metrics"]["last_sync_duration_ms"].is_u64(),
        "{s}"
    );
    assert!(s["last_sync_at"].is_string(), "{s}");
    // The run's pages are upstream calls too.
    let calls_so_far = s["performance_metrics"]["calls_24h"].as_u64().unwrap();

    // The full dashboard: Odoo healthy, the stand-ins disabled as not built, email/calendar/
    // payments disabled with no service, messaging (never answers) an error, all in time.
    // No bound on wall-clock time here (a loaded machine would break it): a dashboard that
    // waited for the silent service would never answer at all, and the reason below says the
    // gateway's own deadline cut it off.
    let (d, took) = dashboard(&fleet, &fleet.key).await;
    println!("dashboard with a silent service answered in {took:?}");
    assert_eq!(d[entry_key("odoo")]["status"], "healthy", "{d}");
    assert_eq!(d[entry_key("odoo")]["integration_name"], "Odoo");
    // Zoho serves connections (its domain is not built): without one it is disabled
    assert_eq!(d[entry_key("zoho")]["status"], "disabled", "{d}");
    assert_eq!(
        d[entry_key("google-workspace")]["status"],
        "disabled",
        "{d}"
    );
    // Tally serves connections too (its sync is not built)
    assert_eq!(d[entry_key("tally")]["status"], "disabled", "{d}");
    for key in ["email", "calendar", "payments"] {
        let e = &d[entry_key(key)];
        assert_eq!(e["status"], "disabled", "{key}: {e}");
        assert!(e["reason"].as_str().unwrap().contains("no fleet service"));
        assert!(e["error_count"].is_null());
    }
    let m = &d[entry_key("messaging")];
    assert_eq!(m["status"], "error", "{m}");
    // A listener that never answers is seen as a timeout or, when the balancer's connect
    // probe gives up on it first (a loaded machine), as unreachable: both name the service.
    let reason = m["reason"].as_str().unwrap();
    assert!(
        reason.contains("bac-messaging")
            && (reason.contains("did not answer") || reason.contains("is unreachable")),
        "{m}"
    );
    let health = &d["system_health"];
    assert_eq!(health["database_status"], "healthy", "{health}");
    assert!(health["api_response_time"]
        .as_str()
        .unwrap()
        .ends_with("ms"));
    assert_eq!(health["services_not_answering"], 1, "{health}");
    assert_eq!(health["services_answering"], 4, "{health}");

    // /status for each of the eight.
    for key in ALL {
        let (status, s) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/integrations/{key}/status"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{key}: {s}");
        assert_eq!(s["integration"], key);
        let expect = match key {
            "odoo" => "healthy",
            "messaging" => "error",
            _ => "disabled",
        };
        assert_eq!(s["status"], expect, "{key}: {s}");
        assert!(key == "odoo" || s["reason"].is_string(), "{key}: {s}");
    }
    let (status, _) = fleet
        .call(Method::GET, "/api/v1/integrations/sap/status", None)
        .await;
    assert_eq!(status, 404);

    // A failing connection turns Odoo to error; once it is gone, its failures leave a warning.
    let (status, bad) = fleet.connect_odoo(None, "wrong-password").await;
    assert_eq!(status, 201);
    let bad = bad["id"].as_str().unwrap().to_string();
    let (status, _) = fleet.create_lead("Refused", Some(&bad)).await;
    assert_eq!(status, 422);
    let s = odoo_status(&fleet).await;
    assert_eq!(s["status"], "error", "{s}");
    assert!(s["reason"].as_str().unwrap().contains(&bad), "{s}");
    assert!(s["reason"]
        .as_str()
        .unwrap()
        .contains("INVALID_CREDENTIALS"));
    assert_eq!(s["error_count"], 1);
    assert_eq!(s["configuration_valid"], false);
    assert_eq!(s["performance_metrics"]["calls_24h"], calls_so_far + 1);
    let (status, _) = fleet
        .call(
            Method::DELETE,
            &format!("/api/v1/integrations/connections/{bad}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let s = odoo_status(&fleet).await;
    assert_eq!(s["status"], "warning", "{s}");
    assert_eq!(s["error_count"], 1);
    assert_eq!(s["configuration_valid"], true);

    // Stop a stand-in and bac-odoo: both show error, quickly, and the dashboard still answers.
    let (_, tally) = fleet
        .stand_ins
        .iter()
        .position(|(k, _)| *k == ServiceKind::Tally)
        .map(|i| fleet.stand_ins.remove(i))
        .unwrap();
    tally.stop().await.unwrap();
    fleet.odoo.take().unwrap().stop().await.unwrap();
    let (d, took) = dashboard(&fleet, &fleet.key).await;
    println!("dashboard with three services down answered in {took:?}");
    for key in ["tally", "odoo", "messaging"] {
        let e = &d[entry_key(key)];
        assert_eq!(e["status"], "error", "{key}: {e}");
        assert!(e["reason"].as_str().unwrap().contains("bac-"), "{e}");
        assert!(e["error_count"].is_null(), "nothing invented: {e}");
    }
    assert_eq!(d[entry_key("zoho")]["status"], "disabled");
    assert_eq!(d["system_health"]["services_not_answering"], 3);
    drop(black_hole);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_only_what_the_caller_may_view() {
    let fleet = Fleet::start_opts(FleetOptions {
        stand_ins: true,
        ..Default::default()
    })
    .await;
    let (status, _) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201);
    let (_, admin) = fleet.user_with_key("admin").await;
    let (user_id, user) = fleet.user_with_key("user").await;

    let keys = |d: &Value| {
        let mut k: Vec<String> = d
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "system_health")
            .cloned()
            .collect();
        k.sort();
        k
    };
    let (d, _) = dashboard(&fleet, &fleet.key).await;
    assert_eq!(keys(&d).len(), 8, "a super admin sees all: {d}");
    let (d, _) = dashboard(&fleet, &admin).await;
    let mut expect: Vec<String> = ALL
        .iter()
        .filter(|k| **k != "payments")
        .map(|k| entry_key(k))
        .collect();
    expect.sort();
    assert_eq!(keys(&d), expect, "an admin sees all but payments");
    assert!(d[entry_key("odoo")]["performance_metrics"].is_object());
    let (d, _) = dashboard(&fleet, &user).await;
    assert_eq!(
        keys(&d),
        [
            "calendar_integration",
            "email_integration",
            "messaging_integration"
        ],
        "{d}"
    );
    // A user's view is the status only.
    assert_eq!(
        d[entry_key("messaging")],
        json!({"integration": "messaging", "integration_name": "Messaging",
               "status": "disabled", "last_sync_at": null, "view": "status_only"})
    );
    for (key, expect) in [("odoo", 403), ("payments", 403), ("email", 200)] {
        let (status, b) = fleet
            .call_as(
                &user,
                Method::GET,
                &format!("/api/v1/integrations/{key}/status"),
                None,
            )
            .await;
        assert_eq!(status, expect, "{key}: {b}");
    }
    let (status, _) = fleet
        .call_as(
            &admin,
            Method::GET,
            "/api/v1/integrations/payments/status",
            None,
        )
        .await;
    assert_eq!(status, 403);

    // A grant on Odoo adds it, with the full view.
    let (status, b) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": user_id, "integration": "odoo", "permission_type": "view"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{b}");
    let (d, _) = dashboard(&fleet, &user).await;
    let odoo = &d[entry_key("odoo")];
    assert_eq!(odoo["status"], "warning", "{odoo}");
    assert!(odoo["reason"].is_string(), "full view: {odoo}");
}
