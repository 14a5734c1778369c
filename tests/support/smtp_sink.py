"""A real SMTP server for the mail tests (tests/mail.rs): aiosmtpd on 127.0.0.1:PORT, writing
each message it accepts to DIR as one JSON file (from, to, subject, body, raw), named so
that a directory listing sorts them in arrival order.

    python smtp_sink.py PORT DIR

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


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
