//! `gatehouse import`: users from a Django `manage.py dumpdata` file (the seed's
//! `accounts.User` or Django's `auth.User`), keeping ids, flags and `pbkdf2_sha256` hashes.
//!
//! The whole file is read and checked before anything is written, so a malformed file
//! imports nobody. Each user is then its own transaction: a failure keeps the users written
//! before it, and a second run skips the ids already present.

use crate::auth::django_hash::{self, HashKind, UNUSABLE_PREFIX};
use crate::store::{StoreError, User, UserStore};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// The user models gatehouse reads (compared case-insensitively: Django writes lower case).
pub const USER_MODELS: [&str; 2] = ["accounts.user", "auth.user"];

/// Users written per durable flush: each is still its own transaction.
const BATCH: usize = 256;

/// A dump gatehouse cannot read; nothing was imported (except for `Store`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the dump is not valid JSON: {message} at line {line}, column {column}")]
    NotJson {
        message: String,
        line: usize,
        column: usize,
    },
    #[error(
        "the dump must be a JSON array of objects, as `manage.py dumpdata` writes; found {found}"
    )]
    NotAnArray { found: &'static str },
    #[error("entry #{entry} of the dump is {found}, not an object with \"model\", \"pk\" and \"fields\"")]
    EntryNotObject { entry: usize, found: &'static str },
    #[error("entry #{entry} of the dump has no \"{field}\"")]
    MissingField { entry: usize, field: &'static str },
    #[error("entry #{entry} of the dump ({model} pk {pk}) has no username")]
    NoUsername {
        entry: usize,
        model: String,
        pk: u64,
    },
    #[error("entry #{entry} of the dump: \"{field}\" {problem}")]
    BadField {
        entry: usize,
        field: String,
        problem: String,
    },
    #[error("store error at user {pk}, after {imported} users were imported (run the import again to continue): {source}")]
    Store {
        pk: u64,
        imported: usize,
        source: StoreError,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub imported: usize,
    /// Users whose id was already present with the same username (an earlier run).
    pub skipped_existing: usize,
    /// Users not imported, one line each: a name, email or id that belongs to someone else.
    pub conflicts: Vec<String>,
    /// Users imported with something lost, one line each (an unsupported password hash).
    pub warnings: Vec<String>,
    /// Users imported with an unusable password because gatehouse cannot verify their
    /// Django hash, counted by the hash's algorithm (`md5`, `crypt`, a damaged `bcrypt`, ...).
    pub unusable_by_algorithm: BTreeMap<String, usize>,
    /// Entries of models other than the user model, ignored.
    pub other_models: usize,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Report {
    /// A first line of counts, then every conflict and warning on its own line.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "imported {}; {} already present (skipped); {}; {}; {} of other models ignored\n",
            plural(self.imported, "user", "users"),
            self.skipped_existing,
            plural(self.conflicts.len(), "conflict", "conflicts"),
            plural(self.warnings.len(), "warning", "warnings"),
            plural(self.other_models, "entry", "entries"),
        );
        if !self.unusable_by_algorithm.is_empty() {
            let counts: Vec<String> = self
                .unusable_by_algorithm
                .iter()
                .map(|(algorithm, n)| format!("{algorithm}: {}", plural(*n, "user", "users")))
                .collect();
            out.push_str(&format!(
                "password hashes gatehouse cannot verify, imported as unusable (those users must reset their password): {}\n",
                counts.join(", ")
            ));
        }
        for (title, lines) in [
            ("conflicts (not imported):", &self.conflicts),
            ("warnings:", &self.warnings),
        ] {
            if !lines.is_empty() {
                out.push_str(title);
                out.push('\n');
                for line in lines {
                    out.push_str("  - ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

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
fn unusable_algorithm(m: &Mapped) -> Option<&str> {
    m.warning.as_ref()?;
    m.user.password.strip_prefix(UNUSABLE_PREFIX)
}

/// Why `user` cannot be imported next to what the store already holds, if it cannot.
enum Check {
    Insert,
    AlreadyThere,
    Conflict(String),
}

fn check(store: &dyn UserStore, user: &User) -> Result<Check, StoreError> {
    let who = format!("user {} ({})", user.id, user.username);
    if let Some(existing) = store.get_user(user.id)? {
        if existing.username.to_lowercase() == user.username.to_lowercase() {
            return Ok(Check::AlreadyThere);
        }
        return Ok(Check::Conflict(format!(
            "{who}: id {} already belongs to {:?} in gatehouse",
            user.id, existing.username
        )));
    }
    if let Some(owner) = store.find_by_username(&user.username)? {
        return Ok(Check::Conflict(format!(
            "{who}: the username already belongs to user {} ({})",
            owner.id, owner.username
        )));
    }
    if let Some(owner) = store.email_owner(&user.email)? {
        return Ok(Check::Conflict(email_conflict(&who, &user.email, owner)));
    }
    Ok(Check::Insert)
}

fn email_conflict(who: &str, email: &str, owner: u64) -> String {
    if email.is_empty() {
        format!(
            "{who}: a blank email, as user {owner} has (gatehouse needs a distinct email per user)"
        )
    } else {
        format!("{who}: the email {email} already belongs to user {owner}")
    }
}

/// Imports the users of a `dumpdata` file into `store`. A malformed file imports nobody;
/// conflicts and unsupported hashes are reported, not fatal; a store failure stops the import
/// with the users written so far kept.
pub async fn import(store: &dyn UserStore, dump_json: &str) -> Result<Report, ImportError> {
    let parsed = parse_dump(dump_json, crate::auth::tokens::now())?;
    let mut report = Report {
        other_models: parsed.other_models,
        ..Report::default()
    };
    let failed = |pk: u64, imported: usize| {
        move |source: StoreError| ImportError::Store {
            pk,
            imported,
            source,
        }
    };
    for chunk in parsed.users.chunks(BATCH) {
        let mut batch = Vec::with_capacity(chunk.len());
        for m in chunk {
            match check(store, &m.user).map_err(failed(m.user.id, report.imported))? {
                Check::Insert => batch.push(m),
                Check::AlreadyThere => report.skipped_existing += 1,
                Check::Conflict(c) => report.conflicts.push(c),
            }
        }
        let Some(first) = batch.first() else {
            continue;
        };
        let results = store
            .insert_users(batch.iter().map(|m| m.user.clone()).collect())
            .await
            .map_err(failed(first.user.id, report.imported))?;
        let mut fatal = None;
        for (m, result) in batch.iter().zip(results) {
            let who = format!("user {} ({})", m.user.id, m.user.username);
            match result {
                Ok(_) => {
                    report.imported += 1;
                    report.warnings.extend(m.warning.clone());
                    if let Some(algorithm) = unusable_algorithm(m) {
                        *report
                            .unusable_by_algorithm
                            .entry(algorithm.to_string())
                            .or_default() += 1;
                    }
                }
                // Two users of this batch share a name: the first one won.
                Err(StoreError::UsernameTaken) => {
                    let owner = store.find_by_username(&m.user.username).ok().flatten();
                    report.conflicts.push(match owner {
                        Some(o) => format!(
                            "{who}: the username already belongs to user {} ({})",
                            o.id, o.username
                        ),
                        None => format!("{who}: the username is taken"),
                    });
                }
                Err(StoreError::EmailTaken) => {
                    match store.email_owner(&m.user.email).ok().flatten() {
                        Some(o) => report
                            .conflicts
                            .push(email_conflict(&who, &m.user.email, o)),
                        None => report.conflicts.push(format!("{who}: the email is taken")),
                    }
                }
                Err(e) => {
                    fatal.get_or_insert((m.user.id, e));
                }
            }
        }
        if let Some((pk, e)) = fatal {
            return Err(failed(pk, report.imported)(e));
        }
    }
    report.conflicts.splice(0..0, parsed.duplicates);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUser, SledStore, StateFilter};
    use crate::test_support::block;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const HASH: &str =
        "pbkdf2_sha256$1000$abcdefghijklmnop$lVrs+xQc/koY8RyFYI4yStV3rpLN9BGn5QPfeITgb7s=";

    fn entry(model: &str, pk: u64, fields: Value) -> Value {
        json!({"model": model, "pk": pk, "fields": fields})
    }

    fn alice() -> Value {
        entry(
            "accounts.user",
            7,
            json!({
                "password": HASH,
                "last_login": "2024-03-01T09:15:30.123Z",
                "is_superuser": false,
                "username": "alice",
                "first_name": "Alice",
                "last_name": "Liddell",
                "email": "alice@example.com",
                "is_staff": false,
                "is_active": true,
                "date_joined": "2024-01-31T12:00:00Z",
                "is_deleted": false,
                "groups": [],
                "user_permissions": []
            }),
        )
    }

    fn simple(pk: u64, name: &str) -> Value {
        entry(
            "auth.user",
            pk,
            json!({"username": name, "email": format!("{name}@example.com"), "password": HASH}),
        )
    }

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

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        (dir, store)
    }

    #[test]
    fn imports_keep_ids_and_registrations_continue_after_the_highest() {
        let (_dir, store) = store();
        let dump = json!([alice(), simple(3, "bob"), simple(42, "carol")]).to_string();
        block(async {
            let report = import(&store, &dump).await.expect("import");
            assert_eq!(
                report,
                Report {
                    imported: 3,
                    ..Report::default()
                }
            );
            let alice = store.get_user(7).expect("get").expect("alice");
            assert_eq!(
                (alice.username.as_str(), alice.password.as_str()),
                ("alice", HASH)
            );
            assert_eq!(
                store.find_by_username("CAROL").expect("find").map(|u| u.id),
                Some(42)
            );
            let next = store
                .create_user(NewUser {
                    username: "dave".into(),
                    email: "dave@example.com".into(),
                    first_name: String::new(),
                    last_name: String::new(),
                    password: "x".into(),
                    is_staff: false,
                    date_joined: 0,
                })
                .await
                .expect("create");
            assert_eq!(next.id, 43);
        });
    }

    #[test]
    fn a_second_run_skips_what_the_first_imported() {
        let (_dir, store) = store();
        let dump = json!([simple(1, "a"), simple(2, "b"), simple(9, "c")]).to_string();
        block(async {
            assert_eq!(import(&store, &dump).await.expect("first").imported, 3);
            let again = import(&store, &dump).await.expect("second");
            assert_eq!(
                again,
                Report {
                    skipped_existing: 3,
                    ..Report::default()
                }
            );
            assert_eq!(store.count_users(&StateFilter::All).expect("count"), 3);
        });
    }

    #[test]
    fn clashing_names_and_emails_are_conflicts_not_failures() {
        let (_dir, store) = store();
        let mut same_email = simple(4, "dora");
        same_email["fields"]["email"] = json!("A@example.com");
        let mut blank1 = simple(5, "e1");
        blank1["fields"]["email"] = json!("");
        let mut blank2 = simple(6, "e2");
        blank2["fields"]["email"] = json!("");
        let dump = json!([
            simple(1, "a"),
            simple(2, "A"),
            simple(3, "b"),
            same_email,
            blank1,
            blank2,
            simple(1, "z"),
        ])
        .to_string();
        block(async {
            let report = import(&store, &dump).await.expect("import");
            assert_eq!(report.imported, 3);
            assert_eq!(
                report.conflicts,
                [
                    "user 1 (z): entry #7 repeats the pk of entry #1; only the first is imported",
                    "user 2 (A): the username already belongs to user 1 (a)",
                    "user 4 (dora): the email A@example.com already belongs to user 1",
                    "user 6 (e2): a blank email, as user 5 has (gatehouse needs a distinct email per user)",
                ]
            );
            // The same id holding another name is not "already imported".
            let other = json!([simple(3, "someone_else")]).to_string();
            let report = import(&store, &other).await.expect("import");
            assert_eq!(report.skipped_existing, 0);
            assert_eq!(
                report.conflicts,
                ["user 3 (someone_else): id 3 already belongs to \"b\" in gatehouse"]
            );
        });
    }

    #[test]
    fn unsupported_hashes_are_imported_unusable_with_a_warning() {
        let (_dir, store) = store();
        let mut md5 = simple(1, "m");
        md5["fields"]["password"] = json!("md5$salt$0123456789abcdef0123456789abcdef");
        let mut md5_too = simple(3, "m2");
        md5_too["fields"]["password"] = json!("md5$pepper$0123456789abcdef0123456789abcdef");
        let mut crypt = simple(4, "c");
        crypt["fields"]["password"] = json!("crypt$$abN/qM.L/H8EQ");
        let mut damaged = simple(5, "d");
        damaged["fields"]["password"] = json!("bcrypt$$2b$31$tooshort");
        let dump = json!([md5, simple(2, "ok"), md5_too, crypt, damaged]).to_string();
        block(async {
            let report = import(&store, &dump).await.expect("import");
            assert_eq!(report.imported, 5);
            assert_eq!(report.warnings.len(), 4);
            assert_eq!(
                report.unusable_by_algorithm,
                BTreeMap::from([
                    ("bcrypt".to_string(), 1),
                    ("crypt".to_string(), 1),
                    ("md5".to_string(), 2)
                ])
            );
            assert!(
                report.summary().contains(
                    "imported as unusable (those users must reset their password): \
                     bcrypt: 1 user, crypt: 1 user, md5: 2 users\n"
                ),
                "{}",
                report.summary()
            );
            assert!(
                report.warnings[3].contains("a damaged bcrypt hash"),
                "{:?}",
                report.warnings
            );
            assert!(
                report.warnings[0].contains("(md5)"),
                "{:?}",
                report.warnings
            );
            let m = store.get_user(1).expect("get").expect("m");
            assert_eq!(m.password, "!md5");
            assert!(django_hash::is_unusable(&m.password));
            // Skipped on a second run: no warning about a user not imported again.
            let again = import(&store, &dump).await.expect("again");
            assert!(again.warnings.is_empty());
            assert!(again.unusable_by_algorithm.is_empty());
        });
    }

    #[test]
    fn a_malformed_file_imports_nobody() {
        let (_dir, store) = store();
        let dump = json!([simple(1, "a"), {"model": "auth.user", "pk": 2}]).to_string();
        block(async {
            assert_eq!(
                import(&store, &dump).await,
                Err(ImportError::MissingField {
                    entry: 2,
                    field: "fields"
                })
            );
            assert_eq!(store.count_users(&StateFilter::All).expect("count"), 0);
        });
    }

    #[test]
    fn many_users_span_batches() {
        let (_dir, store) = store();
        let users: Vec<Value> = (1..=(BATCH as u64 * 2 + 3))
            .map(|i| simple(i * 2, &format!("user{i}")))
            .collect();
        block(async {
            let report = import(&store, &Value::Array(users).to_string())
                .await
                .expect("import");
            assert_eq!(report.imported, BATCH * 2 + 3);
            assert_eq!(
                store.count_users(&StateFilter::All).expect("count"),
                BATCH * 2 + 3
            );
        });
    }

    #[test]
    fn summary_lists_counts_then_every_line() {
        let report = Report {
            imported: 1,
            skipped_existing: 2,
            conflicts: vec!["user 2 (A): the username already belongs to user 1 (a)".into()],
            warnings: vec![],
            unusable_by_algorithm: BTreeMap::new(),
            other_models: 3,
        };
        assert_eq!(
            report.summary(),
            "imported 1 user; 2 already present (skipped); 1 conflict; 0 warnings; 3 entries of other models ignored\n\
             conflicts (not imported):\n  - user 2 (A): the username already belongs to user 1 (a)\n"
        );
        assert_eq!(
            Report::default().summary(),
            "imported 0 users; 0 already present (skipped); 0 conflicts; 0 warnings; 0 entries of other models ignored\n"
        );
    }
}
