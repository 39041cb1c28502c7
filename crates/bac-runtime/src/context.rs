//! Who is calling and on whose behalf: tenant, principal, request id and W3C `traceparent`
//! travel as gRPC metadata from the gateway to every service. Services read them with
//! [`RequestContext::from_metadata`] on every call (the tenant is re-checked, never assumed).
//!
//! Services believe that metadata only when it is signed: [`RequestContext::request`] adds
//! `x-bac-context-signature`, an HMAC-SHA256 over tenant, principal, request id and an expiry,
//! keyed by the fleet's context key (in Vault at [`SIGNING_KEY_PATH`], created by the first
//! process that starts, loaded by every process at start, [`load_signing_key`]). A call made
//! straight to a service with a forged `x-bac-tenant` and no valid signature is
//! `UNAUTHENTICATED`; only the gateway (and the fleet's own processes) hold the key.
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::{metadata::MetadataMap, Status};

pub const TENANT_HEADER: &str = "x-bac-tenant";
pub const PRINCIPAL_HEADER: &str = "x-bac-principal";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// `v1.<expiry, unix seconds>.<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-bac-context-signature";
/// The fleet's context key (KV v2, the connections' mount). `_fleet` is no tenant id: tenant
/// ids start with a letter or a digit.
pub const SIGNING_KEY_PATH: &str = "bac/_fleet/context-signing-key";
/// How long a signed context stays good: one call's deadline plus clock skew.
const SIGNATURE_TTL_SECS: i64 = 300;

/// The context key, already keyed into an HMAC (a call clones it instead of re-keying).
static SIGNING_KEY: RwLock<Option<Hmac<Sha256>>> = RwLock::new(None);

/// Makes `key` this process's context key (signing and verifying).
pub fn install_signing_key(key: Vec<u8>) {
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return;
    };
    if let Ok(mut k) = SIGNING_KEY.write() {
        *k = Some(mac);
    }
}

/// Reads the fleet's context key from Vault, creating it (check-and-set, so concurrent first
/// starts agree on one) when there is none yet, and installs it.
pub async fn load_signing_key(vault: &crate::vault::Vault) -> Result<(), crate::vault::VaultError> {
    use secrecy::ExposeSecret;
    for _ in 0..3 {
        if let Some(secret) = vault.read(SIGNING_KEY_PATH).await? {
            if let Some(k) = secret.data.get("key") {
                if let Ok(bytes) = hex::decode(k.expose_secret()) {
                    if bytes.len() >= 32 {
                        install_signing_key(bytes);
                        return Ok(());
                    }
                }
            }
        }
        let fresh: [u8; 32] = rand::random();
        let mut data = std::collections::HashMap::new();
        data.insert(
            "key".to_string(),
            secrecy::SecretString::from(hex::encode(fresh)),
        );
        match vault.write(SIGNING_KEY_PATH, &data, Some(0)).await {
            Ok(_) => {
                install_signing_key(fresh.to_vec());
                return Ok(());
            }
            // Another process created it first: read theirs.
            Err(crate::vault::VaultError::CasConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(crate::vault::VaultError::Body {
        path: SIGNING_KEY_PATH.into(),
    })
}

/// A secret only the fleet can compute for `subject` (hex, 40 characters), keyed by the
/// fleet's context key under `purpose`: what the fleet hands an upstream to send back (a
/// push channel's verification token) and checks later without storing it. `None` before the
/// key is loaded.
pub fn derive_token(purpose: &str, subject: &str) -> Option<String> {
    let guard = SIGNING_KEY.read().ok()?;
    let mut mac = guard.as_ref()?.clone();
    // "derived" never starts a context MAC ("v1"): the two never collide
    for part in ["derived", purpose, subject] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    Some(hex::encode(mac.finalize().into_bytes())[..40].to_string())
}

/// The MAC of one context, before finalising.
fn context_mac(
    keyed: &Hmac<Sha256>,
    tenant: &str,
    principal: &str,
    request_id: &str,
    expiry: i64,
) -> Hmac<Sha256> {
    let mut mac = keyed.clone();
    for part in ["v1", tenant, principal, request_id] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac.update(expiry.to_string().as_bytes());
    mac
}

/// Whether `token` signs this context and has not expired.
fn verify(md: &MetadataMap, tenant: &str, principal: &str, request_id: &str) -> Result<(), Status> {
    let unauthenticated = |why: &str| {
        Status::unauthenticated(format!(
            "{why}: services take calls from the gateway (or the fleet's own processes) only"
        ))
    };
    let guard = SIGNING_KEY
        .read()
        .map_err(|_| unauthenticated("no context key"))?;
    let Some(key) = guard.as_ref() else {
        return Err(unauthenticated("this process has no context key"));
    };
    let token = md
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthenticated("unsigned call context"))?;
    let mut parts = token.splitn(3, '.');
    let (Some("v1"), Some(expiry), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unauthenticated("malformed context signature"));
    };
    let expiry: i64 = expiry
        .parse()
        .map_err(|_| unauthenticated("malformed context signature"))?;
    let sig = hex::decode(sig).map_err(|_| unauthenticated("malformed context signature"))?;
    context_mac(key, tenant, principal, request_id, expiry)
        .verify_slice(&sig)
        .map_err(|_| unauthenticated("the call context's signature does not verify"))?;
    if expiry < chrono::Utc::now().timestamp() {
        return Err(unauthenticated("the call context's signature has expired"));
    }
    Ok(())
}

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
        let principal = get(PRINCIPAL_HEADER).unwrap_or_default();
        let request_id = get(REQUEST_ID_HEADER).unwrap_or_default();
        verify(md, &tenant_id, &principal, &request_id)?;
        Ok(RequestContext {
            tenant_id,
            principal: if principal.is_empty() {
                "anonymous".into()
            } else {
                principal
            },
            request_id: if request_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                request_id
            },
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
        let expiry = chrono::Utc::now().timestamp() + SIGNATURE_TTL_SECS;
        let sig = SIGNING_KEY.read().ok().and_then(|k| {
            k.as_ref().map(|keyed| {
                let mac = context_mac(
                    keyed,
                    &self.tenant_id,
                    &self.principal,
                    &self.request_id,
                    expiry,
                );
                hex::encode(mac.finalize().into_bytes())
            })
        });
        if let Some(sig) = sig {
            put(SIGNATURE_HEADER, &format!("v1.{expiry}.{sig}"));
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_is_required_and_checked() {
        install_signing_key(vec![7; 32]);
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
        // Unsigned: a forged tenant header is not believed.
        assert_eq!(
            RequestContext::from_metadata(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let signed = RequestContext {
            tenant_id: "demo".into(),
            principal: "user:u1".into(),
            request_id: "r-1".into(),
            traceparent: None,
        }
        .request(());
        let ctx = RequestContext::from_metadata(signed.metadata()).unwrap();
        assert_eq!(ctx.tenant_id, "demo");
        assert_eq!(ctx.request_id, "r-1");
        assert_eq!(ctx.principal, "user:u1");
        // The signature covers the tenant: moving it to another tenant breaks it.
        let mut moved = signed.metadata().clone();
        moved.insert(TENANT_HEADER, "other".parse().unwrap());
        assert_eq!(
            RequestContext::from_metadata(&moved).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let mut expired = signed.metadata().clone();
        let past = chrono::Utc::now().timestamp() - 1;
        let keyed = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
        let sig = hex::encode(
            context_mac(&keyed, "demo", "user:u1", "r-1", past)
                .finalize()
                .into_bytes(),
        );
        expired.insert(
            SIGNATURE_HEADER,
            format!("v1.{past}.{sig}").parse().unwrap(),
        );
        assert_eq!(
            RequestContext::from_metadata(&expired).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
