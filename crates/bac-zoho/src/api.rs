//! The gRPC face of bac-zoho's domain: `bac.zoho.v1.ZohoService` (CRM leads, contacts,
//! deals; Books invoices and customers; Inventory items; Desk tickets; People employees;
//! Mail). Creates, updates and sends take the engine's one write path (the entity's
//! adapter, the create-intent ledger, then the mirror and its `bac.zoho.<entity>.v1`
//! event); reads go straight to Zoho.
use bac_proto::zoho::v1::{
    zoho_service_server::ZohoService, Contact, CreateContactRequest, CreateCustomerRequest,
    CreateDealRequest, CreateInvoiceRequest, CreateLeadRequest, CreateTicketRequest, Customer,
    Deal, FinancePage, GetRecordRequest, IndexPage, Invoice, Item, Lead, ListByIndexRequest,
    ListContactsResponse, ListCustomersResponse, ListDealsResponse, ListEmployeesResponse,
    ListFinanceRequest, ListInvoicesResponse, ListItemsResponse, ListLeadsResponse,
    ListRecordsRequest, ListTicketsResponse, RecordPage, SendMailRequest, SentMail, Ticket,
    UpdateContactRequest, UpdateDealRequest, UpdateLeadRequest,
};
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::{
    apps,
    client::{ZohoCall, ZohoClient, CRM},
    sync::{fmt_time, MAX_PER_PAGE, PAGE_WINDOW},
    transform as tf,
};

#[derive(Clone)]
pub struct ZohoApi {
    client: ZohoClient,
    connections: ConnectionStore,
    engine: bac_sync::SyncEngine,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("zoho", ErrorCode::InvalidRequest, msg)
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

/// The intent id of a create (the kit's rules).
fn intent_of(given: &str) -> Result<String, ServiceError> {
    Ok(bac_connector::intent_of("zoho", given)?.0)
}

fn valid_id(id: &str) -> Result<(), ServiceError> {
    if id.is_empty() || id.len() > 30 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("id must be a Zoho record id (digits)"));
    }
    Ok(())
}

/// Length and shape checks shared by creates and updates: `(field, value, max length)`.
fn check_texts(fields: &[(&str, &str, usize)]) -> Result<(), ServiceError> {
    for (name, v, max) in fields {
        if v.chars().count() > *max {
            return Err(bad(format!("{name} is longer than {max} characters")));
        }
        if *name == "email" && !v.is_empty() && !v.contains('@') {
            return Err(bad("email is not an email address"));
        }
    }
    Ok(())
}

fn check_amount(name: &str, v: f64) -> Result<(), ServiceError> {
    if !v.is_finite() || v < 0.0 {
        return Err(bad(format!("{name} must be a non-negative number")));
    }
    Ok(())
}

fn validate_lead(l: &Lead) -> Result<(), ServiceError> {
    if l.last_name.trim().is_empty() {
        return Err(bad("last_name is required (Zoho's Last_Name)"));
    }
    check_texts(&[
        ("first_name", &l.first_name, 40),
        ("last_name", &l.last_name, 80),
        ("company", &l.company, 200),
        ("email", &l.email, 100),
        ("phone", &l.phone, 50),
        ("mobile", &l.mobile, 50),
        ("lead_source", &l.lead_source, 120),
        ("lead_status", &l.lead_status, 120),
        ("industry", &l.industry, 120),
        ("description", &l.description, 32000),
    ])?;
    check_amount("annual_revenue", l.annual_revenue)
}

fn validate_contact(c: &Contact) -> Result<(), ServiceError> {
    if c.last_name.trim().is_empty() {
        return Err(bad("last_name is required (Zoho's Last_Name)"));
    }
    check_texts(&[
        ("first_name", &c.first_name, 40),
        ("last_name", &c.last_name, 80),
        ("email", &c.email, 100),
        ("phone", &c.phone, 50),
        ("mobile", &c.mobile, 50),
        ("title", &c.title, 100),
        ("department", &c.department, 100),
        ("mailing_city", &c.mailing_city, 100),
        ("mailing_country", &c.mailing_country, 100),
        ("description", &c.description, 32000),
    ])
}

fn validate_deal(d: &Deal) -> Result<(), ServiceError> {
    if d.name.trim().is_empty() {
        return Err(bad("name is required (Zoho's Deal_Name)"));
    }
    if d.stage.trim().is_empty() {
        return Err(bad("stage is required (Zoho's Stage, e.g. Qualification)"));
    }
    check_texts(&[
        ("name", &d.name, 120),
        ("stage", &d.stage, 120),
        ("description", &d.description, 32000),
    ])?;
    check_amount("amount", d.amount)?;
    if !d.probability.is_finite() || !(0.0..=100.0).contains(&d.probability) {
        return Err(bad("probability must be a percentage from 0 to 100"));
    }
    if !d.closing_date.is_empty()
        && chrono::NaiveDate::parse_from_str(&d.closing_date, "%Y-%m-%d").is_err()
    {
        return Err(bad("closing_date must be a date as YYYY-MM-DD"));
    }
    if !d.contact_id.is_empty() {
        valid_id(&d.contact_id).map_err(|_| bad("contact_id must be a Zoho contact id"))?;
    }
    Ok(())
}

fn not_found(what: &str, id: &str) -> ServiceError {
    ServiceError::new(
        "zoho",
        ErrorCode::NotFound,
        format!("Zoho has no {what} {id} on this connection"),
    )
}

impl ZohoApi {
    pub fn new(
        client: ZohoClient,
        connections: ConnectionStore,
        engine: bac_sync::SyncEngine,
    ) -> Self {
        ZohoApi {
            client,
            connections,
            engine,
        }
    }

    async fn connection(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<ConnectionRecord, ServiceError> {
        self.connections.resolve(&ctx.tenant_id, id).await
    }

    async fn create(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        values: &Value,
        intent: &str,
    ) -> Result<Value, ServiceError> {
        let created = self
            .engine
            .create(rec, entity, values, intent)
            .await
            .map_err(|e| e.service_error().clone())?;
        Ok(created.raw)
    }

    async fn update(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        module: &str,
        what: &str,
        id: &str,
        values: &Value,
    ) -> Result<Value, ServiceError> {
        valid_id(id)?;
        if values.as_object().is_none_or(|o| o.is_empty()) {
            return Err(bad("nothing to change: give at least one field"));
        }
        if self.get(rec, module, id).await?.is_none() {
            return Err(not_found(what, id));
        }
        let updated = self
            .engine
            .update(rec, entity, id, values)
            .await
            .map_err(|e| e.service_error().clone())?;
        Ok(updated.raw)
    }

    async fn get(
        &self,
        rec: &ConnectionRecord,
        module: &str,
        id: &str,
    ) -> Result<Option<Value>, ServiceError> {
        valid_id(id)?;
        let answer = self
            .client
            .call(
                rec,
                &ZohoCall::get(format!("{CRM}/{module}/{id}"), format!("crm/{module}/get")),
            )
            .await?;
        Ok(answer.body["data"].get(0).cloned())
    }

    /// One page of a module as the request asks, with the fields of `entity`.
    async fn list(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        req: &ListRecordsRequest,
    ) -> Result<(Vec<Value>, RecordPage), ServiceError> {
        let spec = crate::sync::entity(entity)
            .ok_or_else(|| ServiceError::internal("zoho", format!("no entity {entity}")))?;
        let per_page = match req.per_page {
            0 => MAX_PER_PAGE,
            n if n as usize > MAX_PER_PAGE => {
                return Err(bad(format!("per_page must be at most {MAX_PER_PAGE}")))
            }
            n => n as usize,
        };
        let page = req.page.max(1) as usize;
        let mut call = ZohoCall::get(
            format!("{CRM}/{}", spec.module),
            format!("crm/{}/list", spec.module),
        )
        .query("fields", spec.fields.join(","))
        .query("per_page", per_page.to_string());
        if req.page_token.is_empty() {
            if page * per_page > PAGE_WINDOW {
                return Err(bad(format!(
                    "page {page} with per_page {per_page} reaches past Zoho's first {PAGE_WINDOW} records"
                ))
                .suggest("Follow pagination.next_page_token with page_token"));
            }
            call = call.query("page", page.to_string());
        } else {
            call = call.query("page_token", req.page_token.clone());
        }
        match req.sort_by.as_str() {
            "" => {}
            s @ ("id" | "Created_Time" | "Modified_Time") => call = call.query("sort_by", s),
            other => {
                return Err(bad(format!(
                    "sort_by must be id, Created_Time or Modified_Time, not {other:?}"
                )))
            }
        }
        match req.sort_order.as_str() {
            "" => {}
            s @ ("asc" | "desc") => call = call.query("sort_order", s),
            other => {
                return Err(bad(format!(
                    "sort_order must be asc or desc, not {other:?}"
                )))
            }
        }
        if !req.modified_since.is_empty() {
            let t = chrono::DateTime::parse_from_rfc3339(&req.modified_since).map_err(|_| {
                bad("modified_since must be an RFC 3339 time such as 2026-12-01T00:00:00Z")
            })?;
            call = call.header("If-Modified-Since", fmt_time(t.with_timezone(&chrono::Utc)));
        }
        let answer = self.client.call(rec, &call).await?;
        let rows = answer.body["data"].as_array().cloned().unwrap_or_default();
        let info = &answer.body["info"];
        let page_info = RecordPage {
            page: info["page"].as_u64().map_or(page as u32, |p| p as u32),
            per_page: per_page as u32,
            count: rows.len() as u32,
            more_records: info["more_records"].as_bool().unwrap_or(false),
            next_page_token: info["next_page_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        Ok((rows, page_info))
    }
}

impl ZohoApi {
    /// One page of a Books, Inventory, Desk or People entity from position `offset`.
    async fn app_page(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        since: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, bool), ServiceError> {
        let spec = apps::entity(entity)
            .ok_or_else(|| ServiceError::internal("zoho", format!("no entity {entity}")))?;
        let since = since_of(since)?;
        apps::list_changed(
            &self.client,
            rec,
            spec,
            since,
            offset,
            limit,
            &format!("{entity}/list"),
        )
        .await
    }

    async fn finance_page(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        req: &ListFinanceRequest,
    ) -> Result<(Vec<Value>, FinancePage), ServiceError> {
        let per_page = match req.per_page {
            0 => 200,
            n if n > 200 => return Err(bad("per_page must be at most 200")),
            n => n as usize,
        };
        let page = req.page.max(1) as usize;
        let (rows, more) = self
            .app_page(
                rec,
                entity,
                &req.modified_since,
                (page - 1) * per_page,
                per_page,
            )
            .await?;
        let info = FinancePage {
            page: page as u32,
            per_page: per_page as u32,
            count: rows.len() as u32,
            has_more_page: more,
        };
        Ok((rows, info))
    }

    async fn index_page(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        req: &ListByIndexRequest,
        max: u32,
    ) -> Result<(Vec<Value>, IndexPage), ServiceError> {
        let limit = match req.limit {
            0 => max,
            n if n > max => return Err(bad(format!("limit must be at most {max}"))),
            n => n,
        };
        let (rows, more) = self
            .app_page(
                rec,
                entity,
                &req.modified_since,
                req.from as usize,
                limit as usize,
            )
            .await?;
        let info = IndexPage {
            from: req.from,
            limit,
            count: rows.len() as u32,
            more_records: more,
        };
        Ok((rows, info))
    }

    async fn app_get(
        &self,
        rec: &ConnectionRecord,
        entity: &str,
        what: &str,
        id: &str,
    ) -> Result<Value, ServiceError> {
        valid_id(id)?;
        let spec = apps::entity(entity)
            .ok_or_else(|| ServiceError::internal("zoho", format!("no entity {entity}")))?;
        apps::get_one(&self.client, rec, spec, id, &format!("{entity}/get"))
            .await?
            .ok_or_else(|| not_found(what, id))
    }
}

/// An RFC 3339 `modified_since`, if given.
fn since_of(given: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ServiceError> {
    if given.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(given)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| bad("modified_since must be an RFC 3339 time such as 2026-12-01T00:00:00Z"))
}

fn check_date(name: &str, v: &str) -> Result<(), ServiceError> {
    if !v.is_empty() && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err() {
        return Err(bad(format!("{name} must be a date as YYYY-MM-DD")));
    }
    Ok(())
}

fn validate_invoice(i: &Invoice) -> Result<(), ServiceError> {
    valid_id(&i.customer_id)
        .map_err(|_| bad("customer_id is required: a Zoho Books customer id (digits)"))?;
    check_date("date", &i.date)?;
    check_date("due_date", &i.due_date)?;
    let currency_ok = |c: &str| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
    if !i.currency_code.is_empty() && !currency_ok(&i.currency_code) {
        return Err(bad(
            "currency_code must be three capital letters such as USD",
        ));
    }
    check_texts(&[
        ("reference_number", &i.reference_number, 100),
        ("notes", &i.notes, 5000),
    ])?;
    if i.line_items.is_empty() {
        return Err(bad("line_items must hold at least one line"));
    }
    if i.line_items.len() > 500 {
        return Err(bad("line_items holds at most 500 lines"));
    }
    for (n, l) in i.line_items.iter().enumerate() {
        if l.name.trim().is_empty() && l.item_id.is_empty() {
            return Err(bad(format!("line_items[{n}] needs a name or an item_id")));
        }
        if !l.item_id.is_empty() {
            valid_id(&l.item_id)
                .map_err(|_| bad(format!("line_items[{n}].item_id must be a Zoho item id")))?;
        }
        check_texts(&[
            ("name", &l.name, 100),
            ("description", &l.description, 2000),
        ])?;
        check_amount(&format!("line_items[{n}].rate"), l.rate)?;
        check_amount(&format!("line_items[{n}].quantity"), l.quantity)?;
    }
    Ok(())
}

fn validate_ticket(t: &Ticket) -> Result<(), ServiceError> {
    if t.subject.trim().is_empty() {
        return Err(bad("subject is required"));
    }
    check_texts(&[
        ("subject", &t.subject, 255),
        ("description", &t.description, 65535),
        ("email", &t.email, 100),
        ("phone", &t.phone, 50),
        ("priority", &t.priority, 120),
        ("status", &t.status, 120),
    ])?;
    if t.email.is_empty() && t.contact_id.is_empty() {
        return Err(bad(
            "email is required (the requester; Desk finds or creates the contact by it), or contact_id",
        ));
    }
    if !t.contact_id.is_empty() {
        valid_id(&t.contact_id).map_err(|_| bad("contact_id must be a Zoho Desk contact id"))?;
    }
    if !t.department_id.is_empty() {
        valid_id(&t.department_id)
            .map_err(|_| bad("department_id must be a Zoho Desk department id"))?;
    }
    Ok(())
}

fn validate_mail(m: &SendMailRequest) -> Result<(), ServiceError> {
    let addresses = |name: &str, v: &str, required: bool| -> Result<(), ServiceError> {
        let list: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if required && list.is_empty() {
            return Err(bad(format!(
                "{name} is required (one or more addresses, comma-separated)"
            )));
        }
        if list.len() > 100 {
            return Err(bad(format!("{name} holds at most 100 addresses")));
        }
        if let Some(a) = list.iter().find(|a| {
            let parts: Vec<&str> = a.split('@').collect();
            parts.len() != 2 || parts[0].is_empty() || !parts[1].contains('.') || a.len() > 320
        }) {
            return Err(bad(format!("{name}: '{a}' is not an email address")));
        }
        Ok(())
    };
    addresses("to", &m.to, true)?;
    addresses("cc", &m.cc, false)?;
    addresses("bcc", &m.bcc, false)?;
    if !m.from.is_empty() {
        addresses("from", &m.from, true)?;
        if m.from.contains(',') {
            return Err(bad("from is one address"));
        }
    }
    if m.subject.trim().is_empty() {
        return Err(bad("subject is required"));
    }
    check_texts(&[("subject", &m.subject, 500), ("body", &m.body, 1_000_000)])
}

fn internal(what: &str) -> ServiceError {
    ServiceError::internal("zoho", format!("Zoho answered a {what} without an id"))
}

#[tonic::async_trait]
impl ZohoService for ZohoApi {
    async fn create_lead(
        &self,
        request: Request<CreateLeadRequest>,
    ) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let lead = req.lead.ok_or_else(|| bad("lead is required"))?;
        validate_lead(&lead)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(&rec, "crm_lead", &tf::lead_values(&lead), &intent)
            .await?;
        let lead = tf::lead(&raw, &rec.id).ok_or_else(|| internal("lead"))?;
        tracing::info!(lead_id = %lead.id, connection = %rec.id, "lead created");
        Ok(Response::new(lead))
    }

    async fn list_leads(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.list(&rec, "crm_lead", &req).await?;
        Ok(Response::new(ListLeadsResponse {
            leads: rows.iter().filter_map(|r| tf::lead(r, &rec.id)).collect(),
            page: Some(page),
        }))
    }

    async fn get_lead(&self, request: Request<GetRecordRequest>) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .get(&rec, "Leads", &req.id)
            .await?
            .ok_or_else(|| not_found("lead", &req.id))?;
        Ok(Response::new(
            tf::lead(&raw, &rec.id).ok_or_else(|| internal("lead"))?,
        ))
    }

    async fn update_lead(
        &self,
        request: Request<UpdateLeadRequest>,
    ) -> Result<Response<Lead>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        if req
            .last_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(bad("last_name cannot be cleared: Zoho requires it").into());
        }
        validate_lead(&Lead {
            last_name: req.last_name.clone().unwrap_or_else(|| "unchanged".into()),
            first_name: req.first_name.clone().unwrap_or_default(),
            company: req.company.clone().unwrap_or_default(),
            email: req.email.clone().unwrap_or_default(),
            phone: req.phone.clone().unwrap_or_default(),
            mobile: req.mobile.clone().unwrap_or_default(),
            lead_source: req.lead_source.clone().unwrap_or_default(),
            lead_status: req.lead_status.clone().unwrap_or_default(),
            industry: req.industry.clone().unwrap_or_default(),
            annual_revenue: req.annual_revenue.unwrap_or(0.0),
            description: req.description.clone().unwrap_or_default(),
            ..Default::default()
        })?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .update(
                &rec,
                "crm_lead",
                "Leads",
                "lead",
                &req.id,
                &tf::lead_patch(&req),
            )
            .await?;
        Ok(Response::new(
            tf::lead(&raw, &rec.id).ok_or_else(|| internal("lead"))?,
        ))
    }

    async fn create_contact(
        &self,
        request: Request<CreateContactRequest>,
    ) -> Result<Response<Contact>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let contact = req.contact.ok_or_else(|| bad("contact is required"))?;
        validate_contact(&contact)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(&rec, "crm_contact", &tf::contact_values(&contact), &intent)
            .await?;
        Ok(Response::new(
            tf::contact(&raw, &rec.id).ok_or_else(|| internal("contact"))?,
        ))
    }

    async fn list_contacts(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.list(&rec, "crm_contact", &req).await?;
        Ok(Response::new(ListContactsResponse {
            contacts: rows
                .iter()
                .filter_map(|r| tf::contact(r, &rec.id))
                .collect(),
            page: Some(page),
        }))
    }

    async fn get_contact(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<Contact>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .get(&rec, "Contacts", &req.id)
            .await?
            .ok_or_else(|| not_found("contact", &req.id))?;
        Ok(Response::new(
            tf::contact(&raw, &rec.id).ok_or_else(|| internal("contact"))?,
        ))
    }

    async fn update_contact(
        &self,
        request: Request<UpdateContactRequest>,
    ) -> Result<Response<Contact>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        if req
            .last_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(bad("last_name cannot be cleared: Zoho requires it").into());
        }
        validate_contact(&Contact {
            last_name: req.last_name.clone().unwrap_or_else(|| "unchanged".into()),
            first_name: req.first_name.clone().unwrap_or_default(),
            email: req.email.clone().unwrap_or_default(),
            phone: req.phone.clone().unwrap_or_default(),
            mobile: req.mobile.clone().unwrap_or_default(),
            title: req.title.clone().unwrap_or_default(),
            department: req.department.clone().unwrap_or_default(),
            mailing_city: req.mailing_city.clone().unwrap_or_default(),
            mailing_country: req.mailing_country.clone().unwrap_or_default(),
            description: req.description.clone().unwrap_or_default(),
            ..Default::default()
        })?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .update(
                &rec,
                "crm_contact",
                "Contacts",
                "contact",
                &req.id,
                &tf::contact_patch(&req),
            )
            .await?;
        Ok(Response::new(
            tf::contact(&raw, &rec.id).ok_or_else(|| internal("contact"))?,
        ))
    }

    async fn create_deal(
        &self,
        request: Request<CreateDealRequest>,
    ) -> Result<Response<Deal>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let deal = req.deal.ok_or_else(|| bad("deal is required"))?;
        validate_deal(&deal)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(&rec, "crm_deal", &tf::deal_values(&deal), &intent)
            .await?;
        Ok(Response::new(
            tf::deal(&raw, &rec.id).ok_or_else(|| internal("deal"))?,
        ))
    }

    async fn list_deals(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListDealsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.list(&rec, "crm_deal", &req).await?;
        Ok(Response::new(ListDealsResponse {
            deals: rows.iter().filter_map(|r| tf::deal(r, &rec.id)).collect(),
            page: Some(page),
        }))
    }

    async fn get_deal(&self, request: Request<GetRecordRequest>) -> Result<Response<Deal>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .get(&rec, "Deals", &req.id)
            .await?
            .ok_or_else(|| not_found("deal", &req.id))?;
        Ok(Response::new(
            tf::deal(&raw, &rec.id).ok_or_else(|| internal("deal"))?,
        ))
    }

    async fn update_deal(
        &self,
        request: Request<UpdateDealRequest>,
    ) -> Result<Response<Deal>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        for (name, v) in [("name", &req.name), ("stage", &req.stage)] {
            if v.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(bad(format!("{name} cannot be cleared: Zoho requires it")).into());
            }
        }
        validate_deal(&Deal {
            name: req.name.clone().unwrap_or_else(|| "unchanged".into()),
            stage: req.stage.clone().unwrap_or_else(|| "unchanged".into()),
            amount: req.amount.unwrap_or(0.0),
            closing_date: req.closing_date.clone().unwrap_or_default(),
            probability: req.probability.unwrap_or(0.0),
            description: req.description.clone().unwrap_or_default(),
            ..Default::default()
        })?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .update(
                &rec,
                "crm_deal",
                "Deals",
                "deal",
                &req.id,
                &tf::deal_patch(&req),
            )
            .await?;
        Ok(Response::new(
            tf::deal(&raw, &rec.id).ok_or_else(|| internal("deal"))?,
        ))
    }

    async fn send_mail(
        &self,
        request: Request<SendMailRequest>,
    ) -> Result<Response<SentMail>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        validate_mail(&req)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(&rec, "mail_message", &tf::mail_values(&req), &intent)
            .await?;
        let sent = tf::sent_mail(&raw, &rec.id).ok_or_else(|| internal("sent message"))?;
        tracing::info!(message_id = %sent.id, connection = %rec.id, "mail sent");
        Ok(Response::new(sent))
    }

    async fn create_invoice(
        &self,
        request: Request<CreateInvoiceRequest>,
    ) -> Result<Response<Invoice>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let invoice = req.invoice.ok_or_else(|| bad("invoice is required"))?;
        validate_invoice(&invoice)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(
                &rec,
                "books_invoice",
                &tf::invoice_values(&invoice),
                &intent,
            )
            .await?;
        Ok(Response::new(
            tf::invoice(&raw, &rec.id).ok_or_else(|| internal("invoice"))?,
        ))
    }

    async fn list_invoices(
        &self,
        request: Request<ListFinanceRequest>,
    ) -> Result<Response<ListInvoicesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.finance_page(&rec, "books_invoice", &req).await?;
        Ok(Response::new(ListInvoicesResponse {
            invoices: rows
                .iter()
                .filter_map(|r| tf::invoice(r, &rec.id))
                .collect(),
            page: Some(page),
        }))
    }

    async fn get_invoice(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<Invoice>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .app_get(&rec, "books_invoice", "invoice", &req.id)
            .await?;
        Ok(Response::new(
            tf::invoice(&raw, &rec.id).ok_or_else(|| internal("invoice"))?,
        ))
    }

    async fn create_customer(
        &self,
        request: Request<CreateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let customer = req.customer.ok_or_else(|| bad("customer is required"))?;
        if customer.name.trim().is_empty() {
            return Err(bad("name is required (Books' contact_name)").into());
        }
        check_texts(&[
            ("name", &customer.name, 200),
            ("company_name", &customer.company_name, 200),
            ("email", &customer.email, 100),
            ("phone", &customer.phone, 50),
        ])?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(
                &rec,
                "books_customer",
                &tf::customer_values(&customer),
                &intent,
            )
            .await?;
        Ok(Response::new(
            tf::customer(&raw, &rec.id).ok_or_else(|| internal("customer"))?,
        ))
    }

    async fn list_customers(
        &self,
        request: Request<ListFinanceRequest>,
    ) -> Result<Response<ListCustomersResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.finance_page(&rec, "books_customer", &req).await?;
        Ok(Response::new(ListCustomersResponse {
            customers: rows
                .iter()
                .filter_map(|r| tf::customer(r, &rec.id))
                .collect(),
            page: Some(page),
        }))
    }

    async fn create_ticket(
        &self,
        request: Request<CreateTicketRequest>,
    ) -> Result<Response<Ticket>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let ticket = req.ticket.ok_or_else(|| bad("ticket is required"))?;
        validate_ticket(&ticket)?;
        let intent = intent_of(&req.intent_id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .create(&rec, "desk_ticket", &tf::ticket_values(&ticket), &intent)
            .await?;
        let ticket = tf::ticket(&raw, &rec.id).ok_or_else(|| internal("ticket"))?;
        tracing::info!(ticket_id = %ticket.id, connection = %rec.id, "ticket created");
        Ok(Response::new(ticket))
    }

    async fn list_tickets(
        &self,
        request: Request<ListByIndexRequest>,
    ) -> Result<Response<ListTicketsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.index_page(&rec, "desk_ticket", &req, 100).await?;
        Ok(Response::new(ListTicketsResponse {
            tickets: rows.iter().filter_map(|r| tf::ticket(r, &rec.id)).collect(),
            page: Some(page),
        }))
    }

    async fn get_ticket(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<Ticket>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self.app_get(&rec, "desk_ticket", "ticket", &req.id).await?;
        Ok(Response::new(
            tf::ticket(&raw, &rec.id).ok_or_else(|| internal("ticket"))?,
        ))
    }

    async fn list_employees(
        &self,
        request: Request<ListByIndexRequest>,
    ) -> Result<Response<ListEmployeesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.index_page(&rec, "people_employee", &req, 200).await?;
        Ok(Response::new(ListEmployeesResponse {
            employees: rows
                .iter()
                .filter_map(|r| tf::employee(r, &rec.id))
                .collect(),
            page: Some(page),
        }))
    }

    async fn list_items(
        &self,
        request: Request<ListFinanceRequest>,
    ) -> Result<Response<ListItemsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let (rows, page) = self.finance_page(&rec, "inventory_item", &req).await?;
        Ok(Response::new(ListItemsResponse {
            items: rows.iter().filter_map(|r| tf::item(r, &rec.id)).collect(),
            page: Some(page),
        }))
    }

    async fn get_item(&self, request: Request<GetRecordRequest>) -> Result<Response<Item>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        valid_id(&req.id)?;
        let rec = self.connection(&ctx, &req.connection_id).await?;
        let raw = self
            .app_get(&rec, "inventory_item", "item", &req.id)
            .await?;
        Ok(Response::new(
            tf::item(&raw, &rec.id).ok_or_else(|| internal("item"))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_checked_before_zoho_sees_them() {
        let mut lead = Lead {
            last_name: "Lovelace".into(),
            ..Default::default()
        };
        assert!(validate_lead(&lead).is_ok());
        lead.email = "nope".into();
        assert!(validate_lead(&lead).is_err());
        lead.email = String::new();
        lead.annual_revenue = -1.0;
        assert!(validate_lead(&lead).is_err());
        let deal = Deal {
            name: "D".into(),
            stage: "Qualification".into(),
            closing_date: "2026-13-01".into(),
            ..Default::default()
        };
        assert!(validate_deal(&deal).is_err());
        assert!(valid_id("123").is_ok());
        assert!(valid_id("12a").is_err());
        assert!(intent_of(&"k".repeat(129)).is_err());
        let ticket = Ticket {
            subject: "Login Issue".into(),
            email: "user@example.com".into(),
            ..Default::default()
        };
        assert!(validate_ticket(&ticket).is_ok());
        assert!(validate_ticket(&Ticket {
            email: String::new(),
            ..ticket.clone()
        })
        .is_err());
        let mail = SendMailRequest {
            to: "a@b.co, c@d.io".into(),
            subject: "Hi".into(),
            ..Default::default()
        };
        assert!(validate_mail(&mail).is_ok());
        assert!(validate_mail(&SendMailRequest {
            to: "a@b.co, nope".into(),
            ..mail.clone()
        })
        .is_err());
        let invoice = Invoice {
            customer_id: "1".into(),
            line_items: vec![bac_proto::zoho::v1::InvoiceLine {
                name: "Consulting".into(),
                rate: 10.0,
                quantity: 1.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(validate_invoice(&invoice).is_ok());
        assert!(validate_invoice(&Invoice {
            line_items: vec![],
            ..invoice.clone()
        })
        .is_err());
        assert!(validate_invoice(&Invoice {
            currency_code: "usd".into(),
            ..invoice
        })
        .is_err());
    }
}
