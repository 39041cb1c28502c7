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

use crate::{
    agent::{via_agent, Agents},
    xml,
};
use bac_runtime::connections::ConnectionRecord;

/// What the document says when Tally cannot be reached.
pub const UNREACHABLE: &str = "Failed to connect to Tally server";
pub const UNREACHABLE_SUGGESTION: &str = "Check if Tally server is running on specified port";

/// The `List of Companies` collection: the companies open in Tally.
pub const LIST_OF_COMPANIES: &str = "<ENVELOPE>\
<HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST><TYPE>Collection</TYPE><ID>List of Companies</ID></HEADER>\
<BODY><DESC><STATICVARIABLES><SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT></STATICVARIABLES>\
<TDL><TDLMESSAGE><COLLECTION NAME=\"List of Companies\" ISMODIFY=\"No\"><TYPE>Company</TYPE><FETCH>NAME, GUID, STARTINGFROM, ALTMSTID, ALTVCHID</FETCH></COLLECTION></TDLMESSAGE></TDL>\
</DESC></BODY></ENVELOPE>";

/// A company open in Tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub name: String,
    pub guid: String,
    /// The last ALTERID given to a master (`$AltMstId`), and to a voucher (`$AltVchId`).
    pub alt_mst_id: i64,
    pub alt_vch_id: i64,
}

/// Posts envelopes to Tally servers: straight to one the fleet can reach, or through the
/// configuration's agent ([`crate::agent`]).
#[derive(Clone)]
pub struct TallyClient {
    http: UpstreamClient,
    agents: Option<Agents>,
    timeout: Duration,
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
            agents: None,
            timeout,
        }
    }

    pub fn agents(&self) -> Option<&Agents> {
        self.agents.as_ref()
    }

    /// Reaches configurations in agent mode through `agents`.
    pub fn with_agents(mut self, agents: Agents) -> Self {
        self.agents = Some(agents);
        self
    }

    /// Posts `envelope` to the configuration's Tally, directly or through its agent; the
    /// answer as text.
    pub async fn post_to(
        &self,
        rec: &ConnectionRecord,
        envelope: &str,
        operation: &str,
        idempotent: bool,
    ) -> Result<String, ServiceError> {
        if !via_agent(rec) {
            let (host, port) = crate::connector::server(rec);
            return self
                .post(&host, port, envelope, operation, idempotent)
                .await;
        }
        let agents = self.agents.as_ref().ok_or_else(|| {
            ServiceError::new("tally", ErrorCode::NotImplemented, "no agent registry here")
        })?;
        if rec.id.is_empty() {
            return Err(ServiceError::new(
                "tally",
                ErrorCode::InvalidRequest,
                "settings in agent mode are tested once saved: the agent serves a saved configuration",
            ));
        }
        let resp = agents
            .send(rec, envelope.as_bytes(), operation, self.timeout)
            .await?;
        if resp.status == 0 {
            return Err(unreachable(&format!("through the agent: {}", resp.error)));
        }
        answer(
            u16::try_from(resp.status).unwrap_or(0),
            &resp.content_type,
            &resp.body,
        )
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
        idempotent: bool,
    ) -> Result<String, ServiceError> {
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: format!("http://{host}:{port}/"),
            headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
            body: Some(envelope.as_bytes().to_vec()),
            // an export changes nothing and is safe to send again; an import is not
            idempotent,
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
        let content_type = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        answer(resp.status.as_u16(), content_type, &resp.body)
    }

    /// The companies the configuration's Tally has open.
    pub async fn companies(&self, rec: &ConnectionRecord) -> Result<Vec<Company>, ServiceError> {
        let text = self
            .post_to(rec, LIST_OF_COMPANIES, "list_of_companies", true)
            .await?;
        parse_companies(&text)
    }

    /// An export of a collection ([`xml::export_collection`]).
    pub async fn export(
        &self,
        rec: &ConnectionRecord,
        envelope: &str,
        operation: &str,
    ) -> Result<xml::Collection, ServiceError> {
        let text = self.post_to(rec, envelope, operation, true).await?;
        xml::parse_collection(&text)
    }

    /// An import ([`xml::import`]): Tally's counts and line errors. Sent once: whether a lost
    /// answer's import happened is for the caller to find out (by the GUID it gave).
    pub async fn import(
        &self,
        rec: &ConnectionRecord,
        envelope: &str,
        operation: &str,
    ) -> Result<xml::ImportResult, ServiceError> {
        let text = self.post_to(rec, envelope, operation, false).await?;
        xml::parse_import(&text)
    }
}

/// Tally's HTTP answer as text, or Tally refusing: a status other than 2xx, an answer that
/// is not text, `Unknown Request, cannot be processed`.
fn answer(status: u16, content_type: &str, body: &[u8]) -> Result<String, ServiceError> {
    if !(200..300).contains(&status) {
        return Err(ServiceError::new(
            "tally",
            ErrorCode::UpstreamUnavailable,
            format!("the Tally server answered HTTP {status}"),
        ));
    }
    let charset = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_ascii_lowercase())
        .unwrap_or_default();
    let text = decode(body, &charset)?;
    if text.contains("Unknown Request, cannot be processed") {
        return Err(ServiceError::new(
            "tally",
            ErrorCode::UpstreamRejected,
            "Tally did not understand the request (Unknown Request, cannot be processed)",
        ));
    }
    Ok(text)
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

/// The `<COMPANY>` elements of a collection export (the typed envelope of [`crate::xml`]);
/// an envelope with `<LINEERROR>` or `<STATUS>0</STATUS>` is Tally refusing, said with
/// Tally's words.
pub fn parse_companies(text: &str) -> Result<Vec<Company>, ServiceError> {
    let collection = xml::parse_collection(text).map_err(|e| {
        if e.message.starts_with("Tally's answer is not") {
            ServiceError::new(
                "tally",
                ErrorCode::UpstreamRejected,
                "Tally's answer is not the company list it was asked for",
            )
        } else {
            e
        }
    })?;
    Ok(collection
        .companies
        .iter()
        .map(|c| Company {
            name: c.name(),
            guid: c.guid.trimmed().to_string(),
            alt_mst_id: c.alt_mst_id.number().unwrap_or(0),
            alt_vch_id: c.alt_vch_id.number().unwrap_or(0),
        })
        .filter(|c| !c.name.is_empty())
        .collect())
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
                alt_mst_id: 0,
                alt_vch_id: 0,
            },
            Company {
                name: "Demo Company".into(),
                guid: "g-2".into(),
                alt_mst_id: 0,
                alt_vch_id: 0,
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
        let no_attr = "<ENVELOPE><BODY><DATA><COLLECTION><COMPANY><NAME>R&amp;D &#38; Sons</NAME><GUID>g</GUID><ALTVCHID TYPE=\"Number\"> 42</ALTVCHID></COMPANY><COMPANY NAME=\"Solo\"/></COLLECTION></DATA></BODY></ENVELOPE>";
        let got = parse_companies(no_attr).unwrap();
        assert_eq!(got[0].name, "R&D & Sons");
        assert_eq!(got[0].alt_vch_id, 42);
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
