//! The gRPC face of bac-tally's domain: `bac.tally.v1.TallyService`. Lists read the sync
//! engine's mirror of the company (Tally is often on an office computer that is off; the
//! mirror is what the last sync read and what the fleet wrote since). A voucher created here
//! takes the engine's one write path: the adapter imports it into Tally (a GUID made from the
//! intent, so a retried import finds the first), then the mirror row and its
//! `bac.tally.voucher.v1` event commit together.
use bac_proto::tally::v1::{
    tally_service_server::TallyService, Balance, CreateVoucherRequest, InventoryEntry, Ledger,
    LedgerEntry, ListLedgersResponse, ListRequest, ListStockItemsResponse, ListVouchersRequest,
    ListVouchersResponse, StockItem, Voucher,
};
use bac_runtime::{
    connections::{timestamp, ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use bac_sync::mirror::{MirrorQuery, MirrorRow};
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use crate::{
    agent::{via_agent, Agents},
    queue::{Queue, Queued},
};

#[derive(Clone)]
pub struct TallyApi {
    connections: ConnectionStore,
    engine: bac_sync::SyncEngine,
    agents: Agents,
    queue: Queue,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("tally", ErrorCode::InvalidRequest, msg)
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn balance(v: &Value) -> Option<Balance> {
    v.is_object().then(|| Balance {
        amount: number(&v["amount"]),
        side: text(&v["side"]),
    })
}

fn ledger(r: &MirrorRow, conn: &str) -> Ledger {
    let d = &r.data;
    Ledger {
        id: r.remote_id.clone(),
        name: text(&d["name"]),
        parent: text(&d["parent"]),
        opening_balance: balance(&d["opening_balance"]),
        closing_balance: balance(&d["closing_balance"]),
        email: text(&d["email"]),
        phone: text(&d["phone"]),
        master_id: d["master_id"].as_i64().unwrap_or(0),
        alter_id: d["alter_id"].as_i64().unwrap_or(0),
        connection_id: conn.to_string(),
        synced_at: Some(timestamp(r.updated_at)),
    }
}

fn stock_item(r: &MirrorRow, conn: &str) -> StockItem {
    let d = &r.data;
    StockItem {
        id: r.remote_id.clone(),
        name: text(&d["name"]),
        parent: text(&d["parent"]),
        base_units: text(&d["base_units"]),
        opening_quantity: number(&d["opening_quantity"]),
        opening_value: number(&d["opening_value"]),
        opening_rate: number(&d["opening_rate"]),
        closing_quantity: number(&d["closing_quantity"]),
        closing_value: number(&d["closing_value"]),
        master_id: d["master_id"].as_i64().unwrap_or(0),
        alter_id: d["alter_id"].as_i64().unwrap_or(0),
        connection_id: conn.to_string(),
        synced_at: Some(timestamp(r.updated_at)),
    }
}

/// A voucher record (the mirror's, or one just created) as the API shows it.
pub fn voucher(id: &str, d: &Value, conn: &str, at: chrono::DateTime<chrono::Utc>) -> Voucher {
    let list = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    Voucher {
        id: id.to_string(),
        date: text(&d["date"]),
        voucher_type: text(&d["voucher_type"]),
        voucher_number: text(&d["voucher_number"]),
        reference: text(&d["reference"]),
        party_ledger_name: text(&d["party_ledger_name"]),
        narration: text(&d["narration"]),
        ledger_entries: list("ledger_entries")
            .iter()
            .map(|e| LedgerEntry {
                ledger_name: text(&e["ledger_name"]),
                amount: number(&e["amount"]),
                side: text(&e["side"]),
            })
            .collect(),
        inventory_entries: list("inventory_entries")
            .iter()
            .map(|e| InventoryEntry {
                stock_item_name: text(&e["stock_item_name"]),
                quantity: number(&e["quantity"]),
                unit: text(&e["unit"]),
                rate: number(&e["rate"]),
                amount: number(&e["amount"]),
                ledger_name: text(&e["ledger_name"]),
            })
            .collect(),
        amount: number(&d["amount"]),
        is_cancelled: d["is_cancelled"].as_bool().unwrap_or(false),
        master_id: d["master_id"].as_i64().unwrap_or(0),
        alter_id: d["alter_id"].as_i64().unwrap_or(0),
        connection_id: conn.to_string(),
        synced_at: Some(timestamp(at)),
        status: "posted".into(),
        error: String::new(),
        intent_id: String::new(),
    }
}

/// A voucher waiting for the agent (or posted or refused since), as the API shows it.
fn queued_voucher(q: &Queued, conn: &str) -> Voucher {
    let mut v = voucher(
        q.voucher_id.as_deref().unwrap_or(""),
        &q.voucher,
        conn,
        q.created_at,
    );
    v.synced_at = None;
    v.status.clone_from(&q.status);
    v.error = q.error.clone().unwrap_or_default();
    v.intent_id.clone_from(&q.intent_id);
    v
}

/// A voucher of the API as the record the adapter imports (Tally's checks are Tally's).
fn voucher_values(v: &Voucher) -> Value {
    let opt = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "date": v.date,
        "voucher_type": v.voucher_type,
        "voucher_number": opt(&v.voucher_number),
        "reference": opt(&v.reference),
        "party_ledger_name": opt(&v.party_ledger_name),
        "narration": opt(&v.narration),
        "ledger_entries": v.ledger_entries.iter().map(|e| json!({
            "ledger_name": e.ledger_name, "amount": e.amount, "side": e.side})).collect::<Vec<_>>(),
        "inventory_entries": v.inventory_entries.iter().map(|e| json!({
            "stock_item_name": e.stock_item_name, "quantity": e.quantity, "unit": opt(&e.unit),
            "rate": if e.rate > 0.0 { json!(e.rate) } else { Value::Null },
            "amount": e.amount, "ledger_name": e.ledger_name})).collect::<Vec<_>>(),
    })
}

/// A list request's page size and where it starts.
fn paging(size: u32, token: &str) -> Result<(i64, String), ServiceError> {
    let size = bac_connector::page_size("tally", size, 100, 500)?;
    if token.len() > 200 || token.chars().any(char::is_control) {
        return Err(bad("page_token is not one this API gave"));
    }
    Ok((i64::from(size), token.to_string()))
}

/// The next page's token: the last key of a full page (empty after the last page).
fn next_token<T>(rows: &[T], size: i64, key: impl Fn(&T) -> &str) -> String {
    match rows.last() {
        Some(last) if rows.len() as i64 == size => key(last).to_string(),
        _ => String::new(),
    }
}

fn valid_date(name: &str, d: &str) -> Result<(), ServiceError> {
    if !d.is_empty() && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
        return Err(bad(format!("{name} must be a date as YYYY-MM-DD")));
    }
    Ok(())
}

impl TallyApi {
    pub fn new(
        connections: ConnectionStore,
        engine: bac_sync::SyncEngine,
        agents: Agents,
        queue: Queue,
    ) -> Self {
        TallyApi {
            connections,
            engine,
            agents,
            queue,
        }
    }

    /// A voucher as the fleet's copy has it.
    async fn mirrored_voucher(
        &self,
        rec: &ConnectionRecord,
        guid: &str,
    ) -> Result<Option<Voucher>, ServiceError> {
        let scope = bac_sync::mirror::Scope {
            tenant: &rec.tenant_id,
            connection_id: &rec.id,
            entity: "voucher",
        };
        Ok(self
            .engine
            .mirrored(&scope, guid)
            .await?
            .map(|(data, _, _)| {
                let mut v = voucher(guid, &data, &rec.id, chrono::Utc::now());
                v.synced_at = None;
                v
            }))
    }

    /// A page of masters of `entity` for a list request, and the next page's token.
    async fn masters(
        &self,
        request: Request<ListRequest>,
        entity: &str,
    ) -> Result<(ConnectionRecord, Vec<MirrorRow>, String), Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, after) = paging(req.page_size, &req.page_token)?;
        let (rec, rows) = self
            .page(
                &ctx,
                &req.connection_id,
                entity,
                MirrorQuery {
                    after: &after,
                    limit,
                    ..MirrorQuery::default()
                },
            )
            .await?;
        let next = next_token(&rows, limit, |r| &r.remote_id);
        Ok((rec, rows, next))
    }

    async fn page(
        &self,
        ctx: &RequestContext,
        connection_id: &str,
        entity: &str,
        q: MirrorQuery<'_>,
    ) -> Result<(ConnectionRecord, Vec<MirrorRow>), ServiceError> {
        let rec = self
            .connections
            .resolve(&ctx.tenant_id, connection_id)
            .await?;
        let rows = self
            .engine
            .mirror_page(&rec.tenant_id, &rec.id, entity, &q)
            .await?;
        Ok((rec, rows))
    }
}

#[tonic::async_trait]
impl TallyService for TallyApi {
    async fn list_ledgers(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListLedgersResponse>, Status> {
        let (rec, rows, next_page_token) = self.masters(request, "ledger").await?;
        Ok(Response::new(ListLedgersResponse {
            ledgers: rows.iter().map(|r| ledger(r, &rec.id)).collect(),
            next_page_token,
        }))
    }

    async fn list_vouchers(
        &self,
        request: Request<ListVouchersRequest>,
    ) -> Result<Response<ListVouchersResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, after) = paging(req.page_size, &req.page_token)?;
        valid_date("from_date", &req.from_date)?;
        valid_date("to_date", &req.to_date)?;
        let some = |s: &str| (!s.is_empty()).then_some(s.to_string());
        let (from, to) = (some(&req.from_date), some(&req.to_date));
        let (rec, rows) = self
            .page(
                &ctx,
                &req.connection_id,
                "voucher",
                MirrorQuery {
                    after: &after,
                    limit,
                    equals: (!req.voucher_type.is_empty())
                        .then_some(("voucher_type", req.voucher_type.as_str())),
                    range: (from.is_some() || to.is_some()).then_some((
                        "date",
                        from.as_deref(),
                        to.as_deref(),
                    )),
                },
            )
            .await?;
        Ok(Response::new(ListVouchersResponse {
            vouchers: rows
                .iter()
                .map(|r| voucher(&r.remote_id, &r.data, &rec.id, r.updated_at))
                .collect(),
            next_page_token: next_token(&rows, limit, |r| &r.remote_id),
        }))
    }

    async fn create_voucher(
        &self,
        request: Request<CreateVoucherRequest>,
    ) -> Result<Response<Voucher>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let v = req.voucher.ok_or_else(|| bad("voucher is required"))?;
        let values = voucher_values(&v);
        // the shape is checked before anything is sent (Tally checks the accounting)
        crate::transform::voucher_out(&values)?;
        let intent = bac_connector::intent_of("tally", &req.intent_id)?.0;
        let rec = self
            .connections
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        if via_agent(&rec) {
            // the same key before: the voucher it made (from the fleet's copy, so the answer
            // does not need the agent), or the one still waiting
            let guid = crate::sync::intent_guid(&rec.id, &intent);
            if let Some(made) = self.mirrored_voucher(&rec, &guid).await? {
                let mut v = made;
                v.intent_id = intent;
                return Ok(Response::new(v));
            }
            if let Some(q) = self.queue.get(&rec, &intent).await? {
                if q.status != "posted" {
                    return Ok(Response::new(queued_voucher(&q, &rec.id)));
                }
            } else if !self.agents.state(&rec.id).await?.is_some_and(|s| s.online) {
                let q = self.queue.put(&rec, &intent, &values).await?;
                return Ok(Response::new(queued_voucher(&q, &rec.id)));
            }
        }
        let created = self
            .engine
            .create(&rec, "voucher", &values, &intent)
            .await
            .map_err(|e| e.service_error().clone())?;
        tracing::info!(voucher = %created.id, connection = %rec.id, "voucher imported into Tally");
        let mut made = voucher(&created.id, &created.raw, &rec.id, chrono::Utc::now());
        made.intent_id = intent;
        Ok(Response::new(made))
    }

    async fn list_queued_vouchers(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListVouchersResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, after) = paging(req.page_size, &req.page_token)?;
        let rec = self
            .connections
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let rows = self.queue.list(&rec, &after, limit).await?;
        Ok(Response::new(ListVouchersResponse {
            vouchers: rows
                .iter()
                .map(|(_, q)| queued_voucher(q, &rec.id))
                .collect(),
            next_page_token: next_token(&rows, limit, |(id, _)| id),
        }))
    }

    async fn list_stock_items(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListStockItemsResponse>, Status> {
        let (rec, rows, next_page_token) = self.masters(request, "stock_item").await?;
        Ok(Response::new(ListStockItemsResponse {
            stock_items: rows.iter().map(|r| stock_item(r, &rec.id)).collect(),
            next_page_token,
        }))
    }
}
