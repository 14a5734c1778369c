"""A real SMTP server for the mail tests (tests/it/mail.rs): aiosmtpd on 127.0.0.1:PORT, writing
each message it accepts to DIR as one JSON file (from, to, subject, body, raw), named so
that a directory listing sorts them in arrival order.

    python smtp_sink.py PORT DIR [starttls|implicit]

With a TLS mode it makes a CA and a certificate for 127.0.0.1 signed by it (DIR/../ca.pem is
what a client must trust) and requires STARTTLS, or speaks TLS from the first byte.
Prints "ready" once it accepts connections; runs until killed.
"""
import email
import email.policy
import json
import os
import signal
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["subject"] or ""),
            "body": body.get_content() if body is not None else "",
            "raw": envelope.content.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            name = "%020d-%06d-%d.json" % (time.time_ns(), self.count, os.getpid())
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        # Whole files only: a reader never sees half a message.
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def make_certificates(where):
    """A CA (ca.pem) and a server certificate for 127.0.0.1 it signed (server.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))

    def cert(subject, issuer, public_key, signing_key, ca, extensions):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for ext in extensions:
            b = b.add_extension(ext, critical=False)
        return b.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("gatehouse test CA", "gatehouse test CA", ca_key.public_key(), ca_key, True, [])
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = cert("127.0.0.1", "gatehouse test CA", key.public_key(), ca_key, False, [san])
    pem = serialization.Encoding.PEM
    paths = {name: os.path.join(where, name) for name in ("ca.pem", "server.pem", "key.pem")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths["server.pem"], "wb") as f:
        f.write(server.public_bytes(pem))
    with open(paths["key.pem"], "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    tls = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(directory, exist_ok=True)
    options = {}
    if tls is not None:
        import ssl

        where = os.path.dirname(os.path.abspath(directory))
        paths = {n: os.path.join(where, n) for n in ("ca.pem", "server.pem", "key.pem")}
        if not os.path.exists(paths["key.pem"]):
            paths = make_certificates(where)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(paths["server.pem"], paths["key.pem"])
        if tls == "starttls":
            options = {"tls_context": context, "require_starttls": True}
        elif tls == "implicit":
            options = {"ssl_context": context}
        else:
            sys.exit("unknown TLS mode %r: starttls or implicit" % tls)
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
