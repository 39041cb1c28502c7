//! `bac-sandbox` binary: serves the provider sandboxes (each its own crate: Odoo's is
//! `bac-sandbox-odoo`) until SIGTERM or Ctrl-C.
//!
//! Environment: `BAC_SANDBOX_ODOO_ADDR` (default `0.0.0.0:7001`),
//! `BAC_SANDBOX_ODOO_DB` (`demo`), `BAC_SANDBOX_ODOO_LOGIN` / `BAC_SANDBOX_ODOO_PASSWORD`
//! (`admin` / `admin`), `BAC_SANDBOX_ODOO_API_KEY` (the user's API key for `/json/2`
//! and `/jsonrpc`, `sandbox-api-key`), `BAC_SANDBOX_ODOO_VERSION` (`17.0`; `19.0`
//! serves the JSON-2 API), `BAC_SANDBOX_ODOO_SEED` (records created at start, e.g.
//! `crm.lead=1000,res.partner=100`), `BAC_SANDBOX_ODOO_CUSTOM_FIELDS`
//! (`model:x_field,...`: custom Char fields an administrator added), `BAC_SANDBOX_ODOO_STOCK` (`1`; `0`: a database without
//! the Inventory app), `BAC_SANDBOX_GOOGLE_ADDR` (unset: no Google Workspace sandbox),
//! `BAC_SANDBOX_ZOHO_ADDR` (unset: no Zoho sandbox; dev-up uses
//! `127.0.0.1:7002`) and `BAC_SANDBOX_ZOHO_URL` (the URL clients reach it at),
//! `BAC_SANDBOX_SLACK_ADDR` (unset: no Slack sandbox; dev-up uses `127.0.0.1:7006`) and
//! `BAC_SANDBOX_SLACK_URL` (where its `response_url`s point), `BAC_SANDBOX_TEAMS_ADDR` (unset:
//! no Teams sandbox; dev-up uses `127.0.0.1:7007`) and `BAC_SANDBOX_TEAMS_URL`,
//! `BAC_SANDBOX_TALLY_ADDR` (unset: no Tally sandbox; dev-up uses `127.0.0.1:9000`, Tally's
//! own port), `RUST_LOG` (`info`).

use std::net::SocketAddr;

use anyhow::Context as _;
use bac_sandbox_odoo::models::parse_custom_fields;
use bac_sandbox_odoo::seed::parse_seed_spec;
use bac_sandbox_odoo::{spawn_odoo, OdooSandboxConfig, DEFAULT_API_KEY};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let addr: SocketAddr = env_or("BAC_SANDBOX_ODOO_ADDR", "0.0.0.0:7001")
        .parse()
        .context("BAC_SANDBOX_ODOO_ADDR must be host:port")?;
    let login = env_or("BAC_SANDBOX_ODOO_LOGIN", "admin");
    let seed = parse_seed_spec(&env_or("BAC_SANDBOX_ODOO_SEED", ""))
        .map_err(|e| anyhow::anyhow!("BAC_SANDBOX_ODOO_SEED: {e}"))?;
    let cfg = OdooSandboxConfig {
        database: env_or("BAC_SANDBOX_ODOO_DB", "demo"),
        users: vec![(login.clone(), env_or("BAC_SANDBOX_ODOO_PASSWORD", "admin"))],
        server_version: env_or("BAC_SANDBOX_ODOO_VERSION", "17.0"),
        api_keys: vec![(env_or("BAC_SANDBOX_ODOO_API_KEY", DEFAULT_API_KEY), login)],
        seed,
        stock: env_or("BAC_SANDBOX_ODOO_STOCK", "1") != "0",
        custom_fields: parse_custom_fields(&env_or("BAC_SANDBOX_ODOO_CUSTOM_FIELDS", ""))
            .map_err(|e| anyhow::anyhow!("BAC_SANDBOX_ODOO_CUSTOM_FIELDS: {e}"))?,
    };
    let (database, login, version) = (
        cfg.database.clone(),
        cfg.users[0].0.clone(),
        cfg.server_version.clone(),
    );
    let (bound, mut server) = spawn_odoo(cfg, addr).await?;
    // the password is never logged
    tracing::info!(addr = %bound, %database, %login, %version, "bac-sandbox odoo listening");
    // Zoho only when asked for: several sandboxes (tests) may run on one machine
    let mut zoho = match std::env::var("BAC_SANDBOX_ZOHO_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(a) => {
            let zaddr: SocketAddr = a
                .parse()
                .context("BAC_SANDBOX_ZOHO_ADDR must be host:port")?;
            let public = std::env::var("BAC_SANDBOX_ZOHO_URL")
                .ok()
                .filter(|v| !v.trim().is_empty());
            let (zbound, task) = bac_sandbox_zoho::spawn_zoho(
                bac_sandbox_zoho::ZohoSandboxConfig::default(),
                zaddr,
                public,
            )
            .await?;
            tracing::info!(addr = %zbound, "bac-sandbox zoho listening");
            Some(task)
        }
        None => None,
    };

    let mut google = match std::env::var("BAC_SANDBOX_GOOGLE_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(a) => {
            let gaddr: SocketAddr = a
                .parse()
                .context("BAC_SANDBOX_GOOGLE_ADDR must be host:port")?;
            let (gbound, task) = bac_sandbox_google::spawn_google(
                bac_sandbox_google::GoogleSandboxConfig::default(),
                gaddr,
            )
            .await?;
            tracing::info!(addr = %gbound, "bac-sandbox google listening");
            Some(task)
        }
        None => None,
    };

    let mut slack = match std::env::var("BAC_SANDBOX_SLACK_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(a) => {
            let saddr: SocketAddr = a
                .parse()
                .context("BAC_SANDBOX_SLACK_ADDR must be host:port")?;
            let public = std::env::var("BAC_SANDBOX_SLACK_URL")
                .ok()
                .filter(|v| !v.trim().is_empty());
            let (sbound, _, task) = bac_sandbox_slack::spawn_slack(
                bac_sandbox_slack::SlackSandboxConfig::default(),
                saddr,
                public,
            )
            .await?;
            tracing::info!(addr = %sbound, "bac-sandbox slack listening");
            Some(task)
        }
        None => None,
    };

    let mut teams = match std::env::var("BAC_SANDBOX_TEAMS_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(a) => {
            let taddr: SocketAddr = a
                .parse()
                .context("BAC_SANDBOX_TEAMS_ADDR must be host:port")?;
            let public = std::env::var("BAC_SANDBOX_TEAMS_URL")
                .ok()
                .filter(|v| !v.trim().is_empty());
            let (tbound, task) = bac_sandbox_teams::spawn_teams(taddr, public).await?;
            tracing::info!(addr = %tbound, "bac-sandbox teams listening");
            Some(task)
        }
        None => None,
    };

    let mut tally = match std::env::var("BAC_SANDBOX_TALLY_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(a) => {
            let taddr: SocketAddr = a
                .parse()
                .context("BAC_SANDBOX_TALLY_ADDR must be host:port")?;
            let (tbound, task) = bac_sandbox_tally::spawn_tally(
                bac_sandbox_tally::TallySandboxConfig::default(),
                taddr,
            )
            .await?;
            tracing::info!(addr = %tbound, "bac-sandbox tally listening");
            Some(task)
        }
        None => None,
    };

    tokio::select! {
        () = bac_sandbox_kit::shutdown_signal() => {
            tracing::info!("bac-sandbox shutting down");
            server.abort();
            if let Some(z) = zoho.take() {
                z.abort();
            }
            if let Some(g) = google.take() {
                g.abort();
            }
            if let Some(s) = slack.take() {
                s.abort();
            }
            if let Some(t) = teams.take() {
                t.abort();
            }
            if let Some(t) = tally.take() {
                t.abort();
            }
        }
        res = &mut server => {
            if let Err(e) = res {
                anyhow::bail!("odoo sandbox server task failed: {e}");
            }
        }
    }
    Ok(())
}
