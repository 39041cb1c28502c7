"""A local SMTP server for development and tests (aiosmtpd, from PyPI).

It accepts mail into a Maildir (one file per message, with the envelope in `X-Sink-Mail-From`
and `X-Sink-Rcpt-To` headers, since Bcc recipients appear nowhere else) and answers as a real
server does when a recipient's address asks it to:

  <name>+defer<N>@<domain>   451 4.3.0 (a temporary refusal) the first N times it is offered
  <name>+reject@<domain>     550 5.1.1 (a permanent refusal)
  <name>+bounce@<domain>     250 at once, then a bounce (a DSN, RFC 3464: multipart/report
                             with message/delivery-status and the original's headers) put in
                             --bounce-maildir, the sender's mailbox an IMAP server serves
  <name>+reply@<domain>      250, then a reply from that address (In-Reply-To the message) put
                             in --bounce-maildir

With --user and --password it requires AUTH (PLAIN or LOGIN; allowed without TLS because it
listens on loopback). Usage: python scripts/mail_sink.py --port 2525 --maildir .dev/mail
"""

import argparse
import email
import email.utils
import mailbox
import os
import re
import signal
import threading
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def shared_maildir(path):
    """A Maildir other local users may read and write (an IMAP server running as its own
    user serves it)."""
    box = mailbox.Maildir(path, create=True)
    for d in ("", "new", "cur", "tmp"):
        os.chmod(os.path.join(path, d), 0o777)
    return box


def reply(mail_from, rcpt, original):
    """A person's answer to `original` (bytes), as bytes."""
    msg = email.message_from_bytes(original)
    mid = msg.get("Message-ID", "")
    refs = (msg.get("References", "") + " " + mid).strip()
    return (
        f"From: {rcpt}\r\n"
        f"To: {mail_from}\r\n"
        f"Subject: Re: {msg.get('Subject', '')}\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mail-sink.local>\r\n"
        f"In-Reply-To: {mid}\r\n"
        f"References: {refs}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Thanks, received.\r\n"
    ).encode()


def dsn(mail_from, rcpt, original_headers):
    """The bounce a mail system sends back (RFC 3464), as bytes."""
    b = f"dsn-{uuid.uuid4().hex}"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mail-sink.local>\r\n"
        f"To: {mail_from}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mail-sink.local>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\r\n'
        "\r\n"
        f"--{b}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Your message could not be delivered to {rcpt}.\r\n\r\n"
        f"--{b}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail-sink.local\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n"
        f"--{b}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers}\r\n"
        f"--{b}--\r\n"
    ).encode()


class Handler:
    def __init__(self, maildir, bounce_maildir=None):
        self.box = shared_maildir(maildir)
        self.bounces = shared_maildir(bounce_maildir) if bounce_maildir else None
        self.offered = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        defer = re.search(r"\+defer(\d+)$", local)
        if defer:
            with self.lock:
                seen = self.offered.get(address, 0)
                self.offered[address] = seen + 1
            if seen < int(defer.group(1)):
                return "451 4.3.0 Temporary local problem, try again later"
        if local.endswith("+reject"):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = mailbox.MaildirMessage(envelope.original_content)
        msg["X-Sink-Mail-From"] = envelope.mail_from
        msg["X-Sink-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        with self.lock:
            key = self.box.add(msg)
            bounced = [r for r in envelope.rcpt_tos if r.split("@", 1)[0].lower().endswith("+bounce")]
            if bounced and self.bounces is not None:
                raw = envelope.original_content.replace(b"\r\n", b"\n")
                headers = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace").replace("\n", "\r\n")
                for rcpt in bounced:
                    self.bounces.add(dsn(envelope.mail_from, rcpt, headers))
            replying = [r for r in envelope.rcpt_tos if r.split("@", 1)[0].lower().endswith("+reply")]
            if replying and self.bounces is not None:
                for rcpt in replying:
                    self.bounces.add(reply(envelope.mail_from, rcpt, envelope.original_content))
        return f"250 2.0.0 Ok: queued as {key}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2525)
    p.add_argument("--maildir", required=True)
    p.add_argument("--bounce-maildir", help="where bounces of +bounce recipients are put")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok, handled=False)

    kwargs = {}
    if a.user:
        kwargs = dict(
            authenticator=authenticate, auth_required=True, auth_require_tls=False
        )
    os.umask(0)
    controller = Controller(Handler(a.maildir, a.bounce_maildir), hostname=a.host, port=a.port, **kwargs)
    controller.start()
    print(f"mail sink listening on {a.host}:{a.port}, Maildir {a.maildir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
