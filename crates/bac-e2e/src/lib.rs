//! Test support for black-box tests of the fleet: real Postgres (a fresh database per test),
//! a real Kafka protocol broker (a Tansu process per test, so outage tests can stop it), a real
//! Vault API (OpenBao), the real Odoo sandbox, and the services' own `run` functions on random
//! ports. Nothing here is used by the binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

pub mod conformance;
pub mod golden;
pub mod kafka;
pub mod logs;

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bac_runtime::{Config, Running, ServiceKind};

/// Polls `condition` (every 50 ms) until it holds; false if it still does not after `within`.
/// What a test waits for is the condition, the bound only ends a test that would hang.
pub async fn wait_until<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// A free TCP port on loopback (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether process `pid` holds the socket listening on `port` (Linux: `/proc/net/tcp` and
/// the process's descriptors). Elsewhere it cannot be told and is assumed.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let local = format!(":{port:04X}");
    // Columns: sl, local_address, rem_address, st (0A = LISTEN), ..., inode (10th).
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&local) && *f.get(3)? == "0A")
                .then(|| f.get(9).map(|i| format!("socket:[{i}]")))?
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .is_some_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

fn which(name: &str, env: &str) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in [root.join(".venv/bin"), dirs_home().join(".cargo/bin")] {
        let p = dir.join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    name.to_string()
}

fn dirs_home() -> std::path::PathBuf {
    std::env::var("HOME")
        .map(Into::into)
        .unwrap_or_else(|_| "/root".into())
}

/// Sends `sig` (`-STOP`, `-CONT`) to a child process of the test.
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// A Tansu broker of this test's own (memory storage), killed on drop.
pub struct Tansu {
    pub port: u16,
    child: Option<Child>,
}

impl Tansu {
    /// A broker on a free port. The port is free when chosen, not when Tansu binds it: if
    /// another process took it meanwhile, Tansu exits and a test would talk to whatever
    /// listens there. So the listener must be Tansu's own; otherwise another port is tried.
    pub fn start() -> Tansu {
        for _ in 0..5 {
            if let Some(t) = Self::try_start_on(free_port()) {
                return t;
            }
        }
        panic!("tansu did not start on any of five free ports");
    }

    pub fn start_on(port: u16) -> Tansu {
        Self::try_start_on(port).unwrap_or_else(|| panic!("tansu did not listen on {port}"))
    }

    fn try_start_on(port: u16) -> Option<Tansu> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(which("tansu", "TANSU_BIN"))
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu not found: run scripts/install-deps (or set TANSU_BIN)");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                // It exited: the port was taken after all.
                return None;
            }
            if wait_port(port, Duration::from_millis(200)) && listens(child.id(), port) {
                return Some(Tansu {
                    port,
                    child: Some(child),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the broker and starts an empty one on the same port.
    pub fn restart_empty(&mut self) {
        self.kill();
        let fresh = Tansu::start_on(self.port);
        *self = fresh;
    }

    /// Kills the broker (SIGKILL) and waits for it to be gone; nothing answers on its port.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// The project's SMTP server for development and tests (`scripts/mail_sink.py`, aiosmtpd)
/// on a port of its own, keeping what it accepts in a Maildir of its own; killed on drop.
pub struct MailSink {
    pub port: u16,
    pub maildir: std::path::PathBuf,
    child: Child,
}

impl MailSink {
    /// A sink that requires AUTH as `user` / `password`.
    pub fn start(user: &str, password: &str) -> MailSink {
        Self::start_with(user, password, None)
    }

    /// [`Self::start`], putting the bounces of `+bounce` recipients in `bounces` (a Maildir an
    /// IMAP server serves: [`Dovecot::maildir`]).
    pub fn start_with(user: &str, password: &str, bounces: Option<&std::path::Path>) -> MailSink {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let maildir = std::env::temp_dir().join(format!("bac-mail-{}", uuid::Uuid::new_v4()));
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(which("python3", "BAC_PYTHON"));
            cmd.arg(root.join("scripts/mail_sink.py"))
                .args([
                    "--port",
                    &port.to_string(),
                    "--user",
                    user,
                    "--password",
                    password,
                ])
                .arg("--maildir")
                .arg(&maildir);
            if let Some(b) = bounces {
                cmd.arg("--bounce-maildir").arg(b);
            }
            let mut child = cmd
                .stdout(Stdio::null())
                .spawn()
                .expect("python3 not found: run scripts/install-deps (or set BAC_PYTHON)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if wait_port(port, Duration::from_millis(200)) && listens(child.id(), port) {
                    return MailSink {
                        port,
                        maildir,
                        child,
                    };
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the mail sink did not start (is aiosmtpd installed? scripts/install-deps)");
    }

    /// Every message accepted so far, raw, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.join(d)).ok())
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read(p).ok())
            .collect()
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Dovecot (`scripts/imap-server`: Debian's `dovecot-imapd`) serving one user's Maildir over
/// IMAP on a port of its own, without TLS; killed on drop.
pub struct Dovecot {
    pub port: u16,
    pub maildir: std::path::PathBuf,
    dir: std::path::PathBuf,
    child: Child,
}

impl Dovecot {
    pub fn start(user: &str, password: &str) -> Dovecot {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::temp_dir().join(format!("bac-imap-{}", uuid::Uuid::new_v4()));
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(root.join("scripts/imap-server"))
                .arg(port.to_string())
                .arg(&dir)
                .args([user, password])
                .stdout(Stdio::null())
                .spawn()
                .expect("scripts/imap-server did not start");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if wait_port(port, Duration::from_millis(200)) && listens(child.id(), port) {
                    return Dovecot {
                        port,
                        maildir: dir.join("Maildir"),
                        dir,
                        child,
                    };
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default();
        panic!("dovecot did not start (scripts/install-deps installs it): {log}");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// OpenBao: the one from `BAC_TEST_VAULT_ADDR`/`BAC_TEST_VAULT_TOKEN` (scripts/test starts it),
/// or a dev server of this test's own.
pub struct Vault {
    pub addr: String,
    pub token: String,
    child: Option<Child>,
}

impl Vault {
    pub fn get() -> Vault {
        if let (Ok(addr), Ok(token)) = (
            std::env::var("BAC_TEST_VAULT_ADDR"),
            std::env::var("BAC_TEST_VAULT_TOKEN"),
        ) {
            return Vault {
                addr,
                token,
                child: None,
            };
        }
        Self::start_own()
    }

    /// A dev server of this test's own (one it may freeze).
    pub fn start_own() -> Vault {
        let port = free_port();
        let token = format!("test-{}", uuid::Uuid::new_v4().simple());
        let child = Command::new(which("bao", "BAO_BIN"))
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao not found: run scripts/install-deps (or set BAO_BIN)");
        let addr = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(true) = http_ok(&format!("{addr}/v1/sys/health")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bao dev server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Vault {
            addr,
            token,
            child: Some(child),
        }
    }

    fn signal(&self, sig: &str) {
        let c = self
            .child
            .as_ref()
            .expect("only a Vault of the test's own can be frozen");
        signal(c, sig);
    }

    /// Freezes the server (SIGSTOP): connections open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// The runtime's configuration for this server: token auth, KV v2 at `secret/`, a 30 s
    /// cache that serves up to 120 s through an outage.
    pub fn config(&self) -> bac_runtime::config::VaultConfig {
        bac_runtime::config::VaultConfig {
            addr: self.addr.clone(),
            token: Some(secrecy::SecretString::from(self.token.clone())),
            role_id: None,
            secret_id: None,
            approle_mount: "approle".into(),
            kubernetes_role: None,
            kubernetes_mount: "kubernetes".into(),
            kubernetes_token_path: String::new(),
            mount: "secret".into(),
            cache_ttl: Duration::from_secs(30),
            cache_max_stale: Duration::from_secs(120),
        }
    }

    /// Reads a KV v2 secret's data as JSON (None when absent).
    pub async fn read(&self, path: &str) -> Option<serde_json::Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/secret/data/{path}", self.addr))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            return None;
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        Some(body["data"]["data"].clone())
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True when a plain GET answers 200 (blocking, for start-up polling).
fn http_ok(url: &str) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let url = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = url.split_once('/').unwrap_or((url, ""));
    let mut s = TcpStream::connect(host)?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf)?;
    Ok(buf.ends_with(b"200"))
}

/// A Postgres database of this test's own.
pub async fn fresh_database() -> String {
    let base = std::env::var("BAC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("bac_test_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("postgres not reachable: set BAC_TEST_DATABASE_URL or run scripts/test");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Where a test's services find their infrastructure.
#[derive(Clone)]
pub struct InfraEnv {
    pub database_url: String,
    pub brokers: String,
    pub vault_addr: String,
    pub vault_token: String,
    /// `BAC_UPSTREAM_ALLOW_CIDRS` of the services: the sandbox's range, opened explicitly.
    pub upstream_allow: String,
    /// Further `BAC_*` settings of this test's services.
    pub overrides: HashMap<String, String>,
}

impl InfraEnv {
    /// Where the sandbox of most tests stands.
    pub const LOOPBACK: &'static str = "127.0.0.1/32";

    /// A service config on random loopback ports.
    pub fn config(&self, kind: ServiceKind) -> Config {
        let mut vars: HashMap<&str, String> = HashMap::new();
        vars.insert("BAC_DATABASE_URL", self.database_url.clone());
        vars.insert("BAC_DATABASE_POOL_SIZE", "8".into());
        vars.insert("BAC_KAFKA_BROKERS", self.brokers.clone());
        vars.insert("BAC_VAULT_ADDR", self.vault_addr.clone());
        vars.insert("BAC_VAULT_TOKEN", self.vault_token.clone());
        vars.insert("BAC_GRPC_ADDR", "127.0.0.1:0".into());
        vars.insert("BAC_HTTP_ADDR", "127.0.0.1:0".into());
        vars.insert("BAC_API_ADDR", "127.0.0.1:0".into());
        vars.insert("BAC_UPSTREAM_TIMEOUT_MS", "3000".into());
        vars.insert("BAC_SHUTDOWN_GRACE_SECS", "2".into());
        vars.insert("BAC_UPSTREAM_ALLOW_CIDRS", self.upstream_allow.clone());
        for (k, v) in &self.overrides {
            vars.insert(k.as_str(), v.clone());
        }
        Config::from_lookup(kind, |k| vars.get(k).cloned()).unwrap()
    }
}

/// bac-zoho's settings with every data centre served by the Zoho sandbox at `base`.
pub fn zoho_settings(base: &str) -> bac_zoho::ZohoSettings {
    bac_zoho::ZohoSettings {
        data_center_overrides: bac_zoho::dc::keys()
            .into_iter()
            .map(|k| (k.to_string(), format!("{base}/{k}")))
            .collect(),
        // every run lists ids, so a test sees a deletion at the next run
        reconcile_every: std::time::Duration::ZERO,
        public_url: None,
        push_times: bac_connector::channels::KeeperTimes::from_env(),
    }
}

/// What [`Fleet::start_opts`] starts besides the Odoo path.
#[derive(Default)]
pub struct FleetOptions {
    pub sandbox: bac_sandbox_odoo::OdooSandboxConfig,
    /// Also start the stand-ins of google-workspace, zoho, tally and messaging.
    pub stand_ins: bool,
    /// gRPC URLs the gateway uses instead of the fleet's own (e.g. one that never answers).
    pub service_urls: HashMap<ServiceKind, String>,
    /// Where the sandbox listens and the only range upstream calls may reach (default
    /// 127.0.0.1). Egress tests move it to 127.0.0.2 so that 127.0.0.1 stays closed.
    pub sandbox_ip: Option<std::net::IpAddr>,
    /// A Vault of the test's own (one it may freeze) instead of the shared one.
    pub own_vault: bool,
    /// Further `BAC_*` settings of the services.
    pub env: HashMap<String, String>,
    /// Also start the Zoho sandbox and bac-zoho with every data centre pointed at it.
    pub zoho: bool,
    /// The Zoho sandbox's configuration (custom fields, credits), with `zoho`.
    pub zoho_sandbox: bac_sandbox_zoho::ZohoSandboxConfig,
    /// With `zoho`: the gateway's URL as `BAC_PUBLIC_URL` of bac-zoho, so it opens CRM
    /// notification channels to it, with these pass and renewal times.
    pub zoho_push: Option<bac_connector::channels::KeeperTimes>,
    /// Also start the Google sandbox and bac-google-workspace pointed at it.
    pub google: bool,
    /// With `google`: the gateway's URL as `BAC_PUBLIC_URL` of bac-google-workspace, so it
    /// opens Calendar push channels to it, with these pass and renewal times.
    pub google_push: Option<bac_connector::channels::KeeperTimes>,
    /// Also start bac-messaging with these settings.
    pub messaging: Option<bac_messaging::MessagingSettings>,
    /// Also start the Tally sandbox (TallyPrime's XML server) and bac-tally.
    pub tally: bool,
}

/// The Odoo path of the fleet: Odoo sandbox, bac-odoo, bac-gateway, a tenant and its key.
pub struct Fleet {
    pub infra: InfraEnv,
    pub kafka: Tansu,
    pub vault: Vault,
    pub sandbox_url: String,
    pub odoo: Option<Running>,
    /// The stand-in services started with [`FleetOptions::stand_ins`].
    pub stand_ins: Vec<(ServiceKind, Running)>,
    /// The Zoho sandbox's base URL and bac-zoho, with [`FleetOptions::zoho`].
    pub zoho: Option<(String, Running)>,
    /// The Zoho sandbox's base URL (kept when a test stops bac-zoho).
    pub zoho_url: Option<String>,
    /// The Google sandbox's base URL and bac-google-workspace, with [`FleetOptions::google`].
    pub google: Option<(String, Running)>,
    /// bac-messaging, with [`FleetOptions::messaging`].
    pub messaging: Option<Running>,
    /// The Tally sandbox's address, with [`FleetOptions::tally`].
    pub tally_addr: Option<std::net::SocketAddr>,
    pub gateway: Running,
    pub api: String,
    pub key: String,
    pub tenant: String,
    pub http: reqwest::Client,
}

impl Fleet {
    pub async fn start() -> Fleet {
        Self::start_with(bac_sandbox_odoo::OdooSandboxConfig::default()).await
    }

    /// The fleet with a sandbox of this configuration (users, database).
    pub async fn start_with(sandbox_cfg: bac_sandbox_odoo::OdooSandboxConfig) -> Fleet {
        Self::start_opts(FleetOptions {
            sandbox: sandbox_cfg,
            ..Default::default()
        })
        .await
    }

    /// The fleet as `opts` says.
    /// A fleet with the Tally sandbox and bac-tally.
    pub async fn with_tally() -> Fleet {
        Fleet::start_opts(FleetOptions {
            tally: true,
            ..Default::default()
        })
        .await
    }

    /// The Tally sandbox's base URL (a fleet started with [`FleetOptions::tally`]).
    pub fn tally_url(&self) -> String {
        format!("http://{}", self.tally_addr.expect("a fleet with tally"))
    }

    pub async fn start_opts(opts: FleetOptions) -> Fleet {
        let sandbox_cfg = opts.sandbox;
        let kafka = Tansu::start();
        let vault = if opts.own_vault {
            Vault::start_own()
        } else {
            Vault::get()
        };
        let infra = InfraEnv {
            database_url: fresh_database().await,
            brokers: kafka.brokers(),
            vault_addr: vault.addr.clone(),
            vault_token: vault.token.clone(),
            upstream_allow: match opts.sandbox_ip {
                Some(ip) => format!("{ip}/32"),
                None => InfraEnv::LOOPBACK.into(),
            },
            overrides: opts.env.clone(),
        };
        let sandbox_ip = opts.sandbox_ip.unwrap_or([127, 0, 0, 1].into());
        let (sandbox, _) = bac_sandbox_odoo::spawn_odoo(sandbox_cfg, (sandbox_ip, 0).into())
            .await
            .unwrap();
        let odoo = bac_odoo::run(infra.config(ServiceKind::Odoo))
            .await
            .unwrap();
        let mut urls = bac_gateway::ServiceUrls::from_lookup(|_| None);
        urls.0
            .insert(ServiceKind::Odoo, format!("http://{}", odoo.grpc_addr));
        let mut stand_ins = Vec::new();
        if opts.stand_ins {
            for kind in [
                ServiceKind::GoogleWorkspace,
                ServiceKind::Zoho,
                ServiceKind::Tally,
                ServiceKind::Messaging,
            ] {
                let cfg = infra.config(kind);
                let r = match kind {
                    ServiceKind::GoogleWorkspace => bac_google_workspace::run(cfg).await,
                    ServiceKind::Zoho => bac_zoho::run(cfg).await,
                    ServiceKind::Tally => bac_tally::run(cfg).await,
                    _ => bac_messaging::run(cfg).await,
                }
                .unwrap();
                urls.0.insert(kind, format!("http://{}", r.grpc_addr));
                stand_ins.push((kind, r));
            }
        }
        // The gateway's port is chosen first when bac-zoho must know its URL.
        let gateway_port = opts.zoho_push.or(opts.google_push).map(|_| free_port());
        let zoho = if opts.zoho {
            let (addr, _) = bac_sandbox_zoho::spawn_zoho(
                opts.zoho_sandbox.clone(),
                (sandbox_ip, 0).into(),
                None,
            )
            .await
            .unwrap();
            let base = format!("http://{addr}");
            let mut settings = zoho_settings(&base);
            if let (Some(times), Some(port)) = (opts.zoho_push, gateway_port) {
                settings.public_url = Some(format!("http://127.0.0.1:{port}"));
                settings.push_times = times;
            }
            let running = bac_zoho::run_with(infra.config(ServiceKind::Zoho), settings)
                .await
                .unwrap();
            urls.0
                .insert(ServiceKind::Zoho, format!("http://{}", running.grpc_addr));
            Some((base, running))
        } else {
            None
        };
        let google = if opts.google {
            let (addr, _) = bac_sandbox_google::spawn_google(
                bac_sandbox_google::GoogleSandboxConfig::default(),
                (sandbox_ip, 0).into(),
            )
            .await
            .unwrap();
            let base = format!("http://{addr}");
            let mut settings = bac_google_workspace::GoogleSettings {
                hosts: bac_google_workspace::client::Hosts {
                    base: Some(base.clone()),
                },
                public_url: None,
                push_times: bac_connector::channels::KeeperTimes::from_env(),
            };
            if let (Some(times), Some(port)) = (opts.google_push, gateway_port) {
                settings.public_url = Some(format!("http://127.0.0.1:{port}"));
                settings.push_times = times;
            }
            let running = bac_google_workspace::run_with(
                infra.config(ServiceKind::GoogleWorkspace),
                settings,
            )
            .await
            .unwrap();
            urls.0.insert(
                ServiceKind::GoogleWorkspace,
                format!("http://{}", running.grpc_addr),
            );
            Some((base, running))
        } else {
            None
        };
        let messaging = match opts.messaging {
            Some(retry) => {
                let running = bac_messaging::run_with(infra.config(ServiceKind::Messaging), retry)
                    .await
                    .unwrap();
                urls.0.insert(
                    ServiceKind::Messaging,
                    format!("http://{}", running.grpc_addr),
                );
                Some(running)
            }
            None => None,
        };
        let tally_addr = match opts.tally {
            true => Some(
                bac_sandbox_tally::spawn_tally(
                    bac_sandbox_tally::TallySandboxConfig::default(),
                    (sandbox_ip, 0).into(),
                )
                .await
                .unwrap()
                .0,
            ),
            false => None,
        };
        if opts.tally {
            let running = bac_tally::run(infra.config(ServiceKind::Tally))
                .await
                .unwrap();
            urls.0
                .insert(ServiceKind::Tally, format!("http://{}", running.grpc_addr));
            stand_ins.push((ServiceKind::Tally, running));
        }
        urls.0.extend(opts.service_urls);
        let mut gateway_cfg = infra.config(ServiceKind::Gateway);
        if let Some(port) = gateway_port {
            gateway_cfg.api_addr = ([127, 0, 0, 1], port).into();
        }
        let gateway = bac_gateway::run_with(gateway_cfg, urls).await.unwrap();
        let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let pool = bac_runtime::db::pool(&infra.database_url, "gateway", 2).unwrap();
        let key = bac_gateway::admin::bootstrap(
            &pool,
            &bac_gateway::admin::Bootstrap {
                tenant: tenant.clone(),
                tenant_name: "Test tenant".into(),
                email: "admin@test.local".into(),
                role: bac_gateway::auth::Role::SuperAdmin,
            },
        )
        .await
        .unwrap();
        Fleet {
            api: format!("http://{}", gateway.api_addr.unwrap()),
            infra,
            kafka,
            vault,
            sandbox_url: format!("http://{sandbox}"),
            odoo: Some(odoo),
            stand_ins,
            zoho_url: zoho.as_ref().map(|z| z.0.clone()),
            zoho,
            google,
            messaging,
            tally_addr,
            gateway,
            key,
            tenant,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs `body` to a sandbox's (admin) route, which must succeed; its JSON answer (null
    /// when it has none).
    pub async fn sandbox_post(&self, url: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.http.post(url).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// A sandbox's (admin) route's JSON answer.
    pub async fn sandbox_get(&self, url: &str) -> serde_json::Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The connection's webhook URL with a new token in its query: what an upstream is
    /// given as its request URL (Slack's, a bot's messaging endpoint, a Chat app's).
    pub async fn webhook_url(&self, conn: &str) -> String {
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/integrations/connections/{conn}/webhook-token?form=query"),
                None,
            )
            .await;
        assert_eq!(status, 201, "{created}");
        format!(
            "{}{}",
            self.api,
            created["webhook_url_with_token"].as_str().unwrap()
        )
    }

    /// `(status, body)` of a JSON call with another key.
    pub async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        // An empty body (204) is `null`.
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"))
        };
        (status, json)
    }

    /// A new tenant of this fleet, with a super admin; that admin's key.
    pub async fn other_tenant_key(&self) -> String {
        let pool = bac_runtime::db::pool(&self.infra.database_url, "gateway", 1).unwrap();
        bac_gateway::admin::bootstrap(
            &pool,
            &bac_gateway::admin::Bootstrap {
                tenant: format!("o{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                tenant_name: "Other tenant".into(),
                email: "admin@other.local".into(),
                role: bac_gateway::auth::Role::SuperAdmin,
            },
        )
        .await
        .unwrap()
    }

    /// Creates a user with `role` in the fleet's tenant and returns (user id, their key).
    pub async fn user_with_key(&self, role: &str) -> (String, String) {
        let email = format!("{}-{}@test.local", role, uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/users",
                Some(serde_json::json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        let id = user["id"].as_str().unwrap().to_string();
        let (status, key) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                Some(serde_json::json!({"user_id": id, "name": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        (id, key["key"].as_str().unwrap().to_string())
    }

    /// `(status, body)` of a JSON call with the fleet's super-admin key.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call_as(&self.key, method, path, body).await
    }

    /// Creates an Odoo connection to the sandbox (or `url`) with `password`.
    /// Connects the tenant to the Zoho sandbox's data centre `dc` as a self-client (a
    /// refresh token an administrator pasted, granted `scope`), with `config` merged into
    /// the settings; the connection id.
    pub async fn connect_zoho(&self, dc: &str, scope: &str, config: serde_json::Value) -> String {
        let zoho = self.zoho_url.as_ref().expect("a fleet with zoho");
        let n = uuid::Uuid::new_v4().simple().to_string();
        let client_id = format!("1000.{}", &n[..10]);
        let refresh = format!("1000.rt.{n}");
        let status = self
            .http
            .post(format!("{zoho}/{dc}/_sandbox/oauth/grants"))
            .json(
                &serde_json::json!({"client_id": client_id, "client_secret": "s3cret",
                                      "refresh_token": refresh, "scope": scope}),
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
        let mut settings = serde_json::json!({"data_center": dc, "client_id": client_id});
        if let Some(extra) = config.as_object() {
            for (k, v) in extra {
                settings[k] = v.clone();
            }
        }
        let (status, conn) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/integrations/connections",
                Some(serde_json::json!({"integration": "zoho", "name": format!("Zoho {}", &n[..6]),
                    "config": settings, "credentials": {"client_secret": "s3cret", "refresh_token": refresh}})),
            )
            .await;
        assert_eq!(status, 201, "{conn}");
        conn["id"].as_str().unwrap().to_string()
    }

    /// Connects the tenant to the Google sandbox with a service account (domain-wide
    /// delegation over `example.com`, acting as `admin@example.com` unless `config` says),
    /// granted `scopes`, with `config` merged into the settings; the connection id.
    pub async fn connect_google(&self, scopes: &[&str], config: serde_json::Value) -> String {
        let google = &self.google.as_ref().expect("a fleet with google").0;
        let n = uuid::Uuid::new_v4().simple().to_string();
        let email = format!("sync-{}@project.iam.gserviceaccount.com", &n[..8]);
        let status = self
            .http
            .post(format!("{google}/_sandbox/oauth/accounts"))
            .json(&serde_json::json!({"client_email": email,
                "public_key_pem": include_str!("../tests/keys/service-account-test.pub.pem"),
                "scopes": scopes}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
        let key = serde_json::json!({"type": "service_account", "project_id": "bac-test",
            "private_key_id": &n[..16], "client_email": email,
            "private_key": include_str!("../tests/keys/service-account-test.pem"),
            "token_uri": format!("{google}/token")});
        let mut settings = serde_json::json!({"domain": "example.com", "subject": "admin@example.com",
            "scopes": scopes});
        if let Some(extra) = config.as_object() {
            for (k, v) in extra {
                settings[k] = v.clone();
            }
        }
        let (status, conn) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/integrations/connections",
                Some(serde_json::json!({"integration": "google-workspace",
                    "name": format!("Workspace {}", &n[..6]), "config": settings,
                    "credentials": {"service_account_json": key.to_string()}})),
            )
            .await;
        assert_eq!(status, 201, "{conn}");
        conn["id"].as_str().unwrap().to_string()
    }

    /// An access token of a Zoho user of data centre `dc` (their own app, not the fleet's),
    /// for acting on the sandbox as Zoho's users do.
    pub async fn zoho_user_token(&self, dc: &str) -> String {
        let zoho = self.zoho_url.as_ref().expect("a fleet with zoho");
        let n = uuid::Uuid::new_v4().simple().to_string();
        let (client_id, refresh) = (format!("1000.user{}", &n[..8]), format!("1000.urt.{n}"));
        let status = self
            .http
            .post(format!("{zoho}/{dc}/_sandbox/oauth/grants"))
            .json(&serde_json::json!({"client_id": client_id, "client_secret": "u",
                "refresh_token": refresh, "scope": "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.org.READ,ZohoCRM.users.READ"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
        let answer: serde_json::Value = self
            .http
            .post(format!("{zoho}/{dc}/oauth/v2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", "u"),
                ("refresh_token", refresh.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    pub async fn connect_odoo(
        &self,
        url: Option<&str>,
        password: &str,
    ) -> (u16, serde_json::Value) {
        let url = url.unwrap_or(&self.sandbox_url);
        self.call(
            reqwest::Method::POST,
            "/api/v1/integrations/connections",
            Some(serde_json::json!({
                "integration": "odoo",
                "name": "Odoo sandbox",
                "config": {"url": url, "database": "demo", "username": "admin"},
                "credentials": {"password": password},
            })),
        )
        .await
    }

    /// A connection to the sandbox with the admin's API key (JSON-2 on an Odoo 19 sandbox).
    pub async fn connect_odoo_with_api_key(&self) -> (u16, serde_json::Value) {
        self.call(
            reqwest::Method::POST,
            "/api/v1/integrations/connections",
            Some(serde_json::json!({
                "integration": "odoo",
                "name": "Odoo 19",
                "config": {"url": self.sandbox_url, "database": "demo", "username": "admin"},
                "credentials": {"api_key": bac_sandbox_odoo::DEFAULT_API_KEY},
            })),
        )
        .await
    }

    pub async fn create_lead(
        &self,
        name: &str,
        connection: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let path = match connection {
            Some(c) => format!("/api/v1/odoo/crm/leads?connection_id={c}"),
            None => "/api/v1/odoo/crm/leads".to_string(),
        };
        self.call(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({
                "name": name,
                "partner_name": "Acme Corp",
                "email": "contact@acmecorp.com",
                "phone": "+1-555-0123",
                "expected_revenue": 50000,
                "priority": "high",
            })),
        )
        .await
    }

    /// Creates records in the sandbox (`POST /_sandbox/odoo/seed`: `model`, `count`, and
    /// optionally `values` and `write_date`).
    pub async fn seed_with(&self, body: serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}/_sandbox/odoo/seed", self.sandbox_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(
            status,
            200,
            "seeding {body}: {}",
            resp.text().await.unwrap()
        );
    }

    /// Creates `count` records of `model` in the sandbox.
    pub async fn seed(&self, model: &str, count: u64) {
        self.seed_with(serde_json::json!({"model": model, "count": count}))
            .await;
    }

    /// `model.method(*args, **kwargs)` on the sandbox as admin, as any Odoo client would call
    /// it (JSON-RPC `object.execute_kw`); its result.
    pub async fn odoo_rpc(
        &self,
        model: &str,
        method: &str,
        args: serde_json::Value,
        kwargs: serde_json::Value,
    ) -> serde_json::Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["demo", 2, "admin", model, method, args, kwargs]}});
        let resp: serde_json::Value = self
            .http
            .post(format!("{}/jsonrpc", self.sandbox_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(resp.get("error").is_none(), "{resp}");
        resp["result"].clone()
    }

    /// Waits until the odoo outbox (single events and batch rows) has no unpublished rows.
    pub async fn wait_outbox_drained(&self, within: Duration) -> bool {
        let db = connect(&self.infra.database_url).await;
        wait_until(within, || async {
            db.query_one(
                "SELECT (SELECT count(*) FROM odoo.outbox
                          WHERE published_at IS NULL AND parked_at IS NULL)
                      + (SELECT count(*) FROM odoo.outbox_batches
                          WHERE published_at IS NULL AND parked_at IS NULL)",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 0
        })
        .await
    }
}

/// The bound address of a running service's admin HTTP server.
pub fn admin_url(r: &Running, path: &str) -> String {
    let a: SocketAddr = r.http_addr;
    format!("http://{a}{path}")
}
