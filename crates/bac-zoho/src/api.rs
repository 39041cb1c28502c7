//! The gRPC face of bac-zoho's domain: `bac.zoho.v1.ZohoService` (CRM leads, contacts,
//! deals). Creates and updates take the engine's one write path (the entity's adapter, then
//! the mirror and its `bac.zoho.<entity>.v1` event); reads go straight to Zoho.
use bac_proto::zoho::v1::{
    zoho_service_server::ZohoService, Contact, CreateContactRequest, CreateDealRequest,
    CreateLeadRequest, Deal, GetRecordRequest, Lead, ListContactsResponse, ListDealsResponse,
    ListLeadsResponse, ListRecordsRequest, RecordPage, UpdateContactRequest, UpdateLeadRequest,
};
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::{
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
    }
}
