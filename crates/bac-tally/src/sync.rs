//! Tally's entities for the sync engine: one [`TallyEntity`] table row per synced object
//! type (Tally's collection type, the scalar fields fetched, how an object becomes a record),
//! and one [`TallyAdapter`] serving them all.
//!
//! Incremental on `ALTERID`, the number Tally gives every change of a company's masters and
//! vouchers (one sequence, the kit's [`Version::Sequence`]). A run first asks the company for
//! the last one given (`$AltMstId` for masters, `$AltVchId` for vouchers), then reads windows
//! `$AlterID > a AND $AlterID <= b` up to it: a window of `n` ids holds at most `n` objects, so
//! no answer is larger than a page, and a window that comes back sparse doubles the next.
//! An object altered during the run gets an id past the run's end and is read by the next
//! run. Tally keeps no tombstones: deletions are the GUIDs the mirror has and Tally no longer
//! lists. Ledgers and vouchers are written back ([`crate::transform`]); a create carries a
//! GUID made from its intent, so a retried import finds the first voucher instead of posting
//! a second.
use async_trait::async_trait;
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use bac_sync::{EntityAdapter, Mapping, Page, PullRequest, RemoteRecord, SyncError, Version};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    client::TallyClient,
    connector::{same_company, server},
    transform,
    xml::{self, Collection, LedgerOut, TallyMessage, VoucherOut},
};

/// One synced Tally object type.
pub struct TallyEntity {
    /// Canonical name: topic `bac.tally.<entity>.v1`.
    pub entity: &'static str,
    /// Tally's collection type.
    pub object_type: &'static str,
    /// Scalar fields fetched (sub-lists such as a voucher's entries come with the object;
    /// Tally answers nothing when asked to fetch a field it does not know).
    pub fetch: &'static [&'static str],
    /// Numbered by `$AltVchId` (vouchers) rather than `$AltMstId` (masters).
    pub voucher: bool,
    /// The collection's objects as records.
    pub read: fn(&Collection) -> Vec<Value>,
    /// The record's fields (the default mapping passes them through).
    pub fields: &'static [&'static str],
    /// Written back by the fleet (ledgers and vouchers).
    pub writable: bool,
}

pub const ENTITIES: &[TallyEntity] = &[
    TallyEntity {
        entity: "group",
        object_type: "Group",
        fetch: &[
            "NAME",
            "GUID",
            "MASTERID",
            "ALTERID",
            "PARENT",
            "ISREVENUE",
            "ISDEEMEDPOSITIVE",
        ],
        voucher: false,
        read: |c| c.groups.iter().filter_map(transform::group).collect(),
        fields: &[
            "id",
            "name",
            "master_id",
            "alter_id",
            "parent",
            "is_revenue",
            "is_deemed_positive",
        ],
        writable: false,
    },
    TallyEntity {
        entity: "ledger",
        object_type: "Ledger",
        fetch: &[
            "NAME",
            "GUID",
            "MASTERID",
            "ALTERID",
            "PARENT",
            "OPENINGBALANCE",
            "CLOSINGBALANCE",
            "EMAIL",
            "LEDGERPHONE",
        ],
        voucher: false,
        read: |c| c.ledgers.iter().filter_map(transform::ledger).collect(),
        fields: &[
            "id",
            "name",
            "master_id",
            "alter_id",
            "parent",
            "opening_balance",
            "closing_balance",
            "email",
            "phone",
        ],
        writable: true,
    },
    TallyEntity {
        entity: "cost_centre",
        object_type: "CostCentre",
        fetch: &["NAME", "GUID", "MASTERID", "ALTERID", "PARENT", "CATEGORY"],
        voucher: false,
        read: |c| {
            c.cost_centres
                .iter()
                .filter_map(transform::cost_centre)
                .collect()
        },
        fields: &["id", "name", "master_id", "alter_id", "parent", "category"],
        writable: false,
    },
    TallyEntity {
        entity: "stock_item",
        object_type: "StockItem",
        fetch: &[
            "NAME",
            "GUID",
            "MASTERID",
            "ALTERID",
            "PARENT",
            "BASEUNITS",
            "OPENINGBALANCE",
            "OPENINGVALUE",
            "OPENINGRATE",
            "CLOSINGBALANCE",
            "CLOSINGVALUE",
        ],
        voucher: false,
        read: |c| {
            c.stock_items
                .iter()
                .filter_map(transform::stock_item)
                .collect()
        },
        fields: &[
            "id",
            "name",
            "master_id",
            "alter_id",
            "parent",
            "base_units",
            "opening_quantity",
            "opening_value",
            "opening_rate",
            "closing_quantity",
            "closing_value",
        ],
        writable: false,
    },
    TallyEntity {
        entity: "voucher",
        object_type: "Voucher",
        fetch: &[
            "GUID",
            "MASTERID",
            "ALTERID",
            "DATE",
            "VOUCHERTYPENAME",
            "VOUCHERNUMBER",
            "REFERENCE",
            "PARTYLEDGERNAME",
            "NARRATION",
            "ISCANCELLED",
            "ISOPTIONAL",
        ],
        voucher: true,
        read: |c| c.vouchers.iter().filter_map(transform::voucher).collect(),
        fields: &[
            "id",
            "master_id",
            "alter_id",
            "date",
            "voucher_type",
            "voucher_number",
            "reference",
            "party_ledger_name",
            "narration",
            "is_cancelled",
            "is_optional",
            "amount",
            "ledger_entries",
            "inventory_entries",
        ],
        writable: true,
    },
];

pub fn entity(name: &str) -> Option<&'static TallyEntity> {
    ENTITIES.iter().find(|e| e.entity == name)
}

/// Vouchers are read over every date Tally accepts: without a period, Tally lists the
/// current one only.
pub fn all_dates() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(1900, 4, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(2099, 12, 31).unwrap_or_default(),
    )
}

/// ALTERIDs listed at once when looking for deletions.
const ID_WINDOW: i64 = 2000;

/// A window never grows past this many ids per record asked for.
const MAX_WINDOW_FACTOR: i64 = 16;

/// Where a run is: past `after`, up to `upto` (the company's last ALTERID when the run
/// began), reading `window` ids at a time.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Position {
    after: i64,
    upto: i64,
    window: i64,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("tally", ErrorCode::InvalidRequest, msg)
}

/// The GUID the fleet gives the object a create makes: the same for a retry of one intent.
pub fn intent_guid(connection_id: &str, intent_id: &str) -> String {
    let digest = Sha256::digest(format!("{connection_id}/{intent_id}").as_bytes());
    format!("bac-{}", &hex::encode(digest)[..32])
}

/// A GUID as Tally writes them (letters, digits, `-`), safe inside a TDL formula.
fn valid_guid(guid: &str) -> Result<(), ServiceError> {
    if guid.is_empty()
        || guid.len() > 64
        || !guid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad(format!("'{guid}' is not a Tally GUID")));
    }
    Ok(())
}

fn record(v: Value) -> RemoteRecord {
    RemoteRecord {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        version: v["alter_id"].as_i64().map(Version::Sequence),
        raw: v,
        deleted: false,
    }
}

/// Serves every [`TallyEntity`].
pub struct TallyAdapter {
    spec: &'static TallyEntity,
    client: TallyClient,
}

pub fn adapters(client: &TallyClient) -> Vec<std::sync::Arc<dyn EntityAdapter>> {
    ENTITIES
        .iter()
        .map(|spec| {
            std::sync::Arc::new(TallyAdapter {
                spec,
                client: client.clone(),
            }) as std::sync::Arc<dyn EntityAdapter>
        })
        .collect()
}

impl TallyAdapter {
    async fn export(
        &self,
        conn: &ConnectionRecord,
        fetch: &[&str],
        filter: Option<&str>,
    ) -> Result<Collection, ServiceError> {
        let envelope = xml::export_collection(
            Some(conn.setting("company_name_in_tally")),
            self.spec.object_type,
            fetch,
            filter,
            self.spec.voucher.then(all_dates),
        );
        self.client
            .export(
                conn,
                &envelope,
                &format!("sync/{}/export", self.spec.entity),
            )
            .await
    }

    /// The company's last ALTERID for this kind of object.
    async fn last_alter_id(&self, conn: &ConnectionRecord) -> Result<i64, ServiceError> {
        let (host, port) = server(conn);
        let wanted = conn.setting("company_name_in_tally");
        let companies = self.client.companies(conn).await?;
        let company = companies
            .iter()
            .find(|c| same_company(&c.name, wanted))
            .ok_or_else(|| {
                ServiceError::new(
                    "tally",
                    ErrorCode::UpstreamRejected,
                    format!("Tally at {host}:{port} does not have '{wanted}' open"),
                )
                .suggest("Open the company in Tally")
            })?;
        let last = if self.spec.voucher {
            company.alt_vch_id
        } else {
            company.alt_mst_id
        };
        if last > 0 {
            return Ok(last);
        }
        // a Tally that does not say (or a company without such objects): the largest ALTERID
        // of the objects themselves
        let all = self.export(conn, &["ALTERID"], None).await?;
        Ok((self.spec.read)(&all)
            .iter()
            .filter_map(|v| v["alter_id"].as_i64())
            .max()
            .unwrap_or(0))
    }

    async fn by_guid(
        &self,
        conn: &ConnectionRecord,
        guid: &str,
    ) -> Result<Option<RemoteRecord>, ServiceError> {
        valid_guid(guid)?;
        let found = self
            .export(conn, self.spec.fetch, Some(&format!("$GUID = \"{guid}\"")))
            .await?;
        Ok((self.spec.read)(&found)
            .into_iter()
            .map(record)
            .find(|r| r.id.eq_ignore_ascii_case(guid)))
    }

    /// Imports one message; Tally's line errors are the caller's error, in Tally's words.
    async fn import(
        &self,
        conn: &ConnectionRecord,
        message: TallyMessage,
        op: &str,
    ) -> Result<xml::ImportResult, SyncError> {
        let report = if message.voucher.is_some() {
            "Vouchers"
        } else {
            "All Masters"
        };
        let envelope = xml::import(conn.setting("company_name_in_tally"), report, message);
        let result = self
            .client
            .import(conn, &envelope, &format!("sync/{}/{op}", self.spec.entity))
            .await
            .map_err(SyncError::from_service)?;
        if let Some(e) = xml::line_error(&result.line_errors) {
            return Err(SyncError::Permanent(e));
        }
        let count = xml::ImportResult::count;
        if count(&result.errors) > 0 || count(&result.exceptions) > 0 {
            return Err(SyncError::Permanent(ServiceError::new(
                "tally",
                ErrorCode::UpstreamRejected,
                format!(
                    "Tally refused the {}: {} error(s), {} exception(s), no message",
                    self.spec.entity,
                    count(&result.errors),
                    count(&result.exceptions)
                ),
            )));
        }
        Ok(result)
    }

    fn read_only(&self) -> SyncError {
        SyncError::Permanent(bad(format!(
            "{} is synced one way: the fleet reads Tally's {}s, it does not change them",
            self.spec.entity, self.spec.object_type
        )))
    }

    fn message(&self, values: &Value) -> Result<TallyMessage, SyncError> {
        Ok(match self.spec.entity {
            "voucher" => TallyMessage {
                voucher: Some(transform::voucher_out(values).map_err(SyncError::Permanent)?),
                ..TallyMessage::default()
            },
            "ledger" => TallyMessage {
                ledger: Some(transform::ledger_out(values).map_err(SyncError::Permanent)?),
                ..TallyMessage::default()
            },
            _ => return Err(self.read_only()),
        })
    }

    /// The object as Tally has it now; `missing` when Tally has none with that GUID.
    async fn existing(
        &self,
        conn: &ConnectionRecord,
        guid: &str,
        missing: ServiceError,
    ) -> Result<RemoteRecord, SyncError> {
        let found = self
            .by_guid(conn, guid)
            .await
            .map_err(SyncError::from_service)?;
        found.ok_or_else(|| SyncError::from_service(missing))
    }

    /// What Tally imported, read back (it may lag: worth asking again).
    async fn read_back(
        &self,
        conn: &ConnectionRecord,
        guid: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let lagging = ServiceError::new(
            "tally",
            ErrorCode::UpstreamUnavailable,
            format!(
                "Tally took the {} but does not list it under GUID {guid} yet",
                self.spec.entity
            ),
        );
        self.existing(conn, guid, lagging).await
    }

    /// The object an alteration is about (none: the caller named one Tally does not have).
    async fn current(
        &self,
        conn: &ConnectionRecord,
        guid: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let unknown = ServiceError::new(
            "tally",
            ErrorCode::NotFound,
            format!("Tally has no {} {guid}", self.spec.entity),
        );
        self.existing(conn, guid, unknown).await
    }
}

/// The values of an alteration: the record as Tally has it, the changes laid over it
/// (Tally replaces an altered object whole).
fn merged(current: &Value, changes: &Value) -> Value {
    let mut out = current.clone();
    if let (Some(o), Some(c)) = (out.as_object_mut(), changes.as_object()) {
        for (k, v) in c {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

#[async_trait]
impl EntityAdapter for TallyAdapter {
    fn entity(&self) -> &'static str {
        self.spec.entity
    }

    fn default_mapping(&self) -> Mapping {
        Mapping::identity(self.spec.fields)
    }

    async fn pull(&self, conn: &ConnectionRecord, req: &PullRequest) -> Result<Page, SyncError> {
        let page = req.page_size.max(1) as i64;
        let mut pos: Position = match &req.position {
            Some(p) => serde_json::from_value(p.clone()).unwrap_or_default(),
            None => {
                let upto = self
                    .last_alter_id(conn)
                    .await
                    .map_err(SyncError::from_service)?;
                let since = match req.mode {
                    bac_sync::Mode::Full => 0,
                    bac_sync::Mode::Incremental => req
                        .cursor
                        .as_ref()
                        .and_then(|c| c["alter_id"].as_i64())
                        .unwrap_or(0),
                };
                // a company restored from an older backup numbers from lower again
                let after = if since > upto { 0 } else { since };
                Position {
                    after,
                    upto,
                    window: page,
                }
            }
        };
        if pos.after >= pos.upto {
            return Ok(Page {
                records: Vec::new(),
                position: json!(pos),
                done: true,
                cursor: json!({"alter_id": pos.upto}),
            });
        }
        let window = pos.window.clamp(1, page * MAX_WINDOW_FACTOR);
        let to = (pos.after + window).min(pos.upto);
        let filter = format!("$AlterID > {} AND $AlterID <= {to}", pos.after);
        let collection = self
            .export(conn, self.spec.fetch, Some(&filter))
            .await
            .map_err(SyncError::from_service)?;
        let records: Vec<RemoteRecord> = (self.spec.read)(&collection)
            .into_iter()
            .map(record)
            .filter(|r| !r.id.is_empty())
            .collect();
        pos.after = to;
        // sparse windows grow, dense ones shrink back: an answer stays near a page
        pos.window = if records.len() as i64 > page {
            (window / 2).max(page)
        } else if (records.len() as i64) < window / 4 {
            window * 2
        } else {
            window
        };
        Ok(Page {
            done: pos.after >= pos.upto,
            cursor: json!({"alter_id": pos.after}),
            position: json!(pos),
            records,
        })
    }

    /// Every GUID Tally lists now, read in ALTERID windows so that no answer holds more than
    /// [`ID_WINDOW`] objects (a voucher comes with its entries, whatever is fetched).
    async fn remote_ids(&self, conn: &ConnectionRecord) -> Result<Option<Vec<String>>, SyncError> {
        let last = |conn| async move {
            self.last_alter_id(conn)
                .await
                .map_err(SyncError::from_service)
        };
        let mut upto = last(conn).await?;
        let mut ids = Vec::new();
        let mut after = 0;
        // an object altered while the windows are read moves past `upto`: read on until the
        // company's last ALTERID stands still, so that no live object is taken for deleted
        for _ in 0..10 {
            while after < upto {
                let to = (after + ID_WINDOW).min(upto);
                let window = self
                    .export(
                        conn,
                        &["GUID", "ALTERID"],
                        Some(&format!("$AlterID > {after} AND $AlterID <= {to}")),
                    )
                    .await
                    .map_err(SyncError::from_service)?;
                ids.extend(
                    (self.spec.read)(&window)
                        .into_iter()
                        .filter_map(|v| v["id"].as_str().map(str::to_string)),
                );
                after = to;
            }
            let now = last(conn).await?;
            if now <= upto {
                return Ok(Some(ids));
            }
            upto = now;
        }
        Err(SyncError::Transient(ServiceError::new(
            "tally",
            ErrorCode::UpstreamUnavailable,
            "Tally kept changing while its objects were listed; deletions are looked for next run",
        )))
    }

    async fn fetch(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
    ) -> Result<Option<RemoteRecord>, SyncError> {
        self.by_guid(conn, remote_id)
            .await
            .map_err(SyncError::from_service)
    }

    async fn create(
        &self,
        conn: &ConnectionRecord,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let mut message = self.message(values)?;
        let guid = intent_guid(&conn.id, intent_id);
        // the same intent imported before (an answer lost on the way back): that object
        if let Some(found) = self
            .by_guid(conn, &guid)
            .await
            .map_err(SyncError::from_service)?
        {
            return Ok(found);
        }
        if let Some(v) = message.voucher.as_mut() {
            v.remote_id = Some(guid.clone());
            v.guid = Some(guid.clone());
        }
        if let Some(l) = message.ledger.as_mut() {
            l.remote_id = Some(guid.clone());
        }
        self.import(conn, message, "create").await?;
        self.read_back(conn, &guid).await
    }

    async fn update(
        &self,
        conn: &ConnectionRecord,
        remote_id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        if !self.spec.writable {
            return Err(self.read_only());
        }
        let now = self.current(conn, remote_id).await?;
        let mut message = self.message(&merged(&now.raw, values))?;
        if let Some(v) = message.voucher.as_mut() {
            alter(v, &now.raw, remote_id, "Alter");
        }
        if let Some(l) = message.ledger.as_mut() {
            rename(l, &now.raw);
        }
        self.import(conn, message, "update").await?;
        self.read_back(conn, remote_id).await
    }

    async fn delete(&self, conn: &ConnectionRecord, remote_id: &str) -> Result<(), SyncError> {
        if !self.spec.writable {
            return Err(self.read_only());
        }
        let Some(now) = self
            .by_guid(conn, remote_id)
            .await
            .map_err(SyncError::from_service)?
        else {
            return Ok(()); // gone already
        };
        let message = if self.spec.voucher {
            let mut v = VoucherOut {
                vch_type: now.raw["voucher_type"].as_str().unwrap_or_default().into(),
                ..VoucherOut::default()
            };
            alter(&mut v, &now.raw, remote_id, "Delete");
            TallyMessage {
                voucher: Some(v),
                ..TallyMessage::default()
            }
        } else {
            TallyMessage {
                ledger: Some(LedgerOut {
                    name: now.raw["name"].as_str().unwrap_or_default().into(),
                    action: "Delete",
                    ..LedgerOut::default()
                }),
                ..TallyMessage::default()
            }
        };
        self.import(conn, message, "delete").await?;
        Ok(())
    }
}

/// Names the voucher an alteration or deletion is for: its GUID as `REMOTEID`, and the date,
/// type and number Tally's own examples name it by.
fn alter(v: &mut VoucherOut, now: &Value, guid: &str, action: &'static str) {
    v.action = action;
    v.remote_id = Some(guid.to_string());
    v.date_attr = now["date"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map(xml::tally_date);
    if let Some(n) = now["voucher_number"].as_str() {
        v.tag_name = Some("Voucher Number");
        v.tag_value = Some(n.to_string());
    }
    if action == "Delete" {
        v.date = None;
    }
}

/// An alteration names the ledger by the name it has; a new name goes in `NAME.LIST`.
fn rename(l: &mut LedgerOut, now: &Value) {
    let current = now["name"].as_str().unwrap_or_default().to_string();
    l.action = "Alter";
    if current != l.name {
        l.names = Some(xml::NameList {
            names: vec![l.name.clone()],
        });
    }
    l.name = current;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_maps_its_records() {
        for e in ENTITIES {
            e.default_mapping_is_valid();
        }
        assert_eq!(intent_guid("c", "i"), intent_guid("c", "i"));
        assert_ne!(intent_guid("c", "i"), intent_guid("c2", "i"));
        assert!(valid_guid(&intent_guid("c", "i")).is_ok());
        assert!(valid_guid("a\" OR 1").is_err());
        let mut l = LedgerOut {
            name: "New".into(),
            ..LedgerOut::default()
        };
        rename(&mut l, &json!({"name": "Old"}));
        assert_eq!(l.name, "Old");
        assert_eq!(l.names.unwrap().names, vec!["New".to_string()]);
    }

    impl TallyEntity {
        fn default_mapping_is_valid(&self) {
            assert!(
                Mapping::identity(self.fields).validate().is_ok(),
                "{}",
                self.entity
            );
        }
    }
}
