//! Push channels: subscriptions a provider keeps open to tell the fleet about changes (Zoho
//! CRM's notification channels, Google's `watch`), each with an expiry. The kit keeps them:
//! [`ChannelKeeper`] opens the channels each connection wants, renews them before they
//! expire, opens again those that lapsed (the fleet was down, a renewal failed) and closes
//! those no longer wanted; the periodic pull stays the net for whatever a channel misses.
//!
//! A provider sends its notifications to the gateway's push route
//! (`/api/v1/integrations/connections/{id}/push`), which has no token of the gateway's: the
//! channel's own token authenticates it. That token is never stored: it is derived from the
//! fleet's key and the channel id ([`channel_token`]), handed to the provider when the channel
//! opens, and recomputed to check a notification ([`ChannelKeeper::verify`]) in constant time.
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bac_runtime::db::Pool;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Migration,
    ServiceError,
};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::Webhook;

pub const MIGRATION: Migration = Migration {
    name: "connector_0003_push_channels",
    sql: include_str!("../migrations/push_channels.sql"),
};

/// A channel as the fleet keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub connection_id: String,
    /// What the channel watches, as the provider names it (`crm`, a calendar id).
    pub key: String,
    pub channel_id: String,
    /// The provider's id of what is watched (Google's `resourceId`), if it gives one.
    pub resource_id: String,
    pub expires_at: DateTime<Utc>,
}

/// What opening a channel asks of the provider.
#[derive(Debug, Clone)]
pub struct OpenChannel {
    pub key: String,
    pub channel_id: String,
    /// Sent back with every notification; check it with [`ChannelKeeper::verify`].
    pub token: String,
    /// The gateway's push route for the connection.
    pub notify_url: String,
    pub expires_at: DateTime<Utc>,
}

/// What the provider says it opened.
#[derive(Debug, Clone)]
pub struct Opened {
    pub resource_id: String,
    /// The expiry the provider granted (it may shorten the one asked).
    pub expires_at: DateTime<Utc>,
}

/// A provider's push channels.
#[async_trait]
pub trait PushChannels: Send + Sync + 'static {
    /// The channels a connection should have open (their keys); none for a connection that
    /// wants no notifications or lacks what they need.
    fn wanted(&self, rec: &ConnectionRecord) -> Vec<String>;

    /// Opens a channel, or re-subscribes one that exists (`existing`) before or after it
    /// expired.
    async fn open(
        &self,
        rec: &ConnectionRecord,
        req: &OpenChannel,
        existing: Option<&Channel>,
    ) -> Result<Opened, ServiceError>;

    /// Stops a channel at the provider.
    async fn close(&self, rec: &ConnectionRecord, channel: &Channel) -> Result<(), ServiceError>;

    /// The channel id and token a notification carries, where the provider puts them (Zoho:
    /// the body's `channel_id` and `token`; Google: `X-Goog-Channel-ID` and
    /// `X-Goog-Channel-Token`).
    fn credentials(&self, webhook: &Webhook) -> Option<(String, String)>;

    /// Whether a channel is renewed by opening it again under its id (Zoho). Google's
    /// channels cannot be extended: a new channel (a new id) is opened and the old one
    /// stopped once the new one stands.
    fn renews_in_place(&self) -> bool {
        true
    }
}

/// The token of channel `channel_id` (at most 50 characters: Zoho's limit).
pub fn channel_token(integration: &str, channel_id: &str) -> Option<String> {
    bac_runtime::context::derive_token(&format!("push-channel/{integration}"), channel_id)
}

/// How a keeper paces itself.
#[derive(Debug, Clone, Copy)]
pub struct KeeperTimes {
    /// How long a channel is asked to live.
    pub lifetime: Duration,
    /// A channel expiring sooner than this is renewed.
    pub renew_before: Duration,
    /// Between two passes over the connections.
    pub every: Duration,
}

impl KeeperTimes {
    /// `BAC_PUSH_CHANNEL_TTL_SECS` (default a day), `BAC_PUSH_RENEW_BEFORE_SECS` (default an
    /// hour), `BAC_PUSH_PASS_SECS` (default five minutes).
    pub fn from_env() -> KeeperTimes {
        let secs = |k: &str, d: u64| {
            Duration::from_secs(
                std::env::var(k)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(d),
            )
        };
        KeeperTimes {
            lifetime: secs("BAC_PUSH_CHANNEL_TTL_SECS", 86_400),
            renew_before: secs("BAC_PUSH_RENEW_BEFORE_SECS", 3_600),
            every: secs("BAC_PUSH_PASS_SECS", 300),
        }
    }
}

/// What one pass did (logs and tests read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub opened: u32,
    pub renewed: u32,
    pub closed: u32,
    pub failed: u32,
    /// Another replica held the pass.
    pub skipped: bool,
}

/// Keeps an integration's push channels open.
#[derive(Clone)]
pub struct ChannelKeeper {
    integration: &'static str,
    db: Pool,
    connections: ConnectionStore,
    provider: Arc<dyn PushChannels>,
    /// The gateway's URL as the provider reaches it; `None`: no channels (nothing could
    /// reach the fleet).
    public_url: Option<String>,
    times: KeeperTimes,
}

fn db_err(e: impl std::fmt::Display) -> String {
    format!("postgres: {e}")
}

impl ChannelKeeper {
    pub fn new(
        integration: &'static str,
        db: Pool,
        connections: ConnectionStore,
        provider: Arc<dyn PushChannels>,
        public_url: Option<String>,
        times: KeeperTimes,
    ) -> ChannelKeeper {
        ChannelKeeper {
            integration,
            db,
            connections,
            provider,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            times,
        }
    }

    pub fn provider(&self) -> &dyn PushChannels {
        &*self.provider
    }

    /// The push route of a connection.
    pub fn notify_url(&self, connection_id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/api/v1/integrations/connections/{connection_id}/push"))
    }

    /// Runs passes until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) {
        if self.public_url.is_none() {
            tracing::info!(
                integration = self.integration,
                "no BAC_PUBLIC_URL: push channels are off, the periodic pull alone finds changes"
            );
            return;
        }
        tokio::spawn(async move {
            loop {
                match self.pass().await {
                    Ok(p) if p.opened + p.renewed + p.closed + p.failed > 0 => {
                        tracing::info!(
                            integration = self.integration,
                            opened = p.opened,
                            renewed = p.renewed,
                            closed = p.closed,
                            failed = p.failed,
                            "push channels kept"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(integration = self.integration, error = %e,
                        "push channel pass failed"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.times.every) => {}
                }
            }
        });
    }

    /// The channels stored for a connection.
    pub async fn channels(&self, connection_id: &str) -> Result<Vec<Channel>, String> {
        let client = self.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "SELECT connection_id, key, channel_id, resource_id, expires_at
                   FROM push_channels WHERE integration = $1 AND connection_id = $2
                  ORDER BY key",
                &[&self.integration, &connection_id],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(channel).collect())
    }

    /// Whether a notification for `connection_id` names one of its channels with that
    /// channel's token.
    pub async fn verify(&self, connection_id: &str, webhook: &Webhook) -> bool {
        use subtle::ConstantTimeEq;
        let Some((channel_id, token)) = self.provider.credentials(webhook) else {
            return false;
        };
        let Some(expected) = channel_token(self.integration, &channel_id) else {
            return false;
        };
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return false;
        }
        self.channels(connection_id)
            .await
            .is_ok_and(|all| all.iter().any(|c| c.channel_id == channel_id))
    }

    /// One pass over every connection of the integration: open what is wanted and missing
    /// or lapsed, renew what expires soon, close what is no longer wanted. One replica at a
    /// time; a connection whose provider fails is recorded and the pass goes on.
    pub async fn pass(&self) -> Result<Pass, String> {
        let mut report = Pass::default();
        let mut client = self.db.get().await.map_err(db_err)?;
        let tx = client.transaction().await.map_err(db_err)?;
        let got: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 11))",
                &[&format!("push_channels/{}", self.integration)],
            )
            .await
            .map_err(db_err)?
            .get(0);
        if !got {
            report.skipped = true;
            return Ok(report);
        }
        let connections = self.connections.all().await.map_err(|e| e.to_string())?;
        let stored = tx
            .query(
                "SELECT connection_id, key, channel_id, resource_id, expires_at
                   FROM push_channels WHERE integration = $1",
                &[&self.integration],
            )
            .await
            .map_err(db_err)?;
        let stored: Vec<Channel> = stored.iter().map(channel).collect();
        let now = Utc::now();
        for rec in &connections {
            let wanted = if self.public_url.is_some() {
                self.provider.wanted(rec)
            } else {
                Vec::new()
            };
            for key in &wanted {
                let existing = stored
                    .iter()
                    .find(|c| c.connection_id == rec.id && &c.key == key);
                let renew_at = existing.map(|c| {
                    c.expires_at
                        - chrono::Duration::from_std(self.times.renew_before).unwrap_or_default()
                });
                if renew_at.is_some_and(|at| at > now) {
                    continue;
                }
                match self.open(&tx, rec, key, existing).await {
                    Ok(()) if existing.is_some() => report.renewed += 1,
                    Ok(()) => report.opened += 1,
                    Err(e) => {
                        report.failed += 1;
                        tracing::warn!(integration = self.integration, connection = %rec.id,
                            tenant = %rec.tenant_id, key = %key, error = %e,
                            "opening a push channel failed; the periodic pull stays the net");
                        let _ = tx
                            .execute(
                                "UPDATE push_channels SET last_error = $4
                                  WHERE integration = $1 AND connection_id = $2 AND key = $3",
                                &[&self.integration, &rec.id, key, &e],
                            )
                            .await;
                    }
                }
            }
            for c in stored
                .iter()
                .filter(|c| c.connection_id == rec.id && !wanted.contains(&c.key))
            {
                if let Err(e) = self.provider.close(rec, c).await {
                    tracing::warn!(integration = self.integration, connection = %rec.id,
                        error = %e, "closing a push channel failed; it expires on its own");
                }
                self.forget(&tx, c).await?;
                report.closed += 1;
            }
        }
        // Channels of connections that are gone: their credentials went with them, so the
        // provider's side expires on its own; the gateway refuses what it still sends.
        for c in stored
            .iter()
            .filter(|c| !connections.iter().any(|r| r.id == c.connection_id))
        {
            self.forget(&tx, c).await?;
            report.closed += 1;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(report)
    }

    async fn open(
        &self,
        tx: &bac_runtime::db::Transaction<'_>,
        rec: &ConnectionRecord,
        key: &str,
        existing: Option<&Channel>,
    ) -> Result<(), String> {
        let in_place = self.provider.renews_in_place();
        let channel_id = match existing {
            Some(c) if in_place => c.channel_id.clone(),
            // digits: Zoho wants a number, Google any string
            _ => (rand::random::<u64>() >> 2).max(1).to_string(),
        };
        let token =
            channel_token(self.integration, &channel_id).ok_or("the fleet's key is not loaded")?;
        let notify_url = self.notify_url(&rec.id).ok_or("no BAC_PUBLIC_URL")?;
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.times.lifetime).map_err(|e| e.to_string())?;
        let opened = self
            .provider
            .open(
                rec,
                &OpenChannel {
                    key: key.to_string(),
                    channel_id: channel_id.clone(),
                    token,
                    notify_url,
                    expires_at,
                },
                existing,
            )
            .await
            .map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO push_channels
                 (integration, connection_id, key, tenant_id, channel_id, resource_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (integration, connection_id, key) DO UPDATE
                SET channel_id = EXCLUDED.channel_id, resource_id = EXCLUDED.resource_id,
                    expires_at = EXCLUDED.expires_at, renewed_at = now(), last_error = NULL",
            &[
                &self.integration,
                &rec.id,
                &key,
                &rec.tenant_id,
                &channel_id,
                &opened.resource_id,
                &opened.expires_at,
            ],
        )
        .await
        .map_err(db_err)?;
        if let Some(old) = existing.filter(|_| !in_place) {
            // the new channel stands: the old one stops now rather than at its expiry
            if let Err(e) = self.provider.close(rec, old).await {
                tracing::warn!(integration = self.integration, connection = %rec.id,
                    error = %e, "stopping a replaced push channel failed; it expires on its own");
            }
        }
        Ok(())
    }

    /// Stops every channel of a connection at the provider and forgets them: called before
    /// the connection (and the credentials a stop needs) goes. A stop that fails is logged;
    /// that channel expires on its own and the gateway refuses what it still sends.
    pub async fn close_connection(&self, rec: &ConnectionRecord) -> Result<u32, String> {
        let mut closed = 0;
        for c in self.channels(&rec.id).await? {
            if let Err(e) = self.provider.close(rec, &c).await {
                tracing::warn!(integration = self.integration, connection = %rec.id,
                    error = %e, "stopping a push channel failed; it expires on its own");
            }
            let client = self.db.get().await.map_err(db_err)?;
            client
                .execute(
                    "DELETE FROM push_channels WHERE integration = $1 AND connection_id = $2 AND key = $3",
                    &[&self.integration, &c.connection_id, &c.key],
                )
                .await
                .map_err(db_err)?;
            closed += 1;
        }
        Ok(closed)
    }

    async fn forget(
        &self,
        tx: &bac_runtime::db::Transaction<'_>,
        c: &Channel,
    ) -> Result<(), String> {
        tx.execute(
            "DELETE FROM push_channels WHERE integration = $1 AND connection_id = $2 AND key = $3",
            &[&self.integration, &c.connection_id, &c.key],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

fn channel(r: &tokio_postgres::Row) -> Channel {
    Channel {
        connection_id: r.get(0),
        key: r.get(1),
        channel_id: r.get(2),
        resource_id: r.get(3),
        expires_at: r.get(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_tokens_are_the_fleets_own_and_fit_zoho() {
        bac_runtime::context::install_signing_key(vec![9; 32]);
        let a = channel_token("zoho", "123").unwrap();
        assert_eq!(a.len(), 40);
        assert_eq!(channel_token("zoho", "123").unwrap(), a);
        assert_ne!(channel_token("zoho", "124").unwrap(), a);
        assert_ne!(channel_token("google_workspace", "123").unwrap(), a);
    }
}
