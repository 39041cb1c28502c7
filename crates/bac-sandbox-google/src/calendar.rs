//! Google Calendar's events as `calendar.v3`'s discovery document describes them, under
//! `/calendar/v3/calendars/{calendarId}/events`: insert (attendees, a Meet link through
//! `conferenceData.createRequest` with `conferenceDataVersion=1`), list (`maxResults`,
//! `pageToken`, `timeMin`/`timeMax`, `q`, `showDeleted`, and incremental sync with
//! `syncToken`), get, patch, delete. `primary` is the token's own user.
//!
//! Incremental sync is Google's: a full list ends with `nextSyncToken`; a list with that token
//! answers what changed since, deleted events as `status: cancelled`, and a new token. Each
//! calendar numbers its changes, so a token names an exact point; a token the calendar no
//! longer honours is `410 Gone` with `fullSyncRequired` (`POST
//! /_sandbox/google/calendar/{calendarId}/expire-sync-tokens` makes a calendar's tokens
//! expire, as Google does after a while or for reasons of its own).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::{OAuthServer, SandboxClock};
use serde_json::{json, Map, Value};

use crate::{google_error, has_scope, scope_insufficient, unauthenticated};

const CALENDAR: &str = "https://www.googleapis.com/auth/calendar";
const EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
const READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";
const EVENTS_READONLY: &str = "https://www.googleapis.com/auth/calendar.events.readonly";

#[derive(Debug, Clone)]
struct Event {
    body: Map<String, Value>,
    /// The calendar's change number of its last change.
    seq: u64,
    cancelled: bool,
}

#[derive(Debug, Default)]
struct Cal {
    events: BTreeMap<String, Event>,
    seq: u64,
    /// Sync tokens of an older generation are gone.
    generation: u64,
}

#[derive(Clone)]
pub struct Calendar {
    oauth: OAuthServer,
    clock: SandboxClock,
    cals: Arc<Mutex<HashMap<String, Cal>>>,
    push: crate::push::Channels,
}

impl Calendar {
    pub fn new(oauth: OAuthServer, clock: SandboxClock, push: crate::push::Channels) -> Calendar {
        Calendar {
            oauth,
            clock,
            cals: Arc::default(),
            push,
        }
    }

    /// The calendar a call may use (its owner's: `primary` or the user's address), its
    /// token's scopes checked.
    fn calendar(
        &self,
        headers: &HeaderMap,
        calendar_id: &str,
        write: bool,
        method: &str,
    ) -> Result<String, Response> {
        let Some(token) = self.oauth.check_bearer(headers) else {
            return Err(unauthenticated());
        };
        let scopes: &[&str] = if write {
            &[CALENDAR, EVENTS]
        } else {
            &[CALENDAR, EVENTS, READONLY, EVENTS_READONLY]
        };
        if !has_scope(&token.scope, scopes) {
            return Err(scope_insufficient("calendar-json.googleapis.com", method));
        }
        let id = if calendar_id == "primary" {
            token.subject.clone()
        } else {
            calendar_id.to_string()
        };
        if id != token.subject {
            return Err(not_found());
        }
        Ok(id)
    }

    fn now_rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp(self.clock.now(), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }
}

pub fn router(cal: Calendar) -> Router {
    Router::new()
        .route(
            "/calendar/v3/calendars/:calendar/events",
            get(list).post(insert),
        )
        .route(
            "/calendar/v3/calendars/:calendar/events/:id",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/calendar/v3/calendars/:calendar/events/watch", post(watch))
        .route("/calendar/v3/channels/stop", post(stop))
        .route(
            "/_sandbox/google/calendar/:calendar/expire-sync-tokens",
            post(expire_tokens),
        )
        .with_state(cal)
}

fn not_found() -> Response {
    google_error(StatusCode::NOT_FOUND, "Not Found", "notFound", Value::Null)
}

fn bad(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "invalid", Value::Null)
}

type Params = Query<HashMap<String, String>>;

/// An event time: `{"dateTime": RFC 3339[, "timeZone"]}` or `{"date": "YYYY-MM-DD"}`.
fn check_time(v: &Value, name: &str) -> Result<i64, Response> {
    if let Some(dt) = v.get("dateTime").and_then(Value::as_str) {
        return chrono::DateTime::parse_from_rfc3339(dt)
            .map(|t| t.timestamp())
            .map_err(|_| bad(&format!("Invalid {name} time.")));
    }
    if let Some(d) = v.get("date").and_then(Value::as_str) {
        return chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
            .map_err(|_| bad(&format!("Invalid {name} time.")));
    }
    Err(google_error(
        StatusCode::BAD_REQUEST,
        &format!("Missing {name} time."),
        "required",
        Value::Null,
    ))
}

fn start_of(e: &Event) -> i64 {
    check_time(&e.body["start"].clone(), "start").unwrap_or(0)
}

async fn insert(
    State(c): State<Calendar>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, true, "calendar.v3.Events.Insert") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(Value::Object(mut ev)) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        );
    };
    let start = match check_time(&ev.get("start").cloned().unwrap_or(Value::Null), "start") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let end = match check_time(&ev.get("end").cloned().unwrap_or(Value::Null), "end") {
        Ok(t) => t,
        Err(r) => return r,
    };
    if end < start {
        return bad("The specified time range is empty.");
    }
    if let Some(a) = ev.get("attendees") {
        let ok = a.as_array().is_some_and(|list| {
            list.iter()
                .all(|x| x["email"].as_str().is_some_and(|e| e.contains('@')))
        });
        if !ok {
            return bad("Invalid attendee email.");
        }
    }
    // A client may choose the id (base32hex, 5-1024 characters): how an insert is made
    // idempotent, since a second insert of the id is 409 duplicate.
    let id = match ev.get("id").and_then(Value::as_str) {
        Some(given) => {
            let ok = (5..=1024).contains(&given.len())
                && given
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
            if !ok {
                return bad("Invalid resource id value.");
            }
            given.to_string()
        }
        None => format!("{:026x}", rand::random::<u128>() >> 24),
    };
    let now = c.now_rfc3339();
    let meet = q.get("conferenceDataVersion").map(String::as_str) == Some("1")
        && ev["conferenceData"]["createRequest"]["conferenceSolutionKey"]["type"] == "hangoutsMeet";
    let attendees: Vec<Value> = ev
        .get("attendees")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    let mut a = a.clone();
                    if a.get("responseStatus").is_none() {
                        a["responseStatus"] = json!("needsAction");
                    }
                    a
                })
                .collect()
        })
        .unwrap_or_default();
    ev.insert("kind".into(), json!("calendar#event"));
    ev.insert("id".into(), json!(id));
    ev.insert("status".into(), json!("confirmed"));
    ev.insert(
        "htmlLink".into(),
        json!(format!("https://www.google.com/calendar/event?eid={id}")),
    );
    ev.insert("created".into(), json!(now));
    ev.insert("updated".into(), json!(now));
    ev.insert("creator".into(), json!({"email": cal_id}));
    ev.insert("organizer".into(), json!({"email": cal_id, "self": true}));
    ev.insert("iCalUID".into(), json!(format!("{id}@google.com")));
    ev.insert("sequence".into(), json!(0));
    ev.insert("eventType".into(), json!("default"));
    if !attendees.is_empty() {
        ev.insert("attendees".into(), json!(attendees));
    }
    if ev.get("reminders").is_none() {
        ev.insert("reminders".into(), json!({"useDefault": true}));
    }
    if meet {
        let code = format!("{}-{}-{}", &id[..3], &id[3..7], &id[7..10]);
        let uri = format!("https://meet.google.com/{code}");
        let request_id = ev["conferenceData"]["createRequest"]["requestId"].clone();
        ev.insert("hangoutLink".into(), json!(uri));
        ev.insert(
            "conferenceData".into(),
            json!({
                "createRequest": {"requestId": request_id,
                                  "conferenceSolutionKey": {"type": "hangoutsMeet"},
                                  "status": {"statusCode": "success"}},
                "entryPoints": [{"entryPointType": "video", "uri": uri, "label": format!("meet.google.com/{code}")}],
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
                "conferenceId": code,
            }),
        );
    } else {
        ev.remove("conferenceData");
    }
    let Ok(mut cals) = c.cals.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let cal_id_for_push = cal_id.clone();
    let cal = cals.entry(cal_id).or_default();
    if cal.events.contains_key(&id) {
        return google_error(
            StatusCode::CONFLICT,
            "The requested identifier already exists.",
            "duplicate",
            Value::Null,
        );
    }
    cal.seq += 1;
    ev.insert("etag".into(), json!(format!("\"{}\"", cal.seq)));
    cal.events.insert(
        id,
        Event {
            body: ev.clone(),
            seq: cal.seq,
            cancelled: false,
        },
    );
    drop(cals);
    c.push.changed(&format!("calendar:{cal_id_for_push}"));
    Json(Value::Object(ev)).into_response()
}

fn sync_token(generation: u64, seq: u64) -> String {
    format!("CP{generation}x{seq}")
}

fn parse_token(t: &str) -> Option<(u64, u64)> {
    let (g, s) = t.strip_prefix("CP")?.split_once('x')?;
    Some((g.parse().ok()?, s.parse().ok()?))
}

async fn list(
    State(c): State<Calendar>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, false, "calendar.v3.Events.List") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let max = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 250,
        Some(Ok(n)) if (1..=2500).contains(&n) => n,
        Some(_) => return bad("Invalid value for maxResults"),
    };
    let sync = q.get("syncToken");
    if sync.is_some()
        && [
            "timeMin",
            "timeMax",
            "q",
            "updatedMin",
            "orderBy",
            "iCalUID",
        ]
        .iter()
        .any(|k| q.contains_key(*k))
    {
        return bad("Sync token cannot be used with other request restrictions.");
    }
    let range = |k: &str| -> Result<Option<i64>, Response> {
        match q.get(k) {
            None => Ok(None),
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.timestamp()))
                .map_err(|_| bad(&format!("Invalid value for {k}"))),
        }
    };
    let (time_min, time_max) = match (range("timeMin"), range("timeMax")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let offset = match q.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("Invalid page token"),
    };
    let Ok(mut cals) = c.cals.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let cal = cals.entry(cal_id.clone()).or_default();
    let since = match sync {
        None => None,
        Some(t) => match parse_token(t) {
            Some((g, s)) if g == cal.generation && s <= cal.seq => Some(s),
            _ => {
                return google_error(
                    StatusCode::GONE,
                    "Sync token is no longer valid, a full sync is required.",
                    "fullSyncRequired",
                    Value::Null,
                )
            }
        },
    };
    let show_deleted = since.is_some() || q.get("showDeleted").map(String::as_str) == Some("true");
    let text = q.get("q").map(|s| s.to_lowercase());
    let mut hits: Vec<&Event> = cal
        .events
        .values()
        .filter(|e| since.is_none_or(|s| e.seq > s))
        .filter(|e| show_deleted || !e.cancelled)
        .filter(|e| time_min.is_none_or(|t| start_of(e) >= t))
        .filter(|e| time_max.is_none_or(|t| start_of(e) < t))
        .filter(|e| {
            text.as_ref().is_none_or(|t| {
                ["summary", "description", "location"].iter().any(|k| {
                    e.body
                        .get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_lowercase().contains(t))
                })
            })
        })
        .collect();
    hits.sort_by_key(|e| e.seq);
    let items: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(max)
        .map(|e| {
            if e.cancelled {
                json!({"kind": "calendar#event", "id": e.body["id"], "status": "cancelled",
                       "etag": e.body["etag"]})
            } else {
                Value::Object(e.body.clone())
            }
        })
        .collect();
    let mut out = json!({
        "kind": "calendar#events", "summary": cal_id, "timeZone": "UTC",
        "updated": c.now_rfc3339(), "accessRole": "owner", "defaultReminders": [],
        "etag": format!("\"{}\"", cal.seq), "items": items,
    });
    if offset + max < hits.len() {
        out["nextPageToken"] = json!((offset + max).to_string());
    } else {
        out["nextSyncToken"] = json!(sync_token(cal.generation, cal.seq));
    }
    Json(out).into_response()
}

async fn get_one(
    State(c): State<Calendar>,
    Path((calendar, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, false, "calendar.v3.Events.Get") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(cals) = c.cals.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match cals.get(&cal_id).and_then(|cal| cal.events.get(&id)) {
        Some(e) if !e.cancelled => Json(Value::Object(e.body.clone())).into_response(),
        Some(e) => {
            let mut body = e.body.clone();
            body.insert("status".into(), json!("cancelled"));
            Json(Value::Object(body)).into_response()
        }
        None => not_found(),
    }
}

async fn patch(
    State(c): State<Calendar>,
    Path((calendar, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, true, "calendar.v3.Events.Patch") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        );
    };
    for k in ["start", "end"] {
        if let Some(v) = changes.get(k) {
            if let Err(r) = check_time(v, k) {
                return r;
            }
        }
    }
    let now = c.now_rfc3339();
    let Ok(mut cals) = c.cals.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(cal) = cals.get_mut(&cal_id) else {
        return not_found();
    };
    cal.seq += 1;
    let seq = cal.seq;
    let Some(e) = cal.events.get_mut(&id).filter(|e| !e.cancelled) else {
        return not_found();
    };
    for (k, v) in changes {
        if ![
            "id",
            "kind",
            "etag",
            "created",
            "creator",
            "organizer",
            "iCalUID",
        ]
        .contains(&k.as_str())
        {
            e.body.insert(k, v);
        }
    }
    let sequence = e.body["sequence"].as_u64().unwrap_or(0) + 1;
    e.body.insert("sequence".into(), json!(sequence));
    e.body.insert("updated".into(), json!(now));
    e.body.insert("etag".into(), json!(format!("\"{seq}\"")));
    e.seq = seq;
    let answer = Value::Object(e.body.clone());
    drop(cals);
    c.push.changed(&format!("calendar:{cal_id}"));
    Json(answer).into_response()
}

async fn delete(
    State(c): State<Calendar>,
    Path((calendar, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, true, "calendar.v3.Events.Delete") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(mut cals) = c.cals.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(cal) = cals.get_mut(&cal_id) else {
        return not_found();
    };
    cal.seq += 1;
    let seq = cal.seq;
    match cal.events.get_mut(&id) {
        Some(e) if !e.cancelled => {
            e.cancelled = true;
            e.seq = seq;
            drop(cals);
            c.push.changed(&format!("calendar:{cal_id}"));
            StatusCode::NO_CONTENT.into_response()
        }
        Some(_) => google_error(
            StatusCode::GONE,
            "Resource has been deleted",
            "deleted",
            Value::Null,
        ),
        None => not_found(),
    }
}

/// `events.watch`: a push channel on the calendar's events.
async fn watch(
    State(c): State<Calendar>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let cal_id = match c.calendar(&headers, &calendar, false, "calendar.v3.Events.Watch") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let uri = format!("https://www.googleapis.com/calendar/v3/calendars/{cal_id}/events?alt=json");
    c.push.open(&format!("calendar:{cal_id}"), &uri, &body)
}

/// `channels.stop`.
async fn stop(State(c): State<Calendar>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if c.oauth.check_bearer(&headers).is_none() {
        return unauthenticated();
    }
    c.push.stop(&body)
}

async fn expire_tokens(State(c): State<Calendar>, Path(calendar): Path<String>) -> Json<Value> {
    let generation = c
        .cals
        .lock()
        .map(|mut cals| {
            let cal = cals.entry(calendar.clone()).or_default();
            cal.generation += 1;
            cal.generation
        })
        .unwrap_or_default();
    Json(json!({"calendar": calendar, "generation": generation}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sync_tokens_round_trip() {
        assert_eq!(super::parse_token(&super::sync_token(2, 41)), Some((2, 41)));
        assert_eq!(super::parse_token("nonsense"), None);
    }
}
