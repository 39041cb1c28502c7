//! `bac-zoho` will connect tenants to Zoho (CRM, Books, Desk, People, Inventory, Mail).
//!
//! Its domain is not built yet: the process is real (migrations, gRPC health and reflection,
//! `/healthz`, `/readyz`, `/metrics`) and its `IntegrationService` answers `UNIMPLEMENTED`.
//! Built so far: [`dc`], Zoho's data centres and their hosts.
pub mod dc;

use bac_runtime::{Config, Running, ServiceKind};

/// Starts bac-zoho (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    bac_runtime::not_built::run(ServiceKind::Zoho, config).await
}
