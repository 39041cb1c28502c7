//! Who is calling and on whose behalf: tenant, principal, request id and W3C `traceparent`
//! travel as gRPC metadata from the gateway to every service. Services read them with
//! [`RequestContext::from_metadata`] on every call (the tenant is re-checked, never assumed).
use tonic::{metadata::MetadataMap, Status};

pub const TENANT_HEADER: &str = "x-bac-tenant";
pub const PRINCIPAL_HEADER: &str = "x-bac-principal";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TRACEPARENT_HEADER: &str = "traceparent";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub tenant_id: String,
    pub principal: String,
    pub request_id: String,
    pub traceparent: Option<String>,
}

/// Tenant ids are used in Vault paths and Kafka keys, so their alphabet is narrow.
pub fn valid_tenant_id(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && t.as_bytes()[0].is_ascii_alphanumeric()
}

impl RequestContext {
    pub fn from_metadata(md: &MetadataMap) -> Result<Self, Status> {
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let tenant_id = get(TENANT_HEADER)
            .ok_or_else(|| Status::unauthenticated("missing x-bac-tenant metadata"))?;
        if !valid_tenant_id(&tenant_id) {
            return Err(Status::invalid_argument("malformed x-bac-tenant metadata"));
        }
        Ok(RequestContext {
            tenant_id,
            principal: get(PRINCIPAL_HEADER).unwrap_or_else(|| "anonymous".into()),
            request_id: get(REQUEST_ID_HEADER).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            traceparent: get(TRACEPARENT_HEADER),
        })
    }

    /// Wraps `msg` in a request carrying this context (gateway -> service, service -> service).
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        let mut put = |k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                md.insert(k, v);
            }
        };
        put(TENANT_HEADER, &self.tenant_id);
        put(PRINCIPAL_HEADER, &self.principal);
        put(REQUEST_ID_HEADER, &self.request_id);
        if let Some(tp) = self
            .traceparent
            .clone()
            .or_else(crate::telemetry::current_traceparent)
        {
            put(TRACEPARENT_HEADER, &tp);
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_is_required_and_checked() {
        let mut md = MetadataMap::new();
        assert_eq!(
            RequestContext::from_metadata(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert(TENANT_HEADER, "../etc".parse().unwrap());
        assert_eq!(
            RequestContext::from_metadata(&md).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        md.insert(TENANT_HEADER, "demo".parse().unwrap());
        md.insert(REQUEST_ID_HEADER, "r-1".parse().unwrap());
        let ctx = RequestContext::from_metadata(&md).unwrap();
        assert_eq!(ctx.tenant_id, "demo");
        assert_eq!(ctx.request_id, "r-1");
        let req = ctx.request(());
        assert_eq!(req.metadata().get(TENANT_HEADER).unwrap(), "demo");
    }
}
