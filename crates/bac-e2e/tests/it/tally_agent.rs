//! `bac-tally-agent` (issue 17): the agent runs beside the Tally sandbox, dials the gateway's
//! gRPC port with its key and serves a configuration in agent mode. 20,000 vouchers sync
//! through it while it is killed and started again; a voucher created while it is offline
//! waits, visible as queued, and is posted once when it is back.
use std::time::Duration;

use bac_e2e::{conformance, wait_until, Fleet};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Office {
    fleet: Fleet,
    conn: String,
    key: String,
}

async fn office() -> Office {
    let fleet = Fleet::with_tally().await;
    // in agent mode the host and port are Tally's as the agent sees it
    let (status, created) = fleet
        .call(
            Method::POST,
            "/api/v1/integrations/tally/configuration",
            Some(
                json!({"tally_server_host": "localhost", "tally_server_port": 9000,
                "company_name_in_tally": "Demo Company", "connection_mode": "agent"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, issued) = fleet
        .call(Method::POST, "/api/v1/integrations/tally/agent-key", None)
        .await;
    assert_eq!(status, 201, "{issued}");
    Office {
        conn: created["connection_id"].as_str().unwrap().to_string(),
        key: issued["key"].as_str().unwrap().to_string(),
        fleet,
    }
}

impl Office {
    /// Starts an agent for the configuration, as the office runs it; stopped by the token.
    fn agent(&self) -> CancellationToken {
        let cfg = bac_tally_agent::AgentConfig {
            fleet_url: format!("http://{}", self.fleet.gateway.grpc_addr),
            key: self.key.clone(),
            connection_id: self.conn.clone(),
            ca_file: None,
            tally_url: self.fleet.tally_url(),
            tally_timeout: Duration::from_secs(30),
            concurrency: 2,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        };
        let stop = CancellationToken::new();
        tokio::spawn(bac_tally_agent::run(cfg, stop.clone()));
        stop
    }

    async fn test(&self) -> (u16, Value) {
        self.fleet
            .call(
                Method::POST,
                "/api/v1/integrations/tally/test-connection",
                None,
            )
            .await
    }

    async fn online(&self) -> bool {
        wait_until(Duration::from_secs(30), || async {
            self.test().await.0 == 200
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_vouchers_sync_through_the_agent_killed_midway() {
    let office = office().await;
    let fleet = &office.fleet;
    let (status, e) = office.test().await;
    assert_eq!(status, 503, "no agent yet: {e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("agent of this configuration is offline"),
        "{e}"
    );
    fleet
        .sandbox_post(
            &format!("{}/_sandbox/tally/vouchers", office.fleet.tally_url()),
            json!({"count": 20000, "date": "20261205"}),
        )
        .await;
    let total = fleet
        .sandbox_get(&format!(
            "{}/_sandbox/tally/stats",
            office.fleet.tally_url()
        ))
        .await["vouchers"]
        .as_i64()
        .unwrap();
    let first = office.agent();
    assert!(office.online().await, "the agent joined");
    let (_, t) = office.test().await;
    assert!(
        t["message"].as_str().unwrap().contains("through the agent"),
        "{t}"
    );

    let (status, started) = fleet
        .call(
            Method::POST,
            &format!("/api/v1/integrations/connections/{}/sync", office.conn),
            Some(json!({"entity": "voucher", "mode": "full"})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["sync_run_id"].as_str().unwrap().to_string();
    let seen = || async {
        let (_, runs) = fleet
            .call(
                Method::GET,
                &format!("/api/v1/integrations/connections/{}/sync-runs", office.conn),
                None,
            )
            .await;
        runs["runs"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == run_id.as_str()).cloned())
            .and_then(|r| r["records_seen"].as_i64())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(120), || async { seen().await >= 4000 }).await,
        "the run made progress through the agent"
    );
    // the office's computer drops the agent in the middle; it is started again
    first.cancel();
    let at_kill = seen().await;
    assert!(at_kill < total, "killed too late ({at_kill} of {total})");
    let _second = office.agent();
    let run = conformance::wait_run(fleet, &office.conn, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        conformance::counts(&run),
        (total as u64, 0, 0),
        "every voucher once: {run}"
    );
    let got = conformance::events(fleet, "bac.tally.voucher.v1", |r| r.len() as i64 >= total).await;
    let subjects: std::collections::HashSet<&str> = got
        .iter()
        .map(|r| r.headers["ce_subject"].as_str())
        .collect();
    assert_eq!(subjects.len() as i64, total, "every voucher's event");
    assert_eq!(got.len() as i64, total, "no voucher twice");
    let stats = fleet
        .sandbox_get(&format!(
            "{}/_sandbox/tally/stats",
            office.fleet.tally_url()
        ))
        .await;
    assert_eq!(stats["vouchers"], total, "{stats}");
    assert_eq!(stats["imported_created"], 0, "nothing posted: {stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voucher_made_while_the_agent_is_offline_waits_and_posts_once() {
    let office = office().await;
    let fleet = &office.fleet;
    let body = json!({"date": "2026-12-05", "voucher_type": "Receipt", "narration": "Paid at the counter",
        "ledger_entries": [{"ledger_name": "Cash", "amount": 300, "side": "debit"},
                           {"ledger_name": "Acme Traders", "amount": 300, "side": "credit"}]});
    let post = |key: &'static str| {
        let body = body.clone();
        async move {
            let r = fleet
                .http
                .post(format!("{}/api/v1/tally/vouchers", fleet.api))
                .bearer_auth(&fleet.key)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // the configuration's status says the agent is missing
    let (status, st) = fleet
        .call(Method::GET, "/api/v1/integrations/tally/status", None)
        .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["status"], "warning", "{st}");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("has never connected"),
        "{st}"
    );
    let (status, queued) = post("counter-1").await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["status"], "queued", "{queued}");
    assert_eq!(queued["id"], "", "no GUID before Tally has it");
    assert_eq!(queued["intent_id"], "counter-1");
    let (_, again) = post("counter-1").await;
    assert_eq!(
        again["status"], "queued",
        "the same voucher, still waiting: {again}"
    );
    let (_, list) = fleet
        .call(Method::GET, "/api/v1/tally/vouchers/queued", None)
        .await;
    assert_eq!(list["vouchers"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["vouchers"][0]["status"], "queued");
    let stats = || async {
        fleet
            .sandbox_get(&format!(
                "{}/_sandbox/tally/stats",
                office.fleet.tally_url()
            ))
            .await
    };
    assert_eq!(stats().await["imported_created"], 0);

    let _agent = office.agent();
    let posted = wait_until(Duration::from_secs(60), || async {
        let (_, list) = fleet
            .call(Method::GET, "/api/v1/tally/vouchers/queued", None)
            .await;
        list["vouchers"][0]["status"] == "posted"
    })
    .await;
    assert!(
        posted,
        "the queued voucher was posted when the agent came back"
    );
    assert_eq!(stats().await["imported_created"], 1, "posted once");
    let (status, now) = post("counter-1").await;
    assert_eq!(status, 201, "{now}");
    assert_eq!(now["status"], "posted", "{now}");
    assert!(now["id"].as_str().unwrap().starts_with("bac-"), "{now}");
    assert_eq!(
        stats().await["imported_created"],
        1,
        "still once: {}",
        stats().await
    );
    // with the agent there, a voucher goes to Tally at once
    let (status, direct) = post("counter-2").await;
    assert_eq!(status, 201, "{direct}");
    assert_eq!(direct["status"], "posted", "{direct}");
    assert_eq!(stats().await["imported_created"], 2);

    // the agent key opens the stream and reads Tally's data, nothing more
    let (status, e) = fleet
        .call_as(&office.key, Method::GET, "/api/v1/tally/ledgers", None)
        .await;
    assert_eq!(status, 200, "{e}");
    let (status, e) = fleet
        .call_as(
            &office.key,
            Method::DELETE,
            "/api/v1/integrations/tally/configuration",
            None,
        )
        .await;
    assert_eq!(status, 403, "{e}");
    // only the configuration's agent key joins its stream: not even a super admin's key
    let refused = join_with(fleet, &fleet.key, &office.conn).await;
    assert_eq!(refused, tonic::Code::PermissionDenied);
    // only a super admin issues agent keys
    let (_, admin_key) = fleet.user_with_key("admin").await;
    let (status, e) = fleet
        .call_as(
            &admin_key,
            Method::POST,
            "/api/v1/integrations/tally/agent-key",
            None,
        )
        .await;
    assert_eq!(status, 403, "{e}");
    // a new key ends the old one
    let (status, fresh) = fleet
        .call(Method::POST, "/api/v1/integrations/tally/agent-key", None)
        .await;
    assert_eq!(status, 201);
    let (status, e) = fleet
        .call_as(&office.key, Method::GET, "/api/v1/tally/ledgers", None)
        .await;
    assert_eq!(status, 401, "{e}");
    // and deleting the configuration ends its agent's key
    let fresh = fresh["key"].as_str().unwrap().to_string();
    let (status, _) = fleet
        .call(
            Method::DELETE,
            "/api/v1/integrations/tally/configuration",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, e) = fleet
        .call_as(&fresh, Method::GET, "/api/v1/tally/ledgers", None)
        .await;
    assert_eq!(status, 401, "{e}");
}

/// Opens the agent's stream with `key` for `conn` through the gateway; the status it ends with.
async fn join_with(fleet: &Fleet, key: &str, conn: &str) -> tonic::Code {
    use bac_proto::tally::v1::{
        agent_message, tally_agent_service_client::TallyAgentServiceClient, AgentHello,
        AgentMessage,
    };
    let mut client =
        TallyAgentServiceClient::connect(format!("http://{}", fleet.gateway.grpc_addr))
            .await
            .unwrap();
    let hello = AgentMessage {
        kind: Some(agent_message::Kind::Hello(AgentHello {
            connection_id: conn.to_string(),
            ..AgentHello::default()
        })),
    };
    let mut req = tonic::Request::new(tokio_stream::iter(vec![hello]));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    match client.join(req).await {
        Ok(mut stream) => match stream.get_mut().message().await {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        },
        Err(s) => s.code(),
    }
}

/// The agent's stream lives on one replica; another replica, asked for a voucher, reaches the
/// agent through the one that holds the stream (the registry names it).
#[tokio::test(flavor = "multi_thread")]
async fn another_replica_reaches_the_agent_through_the_one_holding_its_stream() {
    use bac_proto::tally::v1::{
        tally_service_client::TallyServiceClient, CreateVoucherRequest, LedgerEntry, Voucher,
    };
    let office = office().await;
    let fleet = &office.fleet;
    let _agent = office.agent();
    assert!(
        office.online().await,
        "the agent joined (the gateway's replica)"
    );
    // a second replica of bac-tally, which the gateway does not know
    let other = bac_tally::run(fleet.infra.config(bac_runtime::ServiceKind::Tally))
        .await
        .unwrap();
    let mut client = TallyServiceClient::connect(format!("http://{}", other.grpc_addr))
        .await
        .unwrap();
    let ctx = bac_runtime::RequestContext {
        tenant_id: fleet.tenant.clone(),
        principal: "test".into(),
        request_id: "relay-1".into(),
        traceparent: None,
    };
    let entry = |ledger: &str, side: &str| LedgerEntry {
        ledger_name: ledger.into(),
        amount: 42.0,
        side: side.into(),
    };
    let made = client
        .create_voucher(ctx.request(CreateVoucherRequest {
            connection_id: office.conn.clone(),
            voucher: Some(Voucher {
                date: "2026-12-05".into(),
                voucher_type: "Journal".into(),
                narration: "through the other replica".into(),
                ledger_entries: vec![entry("Rent", "debit"), entry("Cash", "credit")],
                ..Voucher::default()
            }),
            intent_id: "relay-1".into(),
        }))
        .await
        .expect("relayed to the replica with the stream")
        .into_inner();
    assert_eq!(made.status, "posted", "{made:?}");
    assert!(made.id.starts_with("bac-"), "{made:?}");
    let stats = fleet
        .sandbox_get(&format!(
            "{}/_sandbox/tally/stats",
            office.fleet.tally_url()
        ))
        .await;
    assert_eq!(stats["imported_created"], 1, "{stats}");
    other.stop().await.unwrap();
}

/// A TLS front for the gateway's gRPC port (as an ingress terminates TLS in production), with
/// the test certificate for localhost (`crates/bac-e2e/certs`).
async fn tls_front(target: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::sync::Arc;
    use tokio_rustls::rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("localhost.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("localhost.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut up) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    addr
}

/// In production the agent reaches the fleet over TLS: an `https://` URL, the server's
/// certificate checked (here against the test CA given as `BAC_AGENT_CA_FILE`).
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_joins_over_tls() {
    let office = office().await;
    let front = tls_front(office.fleet.gateway.grpc_addr).await;
    let cfg = bac_tally_agent::AgentConfig {
        fleet_url: format!("https://localhost:{}", front.port()),
        key: office.key.clone(),
        connection_id: office.conn.clone(),
        ca_file: Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("certs/ca.crt")
                .display()
                .to_string(),
        ),
        tally_url: office.fleet.tally_url(),
        tally_timeout: Duration::from_secs(30),
        concurrency: 2,
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
    };
    let stop = CancellationToken::new();
    tokio::spawn(bac_tally_agent::run(cfg, stop.clone()));
    assert!(office.online().await, "the agent joined over TLS");
    stop.cancel();
}

/// An agent that stops answering (a laptop asleep, a NAT that dropped the connection while TCP
/// still believes in it) is ended after three unanswered pings, and the configuration's status
/// says it is offline. (Before, each ping sent renewed its registry row: it stayed online.)
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_stops_answering_is_taken_for_offline() {
    use bac_proto::tally::v1::{
        agent_message, tally_agent_service_client::TallyAgentServiceClient, AgentHello,
        AgentMessage,
    };
    // this test's process only (nextest runs each test in its own)
    std::env::set_var("BAC_TALLY_AGENT_HEARTBEAT_MS", "200");
    let office = office().await;
    let fleet = &office.fleet;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(AgentMessage {
        kind: Some(agent_message::Kind::Hello(AgentHello {
            connection_id: office.conn.clone(),
            ..AgentHello::default()
        })),
    })
    .await
    .unwrap();
    let mut client =
        TallyAgentServiceClient::connect(format!("http://{}", fleet.gateway.grpc_addr))
            .await
            .unwrap();
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", office.key).parse().unwrap(),
    );
    let mut stream = client.join(req).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some(), "welcomed");
    // it answers no ping from here on; its request stream stays open (`tx` lives)
    let db = bac_e2e::connect(&fleet.infra.database_url).await;
    let gone = wait_until(Duration::from_secs(60), || async {
        db.query_one(
            "SELECT disconnected_at IS NOT NULL FROM tally.tally_agents WHERE connection_id = $1",
            &[&office.conn],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
    })
    .await;
    assert!(gone, "the silent agent was ended");
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue, // pings
            Ok(None) => break tonic::Code::Ok,
            Err(s) => break s.code(),
        }
    };
    assert_eq!(ended, tonic::Code::Unavailable);
    let offline = wait_until(Duration::from_secs(30), || async {
        let (_, st) = fleet
            .call(Method::GET, "/api/v1/integrations/tally/status", None)
            .await;
        st["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is offline"))
    })
    .await;
    assert!(offline, "the status says the agent is offline");
    drop(tx);
}
