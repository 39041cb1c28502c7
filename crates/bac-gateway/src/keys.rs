//! A short cache of API-key lookups, invalidated on every replica by `NOTIFY gateway_api_keys`
//! (a trigger fires on creation, revocation, expiry change and rotation; role changes notify
//! too). Prefixes no key has are cached as well, so a flood of made-up keys costs no queries. When
//! the listening session is down the cache is bypassed, so a revocation is never missed.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::auth::Role;

/// What a key lookup found (everything but the caller's request id).
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub key_id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
    pub key_hash: String,
    pub revoked: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's user was deactivated.
    pub user_disabled: bool,
}

const TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entries {
    keys: HashMap<String, (Instant, CachedKey)>,
    /// Prefixes no key has (a lookup found none): answered without a query until the TTL
    /// ends or a key with the prefix is created (the insert notifies like a revocation).
    missing: HashMap<String, Instant>,
    /// When each prefix was last invalidated: a lookup that started earlier is not cached.
    invalidated: HashMap<String, Instant>,
    /// When the current LISTEN session started: notifications sent before it may be lost,
    /// so a lookup that started earlier is not cached either.
    listening_since: Option<Instant>,
}

impl Entries {
    /// A lookup that started before the prefix was last invalidated, or before the current
    /// LISTEN session (notifications before it may be lost), must not be cached.
    fn stale(&self, prefix: &str, looked_up_at: Instant) -> bool {
        self.invalidated
            .get(prefix)
            .is_some_and(|at| *at >= looked_up_at)
            || self
                .listening_since
                .is_none_or(|since| since > looked_up_at)
    }
}

#[derive(Clone, Default)]
pub struct KeyCache {
    /// One lock over entries and invalidations, so an invalidation cannot slip between the
    /// check and the insert of a lookup.
    entries: Arc<Mutex<Entries>>,
    /// True while the LISTEN session is up; the cache is used only then.
    listening: Arc<AtomicBool>,
    /// When this replica last wrote each key's `last_used_at`.
    touched: Arc<Mutex<HashMap<String, Instant>>>,
}

impl KeyCache {
    pub fn get(&self, prefix: &str) -> Option<CachedKey> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let e = self.entries.lock().ok()?;
        e.keys
            .get(prefix)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, k)| k.clone())
    }

    /// Caches a lookup that started at `looked_up_at`, unless the key changed since.
    pub fn put(&self, prefix: &str, key: CachedKey, looked_up_at: Instant) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if e.stale(prefix, looked_up_at) {
            return;
        }
        if e.keys.len() > 100_000 {
            e.keys.clear();
        }
        e.keys.insert(prefix.to_string(), (Instant::now(), key));
    }

    /// True when a recent lookup found no key with this prefix.
    pub fn is_missing(&self, prefix: &str) -> bool {
        if !self.listening.load(Ordering::Acquire) {
            return false;
        }
        self.entries
            .lock()
            .ok()
            .and_then(|e| e.missing.get(prefix).map(|at| at.elapsed() < TTL))
            .unwrap_or(false)
    }

    /// Remembers that a lookup started at `looked_up_at` found no key with `prefix`.
    pub fn put_missing(&self, prefix: &str, looked_up_at: Instant) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if e.stale(prefix, looked_up_at) {
            return;
        }
        if e.missing.len() > 100_000 {
            e.missing.retain(|_, at| at.elapsed() < TTL);
            if e.missing.len() > 100_000 {
                e.missing.clear();
            }
        }
        e.missing.insert(prefix.to_string(), Instant::now());
    }

    /// True at most once a minute per key (per replica): time to record `last_used_at`.
    pub fn due_for_touch(&self, key_id: &str) -> bool {
        let Ok(mut map) = self.touched.lock() else {
            return true;
        };
        match map.get(key_id) {
            Some(at) if at.elapsed() < Duration::from_secs(60) => false,
            _ => {
                if map.len() > 100_000 {
                    map.clear();
                }
                map.insert(key_id.to_string(), Instant::now());
                true
            }
        }
    }

    /// Drops `prefix` now (the change that calls this also NOTIFYs every replica).
    pub fn forget(&self, prefix: &str) {
        if let Ok(mut e) = self.entries.lock() {
            e.invalidated.retain(|_, at| at.elapsed() < TTL);
            e.invalidated.insert(prefix.to_string(), Instant::now());
            e.keys.remove(prefix);
            e.missing.remove(prefix);
        }
    }

    fn set_listening(&self, on: bool) {
        if let Ok(mut e) = self.entries.lock() {
            e.keys.clear();
            e.missing.clear();
            e.listening_since = on.then(Instant::now);
        }
        self.listening.store(on, Ordering::Release);
    }

    /// Keeps a LISTEN session open (reconnecting) until `shutdown`.
    pub async fn listen(self, database_url: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = self.listen_once(&database_url);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = session => {
                    self.set_listening(false);
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "api key invalidation listener lost; cache bypassed");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn listen_once(&self, database_url: &str) -> anyhow::Result<()> {
        let cfg = bac_runtime::db::pg_config(database_url, "gateway")?;
        let (client, mut conn) = cfg.connect(NoTls).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let pump = tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(n)) => {
                        let _ = tx.send(Some(n.payload().to_string()));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        client.batch_execute("LISTEN gateway_api_keys").await?;
        self.set_listening(true);
        // A half-open connection delivers no notifications and no error: probe it.
        let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Some(prefix)) => self.forget(&prefix),
                    _ => break,
                },
                _ = heartbeat.tick() => {
                    let probe = tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1"));
                    if !matches!(probe.await, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        pump.abort();
        anyhow::bail!("listener connection closed or unresponsive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CachedKey {
        CachedKey {
            key_id: "key_1".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            role: Role::User,
            key_hash: "h".into(),
            revoked: false,
            expires_at: None,
            user_disabled: false,
        }
    }

    #[test]
    fn a_lookup_older_than_an_invalidation_or_the_session_is_not_cached() {
        let cache = KeyCache::default();
        let before_session = Instant::now();
        cache.set_listening(true);
        // Notifications before the session may have been lost.
        cache.put("p", key(), before_session);
        assert!(cache.get("p").is_none());
        // A revocation announced while the lookup was in flight wins.
        let started = Instant::now();
        cache.forget("p");
        cache.put("p", key(), started);
        assert!(cache.get("p").is_none());
        // A lookup after both is cached.
        cache.put("p", key(), Instant::now());
        assert!(cache.get("p").is_some());
        // Losing the session drops everything and bypasses the cache.
        cache.set_listening(false);
        assert!(cache.get("p").is_none());
    }

    #[test]
    fn an_unknown_prefix_is_remembered_until_a_key_with_it_appears() {
        let cache = KeyCache::default();
        cache.set_listening(true);
        cache.put_missing("p", Instant::now());
        assert!(cache.is_missing("p"));
        assert!(!cache.is_missing("q"));
        // The insert of a key with that prefix notifies.
        cache.forget("p");
        assert!(!cache.is_missing("p"));
        cache.put_missing("p", Instant::now());
        cache.set_listening(false);
        assert!(!cache.is_missing("p"), "no listener, no cache");
    }

    #[test]
    fn last_used_is_written_once_a_minute() {
        let cache = KeyCache::default();
        assert!(cache.due_for_touch("key_1"));
        assert!(!cache.due_for_touch("key_1"));
        assert!(cache.due_for_touch("key_2"));
    }
}
