//! Connections of an integration service: settings in the service's `connections` table,
//! secrets in Vault, every query scoped by tenant. Each integration validates its own settings
//! and shares this storage.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use secrecy::SecretString;
use serde_json::Value;

use crate::{
    db::Migration,
    error::{ErrorCode, ServiceError},
    vault::{Secret, Vault, VaultError},
};

/// Add to a service's migrations to get the `connections` table.
pub const MIGRATION: Migration = Migration {
    name: "runtime_connections",
    sql: include_str!("../migrations/connections.sql"),
};

/// After [`MIGRATION`]: announces connection changes to every replica's secret cache.
pub const NOTIFY_MIGRATION: Migration = Migration {
    name: "runtime_connections_notify",
    sql: include_str!("../migrations/connections_notify.sql"),
};

#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub config: Value,
    pub secret_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ConnectionRecord {
    /// A string setting (validated at create, so absent only for old rows).
    pub fn setting(&self, key: &str) -> &str {
        self.config.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn to_proto(&self, integration: &str) -> bac_proto::integration::v1::Connection {
        bac_proto::integration::v1::Connection {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            integration: integration.to_string(),
            name: self.name.clone(),
            config: serde_json::from_value(self.config.clone()).ok(),
            secret_fields: self.secret_fields.clone(),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Whether two values of a bound setting name the same target: URLs by origin (scheme, host,
/// port; a new path is harmless), anything else by value.
fn same_target(old: Option<&Value>, new: Option<&Value>) -> bool {
    let origin = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| url::Url::parse(s).ok())
            .filter(|u| u.has_host())
            .map(|u| u.origin())
    };
    match (origin(old), origin(new)) {
        (Some(a), Some(b)) => a == b,
        _ => old == new,
    }
}

/// Connection ids come from the gateway (`con_...`); they end up in Vault paths.
pub fn valid_connection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Clone)]
pub struct ConnectionStore {
    db: Pool,
    vault: Vault,
    integration: &'static str,
    /// Settings that say where and as whom the secret is used (see [`Self::bind_credentials_to`]).
    bound: &'static [&'static str],
}

impl ConnectionStore {
    pub fn new(db: Pool, vault: Vault, integration: &'static str) -> Self {
        ConnectionStore {
            db,
            vault,
            integration,
            bound: &[],
        }
    }

    /// The stored credentials belong to these settings (a URL's origin, a database, a user):
    /// an update that changes one of them must send the credentials again, so whoever may
    /// edit a connection cannot point its stored secret at a server of their choosing.
    pub fn bind_credentials_to(mut self, settings: &'static [&'static str]) -> Self {
        self.bound = settings;
        self
    }

    /// The first bound setting `new` changes, if any.
    fn rebinding(&self, old: &Value, new: &Value) -> Option<&'static str> {
        self.bound
            .iter()
            .copied()
            .find(|k| !same_target(old.get(*k), new.get(*k)))
    }

    fn err(&self, code: ErrorCode, msg: impl Into<String>) -> ServiceError {
        ServiceError::new(self.integration, code, msg)
    }

    fn db_err(&self, e: impl std::fmt::Display) -> ServiceError {
        ServiceError::internal(self.integration, format!("postgres: {e}"))
    }

    pub fn vault_err(&self, e: VaultError) -> ServiceError {
        tracing::warn!(error = %e, "vault call failed");
        match e {
            VaultError::CasConflict { .. } => self.err(
                ErrorCode::AlreadyExists,
                "the connection's credentials changed concurrently; retry",
            ),
            _ => self
                .err(
                    ErrorCode::SecretStoreUnavailable,
                    "the secret store is unavailable",
                )
                .suggest("Retry shortly; if it persists, check Vault's health"),
        }
    }

    /// Stores a new connection; repeating the same create (same id, same tenant) is harmless.
    pub async fn create(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        config: Value,
        secrets: HashMap<String, SecretString>,
    ) -> Result<ConnectionRecord, ServiceError> {
        if !valid_connection_id(id) {
            return Err(self.err(ErrorCode::InvalidRequest, "invalid connection id"));
        }
        check_reserved(self.integration, &secrets)?;
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        if let Some(row) = client
            .query_opt("SELECT tenant_id FROM connections WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.db_err(e))?
        {
            let owner: String = row.get(0);
            if owner != tenant {
                return Err(self.err(ErrorCode::AlreadyExists, "connection id already in use"));
            }
        }
        let path = Vault::connection_path(tenant, self.integration, id);
        self.vault
            .write(&path, &secrets, None)
            .await
            .map_err(|e| self.vault_err(e))?;
        let mut fields: Vec<String> = secrets.keys().cloned().collect();
        fields.sort();
        let stmt = client
            .prepare_cached(
                "INSERT INTO connections (id, tenant_id, name, config, secret_fields)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, config = EXCLUDED.config,
                     secret_fields = EXCLUDED.secret_fields, updated_at = now()
                 WHERE connections.tenant_id = EXCLUDED.tenant_id
                 RETURNING id, tenant_id, name, config, secret_fields, created_at, updated_at",
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let row = client
            .query_one(&stmt, &[&id, &tenant, &name, &config, &fields])
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(record(&row))
    }

    pub async fn get(&self, tenant: &str, id: &str) -> Result<ConnectionRecord, ServiceError> {
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        let stmt = client
            .prepare_cached(
                "SELECT id, tenant_id, name, config, secret_fields, created_at, updated_at
                 FROM connections WHERE tenant_id = $1 AND id = $2",
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let row = client
            .query_opt(&stmt, &[&tenant, &id])
            .await
            .map_err(|e| self.db_err(e))?;
        row.map(|r| record(&r)).ok_or_else(|| {
            self.err(
                ErrorCode::NotFound,
                format!("no {} connection {id}", self.integration),
            )
        })
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, ServiceError> {
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        let stmt = client
            .prepare_cached(
                "SELECT id, tenant_id, name, config, secret_fields, created_at, updated_at
                 FROM connections WHERE tenant_id = $1 ORDER BY created_at, id",
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let rows = client
            .query(&stmt, &[&tenant])
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(record).collect())
    }

    /// Every tenant's connections of this service, for the service's own upkeep (push
    /// channels); never an answer to a caller, whose queries are scoped by tenant.
    pub async fn all(&self) -> Result<Vec<ConnectionRecord>, ServiceError> {
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                "SELECT id, tenant_id, name, config, secret_fields, created_at, updated_at
                 FROM connections ORDER BY tenant_id, created_at, id",
                &[],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(record).collect())
    }

    /// The named connection, or the tenant's only one when `id` is empty.
    pub async fn resolve(&self, tenant: &str, id: &str) -> Result<ConnectionRecord, ServiceError> {
        self.resolve_kind(tenant, id, self.integration, |_| true)
            .await
    }

    /// [`Self::resolve`] among the connections `of_kind` accepts (a service whose
    /// connections come in kinds: bac-messaging's email and Slack connections). `kind` names
    /// them in errors; a named connection of another kind is refused.
    pub async fn resolve_kind(
        &self,
        tenant: &str,
        id: &str,
        kind: &str,
        of_kind: impl Fn(&ConnectionRecord) -> bool,
    ) -> Result<ConnectionRecord, ServiceError> {
        if !id.is_empty() {
            let rec = self.get(tenant, id).await?;
            if !of_kind(&rec) {
                return Err(self.err(
                    ErrorCode::InvalidRequest,
                    format!("connection {id} is not a {kind} connection"),
                ));
            }
            return Ok(rec);
        }
        let mut all: Vec<ConnectionRecord> = self
            .list(tenant)
            .await?
            .into_iter()
            .filter(|r| of_kind(r))
            .collect();
        match all.len() {
            0 => Err(self
                .err(
                    ErrorCode::NotConnected,
                    format!("no {kind} connection for this tenant"),
                )
                .suggest(format!(
                    "Create one with POST /api/v1/integrations/connections (\"integration\": \"{}\")",
                    self.integration
                ))),
            1 => Ok(all.remove(0)),
            n => Err(self
                .err(
                    ErrorCode::InvalidRequest,
                    format!("the tenant has {n} {kind} connections"),
                )
                .suggest("Name one with the connection_id query parameter")),
        }
    }

    /// Changes a connection: `None` leaves a part as it is. New credentials replace the old
    /// set as a whole and are written to Vault with check-and-set against the version read
    /// here, so a concurrent change is refused (`ALREADY_EXISTS`, "retry") instead of lost.
    /// Returns the record and the names of the secret fields whose value changed.
    pub async fn update(
        &self,
        tenant: &str,
        id: &str,
        name: Option<&str>,
        config: Option<Value>,
        secrets: Option<HashMap<String, SecretString>>,
        if_unmodified_since: Option<DateTime<Utc>>,
    ) -> Result<(ConnectionRecord, Vec<String>), ServiceError> {
        let current = self.get(tenant, id).await?;
        let concurrent = || {
            self.err(
                ErrorCode::AlreadyExists,
                format!("connection {id} changed concurrently; read it again and retry"),
            )
        };
        if if_unmodified_since.is_some_and(|t| t != current.updated_at) {
            return Err(concurrent());
        }
        if let (Some(new), None) = (&config, &secrets) {
            if let Some(setting) = self.rebinding(&current.config, new) {
                return Err(self
                    .err(
                        ErrorCode::InvalidRequest,
                        format!(
                            "changing config.{setting} points the stored credentials elsewhere; send credentials in the same request"
                        ),
                    )
                    .suggest("Repeat the change with the credentials for the new server or user"));
            }
        }
        let mut changed = Vec::new();
        let mut fields = current.secret_fields.clone();
        if let Some(secrets) = &secrets {
            check_reserved(self.integration, secrets)?;
            let path = Vault::connection_path(tenant, self.integration, &current.id);
            let stored = self
                .vault
                .read(&path)
                .await
                .map_err(|e| self.vault_err(e))?;
            let (old, version) = match &stored {
                Some(s) => (Some(&s.data), s.version),
                None => (None, 0),
            };
            changed = changed_fields(old, secrets);
            if !changed.is_empty() {
                self.vault
                    .write(&path, secrets, Some(version))
                    .await
                    .map_err(|e| self.vault_err(e))?;
            }
            fields = secrets.keys().cloned().collect();
            fields.sort();
        }
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        let stmt = client
            .prepare_cached(
                "UPDATE connections SET name = coalesce($3, name), config = coalesce($4, config),
                     secret_fields = $5, updated_at = now()
                 WHERE tenant_id = $1 AND id = $2
                   AND ($6::timestamptz IS NULL OR updated_at = $6)
                 RETURNING id, tenant_id, name, config, secret_fields, created_at, updated_at",
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let row = client
            .query_opt(
                &stmt,
                &[&tenant, &id, &name, &config, &fields, &if_unmodified_since],
            )
            .await
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| {
                if if_unmodified_since.is_some() {
                    concurrent()
                } else {
                    self.err(
                        ErrorCode::NotFound,
                        format!("no {} connection {id}", self.integration),
                    )
                }
            })?;
        Ok((record(&row), changed))
    }

    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), ServiceError> {
        let rec = self.get(tenant, id).await?;
        let path = Vault::connection_path(tenant, self.integration, &rec.id);
        self.vault
            .delete(&path)
            .await
            .map_err(|e| self.vault_err(e))?;
        let client = self.db.get().await.map_err(|e| self.db_err(e))?;
        client
            .execute(
                "DELETE FROM connections WHERE tenant_id = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The connection's secret fields (through the short Vault cache).
    pub async fn secret(&self, rec: &ConnectionRecord) -> Result<Secret, ServiceError> {
        let path = Vault::connection_path(&rec.tenant_id, self.integration, &rec.id);
        self.vault
            .read_cached(&path)
            .await
            .map_err(|e| self.vault_err(e))?
            .ok_or_else(|| {
                self.err(
                    ErrorCode::InvalidCredentials,
                    "the connection's credentials are missing from the secret store",
                )
                .suggest("Create the connection again with its credentials")
            })
    }
}

/// Secret fields the fleet keeps beside a connection's credentials (the access token a token
/// source obtained, when it expires): never the user's, so never reported as changed when a
/// new set of credentials replaces them, and refused in a user's credentials.
pub const FLEET_FIELD_PREFIX: &str = "bac_token.";

/// Refuses credentials that name a field only the fleet writes.
fn check_reserved(
    integration: &str,
    secrets: &HashMap<String, SecretString>,
) -> Result<(), ServiceError> {
    match secrets.keys().find(|k| k.starts_with(FLEET_FIELD_PREFIX)) {
        Some(k) => Err(ServiceError::new(
            integration,
            ErrorCode::InvalidRequest,
            format!(
                "credentials.{k}: fields starting with {FLEET_FIELD_PREFIX} are the fleet's own"
            ),
        )),
        None => Ok(()),
    }
}

/// Names of the fields added, removed or given another value, sorted.
fn changed_fields(
    old: Option<&HashMap<String, SecretString>>,
    new: &HashMap<String, SecretString>,
) -> Vec<String> {
    use secrecy::ExposeSecret;
    let empty = HashMap::new();
    let old = old.unwrap_or(&empty);
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(k, v)| {
            old.get(*k)
                .is_none_or(|o| o.expose_secret() != v.expose_secret())
        })
        .map(|(k, _)| k.clone())
        .chain(
            old.keys()
                .filter(|k| !new.contains_key(*k) && !k.starts_with(FLEET_FIELD_PREFIX))
                .cloned(),
        )
        .collect();
    changed.sort();
    changed
}

fn record(row: &tokio_postgres::Row) -> ConnectionRecord {
    ConnectionRecord {
        id: row.get(0),
        tenant_id: row.get(1),
        name: row.get(2),
        config: row.get(3),
        secret_fields: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_its_target_across_paths_not_hosts() {
        let v = |s: &str| Some(Value::String(s.into()));
        let same = |a: &str, b: &str| same_target(v(a).as_ref(), v(b).as_ref());
        assert!(same(
            "https://odoo.example.com",
            "https://odoo.example.com/"
        ));
        assert!(same(
            "https://odoo.example.com",
            "https://odoo.example.com:443/odoo"
        ));
        assert!(!same(
            "https://odoo.example.com",
            "https://evil.example.com"
        ));
        assert!(!same("https://odoo.example.com", "http://odoo.example.com"));
        assert!(!same(
            "https://odoo.example.com",
            "https://odoo.example.com:8443"
        ));
        assert!(same("demo", "demo"));
        assert!(!same("demo", "prod"));
    }

    fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, SecretString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
            .collect()
    }

    #[test]
    fn changed_fields_name_added_removed_and_different_values() {
        let old = secrets(&[("password", "a"), ("api_key", "k")]);
        assert!(changed_fields(Some(&old), &old.clone()).is_empty());
        let new = secrets(&[("password", "b"), ("token", "t")]);
        assert_eq!(
            changed_fields(Some(&old), &new),
            vec!["api_key", "password", "token"]
        );
        assert_eq!(changed_fields(None, &new), vec!["password", "token"]);
        let with_token = secrets(&[("password", "b"), ("token", "t"), ("bac_token.access", "x")]);
        assert!(changed_fields(Some(&with_token), &new).is_empty());
        assert!(check_reserved("zoho", &with_token).is_err());
        assert!(check_reserved("zoho", &new).is_ok());
    }
}
