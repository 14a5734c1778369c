//! `gatehouse import`: users from a Django `manage.py dumpdata` file (the seed's
//! `accounts.User` or Django's `auth.User`), keeping ids, flags, password hashes and groups.
//! `dump` streams and maps the file; `apply` writes the mapped users to the store;
//! `progress` shows how far it is.
//!
//! Two streaming passes, so memory does not grow with the file: the first reads and checks
//! every entry and keeps only what the second needs (the groups, a bitmap of the pks seen,
//! the repeated ones), so a malformed file imports nobody; the second reads the file again
//! and writes its users in batches. Each user is its own transaction: a failure keeps the
//! users written before it, and a second run skips the ids already present.

pub mod apply;
pub mod dump;
pub mod progress;

use crate::config::Config;
use crate::store::StoreError;
use progress::{Counting, Progress};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::Ordering;

pub use apply::import;
pub use dump::parse_dump;

/// Bytes read from the dump at a time.
const READ_BUFFER: usize = 256 * 1024;
/// Progress is looked at once per this many users.
const PROGRESS_EVERY: usize = 256;

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
    /// `auth.group` entries read (their names are what users' group ids mean).
    pub groups: usize,
    /// Entries of models other than the user and group models, ignored.
    pub other_models: usize,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Report {
    /// A first line of counts, then every conflict and warning on its own line.
    /// The run's `users.imported` event, by the operator: the counts, never a user's data.
    pub fn event(&self, dump: &Path) -> crate::store::Event {
        let file = dump
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::accounts::Actor::system()
            .event(crate::store::Action::UsersImported, None)
            .detail("file", file)
            .detail("imported", self.imported)
            .detail("skipped_existing", self.skipped_existing)
            .detail("conflicts", self.conflicts.len())
            .detail("warnings", self.warnings.len())
    }

    pub fn summary(&self) -> String {
        let mut out = format!(
            "imported {}; {} already present (skipped); {}; {}; {} read; {} of other models ignored\n",
            plural(self.imported, "user", "users"),
            self.skipped_existing,
            plural(self.conflicts.len(), "conflict", "conflicts"),
            plural(self.warnings.len(), "warning", "warnings"),
            plural(self.groups, "group", "groups"),
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

/// Opens the dump for one pass, counting the bytes read.
fn open(
    dump: &Path,
) -> Result<
    (
        impl std::io::Read,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    ),
    String,
> {
    let file = File::open(dump).map_err(|e| format!("cannot read {}: {e}", dump.display()))?;
    let (counting, read) = Counting::new(file);
    Ok((BufReader::with_capacity(READ_BUFFER, counting), read))
}

/// The command: opens the store, checks the whole file (first pass), writes its users
/// (second pass), prints the report; progress on stderr.
pub fn run(config: &Config, dump: &Path) -> Result<(), String> {
    let total = std::fs::metadata(dump)
        .map_err(|e| format!("cannot read {}: {e}", dump.display()))?
        .len();
    let store = crate::store::open(config).map_err(|e| e.to_string())?;
    crate::audit::start(&store, &config.audit)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let in_file = |e: ImportError| format!("{}: {e}", dump.display());
    let now = crate::clock::now();

    let (reader, read) = open(dump)?;
    let mut progress = Progress::start("checking", total);
    let plan = dump::check(reader, now, |users| {
        if users % PROGRESS_EVERY == 0 {
            progress.update(read.load(Ordering::Relaxed), users);
        }
    })
    .map_err(in_file)?;
    progress.finish(plan.users);

    let (reader, read) = open(dump)?;
    let mut progress = Progress::start("writing", total);
    let report = apply::write(store.as_ref(), &runtime, reader, &plan, now, |users| {
        if users % PROGRESS_EVERY == 0 {
            progress.update(read.load(Ordering::Relaxed), users);
        }
    })
    .map_err(in_file)?;
    progress.finish(plan.users);
    // One event for the run (each user's record is the import itself).
    let event = report.event(dump);
    let recorded = runtime.block_on(store.record(event.into()));
    println!("{}", report.summary());
    // The event's line (with `audit.sink = "stdout"`) after the report.
    crate::access_log::flush();
    recorded.map_err(|e| format!("the import's audit event: {e}"))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{json, Value};

    pub const NOW: u64 = 1_700_000_000;
    pub const HASH: &str =
        "pbkdf2_sha256$1000$abcdefghijklmnop$lVrs+xQc/koY8RyFYI4yStV3rpLN9BGn5QPfeITgb7s=";

    pub fn entry(model: &str, pk: u64, fields: Value) -> Value {
        json!({"model": model, "pk": pk, "fields": fields})
    }

    pub fn alice() -> Value {
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

    pub fn simple(pk: u64, name: &str) -> Value {
        entry(
            "auth.user",
            pk,
            json!({"username": name, "email": format!("{name}@example.com"), "password": HASH}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_counts_then_every_line() {
        let report = Report {
            imported: 1,
            skipped_existing: 2,
            conflicts: vec!["user 2 (A): the username already belongs to user 1 (a)".into()],
            warnings: vec![],
            unusable_by_algorithm: BTreeMap::new(),
            groups: 1,
            other_models: 3,
        };
        assert_eq!(
            report.summary(),
            "imported 1 user; 2 already present (skipped); 1 conflict; 0 warnings; 1 group read; 3 entries of other models ignored\n\
             conflicts (not imported):\n  - user 2 (A): the username already belongs to user 1 (a)\n"
        );
        assert_eq!(
            Report::default().summary(),
            "imported 0 users; 0 already present (skipped); 0 conflicts; 0 warnings; 0 groups read; 0 entries of other models ignored\n"
        );
    }
}
