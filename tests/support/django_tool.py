"""Real Django, in-process, for gatehouse's switch-over tests (tests/switchover.rs).

Configures Django 5.0 + DRF + simplejwt 5.5 with an in-memory SQLite database, then does what
the JSON request on stdin asks and prints one JSON document on stdout:

    {"secret": "<Django SECRET_KEY>",              # also simplejwt's SIGNING_KEY (its default)
     "users": [{"id": 7, "username": "alice", "email": "alice@example.com",
                "password": "plain text", "hasher": "argon2",   # make_password(pw, hasher=...)
                "is_active": true, "is_staff": false, "is_superuser": false}],
                                                    # or "encoded": a stored string as it is;
                                                    # "password": null: make_password(None)
     "mint": [7],                                   # RefreshToken.for_user for these ids
     "access_lifetime_seconds": 300, "refresh_lifetime_seconds": 86400,   # simplejwt's defaults
     "hash": {"password": "pw", "hashers": ["bcrypt", "md5"]},
     "validate": [{"password": "pw", "username": "u", "email": "e", "first_name": "", "last_name": ""}]}
                                                    # Django's four default password validators

answers

    {"tokens": {"7": {"refresh": "...", "access": "..."}},
     "hashes": {"bcrypt": "bcrypt$$2b$12$...", ...},
     "validation": [["This password is too short. ...", ...], ...],   # one list per "validate"
     "dump": [...]}                                 # `manage.py dumpdata`, every model

Every part is optional. Users are created with exactly the given primary key. Run it with the
virtualenv's python (tests/support/make_venv.sh makes it).
"""

import io
import json
import sys
from datetime import timedelta

import django
from django.conf import settings

HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.SHA1PasswordHasher",
]


def configure(secret, lifetimes):
    settings.configure(
        SECRET_KEY=secret,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "rest_framework_simplejwt",
            "rest_framework_simplejwt.token_blacklist",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        PASSWORD_HASHERS=HASHERS,
        # The validators `startproject` writes into settings.py (the seed project's too).
        AUTH_PASSWORD_VALIDATORS=[
            {"NAME": "django.contrib.auth.password_validation." + name}
            for name in (
                "UserAttributeSimilarityValidator",
                "MinimumLengthValidator",
                "CommonPasswordValidator",
                "NumericPasswordValidator",
            )
        ],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SIMPLE_JWT={
            "ACCESS_TOKEN_LIFETIME": timedelta(seconds=lifetimes[0]),
            "REFRESH_TOKEN_LIFETIME": timedelta(seconds=lifetimes[1]),
        },
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)


def main():
    request = json.load(sys.stdin)
    configure(
        request.get("secret", "django-insecure-" + "x" * 50),
        (request.get("access_lifetime_seconds", 300), request.get("refresh_lifetime_seconds", 86400)),
    )

    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    out = {}
    for u in request.get("users", []):
        password = u.get("password")
        if u.get("encoded") is not None:
            encoded = u["encoded"]
        elif password is None:
            encoded = make_password(None)
        else:
            encoded = make_password(password, hasher=u.get("hasher", "default"))
        User.objects.create(
            id=u["id"],
            username=u["username"],
            email=u.get("email", u["username"] + "@example.com"),
            password=encoded,
            is_active=u.get("is_active", True),
            is_staff=u.get("is_staff", False),
            is_superuser=u.get("is_superuser", False),
        )

    tokens = {}
    for pk in request.get("mint", []):
        refresh = RefreshToken.for_user(User.objects.get(pk=pk))
        tokens[str(pk)] = {"refresh": str(refresh), "access": str(refresh.access_token)}
    out["tokens"] = tokens

    h = request.get("hash")
    if h:
        out["hashes"] = {name: make_password(h["password"], hasher=name) for name in h["hashers"]}

    checks = request.get("validate")
    if checks:
        from django.contrib.auth.password_validation import validate_password
        from django.core.exceptions import ValidationError

        results = []
        for c in checks:
            who = User(
                username=c.get("username", ""),
                email=c.get("email", ""),
                first_name=c.get("first_name", ""),
                last_name=c.get("last_name", ""),
            )
            try:
                validate_password(c["password"], user=who)
                results.append([])
            except ValidationError as e:
                results.append(list(e.messages))
        out["validation"] = results

    buf = io.StringIO()
    call_command("dumpdata", stdout=buf, verbosity=0)
    out["dump"] = json.loads(buf.getvalue())
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
