//! `bac-sandbox`: local servers that speak each provider's real wire protocol, so
//! the BAC fleet runs without SaaS accounts. Each provider has its own module; the
//! Odoo sandbox ([`odoo`]) implements Odoo 17's external JSON-RPC API (`/jsonrpc`
//! services `common`, `db` and `object`, plus the web client's session and
//! `call_kw` endpoints used by clients such as `odoorpc`) on an in-memory,
//! generic record store, with Odoo's error shapes, domains and ordering.

pub mod odoo;

pub use odoo::{router, spawn_odoo, OdooSandboxConfig};
