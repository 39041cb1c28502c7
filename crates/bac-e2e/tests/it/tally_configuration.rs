//! Tally's documented routes (issue 17), against the Tally sandbox: the document's
//! configuration body round-trips through POST, GET, PUT and DELETE; the test asks Tally which
//! companies it has open (UTF-8 or UTF-16 answers) and says whether the configured one is
//! among them; a server that cannot be reached answers the document's error.
use bac_e2e::{free_port, Fleet};
use reqwest::Method;
use serde_json::json;

const CONFIG: &str = "/api/v1/integrations/tally/configuration";
const TEST: &str = "/api/v1/integrations/tally/test-connection";

#[tokio::test(flavor = "multi_thread")]
async fn the_documents_tally_routes_configure_and_test_a_tally_server() {
    let fleet = Fleet::with_tally().await;
    let (tally, addr) = (fleet.tally_url(), fleet.tally_addr.unwrap());

    let (status, none) = fleet.call(Method::GET, CONFIG, None).await;
    assert_eq!(status, 404, "{none}");
    assert_eq!(none["details"]["error_code"], "NOT_CONNECTED");

    // the document's body, with the sandbox's address
    let body = json!({"tally_server_host": "127.0.0.1", "tally_server_port": addr.port(),
        "company_name_in_tally": "Demo Company", "is_enabled": true,
        "sync_frequency": "manual", "auto_sync_enabled": false});
    let (status, created) = fleet.call(Method::POST, CONFIG, Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    for (k, v) in body.as_object().unwrap() {
        assert_eq!(&created[k], v, "{k}: {created}");
    }
    let id = created["connection_id"].as_str().unwrap().to_string();
    let (status, again) = fleet.call(Method::POST, CONFIG, Some(body.clone())).await;
    assert_eq!(status, 409, "one configuration per company: {again}");
    let mut spaced = body.clone();
    spaced["company_name_in_tally"] = json!("  demo company ");
    let (status, again) = fleet.call(Method::POST, CONFIG, Some(spaced)).await;
    assert_eq!(status, 409, "the same company, however written: {again}");
    // two creates of one new company at once: one configuration
    let second = json!({"tally_server_host": "127.0.0.1", "company_name_in_tally": "Second Co"});
    let (a, b) = tokio::join!(
        fleet.call(Method::POST, CONFIG, Some(second.clone())),
        fleet.call(Method::POST, CONFIG, Some(second.clone()))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let made = if a.0 == 201 { a.1 } else { b.1 };
    assert_eq!(
        made["tally_server_port"], 9000,
        "the document's default port: {made}"
    );
    let second_id = made["connection_id"].as_str().unwrap().to_string();
    let (status, e) = fleet.call(Method::GET, CONFIG, None).await;
    assert_eq!(status, 400, "two configurations: name one: {e}");
    let (status, _) = fleet
        .call(
            Method::DELETE,
            &format!("{CONFIG}?connection_id={second_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, got) = fleet.call(Method::GET, CONFIG, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["connection_id"], id.as_str());
    assert_eq!(got["company_name_in_tally"], "Demo Company");
    let (status, changed) = fleet
        .call(
            Method::PUT,
            CONFIG,
            Some(json!({"sync_frequency": "daily", "auto_sync_enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["sync_frequency"], "daily");
    assert_eq!(changed["tally_server_port"], addr.port());
    let (_, got) = fleet.call(Method::GET, CONFIG, None).await;
    assert_eq!(got["auto_sync_enabled"], true, "{got}");
    // bad values are refused with the field named
    for bad in [
        json!({"tally_server_port": 70000}),
        json!({"sync_frequency": "often"}),
        json!({"tally_server_host": "http://x/"}),
    ] {
        let (status, e) = fleet.call(Method::PUT, CONFIG, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {e}");
    }

    // the stored configuration's test: the companies Tally has open
    let (status, t) = fleet.call(Method::POST, TEST, None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ok"], true);
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("'Demo Company' is among them"),
        "{t}"
    );
    // Tally answering in UTF-16, with another company open too
    fleet
        .sandbox_post(
            &format!("{tally}/_sandbox/tally/encoding"),
            json!({"encoding": "utf-16"}),
        )
        .await;
    fleet
        .sandbox_post(
            &format!("{tally}/_sandbox/tally/companies"),
            json!({"open": ["R&D India", "Demo Company"]}),
        )
        .await;
    let (status, t) = fleet
        .call(
            Method::POST,
            TEST,
            Some(json!({"host": "127.0.0.1", "port": addr.port(), "company_name": "R&D India"})),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let said = t["message"].as_str().unwrap();
    assert!(
        said.contains("2 companies open (Demo Company, R&D India)"),
        "{t}"
    );
    // a company Tally does not have open
    let (status, t) = fleet
        .call(
            Method::POST,
            TEST,
            Some(json!({"company_name": "Closed Co"})),
        )
        .await;
    assert_eq!(status, 422, "{t}");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("'Closed Co' is not among them"),
        "{t}"
    );

    // a server that is not there: the document's error
    let closed = free_port();
    let (status, e) = fleet
        .call(
            Method::POST,
            TEST,
            Some(json!({"host": "127.0.0.1", "port": closed, "company_name": "Demo Company"})),
        )
        .await;
    assert!(status == 504 || status == 503, "{status}: {e}");
    assert_eq!(e["message"], "Failed to connect to Tally server", "{e}");
    assert_eq!(e["details"]["integration"], "tally");
    assert_eq!(e["details"]["error_code"], "CONNECTION_TIMEOUT");
    assert_eq!(
        e["details"]["suggestion"],
        "Check if Tally server is running on specified port"
    );
    let (status, e) = fleet
        .call(
            Method::POST,
            TEST,
            Some(json!({"host": "127.0.0.1", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 400, "{e}");

    // another tenant sees none of it
    let other = fleet.other_tenant_key().await;
    let (status, _) = fleet.call_as(&other, Method::GET, CONFIG, None).await;
    assert_eq!(status, 404);
    let (status, _) = fleet
        .call_as(
            &other,
            Method::GET,
            &format!("{CONFIG}?connection_id={id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let (status, _) = fleet.call(Method::DELETE, CONFIG, None).await;
    assert_eq!(status, 204);
    let (status, _) = fleet.call(Method::GET, CONFIG, None).await;
    assert_eq!(status, 404);
}
