//! `bac.odoo.v1.OdooService`: the Odoo data the platform reads and writes on request.
use super::*;

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
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (id, rows) = self.remote
            .tracked(&rec, "create_lead", async {
                let created = self
                    .execute(&rec, "create", vec![lead_to_vals(&lead)], json!({}), false)
                    .await?;
                let id = created
                    .as_i64()
                    .or_else(|| {
                        created
                            .as_array()
                            .and_then(|a| a.first())
                            .and_then(Value::as_i64)
                    })
                    .ok_or_else(|| {
                        ServiceError::internal("odoo", format!("create returned {created}"))
                    })?;
                // Read back what Odoo stored (dates, normalised values).
                let rows = self
                    .execute(
                        &rec,
                        "read",
                        vec![json!([id])],
                        json!({ "fields": LEAD_FIELDS }),
                        true,
                    )
                    .await?;
                Ok((id, rows))
            })
            .await?;
        let stored = rows
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| lead_from_record(r, &rec.id))
            .ok_or_else(|| ServiceError::internal("odoo", "read after create returned no row"))?;
        mirror::record_lead(&self.db(), &ctx, &stored, Op::Created, "platform").await?;
        tracing::info!(lead_id = id, connection = %rec.id, "lead created");
        Ok(Response::new(stored))
    }

    async fn list_leads(
        &self,
        request: Request<ListLeadsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let limit = match page.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(bad(format!("limit must be at most {MAX_PAGE}")).into())
            }
            n => n,
        };
        let offset = page.offset;
        let rec = self
            .connections()
            .resolve(&ctx.tenant_id, &req.connection_id)
            .await?;
        let domain = if req.name_contains.trim().is_empty() {
            json!([])
        } else {
            json!([["name", "ilike", req.name_contains.trim()]])
        };
        let (rows, total) = self.remote
            .tracked(&rec, "list_leads", async {
                let rows = self
                    .execute(
                        &rec,
                        "search_read",
                        vec![domain.clone()],
                        json!({ "fields": LEAD_FIELDS, "limit": limit, "offset": offset, "order": "id desc" }),
                        true,
                    )
                    .await?;
                let total = self
                    .execute(&rec, "search_count", vec![domain], json!({}), true)
                    .await?
                    .as_u64()
                    .unwrap_or(0);
                Ok((rows, total))
            })
            .await?;
        let leads: Vec<Lead> = rows
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| lead_from_record(r, &rec.id))
                    .collect()
            })
            .unwrap_or_default();
        let next = u64::from(offset) + u64::from(limit);
        Ok(Response::new(ListLeadsResponse {
            leads,
            page: Some(PageInfo {
                limit,
                offset,
                total,
                next_offset: (next < total).then_some(next as u32),
            }),
        }))
    }
}

