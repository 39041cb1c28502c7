//! The one error shape of the REST API:
//! `{"error","message","details":{"integration","error_code","suggestion"},"timestamp","request_id"}`.
//! Every failure (ours, a service's gRPC status, axum's own rejections) ends here.
use axum::{
    extract::rejection::{JsonRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bac_runtime::error::status_info;
use serde_json::json;
use tonic::Code;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short category: `invalid_request`, `unauthorized`, `integration_error`, ...
    pub error: &'static str,
    pub message: String,
    pub integration: Option<String>,
    pub error_code: String,
    pub suggestion: Option<String>,
    /// The provider's own error code, when the integration service kept it (Zoho's
    /// `MANDATORY_NOT_FOUND`): shown as `details.upstream_code`, only then.
    pub upstream_code: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error,
            message: message.into(),
            integration: None,
            error_code: code.to_string(),
            suggestion: None,
            upstream_code: None,
        }
    }

    pub fn suggest(mut self, s: impl Into<String>) -> Self {
        self.suggestion = Some(s.into());
        self
    }

    pub fn integration(mut self, i: &str) -> Self {
        self.integration = Some(i.to_string());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "INVALID_REQUEST",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "UNAUTHENTICATED",
            message,
        )
        .suggest("Send an API key as 'Authorization: Bearer <key>'")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "PERMISSION_DENIED",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "NOT_FOUND", message)
    }

    /// Our own failure: details to the log, a generic message to the caller.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "INTERNAL",
            "internal error",
        )
        .suggest("Retry; if it persists, contact support with the request_id")
    }

    /// A service's gRPC status, as the REST caller should see it.
    pub fn from_status(status: &tonic::Status, integration: &str) -> Self {
        let info = status_info(status);
        let integration = info
            .integration
            .clone()
            .unwrap_or_else(|| integration.to_string());
        let code = info.error_code.clone();
        let from_service = code.is_some();
        let (http, error, default_code) = match status.code() {
            Code::InvalidArgument if code.as_deref() == Some("UPSTREAM_REJECTED") => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "integration_error",
                "UPSTREAM_REJECTED",
            ),
            Code::InvalidArgument | Code::OutOfRange => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "INVALID_REQUEST",
            ),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found", "NOT_FOUND"),
            Code::AlreadyExists | Code::Aborted => (StatusCode::CONFLICT, "conflict", "CONFLICT"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden", "PERMISSION_DENIED"),
            // a service refusing what an upstream sent (a push notification without its
            // channel's token); an unsigned call context has no details and stays internal
            Code::Unauthenticated if from_service => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "UNAUTHENTICATED")
            }
            Code::FailedPrecondition => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "integration_error",
                "FAILED_PRECONDITION",
            ),
            Code::ResourceExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "RATE_LIMITED",
            ),
            Code::DeadlineExceeded => (
                StatusCode::GATEWAY_TIMEOUT,
                "integration_error",
                "CONNECTION_TIMEOUT",
            ),
            Code::Unavailable if from_service => (
                StatusCode::SERVICE_UNAVAILABLE,
                "integration_error",
                "UPSTREAM_UNAVAILABLE",
            ),
            Code::Unavailable | Code::Cancelled => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "SERVICE_UNAVAILABLE",
            ),
            Code::Unimplemented => (
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented",
                "NOT_IMPLEMENTED",
            ),
            Code::Unauthenticated => {
                return ApiError::internal(format!(
                    "service refused our context: {}",
                    status.message()
                ))
            }
            _ => {
                return ApiError::internal(format!(
                    "{integration} service: {:?} {}",
                    status.code(),
                    status.message()
                ))
                .integration(&integration)
            }
        };
        let message = if from_service {
            status.message().to_string()
        } else {
            tracing::warn!(integration = %integration, grpc_code = ?status.code(), detail = %status.message(), "service call failed");
            format!("the {integration} service is unavailable")
        };
        let mut e = ApiError::new(
            http,
            error,
            code.as_deref().unwrap_or(default_code),
            message,
        )
        .integration(&integration);
        e.upstream_code = info.upstream_code;
        e.suggestion = info.suggestion.or_else(|| {
            (!from_service).then(|| "Retry shortly; the service may be restarting".to_string())
        });
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error": self.error,
            "message": self.message,
            "details": {
                "integration": self.integration,
                "error_code": self.error_code,
                "suggestion": self.suggestion,
            },
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "request_id": current_request_id(),
        });
        if let Some(code) = self.upstream_code {
            body["details"]["upstream_code"] = json!(code);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "UNSUPPORTED_MEDIA_TYPE",
                "the body must be JSON",
            )
            .suggest("Send 'Content-Type: application/json'"),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => {
                ApiError::bad_request(format!("invalid body: {}", e.body_text()))
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                too_large()
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "PAYLOAD_TOO_LARGE",
        "the request body is too large",
    )
    .suggest("Bodies are limited to 1 MiB")
}
