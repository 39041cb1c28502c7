//! Tally's XML over HTTP: an `<ENVELOPE>` posted to the server an office's Tally runs (port
//! 9000 by default), an `<ENVELOPE>` back, in UTF-8 or UTF-16 (Tally answers in UTF-16 when
//! set to Unicode). Every request goes through the fleet's upstream client, so the egress
//! policy decides which addresses a tenant's Tally may be at. A server that cannot be
//! reached is the document's error: `Failed to connect to Tally server`, `CONNECTION_TIMEOUT`.
use std::time::Duration;

use bac_runtime::{
    upstream::{RetryPolicy, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode, ServiceError,
};
use quick_xml::{events::Event, Reader};

/// What the document says when Tally cannot be reached.
pub const UNREACHABLE: &str = "Failed to connect to Tally server";
pub const UNREACHABLE_SUGGESTION: &str = "Check if Tally server is running on specified port";

/// The `List of Companies` collection: the companies open in Tally.
pub const LIST_OF_COMPANIES: &str = "<ENVELOPE>\
<HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST><TYPE>Collection</TYPE><ID>List of Companies</ID></HEADER>\
<BODY><DESC><STATICVARIABLES><SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT></STATICVARIABLES>\
<TDL><TDLMESSAGE><COLLECTION NAME=\"List of Companies\" ISMODIFY=\"No\"><TYPE>Company</TYPE><FETCH>NAME, GUID, STARTINGFROM</FETCH></COLLECTION></TDLMESSAGE></TDL>\
</DESC></BODY></ENVELOPE>";

/// A company open in Tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub name: String,
    pub guid: String,
}

/// Posts envelopes to Tally servers.
#[derive(Clone)]
pub struct TallyClient {
    http: UpstreamClient,
}

fn unreachable(detail: &str) -> ServiceError {
    tracing::info!(detail, "Tally server not reached");
    ServiceError::new("tally", ErrorCode::ConnectionTimeout, UNREACHABLE)
        .suggest(UNREACHABLE_SUGGESTION)
}

impl TallyClient {
    pub fn new(egress: bac_runtime::upstream::egress::EgressPolicy, timeout: Duration) -> Self {
        let policy = RetryPolicy {
            deadline: timeout,
            ..RetryPolicy::default()
        };
        TallyClient {
            http: UpstreamClient::new("tally", None, policy, egress),
        }
    }

    pub fn egress(&self) -> &bac_runtime::upstream::egress::EgressPolicy {
        self.http.egress()
    }

    /// Posts `envelope` to the Tally server at `host:port`; its answer as text.
    pub async fn post(
        &self,
        host: &str,
        port: u16,
        envelope: &str,
        operation: &str,
    ) -> Result<String, ServiceError> {
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: format!("http://{host}:{port}/"),
            headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
            body: Some(envelope.as_bytes().to_vec()),
            // an export changes nothing: safe to send again
            idempotent: true,
            operation: operation.into(),
            quota: None,
        };
        let resp = self.http.send(&req).await.map_err(|e| match e {
            UpstreamError::Connect { .. } | UpstreamError::Timeout { .. } => {
                unreachable(&e.to_string())
            }
            UpstreamError::AddressNotAllowed(r) => {
                ServiceError::new("tally", ErrorCode::UpstreamAddressNotAllowed, r.to_string())
            }
            other => ServiceError::new(
                "tally",
                ErrorCode::UpstreamUnavailable,
                format!("the Tally server did not answer: {other}"),
            ),
        })?;
        if !resp.status.is_success() {
            return Err(ServiceError::new(
                "tally",
                ErrorCode::UpstreamUnavailable,
                format!("the Tally server answered HTTP {}", resp.status.as_u16()),
            ));
        }
        let charset = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("charset="))
                    .map(|c| c.trim_matches('"').to_ascii_lowercase())
            })
            .unwrap_or_default();
        let text = decode(&resp.body, &charset)?;
        if text.contains("Unknown Request, cannot be processed") {
            return Err(ServiceError::new(
                "tally",
                ErrorCode::UpstreamRejected,
                "Tally did not understand the request (Unknown Request, cannot be processed)",
            ));
        }
        Ok(text)
    }

    /// The companies the Tally server at `host:port` has open.
    pub async fn companies(&self, host: &str, port: u16) -> Result<Vec<Company>, ServiceError> {
        let text = self
            .post(host, port, LIST_OF_COMPANIES, "list_of_companies")
            .await?;
        parse_companies(&text)
    }
}

/// Tally's bytes as text: UTF-16 (by its byte-order mark, the content type's charset, or the
/// first character `<` as two bytes) or UTF-8. A UTF-16 answer cut in the middle of a
/// character is refused, not read short.
pub fn decode(body: &[u8], charset: &str) -> Result<String, ServiceError> {
    fn utf16(bytes: &[u8], le: bool) -> Result<String, ServiceError> {
        if !bytes.len().is_multiple_of(2) {
            return Err(ServiceError::new(
                "tally",
                ErrorCode::UpstreamRejected,
                "Tally's UTF-16 answer ends in the middle of a character (cut off?)",
            ));
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        Ok(String::from_utf16_lossy(&units))
    }
    match body {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => Ok(String::from_utf8_lossy(rest).into_owned()),
        _ if charset == "utf-16be" => utf16(body, false),
        _ if charset.starts_with("utf-16") => utf16(body, true),
        [b'<', 0, ..] => utf16(body, true),
        [0, b'<', ..] => utf16(body, false),
        _ => Ok(String::from_utf8_lossy(body).into_owned()),
    }
}

/// The `<COMPANY>` elements of a collection export. A field's text is everything inside it:
/// quick-xml hands `R&amp;D` over as text, an entity reference and text again. An envelope
/// with `<LINEERROR>` or `<STATUS>0</STATUS>` is Tally refusing, said with Tally's words.
pub fn parse_companies(text: &str) -> Result<Vec<Company>, ServiceError> {
    let bad = |why: String| {
        ServiceError::new(
            "tally",
            ErrorCode::UpstreamRejected,
            format!("Tally's answer is not the company list it was asked for: {why}"),
        )
    };
    let mut reader = Reader::from_str(text);
    let mut out = Vec::new();
    let mut current: Option<Company> = None;
    let mut path: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut saw_envelope = false;
    let mut line_error = String::new();
    let mut status = String::new();
    let attr_name = |e: &quick_xml::events::BytesStart<'_>| {
        e.try_get_attribute("NAME")
            .ok()
            .flatten()
            .and_then(|a| a.unescape_value().ok())
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_uppercase();
                saw_envelope |= name == "ENVELOPE";
                if name == "COMPANY" {
                    current = Some(Company {
                        name: attr_name(&e),
                        guid: String::new(),
                    });
                }
                path.push(name);
                buf.clear();
            }
            Event::Empty(e) if e.name().as_ref().eq_ignore_ascii_case(b"COMPANY") => {
                let name = attr_name(&e);
                if !name.is_empty() {
                    out.push(Company {
                        name,
                        guid: String::new(),
                    });
                }
            }
            Event::Text(t) => buf.push_str(&t.decode().map_err(|e| bad(e.to_string()))?),
            Event::CData(t) => buf.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| bad(e.to_string()))?;
                let resolved = match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => s.to_string(),
                    None => match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => format!("&{name};"),
                    },
                };
                buf.push_str(&resolved);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let value = buf.trim().to_string();
                match name.as_str() {
                    "LINEERROR" => line_error = value,
                    "STATUS" if path.last().is_some_and(|p| p == "HEADER") => status = value,
                    "NAME" => {
                        if let Some(c) = current.as_mut().filter(|c| c.name.is_empty()) {
                            c.name = value;
                        }
                    }
                    "GUID" => {
                        if let Some(c) = current.as_mut() {
                            c.guid = value;
                        }
                    }
                    "COMPANY" => {
                        if let Some(c) = current.take().filter(|c| !c.name.is_empty()) {
                            out.push(c);
                        }
                    }
                    _ => {}
                }
                buf.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !line_error.is_empty() || status == "0" {
        return Err(ServiceError::new(
            "tally",
            ErrorCode::UpstreamRejected,
            format!(
                "Tally refused the request: {}",
                if line_error.is_empty() {
                    "status 0"
                } else {
                    &line_error
                }
            ),
        ));
    }
    if !saw_envelope {
        return Err(bad("no ENVELOPE".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companies_are_read_from_utf8_and_utf16_answers() {
        let xml = "<ENVELOPE><BODY><DATA><COLLECTION>\
            <COMPANY NAME=\"R&amp;D India\"><NAME TYPE=\"String\">R&amp;D India</NAME><GUID>g-1</GUID></COMPANY>\
            <COMPANY NAME=\"Demo Company\"><GUID>g-2</GUID></COMPANY>\
            </COLLECTION></DATA></BODY></ENVELOPE>";
        let want = vec![
            Company {
                name: "R&D India".into(),
                guid: "g-1".into(),
            },
            Company {
                name: "Demo Company".into(),
                guid: "g-2".into(),
            },
        ];
        assert_eq!(parse_companies(xml).unwrap(), want);
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(xml.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(parse_companies(&decode(&utf16, "").unwrap()).unwrap(), want);
        let bare_le: Vec<u8> = xml.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(
            parse_companies(&decode(&bare_le, "utf-16").unwrap()).unwrap(),
            want
        );
        assert_eq!(
            parse_companies(&decode(&bare_le, "").unwrap()).unwrap(),
            want
        );
        let bare_be: Vec<u8> = xml.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(
            parse_companies(&decode(&bare_be, "utf-16be").unwrap()).unwrap(),
            want
        );
        assert!(decode(&bare_le[..bare_le.len() - 1], "utf-16").is_err());
        // no NAME attribute: the name is the element's whole text, entities and all
        let no_attr = "<ENVELOPE><COLLECTION><COMPANY><NAME>R&amp;D &#38; Sons</NAME><GUID>g</GUID></COMPANY><COMPANY NAME=\"Solo\"/></COLLECTION></ENVELOPE>";
        let got = parse_companies(no_attr).unwrap();
        assert_eq!(got[0].name, "R&D & Sons");
        assert_eq!(got[1].name, "Solo");
        let refused = "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>0</STATUS></HEADER><BODY><DATA><LINEERROR>Could not find Company 'X'</LINEERROR></DATA></BODY></ENVELOPE>";
        assert!(parse_companies(refused)
            .unwrap_err()
            .message
            .contains("Could not find Company 'X'"));
        assert!(parse_companies("<RESPONSE>TallyPrime Server is Running</RESPONSE>").is_err());
        assert!(parse_companies("<ENVELOPE><COMPANY").is_err());
    }
}
