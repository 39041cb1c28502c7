//! The kit's conformance suite for Google Workspace: Calendar events (a partition per user,
//! read with sync tokens) against the Google sandbox, changed upstream as the user's own
//! calendar app would (the user's own token). Google notifies by push channels, which name
//! no records: that path is `google_workspace.rs`'s push test, not the suite's id webhook.
use bac_e2e::{conformance, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const USER: &str = "admin@example.com";

struct Google {
    /// The user's own access token (their calendar app's, not the fleet's).
    token: tokio::sync::OnceCell<String>,
}

impl Google {
    fn new() -> Google {
        Google {
            token: tokio::sync::OnceCell::new(),
        }
    }

    fn base(fleet: &Fleet) -> &str {
        &fleet.google.as_ref().expect("a fleet with google").0
    }

    async fn token(&self, fleet: &Fleet) -> &str {
        self.token
            .get_or_init(|| async {
                let n = uuid::Uuid::new_v4().simple().to_string();
                let base = Self::base(fleet);
                let (client, refresh) = (format!("app-{}", &n[..6]), format!("rt-{n}"));
                let status = fleet
                    .http
                    .post(format!("{base}/_sandbox/oauth/grants"))
                    .json(&json!({"client_id": client, "client_secret": "s", "refresh_token": refresh,
                        "subject": USER, "scope": "https://www.googleapis.com/auth/calendar.events"}))
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
            })
            .await
    }

    async fn calendar(
        &self,
        fleet: &Fleet,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = self.token(fleet).await.to_string();
        let mut req = fleet
            .http
            .request(
                method,
                format!(
                    "{}/calendar/v3/calendars/primary/events{path}",
                    Self::base(fleet)
                ),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }
}

/// `admin@example.com/<event id>` -> the event id.
fn event_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[async_trait::async_trait]
impl conformance::Upstream for Google {
    fn key(&self) -> &'static str {
        "google_workspace"
    }
    fn entity(&self) -> &'static str {
        "calendar_event"
    }
    fn field(&self) -> &'static str {
        "summary"
    }
    fn create_values(&self) -> Value {
        json!({"start": "2026-12-10T10:00:00Z", "end": "2026-12-10T11:00:00Z"})
    }
    async fn connect(&self, fleet: &Fleet) -> String {
        fleet
            .connect_google(
                &["https://www.googleapis.com/auth/calendar.events"],
                json!({}),
            )
            .await
    }
    async fn create(&self, fleet: &Fleet, value: &str) -> String {
        let (status, ev) = self
            .calendar(
                fleet,
                Method::POST,
                "",
                Some(
                    json!({"summary": value, "start": {"dateTime": "2026-12-10T10:00:00Z"},
                            "end": {"dateTime": "2026-12-10T11:00:00Z"}}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
        format!("{USER}/{}", ev["id"].as_str().unwrap())
    }
    async fn update(&self, fleet: &Fleet, id: &str, value: &str) {
        let (status, ev) = self
            .calendar(
                fleet,
                Method::PATCH,
                &format!("/{}", event_id(id)),
                Some(json!({"summary": value})),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
    }
    async fn delete(&self, fleet: &Fleet, id: &str) {
        let (status, _) = self
            .calendar(fleet, Method::DELETE, &format!("/{}", event_id(id)), None)
            .await;
        assert_eq!(status, 204);
    }
    async fn read(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let (status, ev) = self
            .calendar(fleet, Method::GET, &format!("/{}", event_id(id)), None)
            .await;
        if status != 200 || ev["status"] == "cancelled" {
            return None;
        }
        ev["summary"].as_str().map(String::from)
    }
    async fn find(&self, fleet: &Fleet, value: &str) -> Vec<String> {
        let (status, list) = self
            .calendar(fleet, Method::GET, "?maxResults=2500", None)
            .await;
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["summary"] == value && e["status"] != "cancelled")
            .filter_map(|e| e["id"].as_str().map(|id| format!("{USER}/{id}")))
            .collect()
    }
    async fn notify(&self, _fleet: &Fleet, _conn: &str, _ids: &[String]) -> (u16, Value) {
        unreachable!("Google's push names no records: google_workspace.rs tests its channels")
    }
    async fn expire_credentials(&self, fleet: &Fleet) {
        let status = fleet
            .http
            .post(format!("{}/_sandbox/oauth/expire", Self::base(fleet)))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }
    async fn seed(&self, _fleet: &Fleet, _n: usize) {
        unreachable!("the takeover scenario runs for Odoo and Zoho")
    }
    async fn count(&self, _fleet: &Fleet) -> i64 {
        unreachable!("the takeover scenario runs for Odoo and Zoho")
    }
    async fn stop_service(&self, _fleet: &mut Fleet) {
        unreachable!("the takeover scenario runs for Odoo and Zoho")
    }
    fn replica(&self, _fleet: &Fleet) -> std::process::Child {
        unreachable!("the takeover scenario runs for Odoo and Zoho")
    }
}

async fn fleet() -> Fleet {
    Fleet::start_opts(FleetOptions {
        google: true,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_incremental_and_deletions() {
    conformance::backfill_incremental_and_deletions(&fleet().await, &Google::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_suppression() {
    conformance::echo_suppression(&fleet().await, &Google::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conflict_strategies() {
    conformance::conflict_strategies(&fleet().await, &Google::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_expire_mid_run() {
    conformance::credentials_expire_mid_run(&fleet().await, &Google::new()).await;
}
