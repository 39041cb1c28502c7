//! Slack's Web API, the methods the fleet calls. Arguments come as a form, JSON (write
//! methods) or the query; the token as `Authorization: Bearer` or the `token` argument.
//! Refusals are HTTP 200 with `{"ok": false, "error": ...}`, as Slack answers.
use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::{slack_error, Message, Slack};

/// Slack's limit on a message's `text` (longer is `msg_too_long`).
pub const MAX_TEXT: usize = 40_000;
/// Slack's limit on a message's blocks.
pub const MAX_BLOCKS: usize = 50;

/// The call's arguments: query, then form or JSON body.
fn arguments(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, &'static str> {
    let mut args = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        args.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => args.extend(m),
            _ if body.is_empty() => {}
            _ => return Err("invalid_json"),
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            args.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Ok(args)
}

fn text_arg<'a>(args: &'a Map<String, Value>, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `POST|GET /api/<method>`.
pub async fn call(
    State(slack): State<Slack>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = match arguments(&headers, query.as_deref(), &body) {
        Ok(a) => a,
        Err(e) => return slack_error(e),
    };
    if method == "oauth.v2.access" {
        return oauth_access(&slack, &headers, &args);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = bearer.unwrap_or_else(|| text_arg(&args, "token").to_string());
    if token.is_empty() {
        return slack_error("not_authed");
    }
    if token != slack.cfg.bot_token && slack.oauth.check_token(&token).is_none() {
        return slack_error("invalid_auth");
    }
    match method.as_str() {
        "auth.test" => Json(json!({
            "ok": true,
            "url": format!("https://{}.slack.com/", slack.cfg.domain),
            "team": slack.cfg.team_name,
            "user": "bac",
            "team_id": slack.cfg.team_id,
            "user_id": slack.cfg.bot_user_id,
            "bot_id": slack.cfg.bot_id,
            "is_enterprise_install": false,
        }))
        .into_response(),
        "chat.postMessage" => post_message(&slack, &args),
        "conversations.history" => history(&slack, &args, None),
        "conversations.replies" => {
            let ts = text_arg(&args, "ts").to_string();
            if ts.is_empty() {
                return slack_error("invalid_arguments");
            }
            history(&slack, &args, Some(ts))
        }
        "conversations.list" => Json(json!({
            "ok": true,
            "channels": slack.cfg.channels.iter().map(|(id, name, member)| json!({
                "id": id, "name": name, "is_channel": true, "is_member": member,
            })).collect::<Vec<_>>(),
            "response_metadata": {"next_cursor": ""},
        }))
        .into_response(),
        _ => slack_error("unknown_method"),
    }
}

/// A channel by id or `#name`; whether the bot is in it.
fn channel(slack: &Slack, given: &str) -> Option<(String, bool)> {
    let name = given.trim_start_matches('#');
    slack
        .cfg
        .channels
        .iter()
        .find(|(id, n, _)| id == given || n == name)
        .map(|(id, _, member)| (id.clone(), *member))
}

fn post_message(slack: &Slack, args: &Map<String, Value>) -> Response {
    let Some((channel, member)) = channel(slack, text_arg(args, "channel")) else {
        return slack_error("channel_not_found");
    };
    if !member {
        return slack_error("not_in_channel");
    }
    let text = text_arg(args, "text").to_string();
    // blocks: a JSON array, or a string holding one (form bodies)
    let blocks = match args.get("blocks") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Array(_)) => v,
            _ => return slack_error("invalid_blocks_format"),
        },
        Some(v @ Value::Array(_)) => v.clone(),
        Some(_) => return slack_error("invalid_blocks_format"),
    };
    if let Value::Array(bs) = &blocks {
        if bs.len() > MAX_BLOCKS || bs.iter().any(|b| !b["type"].is_string()) {
            return slack_error("invalid_blocks");
        }
    }
    if text.is_empty() && blocks.is_null() {
        return slack_error("no_text");
    }
    if text.chars().count() > MAX_TEXT {
        return slack_error("msg_too_long");
    }
    let thread_ts = Some(text_arg(args, "thread_ts").to_string()).filter(|t| !t.is_empty());
    let message = slack.with(|s| {
        let thread_ts = thread_ts.filter(|t| {
            s.messages
                .iter()
                .any(|m| m.channel == channel && &m.ts == t)
        });
        let m = Message {
            channel: channel.clone(),
            ts: slack.next_ts(s),
            thread_ts,
            text,
            blocks,
            user: slack.cfg.bot_user_id.clone(),
            bot_id: Some(slack.cfg.bot_id.clone()),
        };
        s.messages.push(m.clone());
        m
    });
    Json(json!({
        "ok": true,
        "channel": channel,
        "ts": message.ts,
        "message": message.to_json(),
    }))
    .into_response()
}

/// A channel's messages (newest first, as Slack lists them), or one thread's (parent first).
fn history(slack: &Slack, args: &Map<String, Value>, thread: Option<String>) -> Response {
    let Some((channel, _)) = channel(slack, text_arg(args, "channel")) else {
        return slack_error("channel_not_found");
    };
    let all = slack.messages();
    let mut found: Vec<Value> = match &thread {
        Some(ts) => {
            if !all.iter().any(|m| m.channel == channel && &m.ts == ts) {
                return slack_error("thread_not_found");
            }
            all.iter()
                .filter(|m| {
                    m.channel == channel && (&m.ts == ts || m.thread_ts.as_ref() == Some(ts))
                })
                .map(Message::to_json)
                .collect()
        }
        None => all
            .iter()
            .rev()
            .filter(|m| m.channel == channel && m.thread_ts.is_none())
            .map(Message::to_json)
            .collect(),
    };
    let limit = text_arg(args, "limit")
        .parse::<usize>()
        .unwrap_or(100)
        .clamp(1, 1000);
    found.truncate(limit);
    Json(json!({"ok": true, "messages": found, "has_more": false,
                "response_metadata": {"next_cursor": ""}}))
    .into_response()
}

/// `oauth.v2.access`: the code of the authorise page for a bot token, the client
/// authenticated by form fields or HTTP Basic.
fn oauth_access(slack: &Slack, headers: &HeaderMap, args: &Map<String, Value>) -> Response {
    let mut form: HashMap<String, String> = args
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        if let Some((id, secret)) = decoded.split_once(':') {
            form.insert("client_id".into(), id.to_string());
            form.insert("client_secret".into(), secret.to_string());
        }
    }
    if form
        .get("grant_type")
        .is_some_and(|g| g != "authorization_code")
    {
        // token rotation's refresh grant is not served: the sandbox's bot tokens never expire
        return slack_error("invalid_grant_type");
    }
    if form.get("client_id").is_none_or(|c| c.is_empty()) {
        return slack_error("invalid_client_id");
    }
    form.insert("grant_type".into(), "authorization_code".into());
    match slack.oauth.redeem_code(&form) {
        Ok(answer) => {
            let scope = answer["scope"].as_str().unwrap_or("").to_string();
            (
                StatusCode::OK,
                Json(json!({
                    "ok": true,
                    "access_token": answer["access_token"],
                    "token_type": "bot",
                    "scope": scope,
                    "bot_user_id": slack.cfg.bot_user_id,
                    "app_id": slack.cfg.app_id,
                    "team": {"id": slack.cfg.team_id, "name": slack.cfg.team_name},
                    "enterprise": null,
                    "is_enterprise_install": false,
                    "authed_user": {"id": "U0INSTALL1"},
                })),
            )
                .into_response()
        }
        Err((error, description)) => slack_error(match error.as_str() {
            "invalid_client" if form.contains_key("client_secret") => "bad_client_secret",
            "invalid_client" => "invalid_client_id",
            _ if description.contains("redirect_uri") => "bad_redirect_uri",
            _ => "invalid_code",
        }),
    }
}

/// `GET /_sandbox/slack/messages`: every message posted, oldest first.
pub async fn all_messages(State(slack): State<Slack>) -> Json<Value> {
    Json(json!({
        "messages": slack.messages().iter().map(|m| {
            let mut j = m.to_json();
            j["channel"] = json!(m.channel);
            j
        }).collect::<Vec<_>>()
    }))
}
