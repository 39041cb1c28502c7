//! The RFC 5322 message Gmail's `users.messages.send` takes as `raw` (base64url): built with
//! `mail-builder` from the documented body `{to, from, subject, body}` and its optional
//! parts (an HTML alternative, attachments, cc, bcc, reply-to), so headers are encoded and
//! lines folded as mail servers expect.
use bac_proto::google_workspace::v1::SendMessageRequest;
use bac_runtime::{ErrorCode, ServiceError};
use base64::Engine as _;
use mail_builder::{headers::address::Address, MessageBuilder};

/// Gmail takes messages up to 35 MB through `messages.send` (the simple upload's limit).
pub const MAX_MESSAGE_BYTES: usize = 35 * 1024 * 1024;

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::InvalidRequest, msg)
}

/// The addresses of a comma-separated list; each must look like one.
pub fn addresses(field: &str, list: &str) -> Result<Vec<String>, ServiceError> {
    let out: Vec<String> = list
        .split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    for a in &out {
        let ok = a.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !a.contains(char::is_whitespace)
        }) && !a.contains(['<', '>', '"', '\r', '\n']);
        if !ok {
            return Err(bad(format!("{field}: '{a}' is not an email address")));
        }
    }
    if out.len() > 500 {
        return Err(bad(format!("{field}: at most 500 recipients")));
    }
    Ok(out)
}

fn list(addrs: &[String]) -> Address<'static> {
    Address::new_list(
        addrs
            .iter()
            .map(|a| Address::new_address(None::<&str>, a.clone()))
            .collect(),
    )
}

/// The addresses of an address header (`Ada <ada@example.com>, bob@example.com` ->
/// `ada@example.com, bob@example.com`); display names are dropped.
pub fn header_addresses(value: &str) -> String {
    value
        .split(',')
        .map(|a| {
            let a = a.trim();
            match (a.rfind('<'), a.rfind('>')) {
                (Some(l), Some(r)) if l < r => a[l + 1..r].trim(),
                _ => a,
            }
        })
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What was built: the raw message and its `Message-ID`.
#[derive(Debug, Clone)]
pub struct Built {
    pub raw: Vec<u8>,
    pub message_id: String,
}

/// Builds the message `req` describes, sent by `sender` (the acting user when `from` is
/// empty). `message_id` is fixed by the caller, so a retried send builds the same message.
pub fn build(
    req: &SendMessageRequest,
    sender: &str,
    message_id: &str,
) -> Result<Built, ServiceError> {
    let to = addresses("to", &req.to)?;
    if to.is_empty() {
        return Err(bad(
            "to is required: one or more addresses, comma-separated",
        ));
    }
    let cc = addresses("cc", &req.cc)?;
    let bcc = addresses("bcc", &req.bcc)?;
    if req.subject.trim().is_empty() {
        return Err(bad("subject is required"));
    }
    if req.subject.contains(['\r', '\n']) {
        return Err(bad("subject must be one line"));
    }
    if req.body.is_empty() && req.html_body.is_empty() {
        return Err(bad(
            "body is required (the text of the message), or html_body",
        ));
    }
    let from = if req.from.trim().is_empty() {
        sender.to_string()
    } else {
        let f = addresses("from", &req.from)?;
        match f.as_slice() {
            [one] => one.clone(),
            _ => return Err(bad("from must be one address")),
        }
    };
    let mut m = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, from))
        .to(list(&to))
        .subject(req.subject.clone())
        .message_id(message_id.to_string());
    if !cc.is_empty() {
        m = m.cc(list(&cc));
    }
    if !bcc.is_empty() {
        // Gmail reads Bcc from the raw message and strips it before delivery
        m = m.bcc(list(&bcc));
    }
    if !req.reply_to.trim().is_empty() {
        let r = addresses("reply_to", &req.reply_to)?;
        m = m.reply_to(list(&r));
    }
    if !req.body.is_empty() {
        m = m.text_body(req.body.clone());
    }
    if !req.html_body.is_empty() {
        m = m.html_body(req.html_body.clone());
    }
    for (i, a) in req.attachments.iter().enumerate() {
        if a.filename.trim().is_empty() || a.filename.contains(['\r', '\n', '/', '\\']) {
            return Err(bad(format!(
                "attachments[{i}].filename must be a file name"
            )));
        }
        let ct = if a.content_type.is_empty() {
            "application/octet-stream".to_string()
        } else if a.content_type.contains('/') && !a.content_type.contains(['\r', '\n', ';']) {
            a.content_type.clone()
        } else {
            return Err(bad(format!(
                "attachments[{i}].content_type must be a MIME type such as application/pdf"
            )));
        };
        m = m.attachment(ct, a.filename.clone(), a.content.clone());
    }
    let raw = m
        .write_to_vec()
        .map_err(|e| ServiceError::internal("google-workspace", format!("mime: {e}")))?;
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(bad(format!(
            "the message is {} bytes; Gmail sends at most {MAX_MESSAGE_BYTES} (share large files through Drive)",
            raw.len()
        )));
    }
    Ok(Built {
        raw,
        message_id: message_id.to_string(),
    })
}

/// Gmail's `raw`: the message in base64url.
pub fn raw(built: &Built) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&built.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bac_proto::google_workspace::v1::Attachment;

    fn req() -> SendMessageRequest {
        SendMessageRequest {
            to: "customer@example.com, second@example.com".into(),
            from: "sales@yourcompany.com".into(),
            subject: "Welcome to BAC Platform ✓".into(),
            body: "Thank you for signing up!".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_documented_body_makes_a_message() {
        let b = build(&req(), "sales@yourcompany.com", "m1@bac").unwrap();
        let text = String::from_utf8_lossy(&b.raw);
        assert!(text.contains("customer@example.com"), "{text}");
        assert!(text.contains("Message-ID: <m1@bac>"), "{text}");
        assert!(text.contains("Thank you for signing up!"), "{text}");
        // the non-ASCII subject is encoded (RFC 2047), not sent raw
        assert!(!text.contains('✓'), "{text}");
    }

    #[test]
    fn attachments_and_html_make_a_multipart_message() {
        let mut r = req();
        r.html_body = "<p>Thank you</p>".into();
        r.attachments.push(Attachment {
            filename: "terms.pdf".into(),
            content_type: "application/pdf".into(),
            content: b"%PDF-1.4".to_vec(),
        });
        let b = build(&r, "x@yourcompany.com", "m2@bac").unwrap();
        let text = String::from_utf8_lossy(&b.raw);
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("terms.pdf"), "{text}");
    }

    #[test]
    fn address_headers_read_as_addresses() {
        assert_eq!(
            header_addresses("Ada Lovelace <ada@example.com>, <bob@example.com>, c@example.com"),
            "ada@example.com, bob@example.com, c@example.com"
        );
    }

    #[test]
    fn bad_input_is_refused_plainly() {
        let mut r = req();
        r.to = "not-an-address".into();
        assert!(build(&r, "x@y.z", "m").unwrap_err().message.contains("to"));
        let mut r = req();
        r.subject = "a\r\nBcc: victim@example.com".into();
        assert!(build(&r, "x@y.z", "m").is_err());
        let mut r = req();
        r.body.clear();
        assert!(build(&r, "x@y.z", "m").is_err());
        let mut r = req();
        r.attachments.push(Attachment {
            filename: "../etc/passwd".into(),
            ..Default::default()
        });
        assert!(build(&r, "x@y.z", "m").is_err());
    }
}
