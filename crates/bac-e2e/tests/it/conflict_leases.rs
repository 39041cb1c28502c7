//! A conflict resolution cut off mid-way (a request timeout, a restarted replica) does not
//! leave its conflict `resolving` forever: the claim is a lease, the worker reopens the
//! conflict when it runs out, and then it can be resolved; a resolution still in progress
//! is not claimed twice.
use std::time::Duration;

use bac_e2e::{connect, wait_until, Fleet};
use reqwest::Method;
use serde_json::json;

async fn conflict(db: &tokio_postgres::Client, fleet: &Fleet, conn: &str, id: &str, until: &str) {
    db.execute(
        &format!(
            "INSERT INTO odoo.sync_conflicts (id, tenant_id, connection_id, entity, remote_id,
               command_id, strategy, status, local, remote, resolving_until)
             VALUES ($1, $2, $3, 'crm_lead', '1', $1, 'manual', 'resolving',
                     '{{\"name\": \"local\"}}', '{{\"name\": \"remote\"}}', now() + interval '{until}')"
        ),
        &[&id, &fleet.tenant, &conn],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_resolution_gives_its_conflict_back() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_string();
    let db = connect(&fleet.infra.database_url).await;
    // One whose resolver died a while ago, one being resolved right now.
    conflict(&db, &fleet, &conn, "cfl_abandoned", "-1 second").await;
    conflict(&db, &fleet, &conn, "cfl_busy", "2 minutes").await;

    let reopened = wait_until(Duration::from_secs(30), || async {
        let (_, list) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/integrations/connections/{conn}/conflicts"),
                None,
            )
            .await;
        list["conflicts"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x["id"] == "cfl_abandoned"))
    })
    .await;
    assert!(reopened, "the abandoned conflict is open again");
    let (status, resolved) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/conflicts/cfl_abandoned/resolve",
            Some(json!({"resolution": "remote"})),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");

    let (status, busy) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/conflicts/cfl_busy/resolve",
            Some(json!({"resolution": "remote"})),
        )
        .await;
    assert_eq!(status, 409, "{busy}");
    let still: String = db
        .query_one(
            "SELECT status FROM odoo.sync_conflicts WHERE id = 'cfl_busy'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, "resolving");
}
