"""A local SMTP server for development and tests (aiosmtpd, from PyPI).

It accepts mail into a Maildir (one file per message, with the envelope in `X-Sink-Mail-From`
and `X-Sink-Rcpt-To` headers, since Bcc recipients appear nowhere else) and answers as a real
server does when a recipient's address asks it to:

  <name>+defer<N>@<domain>   451 4.3.0 (a temporary refusal) the first N times it is offered
  <name>+reject@<domain>     550 5.1.1 (a permanent refusal)

With --user and --password it requires AUTH (PLAIN or LOGIN; allowed without TLS because it
listens on loopback). Usage: python scripts/mail_sink.py --port 2525 --maildir .dev/mail
"""

import argparse
import mailbox
import re
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir):
        self.box = mailbox.Maildir(maildir, create=True)
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
        return f"250 2.0.0 Ok: queued as {key}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2525)
    p.add_argument("--maildir", required=True)
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
    controller = Controller(Handler(a.maildir), hostname=a.host, port=a.port, **kwargs)
    controller.start()
    print(f"mail sink listening on {a.host}:{a.port}, Maildir {a.maildir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
