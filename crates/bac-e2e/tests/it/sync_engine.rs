//! The sync engine on Odoo, black-box: runs triggered through the REST API against the Odoo
//! sandbox, with the events read back from Kafka and the rows from Postgres.
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use bac_e2e::{connect, kafka, Fleet};
use bac_runtime::ServiceKind;
use rdkafka::{producer::FutureProducer, ClientConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// `model.method(*args, **kwargs)` on the sandbox as admin, like any Odoo client would.
pub(crate) async fn odoo(
    fleet: &Fleet,
    model: &str,
    method: &str,
    args: Value,
    kwargs: Value,
) -> Value {
    fleet.odoo_rpc(model, method, args, kwargs).await
}

pub(crate) async fn seed(
    fleet: &Fleet,
    model: &str,
    count: usize,
    values: Value,
    write_date: Option<&str>,
) {
    fleet
        .seed_with(
            json!({"model": model, "count": count, "values": values, "write_date": write_date}),
        )
        .await;
}

pub(crate) async fn connection(fleet: &Fleet) -> String {
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    conn["id"].as_str().unwrap().to_string()
}

/// Triggers a sync and waits until its run ends (the conformance suite's, shared).
pub(crate) use bac_e2e::conformance::{sync, wait_run};

fn count(run: &Value, what: &str) -> u64 {
    run[format!("records_{what}")].as_u64().unwrap_or(0)
}

/// Events of a topic until `expected` arrived, then one more second to catch extras.
async fn events(fleet: &Fleet, topic: &str, expected: usize) -> Vec<kafka::Record> {
    bac_e2e::conformance::events(fleet, topic, |r| r.len() >= expected).await
}

fn by_type(records: &[kafka::Record]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r.headers["ce_type"].clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn incremental_sync_reports_each_change_once_even_when_many_share_a_write_date() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    // 2,500 leads share one write_date: more than two pages of 1,000.
    seed(
        &fleet,
        "crm.lead",
        2500,
        json!({}),
        Some("2026-01-01 00:00:00"),
    )
    .await;
    let total = odoo(&fleet, "crm.lead", "search_count", json!([[]]), json!({})).await;
    let total = total.as_u64().unwrap();
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "created"), total, "{run}");
    assert_eq!(run["mode"], "full");

    // Changes upstream: 3 updates, 2 deletions, 4 creations.
    let ids: Vec<i64> = odoo(
        &fleet,
        "crm.lead",
        "search",
        json!([[]]),
        json!({"limit": 5, "order": "id"}),
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_i64().unwrap())
    .collect();
    odoo(
        &fleet,
        "crm.lead",
        "write",
        json!([ids[0..3], {"phone": "+32 2 555 0000"}]),
        json!({}),
    )
    .await;
    odoo(&fleet, "crm.lead", "unlink", json!([ids[3..5]]), json!({})).await;
    // Archived (a lost lead) is a change, not a deletion.
    let archived: Vec<i64> = odoo(
        &fleet,
        "crm.lead",
        "search",
        json!([[["id", ">", ids[4]]]]),
        json!({"limit": 1, "order": "id"}),
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_i64().unwrap())
    .collect();
    odoo(
        &fleet,
        "crm.lead",
        "write",
        json!([archived, {"active": false}]),
        json!({}),
    )
    .await;
    for i in 0..4 {
        odoo(
            &fleet,
            "crm.lead",
            "create",
            json!([{"name": format!("Fresh lead {i}")}]),
            json!({}),
        )
        .await;
    }
    let run = sync(&fleet, &conn, "crm_lead", "incremental").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (
            count(&run, "created"),
            count(&run, "updated"),
            count(&run, "deleted")
        ),
        (4, 4, 2),
        "{run}"
    );
    // Nothing changed: nothing reported (the re-read last second is deduplicated by hash).
    let run = sync(&fleet, &conn, "crm_lead", "incremental").await;
    assert_eq!(
        (
            count(&run, "created"),
            count(&run, "updated"),
            count(&run, "deleted")
        ),
        (0, 0, 0),
        "{run}"
    );

    let expected = total as usize + 4 + 4 + 2;
    let got = events(&fleet, "bac.odoo.crm_lead.v1", expected).await;
    let types = by_type(&got);
    assert_eq!(
        types.get("bac.odoo.crm_lead.created"),
        Some(&(total as usize + 4)),
        "{types:?}"
    );
    assert_eq!(
        types.get("bac.odoo.crm_lead.updated"),
        Some(&4),
        "{types:?}"
    );
    assert_eq!(
        types.get("bac.odoo.crm_lead.deleted"),
        Some(&2),
        "{types:?}"
    );
    // One created event per record, each with its origin and run.
    let subjects: HashSet<&str> = got
        .iter()
        .filter(|r| r.headers["ce_type"].ends_with(".created"))
        .map(|r| r.headers["ce_subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), total as usize + 4);
    let updates: Vec<Value> = got
        .iter()
        .filter(|r| r.headers["ce_type"].ends_with(".updated"))
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(
        updates
            .iter()
            .filter(|p| p["after"]["active"] == false)
            .count(),
        1,
        "the archived lead is an update: {updates:?}"
    );
    let payload = updates
        .iter()
        .find(|p| p["after"]["phone"] == "+32 2 555 0000")
        .unwrap();
    assert_eq!(payload["origin"], "remote");
    assert!(payload["before"].is_object(), "{payload}");
    assert!(!payload["sync_run_id"].as_str().unwrap().is_empty());
    // The dashboard knows when the tenant last synced.
    let (status, s) = fleet
        .call(Method::GET, "/api/v1/integrations/odoo/status", None)
        .await;
    assert_eq!(status, 200, "{s}");
    assert!(s["last_sync_at"].is_string(), "{s}");
    // Run starts and ends are events too.
    let runs = events(&fleet, "bac.integrations.sync_run.v1", 6).await;
    let t = by_type(&runs);
    assert_eq!(
        t.get("bac.integrations.sync_run.started"),
        Some(&3),
        "{t:?}"
    );
    assert_eq!(
        t.get("bac.integrations.sync_run.succeeded"),
        Some(&3),
        "{t:?}"
    );
}

#[tokio::test]
async fn a_lead_created_through_the_api_does_not_come_back_from_the_next_pull() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    sync(&fleet, &conn, "crm_lead", "full").await;
    let (status, lead) = fleet.create_lead("Made by the platform", Some(&conn)).await;
    assert_eq!(status, 201, "{lead}");
    let run = sync(&fleet, &conn, "crm_lead", "incremental").await;
    assert_eq!(
        (count(&run, "created"), count(&run, "updated")),
        (0, 0),
        "the fleet's own write came back: {run}"
    );
    let c = kafka::consumer(&fleet.kafka.brokers(), "bac.odoo.crm_lead.v1");
    let mine_of = |got: &[kafka::Record]| -> Vec<Value> {
        got.iter()
            .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
            .filter(|p| p["after"]["name"] == "Made by the platform")
            .collect()
    };
    let mut got = kafka::collect(&c, Duration::from_secs(30), |r| !mine_of(r).is_empty()).await;
    got.extend(kafka::collect(&c, Duration::from_secs(2), |_| false).await);
    let mine = mine_of(&got);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["origin"], "platform");
}

#[tokio::test]
async fn three_replicas_run_each_due_sync_once() {
    let mut fleet = Fleet::start().await;
    let mut replicas = vec![fleet.odoo.take().unwrap()];
    for _ in 0..2 {
        replicas.push(
            bac_odoo::run(fleet.infra.config(ServiceKind::Odoo))
                .await
                .unwrap(),
        );
    }
    // The gateway talks to the first; every replica shares the database.
    fleet.odoo = Some(replicas.remove(0));
    let conn = connection(&fleet).await;
    seed(&fleet, "crm.lead", 1500, json!({}), None).await;
    seed(&fleet, "res.partner", 300, json!({}), None).await;
    for entity in ["crm_lead", "partner"] {
        let (status, body) = fleet
            .call(
                Method::PATCH,
                &format!("/api/v1/integrations/connections/{conn}/sync-settings/{entity}"),
                Some(json!({"frequency": "* * * * *"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Schedules run at most once a minute: make them due every two seconds for ~8 s, and
    // let the three schedulers race for each, then stop scheduling.
    let db = connect(&fleet.infra.database_url).await;
    let mut every = tokio::time::interval(Duration::from_secs(2));
    for _ in 0..4 {
        every.tick().await;
        db.execute(
            "UPDATE odoo.sync_settings SET next_due_at = now() WHERE connection_id = $1",
            &[&conn],
        )
        .await
        .unwrap();
    }
    every.tick().await;
    for entity in ["crm_lead", "partner"] {
        fleet
            .call(
                Method::PATCH,
                &format!("/api/v1/integrations/connections/{conn}/sync-settings/{entity}"),
                Some(json!({"frequency": "manual"})),
            )
            .await;
    }
    // Wait for the runs in flight to end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .query_one(
            "SELECT count(*) FROM odoo.sync_runs WHERE status IN ('queued', 'running')",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(Instant::now() < deadline, "runs did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = db
        .query(
            "SELECT entity, status, attempts, started_at, finished_at, records_created, lease_owner
             FROM odoo.sync_runs ORDER BY entity, started_at",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows.len() >= 4,
        "the schedule queued too few runs: {}",
        rows.len()
    );
    let mut last_end: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for r in &rows {
        let entity: String = r.get(0);
        assert_eq!(r.get::<_, String>(1), "succeeded");
        assert_eq!(r.get::<_, i32>(2), 1, "a run was leased twice");
        let started: chrono::DateTime<chrono::Utc> = r.get(3);
        let finished: chrono::DateTime<chrono::Utc> = r.get(4);
        if let Some(prev) = last_end.get(&entity) {
            assert!(started >= *prev, "two {entity} runs overlapped");
        }
        last_end.insert(entity, finished);
    }
    let created: i64 = rows.iter().map(|r| r.get::<_, i64>(5)).sum();
    let leads = odoo(&fleet, "crm.lead", "search_count", json!([[]]), json!({}))
        .await
        .as_i64()
        .unwrap();
    let partners = odoo(
        &fleet,
        "res.partner",
        "search_count",
        json!([[]]),
        json!({}),
    )
    .await
    .as_i64()
    .unwrap();
    assert_eq!(
        created,
        leads + partners,
        "each record is created once across all runs"
    );
    let got = events(&fleet, "bac.odoo.crm_lead.v1", leads as usize).await;
    assert_eq!(got.len(), leads as usize, "one event per lead, none twice");
    for r in replicas {
        r.stop().await.unwrap();
    }
}

pub(crate) fn producer(fleet: &Fleet) -> FutureProducer {
    bac_e2e::conformance::producer(fleet)
}

/// Sends a command on `bac.odoo.commands.v1` as another platform service would.
pub(crate) async fn command(
    fleet: &Fleet,
    p: &FutureProducer,
    ce_id: &str,
    ty: &str,
    time: &str,
    payload: Value,
) -> (i32, i64) {
    bac_e2e::conformance::command_at(p, fleet, "odoo", ce_id, ty, time, payload).await
}

/// Waits until bac-odoo's command consumer has committed past `(partition, offset)`: the
/// message was handled (applied, or found to be a duplicate), whatever it did.
async fn consumed(fleet: &Fleet, (partition, offset): (i32, i64)) {
    use rdkafka::{consumer::BaseConsumer, consumer::Consumer, Offset, TopicPartitionList};
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", fleet.kafka.brokers())
        .set("group.id", "bac-odoo-commands")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("bac.odoo.commands.v1", partition);
    let past = bac_e2e::wait_until(Duration::from_secs(60), || async {
        let committed = group
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .ok()
            .and_then(|c| {
                c.find_partition("bac.odoo.commands.v1", partition)
                    .map(|p| p.offset())
            });
        matches!(committed, Some(Offset::Offset(o)) if o > offset)
    })
    .await;
    assert!(past, "message {partition}/{offset} never consumed");
}

/// Waits until the command is settled; its status.
pub(crate) async fn settled(fleet: &Fleet, ce_id: &str) -> String {
    bac_e2e::conformance::settled(fleet, "odoo", ce_id).await
}

async fn lead_by_name(fleet: &Fleet, name: &str) -> Vec<Value> {
    odoo(
        fleet,
        "crm.lead",
        "search_read",
        json!([[["name", "=", name]]]),
        json!({"fields": ["name", "phone", "referred", "type"]}),
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

#[tokio::test]
async fn commands_apply_once_and_a_lost_create_answer_is_not_duplicated() {
    let fleet = Fleet::start().await;
    let _conn = connection(&fleet).await;
    let p = producer(&fleet);
    let now = chrono::Utc::now().to_rfc3339();
    // The same command twice.
    let payload = json!({"entity": "crm_lead", "op": "create", "values": {"name": "From a command", "priority": "high"}});
    command(
        &fleet,
        &p,
        "cmd-once-1",
        "bac.odoo.crm_lead.create",
        &now,
        payload.clone(),
    )
    .await;
    let duplicate = command(
        &fleet,
        &p,
        "cmd-once-1",
        "bac.odoo.crm_lead.create",
        &now,
        payload,
    )
    .await;
    assert_eq!(settled(&fleet, "cmd-once-1").await, "applied");
    consumed(&fleet, duplicate).await;
    let found = lead_by_name(&fleet, "From a command").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["referred"], "cmd-once-1",
        "the intent id is on the record"
    );
    assert_eq!(
        found[0]["type"], "opportunity",
        "a command's lead is created as the REST route's is"
    );
    let (status, lead) = fleet.create_lead("From REST", None).await;
    assert_eq!(status, 201, "{lead}");
    assert_eq!(
        lead_by_name(&fleet, "From REST").await[0]["type"],
        "opportunity"
    );

    // The create happens but its answer is lost: the retry finds it instead of creating again.
    let (status, _) = (fleet.http.post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
        .json(&json!({"model": "crm.lead", "method": "create", "lose_response": true, "for_calls": 1}))
        .send()
        .await
        .unwrap()
        .status(), ());
    assert!(status.is_success());
    command(
        &fleet,
        &p,
        "cmd-lost-1",
        "bac.odoo.crm_lead.create",
        &now,
        json!({"entity": "crm_lead", "op": "create", "values": {"name": "Lost answer"}}),
    )
    .await;
    assert_eq!(settled(&fleet, "cmd-lost-1").await, "applied");
    assert_eq!(lead_by_name(&fleet, "Lost answer").await.len(), 1);

    // A bad command is recorded as failed, not retried forever.
    command(
        &fleet,
        &p,
        "cmd-bad-1",
        "bac.odoo.crm_lead.create",
        &now,
        json!({"entity": "crm_lead", "op": "create", "values": {"colour": "red"}}),
    )
    .await;
    assert_eq!(settled(&fleet, "cmd-bad-1").await, "failed");

    // A field that carries the intent id cannot also be a value of the create.
    command(
        &fleet,
        &p,
        "cmd-intent-1",
        "bac.odoo.sale_order.create",
        &now,
        json!({"entity": "sale_order", "op": "create", "values": {"partner_id": 1, "client_order_ref": "PO-7"}}),
    )
    .await;
    assert_eq!(settled(&fleet, "cmd-intent-1").await, "failed");

    // Odoo failing for a while: the command is parked and retried, not lost, and the
    // consumer goes on with the next command meanwhile.
    let resp = fleet
        .http
        .post(format!("{}/_sandbox/odoo/faults", fleet.sandbox_url))
        .json(&json!({"model": "crm.lead", "method": "create", "status": 503, "for_calls": 4}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    command(
        &fleet,
        &p,
        "cmd-parked-1",
        "bac.odoo.crm_lead.create",
        &now,
        json!({"entity": "crm_lead", "op": "create", "values": {"name": "Parked for a while"}}),
    )
    .await;
    command(
        &fleet,
        &p,
        "cmd-after-1",
        "bac.odoo.partner.create",
        &now,
        json!({"entity": "partner", "op": "create", "values": {"name": "Not held up"}}),
    )
    .await;
    assert_eq!(settled(&fleet, "cmd-after-1").await, "applied");
    assert_eq!(settled(&fleet, "cmd-parked-1").await, "applied");
    assert_eq!(lead_by_name(&fleet, "Parked for a while").await.len(), 1);
    let db = connect(&fleet.infra.database_url).await;
    let attempts: i32 = db
        .query_one(
            "SELECT attempts FROM odoo.sync_commands WHERE tenant_id = $1 AND command_id = 'cmd-parked-1'",
            &[&fleet.tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert!(attempts >= 2, "{attempts}");
}

#[tokio::test]
async fn each_conflict_strategy_and_a_manual_resolution() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    let p = producer(&fleet);
    let mut n = 0;
    // A synced lead changed upstream, then an update command for it: a conflict.
    let mut conflict = |strategy: &'static str, owners: Value, local_time: &'static str| {
        n += 1;
        let (fleet, conn, p) = (&fleet, conn.clone(), &p);
        let name = format!("Conflict {strategy} {n}");
        async move {
            let (status, body) = fleet
                .call(
                    Method::PATCH,
                    &format!("/api/v1/integrations/connections/{conn}/sync-settings/crm_lead"),
                    Some(json!({"conflict_strategy": strategy, "field_owners": owners})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let id = odoo(
                fleet,
                "crm.lead",
                "create",
                json!([{"name": name, "phone": "1"}]),
                json!({}),
            )
            .await
            .as_i64()
            .unwrap();
            sync(fleet, &conn, "crm_lead", "incremental").await;
            odoo(
                fleet,
                "crm.lead",
                "write",
                json!([[id], {"name": format!("{name} remote")}]),
                json!({}),
            )
            .await;
            let ce_id = format!("cmd-{strategy}-{id}");
            let time = if local_time == "now" {
                chrono::Utc::now().to_rfc3339()
            } else {
                local_time.to_string()
            };
            command(
                fleet,
                p,
                &ce_id,
                "bac.odoo.crm_lead.update",
                &time,
                json!({"record_id": id, "values": {"name": format!("{name} local"), "phone": "2"}}),
            )
            .await;
            let status = settled(fleet, &ce_id).await;
            let rec = odoo(
                fleet,
                "crm.lead",
                "read",
                json!([[id]]),
                json!({"fields": ["name", "phone"]}),
            )
            .await;
            (
                status,
                rec[0]["name"].as_str().unwrap().to_string(),
                rec[0]["phone"].as_str().unwrap_or("").to_string(),
                name,
            )
        }
    };
    let (s, name, phone, base) = conflict("prefer_remote", json!({}), "now").await;
    assert_eq!(
        (s.as_str(), name, phone),
        ("skipped", format!("{base} remote"), "1".into())
    );
    let (s, name, phone, base) = conflict("prefer_local", json!({}), "now").await;
    assert_eq!(
        (s.as_str(), name, phone),
        ("applied", format!("{base} local"), "2".into())
    );
    let (s, name, _, base) = conflict("last_write_wins", json!({}), "2020-01-01T00:00:00Z").await;
    assert_eq!(
        (s.as_str(), name),
        ("skipped", format!("{base} remote")),
        "an older local change loses"
    );
    let (s, name, _, base) = conflict("last_write_wins", json!({}), "now").await;
    assert_eq!(
        (s.as_str(), name),
        ("applied", format!("{base} local")),
        "a newer local change wins"
    );
    // merge: name changed on both sides stays remote's (default owner); phone only changed locally.
    let (s, name, phone, base) = conflict("merge", json!({}), "now").await;
    assert_eq!(
        (s.as_str(), name, phone),
        ("applied", format!("{base} remote"), "2".into())
    );
    let (_, name, _, base) = conflict("merge", json!({"name": "platform"}), "now").await;
    assert_eq!(
        name,
        format!("{base} local"),
        "a platform-owned field takes the local value"
    );
    // manual: queued, then resolved through the REST route.
    let (s, name, _, base) = conflict("manual", json!({}), "now").await;
    assert_eq!((s.as_str(), name), ("conflict", format!("{base} remote")));
    let (status, list) = fleet
        .call(
            Method::GET,
            &format!("/api/v1/integrations/connections/{conn}/conflicts"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let open = list["conflicts"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{list}");
    assert_eq!(open[0]["local"]["name"], format!("{base} local"));
    assert_eq!(open[0]["remote"]["name"], format!("{base} remote"));
    let cid = open[0]["id"].as_str().unwrap().to_string();
    // Resolving writes Odoo data: a user needs an Odoo grant that writes, and that one is enough
    // (the conflict says whose it is; no other integration's grant is asked for).
    let (user, user_key) = fleet.user_with_key("user").await;
    let resolve = format!("/api/v1/integrations/conflicts/{cid}/resolve");
    let merged = json!({"resolution": "merged", "merged": {"name": format!("{base} merged")}});
    let (status, denied) = fleet
        .call_as(&user_key, Method::POST, &resolve, Some(merged.clone()))
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, g) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/permissions/grant",
            Some(json!({"user_id": user, "integration": "odoo", "permission_type": "manage"})),
        )
        .await;
    assert_eq!(status, 201, "{g}");
    let (status, body) = fleet
        .call_as(&user_key, Method::POST, &resolve, Some(merged))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["resolution"], "merged");
    assert_eq!(
        lead_by_name(&fleet, &format!("{base} merged")).await.len(),
        1
    );
    let (status, again) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/conflicts/{cid}/resolve"),
            Some(json!({"resolution": "remote"})),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    let (status, missing) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/conflicts/cfl_nope/resolve",
            Some(json!({"resolution": "remote"})),
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    // Every conflict and resolution is an event: 7 detected, 7 resolved.
    let got = events(&fleet, "bac.integrations.conflict.v1", 14).await;
    let t = by_type(&got);
    assert_eq!(
        t.get("bac.integrations.conflict.detected"),
        Some(&7),
        "{t:?}"
    );
    assert_eq!(
        t.get("bac.integrations.conflict.resolved"),
        Some(&7),
        "{t:?}"
    );
}

#[tokio::test]
async fn mappings_are_validated_versioned_previewed_and_used_by_the_next_run() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    let base = format!("/api/v1/integrations/connections/{conn}/mappings/crm_lead");
    let (status, m) = fleet.call(Method::GET, &base, None).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["version"], 0);
    let bad =
        json!({"fields": [{"target": "x", "source": "name", "transforms": [{"op": "shout"}]}]});
    let (status, err) = fleet.call(Method::PUT, &base, Some(bad)).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("fields[0]"),
        "{err}"
    );
    let mapping = json!({"fields": [
        {"target": "id", "source": "id"},
        {"target": "title", "source": "name", "transforms": [{"op": "trim"}, {"op": "upper"}]},
        {"target": "contact.email", "source": "email_from", "transforms": [{"op": "empty_to_null"}, {"op": "lower"}], "default": "none"},
        {"target": "revenue_cents", "source": "expected_revenue", "transforms": [{"op": "scale", "factor": 100, "decimals": 0}]},
        {"target": "name", "source": "name", "required": true}
    ]});
    odoo(
        &fleet,
        "crm.lead",
        "create",
        json!([{"name": "Good one", "email_from": "X@Y.Z"}]),
        json!({}),
    )
    .await;
    let (status, saved) = fleet.call(Method::PUT, &base, Some(mapping.clone())).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    let (status, preview) = fleet
        .call(
            Method::POST,
            &format!("{base}/preview"),
            Some(json!({"samples": [
                {"id": 1, "name": " deal ", "email_from": "A@B.C", "expected_revenue": 12.5},
                {"id": 2, "name": false, "email_from": false, "expected_revenue": 1}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let r = preview["results"].as_array().unwrap();
    assert_eq!(r[0]["output"]["title"], "DEAL");
    assert_eq!(r[0]["output"]["contact"]["email"], "a@b.c");
    assert_eq!(r[0]["output"]["revenue_cents"], 1250.0);
    assert!(
        r[1]["error"].as_str().unwrap().contains("title")
            || r[1]["error"].as_str().unwrap().contains("name"),
        "{preview}"
    );
    // Saving the mapping queued a full run; this one joins it or follows it.
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let db = connect(&fleet.infra.database_url).await;
    let row = db
        .query_one(
            "SELECT data FROM odoo.sync_records WHERE tenant_id = $1 AND data->>'title' = 'GOOD ONE'",
            &[&fleet.tenant],
        )
        .await
        .unwrap();
    let data: Value = row.get(0);
    assert_eq!(data["contact"]["email"], "x@y.z");
    // A record that fails the mapping goes to the dead letters; the run goes on.
    let strict = json!({"fields": [
        {"target": "id", "source": "id"},
        {"target": "priority", "source": "priority", "transforms": [{"op": "lookup", "table": {"0": "low"}}]}
    ]});
    odoo(
        &fleet,
        "crm.lead",
        "create",
        json!([{"name": "Urgent", "priority": "3"}]),
        json!({}),
    )
    .await;
    // Saving a mapping queues a full run that re-maps the mirror; the trigger below joins it
    // or starts the next one.
    let (status, saved) = fleet.call(Method::PUT, &base, Some(strict)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    let run = sync(&fleet, &conn, "crm_lead", "full").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(count(&run, "failed") >= 1, "{run}");
    assert!(
        run["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("priority"),
        "{run}"
    );
    let dead = db
        .query_one(
            "SELECT count(*) FROM odoo.sync_dead_letters
             WHERE tenant_id = $1 AND record->>'name' = 'Urgent' AND error LIKE '%priority%'",
            &[&fleet.tenant],
        )
        .await
        .unwrap();
    assert!(dead.get::<_, i64>(0) >= 1);
    // Deleting the connection removes its mirror, mappings and schedule.
    let (status, _) = fleet
        .call(
            Method::DELETE,
            &format!("/api/v1/integrations/connections/{conn}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for table in [
        "sync_records",
        "sync_mappings",
        "sync_settings",
        "sync_dead_letters",
    ] {
        let left: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM odoo.{table} WHERE tenant_id = $1"),
                &[&fleet.tenant],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table}");
    }
    // Another tenant cannot see or change it.
    let (status, _) = fleet
        .call(
            Method::GET,
            "/api/v1/integrations/connections/con_someone_else/mappings/crm_lead",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_odoo_webhook_feeds_the_same_pipeline_in_real_time() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    let (status, created) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/webhook-token?form=query"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // The plain URL carries no token (it goes in the header); Odoo's automation cannot send
    // headers, so this test asked for the query form too.
    let token = created["token"].as_str().unwrap();
    assert!(!created["webhook_url"].as_str().unwrap().contains(token));
    assert_eq!(created["header"], "X-Webhook-Token");
    let url = format!(
        "{}{}",
        fleet.api,
        created["webhook_url_with_token"].as_str().unwrap()
    );
    let id = odoo(
        &fleet,
        "crm.lead",
        "create",
        json!([{"name": "Pushed lead"}]),
        json!({}),
    )
    .await
    .as_i64()
    .unwrap();
    // What Odoo's "Send Webhook Notification" automation posts.
    let body = json!({"_action": "Send Webhook Notification(#1)", "_model": "crm.lead", "_id": id, "name": "Pushed lead"});
    let post = |url: String, body: Value| {
        let http = fleet.http.clone();
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // A forged or missing token is refused, in the one error shape.
    let forged = format!(
        "{}/api/v1/integrations/connections/{conn}/webhook?token=whk_forged",
        fleet.api
    );
    let (status, err) = post(forged, body.clone()).await;
    assert_eq!(status, 401, "{err}");
    assert!(err["request_id"].is_string(), "{err}");
    let (status, err) = post(
        format!(
            "{}/api/v1/integrations/connections/{conn}/webhook",
            fleet.api
        ),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{err}");
    // The push route (no gateway token) takes only a push channel's notification; Odoo has
    // no channels, so it is refused as unauthenticated, not answered as a server error.
    let (status, err) = post(
        format!("{}/api/v1/integrations/connections/{conn}/push", fleet.api),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["details"]["error_code"], "UNAUTHENTICATED", "{err}");
    let (status, r) = post(url.clone(), body.clone()).await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(
        (r["entity"].as_str(), r["created"].as_u64()),
        (Some("crm_lead"), Some(1)),
        "{r}"
    );
    // The same notification again: nothing changed, no second event.
    let (_, r) = post(url.clone(), body.clone()).await;
    assert_eq!(r["unchanged"], 1, "{r}");
    // Deleted upstream, then notified: a deleted event.
    odoo(&fleet, "crm.lead", "unlink", json!([[id]]), json!({})).await;
    let (_, r) = post(url.clone(), body).await;
    assert_eq!(r["deleted"], 1, "{r}");
    let (status, err) = post(url, json!({"_model": "crm.lead"})).await;
    assert_eq!(status, 400, "{err}");
    let got = events(&fleet, "bac.odoo.crm_lead.v1", 2).await;
    let t = by_type(&got);
    assert_eq!(t.get("bac.odoo.crm_lead.created"), Some(&1), "{t:?}");
    assert_eq!(t.get("bac.odoo.crm_lead.deleted"), Some(&1), "{t:?}");
    let first: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(first["origin"], "remote");
}

#[tokio::test]
async fn every_odoo_entity_syncs() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    for model in [
        "crm.lead",
        "res.partner",
        "sale.order",
        "account.move",
        "product.product",
        "stock.quant",
        "hr.employee",
    ] {
        seed(&fleet, model, 5, json!({}), None).await;
    }
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let ids = body["sync_run_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 7, "{body}");
    for id in ids {
        let run = wait_run(&fleet, &conn, id.as_str().unwrap()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(count(&run, "created") >= 1, "{run}");
        assert_eq!(count(&run, "failed"), 0, "{run}");
    }
    // Each entity's events on its own topic.
    for entity in ["sale_order", "invoice", "stock_quant", "employee"] {
        let got = events(&fleet, &format!("bac.odoo.{entity}.v1"), 1).await;
        assert!(
            got.iter()
                .any(|r| r.headers["ce_type"] == format!("bac.odoo.{entity}.created")),
            "{entity}"
        );
    }
}

/// A sync engine of bac-odoo's, on the fleet's database, Vault and sandbox, that the test
/// drives itself (never spawned: no worker of its own).
fn engine_beside(fleet: &Fleet) -> bac_sync::SyncEngine {
    let config = fleet.infra.config(ServiceKind::Odoo);
    let db = bac_runtime::db::pool(&config.database_url, "odoo", 2).unwrap();
    let vault = bac_runtime::vault::Vault::new(config.vault.clone()).unwrap();
    let store = bac_runtime::connections::ConnectionStore::new(db.clone(), vault, "odoo");
    let remote = bac_odoo::remote::Remote::new(
        db.clone(),
        store.clone(),
        bac_connector::Calls::new(db.clone(), "odoo", "Odoo"),
        Duration::from_secs(5),
        config.upstream_egress.clone(),
        config.upstream_max_body,
        config.upstream_per_second,
    );
    bac_sync::SyncEngine::new(
        db,
        "odoo",
        store,
        bac_odoo::sync::adapters(&remote),
        bac_sync::SyncOptions::from_env("odoo"),
    )
}

/// What a provider whose events carry the record (Slack, Teams) hands the engine: written
/// through the mapping and the mirror as a pulled record, published once, not fetched again.
#[tokio::test]
async fn records_a_webhook_carries_whole_are_written_as_pulled_ones() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    let engine = engine_beside(&fleet);
    let raw = json!({"id": 9001, "name": "Pushed whole", "partner_name": false,
        "email_from": "pushed@example.com", "phone": false, "expected_revenue": 10.0,
        "priority": "2", "stage_id": [1, "New"], "active": true,
        "create_date": "2026-01-02 03:04:05", "write_date": "2026-01-02 03:04:05"});
    let record = bac_sync::RemoteRecord {
        id: "9001".into(),
        version: Some(chrono::Utc::now().into()),
        raw,
        deleted: false,
    };
    let counts = engine
        .ingest_records(&fleet.tenant, &conn, "crm_lead", vec![record.clone()])
        .await
        .unwrap();
    assert_eq!(counts, [1, 0, 0, 0]);
    let again = engine
        .ingest_records(&fleet.tenant, &conn, "crm_lead", vec![record])
        .await
        .unwrap();
    assert_eq!(again, [0, 0, 0, 1], "the same record again changes nothing");
    let err = engine
        .ingest_records(&fleet.tenant, &conn, "crm_lead", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code, bac_runtime::ErrorCode::InvalidRequest);
    // Published by the running service's outbox relay, once.
    let got = events(&fleet, "bac.odoo.crm_lead.v1", 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].headers["ce_subject"], "crm_lead/9001");
    assert_eq!(got[0].headers["ce_type"], "bac.odoo.crm_lead.created");
    let data = got[0].json();
    assert_eq!(data["after"]["name"], "Pushed whole");
    assert_eq!(data["after"]["email"], "pushed@example.com");
    assert_eq!(data["origin"], "remote");
}

/// Versions that are not times (Tally's ALTERID, IMAP's MODSEQ, an etag) are kept and
/// compared the way the provider means them: an older sequence number never rolls the mirror
/// back; tags are only "different".
#[tokio::test]
async fn sequence_and_tag_versions_are_compared_as_the_provider_means_them() {
    use bac_sync::{RemoteRecord, Version};
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    let engine = engine_beside(&fleet);
    let lead = |id: &str, name: &str, version: Version| RemoteRecord {
        id: id.into(),
        version: Some(version),
        raw: json!({"id": id.parse::<i64>().unwrap(), "name": name, "partner_name": false,
            "email_from": false, "phone": false, "expected_revenue": 0.0, "priority": "0",
            "stage_id": [1, "New"], "active": true,
            "create_date": "2026-01-02 03:04:05", "write_date": "2026-01-02 03:04:05"}),
        deleted: false,
    };
    let ingest = |r: RemoteRecord| engine.ingest_records(&fleet.tenant, &conn, "crm_lead", vec![r]);
    assert_eq!(
        ingest(lead("7001", "Alter 5", Version::Sequence(5)))
            .await
            .unwrap(),
        [1, 0, 0, 0]
    );
    // A slower read of an older alteration arrives late: ignored.
    assert_eq!(
        ingest(lead("7001", "Alter 3", Version::Sequence(3)))
            .await
            .unwrap(),
        [0, 0, 0, 1]
    );
    assert_eq!(
        ingest(lead("7001", "Alter 9", Version::Sequence(9)))
            .await
            .unwrap(),
        [0, 1, 0, 0]
    );
    assert_eq!(
        ingest(lead("7002", "Tagged", Version::Tag("\"a1\"".into())))
            .await
            .unwrap(),
        [1, 0, 0, 0]
    );
    assert_eq!(
        ingest(lead("7002", "Retagged", Version::Tag("\"a0\"".into())))
            .await
            .unwrap(),
        [0, 1, 0, 0]
    );
    let pg = connect(&fleet.infra.database_url).await;
    let rows = pg
        .query(
            "SELECT remote_id, data->>'name', remote_version, remote_seq, remote_tag
             FROM odoo.sync_records WHERE tenant_id = $1 AND remote_id IN ('7001', '7002')
             ORDER BY remote_id",
            &[&fleet.tenant],
        )
        .await
        .unwrap();
    let row = |i: usize| {
        let r = &rows[i];
        (
            r.get::<_, String>(1),
            r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2),
            r.get::<_, Option<i64>>(3),
            r.get::<_, Option<String>>(4),
        )
    };
    assert_eq!(row(0), ("Alter 9".into(), None, Some(9), None));
    assert_eq!(
        row(1),
        ("Retagged".into(), None, None, Some("\"a0\"".into()))
    );
}

#[tokio::test]
async fn a_full_trigger_turns_a_queued_incremental_run_full() {
    let mut fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    // No worker may lease the runs of this test: the service is stopped and the engine below
    // is never spawned.
    fleet.odoo.take().unwrap().stop().await.unwrap();
    let engine = engine_beside(&fleet);
    let first = engine
        .trigger(&fleet.tenant, &conn, "crm_lead", "incremental", "manual")
        .await
        .unwrap();
    let second = engine
        .trigger(&fleet.tenant, &conn, "crm_lead", "full", "manual")
        .await
        .unwrap();
    assert_eq!(first, second, "one queued run per connection and entity");
    let pg = connect(&fleet.infra.database_url).await;
    let mode: String = pg
        .query_one(
            "SELECT mode FROM odoo.sync_runs WHERE id = $1",
            &[&first[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "full");
}

/// A page writes records new to the mirror by COPY. Another writer (here a transaction held
/// open by the test, as a webhook or an API write would) creating one of them between the
/// page's lookup and its COPY must not fail the run or report the record as new: the page is
/// worked out again and sees the row.
#[tokio::test]
async fn a_page_racing_another_writer_of_a_new_record_reports_it_once() {
    let fleet = Fleet::start().await;
    let conn = connection(&fleet).await;
    seed(&fleet, "crm.lead", 1500, json!({}), None).await;
    let total = odoo(&fleet, "crm.lead", "search_count", json!([[]]), json!({}))
        .await
        .as_u64()
        .unwrap();
    let first = odoo(
        &fleet,
        "crm.lead",
        "search",
        json!([[]]),
        json!({"order": "id", "limit": 1}),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let mut db = connect(&fleet.infra.database_url).await;
    let racer = db.transaction().await.unwrap();
    racer
        .execute(
            "INSERT INTO odoo.sync_records (tenant_id, connection_id, entity, remote_id, data,
                                            content_hash, origin)
             VALUES ($1, $2, 'crm_lead', $3, '{\"stale\": true}', 'stale', 'platform')",
            &[&fleet.tenant, &conn, &first.to_string()],
        )
        .await
        .unwrap();
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{conn}/sync"),
            Some(json!({"entity": "crm_lead", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["sync_run_id"].as_str().unwrap().to_string();
    // The first page's write now waits on the racer's uncommitted row: see it wait.
    let watcher = connect(&fleet.infra.database_url).await;
    let blocked = bac_e2e::wait_until(Duration::from_secs(60), || async {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            > 0
    })
    .await;
    assert!(blocked, "the run never waited on the racer's row");
    racer.commit().await.unwrap();
    let run = wait_run(&fleet, &conn, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "created"), total - 1, "{run}");
    assert_eq!(count(&run, "updated"), 1, "{run}");
    let got = events(&fleet, "bac.odoo.crm_lead.v1", total as usize).await;
    let of_first: Vec<&str> = got
        .iter()
        .filter(|r| r.headers["ce_subject"] == format!("crm_lead/{first}"))
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(of_first, vec!["bac.odoo.crm_lead.updated"], "{got:?}");
    assert_eq!(got.len() as u64, total, "one event per record");
    let row = db
        .query_one(
            "SELECT data->>'stale' IS NULL, origin FROM odoo.sync_records
             WHERE tenant_id = $1 AND connection_id = $2 AND remote_id = $3",
            &[&fleet.tenant, &conn, &first.to_string()],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the mirror holds the pulled record");
    assert_eq!(row.get::<_, String>(1), "remote");
}
