//! Reading a Django `dumpdata` file: the users it holds, mapped to gatehouse's (ids, flags,
//! password hashes kept), and what else it holds. Nothing here touches the store.

use super::ImportError;
use crate::auth::django_hash::{self, HashKind, UNUSABLE_PREFIX};
use crate::store::User;
use serde_json::{Map, Value};
use std::collections::HashMap;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// The user models gatehouse reads (compared case-insensitively: Django writes lower case).
pub const USER_MODELS: [&str; 2] = ["accounts.user", "auth.user"];

/// One user of the dump, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub user: User,
    /// Set when something of the user could not be kept (an unsupported password hash).
    pub warning: Option<String>,
}

/// The dump, checked and mapped, before anything is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// In dump order, each pk once.
    pub users: Vec<Mapped>,
    /// Users of the dump that repeat an earlier pk (the first one is imported).
    pub duplicates: Vec<String>,
    pub other_models: usize,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a whole dump: the users it holds, mapped to gatehouse's, and what else it holds.
/// `now` (unix seconds) stands in for a missing `date_joined` and a soft delete's time.
pub fn parse_dump(dump_json: &str, now: u64) -> Result<Parsed, ImportError> {
    let value: Value = serde_json::from_str(dump_json).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let message = full
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&full)
            .to_string();
        ImportError::NotJson {
            message,
            line,
            column,
        }
    })?;
    let Value::Array(entries) = value else {
        return Err(ImportError::NotAnArray {
            found: kind_of(&value),
        });
    };
    let mut parsed = Parsed::default();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let number = i + 1;
        let Value::Object(entry) = entry else {
            return Err(ImportError::EntryNotObject {
                entry: number,
                found: kind_of(entry),
            });
        };
        let model = match entry.get("model") {
            Some(Value::String(m)) => m,
            Some(other) => {
                return Err(ImportError::BadField {
                    entry: number,
                    field: "model".into(),
                    problem: format!(
                        "must be a string like \"accounts.user\", not {}",
                        kind_of(other)
                    ),
                })
            }
            None => {
                return Err(ImportError::MissingField {
                    entry: number,
                    field: "model",
                })
            }
        };
        let model = model.to_ascii_lowercase();
        if !USER_MODELS.contains(&model.as_str()) {
            parsed.other_models += 1;
            continue;
        }
        let pk = match entry.get("pk") {
            None | Some(Value::Null) => {
                return Err(ImportError::MissingField {
                    entry: number,
                    field: "pk",
                })
            }
            Some(v) => v
                .as_u64()
                .filter(|&pk| pk > 0)
                .ok_or(ImportError::BadField {
                    entry: number,
                    field: "pk".into(),
                    problem: format!("must be a positive integer, not {v}"),
                })?,
        };
        let fields = match entry.get("fields") {
            Some(Value::Object(f)) => f,
            Some(other) => {
                return Err(ImportError::BadField {
                    entry: number,
                    field: "fields".into(),
                    problem: format!("must be an object, not {}", kind_of(other)),
                })
            }
            None => {
                return Err(ImportError::MissingField {
                    entry: number,
                    field: "fields",
                })
            }
        };
        let mapped = map_user(number, &model, pk, fields, now)?;
        if let Some(first) = seen.get(&pk) {
            parsed.duplicates.push(format!(
                "user {pk} ({}): entry #{number} repeats the pk of entry #{first}; only the first is imported",
                mapped.user.username
            ));
            continue;
        }
        seen.insert(pk, number);
        parsed.users.push(mapped);
    }
    Ok(parsed)
}

/// Reads the fields of one entry; `entry` numbers the errors.
struct Fields<'a> {
    entry: usize,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn bad(&self, field: &str, problem: String) -> ImportError {
        ImportError::BadField {
            entry: self.entry,
            field: format!("fields.{field}"),
            problem,
        }
    }

    /// A string; missing or null is empty.
    fn text(&self, name: &str) -> Result<String, ImportError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.bad(name, format!("must be a string, not {}", kind_of(other)))),
        }
    }

    /// A boolean; missing or null is `default`.
    fn flag(&self, name: &str, default: bool) -> Result<bool, ImportError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.bad(name, format!("must be true or false, not {other}"))),
        }
    }

    /// An ISO-8601 date and time, as unix seconds; missing or null is `None`.
    fn time(&self, name: &str) -> Result<Option<u64>, ImportError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_datetime(s).map(Some).ok_or_else(|| {
                self.bad(
                    name,
                    format!(
                        "is not an ISO-8601 date and time like \"2024-01-31T12:00:00Z\": {s:?}"
                    ),
                )
            }),
            Some(other) => Err(self.bad(
                name,
                format!("must be an ISO-8601 date and time, not {}", kind_of(other)),
            )),
        }
    }
}

/// Django's JSON datetimes: `2024-01-31T12:00:00Z`, with milliseconds or an offset, or naive
/// (`USE_TZ = False`), which is read as UTC. Before 1970 is 0.
pub fn parse_datetime(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    Some(u64::try_from(t.unix_timestamp()).unwrap_or(0))
}

/// Maps one user entry's fields to a gatehouse user.
fn map_user(
    entry: usize,
    model: &str,
    pk: u64,
    map: &Map<String, Value>,
    now: u64,
) -> Result<Mapped, ImportError> {
    let f = Fields { entry, map };
    let username = f.text("username")?;
    if username.is_empty() {
        return Err(ImportError::NoUsername {
            entry,
            model: model.to_string(),
            pk,
        });
    }
    let is_active = f.flag("is_active", true)? && !f.flag("is_deleted", false)?;
    let is_staff = f.flag("is_staff", false)? || f.flag("is_superuser", false)?;
    let deleted_at = if is_active {
        None
    } else {
        Some(f.time("deleted_at")?.unwrap_or(now))
    };
    let (password, warning) = map_password(pk, &username, &f.text("password")?);
    Ok(Mapped {
        user: User {
            id: pk,
            email: f.text("email")?,
            first_name: f.text("first_name")?,
            last_name: f.text("last_name")?,
            password,
            is_active,
            is_staff,
            date_joined: f.time("date_joined")?.unwrap_or(now),
            last_login: f.time("last_login")?,
            deleted_at,
            token_version: 0,
            groups: Vec::new(),
            username,
        },
        warning,
    })
}

/// The password gatehouse stores for a Django one, and a warning when it cannot be kept:
/// the Django hashes gatehouse verifies (`pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`,
/// `bcrypt_sha256`, `bcrypt`, `scrypt`: checked at login, then re-hashed) and unusable ones
/// stay as they are; any other algorithm becomes unusable (`!` + its name, so the reason
/// stays visible, and `unusable_algorithm` reads it back).
fn map_password(pk: u64, username: &str, encoded: &str) -> (String, Option<String>) {
    match django_hash::classify(encoded) {
        HashKind::Pbkdf2Sha256
        | HashKind::Pbkdf2Sha1
        | HashKind::DjangoArgon2
        | HashKind::BcryptSha256
        | HashKind::Bcrypt
        | HashKind::Scrypt
        | HashKind::Argon2 => (encoded.to_string(), None),
        HashKind::Unusable if encoded.is_empty() => (UNUSABLE_PREFIX.to_string(), None),
        HashKind::Unusable => (encoded.to_string(), None),
        HashKind::Unsupported(algorithm) => {
            let why = if django_hash::SUPPORTED.contains(&algorithm.as_str()) {
                format!(
                    "a damaged {algorithm} hash (malformed, or a cost beyond gatehouse's limits)"
                )
            } else {
                format!("a password hash of an unsupported algorithm ({algorithm})")
            };
            (
                format!("{UNUSABLE_PREFIX}{algorithm}"),
                Some(format!(
                    "user {pk} ({username}) has {why}: imported with an unusable password, \
                     so the old password will not log in"
                )),
            )
        }
    }
}

/// The algorithm of the Django hash that `map_password` replaced with an unusable one.
pub(super) fn unusable_algorithm(m: &Mapped) -> Option<&str> {
    m.warning.as_ref()?;
    m.user.password.strip_prefix(UNUSABLE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Parsed {
        parse_dump(&v.to_string(), NOW).expect("parses")
    }

    fn one(fields: Value) -> Mapped {
        let p = parse(json!([entry("auth.user", 1, fields)]));
        assert_eq!(p.users.len(), 1);
        p.users[0].clone()
    }

    fn err(text: &str) -> String {
        parse_dump(text, NOW).expect_err("must fail").to_string()
    }

    #[test]
    fn maps_every_field_of_the_seed_model() {
        let p = parse(json!([alice()]));
        assert_eq!(
            p.users,
            vec![Mapped {
                user: User {
                    id: 7,
                    username: "alice".into(),
                    email: "alice@example.com".into(),
                    first_name: "Alice".into(),
                    last_name: "Liddell".into(),
                    password: HASH.into(),
                    is_active: true,
                    is_staff: false,
                    date_joined: 1_706_702_400,
                    last_login: Some(1_709_284_530),
                    deleted_at: None,
                    token_version: 0,
                    groups: Vec::new(),
                },
                warning: None,
            }]
        );
        assert_eq!(p.other_models, 0);
    }

    #[test]
    fn defaults_for_missing_fields() {
        let u = one(json!({"username": "bob"})).user;
        assert_eq!(
            (
                u.email.as_str(),
                u.first_name.as_str(),
                u.last_name.as_str()
            ),
            ("", "", "")
        );
        assert!(u.is_active && !u.is_staff);
        assert_eq!(
            (u.date_joined, u.last_login, u.deleted_at),
            (NOW, None, None)
        );
        assert_eq!(u.password, "!");
        let u = one(json!({"username": "bob", "last_login": null, "first_name": null})).user;
        assert_eq!((u.last_login, u.first_name.as_str()), (None, ""));
    }

    #[test]
    fn deleted_or_inactive_users_are_soft_deleted() {
        let cases = [
            (json!({"is_active": true, "is_deleted": true}), false),
            (json!({"is_active": false, "is_deleted": false}), false),
            (json!({"is_active": false}), false),
            (json!({"is_deleted": true}), false),
            (json!({"is_active": true, "is_deleted": false}), true),
            (json!({}), true),
        ];
        for (mut flags, active) in cases {
            flags["username"] = json!("u");
            let u = one(flags.clone()).user;
            assert_eq!(u.is_active, active, "{flags}");
            assert_eq!(u.deleted_at, (!active).then_some(NOW), "{flags}");
        }
        // The seed's own deletion time wins when the dump has one.
        let u = one(
            json!({"username": "u", "is_deleted": true, "deleted_at": "2024-02-01T00:00:00+00:00"}),
        )
        .user;
        assert_eq!(u.deleted_at, Some(1_706_745_600));
        // An active user keeps no deletion time (restored in Django).
        let u = one(json!({"username": "u", "deleted_at": "2024-02-01T00:00:00Z"})).user;
        assert_eq!(u.deleted_at, None);
    }

    #[test]
    fn staff_or_superuser_is_staff() {
        for (staff, superuser, expected) in [
            (false, false, false),
            (true, false, true),
            (false, true, true),
            (true, true, true),
        ] {
            let u = one(json!({"username": "u", "is_staff": staff, "is_superuser": superuser}));
            assert_eq!(u.user.is_staff, expected, "{staff} {superuser}");
        }
    }

    #[test]
    fn django_datetimes() {
        for (s, t) in [
            ("2024-01-31T12:00:00Z", 1_706_702_400),
            ("2024-01-31T12:00:00.999Z", 1_706_702_400),
            ("2024-01-31T12:00:00.123456Z", 1_706_702_400),
            ("2024-01-31T12:00:00+00:00", 1_706_702_400),
            ("2024-01-31T13:00:00+01:00", 1_706_702_400),
            ("2024-01-31T12:00:00", 1_706_702_400),
            ("2024-01-31T12:00:00.500", 1_706_702_400),
            ("1969-12-31T23:59:59Z", 0),
        ] {
            assert_eq!(parse_datetime(s), Some(t), "{s}");
        }
        for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "1706702400"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn password_hashes() {
        let pw = |p: &str| one(json!({"username": "u", "password": p}));
        assert_eq!(
            pw(HASH),
            Mapped {
                warning: None,
                ..pw(HASH)
            }
        );
        assert_eq!(pw(HASH).user.password, HASH);
        let unusable = pw("!q8VbLdDMbDPMqmVYnJBF5g3JhUqyTLQ0IXmvWSdp");
        assert_eq!(
            (unusable.user.password.as_str(), unusable.warning),
            ("!q8VbLdDMbDPMqmVYnJBF5g3JhUqyTLQ0IXmvWSdp", None)
        );
        for (hash, stored) in [
            ("md5$salt$0123456789abcdef0123456789abcdef", "!md5"),
            (
                "sha1$salt$0123456789abcdef0123456789abcdef01234567",
                "!sha1",
            ),
            (
                "bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuuVqI1",
                "!bcrypt_sha256",
            ),
            (
                "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA",
                "!argon2",
            ),
            ("pbkdf2_sha256$0$salt$AAAA", "!pbkdf2_sha256"),
            ("0123456789abcdef0123456789abcdef", "!unsalted_md5"),
        ] {
            let m = pw(hash);
            assert_eq!(m.user.password, stored, "{hash}");
            let warning = m.warning.expect("a warning");
            assert!(warning.starts_with("user 1 (u) has "), "{warning}");
            assert!(warning.contains(&stored[1..]), "{warning}");
            assert!(
                !warning.contains(hash),
                "the hash is not repeated: {warning}"
            );
        }
    }

    #[test]
    fn every_django_hasher_a_project_uses_is_kept_for_login() {
        // Strings Django 5.0's hashers wrote (see src/auth/django_hash.rs).
        for hash in [
            HASH,
            "pbkdf2_sha1$1000$abcdefghijklmnop$AR2RwXrFEhlEjKKMlqCLvwZs+Mo=",
            "argon2$argon2id$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8",
            "argon2$argon2i$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcA$v2dMZUEyPvszvsQR+f/BSw",
            "bcrypt_sha256$$2b$04$ZaIkHZtUryg60WnsImt5qubn6USlySWl9THE9Vo2fVXhn9AQHWW/e",
            "bcrypt$$2b$04$/rVUC2Ubiz7n.A1nU6PEEuav6sZ1FUxxH5z3ldLFlthZKDwcrcGV6",
            "scrypt$16$abcdefghijklmnop$2$1$URtyT3Yz6mCeR7VdukQvF+Yhns3g39ZANp596i9taCPwKzQ+bS7HhT9BSQYnfPgaeERvYp7sTgXEXSzpScv5XA==",
        ] {
            let m = one(json!({"username": "u", "password": hash}));
            assert_eq!((m.user.password.as_str(), m.warning), (hash, None));
        }
    }

    #[test]
    fn other_models_are_counted_and_model_names_are_case_insensitive() {
        let p = parse(json!([
            {"model": "contenttypes.contenttype", "pk": 1, "fields": {"app_label": "x"}},
            entry("Accounts.User", 1, json!({"username": "a"})),
            entry("AUTH.USER", 2, json!({"username": "b"})),
            {"model": "auth.group", "fields": {"name": "no pk here is fine"}},
            {"model": "sessions.session", "pk": "abc", "fields": {}},
        ]));
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.other_models, 3);
    }

    #[test]
    fn repeated_pks_keep_the_first() {
        let p = parse(json!([simple(1, "a"), simple(2, "b"), simple(1, "c")]));
        let names: Vec<&str> = p.users.iter().map(|m| m.user.username.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            p.duplicates,
            ["user 1 (c): entry #3 repeats the pk of entry #1; only the first is imported"]
        );
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        assert_eq!(
            err("[\n  {\"model\": \"auth.user\",\n  }\n]"),
            "the dump is not valid JSON: trailing comma at line 3, column 3"
        );
        assert!(err("").starts_with("the dump is not valid JSON: EOF while parsing"));
        assert_eq!(
            parse_dump("[1,", NOW),
            Err(ImportError::NotJson {
                message: "EOF while parsing a value".into(),
                line: 1,
                column: 3
            })
        );
        assert_eq!(
            err(r#"{"model": "auth.user"}"#),
            "the dump must be a JSON array of objects, as `manage.py dumpdata` writes; found an object"
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": 1, "fields": {"username": "a"}}, 5]"#),
            "entry #2 of the dump is a number, not an object with \"model\", \"pk\" and \"fields\""
        );
        assert_eq!(
            err(r#"[{"pk": 1, "fields": {}}]"#),
            "entry #1 of the dump has no \"model\""
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "fields": {"username": "a"}}]"#),
            "entry #1 of the dump has no \"pk\""
        );
        assert_eq!(
            err(r#"[{"model": "accounts.user", "pk": 3}]"#),
            "entry #1 of the dump has no \"fields\""
        );
        assert_eq!(
            err(r#"[{"model": "accounts.user", "pk": 3, "fields": {"email": "a@b.c"}}]"#),
            "entry #1 of the dump (accounts.user pk 3) has no username"
        );
        assert_eq!(
            err(r#"[{"model": "accounts.user", "pk": 3, "fields": {"username": ""}}]"#),
            "entry #1 of the dump (accounts.user pk 3) has no username"
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": "3", "fields": {"username": "a"}}]"#),
            "entry #1 of the dump: \"pk\" must be a positive integer, not \"3\""
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": 0, "fields": {"username": "a"}}]"#),
            "entry #1 of the dump: \"pk\" must be a positive integer, not 0"
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": 1, "fields": []}]"#),
            "entry #1 of the dump: \"fields\" must be an object, not an array"
        );
        assert_eq!(
            err(
                r#"[{"model": "auth.user", "pk": 1, "fields": {"username": "a", "is_staff": "yes"}}]"#
            ),
            "entry #1 of the dump: \"fields.is_staff\" must be true or false, not \"yes\""
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": 1, "fields": {"username": 5}}]"#),
            "entry #1 of the dump: \"fields.username\" must be a string, not a number"
        );
        assert_eq!(
            err(r#"[{"model": "auth.user", "pk": 1, "fields": {"username": "a", "date_joined": "last week"}}]"#),
            "entry #1 of the dump: \"fields.date_joined\" is not an ISO-8601 date and time like \"2024-01-31T12:00:00Z\": \"last week\""
        );
        // An empty dump is fine: nothing to do.
        assert_eq!(parse_dump("[]", NOW), Ok(Parsed::default()));
    }
}
