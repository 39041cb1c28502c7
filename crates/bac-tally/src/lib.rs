//! `bac-tally` will connect tenants to TallyPrime / Tally.ERP 9 (ledgers, vouchers, stock items over Tally's XML API).
//!
//! Its domain is not built yet: the process is real (migrations, gRPC health and reflection,
//! `/healthz`, `/readyz`, `/metrics`) and its `IntegrationService` answers `UNIMPLEMENTED`.
use bac_runtime::{Config, Running, ServiceKind};

/// Starts bac-tally (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    bac_runtime::not_built::run(ServiceKind::Tally, config).await
}
