//! Operator actions outside the REST API: `bac-gateway bootstrap` creates a tenant, its
//! super-admin user and a first API key (how `scripts/dev-up` and a fresh install start).
use bac_runtime::{context::valid_tenant_id, db::Pool};

use crate::auth::{mint_key, Role};

#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub tenant: String,
    pub tenant_name: String,
    pub email: String,
    pub role: Role,
}

/// Ensures the tenant and user exist and mints a new key for the user. Returns the key.
pub async fn bootstrap(db: &Pool, b: &Bootstrap) -> anyhow::Result<String> {
    if !valid_tenant_id(&b.tenant) {
        anyhow::bail!(
            "tenant id {:?} must be lowercase letters, digits, - or _",
            b.tenant
        );
    }
    if !b.email.contains('@') {
        anyhow::bail!("{:?} is not an email address", b.email);
    }
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        &[&b.tenant, &b.tenant_name],
    )
    .await?;
    let user_id = format!("usr_{}", uuid::Uuid::now_v7().simple());
    let row = tx
        .query_one(
            "INSERT INTO users (id, tenant_id, email, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, email) DO UPDATE SET role = EXCLUDED.role
             RETURNING id",
            &[&user_id, &b.tenant, &b.email, &b.role.as_str()],
        )
        .await?;
    let user_id: String = row.get(0);
    // An existing user may have changed role: drop their cached keys on every replica.
    tx.execute(
        "SELECT pg_notify('gateway_api_keys', prefix) FROM api_keys WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    let key = mint_key();
    tx.execute(
        "INSERT INTO api_keys (id, tenant_id, user_id, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
        &[&key.id, &b.tenant, &user_id, &key.prefix, &key.hash],
    )
    .await?;
    let change = crate::audit::Change {
        action: "api_key.created",
        target_type: "api_key",
        target_id: &key.id,
        diff: serde_json::json!({"user_id": user_id, "via": "bootstrap", "role": b.role.as_str()}),
    };
    crate::audit::record_as(
        &tx,
        &b.tenant,
        "operator:bootstrap",
        "",
        &crate::audit::Origin::default(),
        change,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the audit entry: {}", e.message))?;
    tx.commit().await?;
    tracing::info!(tenant = %b.tenant, user = %user_id, key_id = %key.id, key_prefix = %key.prefix, "api key created");
    Ok(key.key)
}
