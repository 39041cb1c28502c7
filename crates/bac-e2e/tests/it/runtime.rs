//! The shared runtime against the real thing: Vault KV v2 with check-and-set and AppRole,
//! migrations applied once by replicas starting together.
use std::collections::HashMap;

use bac_e2e::{connect, fresh_database, Vault};
use bac_runtime::{
    db,
    vault::{self, VaultError},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

fn secret(pairs: &[(&str, &str)]) -> HashMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_kv2_with_check_and_set() {
    let bao = Vault::get();
    let v = vault::Vault::new(bao.config()).unwrap();
    let path = format!("bac/t{}/odoo/con_1", uuid::Uuid::new_v4().simple());
    assert!(v.read(&path).await.unwrap().is_none());

    let v1 = v
        .write(&path, &secret(&[("password", "one")]), Some(0))
        .await
        .unwrap();
    assert_eq!(v1, 1);
    // cas=0 means "only if absent": a second create loses.
    let err = v
        .write(&path, &secret(&[("password", "two")]), Some(0))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::CasConflict { .. }), "{err}");
    // Two replicas refreshing from version 1: the first wins, the second is told.
    let v2 = v
        .write(&path, &secret(&[("password", "two")]), Some(1))
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let err = v
        .write(&path, &secret(&[("password", "three")]), Some(1))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::CasConflict { .. }));

    let read = v.read(&path).await.unwrap().unwrap();
    assert_eq!(read.version, 2);
    assert_eq!(read.data["password"].expose_secret(), "two");
    // Debug output names fields, never values.
    assert!(!format!("{read:?}").contains("two"));
    assert_eq!(bao.read(&path).await.unwrap()["password"], "two");

    v.delete(&path).await.unwrap();
    assert!(v.read(&path).await.unwrap().is_none());

    // A wrong token is a clear error, not a panic or an empty secret.
    let mut bad = bao.config();
    bad.token = Some(SecretString::from("nope".to_string()));
    let err = vault::Vault::new(bad)
        .unwrap()
        .read(&path)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Forbidden), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_approle_login() {
    let bao = Vault::get();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, api: &str, body: Value| {
        http.request(method, format!("{}/v1/{api}", bao.addr))
            .header("X-Vault-Token", &bao.token)
            .json(&body)
    };
    let mount = format!("approle{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let r = call(
        reqwest::Method::POST,
        &format!("sys/auth/{mount}"),
        json!({"type": "approle"}),
    )
    .send()
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let policy = "path \"secret/data/bac/*\" { capabilities = [\"create\", \"read\", \"update\"] }";
    call(
        reqwest::Method::PUT,
        "sys/policies/acl/bac-test",
        json!({"policy": policy}),
    )
    .send()
    .await
    .unwrap();
    call(
        reqwest::Method::POST,
        &format!("auth/{mount}/role/bac"),
        json!({"token_policies": ["bac-test"]}),
    )
    .send()
    .await
    .unwrap();
    let role: Value = call(
        reqwest::Method::GET,
        &format!("auth/{mount}/role/bac/role-id"),
        json!({}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let sid: Value = call(
        reqwest::Method::POST,
        &format!("auth/{mount}/role/bac/secret-id"),
        json!({}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut c = bao.config();
    c.token = None;
    c.role_id = Some(role["data"]["role_id"].as_str().unwrap().to_string());
    c.secret_id = Some(SecretString::from(
        sid["data"]["secret_id"].as_str().unwrap().to_string(),
    ));
    c.approle_mount = mount.clone();
    let v = vault::Vault::new(c.clone()).unwrap();
    let path = format!("bac/t{}/zoho/con_9", uuid::Uuid::new_v4().simple());
    v.write(&path, &secret(&[("refresh_token", "r1")]), None)
        .await
        .unwrap();
    assert_eq!(
        v.read(&path).await.unwrap().unwrap().data["refresh_token"].expose_secret(),
        "r1"
    );
    // Wrong secret id: a clear refusal.
    c.secret_id = Some(SecretString::from("wrong".to_string()));
    let err = vault::Vault::new(c).unwrap().read(&path).await.unwrap_err();
    assert!(matches!(err, VaultError::Forbidden), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_apply_migrations_once() {
    let url = fresh_database().await;
    const M: &[db::Migration] = &[db::Migration {
        name: "test_0001",
        sql: "CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1);",
    }];
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let pool = db::pool(&url, "racing", 2).unwrap();
            db::migrate(&pool, "racing", M).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let c = connect(&url).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM racing.things", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let applied: i64 = c
        .query_one("SELECT count(*) FROM racing._migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied as usize, db::RUNTIME_MIGRATIONS.len() + 1);
}

/// A group consumer dropped while its offset commit waits for a broker that died must give
/// its thread back: rdkafka's own drop waits for librdkafka's close without limit, which held
/// a tokio worker (the gateway's audit feed, the commands consumers) until the broker
/// returned. Before `GroupConsumer`, the drop below had not returned after 60 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_whose_broker_died_mid_commit_does_not_hold_the_runtime() {
    use rdkafka::{
        consumer::{CommitMode, Consumer},
        message::Message,
        producer::{FutureProducer, FutureRecord},
        ClientConfig,
    };
    let mut tansu = bac_e2e::Tansu::start();
    let kafka = bac_runtime::config::KafkaConfig {
        brokers: tansu.brokers(),
        topic_partitions: 1,
        topic_replication: 1,
        message_timeout: std::time::Duration::from_secs(10),
        security: bac_runtime::config::KafkaSecurity {
            protocol: "plaintext".into(),
            ..Default::default()
        },
    };
    let topic = "bac.test.consumer_close.v1".to_string();
    bac_runtime::kafka::ensure_topics(&kafka, std::slice::from_ref(&topic))
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", tansu.brokers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<str, str>::to(&topic).key("k").payload("v"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let consumer = bac_runtime::kafka::GroupConsumer::create(
        bac_runtime::kafka::client_config(&kafka)
            .set("group.id", "test-consumer-close")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest"),
    )
    .unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let msg = consumer.recv().await.unwrap().detach();
    tansu.kill();
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets
        .add_partition_offset(
            msg.topic(),
            msg.partition(),
            rdkafka::Offset::Offset(msg.offset() + 1),
        )
        .unwrap();
    consumer.commit(&offsets, CommitMode::Async).unwrap();
    let (done, dropped) = std::sync::mpsc::channel();
    // Dropped on a worker of this runtime, as the services drop theirs.
    tokio::spawn(async move {
        drop(consumer);
        let _ = done.send(());
    });
    let waited = tokio::task::spawn_blocking(move || {
        dropped.recv_timeout(std::time::Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(
        waited.is_ok(),
        "dropping the consumer held its worker for 60 s"
    );
}
