//! Reading a Django `dumpdata` file as a stream: entry by entry (never the whole file in
//! memory), each mapped to a gatehouse user, a group, or an entry of another model. Nothing
//! here touches the store.

use super::ImportError;
use crate::auth::django_hash::{self, HashKind, UNUSABLE_PREFIX};
use crate::store::{group_names, User, GROUP_NAME_MAX};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// The user models gatehouse reads (compared case-insensitively: Django writes lower case).
pub const USER_MODELS: [&str; 2] = ["accounts.user", "auth.user"];
/// Django's group model.
pub const GROUP_MODEL: &str = "auth.group";

/// How a user entry names one of its groups: by primary key (`dumpdata`), or by natural key
/// (`dumpdata --natural-foreign`: `["billing"]`, or the bare name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(u64),
    Name(String),
}

/// One user of the dump, ready to insert once its groups are named (`GroupTable::resolve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub user: User,
    /// Set when something of the user could not be kept (an unsupported password hash).
    pub warning: Option<String>,
    /// The user's `groups` as the dump writes them.
    pub group_refs: Vec<GroupRef>,
}

/// One entry of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    User(Box<Mapped>),
    /// An `auth.group` (without a pk when dumped with `--natural-primary`).
    Group {
        pk: Option<u64>,
        name: String,
    },
    Other,
}

/// The groups of a dump by pk: what a user's group ids mean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTable {
    by_pk: HashMap<u64, String>,
    /// Groups read, with or without a pk.
    pub count: usize,
}

impl GroupTable {
    pub fn add(&mut self, pk: Option<u64>, name: String) {
        self.count += 1;
        if let Some(pk) = pk {
            // A repeated pk keeps its first name, as for users.
            self.by_pk.entry(pk).or_insert(name);
        }
    }

    /// The user's group names (sorted, each once) and the ids the dump holds no group for.
    pub fn resolve(&self, refs: &[GroupRef]) -> (Vec<String>, Vec<u64>) {
        let mut names = Vec::with_capacity(refs.len());
        let mut unknown = Vec::new();
        for r in refs {
            match r {
                GroupRef::Name(name) => names.push(name.clone()),
                GroupRef::Id(pk) => match self.by_pk.get(pk) {
                    Some(name) => names.push(name.clone()),
                    None => unknown.push(*pk),
                },
            }
        }
        (group_names(names), unknown)
    }
}

/// The dump read whole and mapped (tests and small files; `import` streams instead).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// In dump order, each pk once, groups resolved.
    pub users: Vec<Mapped>,
    /// Users of the dump that repeat an earlier pk (the first one is imported).
    pub duplicates: Vec<String>,
    pub groups: usize,
    /// Group ids that users name but the dump holds no `auth.group` for, with how many users.
    pub unknown_groups: BTreeMap<u64, usize>,
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

/// A syntax error of the file, with serde_json's position taken out of the message.
fn not_json(e: &serde_json::Error) -> ImportError {
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
}

/// What the top level of the file turned out to be.
enum TopLevel {
    Array,
    Other(&'static str),
}

/// Hands each element of the top-level array to `each` as it is parsed; after the first
/// error of `each` the rest is still parsed (a syntax error later in the file wins, as when
/// the whole file was read first) but no longer handed over.
struct Entries<'a, F> {
    each: &'a mut F,
    failure: &'a mut Option<ImportError>,
    count: &'a mut usize,
}

impl<'de, F: FnMut(usize, Value) -> Result<(), ImportError>> Visitor<'de> for Entries<'_, F> {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while let Some(entry) = seq.next_element::<Value>()? {
            *self.count += 1;
            if self.failure.is_none() {
                if let Err(e) = (self.each)(*self.count, entry) {
                    *self.failure = Some(e);
                }
            }
        }
        Ok(TopLevel::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("an object"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("null"))
    }
}

impl<'de, F: FnMut(usize, Value) -> Result<(), ImportError>> DeserializeSeed<'de>
    for Entries<'_, F>
{
    type Value = TopLevel;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<TopLevel, D::Error> {
        d.deserialize_any(self)
    }
}

/// Streams the entries of a dump: `each(entry number, entry)` for every element of the
/// top-level array, one at a time, so memory does not grow with the file. Returns how many
/// entries there were. A file that is not JSON, or not an array, is refused whole; an error
/// of `each` is returned once the whole file has been read (a syntax error wins over it).
pub fn for_each_entry<R: Read>(
    reader: R,
    mut each: impl FnMut(usize, Value) -> Result<(), ImportError>,
) -> Result<usize, ImportError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let (mut failure, mut count) = (None, 0);
    let top = Entries {
        each: &mut each,
        failure: &mut failure,
        count: &mut count,
    }
    .deserialize(&mut de)
    .map_err(|e| not_json(&e))?;
    de.end().map_err(|e| not_json(&e))?;
    if let TopLevel::Other(found) = top {
        return Err(ImportError::NotAnArray { found });
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(count),
    }
}

/// Reads one entry: a user of a user model (checked and mapped), a group, or another model.
/// `now` (unix seconds) stands in for a missing `date_joined` and a soft delete's time.
pub fn read_entry(number: usize, entry: &Value, now: u64) -> Result<Entry, ImportError> {
    let Value::Object(entry) = entry else {
        return Err(ImportError::EntryNotObject {
            entry: number,
            found: kind_of(entry),
        });
    };
    let model = match entry.get("model") {
        Some(Value::String(m)) => m.to_ascii_lowercase(),
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
    let is_user = USER_MODELS.contains(&model.as_str());
    if !is_user && model != GROUP_MODEL {
        return Ok(Entry::Other);
    }
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
    let pk = match entry.get("pk") {
        // A group dumped with --natural-primary has none; it is named by its name.
        None | Some(Value::Null) if !is_user => None,
        None | Some(Value::Null) => {
            return Err(ImportError::MissingField {
                entry: number,
                field: "pk",
            })
        }
        Some(v) => Some(
            v.as_u64()
                .filter(|&pk| pk > 0)
                .ok_or(ImportError::BadField {
                    entry: number,
                    field: "pk".into(),
                    problem: format!("must be a positive integer, not {v}"),
                })?,
        ),
    };
    let f = Fields {
        entry: number,
        map: fields,
    };
    match pk {
        Some(pk) if is_user => {
            map_user(number, &model, pk, fields, now).map(|m| Entry::User(Box::new(m)))
        }
        _ => {
            let name = f.text("name")?;
            if name.is_empty() || name.chars().count() > GROUP_NAME_MAX {
                return Err(f.bad(
                    "name",
                    format!(
                        "must be a group name of 1 to {GROUP_NAME_MAX} characters, not {name:?}"
                    ),
                ));
            }
            Ok(Entry::Group { pk, name })
        }
    }
}

/// Primary keys seen: a bitmap for the dense ids Django assigns (a million users take
/// 125 KiB), a set for the rest.
#[derive(Default)]
pub struct PkSet {
    dense: Vec<u64>,
    sparse: HashSet<u64>,
}

/// Ids below this live in the bitmap (at most 8 MiB of it).
const DENSE_PKS: u64 = 1 << 26;

impl PkSet {
    /// `false` when `pk` was already there.
    pub fn insert(&mut self, pk: u64) -> bool {
        if pk >= DENSE_PKS {
            return self.sparse.insert(pk);
        }
        let (word, bit) = ((pk / 64) as usize, 1u64 << (pk % 64));
        if self.dense.len() <= word {
            self.dense.resize(word + 1, 0);
        }
        let fresh = self.dense[word] & bit == 0;
        self.dense[word] |= bit;
        fresh
    }
}

/// A user entry that repeats the pk of an earlier one (only the first is imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    pub entry: usize,
    pub pk: u64,
    pub username: String,
}

/// What the first pass over a dump found: everything needed to write it in a second pass,
/// and nothing that grows with the number of users except the repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub users: usize,
    pub groups: GroupTable,
    pub repeats: Vec<Repeat>,
    pub other_models: usize,
}

/// The first pass: every entry read and checked, users mapped and dropped again. `seen` is
/// called after each entry with the number of users so far (progress).
pub fn check<R: Read>(
    reader: R,
    now: u64,
    mut seen: impl FnMut(usize),
) -> Result<Plan, ImportError> {
    let mut plan = Plan::default();
    let mut pks = PkSet::default();
    for_each_entry(reader, |number, entry| {
        match read_entry(number, &entry, now)? {
            Entry::User(m) => {
                plan.users += 1;
                if !pks.insert(m.user.id) {
                    plan.repeats.push(Repeat {
                        entry: number,
                        pk: m.user.id,
                        username: m.user.username,
                    });
                }
            }
            Entry::Group { pk, name } => plan.groups.add(pk, name),
            Entry::Other => plan.other_models += 1,
        }
        seen(plan.users);
        Ok(())
    })?;
    Ok(plan)
}

/// The line reporting a repeated pk.
pub fn repeat_line(r: &Repeat, first: usize) -> String {
    format!(
        "user {} ({}): entry #{} repeats the pk of entry #{first}; only the first is imported",
        r.pk, r.username, r.entry
    )
}

/// Reads a whole dump held in memory: the users it holds, mapped, with their groups named.
pub fn parse_dump(dump_json: &str, now: u64) -> Result<Parsed, ImportError> {
    let plan = check(dump_json.as_bytes(), now, |_| {})?;
    let mut parsed = Parsed {
        groups: plan.groups.count,
        other_models: plan.other_models,
        ..Parsed::default()
    };
    let mut first: HashMap<u64, usize> = HashMap::new();
    let repeated: HashSet<usize> = plan.repeats.iter().map(|r| r.entry).collect();
    for_each_entry(dump_json.as_bytes(), |number, entry| {
        if let Entry::User(mut m) = read_entry(number, &entry, now)? {
            if repeated.contains(&number) {
                return Ok(());
            }
            first.insert(m.user.id, number);
            let (names, unknown) = plan.groups.resolve(&m.group_refs);
            m.user.groups = names;
            for pk in unknown {
                *parsed.unknown_groups.entry(pk).or_default() += 1;
            }
            parsed.users.push(*m);
        }
        Ok(())
    })?;
    parsed.duplicates = plan
        .repeats
        .iter()
        .map(|r| repeat_line(r, first.get(&r.pk).copied().unwrap_or(0)))
        .collect();
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

    /// A user's `groups`: pks, or natural keys (`["billing"]`, or the bare name); missing or
    /// null is none.
    fn group_refs(&self, name: &str) -> Result<Vec<GroupRef>, ImportError> {
        let items = match self.map.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(self.bad(
                    name,
                    format!(
                        "must be a list of group ids or natural keys, not {}",
                        kind_of(other)
                    ),
                ))
            }
        };
        let mut refs = Vec::with_capacity(items.len());
        for item in items {
            let r = match item {
                Value::Number(n) => n.as_u64().filter(|&pk| pk > 0).map(GroupRef::Id),
                Value::String(s) => Some(GroupRef::Name(s.clone())),
                Value::Array(key) => match key.as_slice() {
                    [Value::String(s)] => Some(GroupRef::Name(s.clone())),
                    _ => None,
                },
                _ => None,
            };
            refs.push(r.ok_or_else(|| {
                self.bad(
                    name,
                    format!(
                        "holds {item}, not a group id (a positive integer) or a natural key \
                         like [\"billing\"]"
                    ),
                )
            })?);
        }
        Ok(refs)
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
    let group_refs = f.group_refs("groups")?;
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
            // Django keeps no such flag: an imported address counts as verified (SPEC §10).
            email_verified: true,
            ended: Vec::new(),
            is_service: false,
        },
        warning,
        group_refs,
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
                    email_verified: true,
                    ended: Vec::new(),
                    is_service: false,
                },
                warning: None,
                group_refs: Vec::new(),
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
        assert_eq!((p.other_models, p.groups), (2, 1));
    }

    #[test]
    fn groups_by_id_or_natural_key_wherever_they_sit_in_the_file() {
        let group =
            |pk: u64, name: &str| entry("auth.group", pk, json!({"name": name, "permissions": []}));
        let with = |pk: u64, name: &str, groups: Value| {
            let mut u = simple(pk, name);
            u["fields"]["groups"] = groups;
            u
        };
        let p = parse(json!([
            with(1, "a", json!([5, 3])),
            group(3, "ops"),
            with(2, "b", json!([["billing"], "ops", 3])),
            with(3, "c", json!([3, 9, 9])),
            with(4, "d", json!([])),
            group(5, "billing"),
            {"model": "auth.group", "fields": {"name": "natural primary"}},
        ]));
        let groups: Vec<Vec<String>> = p.users.iter().map(|m| m.user.groups.clone()).collect();
        assert_eq!(
            groups,
            [
                vec!["billing".to_string(), "ops".into()],
                vec!["billing".into(), "ops".into()],
                vec!["ops".into()],
                vec![],
            ]
        );
        assert_eq!(p.groups, 3);
        assert_eq!(p.unknown_groups, BTreeMap::from([(9, 2)]));
        for (groups, shown) in [
            (
                json!("ops"),
                "must be a list of group ids or natural keys, not a string",
            ),
            (json!([0]), "holds 0, not a group id"),
            (json!([["a", "b"]]), "holds [\"a\",\"b\"], not a group id"),
            (json!([true]), "holds true, not a group id"),
        ] {
            let text = json!([with(1, "a", groups)]).to_string();
            let e = err(&text);
            assert!(
                e.starts_with("entry #1 of the dump: \"fields.groups\" "),
                "{e}"
            );
            assert!(e.contains(shown), "{e}");
        }
        let e = err(&json!([{"model": "auth.group", "pk": 1, "fields": {"name": ""}}]).to_string());
        assert!(
            e.contains("\"fields.name\" must be a group name of 1 to 150 characters"),
            "{e}"
        );
    }

    #[test]
    fn streaming_keeps_the_whole_file_checks() {
        // A syntax error after a bad entry is what is reported, as when the file was read whole.
        assert!(err("[5, {").starts_with("the dump is not valid JSON"));
        for (text, found) in [
            ("5", "a number"),
            ("\"x\"", "a string"),
            ("null", "null"),
            ("true", "a boolean"),
        ] {
            assert_eq!(
                parse_dump(text, NOW),
                Err(ImportError::NotAnArray { found }),
                "{text}"
            );
        }
        assert!(err("[] []").starts_with("the dump is not valid JSON: trailing characters"));
        let mut numbers = Vec::new();
        let n = for_each_entry(&b"[{}, [], 3]"[..], |i, _| {
            numbers.push(i);
            Ok(())
        })
        .expect("streams");
        assert_eq!((n, numbers), (3, vec![1, 2, 3]));
    }

    #[test]
    fn pk_sets_hold_dense_and_sparse_ids() {
        let mut set = PkSet::default();
        for pk in [1, 64, 65, DENSE_PKS - 1, DENSE_PKS, u64::MAX] {
            assert!(set.insert(pk), "{pk}");
            assert!(!set.insert(pk), "{pk} again");
        }
        assert!(set.insert(2));
        assert_eq!(set.sparse.len(), 2);
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
