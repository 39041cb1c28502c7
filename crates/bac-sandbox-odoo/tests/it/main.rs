//! Integration tests: the Odoo sandbox spawned on port 0 and driven over HTTP
//! with JSON-RPC and JSON-2 requests, as an external Odoo client would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod faults;
mod json2;
mod jsonrpc;
mod models;
mod seeding;
mod support;
mod web;
