//! Google's JSON <-> the platform's messages (`bac.google_workspace.v1`).
use bac_proto::google_workspace::v1::{
    CalendarEvent, DirectoryUser, DriveFile, EventAttendee, GmailMessage,
};
use pbjson_types::Timestamp;
use serde_json::{json, Value};

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub fn timestamp(v: &Value) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

pub fn rfc3339(t: &Timestamp) -> Option<String> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).map(|d| d.to_rfc3339())
}

/// A Calendar event (start and end as instants; an all-day event's date at midnight UTC).
pub fn event(e: &Value, calendar_id: &str, connection_id: &str) -> CalendarEvent {
    let when = |w: &Value| {
        timestamp(&w["dateTime"]).or_else(|| {
            let d = chrono::NaiveDate::parse_from_str(w["date"].as_str()?, "%Y-%m-%d").ok()?;
            Some(Timestamp {
                seconds: d.and_hms_opt(0, 0, 0)?.and_utc().timestamp(),
                nanos: 0,
            })
        })
    };
    CalendarEvent {
        id: s(&e["id"]),
        calendar_id: calendar_id.to_string(),
        summary: s(&e["summary"]),
        description: s(&e["description"]),
        location: s(&e["location"]),
        start: when(&e["start"]),
        end: when(&e["end"]),
        time_zone: s(&e["start"]["timeZone"]),
        attendees: e["attendees"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| EventAttendee {
                email: s(&a["email"]),
                display_name: s(&a["displayName"]),
                optional: a["optional"] == true,
                response_status: s(&a["responseStatus"]),
            })
            .collect(),
        meet_link: s(&e["hangoutLink"]),
        status: s(&e["status"]),
        html_link: s(&e["htmlLink"]),
        organizer: s(&e["organizer"]["email"]),
        updated: timestamp(&e["updated"]),
        connection_id: connection_id.to_string(),
    }
}

/// The canonical values of a new event (what the engine's create takes).
pub fn event_values(ev: &CalendarEvent, user: &str, add_meet: bool, send_updates: &str) -> Value {
    json!({
        "user": user,
        "summary": ev.summary,
        "description": ev.description,
        "location": ev.location,
        "start": ev.start.as_ref().and_then(rfc3339),
        "end": ev.end.as_ref().and_then(rfc3339),
        "time_zone": ev.time_zone,
        "attendees": ev.attendees.iter().map(|a| json!({
            "email": a.email, "display_name": a.display_name, "optional": a.optional,
        })).collect::<Vec<_>>(),
        "add_meet": add_meet,
        "send_updates": send_updates,
    })
}

pub fn file(f: &Value, user: &str, connection_id: &str) -> DriveFile {
    DriveFile {
        id: s(&f["id"]),
        name: s(&f["name"]),
        mime_type: s(&f["mimeType"]),
        size: s(&f["size"]).parse().unwrap_or(0),
        parent_ids: f["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect(),
        web_view_link: s(&f["webViewLink"]),
        md5_checksum: s(&f["md5Checksum"]),
        modified_time: timestamp(&f["modifiedTime"]),
        user: user.to_string(),
        connection_id: connection_id.to_string(),
    }
}

pub fn user(u: &Value) -> DirectoryUser {
    DirectoryUser {
        id: s(&u["id"]),
        primary_email: s(&u["primaryEmail"]),
        given_name: s(&u["name"]["givenName"]),
        family_name: s(&u["name"]["familyName"]),
        full_name: s(&u["name"]["fullName"]),
        is_admin: u["isAdmin"] == true,
        suspended: u["suspended"] == true,
        org_unit_path: s(&u["orgUnitPath"]),
        creation_time: timestamp(&u["creationTime"]),
        last_login_time: timestamp(&u["lastLoginTime"]),
    }
}

/// A message read with `format=metadata`: its headers and snippet.
pub fn message(m: &Value) -> GmailMessage {
    let header = |name: &str| {
        m["payload"]["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| {
                h["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|h| s(&h["value"]))
            .unwrap_or_default()
    };
    let received = s(&m["internalDate"])
        .parse::<i64>()
        .ok()
        .map(|ms| Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        });
    GmailMessage {
        id: s(&m["id"]),
        thread_id: s(&m["threadId"]),
        label_ids: m["labelIds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect(),
        snippet: s(&m["snippet"]),
        from: crate::mime::header_addresses(&header("From")),
        to: crate::mime::header_addresses(&header("To")),
        subject: header("Subject"),
        received_at: received,
        size_estimate: m["sizeEstimate"].as_i64().unwrap_or(0),
    }
}
