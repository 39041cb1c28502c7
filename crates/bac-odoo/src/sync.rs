//! Odoo's entities for the sync engine (`bac_sync`): one [`OdooEntity`] table row per
//! synced model (which fields to read, the default mapping to the canonical record, which
//! canonical fields can be written back and as what), and one [`OdooAdapter`] that serves
//! them all through [`Remote`].
//!
//! The incremental cursor is `write_date`. Odoo stores it finer than it reads it back (to the
//! second), so a run fixes its lower bound `write_date >= since` and pages by `id > last`;
//! the next run starts at the newest `write_date` seen, but never later than a minute before
//! this run started, so a record changed during the run is read again by the next one. The
//! re-read records are the same content, which the mirror's hash turns into no event.
use std::sync::Arc;

use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{
    mapping::rules::{datetime, fields, optional, rename},
    EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncError, Version,
};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::remote::Remote;

/// How a canonical value is written to an Odoo field.
#[derive(Debug, Clone, Copy)]
pub enum Conv {
    Plain,
    /// low | medium | high | very_high -> '0'..'3'
    Priority,
    /// A many2one: the related record's id.
    Id,
}

/// One synced Odoo model.
#[derive(Debug)]
pub struct OdooEntity {
    pub entity: &'static str,
    pub model: &'static str,
    /// Read on every pull (they exist in Odoo 16 to 19).
    pub fields: &'static [&'static str],
    /// Always part of the domain (invoices are `account.move` rows of type out_invoice).
    pub domain: &'static [(&'static str, &'static str, &'static str)],
    /// Canonical field -> Odoo field for writes (two-way sync).
    pub writable: &'static [(&'static str, &'static str, Conv)],
    /// Odoo values every create of the entity carries unless it gives its own, whichever
    /// door it came through (REST, gRPC, a Kafka command): a lead is created as an
    /// opportunity, in the pipeline, as the documents' CRM expects.
    pub create_defaults: &'static [(&'static str, &'static str)],
    /// The default mapping (JSON, see `bac_sync::mapping`).
    pub mapping: fn() -> Value,
}

impl OdooEntity {
    /// Adds [`OdooEntity::create_defaults`] the values do not set.
    pub fn create_defaults_into(&self, vals: &mut Value) {
        for (f, v) in self.create_defaults {
            if vals.get(*f).is_none() {
                vals[*f] = json!(v);
            }
        }
    }

    /// Odoo `vals` of the writable fields as the canonical values the entity's adapter writes
    /// back as the same `vals` (so a REST route that builds Odoo values takes the one write
    /// path, [`bac_sync::SyncEngine::create`]).
    pub fn canonical(&self, vals: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for (canonical, odoo, _) in self.writable {
            if let Some(v) = vals.get(*odoo) {
                out.insert((*canonical).to_string(), v.clone());
            }
        }
        Value::Object(out)
    }
}

/// How far before the newest change seen an incremental run starts, unless the connection
/// says (`sync_lookback_seconds`): Odoo runs a request for up to 120 s by default, crons
/// longer.
pub const DEFAULT_LOOKBACK_SECS: i64 = 300;

fn lookback_secs(conn: &ConnectionRecord) -> i64 {
    conn.config
        .get("sync_lookback_seconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_LOOKBACK_SECS)
        .clamp(60, 86_400)
}

/// The table entry of `entity`.
pub fn entity(entity: &str) -> Option<&'static OdooEntity> {
    ENTITIES.iter().find(|e| e.entity == entity)
}

/// An Odoo datetime (`2026-12-05 10:15:30`, UTC).
fn odoo_time(target: &str, source: &str) -> Value {
    datetime(target, source, "%Y-%m-%d %H:%M:%S")
}
/// An Odoo date (`2026-12-05`) is kept as it is; `false` (unset) is null.
fn odoo_date(target: &str, source: &str) -> Value {
    optional(target, source)
}
fn many2one(target: &str, source: &str) -> [Value; 2] {
    [
        json!({"target": format!("{target}_id"), "source": format!("{source}.0")}),
        json!({"target": format!("{target}_name"), "source": format!("{source}.1")}),
    ]
}

pub const ENTITIES: &[OdooEntity] = &[
    OdooEntity {
        entity: "crm_lead",
        model: "crm.lead",
        fields: &[
            "active",
            "name",
            "partner_name",
            "email_from",
            "phone",
            "expected_revenue",
            "priority",
            "stage_id",
            "create_date",
            "write_date",
        ],
        domain: &[],
        writable: &[
            ("name", "name", Conv::Plain),
            ("partner_name", "partner_name", Conv::Plain),
            ("email", "email_from", Conv::Plain),
            ("phone", "phone", Conv::Plain),
            ("expected_revenue", "expected_revenue", Conv::Plain),
            ("priority", "priority", Conv::Priority),
        ],
        create_defaults: &[("type", "opportunity")],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                rename("active", "active"),
                optional("partner_name", "partner_name"),
                optional("email", "email_from"),
                optional("phone", "phone"),
                rename("expected_revenue", "expected_revenue"),
                json!({"target": "priority", "source": "priority", "transforms": [
                    {"op": "lookup", "table": {"0": "low", "1": "medium", "2": "high", "3": "very_high"},
                     "default": "low"}]}),
                json!({"target": "stage", "source": "stage_id.1"}),
                odoo_time("create_date", "create_date"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "partner",
        model: "res.partner",
        fields: &[
            "active",
            "name",
            "email",
            "phone",
            "is_company",
            "city",
            "ref",
            "write_date",
        ],
        domain: &[],
        writable: &[
            ("name", "name", Conv::Plain),
            ("email", "email", Conv::Plain),
            ("phone", "phone", Conv::Plain),
            ("city", "city", Conv::Plain),
            ("is_company", "is_company", Conv::Plain),
        ],
        create_defaults: &[],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                rename("active", "active"),
                optional("email", "email"),
                optional("phone", "phone"),
                rename("is_company", "is_company"),
                optional("city", "city"),
                optional("ref", "ref"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "sale_order",
        model: "sale.order",
        fields: &[
            "name",
            "partner_id",
            "state",
            "date_order",
            "client_order_ref",
            "amount_untaxed",
            "amount_tax",
            "amount_total",
            "write_date",
        ],
        domain: &[],
        writable: &[
            ("partner_id", "partner_id", Conv::Id),
            ("client_order_ref", "client_order_ref", Conv::Plain),
        ],
        create_defaults: &[],
        mapping: || {
            let [pid, pname] = many2one("partner", "partner_id");
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                pid,
                pname,
                rename("state", "state"),
                odoo_time("date_order", "date_order"),
                optional("client_order_ref", "client_order_ref"),
                rename("amount_untaxed", "amount_untaxed"),
                rename("amount_tax", "amount_tax"),
                rename("amount_total", "amount_total"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "invoice",
        model: "account.move",
        fields: &[
            "name",
            "partner_id",
            "state",
            "payment_state",
            "invoice_date",
            "invoice_date_due",
            "ref",
            "amount_untaxed",
            "amount_tax",
            "amount_total",
            "write_date",
        ],
        domain: &[("move_type", "=", "out_invoice")],
        writable: &[
            ("partner_id", "partner_id", Conv::Id),
            ("ref", "ref", Conv::Plain),
        ],
        create_defaults: &[],
        mapping: || {
            let [pid, pname] = many2one("partner", "partner_id");
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                pid,
                pname,
                rename("state", "state"),
                optional("payment_state", "payment_state"),
                odoo_date("invoice_date", "invoice_date"),
                odoo_date("due_date", "invoice_date_due"),
                optional("ref", "ref"),
                rename("amount_untaxed", "amount_untaxed"),
                rename("amount_tax", "amount_tax"),
                rename("amount_total", "amount_total"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "product",
        model: "product.product",
        fields: &[
            "active",
            "name",
            "default_code",
            "barcode",
            "list_price",
            "standard_price",
            "sale_ok",
            "write_date",
        ],
        domain: &[],
        writable: &[
            ("name", "name", Conv::Plain),
            ("default_code", "default_code", Conv::Plain),
            ("list_price", "list_price", Conv::Plain),
        ],
        create_defaults: &[],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                rename("active", "active"),
                optional("default_code", "default_code"),
                optional("barcode", "barcode"),
                rename("list_price", "list_price"),
                rename("standard_price", "standard_price"),
                rename("sale_ok", "sale_ok"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "stock_quant",
        model: "stock.quant",
        fields: &[
            "product_id",
            "location_id",
            "quantity",
            "reserved_quantity",
            "write_date",
        ],
        domain: &[],
        writable: &[],
        create_defaults: &[],
        mapping: || {
            let [prod_id, prod_name] = many2one("product", "product_id");
            let [loc_id, loc_name] = many2one("location", "location_id");
            fields(vec![
                rename("id", "id"),
                prod_id,
                prod_name,
                loc_id,
                loc_name,
                rename("quantity", "quantity"),
                rename("reserved_quantity", "reserved_quantity"),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
    OdooEntity {
        entity: "employee",
        model: "hr.employee",
        fields: &[
            "active",
            "name",
            "work_email",
            "work_phone",
            "job_title",
            "department_id",
            "write_date",
        ],
        domain: &[],
        writable: &[
            ("name", "name", Conv::Plain),
            ("work_email", "work_email", Conv::Plain),
            ("work_phone", "work_phone", Conv::Plain),
            ("job_title", "job_title", Conv::Plain),
        ],
        create_defaults: &[],
        mapping: || {
            fields(vec![
                rename("id", "id"),
                rename("name", "name"),
                rename("active", "active"),
                optional("work_email", "work_email"),
                optional("work_phone", "work_phone"),
                optional("job_title", "job_title"),
                json!({"target": "department", "source": "department_id.1"}),
                odoo_time("write_date", "write_date"),
            ])
        },
    },
];

/// The Odoo fields a pull reads for `entity` (with `id`); a write's read-back should read
/// the same, so its mirror row hashes like the next pull's.
pub fn read_fields(entity: &str) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = self::entity(entity)
        .map(|e| e.fields.to_vec())
        .unwrap_or_default();
    f.push("id");
    f
}

/// Every synced entity, for the engine.
pub fn adapters(remote: &Remote) -> Vec<Arc<dyn EntityAdapter>> {
    ENTITIES
        .iter()
        .map(|spec| {
            Arc::new(OdooAdapter {
                spec,
                remote: remote.clone(),
            }) as Arc<dyn EntityAdapter>
        })
        .collect()
}

pub struct OdooAdapter {
    spec: &'static OdooEntity,
    remote: Remote,
}

const ODOO_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// Odoo's `write_date` (UTC, `2026-01-31 12:00:00`), read for every pulled record: the
/// pattern is split into chrono's items once, not per record.
fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    static ITEMS: std::sync::LazyLock<Vec<chrono::format::Item<'static>>> =
        std::sync::LazyLock::new(|| {
            chrono::format::StrftimeItems::new(ODOO_TIME)
                .parse_to_owned()
                .unwrap_or_default()
        });
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, v.as_str()?, ITEMS.iter()).ok()?;
    parsed
        .to_naive_datetime_with_offset(0)
        .ok()
        .map(|n: NaiveDateTime| n.and_utc())
}

/// An Odoo row as the engine sees it: its id, `write_date` as the version, the row itself.
pub(crate) fn remote_record(row: Value) -> Option<RemoteRecord> {
    let id = row.get("id")?.as_i64()?;
    Some(RemoteRecord {
        id: id.to_string(),
        version: parse_time(&row["write_date"]).map(Version::Time),
        raw: row,
        deleted: false,
    })
}

/// The default mapping of an entity (the table's; covered by a unit test).
pub(crate) fn default_mapping(entity: &str) -> Option<Mapping> {
    self::entity(entity).and_then(|e| Mapping::parse(&(e.mapping)()).ok())
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format(ODOO_TIME).to_string()
}

fn bad(msg: impl Into<String>) -> SyncError {
    SyncError::Permanent(bad_request(msg))
}

fn bad_request(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("odoo", ErrorCode::InvalidRequest, msg)
}

/// Where a run is: the fixed lower bound, the last id read, the newest write_date seen.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Position {
    since: Option<String>,
    after_id: i64,
    max_seen: Option<String>,
}

impl OdooAdapter {
    /// The field this create's intent id goes to; the command may not set it itself.
    async fn intent_field_for(
        &self,
        conn: &ConnectionRecord,
        vals: &Value,
    ) -> Result<String, ServiceError> {
        let field = self
            .remote
            .intent_field(conn, self.spec.model)
            .await?
            .ok_or_else(|| {
                bad_request(format!(
                    "no intent field for {}; set intent_fields in the connection",
                    self.spec.model
                ))
            })?;
        if vals.get(&field).is_some() {
            return Err(bad_request(format!(
                "{} carries the command's intent id on create, so it cannot be set by the command; \
                 set the connection's intent_fields.{} to another field to write it",
                field, self.spec.model
            )));
        }
        Ok(field)
    }

    fn base_domain(&self) -> Vec<Value> {
        self.spec
            .domain
            .iter()
            .map(|(f, op, v)| json!([f, op, v]))
            .collect()
    }

    async fn call(
        &self,
        conn: &ConnectionRecord,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
        idempotent: bool,
    ) -> Result<Value, SyncError> {
        let op = format!("sync/{}/{method}", self.spec.entity);
        self.remote
            .tracked(
                conn,
                &op,
                self.remote
                    .execute(conn, self.spec.model, method, args, kwargs, idempotent),
            )
            .await
            .map_err(SyncError::from_service)
    }

    /// One record as a pull reads it (every field of the entity, archived ones too).
    async fn read_back(
        &self,
        conn: &ConnectionRecord,
        id: i64,
    ) -> Result<Option<RemoteRecord>, ServiceError> {
        let mut domain = self.base_domain();
        domain.push(json!(["id", "=", id]));
        let mut read_fields: Vec<&str> = self.spec.fields.to_vec();
        read_fields.push("id");
        let rows = self
            .remote
            .execute(
                conn,
                self.spec.model,
                "search_read",
                vec![Value::Array(domain)],
                json!({"fields": read_fields, "limit": 1, "context": {"active_test": false}}),
                true,
            )
            .await?;
        Ok(rows
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .and_then(remote_record))
    }

    /// Canonical values -> Odoo vals, refusing fields that cannot be written.
    fn to_remote(&self, values: &Value) -> Result<Value, SyncError> {
        let obj = values
            .as_object()
            .ok_or_else(|| bad("values must be an object"))?;
        let mut vals = serde_json::Map::new();
        for (k, v) in obj {
            let Some((_, field, conv)) = self.spec.writable.iter().find(|(c, _, _)| c == k) else {
                let names: Vec<&str> = self.spec.writable.iter().map(|w| w.0).collect();
                return Err(bad(format!(
                    "{} field '{k}' cannot be written to Odoo; writable: {}",
                    self.spec.entity,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            let odoo = match conv {
                Conv::Plain => v.clone(),
                Conv::Id => json!(v
                    .as_i64()
                    .ok_or_else(|| bad(format!("{k} must be an id")))?),
                Conv::Priority => {
                    json!(
                        crate::client::transformers::priority_to_odoo(v.as_str().unwrap_or(""))
                            .ok_or_else(|| bad(format!(
                                "{k} must be low, medium, high or very_high"
                            )))?
                    )
                }
            };
            vals.insert((*field).to_string(), odoo);
        }
        Ok(Value::Object(vals))
    }
}

#[async_trait]
impl EntityAdapter for OdooAdapter {
    fn entity(&self) -> &'static str {
        self.spec.entity
    }

    fn default_mapping(&self) -> Mapping {
        // The table is ours and covered by a unit test; an invalid one would be a bug here.
        default_mapping(self.spec.entity).unwrap_or_else(|| Mapping::identity(&["id"]))
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let mut pos: Position = match &req.position {
            Some(p) => serde_json::from_value(p.clone()).unwrap_or_default(),
            None => Position {
                since: req
                    .cursor
                    .as_ref()
                    .and_then(|c| c.get("since"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Position::default()
            },
        };
        let mut domain = self.base_domain();
        domain.push(json!(["id", ">", pos.after_id]));
        if let Some(since) = &pos.since {
            domain.push(json!(["write_date", ">=", since]));
        }
        let mut read_fields: Vec<&str> = self.spec.fields.to_vec();
        read_fields.push("id");
        let rows = self
            .call(
                conn,
                "search_read",
                vec![Value::Array(domain)],
                json!({"fields": read_fields, "limit": req.page_size, "order": "id asc",
                       "context": {"active_test": false}}),
                true,
            )
            .await?;
        let rows = match rows {
            Value::Array(rows) => rows,
            _ => Vec::new(),
        };
        let done = rows.len() < req.page_size;
        let records: Vec<RemoteRecord> = rows.into_iter().filter_map(remote_record).collect();
        if let Some(last) = records.last().and_then(|r| r.id.parse().ok()) {
            pos.after_id = last;
        }
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
        // Odoo stamps write_date when a transaction starts and its rows become visible when
        // it commits, minutes later for a long import or cron: the next run reads again from
        // the look-back before the newest write_date seen (Odoo's clock, not the fleet's).
        // What changed during this run is newer than that and is read again too.
        let next_since = match max_seen {
            Some(m) => Some(fmt_time(m - Duration::seconds(lookback_secs(conn)))),
            None => pos.since.clone(),
        };
        Ok(Page {
            records,
            position: serde_json::to_value(&pos).unwrap_or(Value::Null),
            done,
            cursor: json!({ "since": next_since }),
        })
    }

    async fn remote_ids(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        let ids = self
            .call(
                conn,
                "search",
                vec![Value::Array(self.base_domain())],
                json!({"order": "id", "context": {"active_test": false}}),
                true,
            )
            .await?;
        // Anything but a list of ids would read as "upstream has nothing" and delete the
        // whole mirror.
        let ids = ids.as_array().ok_or_else(|| {
            SyncError::Transient(ServiceError::new(
                "odoo",
                ErrorCode::UpstreamRejected,
                format!(
                    "Odoo answered search on {} with something other than ids",
                    self.spec.model
                ),
            ))
        })?;
        let ids: Vec<String> = ids
            .iter()
            .map(|v| v.as_i64().map(|i| i.to_string()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                bad(format!(
                    "Odoo returned a non-numeric id for {}",
                    self.spec.model
                ))
            })?;
        Ok(Some(ids))
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        let id: i64 = remote_id
            .parse()
            .map_err(|_| bad(format!("'{remote_id}' is not an Odoo id")))?;
        let op = format!("sync/{}/search_read", self.spec.entity);
        self.remote
            .tracked(conn, &op, self.read_back(conn, id))
            .await
            .map_err(SyncError::from_service)
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        if self.spec.writable.is_empty() {
            return Err(bad(format!("{} is read-only", self.spec.entity)));
        }
        let mut vals = self.to_remote(values)?;
        for (f, _, v) in self.spec.domain {
            vals[*f] = json!(v);
        }
        self.spec.create_defaults_into(&mut vals);
        // At most once: a create already made for this intent (a redelivered command, or a
        // create whose answer was lost) is found instead of made again. The create and its
        // read-back are one operation in the call log, whichever door the create came through.
        let op = format!("sync/{}/create", self.spec.entity);
        let created = self
            .remote
            .tracked(conn, &op, async {
                let field = self.intent_field_for(conn, &vals).await?;
                let id = self
                    .remote
                    .create_once(conn, self.spec.model, vals, &field, intent_id, true)
                    .await?;
                self.read_back(conn, id).await
            })
            .await
            .map_err(SyncError::from_service)?;
        created.ok_or_else(|| bad(format!("{} vanished after its create", self.spec.entity)))
    }

    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        let vals = self.to_remote(values)?;
        let id: i64 = remote_id
            .parse()
            .map_err(|_| bad(format!("'{remote_id}' is not an Odoo id")))?;
        // write is idempotent: the same values twice leave the same record.
        self.call(conn, "write", vec![json!([id]), vals], json!({}), true)
            .await?;
        self.fetch(conn, remote_id).await?.ok_or_else(|| {
            SyncError::Permanent(ServiceError::new(
                "odoo",
                ErrorCode::NotFound,
                format!("{} {remote_id} no longer exists", self.spec.entity),
            ))
        })
    }

    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError> {
        if self.spec.writable.is_empty() {
            return Err(bad(format!("{} is read-only", self.spec.entity)));
        }
        let id: i64 = remote_id
            .parse()
            .map_err(|_| bad(format!("'{remote_id}' is not an Odoo id")))?;
        self.call(conn, "unlink", vec![json!([id])], json!({}), true)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_dates_read_as_utc_instants() {
        let t = parse_time(&json!("2026-01-31 12:34:56")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-31T12:34:56+00:00");
        assert_eq!(fmt_time(t), "2026-01-31 12:34:56");
        for bad in [
            json!(false),
            json!("2026-01-31"),
            json!("31/01/2026 12:00:00"),
            json!(3),
        ] {
            assert_eq!(parse_time(&bad), None, "{bad}");
        }
    }

    #[test]
    fn default_mappings_are_valid_and_map_odoo_rows() {
        for e in ENTITIES {
            Mapping::parse(&(e.mapping)()).unwrap_or_else(|errs| panic!("{}: {errs:?}", e.entity));
        }
        let lead = Mapping::parse(&(ENTITIES[0].mapping)()).unwrap();
        let out = lead
            .apply(
                &json!({"id": 7, "name": "Deal", "partner_name": false, "email_from": "a@b.c",
                "phone": false, "expected_revenue": 10.0, "priority": "2", "stage_id": [1, "New"],
                "create_date": "2026-11-22 06:00:00", "write_date": "2026-11-22 06:51:34"}),
            )
            .unwrap();
        assert_eq!(out["priority"], "high");
        assert_eq!(out["partner_name"], Value::Null);
        assert_eq!(out["stage"], "New");
        assert_eq!(out["write_date"], "2026-11-22T06:51:34Z");
    }
}
