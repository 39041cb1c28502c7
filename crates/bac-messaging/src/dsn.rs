//! What comes back as mail: replies ([`reply`]) and, mostly, delivery status notifications
//! (RFC 3464, [`read`]): the bounce a mail system sends back as mail,
//! `multipart/report; report-type=delivery-status`, with a `message/delivery-status` part
//! (per recipient: `Final-Recipient`, `Action`, `Status`, `Diagnostic-Code`) and the original
//! message or its headers (`message/rfc822`, `text/rfc822-headers`), whose `Message-ID` names
//! the delivery it is about.
use mail_parser::{MessageParser, MimeHeaders};

/// What a DSN says about one original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The original's `Message-ID`, without angle brackets.
    pub message_id: String,
    /// The recipients that failed, as `Final-Recipient` names them.
    pub recipients: Vec<String>,
    /// `5.1.1 <ada@example.com>: Recipient address rejected: User unknown`: the status and
    /// the diagnostic of the first failed recipient.
    pub reason: String,
}

/// Reads `raw` as a DSN; `None` for any other message, and for a DSN that reports no failed
/// recipient (`Action: delayed`, `delivered`, `relayed`).
pub fn read(raw: &[u8]) -> Option<Bounce> {
    let msg = MessageParser::default().parse(raw)?;
    let is = |p: &mail_parser::MessagePart<'_>, t: &str, s: &str| {
        p.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case(t)
                && c.subtype().is_some_and(|x| x.eq_ignore_ascii_case(s))
        })
    };
    let status = msg.parts.iter().find(|p| {
        is(p, "message", "delivery-status") || is(p, "message", "global-delivery-status")
    })?;
    let (recipients, reason) = failed_recipients(&String::from_utf8_lossy(status.contents()));
    if recipients.is_empty() {
        return None;
    }
    let returned = msg.parts.iter().find(|p| {
        is(p, "message", "rfc822") || is(p, "text", "rfc822-headers") || is(p, "message", "global")
    })?;
    let mut headers = returned.contents().to_vec();
    if !headers.windows(4).any(|w| w == b"\r\n\r\n") {
        headers.extend_from_slice(b"\r\n\r\n");
    }
    let original = MessageParser::default().parse(&headers)?;
    let message_id = original.message_id()?.trim_matches(['<', '>']).to_string();
    if message_id.is_empty() {
        return None;
    }
    Some(Bounce {
        message_id,
        recipients,
        reason,
    })
}

/// Reads `raw` as a reply to one of the fleet's emails: a message that is not a DSN and names
/// earlier Message-IDs (`In-Reply-To`, then `References`); `None` otherwise.
pub fn reply(raw: &[u8]) -> Option<crate::deliveries::Reply> {
    let msg = MessageParser::default().parse(raw)?;
    let is_report = msg.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if is_report {
        return None;
    }
    let ids = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        match v {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let mut answers = ids(msg.in_reply_to());
    // the nearest ancestor first: References lists the oldest first
    answers.extend(ids(msg.references()).into_iter().rev());
    let answers: Vec<String> = answers
        .into_iter()
        .map(|m| m.trim_matches(['<', '>']).to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if answers.is_empty() {
        return None;
    }
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_string();
    Some(crate::deliveries::Reply {
        answers,
        from,
        subject: msg.subject().unwrap_or("").to_string(),
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        message_id: msg.message_id().unwrap_or("").to_string(),
        sent_at: msg
            .date()
            .and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0)),
    })
}

/// The per-recipient blocks of a `message/delivery-status` body whose `Action` is `failed`;
/// the reason of the first.
fn failed_recipients(body: &str) -> (Vec<String>, String) {
    let text = body.replace("\r\n", "\n");
    let mut recipients = Vec::new();
    let mut reason = String::new();
    // blocks are separated by blank lines; the first is per message
    for block in text.split("\n\n").skip(1) {
        let mut field = std::collections::HashMap::new();
        let mut last: Option<String> = None;
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                // a folded continuation of the previous field
                if let Some(k) = &last {
                    field.entry(k.clone()).and_modify(|v: &mut String| {
                        v.push(' ');
                        v.push_str(line.trim());
                    });
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                field.insert(k.clone(), v.trim().to_string());
                last = Some(k);
            }
        }
        if !field
            .get("action")
            .is_some_and(|a| a.eq_ignore_ascii_case("failed"))
        {
            continue;
        }
        let recipient = field
            .get("final-recipient")
            .or_else(|| field.get("original-recipient"))
            .map(|r| {
                r.split_once(';')
                    .map_or(r.as_str(), |(_, a)| a)
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        if reason.is_empty() {
            let status = field.get("status").cloned().unwrap_or_default();
            let diagnostic = field
                .get("diagnostic-code")
                .map(|d| {
                    d.split_once(';')
                        .map_or(d.as_str(), |(_, t)| t)
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            reason = format!("{status} {diagnostic}").trim().to_string();
        }
        recipients.push(recipient);
    }
    (recipients, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(action: &str, returned_type: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: billing@acme.example\r\n\
             Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\n\
             Reporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; ada@customer.example\r\nAction: {action}\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <ada@customer.example>: Recipient\r\n address rejected\r\n\r\n\
             --b\r\nContent-Type: {returned_type}\r\n\r\n\
             From: billing@acme.example\r\nTo: ada@customer.example\r\nSubject: Invoice\r\n\
             Message-ID: <0193abc@acme.example>\r\n\r\n\
             --b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_failed_recipient_names_the_original_and_why() {
        for returned in ["text/rfc822-headers", "message/rfc822"] {
            let b = read(&dsn("failed", returned)).unwrap_or_else(|| panic!("{returned}"));
            assert_eq!(b.message_id, "0193abc@acme.example");
            assert_eq!(b.recipients, ["ada@customer.example"]);
            assert_eq!(
                b.reason,
                "5.1.1 550 5.1.1 <ada@customer.example>: Recipient address rejected"
            );
        }
    }

    #[test]
    fn a_reply_names_what_it_answers_and_a_bounce_is_no_reply() {
        let r = reply(
            b"From: Ada <ada@customer.example>\r\nSubject: Re: Invoice\r\n\
              Message-ID: <r1@customer.example>\r\nIn-Reply-To: <0193abc@acme.example>\r\n\
              References: <older@acme.example> <0193abc@acme.example>\r\n\r\nThanks!\r\n",
        )
        .unwrap();
        assert_eq!(r.answers[0], "0193abc@acme.example");
        assert!(r.answers.contains(&"older@acme.example".to_string()));
        assert_eq!(r.from, "ada@customer.example");
        assert_eq!(r.text.trim(), "Thanks!");
        assert_eq!(r.message_id, "r1@customer.example");
        assert!(reply(&dsn("failed", "text/rfc822-headers")).is_none());
        assert!(reply(b"From: a@b.c\r\nSubject: hello\r\n\r\nnew thread").is_none());
    }

    #[test]
    fn a_delay_notice_or_an_ordinary_message_is_no_bounce() {
        assert!(read(&dsn("delayed", "text/rfc822-headers")).is_none());
        assert!(read(b"From: a@b.c\r\nSubject: Re: Invoice\r\nIn-Reply-To: <0193abc@acme.example>\r\n\r\nThanks").is_none());
    }
}
