//! `bac-sandbox`: local servers that speak each provider's real wire protocol, so
//! the BAC fleet runs without SaaS accounts. Each provider has its own module; the
//! Odoo sandbox ([`odoo`]) implements Odoo's external APIs as of 17, 18 and 19:
//! JSON-RPC (`/jsonrpc` services `common`, `db` and `object`, plus the web
//! client's session and `call_kw` endpoints used by clients such as `odoorpc`)
//! and, in 19 mode, the External JSON-2 API (`/json/2/<model>/<method>`), on an
//! in-memory, generic record store (CRM, partners, sales, invoices, products,
//! stock, employees) with Odoo's error shapes, domains, ordering and
//! `write_date` semantics, plus seeding and fault injection for tests.

pub mod odoo;

pub use odoo::{router, spawn_odoo, OdooSandboxConfig};
