//! The fleet's side of `bac-tally-agent`: the agent dials out from the office (through the
//! gateway's gRPC port, its key as bearer) and holds one stream per configuration; the
//! replica that accepted the stream keeps it, and says so in `tally_agents` (the stream's
//! session and this replica's internal gRPC address), so that any replica can reach the
//! agent: a request for an agent whose stream is elsewhere is relayed to the replica that
//! holds it (`TallyRelayService`). A stream is alive while its heartbeat is fresh; an agent
//! that is not is offline, which the configuration's test and status say.
use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use bac_proto::tally::v1::{
    agent_message, fleet_message, tally_agent_service_server::TallyAgentService,
    tally_relay_service_client::TallyRelayServiceClient,
    tally_relay_service_server::TallyRelayService, AgentMessage, AgentRequest, AgentResponse,
    FleetMessage, Ping, RelayRequest, Welcome,
};
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Pool,
    ErrorCode, RequestContext, ServiceError,
};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status, Streaming};

/// How often the fleet pings an agent, whose pong renews the registry row
/// (`BAC_TALLY_AGENT_HEARTBEAT_MS`, default 10 s); an agent silent for three is gone.
pub fn heartbeat() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("BAC_TALLY_AGENT_HEARTBEAT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms >= 50)
            .map_or(Duration::from_secs(10), Duration::from_millis)
    })
}
/// A registry row older than this is a stream that is gone (its replica died).
pub const STALE_SECS: i64 = 45;

/// The user the gateway makes for a configuration's agent (its key's user): only it may join
/// that configuration's stream.
pub fn agent_user(connection_id: &str) -> String {
    format!("usr_agent_{connection_id}")
}

/// Largest message on the agent's stream and the relay: a window of vouchers in UTF-16.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Whether a configuration reaches Tally through an agent.
pub fn via_agent(rec: &ConnectionRecord) -> bool {
    rec.config["connection_mode"].as_str() == Some("agent")
}

fn err(code: ErrorCode, msg: impl Into<String>) -> ServiceError {
    ServiceError::new("tally", code, msg)
}

/// The agent is not connected: the document's suggestion is to start it.
pub fn offline(last_seen: Option<DateTime<Utc>>) -> ServiceError {
    let when = last_seen
        .map(|t| {
            format!(
                "last seen {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_else(|| "never connected".into());
    err(
        ErrorCode::UpstreamUnavailable,
        format!("the Tally agent of this configuration is offline ({when})"),
    )
    .suggest("Start bac-tally-agent on the computer running Tally (docs/tally.md)")
}

/// A stream this replica holds.
struct Session {
    id: String,
    tx: mpsc::Sender<Result<FleetMessage, Status>>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<AgentResponse>>>>,
    /// When the agent last answered a ping (unix milliseconds): a stream whose agent stopped
    /// answering is ended, whatever TCP still believes.
    last_pong: std::sync::atomic::AtomicI64,
}

fn no_answer(timeout: Duration) -> ServiceError {
    err(
        ErrorCode::ConnectionTimeout,
        format!(
            "the Tally agent did not answer within {} ms",
            timeout.as_millis()
        ),
    )
}

impl Session {
    /// Sends a request down the stream and waits for its answer, both within `timeout`.
    async fn call(
        &self,
        req: AgentRequest,
        timeout: Duration,
    ) -> Result<AgentResponse, ServiceError> {
        let (tx, rx) = oneshot::channel();
        let id = req.request_id.clone();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let exchange = async {
            self.tx
                .send(Ok(FleetMessage {
                    kind: Some(fleet_message::Kind::Request(req)),
                }))
                .await
                .map_err(|_| offline(None))?;
            rx.await.map_err(|_| {
                err(
                    ErrorCode::UpstreamUnavailable,
                    "the Tally agent disconnected before it answered",
                )
            })
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(no_answer(timeout)));
        if answer.is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        answer
    }

    fn pong(&self) {
        self.last_pong.store(
            Utc::now().timestamp_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Milliseconds since the agent last answered.
    fn silent_for(&self) -> i64 {
        Utc::now().timestamp_millis() - self.last_pong.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the registry says of a configuration's agent.
#[derive(Debug, Clone)]
pub struct AgentState {
    pub online: bool,
    /// The stream the registry names, and the replica holding it.
    pub session_id: String,
    pub replica_url: String,
    pub hostname: String,
    pub agent_version: String,
    pub last_seen_at: DateTime<Utc>,
}

struct Inner {
    db: Pool,
    store: ConnectionStore,
    /// This replica's gRPC address as the other replicas reach it.
    advertise: String,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    relays: Mutex<HashMap<String, TallyRelayServiceClient<tonic::transport::Channel>>>,
    /// Bumped when an agent connects here (the voucher queue drains then).
    connected: watch::Sender<u64>,
}

/// The agents' registry and the way a request reaches one.
#[derive(Clone)]
pub struct Agents {
    inner: Arc<Inner>,
}

use crate::db_err;

impl Agents {
    pub fn new(db: Pool, store: ConnectionStore, advertise: String) -> Agents {
        Agents {
            inner: Arc::new(Inner {
                db,
                store,
                advertise,
                sessions: Mutex::default(),
                relays: Mutex::default(),
                connected: watch::channel(0).0,
            }),
        }
    }

    /// Changes when an agent connects to this replica.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.inner.connected.subscribe()
    }

    /// Whether this replica holds the configuration's agent stream.
    pub fn holds(&self, connection_id: &str) -> bool {
        self.local(connection_id).is_some()
    }

    fn local(&self, connection_id: &str) -> Option<Arc<Session>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(connection_id)
            .cloned()
    }

    /// The registry's row for a configuration.
    pub async fn state(&self, connection_id: &str) -> Result<Option<AgentState>, ServiceError> {
        let client = self.inner.db.get().await.map_err(db_err)?;
        let row = client
            .query_opt(
                "SELECT hostname, agent_version, last_seen_at,
                        disconnected_at IS NULL AND last_seen_at > now() - make_interval(secs => $2),
                        session_id, replica_url
                 FROM tally_agents WHERE connection_id = $1",
                &[&connection_id, &(STALE_SECS as f64)],
            )
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| AgentState {
            hostname: r.get(0),
            agent_version: r.get(1),
            last_seen_at: r.get(2),
            online: r.get(3),
            session_id: r.get(4),
            replica_url: r.get(5),
        }))
    }

    /// Posts `body` to the configuration's Tally through its agent, wherever its stream is.
    pub async fn send(
        &self,
        rec: &ConnectionRecord,
        body: &[u8],
        operation: &str,
        timeout: Duration,
    ) -> Result<AgentResponse, ServiceError> {
        let req = AgentRequest {
            request_id: uuid::Uuid::now_v7().to_string(),
            body: body.to_vec(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            operation: operation.to_string(),
        };
        let Some(AgentState {
            online,
            last_seen_at,
            session_id,
            replica_url,
            ..
        }) = self.state(&rec.id).await?
        else {
            return Err(offline(None));
        };
        if !online {
            return Err(offline(Some(last_seen_at)));
        }
        // here, and still the stream the registry names (the agent may have joined another
        // replica since)
        if let Some(s) = self.local(&rec.id).filter(|s| s.id == session_id) {
            return s.call(req, timeout).await;
        }
        let mut relay = self.relay(&replica_url)?;
        let ctx = RequestContext {
            tenant_id: rec.tenant_id.clone(),
            principal: "service:tally".into(),
            request_id: uuid::Uuid::now_v7().to_string(),
            traceparent: None,
        };
        let mut call = ctx.request(RelayRequest {
            connection_id: rec.id.clone(),
            session_id,
            request: Some(req),
        });
        call.set_timeout(timeout + Duration::from_secs(2));
        match relay.relay(call).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => Err(no_answer(timeout)),
            Err(s) => Err(err(
                ErrorCode::UpstreamUnavailable,
                format!("the Tally agent could not be reached: {}", s.message()),
            )),
        }
    }

    fn relay(
        &self,
        url: &str,
    ) -> Result<TallyRelayServiceClient<tonic::transport::Channel>, ServiceError> {
        let mut relays = self.inner.relays.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = relays.get(url) {
            return Ok(c.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| ServiceError::internal("tally", format!("replica address {url}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        let client = TallyRelayServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        relays.insert(url.to_string(), client.clone());
        Ok(client)
    }

    async fn register(
        &self,
        rec: &ConnectionRecord,
        session: &str,
        hello: &bac_proto::tally::v1::AgentHello,
    ) -> Result<(), ServiceError> {
        let client = self.inner.db.get().await.map_err(db_err)?;
        client
            .execute(
                "INSERT INTO tally_agents (connection_id, tenant_id, session_id, replica_url,
                                           hostname, agent_version, tally_url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (connection_id) DO UPDATE SET
                   tenant_id = $2, session_id = $3, replica_url = $4, hostname = $5,
                   agent_version = $6, tally_url = $7, connected_at = now(),
                   last_seen_at = now(), disconnected_at = NULL",
                &[
                    &rec.id,
                    &rec.tenant_id,
                    &session,
                    &self.inner.advertise,
                    &clip(&hello.hostname, 200),
                    &clip(&hello.agent_version, 50),
                    &clip(&hello.tally_url, 200),
                ],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn touch(&self, connection_id: &str, session: &str) {
        if let Ok(client) = self.inner.db.get().await {
            let _ = client
                .execute(
                    "UPDATE tally_agents SET last_seen_at = now()
                     WHERE connection_id = $1 AND session_id = $2",
                    &[&connection_id, &session],
                )
                .await;
        }
    }

    async fn ended(&self, connection_id: &str, session: &Session) {
        {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if sessions
                .get(connection_id)
                .is_some_and(|s| s.id == session.id)
            {
                sessions.remove(connection_id);
            }
        }
        // the requests it had are answered now: the agent is gone
        session
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let session = session.id.as_str();
        if let Ok(client) = self.inner.db.get().await {
            let _ = client
                .execute(
                    "UPDATE tally_agents SET disconnected_at = now()
                     WHERE connection_id = $1 AND session_id = $2",
                    &[&connection_id, &session],
                )
                .await;
        }
        tracing::info!(
            connection = connection_id,
            session,
            "Tally agent disconnected"
        );
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(n).collect()
}

type FleetStream = Pin<Box<dyn Stream<Item = Result<FleetMessage, Status>> + Send>>;

#[tonic::async_trait]
impl TallyAgentService for Agents {
    type JoinStream = FleetStream;

    async fn join(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<FleetStream>, Status> {
        let ctx = RequestContext::from_metadata(request.metadata())?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("the agent's hello did not come within 10 s")
            })??;
        let Some(AgentMessage {
            kind: Some(agent_message::Kind::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the agent's first message must be hello, naming its configuration",
            ));
        };
        let rec = self
            .inner
            .store
            .get(&ctx.tenant_id, &hello.connection_id)
            .await?;
        if ctx.principal != format!("user:{}", agent_user(&rec.id)) {
            return Err(Status::permission_denied(format!(
                "only the agent key of Tally configuration {} joins its stream (POST /api/v1/integrations/tally/agent-key)",
                rec.id
            )));
        }
        if !via_agent(&rec) {
            return Err(Status::failed_precondition(format!(
                "Tally configuration {} is not in agent mode: set its connection_mode to \"agent\"",
                rec.id
            )));
        }
        let session_id = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = mpsc::channel(64);
        let _ = tx
            .send(Ok(FleetMessage {
                kind: Some(fleet_message::Kind::Welcome(Welcome {
                    session_id: session_id.clone(),
                    company_name: rec.setting("company_name_in_tally").to_string(),
                })),
            }))
            .await;
        let session = Arc::new(Session {
            id: session_id.clone(),
            tx: tx.clone(),
            pending: Arc::default(),
            last_pong: Utc::now().timestamp_millis().into(),
        });
        self.register(&rec, &session_id, &hello).await?;
        let replaced = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id.clone(), session.clone());
        if let Some(old) = replaced {
            // one stream per configuration: the earlier one ends
            let _ = old.tx.try_send(Err(Status::aborted(
                "another agent joined for this configuration",
            )));
        }
        tracing::info!(connection = %rec.id, tenant = %rec.tenant_id, session = %session_id,
            hostname = %clip(&hello.hostname, 200), "Tally agent connected");
        self.inner.connected.send_modify(|n| *n += 1);
        // the agent's answers
        let agents = self.clone();
        let conn = rec.id.clone();
        let reader = session.clone();
        let replies = tx.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(AgentMessage { kind: Some(kind) })) => match kind {
                        agent_message::Kind::Response(r) => {
                            let waiting = reader
                                .pending
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&r.request_id);
                            if let Some(w) = waiting {
                                let _ = w.send(r);
                            }
                        }
                        agent_message::Kind::Ping(p) => {
                            let _ = replies
                                .send(Ok(FleetMessage {
                                    kind: Some(fleet_message::Kind::Pong(p)),
                                }))
                                .await;
                        }
                        agent_message::Kind::Pong(_) => {
                            reader.pong();
                            agents.touch(&conn, &reader.id).await;
                        }
                        agent_message::Kind::Hello(_) => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            agents.ended(&conn, &reader).await;
        });
        // the fleet's heartbeat: a ping; the registry row is renewed by the agent's pong, and
        // an agent that stops answering is ended
        let agents = self.clone();
        let conn = rec.id.clone();
        tokio::spawn(async move {
            let mut nonce = 0;
            loop {
                tokio::time::sleep(heartbeat()).await;
                if agents.local(&conn).is_none_or(|s| s.id != session.id) {
                    break;
                }
                if session.silent_for() > 3 * heartbeat().as_millis() as i64 {
                    tracing::warn!(connection = %conn, "the Tally agent stopped answering pings");
                    let _ = tx.try_send(Err(Status::unavailable("the agent stopped answering")));
                    agents.ended(&conn, &session).await;
                    break;
                }
                nonce += 1;
                let ping = FleetMessage {
                    kind: Some(fleet_message::Kind::Ping(Ping { nonce })),
                };
                // a full stream is not waited on: the silence check decides
                let _ = tokio::time::timeout(heartbeat(), tx.send(Ok(ping))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl TallyRelayService for Agents {
    async fn relay(
        &self,
        request: Request<RelayRequest>,
    ) -> Result<Response<AgentResponse>, Status> {
        let ctx = RequestContext::from_metadata(request.metadata())?;
        let req = request.into_inner();
        let session = self
            .local(&req.connection_id)
            .filter(|s| s.id == req.session_id)
            .ok_or_else(|| {
                Status::unavailable("this replica no longer holds the agent's stream")
            })?;
        let inner = req
            .request
            .ok_or_else(|| Status::invalid_argument("request is required"))?;
        // the relayed request is for the tenant whose agent this is
        let rec = self
            .inner
            .store
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let timeout = Duration::from_millis(u64::from(inner.timeout_ms.clamp(1, 600_000)));
        let resp = session.call(inner, timeout).await?;
        tracing::debug!(connection = %rec.id, "relayed a request to the Tally agent");
        Ok(Response::new(resp))
    }
}
