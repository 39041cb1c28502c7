//! Zoho's products besides CRM for the sync engine: Books invoices and customers, Inventory
//! items, Desk tickets, People employees, and Mail's sent messages (written, never listed).
//! One [`AppEntity`] table row per entity says where its records live, how its product
//! pages and filters by modification time ([`Listing`]) and how a create is written; one
//! [`AppAdapter`] serves them all.
//!
//! Incremental pulls read records changed since the last run, oldest change first, and
//! never move by offset alone: when a page is full, the next request starts again at the
//! newest modification time seen less a second (a record changed meanwhile moves to the end
//! and is read again, never skipped); only a page whose records all share that second moves
//! on by offset. None of these products lists deleted records, so deletions are found by
//! listing every id (the engine's reconcile), at most once per `reconcile_every` per
//! connection and entity, since it costs a call per page.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration as StdDuration, Instant},
};

use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{
    mapping::rules::{datetime, fields, optional, rename},
    EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncError, Version,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::{Product, ZohoCall, ZohoClient};

/// How a product lists records changed since a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Books and Inventory: `page`/`per_page` (at most 200), sorted by
    /// `last_modified_time` ascending, filtered by `last_modified_time`; the records under
    /// `key`, `page_context.has_more_page`.
    Finance { key: &'static str },
    /// Desk: `GET <path>/search?modifiedTimeRange=<from>,<to>` with `from`/`limit` (at most
    /// 100), sorted by `modifiedTime`; every id from `GET <path>`.
    Desk,
    /// People: `getRecords` with `sIndex` (1-based), `limit` (at most 200) and
    /// `modifiedtime` in milliseconds; each record under its record id.
    People,
    /// Not listed (Mail's messages are sent, not read back).
    Unlisted,
}

/// One Zoho entity of a product other than CRM.
#[derive(Debug)]
pub struct AppEntity {
    /// Canonical name: topic `bac.zoho.<entity>.v1`.
    pub entity: &'static str,
    pub product: Product,
    /// The collection's path on the product's host.
    pub path: &'static str,
    pub listing: Listing,
    /// Fixed query parameters of every list (`contact_type=customer`).
    pub filter: &'static [(&'static str, &'static str)],
    /// The key of one record in a get or create answer (`invoice`; empty: the body itself).
    pub one: &'static str,
    pub id_key: &'static str,
    /// The record's modification time as [`parse_any_time`] reads it.
    pub modified_key: &'static str,
    pub mapping: fn() -> Value,
}

/// A Books/Inventory time (`2026-12-05T10:15:30+0530`).
fn finance_time(target: &str, source: &str) -> Value {
    datetime(target, source, "%Y-%m-%dT%H:%M:%S%z")
}
fn rfc_time(target: &str, source: &str) -> Value {
    datetime(target, source, "rfc3339")
}

/// The key People records carry their modification time under once read: People gives it
/// as milliseconds in a string, which the adapter adds as RFC 3339 for mappings to use.
pub const PEOPLE_MODIFIED: &str = "modified_at";

pub const ENTITIES: &[AppEntity] = &[
    AppEntity {
        entity: "books_invoice",
        product: Product::Books,
        path: "/books/v3/invoices",
        listing: Listing::Finance { key: "invoices" },
        filter: &[],
        one: "invoice",
        id_key: "invoice_id",
        modified_key: "last_modified_time",
        mapping: || {
            fields(vec![
                rename("id", "invoice_id"),
                rename("invoice_number", "invoice_number"),
                rename("customer_id", "customer_id"),
                optional("customer_name", "customer_name"),
                rename("status", "status"),
                optional("date", "date"),
                optional("due_date", "due_date"),
                optional("reference_number", "reference_number"),
                optional("currency_code", "currency_code"),
                rename("total", "total"),
                rename("balance", "balance"),
                finance_time("created_time", "created_time"),
                finance_time("modified_time", "last_modified_time"),
            ])
        },
    },
    AppEntity {
        entity: "books_customer",
        product: Product::Books,
        path: "/books/v3/contacts",
        listing: Listing::Finance { key: "contacts" },
        filter: &[("contact_type", "customer")],
        one: "contact",
        id_key: "contact_id",
        modified_key: "last_modified_time",
        mapping: || {
            fields(vec![
                rename("id", "contact_id"),
                rename("name", "contact_name"),
                optional("company_name", "company_name"),
                optional("email", "email"),
                optional("phone", "phone"),
                optional("status", "status"),
                optional("currency_code", "currency_code"),
                rename("outstanding", "outstanding_receivable_amount"),
                finance_time("created_time", "created_time"),
                finance_time("modified_time", "last_modified_time"),
            ])
        },
    },
    AppEntity {
        entity: "inventory_item",
        product: Product::Inventory,
        path: "/inventory/v1/items",
        listing: Listing::Finance { key: "items" },
        filter: &[],
        one: "item",
        id_key: "item_id",
        modified_key: "last_modified_time",
        mapping: || {
            fields(vec![
                rename("id", "item_id"),
                rename("name", "name"),
                optional("sku", "sku"),
                optional("unit", "unit"),
                optional("status", "status"),
                rename("rate", "rate"),
                rename("stock_on_hand", "stock_on_hand"),
                rename("available_stock", "available_stock"),
                finance_time("created_time", "created_time"),
                finance_time("modified_time", "last_modified_time"),
            ])
        },
    },
    AppEntity {
        entity: "desk_ticket",
        product: Product::Desk,
        path: "/api/v1/tickets",
        listing: Listing::Desk,
        filter: &[],
        one: "",
        id_key: "id",
        modified_key: "modifiedTime",
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("ticket_number", "ticketNumber"),
                rename("subject", "subject"),
                optional("description", "description"),
                optional("email", "email"),
                optional("priority", "priority"),
                optional("status", "status"),
                optional("contact_id", "contactId"),
                optional("department_id", "departmentId"),
                optional("channel", "channel"),
                rfc_time("created_time", "createdTime"),
                rfc_time("modified_time", "modifiedTime"),
            ])
        },
    },
    AppEntity {
        entity: "people_employee",
        product: Product::People,
        path: "/people/api/forms/employee/getRecords",
        listing: Listing::People,
        filter: &[],
        one: "",
        id_key: "Zoho_ID",
        modified_key: PEOPLE_MODIFIED,
        mapping: || {
            fields(vec![
                rename("id", "Zoho_ID"),
                optional("employee_id", "EmployeeID"),
                optional("first_name", "FirstName"),
                optional("last_name", "LastName"),
                optional("email", "EmailID"),
                optional("department", "Department"),
                optional("designation", "Designation"),
                optional("status", "Employeestatus"),
                rfc_time("modified_time", PEOPLE_MODIFIED),
            ])
        },
    },
    AppEntity {
        entity: "mail_message",
        product: Product::Mail,
        path: "/api/accounts",
        listing: Listing::Unlisted,
        filter: &[],
        one: "",
        id_key: "messageId",
        modified_key: "sentDateInGMT",
        mapping: || {
            fields(vec![
                rename("id", "messageId"),
                rename("from", "fromAddress"),
                rename("to", "toAddress"),
                optional("subject", "subject"),
            ])
        },
    },
];

/// The table entry of `entity`.
pub fn entity(entity: &str) -> Option<&'static AppEntity> {
    ENTITIES.iter().find(|e| e.entity == entity)
}

pub fn default_mapping(entity: &str) -> Option<Mapping> {
    self::entity(entity).and_then(|e| Mapping::parse(&(e.mapping)()).ok())
}

/// A time as any of these products writes it: RFC 3339 (Desk), Books' offset without a
/// colon (`+0530`), or milliseconds since the epoch (People, Mail).
pub fn parse_any_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>()
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// The filter Books and Inventory take (`last_modified_time`).
pub fn finance_time_param(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

/// Desk's time format (`2026-12-05T10:15:30.000Z`).
pub fn desk_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A record of `spec` as the engine sees it.
pub fn remote_record(spec: &AppEntity, row: Value) -> Option<RemoteRecord> {
    let id = text(&row[spec.id_key])?;
    Some(RemoteRecord {
        id,
        version: parse_any_time(&row[spec.modified_key]).map(Version::Time),
        raw: row,
        deleted: false,
    })
}

/// People's `{"response": {"result": [{"<id>": [record]}]}}` as records with their id
/// (`Zoho_ID`) and their modification time as RFC 3339.
pub fn people_records(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in body["response"]["result"].as_array().into_iter().flatten() {
        let Some(obj) = entry.as_object() else {
            continue;
        };
        for (id, forms) in obj {
            let Some(mut rec) = forms.get(0).and_then(Value::as_object).cloned() else {
                continue;
            };
            rec.insert("Zoho_ID".into(), json!(id));
            if let Some(t) = rec.get("ModifiedTime").and_then(parse_any_time) {
                rec.insert(PEOPLE_MODIFIED.into(), json!(t.to_rfc3339()));
            }
            out.push(Value::Object(rec));
        }
    }
    out
}

/// Largest page each product gives.
pub fn max_page(listing: Listing) -> usize {
    match listing {
        Listing::Desk => 100,
        _ => 200,
    }
}

/// Records modified at or after `since` (all when `None`), oldest first, from `offset`: the
/// records and whether more may follow.
pub async fn list_changed(
    client: &ZohoClient,
    conn: &ConnectionRecord,
    spec: &AppEntity,
    since: Option<DateTime<Utc>>,
    offset: usize,
    limit: usize,
    op: &str,
) -> Result<(Vec<Value>, bool), ServiceError> {
    let limit = limit.clamp(1, max_page(spec.listing));
    let mut call = ZohoCall::get(spec.path, op).on(spec.product);
    for (k, v) in spec.filter {
        call = call.query(k, *v);
    }
    match spec.listing {
        Listing::Finance { key } => {
            let org = client.org_of(conn, spec.product).await?;
            call = call
                .query("organization_id", org)
                .query("page", (offset / limit + 1).to_string())
                .query("per_page", limit.to_string())
                .query("sort_column", "last_modified_time")
                .query("sort_order", "A");
            if let Some(t) = since {
                call = call.query("last_modified_time", finance_time_param(t));
            }
            let answer = client.call(conn, &call).await?;
            let rows = answer.body[key].as_array().cloned().unwrap_or_default();
            let more = answer.body["page_context"]["has_more_page"]
                .as_bool()
                .unwrap_or(false);
            Ok((rows, more))
        }
        Listing::Desk => {
            let org = client.org_of(conn, Product::Desk).await?;
            let from = since.unwrap_or(DateTime::UNIX_EPOCH);
            // the range must end somewhere; a day ahead covers clocks that disagree
            let to = Utc::now() + Duration::days(1);
            call.path = format!("{}/search", spec.path);
            call = call
                .header("orgId", org)
                .query(
                    "modifiedTimeRange",
                    format!("{},{}", desk_time(from), desk_time(to)),
                )
                .query("sortBy", "modifiedTime")
                .query("from", offset.to_string())
                .query("limit", limit.to_string());
            let answer = client.call(conn, &call).await?;
            let rows = answer.body["data"].as_array().cloned().unwrap_or_default();
            let more = rows.len() >= limit;
            Ok((rows, more))
        }
        Listing::People => {
            call = call
                .query("sIndex", (offset + 1).to_string())
                .query("limit", limit.to_string());
            if let Some(t) = since {
                call = call.query("modifiedtime", t.timestamp_millis().to_string());
            }
            let answer = client.call(conn, &call).await?;
            let rows = people_records(&answer.body);
            let more = rows.len() >= limit;
            Ok((rows, more))
        }
        Listing::Unlisted => Ok((Vec::new(), false)),
    }
}

/// One record by id (`None`: Zoho has none).
pub async fn get_one(
    client: &ZohoClient,
    conn: &ConnectionRecord,
    spec: &AppEntity,
    id: &str,
    op: &str,
) -> Result<Option<Value>, ServiceError> {
    let mut call = ZohoCall::get(format!("{}/{id}", spec.path), op).on(spec.product);
    match spec.listing {
        Listing::Finance { .. } => {
            call = call.query("organization_id", client.org_of(conn, spec.product).await?);
        }
        Listing::Desk => call = call.header("orgId", client.org_of(conn, Product::Desk).await?),
        Listing::People | Listing::Unlisted => {
            return Err(ServiceError::new(
                "zoho",
                ErrorCode::InvalidRequest,
                format!("{} records are not read one by one", spec.entity),
            ))
        }
    }
    match client.call(conn, &call).await {
        Ok(a) if spec.one.is_empty() => Ok(Some(a.body).filter(|b| !b.is_null())),
        Ok(a) => Ok(a.body.get(spec.one).cloned()),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn bad(msg: impl Into<String>) -> SyncError {
    SyncError::Permanent(ServiceError::new("zoho", ErrorCode::InvalidRequest, msg))
}

/// Where a run stands between pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    since: Option<String>,
    #[serde(default)]
    offset: usize,
    max_seen: Option<String>,
}

/// The adapter of every [`AppEntity`].
pub struct AppAdapter {
    spec: &'static AppEntity,
    client: ZohoClient,
    reconcile_every: StdDuration,
    /// When each connection's ids were last listed.
    listed: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Seconds between two listings of every id of an entity (finding deletions):
/// `BAC_ZOHO_RECONCILE_SECS`, default an hour.
pub fn reconcile_every_from_env() -> StdDuration {
    StdDuration::from_secs(
        std::env::var("BAC_ZOHO_RECONCILE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3600),
    )
}

pub fn adapters(client: &ZohoClient, reconcile_every: StdDuration) -> Vec<Arc<dyn EntityAdapter>> {
    ENTITIES
        .iter()
        .map(|spec| {
            Arc::new(AppAdapter {
                spec,
                client: client.clone(),
                reconcile_every,
                listed: Arc::default(),
            }) as Arc<dyn EntityAdapter>
        })
        .collect()
}

/// Canonical values of a create as the product's body; `Err` names what is wrong.
pub fn create_body(entity: &str, v: &Value) -> Result<Value, String> {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut body = Map::new();
    let mut put = |zk: &str, val: Value| {
        if !val.is_null() && val != json!("") {
            body.insert(zk.to_string(), val);
        }
    };
    match entity {
        "books_invoice" => {
            put("customer_id", json!(s("customer_id")));
            put("date", json!(s("date")));
            put("due_date", json!(s("due_date")));
            put("reference_number", json!(s("reference_number")));
            put("currency_code", json!(s("currency_code")));
            put("notes", json!(s("notes")));
            put("line_items", v["line_items"].clone());
        }
        "books_customer" => {
            put("contact_name", json!(s("name")));
            put("company_name", json!(s("company_name")));
            put("email", json!(s("email")));
            put("phone", json!(s("phone")));
            put("contact_type", json!("customer"));
        }
        "desk_ticket" => {
            for (canon, zk) in [
                ("subject", "subject"),
                ("description", "description"),
                ("email", "email"),
                ("phone", "phone"),
                ("priority", "priority"),
                ("status", "status"),
                ("contact_id", "contactId"),
                ("department_id", "departmentId"),
            ] {
                put(zk, json!(s(canon)));
            }
            if s("contact_id").is_empty() {
                let email = s("email");
                if email.is_empty() {
                    return Err("a ticket needs email or contact_id (its requester)".into());
                }
                // Desk finds the contact by email or creates it with this name
                let last = email.split('@').next().unwrap_or(&email).to_string();
                put("contact", json!({"email": email, "lastName": last}));
            }
        }
        "mail_message" => {
            put("fromAddress", json!(s("from")));
            put("toAddress", json!(s("to")));
            put("ccAddress", json!(s("cc")));
            put("bccAddress", json!(s("bcc")));
            put("subject", json!(s("subject")));
            put("content", json!(s("body")));
            put(
                "mailFormat",
                json!(if v["plain_text"] == json!(true) {
                    "plaintext"
                } else {
                    "html"
                }),
            );
        }
        other => {
            return Err(format!(
                "{other} records cannot be created through the fleet"
            ))
        }
    }
    Ok(Value::Object(body))
}

impl AppAdapter {
    fn op(&self, what: &str) -> String {
        format!("sync/{}/{what}", self.spec.entity)
    }

    /// Every id upstream, page by page.
    async fn all_ids(&self, conn: &ConnectionRecord) -> Result<Vec<String>, ServiceError> {
        let limit = max_page(self.spec.listing);
        let mut ids = Vec::new();
        let mut offset = 0;
        loop {
            let (rows, more) = match self.spec.listing {
                // Desk's plain list holds every ticket; its search only changed ones
                Listing::Desk => {
                    let call = ZohoCall::get(self.spec.path, self.op("ids"))
                        .on(Product::Desk)
                        .header("orgId", self.client.org_of(conn, Product::Desk).await?)
                        .query("from", offset.to_string())
                        .query("limit", limit.to_string())
                        .query("sortBy", "createdTime");
                    let answer = self.client.call(conn, &call).await?;
                    let rows = answer.body["data"].as_array().cloned().unwrap_or_default();
                    let more = rows.len() >= limit;
                    (rows, more)
                }
                _ => {
                    list_changed(
                        &self.client,
                        conn,
                        self.spec,
                        None,
                        offset,
                        limit,
                        &self.op("ids"),
                    )
                    .await?
                }
            };
            offset += rows.len();
            ids.extend(rows.iter().filter_map(|r| text(&r[self.spec.id_key])));
            if !more || rows.is_empty() || offset >= 1_000_000 {
                return Ok(ids);
            }
        }
    }
}

#[async_trait]
impl EntityAdapter for AppAdapter {
    fn entity(&self) -> &'static str {
        self.spec.entity
    }

    fn default_mapping(&self) -> Mapping {
        default_mapping(self.spec.entity).unwrap_or_else(|| Mapping::identity(&["id"]))
    }

    /// A sent mail cannot be read back: a retried send answers the first send's answer.
    fn refetchable(&self) -> bool {
        self.spec.listing != Listing::Unlisted
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let from_cursor = req
            .cursor
            .as_ref()
            .and_then(|c| c.get("since"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut pos: Position = match &req.position {
            Some(p) => serde_json::from_value(p.clone()).unwrap_or_default(),
            None => Position {
                since: from_cursor.clone(),
                ..Position::default()
            },
        };
        let since = pos.since.as_deref().and_then(|s| parse_any_time(&json!(s)));
        let limit = req.page_size.clamp(1, max_page(self.spec.listing));
        let (rows, more) = list_changed(
            &self.client,
            conn,
            self.spec,
            since,
            pos.offset,
            limit,
            &self.op("list"),
        )
        .await
        .map_err(SyncError::from_service)?;
        let records: Vec<RemoteRecord> = rows
            .into_iter()
            .filter_map(|r| remote_record(self.spec, r))
            .collect();
        let newest = records
            .iter()
            .filter_map(|r| r.version.as_ref().and_then(Version::time))
            .max();
        let seen = pos
            .max_seen
            .as_deref()
            .and_then(|s| parse_any_time(&json!(s)));
        pos.max_seen = match (seen, newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.to_rfc3339());
        let done = !more || records.is_empty();
        if !done {
            match newest.map(|n| n - Duration::seconds(1)) {
                // the window moves forward: start again at the newest time seen
                Some(r) if since.is_none_or(|s| r > s) => {
                    pos.since = Some(r.to_rfc3339());
                    pos.offset = 0;
                }
                // the whole page shares a second: walk on within it
                _ => pos.offset += records.len(),
            }
        }
        let next_since = pos
            .max_seen
            .as_deref()
            .and_then(|s| parse_any_time(&json!(s)))
            .map(|m| (m - Duration::seconds(crate::sync::LOOKBACK_SECS)).to_rfc3339())
            .or(from_cursor);
        Ok(Page {
            records,
            position: serde_json::to_value(&pos).unwrap_or(Value::Null),
            done,
            cursor: json!({ "since": next_since }),
        })
    }

    async fn remote_ids(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        if self.spec.listing == Listing::Unlisted {
            return Ok(None);
        }
        let key = conn.id.clone();
        let due = self.listed.lock().map_or(true, |m| {
            m.get(&key)
                .is_none_or(|at| at.elapsed() >= self.reconcile_every)
        });
        if !due {
            return Ok(None);
        }
        let ids = self.all_ids(conn).await.map_err(SyncError::from_service)?;
        if let Ok(mut m) = self.listed.lock() {
            m.insert(key, Instant::now());
        }
        Ok(Some(ids))
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        if remote_id.is_empty() || !remote_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("'{remote_id}' is not a Zoho record id")));
        }
        let row = get_one(&self.client, conn, self.spec, remote_id, &self.op("get"))
            .await
            .map_err(SyncError::from_service)?;
        Ok(row.and_then(|r| remote_record(self.spec, r)))
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        _intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        // a retried create with the same intent finds the first through the engine's ledger
        let body = create_body(self.spec.entity, values).map_err(bad)?;
        let mut call =
            ZohoCall::with_body(http::Method::POST, self.spec.path, body, self.op("create"))
                .on(self.spec.product);
        match self.spec.product {
            Product::Books | Product::Inventory => {
                let org = self
                    .client
                    .org_of(conn, self.spec.product)
                    .await
                    .map_err(SyncError::from_service)?;
                call = call.query("organization_id", org);
            }
            Product::Desk => {
                let org = self
                    .client
                    .org_of(conn, Product::Desk)
                    .await
                    .map_err(SyncError::from_service)?;
                call = call.header("orgId", org);
                let given = call.body.as_ref().map(|b| b["departmentId"].clone());
                if given.is_none_or(|d| d.is_null()) {
                    let dept = self
                        .desk_department(conn)
                        .await
                        .map_err(SyncError::from_service)?;
                    if let Some(Value::Object(b)) = call.body.as_mut() {
                        b.insert("departmentId".into(), json!(dept));
                    }
                }
            }
            Product::Mail => {
                let account = self
                    .client
                    .org_of(conn, Product::Mail)
                    .await
                    .map_err(SyncError::from_service)?;
                call.path = format!("/api/accounts/{account}/messages");
                if let Some(Value::Object(b)) = call.body.as_mut() {
                    if !b.contains_key("fromAddress") {
                        let from = self
                            .mail_address(conn)
                            .await
                            .map_err(SyncError::from_service)?;
                        b.insert("fromAddress".into(), json!(from));
                    }
                }
            }
            Product::Crm | Product::People => {
                return Err(bad(format!(
                    "{} records cannot be created through the fleet",
                    self.spec.entity
                )))
            }
        }
        let answer = self
            .client
            .call(conn, &call)
            .await
            .map_err(SyncError::from_service)?;
        let row = match self.spec.product {
            Product::Mail => answer.body["data"].clone(),
            _ if self.spec.one.is_empty() => answer.body,
            _ => answer.body[self.spec.one].clone(),
        };
        remote_record(self.spec, row).ok_or_else(|| {
            SyncError::Transient(ServiceError::new(
                "zoho",
                ErrorCode::UpstreamUnavailable,
                format!(
                    "Zoho answered the {} create without an id",
                    self.spec.entity
                ),
            ))
        })
    }

    async fn update(
        &self,
        _conn: &ConnectionRecord,
        _remote_id: &str,
        _values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        Err(bad(format!(
            "{} is synced one way (Zoho to the platform)",
            self.spec.entity
        )))
    }

    async fn delete(&self, _conn: &ConnectionRecord, _remote_id: &str) -> Result<(), SyncError> {
        Err(bad(format!(
            "{} is synced one way (Zoho to the platform)",
            self.spec.entity
        )))
    }
}

impl AppAdapter {
    /// The department a ticket goes to: the connection's `desk_department_id`, else Desk's
    /// default one.
    async fn desk_department(&self, conn: &ConnectionRecord) -> Result<String, ServiceError> {
        if !conn.setting("desk_department_id").is_empty() {
            return Ok(conn.setting("desk_department_id").to_string());
        }
        let call = ZohoCall::get("/api/v1/departments", "desk/departments")
            .on(Product::Desk)
            .header("orgId", self.client.org_of(conn, Product::Desk).await?);
        let answer = self.client.call(conn, &call).await?;
        let list = answer.body["data"].as_array().cloned().unwrap_or_default();
        list.iter()
            .find(|d| d["isDefault"] == json!(true))
            .or(list.first())
            .and_then(|d| text(&d["id"]))
            .ok_or_else(|| {
                ServiceError::new(
                    "zoho",
                    ErrorCode::InvalidRequest,
                    "Zoho Desk lists no department to put the ticket in; set config.desk_department_id",
                )
            })
    }

    /// The Mail account's primary address (the sender when a request names none).
    async fn mail_address(&self, conn: &ConnectionRecord) -> Result<String, ServiceError> {
        let call = ZohoCall::get("/api/accounts", "mail/accounts").on(Product::Mail);
        let answer = self.client.call(conn, &call).await?;
        let account = self.client.org_of(conn, Product::Mail).await?;
        answer.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| text(&a["accountId"]).as_deref() == Some(account.as_str()))
            .and_then(|a| text(&a["primaryEmailAddress"]))
            .ok_or_else(|| {
                ServiceError::new(
                    "zoho",
                    ErrorCode::InvalidRequest,
                    "the Zoho Mail account has no address to send from; give from",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_times_read_in_every_dialect() {
        for e in ENTITIES {
            assert!(default_mapping(e.entity).is_some(), "{}", e.entity);
        }
        let t = parse_any_time(&json!("2026-12-05T10:00:00+0530")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-05T04:30:00+00:00");
        let d = parse_any_time(&json!("2026-12-05T04:30:00.000Z")).unwrap();
        assert_eq!(d, t);
        let ms = parse_any_time(&json!(t.timestamp_millis().to_string())).unwrap();
        assert_eq!(ms, t);
        assert_eq!(desk_time(t), "2026-12-05T04:30:00.000Z");
        assert_eq!(finance_time_param(t), "2026-12-05T04:30:00+0000");
        let inv = json!({"invoice_id": "7", "invoice_number": "INV-000001", "customer_id": "3",
                         "status": "draft", "total": 10.5, "balance": 10.5,
                         "last_modified_time": "2026-12-05T10:00:00+0530",
                         "created_time": "2026-12-05T10:00:00+0530"});
        let m = default_mapping("books_invoice").unwrap();
        let canon = m.apply(&inv).unwrap();
        assert_eq!(canon["modified_time"], json!("2026-12-05T04:30:00Z"));
        assert_eq!(
            remote_record(entity("books_invoice").unwrap(), inv)
                .unwrap()
                .version,
            Some(Version::Time(t))
        );
    }

    #[test]
    fn people_answers_become_records_with_their_id_and_time() {
        let body = json!({"response": {"result": [
            {"41000000001": [{"EmployeeID": "EMP1", "FirstName": "Ada", "ModifiedTime": "1764930600000"}]},
            {"41000000002": [{"EmployeeID": "EMP2", "ModifiedTime": "1764930601000"}]}
        ], "status": 0}});
        let rows = people_records(&body);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Zoho_ID"], json!("41000000001"));
        let rec = remote_record(entity("people_employee").unwrap(), rows[1].clone()).unwrap();
        assert_eq!(rec.id, "41000000002");
        assert!(rec.version.is_some());
        assert!(people_records(&json!({"response": {"result": [], "status": 1}})).is_empty());
    }

    #[test]
    fn the_documented_ticket_body_finds_its_requester_by_email() {
        let body = create_body(
            "desk_ticket",
            &json!({"subject": "Login Issue", "description": "Unable to login to account",
                    "email": "user@example.com", "priority": "High", "status": "Open"}),
        )
        .unwrap();
        assert_eq!(
            body["contact"],
            json!({"email": "user@example.com", "lastName": "user"})
        );
        assert_eq!(body["priority"], json!("High"));
        assert!(body.get("departmentId").is_none());
        assert!(create_body("desk_ticket", &json!({"subject": "x"})).is_err());
        assert!(create_body("people_employee", &json!({})).is_err());
        let mail =
            create_body("mail_message", &json!({"to": "a@b.c", "plain_text": true})).unwrap();
        assert_eq!(mail["mailFormat"], json!("plaintext"));
    }
}
