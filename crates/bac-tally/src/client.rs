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
        let charset_utf16 = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("utf-16"));
        let text = decode(&resp.body, charset_utf16);
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

/// Tally's bytes as text: UTF-16 (little- or big-endian, by its byte-order mark, or as the
/// content type says) or UTF-8.
pub fn decode(body: &[u8], charset_utf16: bool) -> String {
    let units = |bytes: &[u8], le: bool| -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect()
    };
    match body {
        [0xFF, 0xFE, rest @ ..] => String::from_utf16_lossy(&units(rest, true)),
        [0xFE, 0xFF, rest @ ..] => String::from_utf16_lossy(&units(rest, false)),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ if charset_utf16 => String::from_utf16_lossy(&units(body, true)),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// The `<COMPANY>` elements of a collection export.
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
    let mut field = String::new();
    let mut saw_envelope = false;
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_uppercase();
                saw_envelope |= name == "ENVELOPE";
                if name == "COMPANY" {
                    let attr = e
                        .try_get_attribute("NAME")
                        .ok()
                        .flatten()
                        .and_then(|a| a.unescape_value().ok())
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    current = Some(Company {
                        name: attr,
                        guid: String::new(),
                    });
                }
                field = name;
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    let value = t.decode().map_err(|e| bad(e.to_string()))?;
                    let value = quick_xml::escape::unescape(&value)
                        .map_err(|e| bad(e.to_string()))?
                        .trim()
                        .to_string();
                    match field.as_str() {
                        "NAME" if c.name.is_empty() => c.name = value,
                        "GUID" => c.guid = value,
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                if e.name().as_ref().eq_ignore_ascii_case(b"COMPANY") {
                    if let Some(c) = current.take().filter(|c| !c.name.is_empty()) {
                        out.push(c);
                    }
                }
                field.clear();
            }
            Event::Eof => break,
            _ => {}
        }
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
        assert_eq!(parse_companies(&decode(&utf16, false)).unwrap(), want);
        let bare_utf16: Vec<u8> = xml.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(parse_companies(&decode(&bare_utf16, true)).unwrap(), want);
        assert!(parse_companies("<RESPONSE>TallyPrime Server is Running</RESPONSE>").is_err());
        assert!(parse_companies("<ENVELOPE><COMPANY").is_err());
    }
}
