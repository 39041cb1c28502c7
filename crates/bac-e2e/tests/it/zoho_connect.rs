//! Connecting Zoho (issue 14): an EU connection is authorised by its user through the gateway
//! and Zoho's EU accounts server, its refresh token lands in Vault only, its test reads the
//! organisation from the EU API, and nothing goes to another data centre. A data centre Zoho
//! does not have is refused with the list of those it has.
use bac_e2e::{Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// A fleet with the Zoho sandbox and bac-zoho; the sandbox's base URL and a client that
/// does not follow redirects (the tests play the user's browser).
async fn zoho_fleet() -> (Fleet, String, reqwest::Client) {
    let fleet = Fleet::start_opts(FleetOptions {
        zoho: true,
        ..Default::default()
    })
    .await;
    let zoho = fleet.zoho.as_ref().unwrap().0.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (fleet, zoho, http)
}

/// Registers a client (`client_id`, `client_secret`, optionally `user`) with data centre
/// `dc`'s accounts server, redirecting to the fleet's callback.
async fn register_client(
    fleet: &Fleet,
    http: &reqwest::Client,
    zoho: &str,
    dc: &str,
    client: Value,
) {
    let mut client = client;
    client["redirect_uris"] = json!([format!("{}/api/v1/integrations/oauth/callback", fleet.api)]);
    let status = http
        .post(format!("{zoho}/{dc}/_sandbox/oauth/clients"))
        .json(&client)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
}

/// `POST /api/v1/integrations/connections` of a Zoho connection; `(status, body)`.
async fn create(fleet: &Fleet, name: &str, config: Value, credentials: Value) -> (u16, Value) {
    fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "zoho", "name": name, "config": config, "credentials": credentials})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eu_connection_is_authorised_and_tested_in_the_eu() {
    let (fleet, zoho, http) = zoho_fleet().await;
    let callback = format!("{}/api/v1/integrations/oauth/callback", fleet.api);
    register_client(
        &fleet,
        &http,
        &zoho,
        "eu",
        json!({"client_id": "1000.EUAPP", "client_secret": "eu-secret", "user": "owner@acme.eu"}),
    )
    .await;

    // A data centre Zoho does not have: refused, with the ones it has.
    let (status, body) = create(
        &fleet,
        "Nowhere",
        json!({"data_center": "de", "client_id": "1000.EUAPP"}),
        json!({"client_secret": "eu-secret"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("com, eu, in"),
        "{body}"
    );

    let (status, conn) = create(
        &fleet,
        "Acme EU",
        json!({"data_center": "eu", "client_id": "1000.EUAPP"}),
        json!({"client_secret": "eu-secret"}),
    )
    .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    let url = conn["authorization_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{zoho}/eu/oauth/v2/auth?")),
        "{url}"
    );
    assert!(url.contains("access_type=offline"), "{url}");

    // The user consents at Zoho; Zoho sends the browser to the gateway's callback.
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&callback), "{back}");
    let done = http.get(&back).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["authorized"], true, "{done}");
    assert_eq!(done["connection_id"], id.as_str());
    // asked and granted: the scopes every Zoho route of the fleet uses (no scopes configured)
    assert_eq!(
        done["granted_scopes"],
        json!(bac_zoho::connector::DEFAULT_SCOPES)
    );
    // the same callback again: the state is spent
    let again = http.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 404);

    let (status, test) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["ok"], true, "{test}");
    assert!(
        test["message"].as_str().unwrap().contains("data centre eu"),
        "{test}"
    );

    let (status, got) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        got["credentials_set"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token")),
        "{got}"
    );
    assert_eq!(got["config"]["api_domain"], format!("{zoho}/eu"));
    assert!(
        !got.to_string().contains("sbx_rt_"),
        "no token in an answer: {got}"
    );
    let secret = fleet
        .vault
        .read(&format!("bac/{}/zoho/{id}", fleet.tenant))
        .await
        .unwrap();
    assert!(
        secret["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("sbx_rt_"),
        "{secret}"
    );

    let calls: Value = http
        .get(format!("{zoho}/_sandbox/zoho/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(calls["eu"].as_u64().unwrap() >= 4, "{calls}");
    assert!(
        calls.get("com").is_none(),
        "nothing went to the US data centre: {calls}"
    );

    let (_, audit) = fleet
        .call(Method::GET, "/api/v1/integrations/audit", None)
        .await;
    assert!(
        audit.to_string().contains("connection.authorized"),
        "{audit}"
    );
}

/// Follows an authorisation URL as the user's browser: consent at the sandbox, then the
/// gateway's callback. Returns the callback's answer.
async fn consent(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    let done = http.get(&back).send().await.unwrap();
    assert_eq!(done.status(), 200);
    done.json().await.unwrap()
}

/// Zoho revokes the refresh token (the user removed the app's access): the next call that
/// needs a token tells the connection's status to `error`, saying to reconnect, and the
/// audit trail says so; authorising again restores it. A self-client's pasted refresh token
/// works without the browser.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_says_reconnect_and_reconnecting_restores_it() {
    let (fleet, zoho, http) = zoho_fleet().await;
    register_client(
        &fleet,
        &http,
        &zoho,
        "in",
        json!({"client_id": "1000.IN", "client_secret": "in-secret"}),
    )
    .await;
    let (status, conn) = create(
        &fleet,
        "Acme India",
        json!({"data_center": "in", "client_id": "1000.IN"}),
        json!({"client_secret": "in-secret"}),
    )
    .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    consent(&http, conn["authorization_url"].as_str().unwrap()).await;
    let test_path = format!("/api/v1/integrations/connections/{id}/test");
    let test = || fleet.call(Method::POST, &test_path, None);
    let (_, t) = test().await;
    assert_eq!(t["ok"], true, "{t}");

    // The user removes the app's access in Zoho; the access token runs out.
    let secret = fleet
        .vault
        .read(&format!("bac/{}/zoho/{id}", fleet.tenant))
        .await
        .unwrap();
    let refresh = secret["refresh_token"].as_str().unwrap().to_string();
    let revoked = http
        .post(format!("{zoho}/in/oauth/v2/token/revoke?token={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let expired = http
        .post(format!("{zoho}/in/_sandbox/oauth/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let (_, t) = test().await;
    assert_eq!(t["details"]["error_code"], "INVALID_CREDENTIALS", "{t}");
    assert!(
        t["details"]["suggestion"]
            .as_str()
            .unwrap()
            .starts_with("Reconnect"),
        "{t}"
    );
    let (_, s) = fleet
        .call(Method::GET, "/api/v1/integrations/zoho/status", None)
        .await;
    assert_eq!(s["status"], "error", "{s}");
    assert!(s["reason"].as_str().unwrap().contains("Reconnect"), "{s}");
    // the service's audit entry reaches the gateway's list through Kafka
    let path = "/api/v1/integrations/audit?action=connection.authorization_revoked";
    let seen = bac_e2e::wait_until(std::time::Duration::from_secs(60), || async {
        let (_, body) = fleet.call(Method::GET, path, None).await;
        body["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["target_id"] == id.as_str()))
    })
    .await;
    assert!(seen, "no connection.authorization_revoked audit entry");

    // Reconnect: authorise again; the connection works.
    let (status, again) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{again}");
    consent(&http, again["authorization_url"].as_str().unwrap()).await;
    let (_, t) = test().await;
    assert_eq!(t["ok"], true, "{t}");
    let (_, s) = fleet
        .call(Method::GET, "/api/v1/integrations/zoho/status", None)
        .await;
    assert_ne!(s["status"], "error", "{s}");

    // A self-client: the refresh token pasted, no browser.
    let status = http
        .post(format!("{zoho}/in/_sandbox/oauth/grants"))
        .json(
            &json!({"client_id": "1000.SELF", "client_secret": "self-secret",
            "refresh_token": "1000.pasted-refresh-token", "scope": "ZohoCRM.org.READ"}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let (status, own) = create(
        &fleet,
        "Self client",
        json!({"data_center": "in", "client_id": "1000.SELF"}),
        json!({"client_secret": "self-secret", "refresh_token": "1000.pasted-refresh-token"}),
    )
    .await;
    assert_eq!(status, 201, "{own}");
    assert!(own.get("authorization_url").is_none(), "{own}");
    let (_, t) = fleet
        .call(
            Method::POST,
            &format!(
                "/api/v1/integrations/connections/{}/test",
                own["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(t["ok"], true, "{t}");
}

/// Three replicas of bac-zoho race for a connection's first token: exactly one refresh
/// reaches Zoho's accounts server (Zoho allows ten per refresh token in ten minutes), every
/// replica's call then works with the token it wrote to Vault.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_race_for_a_token_and_zoho_sees_one_refresh() {
    use bac_proto::integration::v1::{
        integration_service_client::IntegrationServiceClient, TestConnectionRequest,
    };
    use bac_runtime::{RequestContext, ServiceKind};

    let (fleet, zoho, http) = zoho_fleet().await;
    let first = &fleet.zoho.as_ref().unwrap().1;
    register_client(
        &fleet,
        &http,
        &zoho,
        "com",
        json!({"client_id": "1000.US", "client_secret": "us-secret"}),
    )
    .await;
    let (status, conn) = create(
        &fleet,
        "Acme US",
        json!({"data_center": "com", "client_id": "1000.US"}),
        json!({"client_secret": "us-secret"}),
    )
    .await;
    assert_eq!(status, 201, "{conn}");
    let id = conn["id"].as_str().unwrap().to_string();
    consent(&http, conn["authorization_url"].as_str().unwrap()).await;

    // two more replicas of the same service (same database, Vault and data centres)
    let mut replicas = vec![];
    for _ in 0..2 {
        replicas.push(
            bac_zoho::run_with(
                fleet.infra.config(ServiceKind::Zoho),
                bac_e2e::zoho_settings(&zoho),
            )
            .await
            .unwrap(),
        );
    }
    let addrs: Vec<String> = std::iter::once(first)
        .chain(replicas.iter())
        .map(|r| format!("http://{}", r.grpc_addr))
        .collect();
    let before: Value = http
        .get(format!("{zoho}/com/_sandbox/oauth/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ctx = RequestContext {
        tenant_id: fleet.tenant.clone(),
        principal: "user:race".into(),
        request_id: "req_race".into(),
        traceparent: None,
    };
    let tests = addrs.iter().flat_map(|addr| {
        let (addr, ctx, id) = (addr.clone(), ctx.clone(), id.clone());
        (0..4).map(move |_| {
            let (addr, ctx, id) = (addr.clone(), ctx.clone(), id.clone());
            async move {
                let mut client = IntegrationServiceClient::connect(addr).await.unwrap();
                client
                    .test_connection(ctx.request(TestConnectionRequest { id }))
                    .await
                    .map(|r| r.into_inner().ok)
            }
        })
    });
    let results = futures::future::join_all(tests).await;
    assert_eq!(results.len(), 12);
    for r in &results {
        assert_eq!(r.as_ref().ok(), Some(&true), "{results:?}");
    }
    let after: Value = http
        .get(format!("{zoho}/com/_sandbox/oauth/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["refreshes"].as_u64().unwrap() - before["refreshes"].as_u64().unwrap(),
        1,
        "{before} -> {after}"
    );
}
