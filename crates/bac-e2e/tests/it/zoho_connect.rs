//! Connecting Zoho (issue 14): an EU connection is authorised by its user through the gateway
//! and Zoho's EU accounts server, its refresh token lands in Vault only, its test reads the
//! organisation from the EU API, and nothing goes to another data centre. A data centre Zoho
//! does not have is refused with the list of those it has.
use bac_e2e::{Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn an_eu_connection_is_authorised_and_tested_in_the_eu() {
    let fleet = Fleet::start_opts(FleetOptions {
        zoho: true,
        ..Default::default()
    })
    .await;
    let zoho = fleet.zoho.as_ref().unwrap().0.clone();
    let callback = format!("{}/api/v1/integrations/oauth/callback", fleet.api);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = http
        .post(format!("{zoho}/eu/_sandbox/oauth/clients"))
        .json(
            &json!({"client_id": "1000.EUAPP", "client_secret": "eu-secret",
            "redirect_uris": [callback], "user": "owner@acme.eu"}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);

    // A data centre Zoho does not have: refused, with the ones it has.
    let (status, body) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "zoho", "name": "Nowhere",
                "config": {"data_center": "de", "client_id": "1000.EUAPP"},
                "credentials": {"client_secret": "eu-secret"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("com, eu, in"),
        "{body}"
    );

    let (status, conn) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/connections",
            Some(json!({"integration": "zoho", "name": "Acme EU",
                "config": {"data_center": "eu", "client_id": "1000.EUAPP"},
                "credentials": {"client_secret": "eu-secret"}})),
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
    assert_eq!(
        done["granted_scopes"],
        json!([
            "ZohoCRM.modules.ALL",
            "ZohoCRM.org.READ",
            "ZohoCRM.users.READ"
        ])
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
