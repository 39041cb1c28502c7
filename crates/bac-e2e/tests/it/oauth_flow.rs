//! OAuth's authorisation-code flow (issue 14, "Connecting"). The gateway's callback is public:
//! its state is the credential, so a missing, made-up or spent state changes nothing and a
//! provider's refusal is said as such. A connection of an integration that is not OAuth has
//! nothing to authorise.
use bac_e2e::Fleet;
use reqwest::Method;
use serde_json::Value;

async fn callback(fleet: &Fleet, query: &str) -> (u16, Value) {
    let resp = fleet
        .http
        .get(format!(
            "{}/api/v1/integrations/oauth/callback?{query}",
            fleet.api
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_without_a_started_authorisation_changes_nothing() {
    let fleet = Fleet::start().await;
    for query in [
        "code=1000.abc",
        "state=made-up&code=1000.abc",
        "state=made-up&error=access_denied",
        &format!("state={}&code=x", "s".repeat(300)),
    ] {
        let (status, body) = callback(&fleet, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["details"]["error_code"], "INVALID_REQUEST", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("state"),
            "{query}: {body}"
        );
    }
    let (_, audit) = fleet
        .call(Method::GET, "/api/v1/integrations/audit", None)
        .await;
    assert!(
        !audit.to_string().contains("connection.authorized"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_odoo_connection_has_nothing_to_authorise() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    assert!(conn.get("authorization_url").is_none(), "{conn}");
    let id = conn["id"].as_str().unwrap();
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("OAuth"),
        "{body}"
    );
    // another tenant's id is not found
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet
        .call_as(
            &other,
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}
