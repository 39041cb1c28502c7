//! Black-box tests of the fleet against real Postgres, Kafka (Tansu), Vault (OpenBao) and the
//! Odoo sandbox. Run with `scripts/test` (or `cargo nextest run -p bac-e2e` with the tools
//! installed by `scripts/install-deps`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod access;
mod audit_feed;
mod bad_input;
mod catalog;
mod command_rejects;
mod conflict_leases;
mod conformance_google;
mod conformance_odoo;
mod conformance_tally;
mod conformance_zoho;
mod connection_updates;
mod connections_crud;
mod dashboard;
mod egress;
mod event_contract;
mod fairness;
mod fleet_health;
mod fleet_rate_limits;
mod gateway_edge;
mod google_workspace;
mod grpc_edge;
mod lead_path;
mod messaging_chat;
mod messaging_chat_app;
mod messaging_email;
mod messaging_slack;
mod messaging_teams_bot;
mod messaging_webhooks;
mod oauth_flow;
mod odoo_domain;
mod odoo_fidelity;
mod odoo_json2;
mod outage;
mod parked_events;
mod partitions;
mod rest_contract;
mod retention;
mod runtime;
mod secrets;
mod sync_engine;
mod tally_agent;
mod tally_configuration;
mod tally_sync;
mod tokens;
mod unauthenticated;
mod users_lifecycle;
mod vault_outage;
mod zoho_apps;
mod zoho_connect;
mod zoho_credits;
mod zoho_crm;
mod zoho_notifications;
