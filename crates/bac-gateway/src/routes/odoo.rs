//! `/api/v1/odoo/...`: Odoo data routes, forwarded to bac-odoo over gRPC. Paths follow the
//! documented endpoint list (`/crm/leads`, `/sales/orders`, `/accounting/invoices`,
//! `/inventory/products`, `/inventory/stock`, `/hr/employees`) under `/api/v1/odoo`, plus
//! `GET|PATCH /crm/leads/{id}` and the generic `POST /execute_kw`.
//!
//! Creates accept an `Idempotency-Key` header: it becomes the record's intent id in Odoo, so
//! repeating the request returns the record created the first time instead of a second one.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use bac_proto::{
    common::v1::{PageInfo, PageRequest},
    odoo::v1::{
        odoo_service_client::OdooServiceClient, CreateInvoiceRequest, CreateLeadRequest,
        CreateSaleOrderRequest, Employee, ExecuteKwRequest, GetLeadRequest, Invoice, InvoiceLine,
        Lead, ListEmployeesRequest, ListInvoicesRequest, ListLeadsRequest, ListProductsRequest,
        ListSaleOrdersRequest, ListStockRequest, PartnerRef, Product, SaleOrder, SaleOrderLine,
        StockQuant, UpdateLeadRequest,
    },
};
use bac_runtime::ServiceKind;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{connections::ts, ApiJson, ApiQuery};
use crate::{
    auth::Principal,
    authz::{self, Action},
    error::ApiError,
    AppState,
};

/// The documented lead body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLeadBody {
    pub name: String,
    pub partner_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub expected_revenue: Option<f64>,
    /// low | medium | high | very_high
    pub priority: Option<String>,
}

/// The lead fields to change; absent fields keep their value, an empty string clears one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLeadBody {
    pub name: Option<String>,
    pub partner_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub expected_revenue: Option<f64>,
    /// low | medium | high | very_high
    pub priority: Option<String>,
}

/// Who an order or invoice is for: an Odoo partner id, or a name (and email) that is looked
/// up (by email, else by exact name) and created when Odoo has no such partner.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerBody {
    /// `res.partner` id.
    pub id: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One order or invoice line: a product and/or a description.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// `product.product` id.
    pub product_id: Option<i64>,
    /// The line's description (default: the product's name).
    pub name: Option<String>,
    /// Default 1; must be positive.
    pub quantity: Option<f64>,
    /// Default: the product's sales price.
    pub price_unit: Option<f64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSaleOrderBody {
    pub partner: PartnerBody,
    pub lines: Vec<LineBody>,
    /// Terms and conditions.
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceBody {
    pub partner: PartnerBody,
    pub lines: Vec<LineBody>,
    /// YYYY-MM-DD
    pub invoice_date: Option<String>,
    /// YYYY-MM-DD
    pub due_date: Option<String>,
    /// Post (confirm) the invoice after creating it.
    pub post: Option<bool>,
}

/// `model.method(*args, **kwargs)`, permitted by the connection's allow-list.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteKwBody {
    /// e.g. res.partner (must be in the connection's `allowed_models`).
    pub model: String,
    /// search, search_read, read, search_count, fields_get, name_search, create, write
    /// (unlink with `allow_unlink`).
    pub method: String,
    /// Positional arguments, as Odoo's execute_kw takes them.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConnectionQuery {
    /// The Odoo connection (default: the tenant's only one).
    pub connection_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The Odoo connection (default: the tenant's only one).
    pub connection_id: Option<String>,
    /// Page size, default 20, at most 200.
    #[param(maximum = 200)]
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// Case-insensitive match on the name.
    pub name_contains: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The Odoo connection (default: the tenant's only one).
    pub connection_id: Option<String>,
    /// Page size, default 20, at most 200.
    #[param(maximum = 200)]
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    /// The Odoo connection (default: the tenant's only one).
    pub connection_id: Option<String>,
    /// Page size, default 20, at most 200.
    #[param(maximum = 200)]
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// Only this product.
    pub product_id: Option<i64>,
}

// ----------------------------------------------------------------- response shapes (docs)

#[derive(Debug, utoipa::ToSchema)]
pub struct LeadView {
    pub id: i64,
    pub name: String,
    pub partner_name: String,
    pub email: String,
    pub phone: String,
    pub expected_revenue: f64,
    pub priority: String,
    pub connection_id: String,
    pub create_date: Option<String>,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct LeadList {
    pub leads: Vec<LeadView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct LineView {
    pub id: i64,
    /// 0 when the line has no product.
    pub product_id: i64,
    pub product_name: String,
    pub name: String,
    pub quantity: f64,
    pub price_unit: f64,
    pub subtotal: f64,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct SaleOrderView {
    pub id: i64,
    /// Odoo's order reference (S00042).
    pub name: String,
    pub partner_id: i64,
    pub partner_name: String,
    /// draft | sent | sale | cancel
    pub state: String,
    pub order_date: Option<String>,
    pub client_reference: String,
    pub lines: Vec<LineView>,
    pub amount_untaxed: f64,
    pub amount_tax: f64,
    pub amount_total: f64,
    pub connection_id: String,
    pub create_date: Option<String>,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct SaleOrderList {
    pub orders: Vec<SaleOrderView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct InvoiceView {
    pub id: i64,
    /// "/" while draft, e.g. INV/2024/00001 once posted.
    pub number: String,
    pub partner_id: i64,
    pub partner_name: String,
    /// draft | posted | cancel
    pub state: String,
    pub payment_state: String,
    pub invoice_date: Option<String>,
    pub due_date: Option<String>,
    pub reference: String,
    pub lines: Vec<LineView>,
    pub amount_untaxed: f64,
    pub amount_tax: f64,
    pub amount_total: f64,
    pub connection_id: String,
    pub create_date: Option<String>,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct InvoiceList {
    pub invoices: Vec<InvoiceView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct ProductView {
    pub id: i64,
    pub name: String,
    pub internal_reference: String,
    pub barcode: String,
    pub sales_price: f64,
    pub cost: f64,
    /// goods | service | combo
    pub product_type: String,
    pub storable: bool,
    pub can_be_sold: bool,
    pub can_be_purchased: bool,
    pub active: bool,
    pub connection_id: String,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct ProductList {
    pub products: Vec<ProductView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct StockView {
    pub id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub location_id: i64,
    pub location_name: String,
    pub quantity: f64,
    pub reserved_quantity: f64,
    pub available_quantity: f64,
    pub connection_id: String,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct StockList {
    pub stock: Vec<StockView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct EmployeeView {
    pub id: i64,
    pub name: String,
    pub job_title: String,
    pub work_email: String,
    pub work_phone: String,
    /// 0 when none.
    pub department_id: i64,
    pub department_name: String,
    /// 0 when none.
    pub manager_id: i64,
    pub manager_name: String,
    pub connection_id: String,
    pub write_date: Option<String>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct EmployeeList {
    pub employees: Vec<EmployeeView>,
    pub pagination: crate::openapi::Pagination,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct ExecuteKwResult {
    /// What Odoo answered (any JSON value).
    pub result: Value,
}

// ----------------------------------------------------------------------------- helpers

fn client(state: &AppState) -> Result<OdooServiceClient<crate::services::GrpcChannel>, ApiError> {
    state
        .services
        .channel(ServiceKind::Odoo)
        .map(OdooServiceClient::new)
        .ok_or_else(|| ApiError::internal("no channel for odoo"))
}

fn upstream(s: tonic::Status) -> ApiError {
    ApiError::from_status(&s, "odoo")
}

/// The `Idempotency-Key` header (becomes the intent id; bac-odoo checks its length).
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(String::new()),
        Some(v) => v
            .to_str()
            .map(|s| s.trim().to_string())
            .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be ASCII text")),
    }
}

fn page(limit: Option<u32>, offset: Option<u32>) -> Option<PageRequest> {
    Some(PageRequest {
        limit: limit.unwrap_or(0),
        offset: offset.unwrap_or(0),
    })
}

fn pagination(p: Option<PageInfo>) -> Value {
    let p = p.unwrap_or_default();
    json!({ "limit": p.limit, "offset": p.offset, "total": p.total, "next_offset": p.next_offset })
}

fn opt_ts(t: &Option<pbjson_types::Timestamp>) -> Value {
    t.as_ref().map(ts).map_or(Value::Null, Value::String)
}

fn opt_date(d: &str) -> Value {
    if d.is_empty() {
        Value::Null
    } else {
        json!(d)
    }
}

fn lead_json(l: &Lead) -> Value {
    json!({
        "id": l.id,
        "name": l.name,
        "partner_name": l.partner_name,
        "email": l.email,
        "phone": l.phone,
        "expected_revenue": l.expected_revenue,
        "priority": l.priority,
        "connection_id": l.connection_id,
        "create_date": opt_ts(&l.create_date),
        "write_date": opt_ts(&l.write_date),
    })
}

fn line_json(
    id: i64,
    product_id: i64,
    product_name: &str,
    name: &str,
    quantity: f64,
    price_unit: Option<f64>,
    subtotal: f64,
) -> Value {
    json!({
        "id": id,
        "product_id": product_id,
        "product_name": product_name,
        "name": name,
        "quantity": quantity,
        "price_unit": price_unit.unwrap_or(0.0),
        "subtotal": subtotal,
    })
}

fn order_json(o: &SaleOrder) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            line_json(
                l.id,
                l.product_id,
                &l.product_name,
                &l.description,
                l.quantity,
                l.price_unit,
                l.subtotal,
            )
        })
        .collect();
    json!({
        "id": o.id,
        "name": o.name,
        "partner_id": o.partner_id,
        "partner_name": o.partner_name,
        "state": o.state,
        "order_date": opt_ts(&o.order_date),
        "client_reference": o.client_reference,
        "lines": lines,
        "amount_untaxed": o.amount_untaxed,
        "amount_tax": o.amount_tax,
        "amount_total": o.amount_total,
        "connection_id": o.connection_id,
        "create_date": opt_ts(&o.create_date),
        "write_date": opt_ts(&o.write_date),
    })
}

fn invoice_json(i: &Invoice) -> Value {
    let lines: Vec<Value> = i
        .lines
        .iter()
        .map(|l| {
            line_json(
                l.id,
                l.product_id,
                &l.product_name,
                &l.description,
                l.quantity,
                l.price_unit,
                l.subtotal,
            )
        })
        .collect();
    json!({
        "id": i.id,
        "number": i.number,
        "partner_id": i.partner_id,
        "partner_name": i.partner_name,
        "state": i.state,
        "payment_state": i.payment_state,
        "invoice_date": opt_date(&i.invoice_date),
        "due_date": opt_date(&i.due_date),
        "reference": i.reference,
        "lines": lines,
        "amount_untaxed": i.amount_untaxed,
        "amount_tax": i.amount_tax,
        "amount_total": i.amount_total,
        "connection_id": i.connection_id,
        "create_date": opt_ts(&i.create_date),
        "write_date": opt_ts(&i.write_date),
    })
}

fn product_json(p: &Product) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "internal_reference": p.internal_reference,
        "barcode": p.barcode,
        "sales_price": p.sales_price,
        "cost": p.cost,
        "product_type": p.product_type,
        "storable": p.storable,
        "can_be_sold": p.can_be_sold,
        "can_be_purchased": p.can_be_purchased,
        "active": p.active,
        "connection_id": p.connection_id,
        "write_date": opt_ts(&p.write_date),
    })
}

fn quant_json(q: &StockQuant) -> Value {
    json!({
        "id": q.id,
        "product_id": q.product_id,
        "product_name": q.product_name,
        "location_id": q.location_id,
        "location_name": q.location_name,
        "quantity": q.quantity,
        "reserved_quantity": q.reserved_quantity,
        "available_quantity": q.available_quantity,
        "connection_id": q.connection_id,
        "write_date": opt_ts(&q.write_date),
    })
}

fn employee_json(e: &Employee) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "job_title": e.job_title,
        "work_email": e.work_email,
        "work_phone": e.work_phone,
        "department_id": e.department_id,
        "department_name": e.department_name,
        "manager_id": e.manager_id,
        "manager_name": e.manager_name,
        "connection_id": e.connection_id,
        "write_date": opt_ts(&e.write_date),
    })
}

fn partner_ref(p: PartnerBody) -> PartnerRef {
    PartnerRef {
        id: p.id.unwrap_or(0),
        name: p.name.unwrap_or_default(),
        email: p.email.unwrap_or_default(),
    }
}

/// `(product_id, name, quantity, price_unit)` of the body's lines.
fn lines_of(lines: Vec<LineBody>) -> impl Iterator<Item = (i64, String, f64, Option<f64>)> {
    lines.into_iter().map(|l| {
        (
            l.product_id.unwrap_or(0),
            l.name.unwrap_or_default(),
            l.quantity.unwrap_or(1.0),
            l.price_unit,
        )
    })
}

/// A lead id in the path: a positive integer.
fn lead_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("the lead id must be a positive integer (Odoo's id)"))
}

/// `google.protobuf.Value` carries every number as a double: Odoo's ids and counts come
/// back as whole numbers and are shown as integers again.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

const IDEMPOTENCY: &str = "A client key (1-128 characters) stored in Odoo as the record's intent id: repeating the request with the same key returns the record created the first time";

// ------------------------------------------------------------------------------ routes

#[utoipa::path(post, path = "/api/v1/odoo/crm/leads", tag = "odoo",
    summary = "Create a CRM lead (crm.lead)",
    params(ConnectionQuery, ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    request_body = CreateLeadBody,
    responses((status = 201, description = "Created", body = LeadView), crate::openapi::CommonErrors))]
pub async fn create_lead(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<CreateLeadBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let lead = Lead {
        name: body.name,
        partner_name: body.partner_name.unwrap_or_default(),
        email: body.email.unwrap_or_default(),
        phone: body.phone.unwrap_or_default(),
        expected_revenue: body.expected_revenue.unwrap_or(0.0),
        priority: body.priority.unwrap_or_default(),
        ..Default::default()
    };
    let req = CreateLeadRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        lead: Some(lead),
        intent_id: idempotency_key(&headers)?,
    };
    let created = client(&state)?
        .create_lead(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(lead_json(&created))))
}

#[utoipa::path(get, path = "/api/v1/odoo/crm/leads", tag = "odoo",
    summary = "List CRM leads, newest first",
    params(ListQuery),
    responses((status = 200, description = "One page of leads", body = LeadList), crate::openapi::CommonErrors))]
pub async fn list_leads(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListLeadsRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
        name_contains: q.name_contains.unwrap_or_default(),
    };
    let resp = client(&state)?
        .list_leads(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "leads": resp.leads.iter().map(lead_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(get, path = "/api/v1/odoo/crm/leads/{id}", tag = "odoo",
    summary = "One CRM lead",
    params(("id" = i64, Path, description = "Odoo's lead id"), ConnectionQuery),
    responses((status = 200, description = "The lead", body = LeadView), crate::openapi::CommonErrors))]
pub async fn get_lead(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = GetLeadRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        id: lead_id(&id)?,
    };
    let lead = client(&state)?
        .get_lead(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(lead_json(&lead)))
}

#[utoipa::path(patch, path = "/api/v1/odoo/crm/leads/{id}", tag = "odoo",
    summary = "Change a CRM lead's fields",
    params(("id" = i64, Path, description = "Odoo's lead id"), ConnectionQuery),
    request_body = UpdateLeadBody,
    responses((status = 200, description = "The changed lead", body = LeadView), crate::openapi::CommonErrors))]
pub async fn update_lead(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<UpdateLeadBody>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let req = UpdateLeadRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        id: lead_id(&id)?,
        name: body.name,
        partner_name: body.partner_name,
        email: body.email,
        phone: body.phone,
        expected_revenue: body.expected_revenue,
        priority: body.priority,
    };
    let lead = client(&state)?
        .update_lead(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(lead_json(&lead)))
}

#[utoipa::path(post, path = "/api/v1/odoo/sales/orders", tag = "odoo",
    summary = "Create a quotation (sale.order) with its lines",
    params(ConnectionQuery, ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    request_body = CreateSaleOrderBody,
    responses((status = 201, description = "Created", body = SaleOrderView), crate::openapi::CommonErrors))]
pub async fn create_sale_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<CreateSaleOrderBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let lines = lines_of(body.lines)
        .map(
            |(product_id, description, quantity, price_unit)| SaleOrderLine {
                product_id,
                description,
                quantity,
                price_unit,
                ..Default::default()
            },
        )
        .collect();
    let req = CreateSaleOrderRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        partner: Some(partner_ref(body.partner)),
        lines,
        note: body.note.unwrap_or_default(),
        intent_id: idempotency_key(&headers)?,
    };
    let order = client(&state)?
        .create_sale_order(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(order_json(&order))))
}

#[utoipa::path(get, path = "/api/v1/odoo/sales/orders", tag = "odoo",
    summary = "List sale orders (quotations and orders) with their lines, newest first",
    params(PageQuery),
    responses((status = 200, description = "One page of orders", body = SaleOrderList), crate::openapi::CommonErrors))]
pub async fn list_sale_orders(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListSaleOrdersRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
    };
    let resp = client(&state)?
        .list_sale_orders(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "orders": resp.orders.iter().map(order_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(post, path = "/api/v1/odoo/accounting/invoices", tag = "odoo",
    summary = "Create a customer invoice (account.move out_invoice), optionally posted",
    params(ConnectionQuery, ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    request_body = CreateInvoiceBody,
    responses((status = 201, description = "Created", body = InvoiceView), crate::openapi::CommonErrors))]
pub async fn create_invoice(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<CreateInvoiceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let lines = lines_of(body.lines)
        .map(
            |(product_id, description, quantity, price_unit)| InvoiceLine {
                product_id,
                description,
                quantity,
                price_unit,
                ..Default::default()
            },
        )
        .collect();
    let req = CreateInvoiceRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        partner: Some(partner_ref(body.partner)),
        lines,
        invoice_date: body.invoice_date.unwrap_or_default(),
        due_date: body.due_date.unwrap_or_default(),
        post: body.post.unwrap_or(false),
        intent_id: idempotency_key(&headers)?,
    };
    let invoice = client(&state)?
        .create_invoice(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(invoice_json(&invoice))))
}

#[utoipa::path(get, path = "/api/v1/odoo/accounting/invoices", tag = "odoo",
    summary = "List customer invoices with their lines, newest first",
    params(PageQuery),
    responses((status = 200, description = "One page of invoices", body = InvoiceList), crate::openapi::CommonErrors))]
pub async fn list_invoices(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListInvoicesRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
    };
    let resp = client(&state)?
        .list_invoices(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "invoices": resp.invoices.iter().map(invoice_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(get, path = "/api/v1/odoo/inventory/products", tag = "odoo",
    summary = "List products (product.product)",
    params(ListQuery),
    responses((status = 200, description = "One page of products", body = ProductList), crate::openapi::CommonErrors))]
pub async fn list_products(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListProductsRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
        name_contains: q.name_contains.unwrap_or_default(),
    };
    let resp = client(&state)?
        .list_products(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "products": resp.products.iter().map(product_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(get, path = "/api/v1/odoo/inventory/stock", tag = "odoo",
    summary = "List on-hand stock per product and location (stock.quant)",
    params(StockQuery),
    responses((status = 200, description = "One page of stock", body = StockList), crate::openapi::CommonErrors))]
pub async fn list_stock(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<StockQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListStockRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
        product_id: q.product_id.unwrap_or(0),
    };
    let resp = client(&state)?
        .list_stock(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "stock": resp.quants.iter().map(quant_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(get, path = "/api/v1/odoo/hr/employees", tag = "odoo",
    summary = "List employees (hr.employee)",
    params(ListQuery),
    responses((status = 200, description = "One page of employees", body = EmployeeList), crate::openapi::CommonErrors))]
pub async fn list_employees(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::ReadData).await?;
    let req = ListEmployeesRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        page: page(q.limit, q.offset),
        name_contains: q.name_contains.unwrap_or_default(),
    };
    let resp = client(&state)?
        .list_employees(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(json!({
        "employees": resp.employees.iter().map(employee_json).collect::<Vec<_>>(),
        "pagination": pagination(resp.page),
    })))
}

#[utoipa::path(post, path = "/api/v1/odoo/execute_kw", tag = "odoo",
    summary = "Call any model method the connection's allow-list permits (allowed_models, allow_unlink)",
    params(ConnectionQuery),
    request_body = ExecuteKwBody,
    responses((status = 200, description = "Odoo's answer", body = ExecuteKwResult), crate::openapi::CommonErrors))]
pub async fn execute_kw(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
    ApiJson(body): ApiJson<ExecuteKwBody>,
) -> Result<Json<Value>, ApiError> {
    authz::require(&state.db, &principal, "odoo", Action::WriteData).await?;
    let args = serde_json::from_value(Value::Array(body.args))
        .map_err(|_| ApiError::bad_request("args must be a JSON array"))?;
    let kwargs = serde_json::from_value(Value::Object(body.kwargs))
        .map_err(|_| ApiError::bad_request("kwargs must be a JSON object"))?;
    let req = ExecuteKwRequest {
        connection_id: q.connection_id.unwrap_or_default(),
        model: body.model,
        method: body.method,
        args: Some(args),
        kwargs: Some(kwargs),
    };
    let resp = client(&state)?
        .execute_kw(principal.context().request(req))
        .await
        .map_err(upstream)?
        .into_inner();
    let result = resp
        .result
        .and_then(|v| serde_json::to_value(v).ok())
        .map(integral)
        .unwrap_or(Value::Null);
    Ok(Json(json!({ "result": result })))
}
