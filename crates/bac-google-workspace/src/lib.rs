//! `bac-google-workspace` will connect tenants to Google Workspace (Gmail, Calendar, Drive, Docs, Sheets, Admin Directory).
//!
//! Its domain is not built yet: the process is real (migrations, gRPC health and reflection,
//! `/healthz`, `/readyz`, `/metrics`) and its `IntegrationService` answers `UNIMPLEMENTED`.
use bac_runtime::{Config, Running, ServiceKind};

/// Starts bac-google-workspace (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    bac_runtime::not_built::run(ServiceKind::GoogleWorkspace, config).await
}
