//! The Tally sandbox: TallyPrime's XML server as an office's Tally runs it (`F1 > Settings >
//! Connectivity`, "TallyPrime acts as Server", port 9000): `GET /` answers that the server is
//! running; `POST /` takes an `<ENVELOPE>` and answers one. Served today: the Export of the
//! `List of Companies` collection (the companies open in Tally, with their GUID and books'
//! start), any other request answered as Tally answers what it does not know
//! (`<RESPONSE>Unknown Request, cannot be processed</RESPONSE>`). Answers are UTF-8, or UTF-16
//! (little-endian, with a byte-order mark) as Tally sends when asked for Unicode or set so
//! (`POST /_sandbox/tally/encoding {"encoding": "utf-16"}`). Companies are opened and closed
//! with `POST /_sandbox/tally/companies {"open": [...]}`. Masters, vouchers and ALTERIDs come
//! with the sync (issue 17).
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use quick_xml::{events::Event, Reader};
use serde_json::{json, Value};

/// A company open in Tally.
#[derive(Debug, Clone)]
pub struct Company {
    pub name: String,
    pub guid: String,
    /// The books' first day, `YYYYMMDD` as Tally writes dates.
    pub starting_from: String,
}

/// What the sandbox starts with.
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

#[derive(Clone)]
struct Tally {
    state: Arc<Mutex<TallySandboxConfig>>,
}

/// The request's `TALLYREQUEST`, `TYPE` and `ID`.
fn header_of(body: &str) -> Option<(String, String, String)> {
    let mut reader = Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let (mut request, mut ty, mut id) = (String::new(), String::new(), String::new());
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(String::from_utf8_lossy(e.name().as_ref()).to_ascii_uppercase())
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let text = t.decode().ok()?.trim().to_string();
                match path.join("/").as_str() {
                    "ENVELOPE/HEADER/TALLYREQUEST" => request = text,
                    "ENVELOPE/HEADER/TYPE" => ty = text,
                    "ENVELOPE/HEADER/ID" => id = text,
                    _ => {}
                }
            }
            Ok(Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
    }
    (path.is_empty() && !request.is_empty()).then_some((request, ty, id))
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The envelope of a collection export.
fn companies_answer(companies: &[Company]) -> String {
    let mut out = String::from(
        "<ENVELOPE>\r\n <HEADER>\r\n  <VERSION>1</VERSION>\r\n  <STATUS>1</STATUS>\r\n </HEADER>\r\n <BODY>\r\n  <DESC></DESC>\r\n  <DATA>\r\n   <COLLECTION>\r\n",
    );
    for c in companies {
        let name = escape(&c.name);
        out.push_str(&format!(
            "    <COMPANY NAME=\"{name}\" RESERVEDNAME=\"\">\r\n     <NAME TYPE=\"String\">{name}</NAME>\r\n     <GUID TYPE=\"String\">{}</GUID>\r\n     <STARTINGFROM TYPE=\"Date\">{}</STARTINGFROM>\r\n    </COMPANY>\r\n",
            escape(&c.guid),
            escape(&c.starting_from)
        ));
    }
    out.push_str("   </COLLECTION>\r\n  </DATA>\r\n </BODY>\r\n</ENVELOPE>\r\n");
    out
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

async fn request(State(t): State<Tally>, body: Bytes) -> Response {
    let cfg = t.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let text = decode(&body);
    let answer = match header_of(&text) {
        Some((req, ty, id))
            if req.eq_ignore_ascii_case("Export")
                && ty.eq_ignore_ascii_case("Collection")
                && id.eq_ignore_ascii_case("List of Companies") =>
        {
            companies_answer(&cfg.companies)
        }
        _ => "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>".to_string(),
    };
    encoded(&answer, cfg.utf16)
}

/// A request's text: clients send UTF-8, or UTF-16 with a byte-order mark.
fn decode(body: &[u8]) -> String {
    match body {
        [0xFF, 0xFE, rest @ ..] => String::from_utf16_lossy(
            &rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        ),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

async fn companies(State(t): State<Tally>, Json(req): Json<Value>) -> Response {
    let Some(open) = req["open"].as_array() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "open: [names] is required"})),
        )
            .into_response();
    };
    let mut s = t.state.lock().unwrap_or_else(|e| e.into_inner());
    s.companies = open
        .iter()
        .filter_map(Value::as_str)
        .enumerate()
        .map(|(i, name)| Company {
            name: name.to_string(),
            guid: format!("00000000-0000-4000-8000-{i:012}"),
            starting_from: "20240401".into(),
        })
        .collect();
    StatusCode::NO_CONTENT.into_response()
}

async fn encoding(State(t): State<Tally>, Json(req): Json<Value>) -> StatusCode {
    t.state.lock().unwrap_or_else(|e| e.into_inner()).utf16 = req["encoding"]
        .as_str()
        .is_some_and(|e| e.eq_ignore_ascii_case("utf-16"));
    StatusCode::NO_CONTENT
}

/// The sandbox's router.
pub fn router(cfg: TallySandboxConfig) -> Router {
    let t = Tally {
        state: Arc::new(Mutex::new(cfg)),
    };
    Router::new()
        .route(
            "/",
            get(|| async { "<RESPONSE>TallyPrime Server is Running</RESPONSE>" }).post(request),
        )
        .route("/_sandbox/tally/companies", post(companies))
        .route("/_sandbox/tally/encoding", post(encoding))
        .with_state(t)
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
    fn a_company_list_request_is_read_and_answered() {
        let req = "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST><TYPE>Collection</TYPE><ID>List of Companies</ID></HEADER><BODY/></ENVELOPE>";
        assert_eq!(
            header_of(req),
            Some((
                "Export".into(),
                "Collection".into(),
                "List of Companies".into()
            ))
        );
        assert_eq!(header_of("<ENVELOPE><HEADER>"), None);
        let answer = companies_answer(&[Company {
            name: "R&D <India>".into(),
            guid: "g".into(),
            starting_from: "20240401".into(),
        }]);
        assert!(
            answer.contains("NAME=\"R&amp;D &lt;India&gt;\""),
            "{answer}"
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("<A/>".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode(&utf16), "<A/>");
    }
}
