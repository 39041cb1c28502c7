//! `bac-messaging` will connect tenants to messaging (email over SMTP/IMAP, Slack, Microsoft Teams, Google Chat, signed outbound webhooks).
//!
//! Its domain is not built yet: the process is real (migrations, gRPC health and reflection,
//! `/healthz`, `/readyz`, `/metrics`) and its `IntegrationService` answers `UNIMPLEMENTED`.
use bac_runtime::{Config, Running, ServiceKind};

/// Starts bac-messaging (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    bac_runtime::not_built::run(ServiceKind::Messaging, config).await
}
