//! The one way bac-google-workspace calls Google: a token of the kit's token source for the
//! user the call acts as (a service account keeps one per user), the API's host, the user's
//! quota key, the call log, and Google's error body (`{"error": {"code", "message", "status",
//! "errors": [{"reason"}], "details"}}`) read into the fleet's errors with Google's reason
//! kept as the upstream code.
use std::num::NonZeroU32;

use bac_connector::{Calls, TokenSource};
use bac_runtime::{
    connections::ConnectionRecord,
    upstream::{QuotaKey, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode, ServiceError,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::connector::{auth_of, subject_of, Auth};

/// Calls a minute each acted-as user may make unless the connection's settings say
/// (`calls_per_minute`): Google counts per user and per project; Gmail allows 250 quota
/// units a user a second and Calendar about 600 calls a user a minute, so 600 keeps one
/// user's burst inside both.
pub const DEFAULT_CALLS_PER_MINUTE: u32 = 600;

/// The Google API a call is for: it picks the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Gmail,
    Calendar,
    Drive,
    /// Drive's upload endpoint (`/upload/drive/v3`).
    DriveUpload,
    Directory,
    Docs,
    Sheets,
    Slides,
    Forms,
    Chat,
    Tasks,
}

/// Where Google is: its documented hosts, or one base URL serving them all (the sandbox,
/// `BAC_GOOGLE_API_URL`).
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    pub base: Option<String>,
}

impl Hosts {
    pub fn from_env() -> Hosts {
        Hosts {
            base: std::env::var("BAC_GOOGLE_API_URL")
                .ok()
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty()),
        }
    }

    pub fn api(&self, api: Api) -> String {
        if let Some(b) = &self.base {
            return b.clone();
        }
        match api {
            Api::Gmail => "https://gmail.googleapis.com",
            Api::Calendar | Api::Drive | Api::DriveUpload => "https://www.googleapis.com",
            Api::Directory => "https://admin.googleapis.com",
            Api::Docs => "https://docs.googleapis.com",
            Api::Sheets => "https://sheets.googleapis.com",
            Api::Slides => "https://slides.googleapis.com",
            Api::Forms => "https://forms.googleapis.com",
            Api::Chat => "https://chat.googleapis.com",
            Api::Tasks => "https://tasks.googleapis.com",
        }
        .to_string()
    }

    pub fn token_url(&self) -> String {
        match &self.base {
            Some(b) => format!("{b}/token"),
            None => "https://oauth2.googleapis.com/token".into(),
        }
    }

    pub fn authorize_url(&self) -> String {
        match &self.base {
            Some(b) => format!("{b}/o/oauth2/v2/auth"),
            None => "https://accounts.google.com/o/oauth2/v2/auth".into(),
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// Bytes as they are (a multipart upload, a chunk of a resumable one).
    Bytes {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// One request to Google, relative to its API's host.
#[derive(Debug, Clone)]
pub struct GoogleCall {
    pub api: Api,
    pub method: http::Method,
    /// `/gmail/v1/users/{user}/messages/send`, or a whole URL Google gave (a resumable
    /// upload's session URI), which must be on the API's host.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The call log's and metrics' name (`gmail/messages.send`).
    pub operation: String,
    /// Safe to send twice.
    pub idempotent: bool,
}

impl GoogleCall {
    pub fn get(api: Api, path: impl Into<String>, operation: impl Into<String>) -> Self {
        GoogleCall {
            api,
            method: http::Method::GET,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::None,
            operation: operation.into(),
            idempotent: true,
        }
    }

    pub fn post(
        api: Api,
        path: impl Into<String>,
        body: Value,
        operation: impl Into<String>,
    ) -> Self {
        GoogleCall {
            method: http::Method::POST,
            body: Body::Json(body),
            idempotent: false,
            ..GoogleCall::get(api, path, operation)
        }
    }

    pub fn query(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }

    pub fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// `s` as one path segment: everything but RFC 3986's unreserved characters and the
/// sub-delimiters Sheets' A1 ranges use (`!`, `:`, `$`) percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!:$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Google's answer.
#[derive(Debug, Clone)]
pub struct GoogleAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

#[derive(Clone)]
pub struct GoogleClient {
    hosts: Hosts,
    tokens: TokenSource,
    http: UpstreamClient,
    calls: Calls,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::InvalidRequest, msg)
}

impl GoogleClient {
    pub fn new(hosts: Hosts, tokens: TokenSource, http: UpstreamClient, calls: Calls) -> Self {
        GoogleClient {
            hosts,
            tokens,
            http,
            calls,
        }
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The user a request acts as: the one it names, else the connection's subject. A user's
    /// OAuth connection acts for that user only; a service account for its domain's users.
    pub fn acting_user(&self, rec: &ConnectionRecord, asked: &str) -> Result<String, ServiceError> {
        let subject = subject_of(&rec.config);
        let user = if asked.trim().is_empty() {
            subject.to_string()
        } else {
            asked.trim().to_lowercase()
        };
        if !crate::connector::valid_email(&user) {
            return Err(bad(format!("user '{user}' is not an email address")));
        }
        let domain = rec.setting("domain");
        match auth_of(&rec.config) {
            Auth::OAuth if user != subject => Err(ServiceError::new(
                "google-workspace",
                ErrorCode::PermissionDenied,
                format!("this connection is {subject}'s own authorisation: it cannot act as {user}"),
            )
            .suggest("Use a service account connection with domain-wide delegation to act for other users")),
            _ if !user
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)) =>
            {
                Err(ServiceError::new(
                    "google-workspace",
                    ErrorCode::PermissionDenied,
                    format!("{user} is not a user of this connection's domain {domain}"),
                ))
            }
            _ => Ok(user),
        }
    }

    /// The user's quota: Google counts each user of each project.
    fn quota(rec: &ConnectionRecord, user: &str) -> QuotaKey {
        let per_minute = rec
            .config
            .get("calls_per_minute")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN.saturating_add(DEFAULT_CALLS_PER_MINUTE - 1));
        QuotaKey {
            key: format!("google/{}/user/{user}", rec.id),
            per_minute,
        }
    }

    fn url(&self, call: &GoogleCall) -> Result<url::Url, ServiceError> {
        let host = self.hosts.api(call.api);
        let text = if call.path.starts_with("https://") || call.path.starts_with("http://") {
            // a URL Google gave back (a resumable session): only on the API's own host
            if !call.path.starts_with(&format!("{host}/")) {
                return Err(ServiceError::new(
                    "google-workspace",
                    ErrorCode::UpstreamRejected,
                    "Google answered with a URL off its API host",
                ));
            }
            call.path.clone()
        } else {
            format!("{host}{}", call.path)
        };
        let mut url = url::Url::parse(&text)
            .map_err(|e| ServiceError::internal("google-workspace", format!("url: {e}")))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter());
        }
        Ok(url)
    }

    /// Sends `call` acting as `user` (already checked with [`GoogleClient::acting_user`]):
    /// a 401 refreshes the token once and retries (the kit), an error status becomes the
    /// fleet's error. Statuses in `accept` (a 308 of a resumable upload) are answers too.
    pub async fn send_accepting(
        &self,
        rec: &ConnectionRecord,
        user: &str,
        call: &GoogleCall,
        accept: &[u16],
    ) -> Result<GoogleAnswer, ServiceError> {
        let subject = match auth_of(&rec.config) {
            Auth::ServiceAccount => Some(user),
            Auth::OAuth => None,
        };
        self.tokens
            .authorized(rec, subject, |token| async move {
                let url = self.url(call)?;
                let mut headers = vec![(
                    "authorization".to_string(),
                    format!("Bearer {}", token.value.expose_secret()),
                )];
                headers.extend(call.headers.iter().cloned());
                let body = match &call.body {
                    Body::None => None,
                    Body::Json(b) => {
                        headers.push(("content-type".into(), "application/json".into()));
                        Some(
                            serde_json::to_vec(b)
                                .map_err(|e| ServiceError::internal("google-workspace", e))?,
                        )
                    }
                    Body::Bytes {
                        content_type,
                        bytes,
                    } => {
                        if !content_type.is_empty() {
                            headers.push(("content-type".into(), content_type.clone()));
                        }
                        Some(bytes.clone())
                    }
                };
                let resp = self
                    .http
                    .send(&UpstreamRequest {
                        method: call.method.clone(),
                        url: url.to_string(),
                        headers,
                        body,
                        idempotent: call.idempotent,
                        operation: call.operation.clone(),
                        quota: Some(Self::quota(rec, user)),
                    })
                    .await
                    .map_err(upstream_error)?;
                let status = resp.status.as_u16();
                let body: Value = if resp.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
                };
                if !resp.status.is_success() && !accept.contains(&status) {
                    return Err(name_scope(
                        google_error(status, &body, &resp.headers),
                        &call.operation,
                    ));
                }
                Ok(GoogleAnswer {
                    status,
                    headers: resp.headers,
                    body,
                })
            })
            .await
    }

    pub async fn send(
        &self,
        rec: &ConnectionRecord,
        user: &str,
        call: &GoogleCall,
    ) -> Result<GoogleAnswer, ServiceError> {
        self.send_accepting(rec, user, call, &[]).await
    }

    /// [`GoogleClient::send`] recorded in the call log under its operation.
    pub async fn call(
        &self,
        rec: &ConnectionRecord,
        user: &str,
        call: &GoogleCall,
    ) -> Result<GoogleAnswer, ServiceError> {
        let op = call.operation.clone();
        self.calls
            .tracked(rec, &op, self.send(rec, user, call))
            .await
    }
}

/// The upstream client's failures as the fleet's errors.
pub fn upstream_error(e: UpstreamError) -> ServiceError {
    match e {
        UpstreamError::RateLimited { retry_after, .. } => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamRateLimited,
            "Google is limiting this user's or project's requests",
        )
        .suggest("Retry later; Google's per-user quotas refill each minute")
        .retry_after(retry_after),
        UpstreamError::Timeout { .. } => ServiceError::new(
            "google-workspace",
            ErrorCode::ConnectionTimeout,
            "Google did not answer in time",
        ),
        UpstreamError::AddressNotAllowed(r) => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamAddressNotAllowed,
            r.to_string(),
        ),
        other => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamUnavailable,
            other.to_string(),
        ),
    }
}

/// The scope an operation of the fleet needs (the narrowest that serves it), to name in a
/// refusal for a missing scope.
pub fn scope_for(operation: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("gmail/messages.send", "gmail.send"),
        ("gmail/", "gmail.readonly"),
        ("calendar/", "calendar.events"),
        ("drive/", "drive"),
        ("directory/", "admin.directory.user.readonly"),
        ("docs/", "documents"),
        ("sheets/", "spreadsheets"),
        ("slides/", "presentations"),
        ("forms/responses", "forms.responses.readonly"),
        ("forms/", "forms.body"),
        ("chat/", "chat.messages"),
        ("tasks/", "tasks"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| operation.starts_with(prefix))
        .map(|(_, scope)| match *scope {
            "gmail.send" => "https://www.googleapis.com/auth/gmail.send",
            "gmail.readonly" => "https://www.googleapis.com/auth/gmail.readonly",
            "calendar.events" => "https://www.googleapis.com/auth/calendar.events",
            "drive" => "https://www.googleapis.com/auth/drive",
            "admin.directory.user.readonly" => {
                "https://www.googleapis.com/auth/admin.directory.user.readonly"
            }
            "documents" => "https://www.googleapis.com/auth/documents",
            "spreadsheets" => "https://www.googleapis.com/auth/spreadsheets",
            "presentations" => "https://www.googleapis.com/auth/presentations",
            "forms.responses.readonly" => {
                "https://www.googleapis.com/auth/forms.responses.readonly"
            }
            "forms.body" => "https://www.googleapis.com/auth/forms.body",
            "chat.messages" => "https://www.googleapis.com/auth/chat.messages",
            _ => "https://www.googleapis.com/auth/tasks",
        })
}

/// Names the scope to add in a refusal for a missing one.
fn name_scope(mut e: ServiceError, operation: &str) -> ServiceError {
    if e.upstream_code.as_deref() == Some("ACCESS_TOKEN_SCOPE_INSUFFICIENT") {
        if let Some(scope) = scope_for(operation) {
            e.message = format!("{} Add the scope {scope}.", e.message);
            e.suggestion = Some(format!("Grant {scope}: {SCOPE_ADVICE}"));
        }
    }
    e
}

/// Where a missing scope is granted: the Admin console's domain-wide delegation for a
/// service account, a new consent for a user.
const SCOPE_ADVICE: &str = "Add the scope to the service account's client in the Admin console (Security > Access and data control > API controls > Domain-wide delegation), or to config.scopes and authorise again for a user's connection";

/// Google's error body as the fleet's error; the reason (`rateLimitExceeded`,
/// `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, `fullSyncRequired`) is kept as the upstream code.
pub fn google_error(status: u16, body: &Value, headers: &http::HeaderMap) -> ServiceError {
    let e = &body["error"];
    let message = e["message"]
        .as_str()
        .or(body["error_description"].as_str())
        .unwrap_or("")
        .to_string();
    let detail_reason = e["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["reason"].as_str());
    let reason = detail_reason
        .or(e["errors"][0]["reason"].as_str())
        .or(e["status"].as_str())
        .unwrap_or("")
        .to_string();
    let said = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{message} (HTTP {status})")
    };
    let rate = matches!(
        reason.as_str(),
        "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded" | "RATE_LIMIT_EXCEEDED"
    );
    let err = match status {
        403 if reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT" || reason == "insufficientPermissions" => {
            let method = e["details"][0]["metadata"]["method"].as_str().unwrap_or("");
            ServiceError::new(
                "google-workspace",
                ErrorCode::PermissionDenied,
                format!(
                    "Google refused the call for a missing scope{}: {said}",
                    if method.is_empty() {
                        String::new()
                    } else {
                        format!(" ({method})")
                    }
                ),
            )
            .suggest(SCOPE_ADVICE)
        }
        403 | 429 if rate || status == 429 => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamRateLimited,
            format!("Google: {said}"),
        )
        .suggest(if reason == "userRateLimitExceeded" {
            "This user's quota is spent for now; other users are not slowed"
        } else {
            "Retry after Google's quota window refills"
        })
        .retry_after(Some(
            bac_runtime::upstream::retry_after(headers)
                .unwrap_or(std::time::Duration::from_secs(30)),
        )),
        401 => ServiceError::new(
            "google-workspace",
            ErrorCode::InvalidCredentials,
            format!("Google refused the access token: {said}"),
        ),
        403 => ServiceError::new(
            "google-workspace",
            ErrorCode::PermissionDenied,
            format!("Google: {said}"),
        )
        .suggest("Check the domain-wide delegation of the service account, and that the user exists and has the service enabled"),
        404 | 410 => ServiceError::new(
            "google-workspace",
            ErrorCode::NotFound,
            format!("Google: {said}"),
        ),
        s if s >= 500 => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamUnavailable,
            format!("Google: {said}"),
        ),
        _ => ServiceError::new(
            "google-workspace",
            ErrorCode::UpstreamRejected,
            format!("Google: {said}"),
        ),
    };
    if reason.is_empty() {
        err
    } else {
        err.upstream_code(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn googles_errors_keep_their_reason() {
        let h = http::HeaderMap::new();
        let scope = json!({"error": {"code": 403, "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED", "errors": [{"reason": "insufficientPermissions"}],
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                         "metadata": {"method": "calendar.v3.Events.Insert"}}]}});
        let e = google_error(403, &scope, &h);
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert_eq!(
            e.upstream_code.as_deref(),
            Some("ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        );
        assert!(e
            .suggestion
            .as_deref()
            .unwrap_or("")
            .contains("Admin console"));
        let rate = json!({"error": {"code": 403, "message": "User Rate Limit Exceeded",
            "errors": [{"reason": "userRateLimitExceeded"}]}});
        let e = google_error(403, &rate, &h);
        assert_eq!(e.code, ErrorCode::UpstreamRateLimited);
        assert!(e.retry_after.is_some());
        let gone = json!({"error": {"code": 410, "message": "Sync token is no longer valid, a full sync is required.",
            "errors": [{"reason": "fullSyncRequired"}]}});
        let e = google_error(410, &gone, &h);
        assert_eq!(e.upstream_code.as_deref(), Some("fullSyncRequired"));
        assert_eq!(
            google_error(500, &Value::Null, &h).code,
            ErrorCode::UpstreamUnavailable
        );
    }

    #[test]
    fn a_missing_scope_is_named() {
        let h = http::HeaderMap::new();
        let body = json!({"error": {"code": 403, "message": "Request had insufficient authentication scopes.",
            "errors": [{"reason": "insufficientPermissions"}],
            "details": [{"reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}]}});
        let e = name_scope(google_error(403, &body, &h), "gmail/messages.send");
        assert!(
            e.message
                .contains("https://www.googleapis.com/auth/gmail.send"),
            "{}",
            e.message
        );
        assert!(e.suggestion.unwrap().contains("Domain-wide delegation"));
        assert_eq!(
            scope_for("forms/responses.list"),
            Some("https://www.googleapis.com/auth/forms.responses.readonly")
        );
    }

    #[test]
    fn one_base_serves_every_api_in_the_sandbox() {
        let real = Hosts::default();
        assert_eq!(real.api(Api::Gmail), "https://gmail.googleapis.com");
        assert_eq!(real.token_url(), "https://oauth2.googleapis.com/token");
        let sandbox = Hosts {
            base: Some("http://127.0.0.1:7003".into()),
        };
        assert_eq!(sandbox.api(Api::Directory), "http://127.0.0.1:7003");
        assert_eq!(sandbox.token_url(), "http://127.0.0.1:7003/token");
    }
}
