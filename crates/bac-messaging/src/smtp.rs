//! SMTP: the one way the fleet talks to a tenant's mail server (lettre). The server's name is
//! resolved here and every address checked against the deployment's egress policy, then
//! lettre connects to the checked address while TLS still verifies the certificate against
//! the name, so a tenant's `smtp_host` can never lead into the fleet's own network. An answer
//! is sorted into what the delivery does next: 2xx sent, 4xx (and no answer at all) try
//! again later, 5xx give up.
use std::{net::SocketAddr, time::Duration};

use bac_runtime::{
    connections::ConnectionRecord, upstream::egress::EgressPolicy, vault::Secret, ErrorCode,
    ServiceError,
};
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::ExposeSecret;

use crate::bad;

/// How a connection's server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on a network the deployment trusts.
    None,
}

impl Security {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            "none" => Some(Security::None),
            _ => None,
        }
    }
}

/// Where and as whom a connection sends.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
}

impl Server {
    pub fn of(rec: &ConnectionRecord) -> Result<Self, ServiceError> {
        let port = rec
            .config
            .get("smtp_port")
            .and_then(|v| v.as_u64())
            .unwrap_or(587);
        Ok(Server {
            host: rec.setting("smtp_host").to_string(),
            port: u16::try_from(port).map_err(|_| bad("smtp_port must be 1 to 65535"))?,
            security: Security::parse(rec.setting("smtp_security")).unwrap_or(Security::StartTls),
            username: rec.setting("username").to_string(),
        })
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it (its answer).
    Sent(String),
    /// A temporary refusal or no answer: try again later.
    Temporary(String),
    /// A permanent refusal: do not try again (what it says about the connection: its
    /// credentials, its server's address, or only this message).
    Permanent(String, ErrorCode),
}

impl Outcome {
    /// How the call log records it (the status of the connection is computed from it);
    /// `upstream` names what answered (`the SMTP server`, `Slack`).
    pub fn error(&self, upstream: &str) -> Option<ServiceError> {
        match self {
            Outcome::Sent(_) => None,
            Outcome::Temporary(r) => Some(ServiceError::new(
                "messaging",
                ErrorCode::UpstreamUnavailable,
                format!("{upstream} did not take the message: {r}"),
            )),
            Outcome::Permanent(r, code) => {
                let e = ServiceError::new(
                    "messaging",
                    *code,
                    format!("{upstream} refused the message: {r}"),
                );
                Some(if *code == ErrorCode::InvalidCredentials {
                    e.suggest(match upstream {
                        "the SMTP server" => "Verify SMTP credentials and server settings",
                        "Slack" => {
                            "Reinstall the Slack app to the workspace and store its bot token"
                        }
                        _ => "Create a new incoming webhook and store its URL in the connection",
                    })
                } else {
                    e
                })
            }
        }
    }
}

/// A login refusal (530 authentication required, 534, 535 credentials invalid): the
/// connection, not the message, is wrong.
fn login_refused(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .map(|c| c.to_string())
        .is_some_and(|c| ["530", "534", "535"].contains(&c.as_str()))
}

/// Sends through a connection's server.
#[derive(Clone)]
pub struct Smtp {
    egress: EgressPolicy,
    timeout: Duration,
}

impl Smtp {
    pub fn new(egress: EgressPolicy, timeout: Duration) -> Self {
        Smtp { egress, timeout }
    }

    /// The addresses of `host` the policy allows.
    async fn addresses(&self, server: &Server) -> Result<Vec<SocketAddr>, ServiceError> {
        let found = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .map_err(|e| {
                ServiceError::new(
                    "messaging",
                    ErrorCode::UpstreamUnavailable,
                    format!("the SMTP server {} does not resolve: {e}", server.host),
                )
                .suggest("Check smtp_host")
            })?;
        self.egress.filter(&server.host, found).map_err(|r| {
            ServiceError::new(
                "messaging",
                ErrorCode::UpstreamAddressNotAllowed,
                r.to_string(),
            )
            .suggest("Use the mail server's public name; the deployment's BAC_UPSTREAM_ALLOW_CIDRS opens private ranges")
        })
    }

    fn transport(
        &self,
        server: &Server,
        addr: SocketAddr,
        password: Option<&str>,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, ServiceError> {
        let tls = || {
            TlsParameters::new(server.host.clone())
                .map_err(|e| ServiceError::internal("messaging", format!("TLS parameters: {e}")))
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .timeout(Some(self.timeout))
            .tls(match server.security {
                Security::StartTls => Tls::Required(tls()?),
                Security::Tls => Tls::Wrapper(tls()?),
                Security::None => Tls::None,
            });
        if let Some(p) = password {
            b = b.credentials(Credentials::new(server.username.clone(), p.to_string()));
        }
        Ok(b.build())
    }

    /// Logs in without sending (the connection test): EHLO, TLS, AUTH.
    pub async fn check(&self, server: &Server, secret: &Secret) -> Result<String, ServiceError> {
        let addrs = self.addresses(server).await?;
        let password = password(secret);
        let mut last = None;
        for addr in addrs {
            let t = self.transport(server, addr, password.as_deref())?;
            match t.test_connection().await {
                Ok(true) => {
                    return Ok(format!(
                        "Logged in to {}:{} as {}",
                        server.host, server.port, server.username
                    ))
                }
                Ok(false) => last = Some(refused("the server did not answer NOOP")),
                Err(e) => last = Some(check_error(&e)),
            }
        }
        Err(last.unwrap_or_else(|| refused("no address to connect to")))
    }

    /// One attempt at sending `message` (envelope from its headers).
    pub async fn send(&self, server: &Server, secret: &Secret, message: &Message) -> Outcome {
        let addrs = match self.addresses(server).await {
            Ok(a) => a,
            // a name that stops resolving may come back; an address the policy refuses won't
            Err(e) if e.code == ErrorCode::UpstreamAddressNotAllowed => {
                return Outcome::Permanent(e.message, e.code)
            }
            Err(e) => return Outcome::Temporary(e.message),
        };
        let password = password(secret);
        let mut outcome = Outcome::Temporary("no address to connect to".into());
        for addr in addrs {
            let t = match self.transport(server, addr, password.as_deref()) {
                Ok(t) => t,
                Err(e) => return Outcome::Temporary(e.message),
            };
            outcome = match t.send(message.clone()).await {
                Ok(r) => Outcome::Sent(answer(r.code().to_string(), r.message())),
                Err(e) if e.is_permanent() => Outcome::Permanent(
                    describe(&e),
                    if login_refused(&e) {
                        ErrorCode::InvalidCredentials
                    } else {
                        ErrorCode::UpstreamRejected
                    },
                ),
                // a server that answered (4xx) was reached: the next address would say the same
                Err(e) if e.is_transient() => return Outcome::Temporary(describe(&e)),
                Err(e) => Outcome::Temporary(describe(&e)),
            };
            if !matches!(outcome, Outcome::Temporary(_)) {
                break;
            }
        }
        outcome
    }
}

fn password(secret: &Secret) -> Option<String> {
    secret
        .data
        .get("password")
        .map(|p| p.expose_secret().to_string())
}

fn answer<'a>(code: String, lines: impl Iterator<Item = &'a str>) -> String {
    let text: Vec<&str> = lines.collect();
    format!("{code} {}", text.join(" ")).trim().to_string()
}

/// lettre's error as one line; never contains the password (lettre does not echo it).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        src = inner.source();
    }
    s.replace(['\r', '\n'], " ")
}

fn refused(msg: &str) -> ServiceError {
    ServiceError::new("messaging", ErrorCode::UpstreamUnavailable, msg.to_string())
}

/// A failed login as the connection test reports it.
fn check_error(e: &lettre::transport::smtp::Error) -> ServiceError {
    let text = describe(e);
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if login_refused(e) {
        return ServiceError::new(
            "messaging",
            ErrorCode::InvalidCredentials,
            format!("SMTP authentication failed: {text}"),
        )
        .upstream_code(code)
        .suggest("Verify SMTP credentials and server settings");
    }
    if e.is_timeout() {
        return ServiceError::new(
            "messaging",
            ErrorCode::ConnectionTimeout,
            format!("the SMTP server did not answer in time: {text}"),
        )
        .suggest("Check smtp_host and smtp_port");
    }
    let err = ServiceError::new(
        "messaging",
        ErrorCode::UpstreamUnavailable,
        format!("could not log in to the SMTP server: {text}"),
    )
    .suggest(
        "Verify SMTP credentials and server settings (smtp_security: starttls on 587, tls on 465)",
    );
    if code.is_empty() {
        err
    } else {
        err.upstream_code(code)
    }
}

/// What a message says, before it becomes RFC 5322.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub from: &'a str,
    pub from_name: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub bcc: &'a [String],
    pub reply_to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    pub message_id: &'a str,
}

/// An address as a mailbox (`ada@example.com` or `Ada <ada@example.com>`).
pub fn mailbox(field: &str, s: &str) -> Result<Mailbox, ServiceError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| bad(format!("{field}: {s:?} is not an email address ({e})")))
}

/// The RFC 5322 message: text, HTML or both (multipart/alternative); headers encoded by
/// lettre, so nothing a caller gives can add a header.
pub fn build(d: &Draft<'_>) -> Result<Message, ServiceError> {
    let mut from = mailbox("from_address", d.from)?;
    if !d.from_name.is_empty() {
        from.name = Some(d.from_name.to_string());
    }
    let mut b = Message::builder()
        .from(from)
        .subject(d.subject)
        .message_id(Some(d.message_id.to_string()));
    for t in d.to {
        b = b.to(mailbox("to", t)?);
    }
    for t in d.cc {
        b = b.cc(mailbox("cc", t)?);
    }
    for t in d.bcc {
        b = b.bcc(mailbox("bcc", t)?);
    }
    if !d.reply_to.is_empty() {
        b = b.reply_to(mailbox("reply_to", d.reply_to)?);
    }
    let built = match (d.text.is_empty(), d.html.is_empty()) {
        (false, false) => b.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(d.text.to_string()))
                .singlepart(SinglePart::html(d.html.to_string())),
        ),
        (true, false) => b.header(ContentType::TEXT_HTML).body(d.html.to_string()),
        _ => b.header(ContentType::TEXT_PLAIN).body(d.text.to_string()),
    };
    built.map_err(|e| bad(format!("the message cannot be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft<'a>(to: &'a [String], subject: &'a str) -> Draft<'a> {
        Draft {
            from: "billing@example.com",
            from_name: "Billing",
            to,
            cc: &[],
            bcc: &[],
            reply_to: "",
            subject,
            text: "hello",
            html: "<p>hello</p>",
            message_id: "<1@bac>",
        }
    }

    #[test]
    fn a_message_has_both_parts_and_the_given_message_id() {
        let to = vec!["ada@example.com".to_string()];
        let m = build(&draft(&to, "Invoice")).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <1@bac>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("text/plain") && raw.contains("text/html"),
            "{raw}"
        );
    }

    #[test]
    fn a_recipient_with_a_header_smuggled_in_is_refused() {
        let to = vec!["ada@example.com\r\nBcc: evil@example.com".to_string()];
        assert!(build(&draft(&to, "x")).is_err());
    }

    #[test]
    fn a_subject_cannot_add_a_header() {
        let to = vec!["ada@example.com".to_string()];
        let m = build(&draft(&to, "Hi\r\nBcc: evil@example.com")).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc: evil"), "{raw}");
    }
}
