//! Integration tests: the Odoo sandbox spawned on port 0 and driven over HTTP
//! with JSON-RPC requests, as an external Odoo client would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jsonrpc;
mod support;
mod web;
