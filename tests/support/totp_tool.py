"""Second-factor codes from an independent implementation (pyotp), for the tests of SPEC §17.

Reads a JSON request on stdin: {"secret": "<base32, spaces allowed>", "at": [unix seconds, ...]}
and prints {"codes": ["123456", ...]}: the RFC 6238 code (SHA-1, 6 digits, 30 s) at each time.
"""

import json
import sys

import pyotp


def main() -> None:
    request = json.load(sys.stdin)
    secret = request["secret"].replace(" ", "").upper()
    totp = pyotp.TOTP(secret, digits=6, interval=30)
    print(json.dumps({"codes": [totp.at(int(t)) for t in request["at"]]}))


if __name__ == "__main__":
    main()
