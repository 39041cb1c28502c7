//! The access matrix of the integration-management document, plus delegated grants.
//! docs/access-control.md is this table in prose; `tests/it/access_matrix.rs` checks every cell.
//!
//! | integration | user | admin | super admin | delegable |
//! |---|---|---|---|---|
//! | email, calendar, messaging | status | status (full) | everything | yes |
//! | tally, zoho, odoo, google-workspace | none | status | everything | yes |
//! | payments | none | none | everything | no |
//!
//! A `view` grant adds status and data reads; a `manage` grant adds data writes and
//! configuration. Only a super admin grants, and a grantee cannot grant onward.
use crate::{
    auth::{Principal, Role},
    error::ApiError,
};

/// Integrations the access matrix covers (the fleet's services plus email, calendar, payments).
pub const INTEGRATIONS: &[&str] = &[
    "email",
    "calendar",
    "tally",
    "payments",
    "zoho",
    "odoo",
    "google-workspace",
    "messaging",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewStatus,
    ReadData,
    WriteData,
    Configure,
    Grant,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewStatus => "view status",
            Action::ReadData => "read data",
            Action::WriteData => "write data",
            Action::Configure => "configure",
            Action::Grant => "grant",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    View,
    Manage,
}

impl Permission {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "view" => Some(Permission::View),
            "manage" => Some(Permission::Manage),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Manage => "manage",
        }
    }
}

/// Whether permissions on `integration` may be delegated.
pub fn delegable(integration: &str) -> bool {
    integration != "payments"
}

/// What the role alone allows, before grants.
pub fn role_allows(role: Role, integration: &str, action: Action) -> bool {
    if role == Role::SuperAdmin {
        return action != Action::Grant || delegable(integration);
    }
    let status_for_all = matches!(integration, "email" | "calendar" | "messaging");
    match (role, action) {
        (Role::User, Action::ViewStatus) => status_for_all,
        (Role::Admin, Action::ViewStatus) => integration != "payments",
        _ => false,
    }
}

/// What a grant adds; never the right to grant.
pub fn grant_allows(grant: Permission, action: Action) -> bool {
    match action {
        Action::ViewStatus | Action::ReadData => true,
        Action::WriteData | Action::Configure => grant == Permission::Manage,
        Action::Grant => false,
    }
}

/// The decision, from the role and the caller's grants on this integration.
pub fn allowed(role: Role, grants: &[Permission], integration: &str, action: Action) -> bool {
    role_allows(role, integration, action) || grants.iter().any(|g| grant_allows(*g, action))
}

/// Checks the caller may do `action` on `integration` (grants read from Postgres).
pub async fn require(
    db: &bac_runtime::db::Pool,
    p: &Principal,
    integration: &str,
    action: Action,
) -> Result<(), ApiError> {
    if role_allows(p.role, integration, action) {
        return Ok(());
    }
    let grants = grants_of(db, &p.tenant_id, &p.user_id, integration).await?;
    if allowed(p.role, &grants, integration, action) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "your role ({}) may not {} on {integration}",
            p.role.as_str(),
            action.as_str()
        ))
        .integration(integration)
        .suggest("Ask a super admin of your organization for a view or manage grant"))
    }
}

pub async fn grants_of(
    db: &bac_runtime::db::Pool,
    tenant: &str,
    user: &str,
    integration: &str,
) -> Result<Vec<Permission>, ApiError> {
    let c = db.get().await.map_err(ApiError::internal)?;
    let rows = c
        .query(
            "SELECT permission_type FROM grants WHERE tenant_id = $1 AND user_id = $2 AND integration = $3",
            &[&tenant, &user, &integration],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(rows
        .iter()
        .filter_map(|r| Permission::parse(r.get::<_, &str>(0)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_matrix() {
        use Action::*;
        use Role::*;
        // View (all users): status only for email and calendar, nothing for the rest.
        assert!(role_allows(User, "email", ViewStatus));
        assert!(role_allows(User, "calendar", ViewStatus));
        assert!(!role_allows(User, "email", ReadData));
        for i in ["tally", "payments", "zoho"] {
            assert!(!role_allows(User, i, ViewStatus), "{i}");
        }
        // View (admin): status for all but payments.
        for i in ["email", "calendar", "tally", "zoho"] {
            assert!(role_allows(Admin, i, ViewStatus), "{i}");
            assert!(!role_allows(Admin, i, Configure), "{i}");
        }
        assert!(!role_allows(Admin, "payments", ViewStatus));
        // Manage (super admin): full config everywhere; payments never delegable.
        for i in INTEGRATIONS {
            assert!(role_allows(SuperAdmin, i, Configure));
        }
        assert!(!role_allows(SuperAdmin, "payments", Grant));
        assert!(role_allows(SuperAdmin, "zoho", Grant));
        // Grants.
        assert!(allowed(User, &[Permission::View], "zoho", ReadData));
        assert!(!allowed(User, &[Permission::View], "zoho", WriteData));
        assert!(allowed(User, &[Permission::Manage], "zoho", Configure));
        assert!(!allowed(Admin, &[Permission::Manage], "zoho", Grant));
    }
}
