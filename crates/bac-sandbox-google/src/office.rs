//! Docs, Sheets, Slides and Forms as their discovery documents (`docs.v1`, `sheets.v4`,
//! `slides.v1`, `forms.v1`) describe them, the parts the fleet uses: create, get and
//! `batchUpdate` of a document (`insertText`, `deleteContentRange`, `replaceAllText`) and of a presentation
//! (`createSlide`, `createShape`, `insertText`); a spreadsheet's create, get and values (get,
//! update, append in A1 notation, `valueInputOption` required as Google requires it); a
//! form's create (its title only, as Google allows), get, `batchUpdate` (`createItem`,
//! `updateFormInfo`) and responses (list, get). Files belong to the token's user. Respondents are the
//! sandbox's: `POST /_sandbox/google/forms/{formId}/responses` with `{"answers":
//! {questionId: ["text", ...]}}`.
use std::{
    collections::HashMap,
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
use serde_json::{json, Value};

use crate::google_error;

const DRIVE: &str = "https://www.googleapis.com/auth/drive";
const DRIVE_FILE: &str = "https://www.googleapis.com/auth/drive.file";
const DOCUMENTS: &str = "https://www.googleapis.com/auth/documents";
const SPREADSHEETS: &str = "https://www.googleapis.com/auth/spreadsheets";
const PRESENTATIONS: &str = "https://www.googleapis.com/auth/presentations";
const FORMS_BODY: &str = "https://www.googleapis.com/auth/forms.body";
const FORMS_RESPONSES: &str = "https://www.googleapis.com/auth/forms.responses.readonly";

/// A sheet: its name and its rows of cells.
type Sheet = (String, Vec<Vec<String>>);

#[derive(Debug, Default)]
struct Files {
    /// id -> (owner, document text)
    docs: HashMap<String, (String, String, String)>,
    /// id -> (owner, title, sheets: (name, rows))
    sheets: HashMap<String, (String, String, Vec<Sheet>)>,
    /// id -> (owner, presentation)
    decks: HashMap<String, (String, Value)>,
    /// id -> (owner, form, responses)
    forms: HashMap<String, (String, Value, Vec<Value>)>,
    revision: u64,
}

#[derive(Clone)]
pub struct Office {
    oauth: OAuthServer,
    clock: SandboxClock,
    files: Arc<Mutex<Files>>,
}

fn bad(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "badRequest", Value::Null)
}

fn not_found(id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        &format!("Requested entity was not found: {id}"),
        "notFound",
        Value::Null,
    )
}

fn new_id() -> String {
    format!("1{:032x}", rand::random::<u128>())
}

impl Office {
    pub fn new(oauth: OAuthServer, clock: SandboxClock) -> Office {
        Office {
            oauth,
            clock,
            files: Arc::default(),
        }
    }

    fn caller(
        &self,
        headers: &HeaderMap,
        scopes: &[&str],
        service: &str,
        method: &str,
    ) -> Result<String, Response> {
        crate::authorized(&self.oauth, headers, scopes, service, method)
    }

    fn now(&self) -> String {
        chrono::DateTime::from_timestamp(self.clock.now(), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }
}

fn body_of(bytes: &[u8]) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(google_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received.",
            "parseError",
            Value::Null,
        )),
    }
}

// ------------------------------------------------------------------------------- Docs

/// A document as Docs answers it: its text as one paragraph per line.
fn document(id: &str, title: &str, text: &str, revision: &str) -> Value {
    let mut content = vec![json!({"endIndex": 1, "sectionBreak": {}})];
    let mut at = 1;
    let full = format!("{text}\n");
    for line in full.split_inclusive('\n') {
        let len = line.encode_utf16().count();
        content.push(json!({"startIndex": at, "endIndex": at + len,
            "paragraph": {"elements": [{"startIndex": at, "endIndex": at + len,
                                        "textRun": {"content": line, "textStyle": {}}}],
                          "paragraphStyle": {"namedStyleType": "NORMAL_TEXT"}}}));
        at += len;
    }
    json!({"documentId": id, "title": title, "revisionId": revision,
           "body": {"content": content}})
}

async fn doc_create(
    State(o): State<Office>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match o.caller(
        &headers,
        &[DOCUMENTS, DRIVE, DRIVE_FILE],
        "docs.googleapis.com",
        "google.apps.docs.v1.DocumentsService.CreateDocument",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let title = v["title"]
        .as_str()
        .unwrap_or("Untitled document")
        .to_string();
    let id = new_id();
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    f.revision += 1;
    let rev = format!("r{}", f.revision);
    f.docs
        .insert(id.clone(), (user, title.clone(), String::new()));
    Json(document(&id, &title, "", &rev)).into_response()
}

async fn doc_get(State(o): State<Office>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = match o.caller(
        &headers,
        &[
            DOCUMENTS,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/documents.readonly",
        ],
        "docs.googleapis.com",
        "google.apps.docs.v1.DocumentsService.GetDocument",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match f.docs.get(&id).filter(|d| d.0 == user) {
        Some((_, title, text)) => {
            Json(document(&id, title, text, &format!("r{}", f.revision))).into_response()
        }
        None => not_found(&id),
    }
}

/// `POST /v1/documents/{id}:batchUpdate`.
async fn doc_update(
    State(o): State<Office>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = id.strip_suffix(":batchUpdate").map(String::from) else {
        return not_found(&id);
    };
    let user = match o.caller(
        &headers,
        &[DOCUMENTS, DRIVE, DRIVE_FILE],
        "docs.googleapis.com",
        "google.apps.docs.v1.DocumentsService.BatchUpdateDocument",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(doc) = f.docs.get_mut(&id).filter(|d| d.0 == user) else {
        return not_found(&id);
    };
    let mut text = doc.2.clone();
    let mut replies = Vec::new();
    for (i, r) in v["requests"].as_array().into_iter().flatten().enumerate() {
        if let Some(ins) = r.get("insertText") {
            let Some(t) = ins["text"].as_str() else {
                return bad(&format!(
                    "Invalid requests[{i}].insertText: text is required"
                ));
            };
            if ins.get("endOfSegmentLocation").is_some() {
                text.push_str(t);
            } else if let Some(index) = ins["location"]["index"].as_u64() {
                // index 1 is the first character; indices count UTF-16 units
                let units: Vec<u16> = text.encode_utf16().collect();
                let at = (index as usize).saturating_sub(1);
                if index == 0 || at > units.len() {
                    return bad(&format!("Invalid requests[{i}].insertText: Index {index} must be within the bounds of an existing paragraph."));
                }
                let (a, b) = units.split_at(at);
                text = format!(
                    "{}{t}{}",
                    String::from_utf16_lossy(a),
                    String::from_utf16_lossy(b)
                );
            } else {
                return bad(&format!(
                    "Invalid requests[{i}].insertText: location or endOfSegmentLocation is required"
                ));
            }
            replies.push(json!({}));
        } else if let Some(rep) = r.get("replaceAllText") {
            let find = rep["containsText"]["text"].as_str().unwrap_or("");
            let with = rep["replaceText"].as_str().unwrap_or("");
            if find.is_empty() {
                return bad(&format!(
                    "Invalid requests[{i}].replaceAllText: containsText.text is required"
                ));
            }
            let n = text.matches(find).count();
            text = text.replace(find, with);
            replies.push(json!({"replaceAllText": {"occurrencesChanged": n}}));
        } else if let Some(del) = r.get("deleteContentRange") {
            // the body's text runs from index 1; its final newline (index len + 1) stays
            let units: Vec<u16> = text.encode_utf16().collect();
            let range = &del["range"];
            let (Some(start), Some(end)) =
                (range["startIndex"].as_u64(), range["endIndex"].as_u64())
            else {
                return bad(&format!(
                    "Invalid requests[{i}].deleteContentRange: range.startIndex and range.endIndex are required"
                ));
            };
            if start < 1 || end <= start {
                return bad(&format!(
                    "Invalid requests[{i}].deleteContentRange: The range should not be empty."
                ));
            }
            if end as usize > units.len() + 1 {
                return bad(&format!("Invalid requests[{i}].deleteContentRange: The range cannot include the newline character at the end of the segment."));
            }
            let (a, b) = ((start - 1) as usize, (end - 1) as usize);
            let cut = |u: &[u16]| String::from_utf16(u);
            match (cut(&units[..a]), cut(&units[b..])) {
                (Ok(head), Ok(tail)) => text = format!("{head}{tail}"),
                _ => {
                    return bad(&format!("Invalid requests[{i}].deleteContentRange: The range cannot split a surrogate pair."))
                }
            }
            replies.push(json!({}));
        } else {
            return bad(&format!("Invalid requests[{i}]: this request kind is not one the sandbox serves (insertText, deleteContentRange, replaceAllText)"));
        }
    }
    doc.2 = text;
    f.revision += 1;
    Json(json!({"documentId": id, "replies": replies,
                "writeControl": {"requiredRevisionId": format!("r{}", f.revision)}}))
    .into_response()
}

// ------------------------------------------------------------------------------- Sheets

/// A1 notation: the sheet (None: the first) and the top-left cell (0-based row, column).
fn a1(range: &str) -> Option<(Option<String>, usize, usize)> {
    // `B2` or `B2:C3` alone is a range of the first sheet; any other word names a sheet
    let is_cells = |r: &str| {
        r.split(':').all(|c| {
            let letters = c.chars().take_while(|ch| ch.is_ascii_uppercase()).count();
            (1..=3).contains(&letters)
                && c.len() > letters
                && c[letters..].bytes().all(|b| b.is_ascii_digit())
        })
    };
    let (sheet, cells) = match range.rsplit_once('!') {
        Some((s, c)) => (Some(s.trim_matches('\'').replace("''", "'")), c),
        None if is_cells(range) => (None, range),
        None => (Some(range.trim_matches('\'').replace("''", "'")), "A1"),
    };
    let start = cells.split(':').next().unwrap_or("A1");
    let letters: String = start
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let digits: String = start.chars().skip(letters.len()).collect();
    let col = letters
        .to_ascii_uppercase()
        .bytes()
        .try_fold(0usize, |acc, b| Some(acc * 26 + (b - b'A' + 1) as usize))?;
    let row: usize = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    if col == 0 || row == 0 {
        return None;
    }
    Some((sheet, row - 1, col - 1))
}

fn column(n: usize) -> String {
    let mut n = n + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.push((b'A' + r as u8) as char);
        n = (n - 1) / 26;
    }
    s.iter().rev().collect()
}

fn quoted(sheet: &str) -> String {
    if sheet.chars().all(|c| c.is_ascii_alphanumeric()) {
        sheet.to_string()
    } else {
        format!("'{}'", sheet.replace('\'', "''"))
    }
}

fn spreadsheet(id: &str, title: &str, sheets: &[Sheet]) -> Value {
    json!({"spreadsheetId": id, "properties": {"title": title, "locale": "en_US", "timeZone": "Etc/GMT"},
        "sheets": sheets.iter().enumerate().map(|(i, (name, _))| json!({"properties": {
            "sheetId": i, "title": name, "index": i, "sheetType": "GRID",
            "gridProperties": {"rowCount": 1000, "columnCount": 26}}})).collect::<Vec<_>>(),
        "spreadsheetUrl": format!("https://docs.google.com/spreadsheets/d/{id}/edit")})
}

async fn sheet_create(
    State(o): State<Office>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match o.caller(
        &headers,
        &[SPREADSHEETS, DRIVE, DRIVE_FILE],
        "sheets.googleapis.com",
        "google.apps.sheets.v4.SpreadsheetsService.CreateSpreadsheet",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let title = v["properties"]["title"]
        .as_str()
        .unwrap_or("Untitled spreadsheet")
        .to_string();
    let mut sheets: Vec<Sheet> = Vec::new();
    for s in v["sheets"].as_array().into_iter().flatten() {
        let name = s["properties"]["title"].as_str().unwrap_or("").to_string();
        if name.is_empty() || sheets.iter().any(|(n, _)| *n == name) {
            return bad("Invalid requests: sheet titles must be unique and not empty");
        }
        sheets.push((name, Vec::new()));
    }
    if sheets.is_empty() {
        sheets.push(("Sheet1".into(), Vec::new()));
    }
    let id = new_id();
    let answer = spreadsheet(&id, &title, &sheets);
    if let Ok(mut f) = o.files.lock() {
        f.sheets.insert(id, (user, title, sheets));
    }
    Json(answer).into_response()
}

async fn sheet_get(
    State(o): State<Office>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = match o.caller(
        &headers,
        &[
            SPREADSHEETS,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/spreadsheets.readonly",
        ],
        "sheets.googleapis.com",
        "google.apps.sheets.v4.SpreadsheetsService.GetSpreadsheet",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match f.sheets.get(&id).filter(|s| s.0 == user) {
        Some((_, title, sheets)) => Json(spreadsheet(&id, title, sheets)).into_response(),
        None => not_found(&id),
    }
}

/// `GET|PUT|POST /v4/spreadsheets/{id}/values/{range}` (`{range}:append` for POST).
async fn values(
    State(o): State<Office>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path((id, range)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let write = method != axum::http::Method::GET;
    let append = method == axum::http::Method::POST;
    let range = if append {
        match range.strip_suffix(":append") {
            Some(r) => r.to_string(),
            None => return not_found(&range),
        }
    } else {
        range
    };
    let scopes: &[&str] = if write {
        &[SPREADSHEETS, DRIVE, DRIVE_FILE]
    } else {
        &[
            SPREADSHEETS,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/spreadsheets.readonly",
        ]
    };
    let user = match o.caller(
        &headers,
        scopes,
        "sheets.googleapis.com",
        "google.apps.sheets.v4.SpreadsheetsService.Values",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some((sheet, row, col)) = a1(&range) else {
        return bad(&format!("Unable to parse range: {range}"));
    };
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, _, sheets)) = f.sheets.get_mut(&id).filter(|s| s.0 == user) else {
        return not_found(&id);
    };
    let idx = match &sheet {
        None => 0,
        Some(name) => match sheets.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => return bad(&format!("Unable to parse range: {range}")),
        },
    };
    let (name, grid) = &mut sheets[idx];
    if !write {
        let rows: Vec<Vec<String>> = grid
            .iter()
            .skip(row)
            .map(|r| r.iter().skip(col).cloned().collect::<Vec<_>>())
            .map(|mut r| {
                while r.last().is_some_and(String::is_empty) {
                    r.pop();
                }
                r
            })
            .collect();
        let mut rows = rows;
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        let mut out =
            json!({"range": format!("{}!{range}", quoted(name)), "majorDimension": "ROWS"});
        if let Some(r) = range.rsplit_once('!').map(|(_, r)| r) {
            out["range"] = json!(format!("{}!{r}", quoted(name)));
        }
        if !rows.is_empty() {
            out["values"] = json!(rows);
        }
        return Json(out).into_response();
    }
    match q.get("valueInputOption").map(String::as_str) {
        Some("RAW" | "USER_ENTERED") => {}
        _ => return bad("'valueInputOption' is required but not specified"),
    }
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(new_rows) = v["values"].as_array() else {
        return bad("Invalid values: values must be a list of rows");
    };
    let text = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    // an append writes after the last row of the table the range starts
    let start = if append {
        grid.iter()
            .rposition(|r| r.iter().skip(col).any(|c| !c.is_empty()))
            .map_or(row, |last| last.max(row.saturating_sub(1)) + 1)
    } else {
        row
    };
    let width = new_rows
        .iter()
        .map(|r| r.as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0);
    for (i, r) in new_rows.iter().enumerate() {
        let target = start + i;
        while grid.len() <= target {
            grid.push(Vec::new());
        }
        for (j, c) in r.as_array().into_iter().flatten().enumerate() {
            let line = &mut grid[target];
            while line.len() <= col + j {
                line.push(String::new());
            }
            line[col + j] = text(c);
        }
    }
    let cells: usize = new_rows
        .iter()
        .map(|r| r.as_array().map_or(0, Vec::len))
        .sum();
    let updated_range = format!(
        "{}!{}{}:{}{}",
        quoted(name),
        column(col),
        start + 1,
        column(col + width.saturating_sub(1)),
        start + new_rows.len()
    );
    let update = json!({"spreadsheetId": id, "updatedRange": updated_range,
        "updatedRows": new_rows.len(), "updatedColumns": width, "updatedCells": cells});
    if append {
        Json(json!({"spreadsheetId": id, "tableRange": format!("{}!{}{}", quoted(name), column(col), row + 1),
                    "updates": update}))
        .into_response()
    } else {
        Json(update).into_response()
    }
}

// ------------------------------------------------------------------------------- Slides

async fn deck_create(
    State(o): State<Office>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match o.caller(
        &headers,
        &[PRESENTATIONS, DRIVE, DRIVE_FILE],
        "slides.googleapis.com",
        "google.apps.slides.v1.PresentationsService.CreatePresentation",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = new_id();
    let deck = json!({"presentationId": id, "title": v["title"].as_str().unwrap_or("Untitled presentation"),
        "pageSize": {"width": {"magnitude": 9144000, "unit": "EMU"}, "height": {"magnitude": 5143500, "unit": "EMU"}},
        "slides": [{"objectId": "p", "pageType": "SLIDE", "pageElements": []}],
        "revisionId": "r1", "locale": "en"});
    if let Ok(mut f) = o.files.lock() {
        f.decks.insert(id, (user, deck.clone()));
    }
    Json(deck).into_response()
}

async fn deck_get(State(o): State<Office>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = match o.caller(
        &headers,
        &[
            PRESENTATIONS,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/presentations.readonly",
        ],
        "slides.googleapis.com",
        "google.apps.slides.v1.PresentationsService.GetPresentation",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match f.decks.get(&id).filter(|d| d.0 == user) {
        Some((_, deck)) => Json(deck.clone()).into_response(),
        None => not_found(&id),
    }
}

/// `POST /v1/presentations/{id}:batchUpdate`: `createSlide`, `createShape` (a text box on a
/// slide), `insertText` into a shape.
async fn deck_update(
    State(o): State<Office>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = id.strip_suffix(":batchUpdate").map(String::from) else {
        return not_found(&id);
    };
    let user = match o.caller(
        &headers,
        &[PRESENTATIONS, DRIVE, DRIVE_FILE],
        "slides.googleapis.com",
        "google.apps.slides.v1.PresentationsService.BatchUpdatePresentation",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, deck)) = f.decks.get_mut(&id).filter(|d| d.0 == user) else {
        return not_found(&id);
    };
    // all or nothing, as Google applies a batch
    let mut work = deck.clone();
    let mut replies = Vec::new();
    for (i, r) in v["requests"].as_array().into_iter().flatten().enumerate() {
        let slides = work["slides"].as_array().cloned().unwrap_or_default();
        let exists = |oid: &str| {
            slides.iter().any(|s| {
                s["objectId"] == oid
                    || s["pageElements"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e["objectId"] == oid)
            })
        };
        if let Some(c) = r.get("createSlide") {
            let oid = c["objectId"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("s{}", new_id()));
            if exists(&oid) {
                return bad(&format!("Invalid requests[{i}].createSlide: The object ID ({oid}) should be unique among all pages and page elements."));
            }
            let at = c["insertionIndex"]
                .as_u64()
                .map_or(slides.len(), |n| (n as usize).min(slides.len()));
            if let Some(list) = work["slides"].as_array_mut() {
                list.insert(
                    at,
                    json!({"objectId": oid, "pageType": "SLIDE", "pageElements": []}),
                );
            }
            replies.push(json!({"createSlide": {"objectId": oid}}));
        } else if let Some(c) = r.get("createShape") {
            let oid = c["objectId"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("e{}", new_id()));
            let page = c["elementProperties"]["pageObjectId"]
                .as_str()
                .unwrap_or("");
            if exists(&oid) {
                return bad(&format!("Invalid requests[{i}].createShape: The object ID ({oid}) should be unique among all pages and page elements."));
            }
            let Some(slide) = work["slides"]
                .as_array_mut()
                .and_then(|l| l.iter_mut().find(|s| s["objectId"] == page))
            else {
                return bad(&format!(
                    "Invalid requests[{i}].createShape: The page ({page}) could not be found."
                ));
            };
            if let Some(els) = slide["pageElements"].as_array_mut() {
                els.push(json!({"objectId": oid, "size": c["elementProperties"]["size"],
                    "transform": c["elementProperties"]["transform"],
                    "shape": {"shapeType": c["shapeType"].as_str().unwrap_or("TEXT_BOX"), "text": {"textElements": []}}}));
            }
            replies.push(json!({"createShape": {"objectId": oid}}));
        } else if let Some(c) = r.get("insertText") {
            let oid = c["objectId"].as_str().unwrap_or("");
            let text = c["text"].as_str().unwrap_or("");
            let shape = work["slides"].as_array_mut().and_then(|l| {
                l.iter_mut()
                    .flat_map(|s| s["pageElements"].as_array_mut().into_iter().flatten())
                    .find(|e| e["objectId"] == oid)
            });
            let Some(shape) = shape else {
                return bad(&format!(
                    "Invalid requests[{i}].insertText: The object ({oid}) could not be found."
                ));
            };
            if let Some(t) = shape["shape"]["text"]["textElements"].as_array_mut() {
                t.push(json!({"textRun": {"content": text, "style": {}}}));
            }
            replies.push(json!({}));
        } else {
            return bad(&format!("Invalid requests[{i}]: this request kind is not one the sandbox serves (createSlide, createShape, insertText)"));
        }
    }
    *deck = work;
    f.revision += 1;
    Json(json!({"presentationId": id, "replies": replies,
                "writeControl": {"requiredRevisionId": format!("r{}", f.revision)}}))
    .into_response()
}

// ------------------------------------------------------------------------------- Forms

async fn form_create(
    State(o): State<Office>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match o.caller(
        &headers,
        &[FORMS_BODY, DRIVE, DRIVE_FILE],
        "forms.googleapis.com",
        "google.apps.forms.v1.FormsService.CreateForm",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v.as_object().is_some_and(|o| o.keys().any(|k| k != "info"))
        || v["info"]
            .as_object()
            .is_some_and(|i| i.keys().any(|k| k != "title" && k != "documentTitle"))
    {
        return bad("Only info.title and info.documentTitle may be set when creating a form. To add items and change settings, use batchUpdate.");
    }
    let Some(title) = v["info"]["title"].as_str() else {
        return bad("Invalid form: info.title is required");
    };
    let id = new_id();
    let form = json!({"formId": id, "info": {"title": title,
        "documentTitle": v["info"]["documentTitle"].as_str().unwrap_or(title)},
        "revisionId": "00000001", "items": [],
        "responderUri": format!("https://docs.google.com/forms/d/e/{id}/viewform")});
    if let Ok(mut f) = o.files.lock() {
        f.forms.insert(id, (user, form.clone(), Vec::new()));
    }
    Json(form).into_response()
}

async fn form_get(State(o): State<Office>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = match o.caller(
        &headers,
        &[
            FORMS_BODY,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/forms.body.readonly",
        ],
        "forms.googleapis.com",
        "google.apps.forms.v1.FormsService.GetForm",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match f.forms.get(&id).filter(|d| d.0 == user) {
        Some((_, form, _)) => Json(form.clone()).into_response(),
        None => not_found(&id),
    }
}

/// `POST /v1/forms/{id}:batchUpdate`: `createItem` (questions) and `updateFormInfo`.
async fn form_update(
    State(o): State<Office>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = id.strip_suffix(":batchUpdate").map(String::from) else {
        return not_found(&id);
    };
    let user = match o.caller(
        &headers,
        &[FORMS_BODY, DRIVE, DRIVE_FILE],
        "forms.googleapis.com",
        "google.apps.forms.v1.FormsService.BatchUpdateForm",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_of(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, form, _)) = f.forms.get_mut(&id).filter(|d| d.0 == user) else {
        return not_found(&id);
    };
    let mut work = form.clone();
    let mut replies = Vec::new();
    for (i, r) in v["requests"].as_array().into_iter().flatten().enumerate() {
        if let Some(c) = r.get("createItem") {
            let mut item = c["item"].clone();
            let Some(q) = item["questionItem"]["question"].as_object_mut() else {
                return bad(&format!(
                    "Invalid requests[{i}].createItem: the sandbox creates question items"
                ));
            };
            let kinds = ["textQuestion", "choiceQuestion"]
                .iter()
                .filter(|k| q.contains_key(**k))
                .count();
            if kinds != 1 {
                return bad(&format!(
                    "Invalid requests[{i}].createItem: a question needs exactly one kind"
                ));
            }
            if let Some(ch) = q.get("choiceQuestion") {
                let typ = ch["type"].as_str().unwrap_or("");
                if !["RADIO", "CHECKBOX", "DROP_DOWN"].contains(&typ)
                    || ch["options"].as_array().is_none_or(|o| o.is_empty())
                {
                    return bad(&format!("Invalid requests[{i}].createItem: a choice question needs a type and options"));
                }
            }
            let qid = format!("{:08x}", rand::random::<u32>());
            q.insert("questionId".into(), json!(qid));
            let item_id = format!("{:08x}", rand::random::<u32>());
            item["itemId"] = json!(item_id);
            let items = work["items"].as_array_mut();
            if let Some(items) = items {
                let at = c["location"]["index"]
                    .as_u64()
                    .map_or(items.len(), |n| n as usize);
                if at > items.len() {
                    return bad(&format!(
                        "Invalid requests[{i}].createItem: location.index is past the end"
                    ));
                }
                items.insert(at, item);
            }
            replies.push(json!({"createItem": {"itemId": item_id, "questionId": [qid]}}));
        } else if let Some(c) = r.get("updateFormInfo") {
            for field in c["updateMask"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
            {
                work["info"][field] = c["info"][field].clone();
            }
            replies.push(json!({}));
        } else {
            return bad(&format!("Invalid requests[{i}]: this request kind is not one the sandbox serves (createItem, updateFormInfo)"));
        }
    }
    let rev = work["revisionId"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(1)
        + 1;
    work["revisionId"] = json!(format!("{rev:08}"));
    *form = work;
    Json(json!({"form": null, "replies": replies, "writeControl": {"requiredRevisionId": format!("{rev:08}")}}))
        .into_response()
}

async fn responses(
    State(o): State<Office>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match o.caller(
        &headers,
        &[
            FORMS_RESPONSES,
            DRIVE,
            DRIVE_FILE,
            "https://www.googleapis.com/auth/drive.readonly",
        ],
        "forms.googleapis.com",
        "google.apps.forms.v1.FormsService.ListFormResponses",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let size = q
        .get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(5000)
        .clamp(1, 5000);
    let from = q
        .get("pageToken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, _, list)) = f.forms.get(&id).filter(|d| d.0 == user) else {
        return not_found(&id);
    };
    let page: Vec<Value> = list.iter().skip(from).take(size).cloned().collect();
    let mut out = json!({});
    if !page.is_empty() {
        out["responses"] = json!(page);
    }
    if from + size < list.len() {
        out["nextPageToken"] = json!((from + size).to_string());
    }
    Json(out).into_response()
}

/// `GET /v1/forms/{formId}/responses/{responseId}`.
async fn response_get(
    State(o): State<Office>,
    headers: HeaderMap,
    Path((id, rid)): Path<(String, String)>,
) -> Response {
    let user = match o.caller(
        &headers,
        &[FORMS_RESPONSES, DRIVE, DRIVE_FILE],
        "forms.googleapis.com",
        "google.apps.forms.v1.FormsService.GetFormResponse",
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, _, list)) = f.forms.get(&id).filter(|d| d.0 == user) else {
        return not_found(&id);
    };
    match list.iter().find(|r| r["responseId"] == rid.as_str()) {
        Some(r) => Json(r.clone()).into_response(),
        None => not_found(&rid),
    }
}

/// Admin: a respondent submits `{"answers": {questionId: ["text", ...]}}`.
async fn respond(
    State(o): State<Office>,
    Path(id): Path<String>,
    Json(v): Json<Value>,
) -> Response {
    let now = o.now();
    let Ok(mut f) = o.files.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some((_, form, list)) = f.forms.get_mut(&id) else {
        return not_found(&id);
    };
    let questions: Vec<String> = form["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["questionItem"]["question"]["questionId"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let mut answers = serde_json::Map::new();
    for (qid, values) in v["answers"].as_object().into_iter().flatten() {
        if !questions.contains(qid) {
            return bad(&format!("no question {qid} in this form"));
        }
        let values: Vec<Value> = values
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| json!({"value": x}))
            .collect();
        answers.insert(
            qid.clone(),
            json!({"questionId": qid, "textAnswers": {"answers": values}}),
        );
    }
    let response = json!({"formId": id, "responseId": format!("ACYDBN{:016x}", rand::random::<u64>()),
        "createTime": now, "lastSubmittedTime": now, "answers": answers});
    list.push(response.clone());
    (StatusCode::CREATED, Json(response)).into_response()
}

pub fn router(o: Office) -> Router {
    Router::new()
        .route("/v1/documents", post(doc_create))
        .route("/v1/documents/:id", get(doc_get).post(doc_update))
        .route("/v4/spreadsheets", post(sheet_create))
        .route("/v4/spreadsheets/:id", get(sheet_get))
        .route(
            "/v4/spreadsheets/:id/values/:range",
            get(values).put(values).post(values),
        )
        .route("/v1/presentations", post(deck_create))
        .route("/v1/presentations/:id", get(deck_get).post(deck_update))
        .route("/v1/forms", post(form_create))
        .route("/v1/forms/:id", get(form_get).post(form_update))
        .route("/v1/forms/:id/responses", get(responses))
        .route("/v1/forms/:id/responses/:response", get(response_get))
        .route("/_sandbox/google/forms/:id/responses", post(respond))
        .with_state(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_names_a_sheet_and_a_cell() {
        assert_eq!(a1("Sheet1!B2:C3"), Some((Some("Sheet1".into()), 1, 1)));
        assert_eq!(a1("'Q4 plan'!A1"), Some((Some("Q4 plan".into()), 0, 0)));
        assert_eq!(a1("C10"), Some((None, 9, 2)));
        assert_eq!(a1("Sheet1"), Some((Some("Sheet1".into()), 0, 0)));
        assert_eq!(a1("Sheet1!AA1"), Some((Some("Sheet1".into()), 0, 26)));
        assert_eq!(column(26), "AA");
        assert_eq!(column(0), "A");
    }
}
