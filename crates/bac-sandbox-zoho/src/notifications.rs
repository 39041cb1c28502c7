//! Zoho CRM's Notification API: channels subscribed with `POST /crm/{v}/actions/watch`
//! (re-posting a channel id re-subscribes it), changed with PATCH/PUT, listed with GET,
//! disabled with DELETE; a channel lives until its `channel_expiry` (an hour by default, a
//! week at most) on the sandbox clock. Each record created, updated or deleted through the
//! CRM API (or seeded, up to 1,000 at a time) is announced to every live channel watching its
//! module, as Zoho does: one unsigned POST per API call (the kit's [`WebhookSender`], in a
//! task of its own) with the ids, the operation, the channel id and the channel's token.
//! Deliveries are logged for tests (`GET
//! /<dc>/_sandbox/zoho/notifications`); admin routes list channels, drop one (a lapse the
//! fleet must recover from) and send a notification on demand.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, LockResult, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use bac_sandbox_kit::{
    webhooks::{Signature, WebhookSender},
    SandboxClock,
};
use serde_json::{json, Value};

use crate::{crm, records, DataCenter};

/// Zoho's default channel life, and the longest it grants (API v4 and later).
const DEFAULT_SECS: i64 = 3600;
const MAX_SECS: i64 = 7 * 86_400;
/// How long a notify URL is given to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One subscribed channel.
#[derive(Debug, Clone)]
struct Channel {
    channel_id: String,
    events: Vec<String>,
    notify_url: String,
    token: Option<String>,
    expiry: i64,
    extra: serde_json::Map<String, Value>,
}

/// The channels of one data centre and what was delivered.
#[derive(Debug, Default)]
pub struct Watch {
    channels: BTreeMap<String, Channel>,
    log: Vec<Value>,
}

/// A data centre's channels, and the sender its notifications go out with.
#[derive(Debug, Clone)]
pub struct SharedWatch {
    state: Arc<Mutex<Watch>>,
    sender: WebhookSender,
}

impl SharedWatch {
    pub fn new(clock: SandboxClock) -> SharedWatch {
        SharedWatch {
            state: Arc::default(),
            sender: WebhookSender::new(clock),
        }
    }

    fn lock(&self) -> LockResult<MutexGuard<'_, Watch>> {
        self.state.lock()
    }
}

pub fn router(dc: DataCenter) -> Router {
    Router::new()
        .route(
            "/crm/:version/actions/watch",
            get(details)
                .post(enable)
                .patch(update)
                .put(update)
                .delete(disable),
        )
        .route("/_sandbox/zoho/watch", get(admin_list))
        .route("/_sandbox/zoho/watch/:channel_id", delete(admin_drop))
        .route("/_sandbox/zoho/notify", post(admin_notify))
        .route("/_sandbox/zoho/notifications", get(admin_log))
        .with_state(dc)
}

fn invalid(field: &str) -> Response {
    records::zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "invalid data",
        json!({"api_name": field}),
    )
}

fn missing(field: &str) -> Response {
    records::zoho_error(
        StatusCode::BAD_REQUEST,
        "MANDATORY_NOT_FOUND",
        "required field not found",
        json!({"api_name": field}),
    )
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The version, the token and one of the scopes of a watch call (`ZohoCRM.notifications.ALL`
/// covers them all), and one credit.
fn watch_call(
    dc: &DataCenter,
    version: &str,
    headers: &HeaderMap,
    ops: &[&str],
) -> Result<(), Response> {
    if !crm::VERSIONS.contains(&version) {
        return Err(records::zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "Please check if the URL trying to access is a correct one",
            json!({}),
        ));
    }
    let mut needed: Vec<String> = ops
        .iter()
        .map(|op| format!("ZohoCRM.notifications.{op}"))
        .collect();
    needed.push("ZohoCRM.notifications.ALL".into());
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    crm::authorised(dc, headers, &needed)?;
    dc.spend_credit()
}

/// One entry of a `watch` body, checked; `existing` fills what an update leaves out.
fn channel_of(dc: &DataCenter, v: &Value, existing: Option<&Channel>) -> Result<Channel, Response> {
    let Some(obj) = v.as_object() else {
        return Err(invalid("watch"));
    };
    let channel_id = match obj.get("channel_id") {
        None => return Err(missing("channel_id")),
        Some(c) => text(c)
            .filter(|c| c.len() <= 19 && c.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| invalid("channel_id"))?,
    };
    let events = match obj.get("events") {
        None => match existing {
            Some(e) => e.events.clone(),
            None => return Err(missing("events")),
        },
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut out = Vec::new();
            for e in list {
                let Some((module, op)) = e.as_str().and_then(|s| s.split_once('.')) else {
                    return Err(invalid("events"));
                };
                let Some(m) = records::module(module) else {
                    return Err(invalid("events"));
                };
                if !matches!(op, "create" | "edit" | "delete" | "all") {
                    return Err(invalid("events"));
                }
                // kept under the module's API name, which changes are matched by
                let event = format!("{}.{op}", m.api_name);
                if !out.contains(&event) {
                    out.push(event);
                }
            }
            out
        }
        Some(_) => return Err(invalid("events")),
    };
    let notify_url = match obj.get("notify_url") {
        None => match existing {
            Some(e) => e.notify_url.clone(),
            None => return Err(missing("notify_url")),
        },
        Some(u) => u
            .as_str()
            .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
            .map(str::to_string)
            .ok_or_else(|| invalid("notify_url"))?,
    };
    let token = match obj.get("token") {
        None => existing.and_then(|e| e.token.clone()),
        Some(Value::Null) => None,
        Some(t) => Some(
            t.as_str()
                .filter(|t| t.chars().count() <= 50)
                .map(str::to_string)
                .ok_or_else(|| invalid("token"))?,
        ),
    };
    let now = dc.clock.now();
    let expiry = match obj.get("channel_expiry") {
        None => existing.map_or(now + DEFAULT_SECS, |e| e.expiry),
        Some(t) => {
            let at = t
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.timestamp())
                .ok_or_else(|| invalid("channel_expiry"))?;
            if at <= now || at > now + MAX_SECS {
                return Err(invalid("channel_expiry"));
            }
            at
        }
    };
    let mut extra = existing.map(|e| e.extra.clone()).unwrap_or_default();
    for k in ["notify_on_related_action", "return_affected_field_values"] {
        if let Some(v) = obj.get(k) {
            extra.insert(k.into(), v.clone());
        }
    }
    Ok(Channel {
        channel_id,
        events,
        notify_url,
        token,
        expiry,
        extra,
    })
}

/// The modules a channel watches, in the order its events first name them.
fn modules_of(ch: &Channel) -> Vec<&'static records::ModuleDef> {
    let mut out: Vec<&'static records::ModuleDef> = Vec::new();
    for e in &ch.events {
        let m = e.split_once('.').and_then(|(m, _)| records::module(m));
        if let Some(m) = m.filter(|m| !out.iter().any(|o| o.api_name == m.api_name)) {
            out.push(m);
        }
    }
    out
}

/// A channel's resource as Zoho names it: the module's URI, id and name, and the channel.
fn resource(
    dc: &DataCenter,
    ch: &Channel,
    m: &records::ModuleDef,
) -> serde_json::Map<String, Value> {
    let mut o = serde_json::Map::new();
    o.insert(
        "resource_uri".into(),
        json!(format!("{}/crm/v8/{}", dc.root, m.api_name)),
    );
    o.insert("resource_id".into(), json!(records::module_id(m)));
    o.insert("resource_name".into(), json!(m.api_name));
    o.insert("channel_id".into(), json!(ch.channel_id));
    o
}

/// What Zoho answers for a subscribed channel: one entry per module it watches.
fn subscribed(dc: &DataCenter, ch: &Channel, message: &str) -> Value {
    let events: Vec<Value> = modules_of(ch)
        .into_iter()
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert(
                "channel_expiry".into(),
                json!(records::zoho_time(ch.expiry)),
            );
            o.extend(resource(dc, ch, m));
            Value::Object(o)
        })
        .collect();
    json!({"code": "SUCCESS", "details": {"events": events}, "message": message, "status": "success"})
}

fn entries(body: &[u8]) -> Result<Vec<Value>, Response> {
    let bad = || {
        records::zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({}),
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    match v.get("watch").and_then(Value::as_array) {
        Some(list) if !list.is_empty() && list.len() <= 10 => Ok(list.clone()),
        _ => Err(bad()),
    }
}

async fn enable(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = watch_call(&dc, &version, &headers, &["CREATE"]) {
        return r;
    }
    let list = match entries(&body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut checked = Vec::new();
    for v in &list {
        match channel_of(&dc, v, None) {
            Ok(c) => checked.push(c),
            Err(r) => return r,
        }
    }
    let Ok(mut w) = dc.watch.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut answers = Vec::new();
    for c in checked {
        answers.push(subscribed(
            &dc,
            &c,
            "Successfully subscribed for actions-watch of the given module",
        ));
        // an existing channel id is replaced: that is how a channel is re-subscribed
        w.channels.insert(c.channel_id.clone(), c);
    }
    (StatusCode::CREATED, Json(json!({"watch": answers}))).into_response()
}

async fn update(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = watch_call(&dc, &version, &headers, &["UPDATE", "WRITE"]) {
        return r;
    }
    let list = match entries(&body) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Ok(mut w) = dc.watch.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut checked = Vec::new();
    for v in &list {
        let Some(id) = v.get("channel_id") else {
            return missing("channel_id");
        };
        let Some(existing) = text(id).and_then(|id| w.channels.get(&id)) else {
            return invalid("channel_id");
        };
        match channel_of(&dc, v, Some(existing)) {
            Ok(c) => checked.push(c),
            Err(r) => return r,
        }
    }
    let mut answers = Vec::new();
    for c in checked {
        answers.push(subscribed(
            &dc,
            &c,
            "Successfully updated the subscribe details",
        ));
        w.channels.insert(c.channel_id.clone(), c);
    }
    Json(json!({"watch": answers})).into_response()
}

fn describe(ch: &Channel, now: i64) -> Value {
    let mut v = json!({
        "channel_id": ch.channel_id,
        "events": ch.events,
        "channel_expiry": records::zoho_time(ch.expiry),
        "notify_url": ch.notify_url,
        "token": ch.token,
        "expired": ch.expiry <= now,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(ch.extra.clone());
    }
    v
}

async fn details(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = watch_call(&dc, &version, &headers, &["READ"]) {
        return r;
    }
    let now = dc.clock.now();
    let Ok(w) = dc.watch.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let wanted_module = q
        .get("module")
        .map(|m| records::module(m).map(|m| m.api_name));
    // as Zoho lists them: one entry per channel and module, with that module's events
    let mut list: Vec<Value> = Vec::new();
    let live = w
        .channels
        .values()
        .filter(|c| c.expiry > now)
        .filter(|c| q.get("channel_id").is_none_or(|id| *id == c.channel_id));
    for c in live {
        for m in modules_of(c) {
            if wanted_module.is_some_and(|w| w != Some(m.api_name)) {
                continue;
            }
            let mut d = describe(c, now);
            if let Some(o) = d.as_object_mut() {
                o.remove("expired");
                let prefix = format!("{}.", m.api_name);
                o.insert(
                    "events".into(),
                    json!(c
                        .events
                        .iter()
                        .filter(|e| e.starts_with(&prefix))
                        .collect::<Vec<_>>()),
                );
                o.extend(resource(&dc, c, m));
            }
            list.push(d);
        }
    }
    if list.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let n = list.len();
    Json(json!({"watch": list, "info": {"per_page": 200, "count": n, "page": 1, "more_records": false}}))
        .into_response()
}

async fn disable(
    State(dc): State<DataCenter>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = watch_call(&dc, &version, &headers, &["DELETE"]) {
        return r;
    }
    let Some(ids) = q.get("channel_ids").filter(|s| !s.trim().is_empty()) else {
        return records::zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "channel_ids"}),
        );
    };
    let Ok(mut w) = dc.watch.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut events = Vec::new();
    for id in ids.split(',').map(str::trim) {
        if let Some(c) = w.channels.remove(id) {
            events.extend(
                modules_of(&c)
                    .into_iter()
                    .map(|m| Value::Object(resource(&dc, &c, m))),
            );
        }
    }
    Json(
        json!({"watch": [{"code": "SUCCESS", "details": {"events": events},
        "message": "Successfully unsubscribed from actions-watch", "status": "success"}]}),
    )
    .into_response()
}

/// Announces a change of `ids` of `module` (`insert`, `update`, `delete`) to every live
/// channel watching it, in the background.
pub fn announce(dc: &DataCenter, module: &str, operation: &str, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let op = match operation {
        "insert" => "create",
        "update" => "edit",
        _ => "delete",
    };
    let now = dc.clock.now();
    let targets: Vec<Channel> = match dc.watch.lock() {
        Ok(w) => w
            .channels
            .values()
            .filter(|c| c.expiry > now)
            .filter(|c| {
                c.events
                    .iter()
                    .any(|e| *e == format!("{module}.{op}") || *e == format!("{module}.all"))
            })
            .cloned()
            .collect(),
        Err(_) => return,
    };
    for c in targets {
        send(dc, &c, module, operation, ids.clone());
    }
}

/// Posts one notification to a channel's URL in a task of its own, and logs what came of it.
fn send(dc: &DataCenter, c: &Channel, module: &str, operation: &str, ids: Vec<String>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        log(
            dc,
            &c.channel_id,
            &c.notify_url,
            module,
            operation,
            &ids,
            &Err("no runtime to deliver on".into()),
        );
        return;
    };
    let body = notification(dc, c, module, operation, &ids);
    let (dc, url, channel_id) = (dc.clone(), c.notify_url.clone(), c.channel_id.clone());
    let (module, operation) = (module.to_string(), operation.to_string());
    runtime.spawn(async move {
        let answer = deliver(&dc, &channel_id, &url, &body).await;
        log(&dc, &channel_id, &url, &module, &operation, &ids, &answer);
    });
}

fn notification(
    dc: &DataCenter,
    c: &Channel,
    module: &str,
    operation: &str,
    ids: &[String],
) -> Value {
    json!({
        "server_time": dc.clock.now() * 1000,
        "query_params": {},
        "module": module,
        "resource_uri": format!("{}/crm/v8/{module}", dc.root),
        "ids": ids,
        "affected_fields": [],
        "operation": operation,
        "channel_id": c.channel_id,
        "token": c.token,
    })
}

/// One POST of a notification, unsigned as Zoho's are (the token is in the body): the
/// status the URL answered, or why there was none.
async fn deliver(
    dc: &DataCenter,
    channel_id: &str,
    url: &str,
    body: &Value,
) -> Result<u16, String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let sent = dc
        .watch
        .sender
        .send(url, &Signature::None, channel_id, "application/json", bytes);
    match tokio::time::timeout(DELIVERY_TIMEOUT, sent).await {
        Ok(answer) => answer.map(|(status, _)| status),
        Err(_) => Err(format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs())),
    }
}

fn log(
    dc: &DataCenter,
    channel_id: &str,
    url: &str,
    module: &str,
    operation: &str,
    ids: &[String],
    answer: &Result<u16, String>,
) {
    if let Ok(mut w) = dc.watch.lock() {
        w.log.push(json!({
            "channel_id": channel_id, "url": url, "module": module, "operation": operation,
            "ids": ids, "status": answer.as_ref().ok(), "error": answer.as_ref().err(),
        }));
    }
}

async fn admin_list(State(dc): State<DataCenter>) -> Json<Value> {
    let now = dc.clock.now();
    let list: Vec<Value> = dc
        .watch
        .lock()
        .map(|w| w.channels.values().map(|c| describe(c, now)).collect())
        .unwrap_or_default();
    Json(json!({"channels": list}))
}

async fn admin_drop(State(dc): State<DataCenter>, Path(channel_id): Path<String>) -> StatusCode {
    match dc.watch.lock().map(|mut w| w.channels.remove(&channel_id)) {
        Ok(Some(_)) => StatusCode::NO_CONTENT,
        _ => StatusCode::NOT_FOUND,
    }
}

async fn admin_notify(State(dc): State<DataCenter>, body: axum::body::Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "a JSON body").into_response();
    };
    let channel = v
        .get("channel_id")
        .and_then(text)
        .and_then(|id| dc.watch.lock().ok()?.channels.get(&id).cloned());
    let Some(c) = channel else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let module = v["module"].as_str().unwrap_or("Leads").to_string();
    let operation = v["operation"].as_str().unwrap_or("update").to_string();
    let ids: Vec<String> = v["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default();
    let body = notification(&dc, &c, &module, &operation, &ids);
    let answer = deliver(&dc, &c.channel_id, &c.notify_url, &body).await;
    log(
        &dc,
        &c.channel_id,
        &c.notify_url,
        &module,
        &operation,
        &ids,
        &answer,
    );
    Json(json!({"status": answer.as_ref().ok(), "error": answer.as_ref().err()})).into_response()
}

async fn admin_log(State(dc): State<DataCenter>) -> Json<Value> {
    let log = dc.watch.lock().map(|w| w.log.clone()).unwrap_or_default();
    Json(json!({"deliveries": log}))
}
