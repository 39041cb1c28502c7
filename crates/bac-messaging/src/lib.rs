//! `bac-messaging` connects tenants to the ways people are told things: email (SMTP with
//! templates and delivery states, bounces over IMAP), Microsoft Teams and Google Chat through
//! incoming webhooks, Slack (bot token or OAuth v2, the Events API and slash commands), and
//! signed webhooks to subscribers (docs/messaging.md).
//!
//! [`connector`]: the kit's `IntegrationService` part (a connection per channel; the SMTP login
//! test). [`smtp`]: the one way mail leaves (egress-checked address, TLS, lettre; answers sorted
//! into sent / try again / give up). [`templates`]: versioned templates rendered with
//! minijinja. [`deliveries`]: where a send becomes a row and its `bac.messaging.delivery.v1`
//! events, and the worker that sends. [`api`]: `bac.messaging.v1.MessagingService`.
//! [`commands`]: send requests from other services on `bac.messaging.commands.v1`.
//! [`imap`]: reads the connections' mailboxes; [`dsn`]: where a bounce there is read.
//! [`webhooks`]: the tenant's events, signed (Standard Webhooks), posted to subscribers.
//! [`chat`]: Teams and Google Chat messages through their incoming webhooks.
//! [`slack`]: Slack's Web API, and where a Slack event or slash command becomes an event.
//! [`teams_bot`]: a Teams bot through the Bot Framework (activities in, replies out).
//! [`chat_app`]: a Google Chat app's events, verified.
pub mod api;
pub mod chat;
pub mod chat_app;
pub mod commands;
pub mod connector;
pub mod deliveries;
pub mod dsn;
pub mod imap;
mod inbound;
mod schedule;
pub mod slack;
pub mod smtp;
pub mod teams_bot;
pub mod templates;
pub mod webhooks;

use std::sync::{Arc, OnceLock};

use bac_proto::{
    integration::v1::integration_service_server::IntegrationServiceServer,
    messaging::v1::messaging_service_server::MessagingServiceServer,
};
use bac_runtime::{
    connections, db::Migration, Config, ErrorCode, Running, Runtime, ServiceError, ServiceKind,
    ServiceSpec,
};
use tonic::service::Routes;

pub(crate) fn bad(msg: impl Into<String>) -> ServiceError {
    err(ErrorCode::InvalidRequest, msg)
}

/// messaging's error of `code`.
pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> ServiceError {
    ServiceError::new("messaging", code, msg)
}

/// Our own storage failed: an internal error (retried where the caller retries).
pub(crate) fn db_err(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal("messaging", format!("postgres: {e}"))
}

/// The kit's tables, then messaging's own.
pub fn migrations() -> &'static [Migration] {
    static ALL: OnceLock<Vec<Migration>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = bac_connector::MIGRATIONS.to_vec();
        all.push(Migration {
            name: "messaging_0001_templates_deliveries",
            sql: include_str!("../migrations/0001_templates_deliveries.sql"),
        });
        all.push(Migration {
            name: "messaging_0002_imap_cursors",
            sql: include_str!("../migrations/0002_imap_cursors.sql"),
        });
        all.push(Migration {
            name: "messaging_0003_webhooks",
            sql: include_str!("../migrations/0003_webhooks.sql"),
        });
        all.push(Migration {
            name: "messaging_0004_chat_payload",
            sql: include_str!("../migrations/0004_chat_payload.sql"),
        });
        all.push(Migration {
            name: "messaging_0005_slack",
            sql: include_str!("../migrations/0005_slack.sql"),
        });
        all.push(Migration {
            name: "messaging_0006_bot_conversations",
            sql: include_str!("../migrations/0006_bot_conversations.sql"),
        });
        all
    })
}

/// Every topic bac-messaging publishes to (declared at start).
pub fn topics() -> Vec<String> {
    vec![
        deliveries::TOPIC.into(),
        deliveries::REPLY_TOPIC.into(),
        commands::TOPIC.into(),
        slack::EVENT_TOPIC.into(),
        slack::COMMAND_TOPIC.into(),
        teams_bot::ACTIVITY_TOPIC.into(),
        chat_app::EVENT_TOPIC.into(),
        bac_sync::SYNC_RUN_TOPIC.into(),
        bac_sync::CONFLICT_TOPIC.into(),
        bac_connector::tokens::AUDIT_TOPIC.to_string(),
    ]
}

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Messaging,
        migrations: migrations(),
        topics: topics(),
        grpc_services: vec![
            "bac.integration.v1.IntegrationService",
            "bac.messaging.v1.MessagingService",
        ],
    }
}

/// Starts bac-messaging (listeners from `config`, port 0 allowed) and serves until shut down.
pub async fn run(config: Config) -> anyhow::Result<Running> {
    run_with(config, MessagingSettings::from_env()).await
}

/// What bac-messaging reads besides [`Config`].
#[derive(Debug, Clone)]
pub struct MessagingSettings {
    /// How deliveries are retried (`BAC_MESSAGING_RETRY_*`, `BAC_MESSAGING_MAX_ATTEMPTS`).
    pub retry: deliveries::RetryOptions,
    /// How often mailboxes are read for bounces (`BAC_MESSAGING_IMAP_POLL_SECS`).
    pub imap_every: std::time::Duration,
    /// How webhooks to subscribers are retried (`BAC_WEBHOOK_*`).
    pub webhooks: webhooks::sender::SenderOptions,
    /// Where Slack is (`BAC_SLACK_URL`, default `https://slack.com`; tests and dev-up point it
    /// at the Slack sandbox).
    pub slack_url: String,
    /// Where the Bot Framework is (`BAC_BOTFRAMEWORK_*`).
    pub botframework: teams_bot::BotFrameworkSettings,
    /// Where Google publishes the keys of Chat's tokens (`BAC_GOOGLE_CHAT_JWKS_URL`).
    pub google_chat_jwks_url: String,
}

impl MessagingSettings {
    pub fn from_env() -> Self {
        MessagingSettings {
            retry: deliveries::RetryOptions::from_env(),
            imap_every: imap::every_from_env(),
            webhooks: webhooks::sender::SenderOptions::from_env(),
            slack_url: slack::SlackApi::url_from_env(),
            botframework: teams_bot::BotFrameworkSettings::from_env(),
            google_chat_jwks_url: chat_app::jwks_url_from_env(),
        }
    }
}

/// [`run`] with its settings given (tests shorten the retry schedule and the mailbox interval).
pub async fn run_with(config: Config, settings: MessagingSettings) -> anyhow::Result<Running> {
    let smtp = smtp::Smtp::new(config.upstream_egress.clone(), config.upstream_timeout);
    let rt = Runtime::start(config, spec()).await?;
    let store = connections::ConnectionStore::new(rt.db.clone(), rt.vault.clone(), "messaging")
        .bind_credentials_to(&[
            "smtp_host",
            "imap_host",
            "username",
            "client_id",
            "team_id",
            "app_id",
        ]);
    let calls = bac_connector::Calls::new(rt.db.clone(), "messaging", "Messaging");
    // no entity syncs yet: the kit's status, runs and settings still read the engine
    let engine = bac_sync::SyncEngine::new(
        rt.db.clone(),
        "messaging",
        store.clone(),
        Vec::new(),
        bac_sync::SyncOptions::from_env("messaging"),
    );
    // Slack's authorisation codes are redeemed with it, a Teams bot's tokens minted
    let tokens = bac_connector::TokenSource::new(
        "messaging",
        "Messaging",
        rt.db.clone(),
        rt.vault.clone(),
        bac_runtime::upstream::UpstreamClient::new(
            "messaging-oauth",
            None,
            bac_runtime::upstream::RetryPolicy::default(),
            rt.config.upstream_egress.clone(),
        ),
        calls.clone(),
        connector::MessagingGrant {
            botframework: settings.botframework.clone(),
        },
    );
    let bot = teams_bot::Bot::new(
        &settings.botframework,
        rt.db.clone(),
        rt.config.upstream_egress.clone(),
        rt.config.upstream_timeout,
        tokens.clone(),
    );
    let slack_api = slack::SlackApi::new(
        &settings.slack_url,
        rt.config.upstream_egress.clone(),
        rt.config.upstream_timeout,
    );
    let senders = deliveries::Senders {
        smtp: smtp.clone(),
        chat: chat::Chat::new(
            rt.config.upstream_egress.clone(),
            rt.config.upstream_timeout,
        ),
        slack: slack_api,
        bot,
    };
    let worker = deliveries::Worker::new(
        rt.db.clone(),
        store.clone(),
        calls.clone(),
        senders.clone(),
        settings.retry,
    );
    worker.spawn(rt.shutdown.child_token());
    imap::Reader::new(
        rt.db.clone(),
        store.clone(),
        calls.clone(),
        rt.config.upstream_egress.clone(),
        rt.config.upstream_timeout,
        settings.imap_every,
    )
    .spawn(rt.shutdown.child_token());
    let endpoints = webhooks::Endpoints::new(
        rt.db.clone(),
        rt.vault.clone(),
        rt.config.upstream_egress.clone(),
    );
    let wake_webhooks = Arc::new(tokio::sync::Notify::new());
    webhooks::sender::Sender::new(
        rt.db.clone(),
        endpoints.clone(),
        rt.config.upstream_egress.clone(),
        rt.config.upstream_timeout,
        wake_webhooks.clone(),
        settings.webhooks,
    )
    .spawn(rt.shutdown.child_token());
    tokio::spawn(webhooks::fanout::consume(
        rt.db.clone(),
        rt.config.kafka.clone(),
        wake_webhooks.clone(),
        rt.shutdown.child_token(),
    ));
    let domain = api::MessagingApi::new(
        rt.db.clone(),
        store.clone(),
        worker,
        endpoints,
        wake_webhooks,
    );
    tokio::spawn(commands::consume(
        domain.clone(),
        rt.config.kafka.clone(),
        rt.shutdown.child_token(),
    ));
    let integration = bac_connector::IntegrationApi::new(
        Arc::new(connector::MessagingConnector::new(
            store.clone(),
            rt.config.upstream_egress.clone(),
            senders,
            slack::Inbound::new(rt.db.clone()),
            tokens.clone(),
            chat_app::ChatApp::new(
                &settings.google_chat_jwks_url,
                rt.db.clone(),
                rt.config.upstream_egress.clone(),
                rt.config.upstream_timeout,
            ),
        )),
        rt.db.clone(),
        store,
        engine,
        calls.clone(),
    )
    .with_tokens(tokens);
    let routes = Routes::new(IntegrationServiceServer::new(integration))
        .add_service(MessagingServiceServer::new(domain));
    rt.launch(routes, None).await
}
