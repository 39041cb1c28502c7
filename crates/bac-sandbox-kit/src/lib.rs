//! The sandbox kit: what every provider's sandbox shares, so a provider crate holds only its
//! provider's API. [`oauth`] is an OAuth 2.0 authorisation server (refresh-token and
//! JWT-bearer grants, forced expiry, revocation, counters) that a provider mounts at its own
//! token path; [`faults`] are fault rules (slow, 429/5xx, expired credentials, lost answers)
//! and call counts on any provider's calls; [`records`] is a record table with modification
//! times and tombstones for REST providers; [`webhooks`] signs and posts webhooks the
//! providers' ways; [`issuer`] signs JWTs and publishes its keys (JWKS, OpenID metadata) as
//! the Bot Framework and Google do for the requests they send; [`clock`] is the time the sandbox answers with, moved by tests instead of
//! waiting. Admin routes live under `/_sandbox/...`, never under a provider's own paths.
pub mod clock;
pub mod faults;
pub mod issuer;
pub mod oauth;
pub mod records;
pub mod webhooks;

pub use clock::SandboxClock;
pub use oauth::{OAuthConfig, OAuthServer};
pub use records::{RecordTable, Stored};

/// Resolves on SIGTERM or Ctrl-C. The sandbox links none of the fleet's runtime (no Kafka,
/// Postgres or Vault client), so it waits for signals itself.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
