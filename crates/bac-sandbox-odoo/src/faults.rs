//! Fault injection for the Odoo sandbox, on the sandbox kit's rules
//! ([`bac_sandbox_kit::faults`]): Odoo's calls are described by the API they came through
//! ([`Protocol`]), the model and the method; failures are rendered as Odoo and the nginx in
//! front of it answer (`failure_response` in the crate root), and `session_expired` drops the
//! web session (JSON-RPC error 100), answers a `/json/2` call 401 "Invalid apikey", and a
//! `/jsonrpc` call AccessDenied. Admin routes: `/_sandbox/odoo/faults`, `/_sandbox/odoo/calls`.

pub use bac_sandbox_kit::faults::{Call, Decision, Failure, FaultSpec, Faults, Rule};

/// The API a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /jsonrpc`.
    Jsonrpc,
    /// `POST /json/2/<model>/<method>` (Odoo 19+).
    Json2,
    /// The web client's routes (`/web/session/*`, `/web/dataset/call_kw`).
    Web,
}

/// What fault rules may name as `protocol`.
pub const PROTOCOLS: &[&str] = &["jsonrpc", "json2", "web"];

impl Protocol {
    /// The name used in rules and call counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Jsonrpc => "jsonrpc",
            Protocol::Json2 => "json2",
            Protocol::Web => "web",
        }
    }
}
