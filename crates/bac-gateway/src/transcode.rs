//! REST routes from the annotated protos: every RPC of the descriptor set that carries a
//! `google.api.http` rule is served at its path, authorised by its `(bac.api.v1.method)`
//! action, its request built from the path, the query string, the headers and the body, sent
//! to the owning service as protobuf bytes and its answer shown as REST JSON (`json`).
//! Adding an annotated RPC to a proto adds its route, its OpenAPI operation (`openapi`) and
//! its authorisation; there is no per-endpoint code here.
pub mod json;
pub mod meta;
pub mod openapi;

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::{FromRequest, FromRequestParts, RawPathParams, Request, State},
    http::{HeaderName, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{on, MethodFilter, MethodRouter},
    Json, Router,
};
use bac_proto::api::v1::{Action as ProtoAction, MethodRule};
use bac_runtime::ServiceKind;
use bytes::{Buf, BufMut, Bytes};
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, ReflectMessage,
    Value as PValue,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::{
    auth::Principal,
    authz::{self, Action},
    error::ApiError,
    routes::ApiJson,
    AppState,
};
use json::Invalid;
use meta::{FieldMeta, Metadata};

/// The transcoder of the fleet's own protos, built once.
pub fn fleet() -> Result<&'static Arc<Transcoder>, String> {
    static FLEET: OnceLock<Result<Arc<Transcoder>, String>> = OnceLock::new();
    FLEET
        .get_or_init(|| Transcoder::from_fleet_descriptors().map(Arc::new))
        .as_ref()
        .map_err(Clone::clone)
}

/// The routes of every annotated RPC of the fleet ([`run_with_settings`](crate::run_with_settings)
/// refuses to start when the descriptors do not make routes).
pub fn fleet_router() -> Router<Arc<AppState>> {
    match fleet() {
        Ok(tc) => tc.router(),
        Err(e) => {
            tracing::error!(error = %e, "no transcoded routes");
            Router::new()
        }
    }
}

/// Where the REST request's body goes.
#[derive(Debug, Clone)]
pub enum BodyTarget {
    /// GET, DELETE: no body.
    None,
    /// `body: "*"`: every field not bound to the path, a header or the query string.
    All { skip: Vec<String> },
    /// `body: "lead"`: that message field.
    Field(Box<FieldMeta>),
}

/// One query parameter: the field it fills, under a flattened parent or not.
#[derive(Debug, Clone)]
pub struct QueryParam {
    pub name: String,
    pub parent: Option<FieldMeta>,
    pub field: FieldMeta,
}

/// An annotated RPC as a REST route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// The template as the proto declares it (`/api/v1/odoo/crm/leads/{id}`).
    pub template: String,
    pub path_params: Vec<FieldMeta>,
    pub query: Vec<QueryParam>,
    pub headers: Vec<(HeaderName, FieldMeta)>,
    pub body: BodyTarget,
    /// `/bac.odoo.v1.OdooService/CreateLead`.
    pub grpc_path: String,
    /// The same, parsed once for the client call.
    pub call_path: http::uri::PathAndQuery,
    pub rpc: MethodDescriptor,
    pub service: ServiceKind,
    pub integration: String,
    pub action: Action,
    pub success: StatusCode,
    pub summary: String,
    pub tag: String,
    /// `(bac.api.v1.method).body_min_fields`.
    pub body_min_fields: u32,
}

impl Route {
    fn input(&self) -> MessageDescriptor {
        self.rpc.input()
    }
}

/// An RPC the gateway's gRPC edge serves: every RPC that declares `(bac.api.v1.method)`.
#[derive(Debug, Clone)]
pub struct EdgeRpc {
    /// `/bac.odoo.v1.OdooService/CreateLead`.
    pub grpc_path: String,
    /// The integration (and so the service) the RPC belongs to; `None` for a contract every
    /// service implements (`IntegrationService`): the caller names it.
    pub integration: Option<(String, ServiceKind)>,
    pub action: Action,
}

/// The descriptors and the routes they declare.
#[derive(Debug, Clone)]
pub struct Transcoder {
    pub meta: Metadata,
    pub routes: Vec<Arc<Route>>,
    pub rpcs: Vec<Arc<EdgeRpc>>,
}

impl Transcoder {
    /// Reads the fleet's descriptor set (`bac_proto::FILE_DESCRIPTOR_SET`).
    pub fn from_fleet_descriptors() -> Result<Transcoder, String> {
        let pool = DescriptorPool::decode(bac_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| format!("the descriptor set does not decode: {e}"))?;
        Transcoder::new(pool)
    }

    pub fn new(pool: DescriptorPool) -> Result<Transcoder, String> {
        let meta = Metadata::new(pool.clone())?;
        let http = pool.get_extension_by_name("google.api.http");
        let method_ext = pool.get_extension_by_name("bac.api.v1.method");
        let mut routes = Vec::new();
        let mut rpcs = Vec::new();
        let (Some(http), Some(method_ext)) = (http, method_ext) else {
            return Ok(Transcoder { meta, routes, rpcs });
        };
        for service in pool.services() {
            for rpc in service.methods() {
                let opts = rpc.options();
                let edge: Option<MethodRule> = match opts.get_extension(&method_ext).as_ref() {
                    PValue::Message(m) if opts.has_extension(&method_ext) => {
                        Some(m.transcode_to().map_err(|e| {
                            format!("{}: (bac.api.v1.method): {e}", rpc.full_name())
                        })?)
                    }
                    _ => None,
                };
                if let Some(edge) = &edge {
                    rpcs.push(Arc::new(EdgeRpc {
                        grpc_path: grpc_path(&rpc),
                        integration: match edge.integration.as_str() {
                            "" => None,
                            i => Some((i.to_string(), service_of(rpc.full_name(), i)?)),
                        },
                        action: action_of(rpc.full_name(), edge)?,
                    }));
                }
                if !opts.has_extension(&http) {
                    continue;
                }
                let PValue::Message(rule) = opts.get_extension(&http).into_owned() else {
                    continue;
                };
                let Some(edge) = edge.filter(|e| !e.integration.is_empty()) else {
                    return Err(format!(
                        "{} has a google.api.http rule but no (bac.api.v1.method) naming its \
                         integration: the edge cannot authorise it",
                        rpc.full_name()
                    ));
                };
                routes.push(Arc::new(route(&meta, &rpc, &rule, &edge)?));
            }
        }
        Ok(Transcoder { meta, routes, rpcs })
    }

    /// The axum routes of every annotated RPC.
    pub fn router(self: &Arc<Self>) -> Router<Arc<AppState>> {
        let mut by_path: HashMap<String, MethodRouter<Arc<AppState>>> = HashMap::new();
        for r in &self.routes {
            let filter = match r.method {
                Method::GET => MethodFilter::GET,
                Method::POST => MethodFilter::POST,
                Method::PUT => MethodFilter::PUT,
                Method::PATCH => MethodFilter::PATCH,
                Method::DELETE => MethodFilter::DELETE,
                _ => continue,
            };
            let (route, tc) = (r.clone(), self.clone());
            let handler =
                move |State(state): State<Arc<AppState>>, params: RawPathParams, req: Request| {
                    let (route, tc) = (route.clone(), tc.clone());
                    async move { tc.serve(&route, state, params, req).await }
                };
            let path = axum_path(&r.template);
            let mr = match by_path.remove(&path) {
                Some(existing) => existing.on(filter, handler),
                None => on(filter, handler),
            };
            by_path.insert(path, mr);
        }
        let mut router = Router::new();
        for (path, mr) in by_path {
            router = router.route(&path, mr);
        }
        router
    }

    async fn serve(
        &self,
        route: &Route,
        state: Arc<AppState>,
        params: RawPathParams,
        req: Request,
    ) -> Result<Response, ApiError> {
        let (mut parts, body) = req.into_parts();
        let principal = Principal::from_request_parts(&mut parts, &state).await?;
        authz::require(&state.db, &principal, &route.integration, route.action).await?;
        // What the message takes from the head, read before the body consumes it.
        let query = parts.uri.query().map(str::to_owned);
        let mut from_headers = Vec::new();
        for (header, f) in &route.headers {
            if let Some(v) = parts.headers.get(header) {
                let text = v.to_str().map_err(|_| {
                    ApiError::bad_request(format!("the {header} header must be ASCII text"))
                })?;
                from_headers.push((f, text.trim().to_string()));
            }
        }
        let input = route.input();
        let mut msg = match &route.body {
            BodyTarget::None => DynamicMessage::new(input.clone()),
            BodyTarget::All { skip } => {
                let ApiJson(v) = ApiJson::<serde_json::Value>::from_request(
                    Request::from_parts(parts, body),
                    &state,
                )
                .await?;
                let given = v
                    .as_object()
                    .map_or(0, |o| o.values().filter(|x| !x.is_null()).count());
                if given < route.body_min_fields as usize {
                    let names: Vec<String> = self
                        .meta
                        .fields(&input)
                        .iter()
                        .filter(|f| !f.output_only && !skip.contains(&f.rest_name))
                        .map(|f| f.rest_name.clone())
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "nothing to change: give at least one of {}",
                        names.join(", ")
                    ))
                    .integration(&route.integration));
                }
                self.meta
                    .message_from_json(&input, &v, "", skip)
                    .map_err(bad_for(&route.integration))?
            }
            BodyTarget::Field(f) => {
                let ApiJson(v) = ApiJson::<serde_json::Value>::from_request(
                    Request::from_parts(parts, body),
                    &state,
                )
                .await?;
                let Kind::Message(m) = f.desc.kind() else {
                    return Err(ApiError::internal("body field is not a message"));
                };
                let value = self
                    .meta
                    .message_from_json(&m, &v, "", &[])
                    .map_err(bad_for(&route.integration))?;
                let mut msg = DynamicMessage::new(input.clone());
                msg.set_field(&f.desc, PValue::Message(value));
                msg
            }
        };
        for (name, raw) in params.iter() {
            let Some(f) = route.path_params.iter().find(|f| f.desc.name() == name) else {
                continue;
            };
            let v = scalar_from_text(&self.meta, f, raw, &format!("path parameter {name}"))
                .map_err(bad_for(&route.integration))?;
            msg.set_field(&f.desc, v);
        }
        query_into(&self.meta, route, query.as_deref(), &mut msg)?;
        for (f, text) in from_headers {
            msg.set_field(&f.desc, PValue::String(text));
        }

        let channel = state
            .services
            .channel(route.service)
            .ok_or_else(|| ApiError::internal(format!("no channel for {}", route.integration)))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        let upstream = |s: tonic::Status| ApiError::from_status(&s, &route.integration);
        grpc.ready()
            .await
            .map_err(|e| upstream(tonic::Status::unavailable(format!("{e}"))))?;
        let path = route.call_path.clone();
        let request = principal
            .context()
            .request(Bytes::from(prost::Message::encode_to_vec(&msg)));
        let answer = grpc
            .unary(request, path, RawCodec)
            .await
            .map_err(upstream)?
            .into_inner();
        let out = DynamicMessage::decode(route.rpc.output(), answer).map_err(|e| {
            ApiError::internal(format!(
                "{} answered undecodable bytes: {e}",
                route.grpc_path
            ))
        })?;
        Ok((route.success, Json(self.meta.message_to_json(&out))).into_response())
    }
}

fn bad_for(integration: &str) -> impl Fn(Invalid) -> ApiError + '_ {
    move |e| {
        let err = ApiError::bad_request(e.0);
        if e.1 {
            err.integration(integration)
        } else {
            err
        }
    }
}

/// The query string's parameters into `msg`: each known once (a repeated field any number of
/// times), unknown ones refused.
fn query_into(
    meta: &Metadata,
    route: &Route,
    query: Option<&str>,
    msg: &mut DynamicMessage,
) -> Result<(), ApiError> {
    let Some(q) = query else { return Ok(()) };
    if crate::routes::query_has_nul(q) {
        return Err(crate::routes::nul_refused());
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut children: HashMap<u32, DynamicMessage> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(q.as_bytes()) {
        let Some(p) = route.query.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = route.query.iter().map(|p| p.name.as_str()).collect();
            return Err(ApiError::bad_request(if known.is_empty() {
                format!("unknown query parameter {name:?}: this route takes none")
            } else {
                format!(
                    "unknown query parameter {name:?}; expected one of {}",
                    known.join(", ")
                )
            }));
        };
        let repeated = p.field.desc.is_list();
        if seen.contains(&p.name.as_str()) && !repeated {
            return Err(ApiError::bad_request(format!(
                "query parameter {name} is given more than once"
            )));
        }
        seen.push(&p.name);
        let v = scalar_from_text(meta, &p.field, &value, &format!("query parameter {name}"))
            .map_err(bad_for(&route.integration))?;
        let target = match &p.parent {
            None => &mut *msg,
            Some(parent) => {
                let Kind::Message(m) = parent.desc.kind() else {
                    continue;
                };
                children
                    .entry(parent.desc.number())
                    .or_insert_with(|| DynamicMessage::new(m))
            }
        };
        if repeated {
            let mut list = match target.get_field(&p.field.desc).into_owned() {
                PValue::List(l) => l,
                _ => Vec::new(),
            };
            list.push(v);
            target.set_field(&p.field.desc, PValue::List(list));
        } else {
            target.set_field(&p.field.desc, v);
        }
    }
    for (number, child) in children {
        if let Some(f) = msg.descriptor().get_field(number) {
            msg.set_field(&f, PValue::Message(child));
        }
    }
    Ok(())
}

/// A path or query value (text) as a value of the field's kind.
fn scalar_from_text(
    meta: &Metadata,
    f: &FieldMeta,
    raw: &str,
    what: &str,
) -> Result<PValue, Invalid> {
    let kind = f.desc.kind();
    match kind {
        Kind::String => {
            let v = serde_json::Value::String(raw.to_string());
            f_single(meta, f, &v, what)
        }
        Kind::Bool => match raw {
            "true" => Ok(PValue::Bool(true)),
            "false" => Ok(PValue::Bool(false)),
            _ => Err(Invalid::shape(format!(
                "{what} must be true or false (got {raw:?})"
            ))),
        },
        Kind::Double | Kind::Float => {
            let x: f64 = raw
                .parse()
                .map_err(|_| Invalid::shape(format!("{what} must be a number (got {raw:?})")))?;
            let n = serde_json::Number::from_f64(x)
                .ok_or_else(|| Invalid::shape(format!("{what} must be a finite number")))?;
            f_single(meta, f, &serde_json::Value::Number(n), what)
        }
        Kind::Enum(_) => f_single(meta, f, &serde_json::Value::String(raw.to_string()), what),
        Kind::Message(_) | Kind::Bytes => {
            Err(Invalid::shape(format!("{what} cannot be given as text")))
        }
        k => {
            let unsigned = matches!(
                k,
                Kind::Uint32 | Kind::Uint64 | Kind::Fixed32 | Kind::Fixed64
            );
            let wide: i128 = raw.parse().map_err(|_| {
                Invalid::shape(format!(
                    "{what} must be {} integer (got {raw:?})",
                    if unsigned { "a non-negative" } else { "an" }
                ))
            })?;
            json::integer_value(&k, Some(f), wide, what)
        }
    }
}

fn f_single(
    meta: &Metadata,
    f: &FieldMeta,
    v: &serde_json::Value,
    what: &str,
) -> Result<PValue, Invalid> {
    // One occurrence: a single value even for a repeated field.
    meta.single_from_json(f, v, what)
}

/// `/a/{id}/b` -> `/a/:id/b` (axum 0.7).
fn axum_path(template: &str) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn route(
    meta: &Metadata,
    rpc: &MethodDescriptor,
    rule: &DynamicMessage,
    edge: &MethodRule,
) -> Result<Route, String> {
    let name = rpc.full_name();
    let text = |field: &str| -> String {
        match rule.get_field_by_name(field).as_deref() {
            Some(PValue::String(s)) => s.clone(),
            _ => String::new(),
        }
    };
    let mut found = None;
    for (verb, method) in [
        ("get", Method::GET),
        ("post", Method::POST),
        ("put", Method::PUT),
        ("patch", Method::PATCH),
        ("delete", Method::DELETE),
    ] {
        let t = text(verb);
        if !t.is_empty() {
            found = Some((method, t));
        }
    }
    let (method, template) = found.ok_or_else(|| format!("{name}: google.api.http has no verb"))?;
    let input = rpc.input();
    let mut path_params = Vec::new();
    for seg in template.split('/') {
        if let Some(var) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if var.contains('.') || var.contains('=') {
                return Err(format!(
                    "{name}: path variable {{{var}}}: only plain field names are served"
                ));
            }
            let f = meta
                .fields(&input)
                .iter()
                .find(|f| f.desc.name() == var)
                .cloned()
                .ok_or_else(|| format!("{name}: path variable {{{var}}} names no field"))?;
            path_params.push(f);
        }
    }
    let headers: Vec<(HeaderName, FieldMeta)> = meta
        .fields(&input)
        .iter()
        .filter(|f| !f.rule.header.is_empty())
        .map(|f| {
            HeaderName::from_str(&f.rule.header.to_ascii_lowercase())
                .map(|h| (h, f.clone()))
                .map_err(|e| format!("{name}: header {:?}: {e}", f.rule.header))
        })
        .collect::<Result<_, _>>()?;
    let bound = |f: &FieldMeta| {
        path_params
            .iter()
            .any(|p| p.desc.number() == f.desc.number())
            || !f.rule.header.is_empty()
    };
    let body_rule = text("body");
    let body = match body_rule.as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::All {
            skip: meta
                .fields(&input)
                .iter()
                .filter(|f| bound(f) || f.rule.query)
                .map(|f| f.rest_name.clone())
                .collect(),
        },
        field => BodyTarget::Field(Box::new(
            meta.fields(&input)
                .iter()
                .find(|f| f.desc.name() == field && matches!(f.desc.kind(), Kind::Message(_)))
                .cloned()
                .ok_or_else(|| format!("{name}: body {field:?} names no message field"))?,
        )),
    };
    let mut query = Vec::new();
    for f in meta.fields(&input).iter() {
        let in_query = match &body {
            BodyTarget::None => !bound(f),
            BodyTarget::All { .. } => f.rule.query && !bound(f),
            BodyTarget::Field(b) => !bound(f) && b.desc.number() != f.desc.number(),
        };
        if !in_query || f.output_only {
            continue;
        }
        match f.desc.kind() {
            Kind::Message(m) if f.rule.flatten => {
                for sub in meta.fields(&m).iter() {
                    query.push(QueryParam {
                        name: sub.rest_name.clone(),
                        parent: Some(f.clone()),
                        field: sub.clone(),
                    });
                }
            }
            Kind::Message(_) => {
                return Err(format!(
                    "{name}: message field {} would be a query parameter; flatten it or put it in the body",
                    f.desc.name()
                ))
            }
            _ => query.push(QueryParam {
                name: f.rest_name.clone(),
                parent: None,
                field: f.clone(),
            }),
        }
    }
    let action = action_of(name, edge)?;
    let service = service_of(name, &edge.integration)?;
    let success = match edge.success_status {
        0 => StatusCode::OK,
        n => StatusCode::from_u16(u16::try_from(n).unwrap_or(0))
            .map_err(|_| format!("{name}: success_status {n}"))?,
    };
    Ok(Route {
        method,
        template,
        path_params,
        query,
        headers,
        body,
        grpc_path: grpc_path(rpc),
        call_path: http::uri::PathAndQuery::from_str(&grpc_path(rpc))
            .map_err(|e| format!("{name}: gRPC path: {e}"))?,
        rpc: rpc.clone(),
        service,
        integration: edge.integration.clone(),
        action,
        success,
        summary: edge.summary.clone(),
        tag: if edge.tag.is_empty() {
            edge.integration.clone()
        } else {
            edge.tag.clone()
        },
        body_min_fields: edge.body_min_fields,
    })
}

fn grpc_path(rpc: &MethodDescriptor) -> String {
    format!("/{}/{}", rpc.parent_service().full_name(), rpc.name())
}

fn action_of(name: &str, edge: &MethodRule) -> Result<Action, String> {
    match ProtoAction::try_from(edge.action) {
        Ok(ProtoAction::ViewStatus) => Ok(Action::ViewStatus),
        Ok(ProtoAction::ReadData) => Ok(Action::ReadData),
        Ok(ProtoAction::WriteData) => Ok(Action::WriteData),
        Ok(ProtoAction::Configure) => Ok(Action::Configure),
        _ => Err(format!("{name}: (bac.api.v1.method).action is not set")),
    }
}

/// The integration service that owns `integration` (not the gateway).
pub fn service_of(name: &str, integration: &str) -> Result<ServiceKind, String> {
    ServiceKind::ALL
        .iter()
        .copied()
        .find(|k| *k != ServiceKind::Gateway && k.key() == integration)
        .ok_or_else(|| format!("{name}: no service for integration {integration:?}"))
}

/// Protobuf bytes in and out as they are: the transcoder encodes and decodes dynamic
/// messages itself, and the gRPC edge forwards callers' bytes without re-encoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn tc() -> &'static Arc<Transcoder> {
        fleet().unwrap()
    }

    fn route(name: &str) -> Arc<Route> {
        tc().routes
            .iter()
            .find(|r| r.rpc.name() == name)
            .cloned()
            .unwrap_or_else(|| panic!("no route for {name}"))
    }

    #[test]
    fn every_odoo_rpc_is_a_route_with_its_action() {
        let odoo: Vec<(String, String, Action)> = tc()
            .routes
            .iter()
            .filter(|r| r.integration == "odoo")
            .map(|r| (r.method.to_string(), r.template.clone(), r.action))
            .collect();
        assert_eq!(odoo.len(), 12, "{odoo:?}");
        let lead = route("CreateLead");
        assert_eq!(lead.method, Method::POST);
        assert_eq!(lead.template, "/api/v1/odoo/crm/leads");
        assert_eq!(lead.action, Action::WriteData);
        assert_eq!(lead.success, StatusCode::CREATED);
        assert_eq!(lead.grpc_path, "/bac.odoo.v1.OdooService/CreateLead");
        assert!(matches!(&lead.body, BodyTarget::Field(f) if f.desc.name() == "lead"));
        assert_eq!(lead.headers[0].0.as_str(), "idempotency-key");
        let names: Vec<&str> = lead.query.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["connection_id"]);
        let list = route("ListLeads");
        let names: Vec<&str> = list.query.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["connection_id", "limit", "offset", "name_contains"]);
        assert_eq!(list.action, Action::ReadData);
        assert_eq!(
            axum_path(&route("GetLead").template),
            "/api/v1/odoo/crm/leads/:id"
        );
        let order = route("CreateSaleOrder");
        let BodyTarget::All { skip } = &order.body else {
            panic!("body *")
        };
        assert_eq!(skip, &["connection_id", "intent_id"]);
    }

    #[test]
    fn a_body_is_checked_by_the_field_rules() {
        let meta = &tc().meta;
        let input = route("CreateSaleOrder").rpc.input();
        let skip = ["connection_id".to_string(), "intent_id".to_string()];
        let ok = meta
            .message_from_json(
                &input,
                &json!({"partner": {"name": "Globex"}, "lines": [{"name": "Setup"}, {"product_id": 4, "quantity": 2.5, "price_unit": 9}]}),
                "",
                &skip,
            )
            .unwrap();
        let out = meta.message_to_json(&ok);
        // The default quantity, REST names, and the unset optional as null.
        assert_eq!(out["lines"][0]["quantity"], json!(1.0));
        assert_eq!(out["lines"][0]["name"], "Setup");
        assert_eq!(out["lines"][0]["price_unit"], serde_json::Value::Null);
        assert_eq!(out["lines"][1]["product_id"], json!(4));
        let refused = |body: serde_json::Value| {
            meta.message_from_json(&input, &body, "", &skip)
                .unwrap_err()
                .0
        };
        assert!(refused(json!({"lines": [{"name": "x"}]})).contains("partner is required"));
        assert!(refused(json!({"partner": {}, "lines": []})).contains("lines must hold at least 1"));
        assert!(refused(json!({"partner": {}, "lines": [{"subtotal": 3}]}))
            .contains("unknown field \"lines[0].subtotal\""));
        assert!(
            refused(json!({"partner": {}, "lines": [{"quantity": "2"}]}))
                .contains("lines[0].quantity must be a number")
        );
        assert!(
            refused(json!({"partner": {"id": 1.5}, "lines": [{"name": "x"}]}))
                .contains("partner.id must be an integer")
        );
        assert!(
            refused(json!({"partner": {}, "lines": [{"name": "x"}], "connection_id": "c"}))
                .contains("unknown field \"connection_id\"")
        );
        assert!(refused(json!([])).contains("the body must be a JSON object"));
        let lead = route("CreateLead")
            .rpc
            .input()
            .get_field_by_name("lead")
            .unwrap();
        let Kind::Message(lead) = lead.kind() else {
            panic!()
        };
        let e = meta
            .message_from_json(&lead, &json!({"name": "x", "priority": "urgent"}), "", &[])
            .unwrap_err();
        assert!(
            e.0.contains("priority must be one of low, medium, high, very_high"),
            "{e:?}"
        );
        let e = meta
            .message_from_json(&lead, &json!({"name": "x", "id": 4}), "", &[])
            .unwrap_err();
        assert!(e.0.contains("unknown field \"id\""), "{e:?}");
        let invoice = route("CreateInvoice").rpc.input();
        let e = meta
            .message_from_json(
                &invoice,
                &json!({"partner": {}, "lines": [{"name": "x"}], "invoice_date": "01/09/2024"}),
                "",
                &skip,
            )
            .unwrap_err();
        assert!(e.0.contains("invoice_date must be a date"), "{e:?}");
    }

    #[test]
    fn answers_show_every_field_with_64_bit_numbers_and_null_dates() {
        let meta = &tc().meta;
        let invoice = bac_proto::odoo::v1::Invoice {
            id: 9_007_199_254_740_993,
            number: "/".into(),
            lines: vec![bac_proto::odoo::v1::InvoiceLine {
                description: "Consulting".into(),
                price_unit: Some(100.0),
                ..Default::default()
            }],
            ..Default::default()
        };
        let desc = tc()
            .meta
            .pool
            .get_message_by_name("bac.odoo.v1.Invoice")
            .unwrap();
        let msg = DynamicMessage::decode(desc, prost::Message::encode_to_vec(&invoice).as_slice())
            .unwrap();
        let out = meta.message_to_json(&msg);
        assert_eq!(out["id"], json!(9_007_199_254_740_993_i64));
        assert_eq!(out["invoice_date"], serde_json::Value::Null);
        assert_eq!(out["create_date"], serde_json::Value::Null);
        assert_eq!(out["lines"][0]["name"], "Consulting");
        assert_eq!(out["lines"][0]["price_unit"], json!(100.0));
        assert_eq!(out["amount_total"], json!(0.0));
        assert_eq!(out.as_object().unwrap().len(), 16);
    }

    #[test]
    fn query_values_are_typed_and_checked() {
        let list = route("ListLeads");
        let meta = &tc().meta;
        let mut msg = DynamicMessage::new(list.rpc.input());
        query_into(
            meta,
            &list,
            Some("limit=5&offset=10&name_contains=a%20b"),
            &mut msg,
        )
        .unwrap();
        let out = meta.message_to_json(&msg);
        assert_eq!(out["page"], json!({"limit": 5, "offset": 10}));
        assert_eq!(out["name_contains"], "a b");
        let err = |q: &str| {
            let mut msg = DynamicMessage::new(list.rpc.input());
            query_into(meta, &list, Some(q), &mut msg)
                .unwrap_err()
                .message
        };
        assert!(err("limit=abc").contains("limit must be a non-negative integer"));
        assert!(err("limit=500").contains("limit must be at most 200"));
        assert!(err("limit=-1").contains("limit"));
        assert!(err("colour=red").contains("unknown query parameter \"colour\""));
        assert!(err("limit=1&limit=2").contains("more than once"));
    }

    #[test]
    fn the_lead_operation_documents_its_body_and_answer() {
        let (paths, schemas) = openapi::operations(tc());
        let op = &paths["/api/v1/odoo/crm/leads"]["post"];
        assert_eq!(op["operationId"], "odoo_create_lead");
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/LeadInput"
        );
        assert!(op["responses"]["201"].is_object());
        let input = &schemas["LeadInput"];
        assert_eq!(input["required"], json!(["name"]));
        assert_eq!(input["additionalProperties"], json!(false));
        assert!(input["properties"].get("id").is_none());
        assert_eq!(
            input["properties"]["priority"]["enum"],
            json!(["low", "medium", "high", "very_high", "", null])
        );
        assert_eq!(
            input["properties"]["priority"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(input["properties"]["name"]["pattern"], "\\S");
        let partner = &schemas["PartnerRef"];
        assert_eq!(partner["anyOf"][0]["required"], json!(["id"]));
        assert_eq!(partner["anyOf"][1]["required"], json!(["name"]));
        assert_eq!(schemas["UpdateLeadBody"]["minProperties"], json!(1));
        let output = &schemas["Lead"];
        assert_eq!(
            output["properties"]["create_date"]["type"],
            json!(["string", "null"])
        );
        let params: Vec<&str> = paths["/api/v1/odoo/crm/leads"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            params,
            ["connection_id", "limit", "offset", "name_contains"]
        );
        let limit = &paths["/api/v1/odoo/crm/leads"]["get"]["parameters"][1]["schema"];
        assert_eq!(limit["maximum"], json!(200));
    }
}
