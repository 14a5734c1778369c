#!/usr/bin/env python3
"""Writes a Django `dumpdata`-shaped file of N users (and a few groups) for the streaming
import measurement in benches/README.md ("Importing a large dump"):

    python3 benches/gen_dump.py 1000000 > /tmp/users-1m.json

Entries are written one at a time (constant memory). Every user has the same valid
pbkdf2_sha256 hash (the import keeps it as it is; nobody logs in) and belongs to one or two of
five groups, named by pk as plain `dumpdata` writes them.
"""

import json
import sys

HASH = "pbkdf2_sha256$720000$abcdefghijklmnopqrstuv$W5l0S1eO5bNNf3d3vAhXkXGnkV8k6xY8v1pD0bqg6kU="
GROUPS = ["billing", "ops", "support", "sales", "dev"]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    out = sys.stdout
    out.write("[\n")
    for pk, name in enumerate(GROUPS, start=1):
        out.write(json.dumps({"model": "auth.group", "pk": pk, "fields": {"name": name, "permissions": []}}))
        out.write(",\n")
    for pk in range(1, n + 1):
        entry = {
            "model": "auth.user",
            "pk": pk,
            "fields": {
                "password": HASH,
                "last_login": "2024-03-01T09:15:30.123Z",
                "is_superuser": False,
                "username": f"user{pk:07d}",
                "first_name": "First",
                "last_name": "Last",
                "email": f"user{pk:07d}@example.com",
                "is_staff": False,
                "is_active": pk % 50 != 0,
                "date_joined": "2024-01-31T12:00:00Z",
                "groups": sorted({pk % 5 + 1, pk % 3 + 1}),
                "user_permissions": [],
            },
        }
        out.write(json.dumps(entry))
        out.write(",\n" if pk < n else "\n")
    out.write("]\n")


if __name__ == "__main__":
    main()
