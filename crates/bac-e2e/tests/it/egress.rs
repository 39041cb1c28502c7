//! The egress policy, as a tenant trying to reach the fleet's own network would meet it:
//! connection URLs to loopback (Vault's address among them), the metadata address, a name that
//! resolves to loopback, and an allowed upstream that redirects into loopback are refused with
//! `UPSTREAM_ADDRESS_NOT_ALLOWED`, and a listener standing at the target sees no connection.
//! The sandbox stands on 127.0.0.2, the one range this fleet opens; 127.0.0.1 stays closed.
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bac_e2e::{connect, Fleet, FleetOptions};
use reqwest::Method;
use serde_json::{json, Value};

const CONNECTIONS: &str = "/api/v1/integrations/connections";

/// A listener on 127.0.0.1 that counts the connections it accepts.
async fn target() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (addr, seen)
}

/// An upstream on the allowed 127.0.0.2 that redirects every request to `location`.
async fn redirector(location: String) -> SocketAddr {
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", location)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn fleet() -> Fleet {
    Fleet::start_opts(FleetOptions {
        sandbox_ip: Some([127, 0, 0, 2].into()),
        ..Default::default()
    })
    .await
}

fn assert_refused(status: u16, body: &Value, class: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "integration_error", "{body}");
    assert_eq!(
        body["details"]["error_code"], "UPSTREAM_ADDRESS_NOT_ALLOWED",
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(class), "{message} should name {class}");
    assert!(
        body["details"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("BAC_UPSTREAM_ALLOW_CIDRS"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_urls_into_the_fleets_network_are_refused() {
    let fleet = fleet().await;
    let (inside, seen) = target().await;
    let vault = url::Url::parse(&fleet.vault.addr).unwrap();
    for (url, class) in [
        (format!("http://{inside}"), "loopback"),
        (
            format!("http://127.0.0.1:{}", vault.port().unwrap()),
            "loopback",
        ),
        (format!("http://localhost:{}", inside.port()), "loopback"),
        (
            format!("http://[::ffff:127.0.0.1]:{}", inside.port()),
            "loopback",
        ),
        ("http://169.254.169.254".to_string(), "cloud metadata"),
        ("http://10.0.0.7:8069".to_string(), "private network"),
    ] {
        let (status, body) = fleet.connect_odoo(Some(&url), "admin").await;
        assert_refused(status, &body, class);
        assert!(!body.to_string().contains("Vault"), "{body}");
    }
    // Nothing was stored, and nothing reached the listener.
    let (_, list) = fleet.call(Method::GET, CONNECTIONS, None).await;
    assert_eq!(list["connections"], json!([]), "{list}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the target saw a connection"
    );

    // The allow-listed sandbox works as before.
    let (status, created) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{created}");
    let (status, lead) = fleet.create_lead("Allowed", None).await;
    assert_eq!(status, 201, "{lead}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_into_loopback_is_refused_and_never_followed() {
    let fleet = fleet().await;
    let (inside, seen) = target().await;
    let outside = redirector(format!("http://{inside}/v1/secret")).await;
    // The upstream itself is allowed, so the connection is saved...
    let (status, created) = fleet
        .connect_odoo(Some(&format!("http://{outside}")), "admin")
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    // ...but neither its test nor a data call follows it into loopback.
    let (status, body) = fleet
        .call(Method::POST, &format!("{CONNECTIONS}/{id}/test"), None)
        .await;
    assert_refused(status, &body, "loopback");
    let (status, body) = fleet.create_lead("Redirected", Some(id)).await;
    assert_refused(status, &body, "loopback");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the target saw a connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_route_does_not_tell_open_ports_from_closed_ones() {
    let fleet = fleet().await;
    let (open, seen) = target().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (status, created) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    // A row saved before the policy closed its address (or a name that resolves elsewhere now).
    let db = connect(&fleet.infra.database_url).await;
    let mut answers = Vec::new();
    for addr in [open, closed] {
        db.execute(
            "UPDATE odoo.connections SET config = jsonb_set(config, '{url}', to_jsonb($2::text))
             WHERE id = $1",
            &[&id, &format!("http://{addr}")],
        )
        .await
        .unwrap();
        let (status, body) = fleet
            .call(Method::POST, &format!("{CONNECTIONS}/{id}/test"), None)
            .await;
        assert_refused(status, &body, "loopback");
        answers.push((status, body["message"].clone(), body["details"].clone()));
    }
    assert_eq!(answers[0], answers[1], "open and closed ports answer alike");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the target saw a connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_credentials_follow_their_server() {
    let fleet = fleet().await;
    let (status, created) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{created}");
    let path = format!("{CONNECTIONS}/{}", created["id"].as_str().unwrap());
    let other = redirector("http://example.com/".into()).await;
    // Moving the secret to another server, database or user needs the secret again.
    for (patch, setting) in [
        (json!({"url": format!("http://{other}")}), "config.url"),
        (json!({"database": "other"}), "config.database"),
        (json!({"username": "someone"}), "config.username"),
    ] {
        let (status, body) = fleet
            .call(Method::PATCH, &path, Some(json!({"config": patch})))
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["details"]["error_code"], "INVALID_REQUEST", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(setting),
            "{body}"
        );
    }
    let (_, got) = fleet.call(Method::GET, &path, None).await;
    assert_eq!(got["config"]["url"], fleet.sandbox_url, "{got}");
    // With the credentials in the same request, the move is the owner's choice.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"config": {"database": "other"}, "credentials": {"password": "x"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Settings that do not say where the secret goes change freely.
    let (status, body) = fleet
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Renamed", "config": {"protocol": "jsonrpc"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
