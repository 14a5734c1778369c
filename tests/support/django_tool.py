"""Real Django, in-process, for gatehouse's switch-over tests (tests/it/switchover.rs).

Configures Django 5.0 + DRF + simplejwt 5.5 with an in-memory SQLite database, then does what
the JSON request on stdin asks and prints one JSON document on stdout:

    {"secret": "<Django SECRET_KEY>",              # also simplejwt's SIGNING_KEY (its default)
     "users": [{"id": 7, "username": "alice", "email": "alice@example.com",
                "password": "plain text", "hasher": "argon2",   # make_password(pw, hasher=...)
                "iterations": 10000,                # PBKDF2 hashers: that hasher's encode with fewer rounds
                "is_active": true, "is_staff": false, "is_superuser": false}],
                                                    # or "encoded": a stored string as it is;
                                                    # "password": null: make_password(None)
     "mint": [7],                                   # RefreshToken.for_user for these ids
     "access_lifetime_seconds": 300, "refresh_lifetime_seconds": 86400,   # simplejwt's defaults
     "hash": {"password": "pw", "hashers": ["bcrypt", "md5"]},
     "password_policy": [{"password": "pw", "username": "u", "email": "e"}],
                                                    # Django's four default password validators
     "groups": [{"id": 3, "name": "billing"}],      # auth.Group rows; a user's "groups": [names]
     "natural_foreign": true,                       # dumpdata --natural-foreign
     "validate": [{"serializer": "password_change", # DRF's answer to a body (see SERIALIZERS)
                   "data": {...}, "partial": false,
                   "user": {"username": "u", "email": "u@example.com", "password": "pw"}}]}

answers

    {"tokens": {"7": {"refresh": "...", "access": "..."}},
     "hashes": {"bcrypt": "bcrypt$$2b$12$...", ...},
     "password_policy": [["This password is too short. ...", ...], ...],  # one list per check
     "dump": [...],                                 # `manage.py dumpdata`, every model
     "validate": [{"valid": false, "errors": {...}}]}  # serializer.errors, as DRF renders them

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
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        # Django's default validators, as `startproject` writes them.
        AUTH_PASSWORD_VALIDATORS=[
            {"NAME": "django.contrib.auth.password_validation." + name}
            for name in [
                "UserAttributeSimilarityValidator",
                "MinimumLengthValidator",
                "CommonPasswordValidator",
                "NumericPasswordValidator",
            ]
        ],
        SIMPLE_JWT={
            "ACCESS_TOKEN_LIFETIME": timedelta(seconds=lifetimes[0]),
            "REFRESH_TOKEN_LIFETIME": timedelta(seconds=lifetimes[1]),
        },
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)


def serializers_by_name():
    """The seed's serializers as gatehouse answers for them (SPEC §1, §12), in plain DRF."""
    from django.contrib.auth.password_validation import validate_password
    from rest_framework import serializers

    class ProfileUpdate(serializers.Serializer):
        # The seed's serializer: username required, a missing email kept.
        username = serializers.CharField(max_length=150)
        email = serializers.EmailField(required=False, max_length=254)
        first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
        last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)

    class PasswordChange(serializers.Serializer):
        old_password = serializers.CharField()
        new_password = serializers.CharField()

        def validate_new_password(self, value):
            validate_password(value, self.context["user"])
            return value

        def validate(self, attrs):
            # Object-level: runs only when every field is valid.
            if not self.context["user"].check_password(attrs["old_password"]):
                raise serializers.ValidationError({"old_password": ["Wrong password."]})
            return attrs

    class AdminUserPatch(serializers.Serializer):
        is_staff = serializers.BooleanField(required=False)
        is_active = serializers.BooleanField(required=False)
        groups = serializers.ListField(
            child=serializers.CharField(max_length=150), required=False
        )

    return {
        "profile_update": ProfileUpdate,
        "password_change": PasswordChange,
        "admin_user_patch": AdminUserPatch,
    }


def validate(requests):
    from django.contrib.auth.models import User

    by_name = serializers_by_name()
    answers = []
    for r in requests:
        u = r.get("user", {})
        user = User(
            username=u.get("username", "someone"),
            email=u.get("email", ""),
            first_name=u.get("first_name", ""),
            last_name=u.get("last_name", ""),
        )
        user.set_password(u.get("password", "unused"))
        s = by_name[r["serializer"]](
            data=r["data"], partial=r.get("partial", False), context={"user": user}
        )
        valid = s.is_valid()
        answers.append({"valid": valid, "errors": json.loads(json.dumps(s.errors))})
    return answers


def main():
    request = json.load(sys.stdin)
    configure(
        request.get("secret", "django-insecure-" + "x" * 50),
        (request.get("access_lifetime_seconds", 300), request.get("refresh_lifetime_seconds", 86400)),
    )

    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    out = {}
    for g in request.get("groups", []):
        Group.objects.create(id=g["id"], name=g["name"])
    for u in request.get("users", []):
        password = u.get("password")
        if u.get("encoded") is not None:
            encoded = u["encoded"]
        elif password is None:
            encoded = make_password(None)
        else:
            encoded = make_password(password, hasher=u.get("hasher", "default"))
            if u.get("iterations") is not None:
                # The same hasher's own encode, with fewer rounds (the iteration count is part
                # of the stored string, read back at verification).
                from django.contrib.auth.hashers import get_hasher

                h = get_hasher(u.get("hasher", "default"))
                encoded = h.encode(password, h.salt(), iterations=u["iterations"])
        created = User.objects.create(
            id=u["id"],
            username=u["username"],
            email=u.get("email", u["username"] + "@example.com"),
            password=encoded,
            is_active=u.get("is_active", True),
            is_staff=u.get("is_staff", False),
            is_superuser=u.get("is_superuser", False),
        )
        if u.get("groups"):
            created.groups.set(Group.objects.filter(name__in=u["groups"]))

    tokens = {}
    for pk in request.get("mint", []):
        refresh = RefreshToken.for_user(User.objects.get(pk=pk))
        tokens[str(pk)] = {"refresh": str(refresh), "access": str(refresh.access_token)}
    out["tokens"] = tokens

    h = request.get("hash")
    if h:
        out["hashes"] = {name: make_password(h["password"], hasher=name) for name in h["hashers"]}

    checks = request.get("password_policy")
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
        out["password_policy"] = results
    if "validate" in request:
        out["validate"] = validate(request["validate"])

    buf = io.StringIO()
    natural = bool(request.get("natural_foreign"))
    call_command("dumpdata", stdout=buf, verbosity=0, use_natural_foreign_keys=natural)
    out["dump"] = json.loads(buf.getvalue())
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
