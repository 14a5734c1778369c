#!/usr/bin/env python3
"""The set-up half of benches/audit/run.sh (the load itself is wrk's): stdlib only.

  client.py register BASE USERS PASSWORD      register bench0..bench{USERS-1}
  client.py state BASE USERS PW_A PW_B OUT    sign every user in (PW_A, else PW_B) and write
                                              OUT: "i username 1|2 access_token" per line

`state` runs before every measured run: a password-change run stopped by wrk mid-request
leaves that user's password unknown, and a fresh access token is needed anyway (a change
revokes every older token; its response carries the new pair, which the wrk script chains).
"""

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

WORKERS = 8


def post(url, body):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def register(base, users, password):
    def one(i):
        status, body = post(
            f"{base}/api/auth/register/",
            {"username": f"bench{i}", "email": f"bench{i}@example.com", "password": password},
        )
        if status != 201:
            raise SystemExit(f"register bench{i}: {status} {body!r}")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, range(users)))


def state(base, users, pw_a, pw_b, out):
    def one(i):
        for n, pw in ((1, pw_a), (2, pw_b)):
            status, body = post(f"{base}/api/token/", {"username": f"bench{i}", "password": pw})
            if status == 200:
                return f"{i} bench{i} {n} {body['access']}\n"
        raise SystemExit(f"bench{i}: neither password signs in ({status} {body!r})")

    with ThreadPoolExecutor(WORKERS) as pool:
        lines = list(pool.map(one, range(users)))
    with open(out, "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    cmd, base, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "register":
        register(base, n, sys.argv[4])
    elif cmd == "state":
        state(base, n, sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        raise SystemExit(__doc__)
