//! Fault rules and call counts, for any provider's sandbox: rules make matching calls slow,
//! fail with an HTTP error, expire the call's credentials, or run and then lose their
//! response; every call is counted. A provider describes each call by the API it came
//! through (`protocol`), the resource (`model`) and the operation (`method`), renders the
//! failure as its servers would, and mounts the admin routes under `/_sandbox/<provider>/`.
//!
//! A rule (`POST /_sandbox/<provider>/faults`, all keys optional):
//!
//! ```json
//! {"model": "crm.lead", "method": "create", "protocol": "jsonrpc",
//!  "slow_ms": 500, "error_rate": 0.2, "status": 503, "retry_after": 2,
//!  "session_expired": false, "lose_response": false, "for_calls": 10}
//! ```
//!
//! * `protocol` / `model` / `method` select the calls (the protocols a provider serves are
//!   the only ones accepted); an absent key matches everything.
//! * `slow_ms` delays the answer.
//! * `status` (429 or 5xx) fails the call: 429 carries `Retry-After` (`retry_after` seconds,
//!   default 1).
//! * `session_expired`: the call's credentials stop working (a session dropped, a token
//!   expired); what that looks like is the provider's.
//! * `error`: the call fails with the provider's own error of that name (`status`, when
//!   given, is the HTTP status where the provider's protocol carries one).
//! * `lose_response`: the call is executed, then its answer is replaced by `status` (default
//!   502): the client cannot tell whether it happened.
//! * `error_rate` (default 1): the probability that a matching call fails.
//! * `for_calls`: the rule is removed after matching that many calls.
//!
//! Several rules can match one call: their delays add up and the first failure wins.
//! `GET /_sandbox/<provider>/calls` answers `{"calls": {"<protocol> <model>/<method>": n}}`
//! (`-` for an absent part); `DELETE` resets the counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A fault rule as posted by a test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only calls on this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only calls of this method (`create`, `search_read`, `login`, `authenticate`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only calls through this API (one the provider serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Delay before answering, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slow_ms: u64,
    /// Probability that a matching call fails (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// HTTP status of the failure: 429 or 500-599.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds of a 429 (default 1) or a 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The credentials of the call stop working.
    #[serde(default, skip_serializing_if = "is_false")]
    pub session_expired: bool,
    /// The call runs, then its answer is lost (replaced by `status`, default 502).
    #[serde(default, skip_serializing_if = "is_false")]
    pub lose_response: bool,
    /// The provider's own error the call fails with, named as the provider names it (an
    /// exception class for Odoo: `odoo.exceptions.AccessError`, `psycopg2.OperationalError`);
    /// the provider renders it as its servers do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The rule expires after matching this many calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_calls: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl FaultSpec {
    /// Checks the rule against the protocols the provider serves; the error explains what
    /// is wrong.
    pub fn validate(&self, protocols: &[&str]) -> Result<(), String> {
        if let Some(p) = &self.protocol {
            if !protocols.contains(&p.as_str()) {
                return Err(format!(
                    "unknown protocol {p:?}: this sandbox serves {}",
                    protocols.join(", ")
                ));
            }
        }
        if let Some(status) = self.status {
            let named = self.error.is_some() && (400..500).contains(&status);
            if status != 429 && !(500..=599).contains(&status) && !named {
                return Err(format!(
                    "\"status\" must be 429 or 500-599 (400-499 with an \"error\"), not {status}"
                ));
            }
        }
        if let Some(rate) = self.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "\"error_rate\" must be between 0 and 1, not {rate}"
                ));
            }
        }
        if self.for_calls == Some(0) {
            return Err("\"for_calls\" must be at least 1".into());
        }
        if self.slow_ms > 600_000 {
            return Err("\"slow_ms\" must be at most 600000".into());
        }
        let fails = self.status.is_some()
            || self.session_expired
            || self.lose_response
            || self.error.is_some();
        if !fails && self.slow_ms == 0 {
            return Err(
                "the rule does nothing: give slow_ms, status, error, session_expired or lose_response"
                    .into(),
            );
        }
        Ok(())
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        self.protocol.as_deref().is_none_or(|p| p == call.protocol)
            && self.model.as_deref().is_none_or(|m| call.model == Some(m))
            && self
                .method
                .as_deref()
                .is_none_or(|m| call.method == Some(m))
    }
}

/// A stored rule with its counters.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// Id (for `DELETE /_sandbox/odoo/faults/{id}`).
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Calls matched so far.
    pub matched: u64,
    /// Calls failed so far.
    pub failed: u64,
}

/// The call a decision is made for.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// API used.
    pub protocol: &'a str,
    /// Model, for ORM calls.
    pub model: Option<&'a str>,
    /// Method (ORM method, or `login`, `authenticate`... for the other calls).
    pub method: Option<&'a str>,
}

/// An HTTP failure to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// What the matching rules decided for one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Delay before answering.
    pub delay: Duration,
    /// Fail with this HTTP error.
    pub failure: Option<Failure>,
    /// The credentials stop working.
    pub session_expired: bool,
    /// Run the call, then answer with `failure` instead of its result.
    pub lose_response: bool,
    /// Fail with the provider's own error of this name (the first failing rule's), with
    /// `failure`'s status where the provider's protocol has one.
    pub error: Option<String>,
}

/// The fault rules of one sandbox, and the count of the calls they were asked about.
#[derive(Debug)]
pub struct Faults {
    /// The protocols the provider serves (what rules may name).
    protocols: &'static [&'static str],
    /// The provider's own errors a rule may name.
    errors: &'static [&'static str],
    rules: Mutex<Vec<Rule>>,
    next_id: AtomicU64,
    /// `"<protocol> <model>/<method>"` (model `-` for non-ORM calls) -> calls seen.
    calls: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Faults {
    /// Rules for a provider serving `protocols` (`["jsonrpc", "json2", "web"]` for Odoo) that
    /// can fail a call with its own `errors`.
    pub fn new(protocols: &'static [&'static str], errors: &'static [&'static str]) -> Faults {
        Faults {
            protocols,
            errors,
            rules: Mutex::default(),
            next_id: AtomicU64::new(0),
            calls: Mutex::default(),
        }
    }

    /// Checks a rule for this sandbox.
    pub fn validate(&self, spec: &FaultSpec) -> Result<(), String> {
        if let Some(e) = &spec.error {
            if !self.errors.contains(&e.as_str()) {
                return Err(format!(
                    "unknown error {e:?}: this sandbox raises {}",
                    self.errors.join(", ")
                ));
            }
        }
        spec.validate(self.protocols)
    }

    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a (validated) rule; returns it with its id.
    pub fn add(&self, spec: FaultSpec) -> Rule {
        let rule = Rule {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            spec,
            matched: 0,
            failed: 0,
        };
        self.rules().push(rule.clone());
        rule
    }

    /// The active rules.
    pub fn list(&self) -> Vec<Rule> {
        self.rules().clone()
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&self) -> usize {
        std::mem::take(&mut *self.rules()).len()
    }

    /// Removes one rule; false when unknown.
    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules();
        let before = rules.len();
        rules.retain(|r| r.id != id);
        rules.len() != before
    }

    /// Calls seen so far by protocol, model and method (`GET /_sandbox/odoo/calls`).
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the call counts.
    pub fn reset_calls(&self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Applies the matching rules to a call (counting it against `for_calls`).
    pub fn decide(&self, call: &Call<'_>) -> Decision {
        {
            let key = format!(
                "{} {}/{}",
                call.protocol,
                call.model.unwrap_or("-"),
                call.method.unwrap_or("-")
            );
            *self
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_insert(0) += 1;
        }
        let mut rules = self.rules();
        if rules.is_empty() {
            return Decision::default();
        }
        let mut decision = Decision::default();
        for rule in rules.iter_mut().filter(|r| r.spec.matches(call)) {
            rule.matched += 1;
            let spec = &rule.spec;
            decision.delay += Duration::from_millis(spec.slow_ms);
            let fails = spec.status.is_some()
                || spec.session_expired
                || spec.lose_response
                || spec.error.is_some();
            let rate = spec.error_rate.unwrap_or(1.0);
            if !fails || rand::random::<f64>() >= rate {
                continue;
            }
            rule.failed += 1;
            if spec.session_expired {
                decision.session_expired = true;
            }
            if decision.error.is_none() {
                decision.error.clone_from(&spec.error);
            }
            if spec.lose_response {
                decision.lose_response = true;
            }
            if decision.failure.is_none() && (spec.status.is_some() || spec.lose_response) {
                let status = spec.status.unwrap_or(502);
                decision.failure = Some(Failure {
                    status,
                    retry_after: match status {
                        429 => Some(spec.retry_after.unwrap_or(1)),
                        _ => spec.retry_after,
                    },
                });
            }
        }
        rules.retain(|r| r.spec.for_calls.is_none_or(|n| r.matched < n));
        decision
    }
}

/// The admin routes under `prefix` (`/_sandbox/odoo`): `GET|POST|DELETE <prefix>/faults`,
/// `DELETE <prefix>/faults/{id}`, `GET|DELETE <prefix>/calls`.
pub fn routes(prefix: &str, faults: Arc<Faults>) -> Router {
    Router::new()
        .route(
            &format!("{prefix}/faults"),
            get(list).post(add).delete(clear),
        )
        .route(&format!("{prefix}/faults/:id"), delete(remove))
        .route(&format!("{prefix}/calls"), get(calls).delete(reset_calls))
        .with_state(faults)
}

async fn list(State(f): State<Arc<Faults>>) -> Response {
    Json(json!({"rules": f.list()})).into_response()
}

async fn add(State(f): State<Arc<Faults>>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("invalid fault rule: {e}")),
    };
    if let Err(e) = f.validate(&spec) {
        return bad(e);
    }
    (StatusCode::CREATED, Json(json!(f.add(spec)))).into_response()
}

async fn clear(State(f): State<Arc<Faults>>) -> Response {
    Json(json!({"cleared": f.clear()})).into_response()
}

async fn remove(State(f): State<Arc<Faults>>, Path(id): Path<u64>) -> Response {
    if f.remove(id) {
        Json(json!({"cleared": 1})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no fault rule {id}")})),
        )
            .into_response()
    }
}

async fn calls(State(f): State<Arc<Faults>>) -> Response {
    Json(json!({"calls": f.calls()})).into_response()
}

async fn reset_calls(State(f): State<Arc<Faults>>) -> Response {
    f.reset_calls();
    Json(json!({"calls": {}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOCOLS: &[&str] = &["jsonrpc", "json2", "web"];

    fn call<'a>(protocol: &'a str, model: Option<&'a str>, method: Option<&'a str>) -> Call<'a> {
        Call {
            protocol,
            model,
            method,
        }
    }

    #[test]
    fn matching_counting_and_expiry() {
        let faults = Faults::new(PROTOCOLS, &["boom"]);
        assert_eq!(
            faults.decide(&call("jsonrpc", None, None)),
            Decision::default()
        );
        faults.add(FaultSpec {
            model: Some("crm.lead".into()),
            status: Some(503),
            for_calls: Some(2),
            ..FaultSpec::default()
        });
        faults.add(FaultSpec {
            slow_ms: 5,
            ..FaultSpec::default()
        });
        let other = faults.decide(&call("json2", Some("res.partner"), Some("read")));
        assert_eq!(other.failure, None);
        assert_eq!(other.delay, Duration::from_millis(5));
        for _ in 0..2 {
            let d = faults.decide(&call("jsonrpc", Some("crm.lead"), Some("create")));
            assert_eq!(
                d.failure,
                Some(Failure {
                    status: 503,
                    retry_after: None
                })
            );
        }
        // the first rule expired after two calls
        let d = faults.decide(&call("jsonrpc", Some("crm.lead"), Some("create")));
        assert_eq!(d.failure, None);
        assert_eq!(faults.list().len(), 1);
        assert_eq!(faults.clear(), 1);
    }

    #[test]
    fn validation_and_defaults() {
        let bad = |json: &str| {
            serde_json::from_str::<FaultSpec>(json)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate(PROTOCOLS))
                .unwrap_err()
        };
        assert!(bad(r#"{"status": 404}"#).contains("429 or 500-599"));
        assert!(bad(r#"{"error_rate": 2, "status": 500}"#).contains("between 0 and 1"));
        assert!(bad(r#"{"model": "crm.lead"}"#).contains("does nothing"));
        assert!(bad(r#"{"nope": 1}"#).contains("unknown field"));
        assert!(bad(r#"{"protocol": "xmlrpc", "slow_ms": 1}"#).contains("unknown protocol"));
        let with_error: FaultSpec =
            serde_json::from_str(r#"{"error": "boom", "status": 409}"#).unwrap();
        let faults = Faults::new(PROTOCOLS, &["boom"]);
        assert!(
            faults.validate(&with_error).is_ok(),
            "a named error may carry a 4xx"
        );
        let unknown: FaultSpec = serde_json::from_str(r#"{"error": "bang"}"#).unwrap();
        assert!(faults
            .validate(&unknown)
            .unwrap_err()
            .contains("unknown error"));
        faults.add(with_error);
        let d = faults.decide(&call("json2", None, None));
        assert_eq!(d.error.as_deref(), Some("boom"));
        assert_eq!(d.failure.map(|f| f.status), Some(409));
        let faults = Faults::new(PROTOCOLS, &["boom"]);
        faults.add(serde_json::from_str(r#"{"status": 429, "protocol": "json2"}"#).unwrap());
        faults.add(serde_json::from_str(r#"{"lose_response": true, "method": "create"}"#).unwrap());
        let d = faults.decide(&call("json2", Some("x"), Some("read")));
        assert_eq!(d.failure.unwrap().retry_after, Some(1));
        let d = faults.decide(&call("jsonrpc", Some("x"), Some("create")));
        assert!(d.lose_response);
        assert_eq!(d.failure.unwrap().status, 502);
        faults.add(FaultSpec {
            status: Some(500),
            error_rate: Some(0.0),
            ..FaultSpec::default()
        });
        let d = faults.decide(&call("web", None, None));
        assert_eq!(d.failure, None);
        assert_eq!(faults.list()[2].matched, 1);
        assert_eq!(faults.list()[2].failed, 0);
    }
}
