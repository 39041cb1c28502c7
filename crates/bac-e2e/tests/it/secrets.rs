//! The Odoo password lives in Vault and nowhere else: not in Postgres, HTTP responses, Kafka
//! events or logs.
use std::time::Duration;

use bac_e2e::{connect, kafka, logs, Fleet};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn the_odoo_password_is_only_in_vault() {
    let captured = logs::capture();
    let password = "Correct-Horse-Battery-Staple-42";
    let fleet = Fleet::start_with(bac_sandbox_odoo::OdooSandboxConfig {
        users: vec![("admin".into(), password.into())],
        ..Default::default()
    })
    .await;
    let consumer = kafka::consumer(&fleet.infra.brokers, "bac.odoo.crm_lead.v1");

    let mut bodies = Vec::new();
    let (status, conn) = fleet.connect_odoo(None, password).await;
    assert_eq!(status, 201, "{conn}");
    bodies.push(conn.to_string());
    let id = conn["id"].as_str().unwrap().to_string();
    let (status, t) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    bodies.push(t.to_string());
    let (status, lead) = fleet.create_lead("Secretive lead", None).await;
    assert_eq!(status, 201);
    bodies.push(lead.to_string());
    let (_, list) = fleet
        .call(Method::GET, "/api/v1/integrations/connections", None)
        .await;
    bodies.push(list.to_string());
    // A failing login must not echo the password either.
    let wrong = "Wr0ng-But-Secret-Passw0rd!";
    let (status, bad) = fleet.connect_odoo(None, wrong).await;
    assert_eq!(status, 201);
    bodies.push(bad.to_string());
    let bad_id = bad["id"].as_str().unwrap();
    let (status, failed) = fleet.create_lead("x", Some(bad_id)).await;
    assert_eq!(status, 422, "{failed}");
    bodies.push(failed.to_string());

    // In Vault, at the documented path.
    let stored = fleet
        .vault
        .read(&format!("bac/{}/odoo/{id}", fleet.tenant))
        .await
        .expect("secret in vault");
    assert_eq!(stored["password"], password);
    let stored_wrong = fleet
        .vault
        .read(&format!("bac/{}/odoo/{bad_id}", fleet.tenant))
        .await
        .unwrap();
    assert_eq!(stored_wrong["password"], wrong);

    for body in &bodies {
        assert!(
            !body.contains(wrong),
            "HTTP body leaks the password: {body}"
        );
        assert!(
            !body.contains("\"password\":\"admin\""),
            "HTTP body leaks the password: {body}"
        );
    }

    // Nowhere in Postgres: every row of every table of the fleet's schemas.
    let db = connect(&fleet.infra.database_url).await;
    let tables = db
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_schema IN ('odoo', 'gateway') AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 5);
    for t in tables {
        let (schema, table): (String, String) = (t.get(0), t.get(1));
        let rows = db
            .query(
                &format!("SELECT coalesce(string_agg(to_jsonb(x)::text, ''), '') FROM {schema}.{table} x"),
                &[],
            )
            .await
            .unwrap();
        let all: String = rows[0].get(0);
        for secret in [password, wrong] {
            assert!(!all.contains(secret), "{schema}.{table} holds a password");
        }
        let blob = match table.as_str() {
            "outbox" => Some("payload"),
            "outbox_batches" => Some("events"),
            _ => None,
        };
        if let Some(column) = blob {
            // Event payloads (and batch rows) are bytea; check them decoded too.
            let payloads = db
                .query(
                    &format!("SELECT convert_from({column}, 'UTF8') FROM {schema}.{table}"),
                    &[],
                )
                .await
                .unwrap();
            for p in payloads {
                let p: String = p.get(0);
                assert!(
                    !p.contains(wrong) && !p.contains(password),
                    "{schema}.{table} holds a password in an event"
                );
                // The gateway's audit events name the field, redacted; odoo's have no such field.
                assert!(
                    schema != "odoo" || !p.contains("\"password\""),
                    "{schema}.{table}: {p}"
                );
            }
        }
    }

    // Not in events.
    let events = kafka::collect(&consumer, Duration::from_secs(20), |r| !r.is_empty()).await;
    assert!(!events.is_empty());
    for e in &events {
        let text = String::from_utf8_lossy(&e.payload);
        assert!(!text.contains(wrong) && !text.contains(password) && !text.contains("password"));
        assert!(e
            .headers
            .values()
            .all(|v| !v.contains(wrong) && !v.contains(password)));
    }

    // Not in logs (debug level, every service in this process).
    let logs = captured.text();
    assert!(logs.contains("lead created"), "log capture is not working");
    assert!(!logs.contains(wrong), "logs leak the wrong password");
    assert!(!logs.contains(password), "logs leak the password");
}
