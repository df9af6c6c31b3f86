"""A real SMTP server for the email notifier's tests.

aiosmtpd (Debian's python3-aiosmtpd) on 127.0.0.1, on a port of the
kernel's choosing, with STARTTLS (or implicit TLS) from the given
certificate and AUTH PLAIN and LOGIN for one user, required before MAIL.
It writes each message it accepts to --dir as N.json (written aside, then
renamed into place, before it answers 250): the envelope, the login, TLS
or not, and the message as received. Recipients whose local part starts
with "tempfail" are answered 451, with "refuse" 550.

It prints "port=N" once it listens and runs until its standard input
closes.
"""

import argparse
import asyncio
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--dir", required=True)
parser.add_argument("--user", required=True)
parser.add_argument("--password", required=True)
parser.add_argument("--implicit-tls", action="store_true")
args = parser.parse_args()

counter = itertools.count(1)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("tempfail"):
            return "451 4.3.0 Mailbox busy, try again later"
        if local.startswith("refuse"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "tls": session.ssl is not None or args.implicit_tls,
            "content": envelope.original_content.decode("utf-8", "replace"),
        }
        n = next(counter)
        tmp = os.path.join(args.dir, f".{n}.json")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(args.dir, f"{n}.json"))
        return "250 2.0.0 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == args.password
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


async def main():
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()

    def factory():
        if args.implicit_tls:
            # The whole connection is TLS: aiosmtpd does not know it, so
            # its own TLS rules are off.
            return SMTP(Handler(), hostname="saltpeter-test", authenticator=authenticator,
                        auth_required=True, auth_require_tls=False)
        return SMTP(Handler(), hostname="saltpeter-test", authenticator=authenticator,
                    tls_context=tls, require_starttls=True,
                    auth_required=True, auth_require_tls=True)

    server = await loop.create_server(factory, "127.0.0.1", 0,
                                      ssl=tls if args.implicit_tls else None)
    print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
