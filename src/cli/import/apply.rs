//! Writing the users of a parsed dump to the store: each checked against what the store
//! holds (already imported, or a name, email or id that belongs to someone else), then
//! written in batches of transactions made durable by one flush.

use super::dump::{parse_dump, unusable_algorithm};
use super::{ImportError, Report};
use crate::store::{name_key, StoreError, User, UserStore};

/// Users written per durable flush: each is still its own transaction.
const BATCH: usize = 256;

/// Why `user` cannot be imported next to what the store already holds, if it cannot.
enum Check {
    Insert,
    AlreadyThere,
    Conflict(String),
}

async fn check(store: &dyn UserStore, user: &User) -> Result<Check, StoreError> {
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

/// Imports the users of a `dumpdata` file into `store`. A malformed file imports nobody;
/// conflicts and unsupported hashes are reported, not fatal; a store failure stops the import
/// with the users written so far kept.
pub async fn import(store: &dyn UserStore, dump_json: &str) -> Result<Report, ImportError> {
    let parsed = parse_dump(dump_json, crate::clock::now())?;
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
            match check(store, &m.user)
                .await
                .map_err(failed(m.user.id, report.imported))?
            {
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
        if let Some((pk, e)) = fatal {
            return Err(failed(pk, report.imported)(e));
        }
    }
    report.conflicts.splice(0..0, parsed.duplicates);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::auth::django_hash;
    use crate::store::{temp_store, NewUser, StateFilter};
    use crate::test_support::block;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn store() -> (tempfile::TempDir, std::sync::Arc<dyn UserStore>) {
        temp_store()
    }

    #[test]
    fn imports_keep_ids_and_registrations_continue_after_the_highest() {
        let (_dir, store) = store();
        let dump = json!([alice(), simple(3, "bob"), simple(42, "carol")]).to_string();
        block(async {
            let report = import(store.as_ref(), &dump).await.expect("import");
            assert_eq!(
                report,
                Report {
                    imported: 3,
                    ..Report::default()
                }
            );
            let alice = store.get_user(7).await.expect("get").expect("alice");
            assert_eq!(
                (alice.username.as_str(), alice.password.as_str()),
                ("alice", HASH)
            );
            assert_eq!(
                store
                    .find_by_username("CAROL")
                    .await
                    .expect("find")
                    .map(|u| u.id),
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
            assert_eq!(
                import(store.as_ref(), &dump).await.expect("first").imported,
                3
            );
            let again = import(store.as_ref(), &dump).await.expect("second");
            assert_eq!(
                again,
                Report {
                    skipped_existing: 3,
                    ..Report::default()
                }
            );
            assert_eq!(
                store.count_users(&StateFilter::All).await.expect("count"),
                3
            );
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
            let report = import(store.as_ref(), &dump).await.expect("import");
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
            let report = import(store.as_ref(), &other).await.expect("import");
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
            let report = import(store.as_ref(), &dump).await.expect("import");
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
            let m = store.get_user(1).await.expect("get").expect("m");
            assert_eq!(m.password, "!md5");
            assert!(django_hash::is_unusable(&m.password));
            // Skipped on a second run: no warning about a user not imported again.
            let again = import(store.as_ref(), &dump).await.expect("again");
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
                import(store.as_ref(), &dump).await,
                Err(ImportError::MissingField {
                    entry: 2,
                    field: "fields"
                })
            );
            assert_eq!(
                store.count_users(&StateFilter::All).await.expect("count"),
                0
            );
        });
    }

    #[test]
    fn many_users_span_batches() {
        let (_dir, store) = store();
        let users: Vec<Value> = (1..=(BATCH as u64 * 2 + 3))
            .map(|i| simple(i * 2, &format!("user{i}")))
            .collect();
        block(async {
            let report = import(store.as_ref(), &Value::Array(users).to_string())
                .await
                .expect("import");
            assert_eq!(report.imported, BATCH * 2 + 3);
            assert_eq!(
                store.count_users(&StateFilter::All).await.expect("count"),
                BATCH * 2 + 3
            );
        });
    }
}
