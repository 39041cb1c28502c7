//! The sandbox kit: what every provider's sandbox shares, so a provider crate holds only its
//! provider's API. [`oauth`] is an OAuth 2.0 authorisation server (refresh-token and
//! JWT-bearer grants, forced expiry, revocation, counters) that a provider mounts at its own
//! token path; [`clock`] is the time the sandbox answers with, moved by tests instead of
//! waiting. Admin routes live under `/_sandbox/...`, never under a provider's own paths.
pub mod clock;
pub mod oauth;

pub use clock::SandboxClock;
pub use oauth::{OAuthConfig, OAuthServer};
