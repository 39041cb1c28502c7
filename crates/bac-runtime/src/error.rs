//! The fleet's error vocabulary. A service turns its failures into a [`ServiceError`] (an
//! `error_code` such as `INVALID_CREDENTIALS` plus a suggestion for the user); it travels as a
//! gRPC status with a `google.rpc.ErrorInfo` detail, and the gateway turns that into the one
//! REST error shape. Internal detail is logged, never returned.
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Stable, documented `error_code` values (docs/errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    NotFound,
    AlreadyExists,
    Unauthenticated,
    PermissionDenied,
    /// No connection of this integration exists for the tenant.
    NotConnected,
    /// The upstream rejected the connection's credentials.
    InvalidCredentials,
    ConnectionTimeout,
    UpstreamUnavailable,
    UpstreamRateLimited,
    /// The upstream refused the request itself (validation, missing model...).
    UpstreamRejected,
    /// The upstream URL points where the deployment's egress policy does not allow.
    UpstreamAddressNotAllowed,
    SecretStoreUnavailable,
    NotImplemented,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::NotConnected => "NOT_CONNECTED",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::ConnectionTimeout => "CONNECTION_TIMEOUT",
            ErrorCode::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            ErrorCode::UpstreamRateLimited => "UPSTREAM_RATE_LIMITED",
            ErrorCode::UpstreamRejected => "UPSTREAM_REJECTED",
            ErrorCode::UpstreamAddressNotAllowed => "UPSTREAM_ADDRESS_NOT_ALLOWED",
            ErrorCode::SecretStoreUnavailable => "SECRET_STORE_UNAVAILABLE",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::UpstreamRejected => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::NotConnected
            | ErrorCode::InvalidCredentials
            | ErrorCode::UpstreamAddressNotAllowed => Code::FailedPrecondition,
            ErrorCode::ConnectionTimeout => Code::DeadlineExceeded,
            ErrorCode::UpstreamUnavailable | ErrorCode::SecretStoreUnavailable => Code::Unavailable,
            ErrorCode::UpstreamRateLimited => Code::ResourceExhausted,
            ErrorCode::NotImplemented => Code::Unimplemented,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

/// A failure a caller can act on.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub integration: String,
    pub code: ErrorCode,
    pub message: String,
    pub suggestion: Option<String>,
    /// The provider's own error code (Zoho's `MANDATORY_NOT_FOUND`), kept for the caller
    /// in the error's details as `upstream_code`.
    pub upstream_code: Option<String>,
    /// How long the provider asked to wait (a rate limit's `Retry-After`): the sync engine
    /// parks a run that long instead of failing it.
    pub retry_after: Option<std::time::Duration>,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ServiceError {}

impl ServiceError {
    pub fn new(integration: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            integration: integration.to_string(),
            code,
            message: message.into(),
            suggestion: None,
            upstream_code: None,
            retry_after: None,
        }
    }

    /// Says how long the provider asked to wait.
    pub fn retry_after(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Keeps the provider's error code (empty: none).
    pub fn upstream_code(mut self, code: impl Into<String>) -> Self {
        let code = code.into();
        self.upstream_code = (!code.is_empty()).then_some(code);
        self
    }

    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    /// A failure of ours: the detail goes to the log, the caller gets a generic message.
    pub fn internal(integration: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(integration, error = %detail, "internal error");
        ServiceError::new(integration, ErrorCode::Internal, "internal error")
    }

    pub fn into_status(self) -> Status {
        let mut meta = HashMap::new();
        meta.insert("integration".to_string(), self.integration.clone());
        if let Some(s) = &self.suggestion {
            meta.insert("suggestion".to_string(), s.clone());
        }
        if let Some(c) = &self.upstream_code {
            meta.insert("upstream_code".to_string(), c.clone());
        }
        let details = ErrorDetails::with_error_info(
            self.code.as_str(),
            format!("{}.bac", self.integration),
            meta,
        );
        Status::with_error_details(self.code.grpc_code(), self.message, details)
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        e.into_status()
    }
}

/// What a [`ServiceError`] put into a status, read back on the calling side.
#[derive(Debug, Clone, Default)]
pub struct StatusInfo {
    pub error_code: Option<String>,
    pub integration: Option<String>,
    pub suggestion: Option<String>,
    pub upstream_code: Option<String>,
}

pub fn status_info(status: &Status) -> StatusInfo {
    let details = status.get_error_details();
    match details.error_info() {
        Some(info) => StatusInfo {
            error_code: Some(info.reason.clone()),
            integration: info.metadata.get("integration").cloned(),
            suggestion: info.metadata.get("suggestion").cloned(),
            upstream_code: info.metadata.get("upstream_code").cloned(),
        },
        None => StatusInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_info_round_trips_through_a_status() {
        let s = ServiceError::new(
            "odoo",
            ErrorCode::InvalidCredentials,
            "Odoo refused the login",
        )
        .suggest("Update the connection's password")
        .into_status();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let info = status_info(&s);
        assert_eq!(info.error_code.as_deref(), Some("INVALID_CREDENTIALS"));
        assert_eq!(info.integration.as_deref(), Some("odoo"));
        assert_eq!(
            info.suggestion.as_deref(),
            Some("Update the connection's password")
        );
    }
}
