//! Zoho Accounts: an EU account authorises, its code is redeemed at the EU accounts server,
//! its token works on the EU API and nowhere else.
use std::collections::HashMap;

use bac_sandbox_zoho::{spawn_zoho, ZohoSandboxConfig};
use serde_json::{json, Value};

const BACK: &str = "https://bac.test/api/v1/integrations/oauth/callback";

#[tokio::test]
async fn an_eu_account_is_served_by_the_eu_data_centre_only() {
    let (addr, _task) = spawn_zoho(
        ZohoSandboxConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .await
    .unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = http
        .post(format!("{base}/eu/_sandbox/oauth/clients"))
        .json(&json!({"client_id": "1000.EU", "client_secret": "s", "redirect_uris": [BACK], "user": "ana@example.eu"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let auth = format!(
        "{base}/eu/oauth/v2/auth?response_type=code&client_id=1000.EU&scope=ZohoCRM.modules.ALL,ZohoCRM.org.READ,ZohoCRM.users.READ&redirect_uri={}&access_type=offline&state=st",
        url::form_urlencoded::byte_serialize(BACK.as_bytes()).collect::<String>()
    );
    let resp = http.get(&auth).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let back: HashMap<String, String> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(back["location"], "eu");
    assert_eq!(back["accounts-server"], format!("{base}/eu"));
    // the code is redeemed where it was issued
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "1000.EU"),
        ("client_secret", "s"),
        ("redirect_uri", BACK),
        ("code", back["code"].as_str()),
    ];
    let at_com: Value = http
        .post(format!("{base}/com/oauth/v2/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(at_com["error"], "invalid_code", "{at_com}");
    let token: Value = http
        .post(format!("{base}/eu/oauth/v2/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["api_domain"], format!("{base}/eu"), "{token}");
    assert!(token["refresh_token"].is_string(), "{token}");
    let access = token["access_token"].as_str().unwrap();
    let org = http
        .get(format!("{base}/eu/crm/v6/org"))
        .header("authorization", format!("Zoho-oauthtoken {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), 200);
    let org: Value = org.json().await.unwrap();
    assert_eq!(org["org"][0]["company_name"], "Sandbox Org");
    let me: Value = http
        .get(format!("{base}/eu/crm/v6/users?type=CurrentUser"))
        .header("authorization", format!("Zoho-oauthtoken {access}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["users"][0]["email"], "ana@example.eu");
    // the EU token means nothing in the US data centre
    let us = http
        .get(format!("{base}/com/crm/v6/org"))
        .header("authorization", format!("Zoho-oauthtoken {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(us.status(), 401);
    let us: Value = us.json().await.unwrap();
    assert_eq!(us["code"], "INVALID_TOKEN");
    let calls: Value = http
        .get(format!("{base}/_sandbox/zoho/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(calls["eu"].as_u64().unwrap() >= 5, "{calls}");
    assert_eq!(calls["com"], 2, "{calls}");
}
