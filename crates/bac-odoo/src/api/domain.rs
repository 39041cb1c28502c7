//! `bac.odoo.v1.OdooService`: the Odoo data the platform reads and writes on request. Every
//! create goes through [`Remote::create_once`] (intent id), every write is recorded in the
//! mirror with its event ([`mirror::record_write`]), every upstream operation in the call log.
use super::*;

const PARTNER_MODEL: &str = "res.partner";
const SALE_ORDER_MODEL: &str = "sale.order";
const INVOICE_MODEL: &str = "account.move";

const LEAD_ENTITY: &str = "crm_lead";

/// The fields to read back after a write: ours and what a sync pull of the entity reads, so
/// the mirror row hashes like the next pull's (no echo).
fn fields_for(entity: &str, ours: &[&'static str]) -> Vec<&'static str> {
    let mut f = ours.to_vec();
    for x in crate::sync::read_fields(entity) {
        if !f.contains(&x) {
            f.push(x);
        }
    }
    f
}

/// `s` as an SQL LIKE pattern that matches only itself.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn first(rows: &Value) -> Option<&Value> {
    rows.as_array().and_then(|a| a.first())
}

fn rows_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn not_found(what: &str, id: i64) -> ServiceError {
    ServiceError::new(
        "odoo",
        ErrorCode::NotFound,
        format!("{what} {id} does not exist in this Odoo"),
    )
}

impl OdooApi {
    /// One record by id (`read`), as Odoo stores it.
    async fn read_one(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        id: i64,
        fields: &[&str],
    ) -> Result<Value, ServiceError> {
        let rows = self
            .remote
            .execute(
                rec,
                model,
                "read",
                vec![json!([id])],
                json!({ "fields": fields }),
                true,
            )
            .await?;
        first(&rows).cloned().ok_or_else(|| {
            ServiceError::internal("odoo", format!("read of {model} {id} returned no row"))
        })
    }

    /// Rows by ids (`read`), empty for no ids.
    async fn read_many(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        ids: Vec<i64>,
        fields: &[&str],
    ) -> Result<Vec<Value>, ServiceError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .remote
            .execute(
                rec,
                model,
                "read",
                vec![json!(ids)],
                json!({ "fields": fields }),
                true,
            )
            .await?;
        Ok(rows_of(rows))
    }

    /// One page of `model` rows and the total count.
    #[allow(clippy::too_many_arguments)]
    async fn page_rows(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        domain: Value,
        fields: &[&str],
        limit: u32,
        offset: u32,
        order: &str,
    ) -> Result<(Vec<Value>, u64), ServiceError> {
        let rows = self
            .remote
            .execute(
                rec,
                model,
                "search_read",
                vec![domain.clone()],
                json!({ "fields": fields, "limit": limit, "offset": offset, "order": order }),
                true,
            )
            .await?;
        let total = self
            .remote
            .execute(rec, model, "search_count", vec![domain], json!({}), true)
            .await?
            .as_u64()
            .unwrap_or(0);
        Ok((rows_of(rows), total))
    }

    /// Whether a record with this id exists.
    async fn exists(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        id: i64,
    ) -> Result<bool, ServiceError> {
        let ids = self
            .remote
            .execute(
                rec,
                model,
                "search",
                vec![json!([["id", "=", id]])],
                json!({ "limit": 1 }),
                true,
            )
            .await?;
        Ok(first(&ids).is_some())
    }

    async fn intent_field(
        &self,
        rec: &ConnectionRecord,
        model: &str,
    ) -> Result<String, ServiceError> {
        self.remote.intent_field(rec, model).await?.ok_or_else(|| {
            bad(format!(
                "no intent field for {model}: set config.intent_fields.{model}"
            ))
        })
    }

    /// With a caller's idempotency key, the record an earlier request with the same key
    /// created (no new event: it was reported then).
    async fn earlier(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        intent: &str,
        given: bool,
    ) -> Result<Option<i64>, ServiceError> {
        if !given {
            return Ok(None);
        }
        let field = self.intent_field(rec, model).await?;
        let ids = self
            .remote
            .execute(
                rec,
                model,
                "search",
                vec![json!([[field, "=", intent]])],
                json!({ "limit": 1, "order": "id" }),
                true,
            )
            .await?;
        Ok(first(&ids).and_then(Value::as_i64))
    }

    /// The partner of an order or invoice: by id (checked), else found by email (else exact
    /// name, case-insensitive), else created (intent id `<intent>/partner`, event
    /// `bac.odoo.partner.created`).
    async fn resolve_partner(
        &self,
        ctx: &RequestContext,
        rec: &ConnectionRecord,
        p: &PartnerRef,
        intent: &str,
    ) -> Result<i64, ServiceError> {
        if p.id > 0 {
            return if self.exists(rec, PARTNER_MODEL, p.id).await? {
                Ok(p.id)
            } else {
                Err(bad(format!(
                    "partner.id {} is not a partner in this Odoo",
                    p.id
                )))
            };
        }
        let (name, email) = (p.name.trim(), p.email.trim());
        // `=ilike` is SQL ILIKE: the value is matched literally only with `%`, `_` and `\`
        // escaped (else "a_b@x.test" finds "axb@x.test"); archived partners count too (else
        // each order for one makes a duplicate).
        let domain = if email.is_empty() {
            json!([["name", "=ilike", like_literal(name)]])
        } else {
            json!([["email", "=ilike", like_literal(email)]])
        };
        let found = self
            .remote
            .execute(
                rec,
                PARTNER_MODEL,
                "search",
                vec![domain],
                json!({ "limit": 1, "order": "id", "context": {"active_test": false} }),
                true,
            )
            .await?;
        if let Some(id) = first(&found).and_then(Value::as_i64) {
            return Ok(id);
        }
        let mut vals = json!({ "name": name });
        if !email.is_empty() {
            vals["email"] = json!(email);
        }
        let field = self.intent_field(rec, PARTNER_MODEL).await?;
        let id = self
            .remote
            .create_once(
                rec,
                PARTNER_MODEL,
                vals,
                &field,
                &format!("{intent}/partner"),
                true,
            )
            .await?;
        let row = self
            .read_one(
                rec,
                PARTNER_MODEL,
                id,
                &fields_for("partner", tf::PARTNER_FIELDS),
            )
            .await?;
        mirror::record_write(self.db(), ctx, rec, "partner", &row, Op::Created).await?;
        Ok(id)
    }

    async fn read_order(
        &self,
        rec: &ConnectionRecord,
        id: i64,
    ) -> Result<(Value, Vec<Value>), ServiceError> {
        let row = self
            .read_one(
                rec,
                SALE_ORDER_MODEL,
                id,
                &fields_for("sale_order", tf::SALE_ORDER_FIELDS),
            )
            .await?;
        let lines = self
            .read_many(
                rec,
                "sale.order.line",
                tf::order_line_ids(std::slice::from_ref(&row)),
                tf::SALE_ORDER_LINE_FIELDS,
            )
            .await?;
        Ok((row, lines))
    }

    async fn read_invoice(
        &self,
        rec: &ConnectionRecord,
        id: i64,
    ) -> Result<(Value, Vec<Value>), ServiceError> {
        let row = self
            .read_one(
                rec,
                INVOICE_MODEL,
                id,
                &fields_for("invoice", tf::INVOICE_FIELDS),
            )
            .await?;
        let lines = self
            .read_many(
                rec,
                "account.move.line",
                tf::invoice_line_ids(std::slice::from_ref(&row)),
                tf::INVOICE_LINE_FIELDS,
            )
            .await?;
        Ok((row, lines))
    }

    /// After `ExecuteKw` wrote a synced model: the rows as Odoo now holds them go to the
    /// mirror with their events, so the next sync pull does not report them as foreign.
    async fn record_execute(
        &self,
        ctx: &RequestContext,
        rec: &ConnectionRecord,
        model: &str,
        method: &str,
        args: &[Value],
        result: &Value,
    ) -> Result<(), ServiceError> {
        let Some((entity, ours)) = tf::entity_of(model) else {
            return Ok(());
        };
        let fields = fields_for(entity, &ours);
        let ids_of = |v: Option<&Value>| -> Vec<i64> {
            match v {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
                Some(v) => v.as_i64().into_iter().collect(),
                None => Vec::new(),
            }
        };
        let (ids, op) = match method {
            "create" => (ids_of(Some(result)), Op::Created),
            "write" => (ids_of(args.first()), Op::Updated),
            "unlink" => {
                for id in ids_of(args.first()) {
                    mirror::record_write(
                        self.db(),
                        ctx,
                        rec,
                        entity,
                        &json!({ "id": id }),
                        Op::Deleted,
                    )
                    .await?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        for row in self.read_many(rec, model, ids, &fields).await? {
            // Only customer invoices are the `invoice` entity.
            if model == "account.move" && row["move_type"] != "out_invoice" {
                continue;
            }
            mirror::record_write(self.db(), ctx, rec, entity, &row, op).await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl OdooService for OdooApi {
    async fn create_lead(
        &self,
        request: Request<CreateLeadRequest>,
    ) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let lead = req.lead.ok_or_else(|| bad("lead is required"))?;
        validate_lead(&lead)?;
        let (intent, _) = intent_of(&req.intent_id)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        // The one write path (as a Kafka command's create): the entity's adapter makes it at
        // most once for the intent id, the mirror records it with its event.
        let values = crate::sync::entity(LEAD_ENTITY)
            .map(|e| e.canonical(&lead_to_vals(&lead)))
            .ok_or_else(|| ServiceError::internal("odoo", "no crm_lead entity"))?;
        let created = self
            .engine
            .create(&rec, LEAD_ENTITY, &values, &intent)
            .await
            .map_err(|e| e.service_error().clone())?;
        let stored = lead_from_record(&created.raw, &rec.id)
            .ok_or_else(|| ServiceError::internal("odoo", "read after create returned no row"))?;
        tracing::info!(lead_id = stored.id, connection = %rec.id, "lead created");
        Ok(Response::new(stored))
    }

    async fn list_leads(
        &self,
        request: Request<ListLeadsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = if req.name_contains.trim().is_empty() {
            json!([])
        } else {
            json!([["name", "ilike", req.name_contains.trim()]])
        };
        let (rows, total) = self
            .remote
            .tracked(
                &rec,
                "list_leads",
                self.page_rows(
                    &rec,
                    LEAD_MODEL,
                    domain,
                    LEAD_FIELDS,
                    limit,
                    offset,
                    "id desc",
                ),
            )
            .await?;
        let leads: Vec<Lead> = rows
            .iter()
            .filter_map(|r| lead_from_record(r, &rec.id))
            .collect();
        Ok(Response::new(ListLeadsResponse {
            leads,
            page: page_info(limit, offset, total),
        }))
    }

    async fn get_lead(&self, request: Request<GetLeadRequest>) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.id <= 0 {
            return Err(bad("id must be a positive Odoo id").into());
        }
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let rows = self
            .remote
            .tracked(&rec, "get_lead", async {
                self.remote
                    .execute(
                        &rec,
                        LEAD_MODEL,
                        "search_read",
                        vec![json!([["id", "=", req.id]])],
                        json!({ "fields": LEAD_FIELDS, "limit": 1 }),
                        true,
                    )
                    .await
            })
            .await?;
        let lead = first(&rows)
            .and_then(|r| lead_from_record(r, &rec.id))
            .ok_or_else(|| not_found("lead", req.id))?;
        Ok(Response::new(lead))
    }

    async fn update_lead(
        &self,
        request: Request<UpdateLeadRequest>,
    ) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if req.id <= 0 {
            return Err(bad("id must be a positive Odoo id").into());
        }
        let vals = tf::lead_patch_vals(&req);
        if vals.as_object().is_none_or(|o| o.is_empty()) {
            return Err(bad(
                "nothing to change: give at least one of name, partner_name, email, phone, expected_revenue, priority",
            )
            .into());
        }
        // The same rules as a create, on the fields given.
        validate_lead(&Lead {
            name: req.name.clone().unwrap_or_else(|| "unchanged".into()),
            email: req.email.clone().unwrap_or_default(),
            expected_revenue: req.expected_revenue.unwrap_or(0.0),
            priority: req.priority.clone().unwrap_or_default(),
            ..Default::default()
        })?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        if !self.exists(&rec, LEAD_MODEL, req.id).await? {
            return Err(not_found("lead", req.id).into());
        }
        let values = crate::sync::entity(LEAD_ENTITY)
            .map(|e| e.canonical(&vals))
            .ok_or_else(|| ServiceError::internal("odoo", "no crm_lead entity"))?;
        let updated = self
            .engine
            .update(&rec, LEAD_ENTITY, &req.id.to_string(), &values)
            .await
            .map_err(|e| e.service_error().clone())?;
        let lead = lead_from_record(&updated.raw, &rec.id)
            .ok_or_else(|| ServiceError::internal("odoo", "read after write returned no row"))?;
        Ok(Response::new(lead))
    }

    async fn create_sale_order(
        &self,
        request: Request<CreateSaleOrderRequest>,
    ) -> Result<Response<SaleOrder>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let partner = validate_partner(req.partner.as_ref())?;
        validate_order_lines(&req.lines)?;
        if req.note.len() > 10_000 {
            return Err(bad("note is longer than 10000 characters").into());
        }
        let (intent, given) = intent_of(&req.intent_id)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let ((row, lines), fresh) = self
            .remote
            .tracked(&rec, "create_sale_order", async {
                let field = self.intent_field(&rec, SALE_ORDER_MODEL).await?;
                if let Some(id) = self.earlier(&rec, SALE_ORDER_MODEL, &intent, given).await? {
                    return Ok((self.read_order(&rec, id).await?, false));
                }
                let partner_id = self.resolve_partner(&ctx, &rec, &partner, &intent).await?;
                let vals = tf::sale_order_vals(partner_id, &req.lines, &req.note);
                let id = self
                    .remote
                    .create_once(&rec, SALE_ORDER_MODEL, vals, &field, &intent, false)
                    .await?;
                Ok((self.read_order(&rec, id).await?, true))
            })
            .await?;
        let order = tf::sale_order_from_record(&row, &lines, &rec.id)
            .ok_or_else(|| ServiceError::internal("odoo", "read after create returned no row"))?;
        if fresh {
            mirror::record_write(self.db(), &ctx, &rec, "sale_order", &row, Op::Created).await?;
            tracing::info!(order_id = order.id, connection = %rec.id, "sale order created");
        }
        Ok(Response::new(order))
    }

    async fn list_sale_orders(
        &self,
        request: Request<ListSaleOrdersRequest>,
    ) -> Result<Response<ListSaleOrdersResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (rows, lines, total) = self
            .remote
            .tracked(&rec, "list_sale_orders", async {
                let (rows, total) = self
                    .page_rows(
                        &rec,
                        SALE_ORDER_MODEL,
                        json!([]),
                        tf::SALE_ORDER_FIELDS,
                        limit,
                        offset,
                        "id desc",
                    )
                    .await?;
                let lines = self
                    .read_many(
                        &rec,
                        "sale.order.line",
                        tf::order_line_ids(&rows),
                        tf::SALE_ORDER_LINE_FIELDS,
                    )
                    .await?;
                Ok((rows, lines, total))
            })
            .await?;
        let orders = rows
            .iter()
            .filter_map(|r| tf::sale_order_from_record(r, &lines, &rec.id))
            .collect();
        Ok(Response::new(ListSaleOrdersResponse {
            orders,
            page: page_info(limit, offset, total),
        }))
    }

    async fn create_invoice(
        &self,
        request: Request<CreateInvoiceRequest>,
    ) -> Result<Response<Invoice>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let partner = validate_partner(req.partner.as_ref())?;
        validate_lines(req.lines.iter().map(|l| {
            (
                l.product_id,
                l.description.as_str(),
                l.quantity,
                l.price_unit,
            )
        }))?;
        for (i, l) in req.lines.iter().enumerate() {
            if l.tax_ids.len() > 20 || l.tax_ids.iter().any(|t| *t <= 0) {
                return Err(bad(format!(
                    "lines[{i}].tax_ids must be at most 20 positive Odoo ids of account.tax"
                ))
                .into());
            }
        }
        validate_date("invoice_date", &req.invoice_date)?;
        validate_date("due_date", &req.due_date)?;
        let (intent, given) = intent_of(&req.intent_id)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (created, fresh) = self
            .remote
            .tracked(&rec, "create_invoice", async {
                let field = self.intent_field(&rec, INVOICE_MODEL).await?;
                if let Some(id) = self.earlier(&rec, INVOICE_MODEL, &intent, given).await? {
                    return Ok((id, false));
                }
                let partner_id = self.resolve_partner(&ctx, &rec, &partner, &intent).await?;
                let vals =
                    tf::invoice_vals(partner_id, &req.lines, &req.invoice_date, &req.due_date);
                let id = self
                    .remote
                    .create_once(&rec, INVOICE_MODEL, vals, &field, &intent, false)
                    .await?;
                Ok((id, true))
            })
            .await?;
        // Posting is a second step: when Odoo refuses it, the draft exists and is reported.
        let posted = if req.post {
            self.remote
                .tracked(&rec, "post_invoice", async {
                    let (row, _) = self.read_invoice(&rec, created).await?;
                    if row["state"] == "posted" {
                        return Ok(());
                    }
                    self.remote
                        .execute(
                            &rec,
                            INVOICE_MODEL,
                            "action_post",
                            vec![json!([created])],
                            json!({}),
                            false,
                        )
                        .await
                        .map(|_| ())
                })
                .await
        } else {
            Ok(())
        };
        let (row, lines) = self
            .remote
            .tracked(&rec, "read_invoice", self.read_invoice(&rec, created))
            .await?;
        if fresh {
            mirror::record_write(self.db(), &ctx, &rec, "invoice", &row, Op::Created).await?;
            tracing::info!(invoice_id = created, connection = %rec.id, "invoice created");
        }
        if let Err(e) = posted {
            return Err(ServiceError::new(
                "odoo",
                e.code,
                format!(
                    "invoice {created} was created as a draft, but posting it failed: {}",
                    e.message
                ),
            )
            .into());
        }
        let invoice = tf::invoice_from_record(&row, &lines, &rec.id)
            .ok_or_else(|| ServiceError::internal("odoo", "read after create returned no row"))?;
        Ok(Response::new(invoice))
    }

    async fn list_invoices(
        &self,
        request: Request<ListInvoicesRequest>,
    ) -> Result<Response<ListInvoicesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (rows, lines, total) = self
            .remote
            .tracked(&rec, "list_invoices", async {
                let (rows, total) = self
                    .page_rows(
                        &rec,
                        INVOICE_MODEL,
                        json!([["move_type", "=", "out_invoice"]]),
                        tf::INVOICE_FIELDS,
                        limit,
                        offset,
                        "id desc",
                    )
                    .await?;
                let lines = self
                    .read_many(
                        &rec,
                        "account.move.line",
                        tf::invoice_line_ids(&rows),
                        tf::INVOICE_LINE_FIELDS,
                    )
                    .await?;
                Ok((rows, lines, total))
            })
            .await?;
        let invoices = rows
            .iter()
            .filter_map(|r| tf::invoice_from_record(r, &lines, &rec.id))
            .collect();
        Ok(Response::new(ListInvoicesResponse {
            invoices,
            page: page_info(limit, offset, total),
        }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = match req.name_contains.trim() {
            "" => json!([]),
            n => json!([["name", "ilike", n]]),
        };
        let (rows, total) = self
            .remote
            .tracked(&rec, "list_products", async {
                // 18+ flags storable products with `is_storable`, which only the Inventory
                // app adds: asked of the database, not assumed from the version.
                let storable = self
                    .remote
                    .has_field(&rec, "product.product", "is_storable")
                    .await?;
                let fields = tf::product_fields(storable);
                self.page_rows(
                    &rec,
                    "product.product",
                    domain,
                    &fields,
                    limit,
                    offset,
                    "id",
                )
                .await
            })
            .await?;
        let products: Vec<Product> = rows
            .iter()
            .filter_map(|r| tf::product_from_record(r, &rec.id))
            .collect();
        Ok(Response::new(ListProductsResponse {
            products,
            page: page_info(limit, offset, total),
        }))
    }

    async fn list_stock(
        &self,
        request: Request<ListStockRequest>,
    ) -> Result<Response<ListStockResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        if req.product_id < 0 {
            return Err(bad("product_id must be a positive Odoo id").into());
        }
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = if req.product_id > 0 {
            json!([["product_id", "=", req.product_id]])
        } else {
            json!([])
        };
        let (rows, total) = self
            .remote
            .tracked(
                &rec,
                "list_stock",
                self.page_rows(
                    &rec,
                    "stock.quant",
                    domain,
                    tf::STOCK_QUANT_FIELDS,
                    limit,
                    offset,
                    "id",
                ),
            )
            .await?;
        let quants: Vec<StockQuant> = rows
            .iter()
            .filter_map(|r| tf::stock_quant_from_record(r, &rec.id))
            .collect();
        Ok(Response::new(ListStockResponse {
            quants,
            page: page_info(limit, offset, total),
        }))
    }

    async fn list_employees(
        &self,
        request: Request<ListEmployeesRequest>,
    ) -> Result<Response<ListEmployeesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (limit, offset) = page_of(req.page)?;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = match req.name_contains.trim() {
            "" => json!([]),
            n => json!([["name", "ilike", n]]),
        };
        let (rows, total) = self
            .remote
            .tracked(
                &rec,
                "list_employees",
                self.page_rows(
                    &rec,
                    "hr.employee",
                    domain,
                    tf::EMPLOYEE_FIELDS,
                    limit,
                    offset,
                    "name, id",
                ),
            )
            .await?;
        let employees: Vec<Employee> = rows
            .iter()
            .filter_map(|r| tf::employee_from_record(r, &rec.id))
            .collect();
        Ok(Response::new(ListEmployeesResponse {
            employees,
            page: page_info(limit, offset, total),
        }))
    }

    async fn execute_kw(
        &self,
        request: Request<ExecuteKwRequest>,
    ) -> Result<Response<ExecuteKwResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let model = req.model.trim().to_string();
        let method = req.method.trim().to_string();
        if !valid_model_name(&model) {
            return Err(bad("model must be an Odoo model name such as res.partner").into());
        }
        if !valid_field_name(&method) || method.starts_with('_') {
            return Err(bad("method must be a public Odoo method name such as search_read").into());
        }
        let args: Vec<Value> = match req.args {
            Some(list) => {
                match bac_runtime::wkt::integral(
                    serde_json::to_value(list).map_err(|e| ServiceError::internal("odoo", e))?,
                ) {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        let kwargs = match req.kwargs {
            Some(s) => bac_runtime::wkt::integral(
                serde_json::to_value(s).map_err(|e| ServiceError::internal("odoo", e))?,
            ),
            None => json!({}),
        };
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        check_execute(&rec, &model, &method)?;
        let writes = matches!(method.as_str(), "create" | "write" | "unlink");
        let result = self
            .remote
            .tracked(&rec, "execute_kw", async {
                self.remote
                    .execute(&rec, &model, &method, args.clone(), kwargs, !writes)
                    .await
            })
            .await?;
        if writes {
            self.record_execute(&ctx, &rec, &model, &method, &args, &result)
                .await?;
        }
        let result =
            serde_json::from_value(result).map_err(|e| ServiceError::internal("odoo", e))?;
        Ok(Response::new(ExecuteKwResponse {
            result: Some(result),
        }))
    }
}
