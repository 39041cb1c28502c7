//! The Tally sandbox: TallyPrime's XML server as an office's Tally runs it (`F1 > Settings >
//! Connectivity`, "TallyPrime acts as Server", port 9000). `GET /` answers that the server is
//! running; `POST /` takes an `<ENVELOPE>` and answers one ([`envelope`]):
//!
//! - `Export` of a `Collection` defined in the request: companies (with `$AltMstId` and
//!   `$AltVchId`), groups, ledgers, cost centres, stock items and vouchers of the company
//!   `SVCURRENTCOMPANY` names ([`books`]), filtered by the request's formulae (`$AlterID`,
//!   `$MasterID`, `$GUID`, `$Name`, fields), vouchers within `SVFROMDATE`-`SVTODATE` (the
//!   current financial year without them), only the fields fetched (nothing at all when a
//!   `FETCH` names a field the object does not have, as Tally does).
//! - `Import Data` (and TallyPrime's `Import`/`Data`) of vouchers and ledgers: Create, Alter,
//!   Cancel, Delete, checked as Tally checks them and refused with its line errors.
//! - `Export` of an `Object` (`SUBTYPE Ledger`, `ID` its name) and of the `Day Book` /
//!   `Voucher Register` reports as data (the period's vouchers in the import format).
//! - anything else: `<RESPONSE>Unknown Request, cannot be processed</RESPONSE>`.
//!
//! Answers are UTF-8, or UTF-16 (little-endian, with a byte-order mark) when the request
//! came in UTF-16 or the sandbox is set so (`POST /_sandbox/tally/encoding {"encoding":
//! "utf-16"}`). Admin routes under `/_sandbox/tally/`: `companies` (`{"open": [...]}`),
//! `vouchers` (`{"count": n}` adds balanced vouchers, as an office keying them in), `objects`
//! (`{"action": "alter"|"delete", "guid": ...}`: a change made in Tally), `stats`, and the
//! kit's `faults` and `calls` (protocol `xml`, model the collection type or import report,
//! method `export` or `import`).
pub mod books;
pub mod envelope;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bac_sandbox_kit::faults::{self, Call, Faults};
use serde_json::{json, Value};

use books::{Books, Entry, Kind, VoucherIn};

/// A company open in Tally.
#[derive(Debug, Clone)]
pub struct Company {
    pub name: String,
    pub guid: String,
    /// The books' first day, `YYYYMMDD` as Tally writes dates.
    pub starting_from: String,
}

/// What the sandbox starts with: each company gets Tally's groups and a few masters and
/// vouchers.
#[derive(Debug, Clone)]
pub struct TallySandboxConfig {
    pub companies: Vec<Company>,
    pub utf16: bool,
}

impl Default for TallySandboxConfig {
    fn default() -> Self {
        TallySandboxConfig {
            companies: vec![Company {
                name: "Demo Company".into(),
                guid: "7b1c7a3e-5d2f-4e8a-9b61-0c3d2e1f4a5b".into(),
                starting_from: "20240401".into(),
            }],
            utf16: false,
        }
    }
}

struct State_ {
    books: Vec<Books>,
    utf16: bool,
}

#[derive(Clone)]
struct Tally {
    state: Arc<Mutex<State_>>,
    faults: Arc<Faults>,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

/// Tally's bytes: UTF-8, or UTF-16LE with its byte-order mark.
fn encoded(text: &str, utf16: bool) -> Response {
    if !utf16 {
        return (
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            text.to_string(),
        )
            .into_response();
    }
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-16")], bytes).into_response()
}

/// A request's text: UTF-8, or UTF-16 (with a byte-order mark, or without one as some
/// clients send it); whether it was UTF-16.
fn decode(body: &[u8]) -> (String, bool) {
    let utf16 = |b: &[u8]| {
        String::from_utf16_lossy(
            &b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
    };
    match body {
        [0xFF, 0xFE, rest @ ..] => (utf16(rest), true),
        [b'<', 0, ..] => (utf16(body), true),
        _ => (String::from_utf8_lossy(body).into_owned(), false),
    }
}

const UNKNOWN: &str = "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>";

/// The books a request names (`SVCURRENTCOMPANY`), or the first open company.
fn company<'a>(all: &'a mut [Books], named: &str) -> Result<&'a mut Books, String> {
    if named.is_empty() {
        return all
            .iter_mut()
            .find(|b| b.open)
            .ok_or_else(|| "No company is open".to_string());
    }
    all.iter_mut()
        .find(|b| b.open && b.name.eq_ignore_ascii_case(named.trim()))
        .ok_or_else(|| format!("Could not set 'SVCurrentCompany' to '{named}'"))
}

/// What the request is, for the fault rules: (model, method).
fn describe(e: &envelope::Envelope) -> (String, &'static str) {
    let request = e.request().to_ascii_lowercase();
    if request.starts_with("import") {
        let report = if e.report().is_empty() {
            e.id()
        } else {
            e.report()
        };
        (report, "import")
    } else {
        let kind = e
            .collection()
            .and_then(|(c, _)| c.kind.as_ref().map(|k| k.text.trim().to_string()))
            .unwrap_or_else(|| e.id());
        (kind, "export")
    }
}

fn answer(t: &Tally, text: &str) -> String {
    let Ok(e) = envelope::parse(text) else {
        return UNKNOWN.to_string();
    };
    let request = e.request().to_ascii_lowercase();
    let mut s = t.lock();
    if request == "export" && e.kind().eq_ignore_ascii_case("collection") {
        let Some((def, formulae)) = e.collection() else {
            if e.id().eq_ignore_ascii_case("List of Companies") {
                return envelope::companies(&s.books);
            }
            return UNKNOWN.to_string();
        };
        let kind_name = def
            .kind
            .as_ref()
            .map(|k| k.text.trim().to_string())
            .unwrap_or_default();
        if kind_name.eq_ignore_ascii_case("company") {
            return envelope::companies(&s.books);
        }
        let Some(kind) = Kind::parse(&kind_name) else {
            return envelope::refusal(&format!("Unknown collection type '{kind_name}'"));
        };
        let named = e.company();
        return match company(&mut s.books, &named) {
            Ok(books) => envelope::export(books, kind, def, &formulae, e.period(), &today()),
            Err(msg) => envelope::refusal(&msg),
        };
    }
    if request == "export" && e.kind().eq_ignore_ascii_case("object") {
        let Some(kind) = Kind::parse(&e.subtype()) else {
            return envelope::refusal(&format!("Unknown object type '{}'", e.subtype()));
        };
        return match company(&mut s.books, &e.company()) {
            Ok(books) => envelope::object(books, kind, &e.id()),
            Err(msg) => envelope::refusal(&msg),
        };
    }
    if request == "export"
        && e.kind().eq_ignore_ascii_case("data")
        && ["day book", "voucher register"].contains(&e.id().to_ascii_lowercase().as_str())
    {
        return match company(&mut s.books, &e.company()) {
            Ok(books) => envelope::voucher_report(books, e.period(), &today()),
            Err(msg) => envelope::refusal(&msg),
        };
    }
    if request == "import data" || (request == "import" && e.kind().eq_ignore_ascii_case("data")) {
        let prime = request == "import";
        let named = e.company();
        let books = match company(&mut s.books, &named) {
            Ok(b) => b,
            Err(msg) => {
                return envelope::import_answer(
                    &books::Outcome {
                        errors: 1,
                        line_errors: vec![msg],
                        ..books::Outcome::default()
                    },
                    prime,
                )
            }
        };
        let mut outcome = books::Outcome::default();
        for m in e.messages() {
            for v in &m.vouchers {
                outcome.add(books.import_voucher(v.to_books()));
            }
            for l in &m.ledgers {
                outcome.add(books.import_ledger(l.to_books()));
            }
        }
        return envelope::import_answer(&outcome, prime);
    }
    UNKNOWN.to_string()
}

async fn request(State(t): State<Tally>, body: Bytes) -> Response {
    let (text, utf16_in) = decode(&body);
    let decision = match envelope::parse(&text) {
        Ok(e) => {
            let (model, method) = describe(&e);
            t.faults.decide(&Call {
                protocol: "xml",
                model: Some(&model),
                method: Some(method),
            })
        }
        Err(_) => Default::default(),
    };
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(f) = decision.failure.filter(|_| !decision.lose_response) {
        return (
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY),
            "Tally is not answering",
        )
            .into_response();
    }
    let out = answer(&t, &text);
    if let Some(f) = decision.failure {
        // it happened; the answer is lost
        return (
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY),
            "the answer was lost",
        )
            .into_response();
    }
    let utf16 = t.lock().utf16 || utf16_in;
    encoded(&out, utf16)
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

async fn companies(State(t): State<Tally>, Json(req): Json<Value>) -> Response {
    let Some(open) = req["open"].as_array() else {
        return bad("open: [names] is required");
    };
    let names: Vec<&str> = open.iter().filter_map(Value::as_str).collect();
    let mut s = t.lock();
    for b in s.books.iter_mut() {
        b.open = names.iter().any(|n| n.eq_ignore_ascii_case(&b.name));
    }
    for (i, name) in names.iter().enumerate() {
        if !s.books.iter().any(|b| b.name.eq_ignore_ascii_case(name)) {
            let guid = format!("00000000-0000-4000-8000-{:012}", i + s.books.len());
            s.books.push(Books::demo(name, &guid));
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn encoding(State(t): State<Tally>, Json(req): Json<Value>) -> StatusCode {
    t.lock().utf16 = req["encoding"]
        .as_str()
        .is_some_and(|e| e.eq_ignore_ascii_case("utf-16"));
    StatusCode::NO_CONTENT
}

/// Adds `count` balanced vouchers (sales to Acme Traders, receipts into Cash, in turn), as
/// an office keying them in.
async fn vouchers(State(t): State<Tally>, Json(req): Json<Value>) -> Response {
    let count = req["count"].as_u64().unwrap_or(0);
    if count == 0 || count > 1_000_000 {
        return bad("count: 1 to 1000000 is required");
    }
    let date = req["date"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(today);
    let mut s = t.lock();
    let named = req["company"].as_str().unwrap_or("");
    let books = match company(&mut s.books, named) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let created_before = books.imported_created;
    let narration = req["narration"].as_str().map(str::to_string);
    let mut guids = Vec::new();
    for i in 0..count {
        let amount = 10_000 * (100 + (i % 900) as i64);
        let (vtype, debit, credit) = if i % 2 == 0 {
            ("Sales", "Acme Traders", "Sales")
        } else {
            ("Receipt", "Cash", "Acme Traders")
        };
        let o = books.import_voucher(VoucherIn {
            action: "Create".into(),
            vch_type: vtype.into(),
            fields: [
                ("DATE".to_string(), date.clone()),
                (
                    "NARRATION".to_string(),
                    narration
                        .clone()
                        .unwrap_or_else(|| format!("keyed in #{i}")),
                ),
            ]
            .into_iter()
            .collect(),
            all_entries: vec![
                Entry {
                    ledger: debit.into(),
                    amount: -amount,
                },
                Entry {
                    ledger: credit.into(),
                    amount,
                },
            ],
            ..VoucherIn::default()
        });
        if let Some(e) = o.line_errors.first() {
            return bad(e.clone());
        }
        if count <= 100 {
            if let Some(v) = books.objects.last() {
                guids.push(v.guid.clone());
            }
        }
    }
    // keyed in, not imported
    books.imported_created = created_before;
    Json(json!({"created": count, "alt_vch_id": books.alt_vch_id, "guids": guids})).into_response()
}

/// A change made in Tally by hand: `alter` gives the object a new ALTERID (and the fields
/// given), `delete` removes it.
async fn objects(State(t): State<Tally>, Json(req): Json<Value>) -> Response {
    let guid = req["guid"].as_str().unwrap_or("");
    let mut s = t.lock();
    let named = req["company"].as_str().unwrap_or("");
    let books = match company(&mut s.books, named) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let Some(i) = books.find_guid(guid) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no object {guid}")})),
        )
            .into_response();
    };
    let kind = books.objects[i].kind;
    match req["action"].as_str() {
        Some("delete") => {
            books.remove(i);
            books.last_alter_id += 1;
        }
        Some("alter") => {
            books.last_alter_id += 1;
            let id = books.last_alter_id;
            let o = &mut books.objects[i];
            o.alter_id = id;
            if let Some(fields) = req["fields"].as_object() {
                for (k, v) in fields {
                    if let Some(v) = v.as_str() {
                        if k == "NAME" {
                            o.name = v.to_string();
                        } else {
                            o.fields.insert(k.to_ascii_uppercase(), v.to_string());
                        }
                    }
                }
            }
        }
        _ => return bad("action: alter or delete"),
    }
    books.reindex();
    if kind == Kind::Voucher {
        books.alt_vch_id = books.last_alter_id;
    } else {
        books.alt_mst_id = books.last_alter_id;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// An object as Tally has it (`?guid=`), or the GUIDs of the objects whose field has a value
/// (`?field=NARRATION&value=...`).
async fn read_objects(
    State(t): State<Tally>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut s = t.lock();
    let named = q.get("company").map(String::as_str).unwrap_or("");
    let books = match company(&mut s.books, named) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if let Some(guid) = q.get("guid") {
        return match books.find_guid(guid) {
            Some(i) => {
                let o = &books.objects[i];
                Json(json!({"guid": o.guid, "kind": o.kind.label(), "name": o.name,
                    "alter_id": o.alter_id, "master_id": o.master_id, "fields": o.fields,
                    "entries": o.entries.iter().map(|e| json!({"ledger": e.ledger, "amount": books::fmt_amount(e.amount)})).collect::<Vec<_>>()}))
                .into_response()
            }
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("no object {guid}")})),
            )
                .into_response(),
        };
    }
    let (Some(field), Some(value)) = (q.get("field"), q.get("value")) else {
        return bad("guid, or field and value, are required");
    };
    let guids: Vec<&str> = books
        .objects
        .iter()
        .filter(|o| o.field(&field.to_ascii_uppercase()) == value)
        .map(|o| o.guid.as_str())
        .collect();
    Json(json!({"guids": guids})).into_response()
}

async fn stats(
    State(t): State<Tally>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut s = t.lock();
    let named = q.get("company").map(String::as_str).unwrap_or("");
    let books = match company(&mut s.books, named) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let count = |k: Kind| books.objects.iter().filter(|o| o.kind == k).count();
    let mut guids: Vec<&str> = books
        .objects
        .iter()
        .filter(|o| o.kind == Kind::Voucher)
        .map(|o| o.guid.as_str())
        .collect();
    guids.sort_unstable();
    let distinct = {
        let mut g = guids.clone();
        g.dedup();
        g.len()
    };
    Json(json!({
        "company": books.name,
        "vouchers": count(Kind::Voucher),
        "distinct_voucher_guids": distinct,
        "ledgers": count(Kind::Ledger),
        "groups": count(Kind::Group),
        "stock_items": count(Kind::StockItem),
        "cost_centres": count(Kind::CostCentre),
        "alt_mst_id": books.alt_mst_id,
        "alt_vch_id": books.alt_vch_id,
        "imported_created": books.imported_created,
        "imported_altered": books.imported_altered,
    }))
    .into_response()
}

/// The sandbox's router.
pub fn router(cfg: TallySandboxConfig) -> Router {
    let t = Tally {
        state: Arc::new(Mutex::new(State_ {
            books: cfg
                .companies
                .iter()
                .map(|c| {
                    let mut b = Books::demo(&c.name, &c.guid);
                    b.starting_from.clone_from(&c.starting_from);
                    b
                })
                .collect(),
            utf16: cfg.utf16,
        })),
        faults: Arc::new(Faults::new(&["xml"], &[])),
    };
    Router::new()
        .route(
            "/",
            get(|| async { "<RESPONSE>TallyPrime Server is Running</RESPONSE>" }).post(request),
        )
        .route("/_sandbox/tally/companies", post(companies))
        .route("/_sandbox/tally/encoding", post(encoding))
        .route("/_sandbox/tally/vouchers", post(vouchers))
        .route("/_sandbox/tally/objects", post(objects).get(read_objects))
        .route("/_sandbox/tally/stats", get(stats))
        .with_state(t.clone())
        .merge(faults::routes("/_sandbox/tally", t.faults.clone()))
}

/// Serves the sandbox at `addr` (port 0 picks one).
pub async fn spawn_tally(
    cfg: TallySandboxConfig,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Tally sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = router(cfg);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "tally sandbox server stopped");
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_in_either_encoding() {
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("<A/>".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode(&utf16), ("<A/>".to_string(), true));
        let bare: Vec<u8> = "<A/>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(decode(&bare), ("<A/>".to_string(), true));
        assert_eq!(
            envelope::financial_year("20261205"),
            ("20260401".into(), "20270331".into())
        );
        assert_eq!(
            envelope::financial_year("20270105"),
            ("20260401".into(), "20270331".into())
        );
        let answer = envelope::companies(&[Books::demo("R&D <India>", "g")]);
        assert!(
            answer.contains("NAME=\"R&amp;D &lt;India&gt;\""),
            "{answer}"
        );
    }
}
