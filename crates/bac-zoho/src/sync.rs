//! Zoho's entities for the sync engine: one [`ZohoEntity`] table row per synced CRM module
//! (the fields read, the default mapping to the canonical record, the canonical fields that
//! are written back and as which Zoho field), and one [`ZohoAdapter`] serving them all.
//!
//! Incremental pulls follow `Modified_Time` with `If-Modified-Since`, sorted by it
//! ascending. A page never moves by offset alone: the next request starts at the newest
//! `Modified_Time` seen less a second (a record changed meanwhile moves to the end, where it
//! is read again, never skipped); only a page whose records all share that second moves on
//! by `page`, and by Zoho's `page_token` past its 2,000-record window. Records read twice
//! are the same content, which the mirror's hash turns into no event. After the live
//! records, the deleted-records list since the last run gives the tombstones.
use std::sync::Arc;

use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{
    mapping::rules::{datetime, fields, optional, rename},
    EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncError, Version,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::{ZohoCall, ZohoClient, CRM};

/// How a canonical value is written to a Zoho field.
#[derive(Debug, Clone, Copy)]
pub enum Conv {
    Plain,
    /// A lookup: `{"id": value}`.
    Lookup,
}

/// One synced Zoho CRM module.
#[derive(Debug)]
pub struct ZohoEntity {
    /// Canonical name: topic `bac.zoho.<entity>.v1`.
    pub entity: &'static str,
    /// Zoho's module API name.
    pub module: &'static str,
    /// Read on every pull (Zoho's `fields` parameter).
    pub fields: &'static [&'static str],
    /// Canonical field -> Zoho field for writes.
    pub writable: &'static [(&'static str, &'static str, Conv)],
    pub mapping: fn() -> Value,
}

/// Zoho stamps `Modified_Time` when a change starts; how far before the newest one seen the
/// next incremental run starts reading again.
pub const LOOKBACK_SECS: i64 = 60;

/// A CRM time (`2026-12-05T10:15:30+05:30`).
fn zoho_time(target: &str, source: &str) -> Value {
    datetime(target, source, "rfc3339")
}

/// Zoho's per-page maximum.
pub const MAX_PER_PAGE: usize = 200;

/// Most records one `page` walk reaches; past them Zoho wants `page_token`.
pub const PAGE_WINDOW: usize = 2000;

pub const ENTITIES: &[ZohoEntity] = &[
    ZohoEntity {
        entity: "crm_lead",
        module: "Leads",
        fields: &[
            "First_Name",
            "Last_Name",
            "Company",
            "Email",
            "Phone",
            "Mobile",
            "Lead_Source",
            "Lead_Status",
            "Industry",
            "Annual_Revenue",
            "Description",
            "Owner",
            "Created_Time",
            "Modified_Time",
        ],
        writable: &[
            ("first_name", "First_Name", Conv::Plain),
            ("last_name", "Last_Name", Conv::Plain),
            ("company", "Company", Conv::Plain),
            ("email", "Email", Conv::Plain),
            ("phone", "Phone", Conv::Plain),
            ("mobile", "Mobile", Conv::Plain),
            ("lead_source", "Lead_Source", Conv::Plain),
            ("lead_status", "Lead_Status", Conv::Plain),
            ("industry", "Industry", Conv::Plain),
            ("annual_revenue", "Annual_Revenue", Conv::Plain),
            ("description", "Description", Conv::Plain),
        ],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                optional("first_name", "First_Name"),
                rename("last_name", "Last_Name"),
                optional("company", "Company"),
                optional("email", "Email"),
                optional("phone", "Phone"),
                optional("mobile", "Mobile"),
                optional("lead_source", "Lead_Source"),
                optional("lead_status", "Lead_Status"),
                optional("industry", "Industry"),
                rename("annual_revenue", "Annual_Revenue"),
                optional("description", "Description"),
                optional("owner", "Owner.name"),
                zoho_time("created_time", "Created_Time"),
                zoho_time("modified_time", "Modified_Time"),
            ])
        },
    },
    ZohoEntity {
        entity: "crm_contact",
        module: "Contacts",
        fields: &[
            "First_Name",
            "Last_Name",
            "Email",
            "Phone",
            "Mobile",
            "Title",
            "Department",
            "Account_Name",
            "Mailing_City",
            "Mailing_Country",
            "Description",
            "Owner",
            "Created_Time",
            "Modified_Time",
        ],
        writable: &[
            ("first_name", "First_Name", Conv::Plain),
            ("last_name", "Last_Name", Conv::Plain),
            ("email", "Email", Conv::Plain),
            ("phone", "Phone", Conv::Plain),
            ("mobile", "Mobile", Conv::Plain),
            ("title", "Title", Conv::Plain),
            ("department", "Department", Conv::Plain),
            ("mailing_city", "Mailing_City", Conv::Plain),
            ("mailing_country", "Mailing_Country", Conv::Plain),
            ("description", "Description", Conv::Plain),
        ],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                optional("first_name", "First_Name"),
                rename("last_name", "Last_Name"),
                optional("email", "Email"),
                optional("phone", "Phone"),
                optional("mobile", "Mobile"),
                optional("title", "Title"),
                optional("department", "Department"),
                optional("account_name", "Account_Name.name"),
                optional("mailing_city", "Mailing_City"),
                optional("mailing_country", "Mailing_Country"),
                optional("description", "Description"),
                optional("owner", "Owner.name"),
                zoho_time("created_time", "Created_Time"),
                zoho_time("modified_time", "Modified_Time"),
            ])
        },
    },
    ZohoEntity {
        entity: "crm_deal",
        module: "Deals",
        fields: &[
            "Deal_Name",
            "Stage",
            "Amount",
            "Closing_Date",
            "Probability",
            "Account_Name",
            "Contact_Name",
            "Description",
            "Owner",
            "Created_Time",
            "Modified_Time",
        ],
        writable: &[
            ("name", "Deal_Name", Conv::Plain),
            ("stage", "Stage", Conv::Plain),
            ("amount", "Amount", Conv::Plain),
            ("closing_date", "Closing_Date", Conv::Plain),
            ("probability", "Probability", Conv::Plain),
            ("contact_id", "Contact_Name", Conv::Lookup),
            ("description", "Description", Conv::Plain),
        ],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("name", "Deal_Name"),
                optional("stage", "Stage"),
                rename("amount", "Amount"),
                optional("closing_date", "Closing_Date"),
                rename("probability", "Probability"),
                optional("account_name", "Account_Name.name"),
                optional("contact_id", "Contact_Name.id"),
                optional("contact_name", "Contact_Name.name"),
                optional("description", "Description"),
                optional("owner", "Owner.name"),
                zoho_time("created_time", "Created_Time"),
                zoho_time("modified_time", "Modified_Time"),
            ])
        },
    },
];

/// The table entry of `entity`.
pub fn entity(entity: &str) -> Option<&'static ZohoEntity> {
    ENTITIES.iter().find(|e| e.entity == entity)
}

/// The default mapping of an entity (the table's; covered by a unit test).
pub fn default_mapping(entity: &str) -> Option<Mapping> {
    self::entity(entity).and_then(|e| Mapping::parse(&(e.mapping)()).ok())
}

/// A Zoho field API name (`Last_Name`, `BAC_Intent_Id`).
pub fn valid_field_name(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 100
        && f.starts_with(|c: char| c.is_ascii_alphabetic())
        && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A Zoho time (`2026-12-05T10:15:30+05:30`) as an instant.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The time format Zoho's `If-Modified-Since` takes.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// A Zoho record as the engine sees it: its id, `Modified_Time` as the version.
pub fn remote_record(row: Value) -> Option<RemoteRecord> {
    let id = row.get("id")?.as_str()?.to_string();
    Some(RemoteRecord {
        id,
        version: parse_time(&row["Modified_Time"]).map(Version::Time),
        raw: row,
        deleted: false,
    })
}

fn bad(msg: impl Into<String>) -> SyncError {
    SyncError::Permanent(ServiceError::new("zoho", ErrorCode::InvalidRequest, msg))
}

/// Where a run stands between pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    /// Reading the deleted-records list (after the live records).
    #[serde(default)]
    deleted_phase: bool,
    since: Option<String>,
    #[serde(default)]
    page: usize,
    token: Option<String>,
    max_seen: Option<String>,
    deleted_since: Option<String>,
    #[serde(default)]
    deleted_page: usize,
}

pub struct ZohoAdapter {
    spec: &'static ZohoEntity,
    client: ZohoClient,
}

/// One adapter per table row.
pub fn adapters(client: &ZohoClient) -> Vec<Arc<dyn EntityAdapter>> {
    ENTITIES
        .iter()
        .map(|spec| {
            Arc::new(ZohoAdapter {
                spec,
                client: client.clone(),
            }) as Arc<dyn EntityAdapter>
        })
        .collect()
}

/// The record inside Zoho's `{"data": [...]}` answer.
fn first_record(body: &Value) -> Option<Value> {
    body.get("data")?.get(0).cloned()
}

impl ZohoAdapter {
    fn path(&self) -> String {
        format!("{CRM}/{}", self.spec.module)
    }

    /// Canonical values as Zoho fields.
    pub fn to_remote(spec: &ZohoEntity, values: &Value) -> Result<Map<String, Value>, SyncError> {
        let Some(obj) = values.as_object() else {
            return Err(bad("values must be an object"));
        };
        let mut out = Map::new();
        for (k, v) in obj {
            let Some((_, field, conv)) = spec.writable.iter().find(|(c, _, _)| c == k) else {
                return Err(bad(format!(
                    "{} cannot be written to {} (writable: {})",
                    k,
                    spec.entity,
                    spec.writable
                        .iter()
                        .map(|w| w.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let v = match (conv, v) {
                (_, Value::Null) => Value::Null,
                (Conv::Lookup, Value::String(s)) if s.is_empty() => Value::Null,
                (Conv::Lookup, v) => json!({"id": v}),
                (Conv::Plain, v) => v.clone(),
            };
            out.insert((*field).to_string(), v);
        }
        Ok(out)
    }

    async fn read_back(
        &self,
        conn: &ConnectionRecord,
        id: &str,
        op: &str,
    ) -> Result<Option<RemoteRecord>, ServiceError> {
        let answer = self
            .client
            .call(conn, &ZohoCall::get(format!("{}/{id}", self.path()), op))
            .await?;
        Ok(first_record(&answer.body).and_then(remote_record))
    }

    /// The record an earlier create of this intent made, found by the connection's intent
    /// field.
    async fn earlier(
        &self,
        conn: &ConnectionRecord,
        field: &str,
        intent_id: &str,
    ) -> Result<Option<RemoteRecord>, ServiceError> {
        let escaped = intent_id
            .replace('(', "\\(")
            .replace(')', "\\)")
            .replace(',', "\\,");
        let call = ZohoCall::get(
            format!("{}/search", self.path()),
            format!("sync/{}/search", self.spec.entity),
        )
        .query("criteria", format!("({field}:equals:{escaped})"));
        let answer = self.client.call(conn, &call).await?;
        Ok(first_record(&answer.body).and_then(remote_record))
    }

    fn created_id(&self, body: &Value) -> Result<String, ServiceError> {
        let rec = first_record(body).unwrap_or(Value::Null);
        if rec["status"] != "success" {
            return Err(crate::client::zoho_error(400, body));
        }
        rec["details"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ServiceError::internal("zoho", "insert answer without an id"))
    }
}

#[async_trait]
impl EntityAdapter for ZohoAdapter {
    fn entity(&self) -> &'static str {
        self.spec.entity
    }

    fn default_mapping(&self) -> Mapping {
        default_mapping(self.spec.entity).unwrap_or_else(|| Mapping::identity(&["id"]))
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let cursor = req.cursor.as_ref();
        let from_cursor = |k: &str| {
            cursor
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut pos: Position = match &req.position {
            Some(p) => serde_json::from_value(p.clone()).unwrap_or_default(),
            None => Position {
                since: from_cursor("since"),
                deleted_since: from_cursor("deleted_since"),
                page: 1,
                deleted_page: 1,
                ..Position::default()
            },
        };
        let per_page = req.page_size.clamp(1, MAX_PER_PAGE);
        let mut records = Vec::new();
        let mut done = false;
        if !pos.deleted_phase {
            let mut call = ZohoCall::get(self.path(), format!("sync/{}/list", self.spec.entity))
                .query("fields", self.spec.fields.join(","))
                .query("sort_by", "Modified_Time")
                .query("sort_order", "asc")
                .query("per_page", per_page.to_string());
            call = match &pos.token {
                Some(t) => call.query("page_token", t.clone()),
                None => call.query("page", pos.page.max(1).to_string()),
            };
            if let Some(since) = &pos.since {
                call = call.header("If-Modified-Since", since.clone());
            }
            let answer = self
                .client
                .call(conn, &call)
                .await
                .map_err(SyncError::from_service)?;
            records = match answer.body.get("data").and_then(Value::as_array) {
                Some(rows) => rows.iter().cloned().filter_map(remote_record).collect(),
                None => Vec::new(),
            };
            let info = &answer.body["info"];
            let more = info["more_records"].as_bool().unwrap_or(false) && !records.is_empty();
            let newest = records
                .iter()
                .filter_map(|r| r.version.as_ref().and_then(Version::time))
                .max();
            let seen = pos.max_seen.as_ref().and_then(|s| parse_time(&json!(s)));
            let max_seen = match (seen, newest) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            pos.max_seen = max_seen.map(fmt_time);
            if more {
                let since = pos.since.as_ref().and_then(|s| parse_time(&json!(s)));
                let restart = newest.map(|n| n - Duration::seconds(1));
                match (restart, since) {
                    // the window moves forward: start again at the newest time seen
                    (Some(r), s) if s.is_none_or(|s| r > s) => {
                        pos.since = Some(fmt_time(r));
                        pos.page = 1;
                        pos.token = None;
                    }
                    // the whole page shares a second: walk on within it
                    _ if pos.token.is_none() && (pos.page + 1) * per_page <= PAGE_WINDOW => {
                        pos.page += 1;
                    }
                    _ => match info["next_page_token"].as_str() {
                        Some(t) => pos.token = Some(t.to_string()),
                        None => {
                            return Err(SyncError::Transient(ServiceError::new(
                                "zoho",
                                ErrorCode::UpstreamRejected,
                                "Zoho gave no page_token past its 2,000-record window",
                            )))
                        }
                    },
                }
            } else {
                pos.deleted_phase = true;
                pos.deleted_page = 1;
            }
        } else {
            let mut call = ZohoCall::get(
                format!("{}/deleted", self.path()),
                format!("sync/{}/deleted", self.spec.entity),
            )
            .query("type", "all")
            .query("per_page", MAX_PER_PAGE.to_string())
            .query("page", pos.deleted_page.max(1).to_string());
            if let Some(since) = &pos.deleted_since {
                call = call.header("If-Modified-Since", since.clone());
            }
            let answer = self
                .client
                .call(conn, &call)
                .await
                .map_err(SyncError::from_service)?;
            if let Some(rows) = answer.body.get("data").and_then(Value::as_array) {
                for row in rows {
                    if let Some(id) = row["id"].as_str() {
                        records.push(RemoteRecord {
                            id: id.to_string(),
                            version: parse_time(&row["deleted_time"]).map(Version::Time),
                            raw: row.clone(),
                            deleted: true,
                        });
                    }
                }
            }
            let more = answer.body["info"]["more_records"]
                .as_bool()
                .unwrap_or(false);
            if more && pos.deleted_page * MAX_PER_PAGE < PAGE_WINDOW * 50 {
                pos.deleted_page += 1;
            } else {
                done = true;
            }
        }
        // The next run reads again from a little before the newest change seen; deletions
        // from a little before this run started.
        let next_since = pos
            .max_seen
            .as_ref()
            .and_then(|s| parse_time(&json!(s)))
            .map(|m| fmt_time(m - Duration::seconds(LOOKBACK_SECS)))
            .or_else(|| from_cursor("since"));
        let next_deleted = fmt_time(req.run_started_at - Duration::seconds(LOOKBACK_SECS));
        Ok(Page {
            records,
            position: serde_json::to_value(&pos).unwrap_or(Value::Null),
            done,
            cursor: json!({"since": next_since, "deleted_since": next_deleted}),
        })
    }

    async fn remote_ids(&self, _conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        // deletions come from Zoho's deleted-records list
        Ok(None)
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        if remote_id.is_empty() || !remote_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("'{remote_id}' is not a Zoho record id")));
        }
        self.read_back(conn, remote_id, &format!("sync/{}/get", self.spec.entity))
            .await
            .map_err(SyncError::from_service)
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let mut fields = Self::to_remote(self.spec, values)?;
        let intent_field = conn.setting("intent_field").to_string();
        if !intent_field.is_empty() {
            if let Some(found) = self
                .earlier(conn, &intent_field, intent_id)
                .await
                .map_err(SyncError::from_service)?
            {
                return Ok(found);
            }
            fields.insert(intent_field, json!(intent_id));
        }
        let call = ZohoCall::with_body(
            http::Method::POST,
            self.path(),
            json!({"data": [Value::Object(fields)], "trigger": []}),
            format!("sync/{}/create", self.spec.entity),
        );
        let answer = self
            .client
            .call(conn, &call)
            .await
            .map_err(SyncError::from_service)?;
        let id = self
            .created_id(&answer.body)
            .map_err(SyncError::from_service)?;
        self.read_back(conn, &id, &format!("sync/{}/get", self.spec.entity))
            .await
            .map_err(SyncError::from_service)?
            .ok_or_else(|| {
                SyncError::Transient(ServiceError::new(
                    "zoho",
                    ErrorCode::UpstreamUnavailable,
                    format!(
                        "Zoho did not return the {} it just created ({id})",
                        self.spec.module
                    ),
                ))
            })
    }

    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        let fields = Self::to_remote(self.spec, values)?;
        let call = ZohoCall::with_body(
            http::Method::PUT,
            format!("{}/{remote_id}", self.path()),
            json!({"data": [Value::Object(fields)], "trigger": []}),
            format!("sync/{}/update", self.spec.entity),
        );
        self.client
            .call(conn, &call)
            .await
            .map_err(SyncError::from_service)?;
        self.read_back(conn, remote_id, &format!("sync/{}/get", self.spec.entity))
            .await
            .map_err(SyncError::from_service)?
            .ok_or_else(|| {
                SyncError::Permanent(ServiceError::new(
                    "zoho",
                    ErrorCode::NotFound,
                    format!("Zoho has no {} {remote_id}", self.spec.module),
                ))
            })
    }

    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError> {
        let call = ZohoCall {
            method: http::Method::DELETE,
            ..ZohoCall::get(
                format!("{}/{remote_id}", self.path()),
                format!("sync/{}/delete", self.spec.entity),
            )
        };
        self.client
            .call(conn, &call)
            .await
            .map_err(SyncError::from_service)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mappings_are_valid_and_map_zoho_records() {
        for e in ENTITIES {
            assert!(default_mapping(e.entity).is_some(), "{}", e.entity);
        }
        let lead = json!({"id": "1", "Last_Name": "Lovelace", "First_Name": null, "Email": "a@b.c",
                          "Annual_Revenue": 10.5, "Owner": {"name": "Admin", "id": "2"},
                          "Modified_Time": "2026-12-05T10:00:00+05:30"});
        let rec = remote_record(lead).unwrap();
        assert_eq!(
            rec.version,
            Some(Version::Time(
                parse_time(&json!("2026-12-05T04:30:00+00:00")).unwrap()
            ))
        );
        let deal = ZohoAdapter::to_remote(
            entity("crm_deal").unwrap(),
            &json!({"name": "D", "contact_id": "42"}),
        )
        .unwrap();
        assert_eq!(deal["Contact_Name"], json!({"id": "42"}));
        assert!(
            ZohoAdapter::to_remote(entity("crm_lead").unwrap(), &json!({"owner": "x"})).is_err()
        );
    }

    #[test]
    fn field_names_are_zoho_api_names() {
        assert!(valid_field_name("BAC_Intent_Id"));
        assert!(!valid_field_name("bad name"));
        assert!(!valid_field_name("_x"));
    }
}
