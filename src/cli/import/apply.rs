//! The second pass over a dump: the users streamed again, their groups named, each checked
//! against what the store holds (already imported, or a name, email or id that belongs to
//! someone else), then written in batches of transactions made durable by one flush.

use super::dump::{
    check, for_each_entry, read_entry, repeat_line, unusable_algorithm, Entry, Mapped, Plan,
};
use super::{ImportError, Report};
use crate::store::{name_key, StoreError, User, UserStore};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use tokio::runtime::Runtime;

/// Users written per durable flush: each is still its own transaction. Also the most users
/// held in memory at once.
pub const BATCH: usize = 256;

/// Why `user` cannot be imported next to what the store already holds, if it cannot.
enum Check {
    Insert,
    AlreadyThere,
    Conflict(String),
}

async fn check_user(store: &dyn UserStore, user: &User) -> Result<Check, StoreError> {
    let who = format!("user {} ({})", user.id, user.username);
    if let Some(existing) = store.get_user(user.id).await? {
        if name_key(&existing.username) == name_key(&user.username) {
            return Ok(Check::AlreadyThere);
        }
        return Ok(Check::Conflict(format!(
            "{who}: id {} already belongs to {:?} in gatehouse",
            user.id, existing.username
        )));
    }
    if let Some(owner) = store.find_by_username(&user.username).await? {
        return Ok(Check::Conflict(format!(
            "{who}: the username already belongs to user {} ({})",
            owner.id, owner.username
        )));
    }
    if let Some(owner) = store.email_owner(&user.email).await? {
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

/// Checks and writes one batch, adding to `report`; a store failure stops the import.
async fn write_batch(
    store: &dyn UserStore,
    chunk: Vec<Mapped>,
    report: &mut Report,
) -> Result<(), ImportError> {
    let failed = |pk: u64, imported: usize| {
        move |source: StoreError| ImportError::Store {
            pk,
            imported,
            source,
        }
    };
    let mut batch = Vec::with_capacity(chunk.len());
    for m in chunk {
        match check_user(store, &m.user)
            .await
            .map_err(failed(m.user.id, report.imported))?
        {
            Check::Insert => batch.push(m),
            Check::AlreadyThere => report.skipped_existing += 1,
            Check::Conflict(c) => report.conflicts.push(c),
        }
    }
    let Some(first) = batch.first() else {
        return Ok(());
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
                let owner = store
                    .find_by_username(&m.user.username)
                    .await
                    .ok()
                    .flatten();
                report.conflicts.push(match owner {
                    Some(o) => format!(
                        "{who}: the username already belongs to user {} ({})",
                        o.id, o.username
                    ),
                    None => format!("{who}: the username is taken"),
                });
            }
            Err(StoreError::EmailTaken) => {
                match store.email_owner(&m.user.email).await.ok().flatten() {
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
    match fatal {
        Some((pk, e)) => Err(failed(pk, report.imported)(e)),
        None => Ok(()),
    }
}

/// The second pass: streams the dump `plan` was made from and writes its users to `store`,
/// `BATCH` at a time (the store's calls run on `runtime`). Conflicts and unsupported hashes
/// are reported, not fatal; a store failure stops the import with the users written so far
/// kept. `seen` is called after each user entry with the number read so far (progress).
pub fn write<R: Read>(
    store: &dyn UserStore,
    runtime: &Runtime,
    reader: R,
    plan: &Plan,
    now: u64,
    mut seen: impl FnMut(usize),
) -> Result<Report, ImportError> {
    let mut report = Report {
        groups: plan.groups.count,
        other_models: plan.other_models,
        ..Report::default()
    };
    let repeated: HashSet<usize> = plan.repeats.iter().map(|r| r.entry).collect();
    let repeated_pks: HashSet<u64> = plan.repeats.iter().map(|r| r.pk).collect();
    let mut first: HashMap<u64, usize> = HashMap::new();
    let mut unknown_groups: BTreeMap<u64, usize> = BTreeMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut users = 0;
    for_each_entry(reader, |number, entry| {
        let Entry::User(mut m) = read_entry(number, &entry, now)? else {
            return Ok(());
        };
        users += 1;
        if !repeated.contains(&number) {
            if repeated_pks.contains(&m.user.id) {
                first.insert(m.user.id, number);
            }
            let (names, unknown) = plan.groups.resolve(&m.group_refs);
            m.user.groups = names;
            for pk in unknown {
                *unknown_groups.entry(pk).or_default() += 1;
            }
            batch.push(*m);
            if batch.len() == BATCH {
                runtime.block_on(write_batch(store, std::mem::take(&mut batch), &mut report))?;
            }
        }
        seen(users);
        Ok(())
    })?;
    runtime.block_on(write_batch(store, batch, &mut report))?;
    let duplicates = plan
        .repeats
        .iter()
        .map(|r| repeat_line(r, first.get(&r.pk).copied().unwrap_or(0)));
    report.conflicts.splice(0..0, duplicates);
    for (pk, n) in unknown_groups {
        report.warnings.push(format!(
            "group id {pk} is named by {} but the dump holds no auth.group with that pk: \
             dropped from them (dump the groups too: `manage.py dumpdata auth.group <user model>`)",
            super::plural(n, "user", "users")
        ));
    }
    Ok(report)
}

/// Both passes over a dump held in memory (tests, small files): a malformed file imports
/// nobody.
pub fn import(
    store: &dyn UserStore,
    runtime: &Runtime,
    dump_json: &str,
) -> Result<Report, ImportError> {
    let now = crate::clock::now();
    let plan = check(dump_json.as_bytes(), now, |_| {})?;
    write(store, runtime, dump_json.as_bytes(), &plan, now, |_| {})
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::auth::django_hash;
    use crate::store::{temp_store, NewUser, StateFilter};
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn rt() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Store reads in a test.
    fn block<F: std::future::Future>(f: F) -> F::Output {
        rt().block_on(f)
    }

    fn store() -> (tempfile::TempDir, std::sync::Arc<dyn UserStore>) {
        temp_store()
    }

    #[test]
    fn imports_keep_ids_and_registrations_continue_after_the_highest() {
        let (_dir, store) = store();
        let dump = json!([alice(), simple(3, "bob"), simple(42, "carol")]).to_string();
        let report = import(store.as_ref(), &rt(), &dump).expect("import");
        assert_eq!(
            report,
            Report {
                imported: 3,
                ..Report::default()
            }
        );
        let alice = block(store.get_user(7)).expect("get").expect("alice");
        assert_eq!(
            (alice.username.as_str(), alice.password.as_str()),
            ("alice", HASH)
        );
        assert_eq!(
            block(store.find_by_username("CAROL"))
                .expect("find")
                .map(|u| u.id),
            Some(42)
        );
        let next = block(store.create_user(
            NewUser {
                username: "dave".into(),
                email: "dave@example.com".into(),
                first_name: String::new(),
                last_name: String::new(),
                password: "x".into(),
                is_staff: false,
                date_joined: 0,
                is_service: false,
            },
            &|_| Default::default(),
        ))
        .expect("create");
        assert_eq!(next.id, 43);
    }

    #[test]
    fn a_second_run_skips_what_the_first_imported() {
        let (_dir, store) = store();
        let dump = json!([simple(1, "a"), simple(2, "b"), simple(9, "c")]).to_string();
        assert_eq!(
            import(store.as_ref(), &rt(), &dump)
                .expect("first")
                .imported,
            3
        );
        let again = import(store.as_ref(), &rt(), &dump).expect("second");
        assert_eq!(
            again,
            Report {
                skipped_existing: 3,
                ..Report::default()
            }
        );
        assert_eq!(
            block(store.count_users(&StateFilter::All)).expect("count"),
            3
        );
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
        let report = import(store.as_ref(), &rt(), &dump).expect("import");
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
        let report = import(store.as_ref(), &rt(), &other).expect("import");
        assert_eq!(report.skipped_existing, 0);
        assert_eq!(
            report.conflicts,
            ["user 3 (someone_else): id 3 already belongs to \"b\" in gatehouse"]
        );
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
        let report = import(store.as_ref(), &rt(), &dump).expect("import");
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
        let m = block(store.get_user(1)).expect("get").expect("m");
        assert_eq!(m.password, "!md5");
        assert!(django_hash::is_unusable(&m.password));
        // Skipped on a second run: no warning about a user not imported again.
        let again = import(store.as_ref(), &rt(), &dump).expect("again");
        assert!(again.warnings.is_empty());
        assert!(again.unusable_by_algorithm.is_empty());
    }

    #[test]
    fn a_malformed_file_imports_nobody() {
        let (_dir, store) = store();
        let dump = json!([simple(1, "a"), {"model": "auth.user", "pk": 2}]).to_string();
        assert_eq!(
            import(store.as_ref(), &rt(), &dump),
            Err(ImportError::MissingField {
                entry: 2,
                field: "fields"
            })
        );
        assert_eq!(
            block(store.count_users(&StateFilter::All)).expect("count"),
            0
        );
    }

    #[test]
    fn many_users_span_batches() {
        let (_dir, store) = store();
        let users: Vec<Value> = (1..=(BATCH as u64 * 2 + 3))
            .map(|i| simple(i * 2, &format!("user{i}")))
            .collect();
        let report =
            import(store.as_ref(), &rt(), &Value::Array(users).to_string()).expect("import");
        assert_eq!(report.imported, BATCH * 2 + 3);
        assert_eq!(
            block(store.count_users(&StateFilter::All)).expect("count"),
            BATCH * 2 + 3
        );
    }
}
