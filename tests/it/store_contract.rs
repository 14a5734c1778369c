// The store contract: what every `UserStore` backend guarantees, run against each backend in
// `backends()`. A new backend joins by adding one constructor there; the scenarios do not
// change. They drive the trait only (no backend-specific calls), from many tasks at once.

use crate::common;

use common::postgres;
use gatehouse::auth::families::{self, Presented, Step};
use gatehouse::store::{
    Action, ApiKey, Effects, Ended, Event, EventFilter, Family, GroupCount, ListFilter, MailKind,
    Mfa, NewUser, OutboxMail, PendingStep, PgStore, Session, SledStore, SortKey, StateFilter,
    StoreError, User, UserBatches, UserCount, UserCursor, UserPage, UserQuery, UserSort, UserStore,
    COUNT_BUDGET, COUNT_CAP, METHOD_PASSWORD, METHOD_PASSWORD_OTP,
};
use std::sync::{Arc, Mutex};

/// An empty store of one backend, and what keeps it alive (a temp dir, a database).
struct Fresh {
    store: Arc<dyn UserStore>,
    _keep: Box<dyn std::any::Any + Send>,
}

type Maker = fn() -> Fresh;

fn sled() -> Fresh {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("db"), 8 << 20).expect("open sled");
    Fresh {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

/// A fresh database on the test binary's throwaway cluster (see tests/it/common/postgres.rs).
fn pg() -> Fresh {
    let url = postgres::database();
    let store = PgStore::open(&url, postgres::options(true)).expect("open postgres");
    Fresh {
        store: Arc::new(store),
        _keep: Box::new(()),
    }
}

/// Every backend the contract runs against.
fn backends() -> Vec<(&'static str, Maker)> {
    vec![("sled", sled as Maker), ("postgres", pg as Maker)]
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{}@example.com", name.to_lowercase()),
        first_name: String::new(),
        last_name: String::new(),
        password: "x".into(),
        is_staff: false,
        date_joined: 0,
        is_service: false,
    }
}

async fn create(store: &dyn UserStore, name: &str) -> User {
    store
        .create_user(new_user(name), &|_| Default::default())
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_name_in_two_cases_have_one_winner() {
    for (backend, make) in backends() {
        let fresh = make();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&fresh.store);
            // Half "Carol", half "carol"; every email differs, so only the name can collide.
            let name = if i % 2 == 0 { "Carol" } else { "carol" };
            tasks.push(tokio::spawn(async move {
                let mut user = new_user(name);
                user.email = format!("carol{i}@example.com");
                store.create_user(user, &|_| Default::default()).await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => won += 1,
                Err(StoreError::UsernameTaken) => {}
                Err(e) => panic!("{backend}: unexpected {e}"),
            }
        }
        assert_eq!(won, 1, "{backend}: exactly one registration of carol");
        // The same for an email in two cases.
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&fresh.store);
            tasks.push(tokio::spawn(async move {
                let mut user = new_user(&format!("dave{i}"));
                user.email = if i % 2 == 0 {
                    "Dave@Example.com"
                } else {
                    "dave@example.com"
                }
                .into();
                store.create_user(user, &|_| Default::default()).await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => won += 1,
                Err(StoreError::EmailTaken) => {}
                Err(e) => panic!("{backend}: unexpected {e}"),
            }
        }
        assert_eq!(won, 1, "{backend}: exactly one owner of dave's address");
        let store = fresh.store.as_ref();
        let carol = store.find_by_username("CAROL").await.expect("find");
        assert!(carol.is_some(), "{backend}: lookups fold case");
        assert!(store
            .email_owner("DAVE@example.COM")
            .await
            .expect("owner")
            .is_some());
    }
}

#[tokio::test]
async fn ids_increase_and_are_never_reused_also_above_an_imported_maximum() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let a = create(store, "a").await;
        let b = create(store, "b").await;
        assert!(b.id > a.id, "{backend}: ids increase");
        // An imported user with a high id: later ids continue above it.
        let mut imported = b.clone();
        imported.id = 1000;
        imported.username = "imported".into();
        imported.email = "imported@example.com".into();
        store.insert_user(imported).await.expect("insert");
        let c = create(store, "c").await;
        assert!(c.id > 1000, "{backend}: id {} after an imported 1000", c.id);
        // A soft-deleted user keeps its id and name; nobody gets them again.
        store
            .update_user(a.id, &|u| u.is_active = false, &|_, _| Default::default())
            .await
            .expect("deactivate");
        let d = create(store, "d").await;
        assert!(d.id > c.id, "{backend}: no id reused");
        assert_eq!(
            store
                .create_user(new_user("A"), &|_| Default::default())
                .await,
            Err(StoreError::UsernameTaken),
            "{backend}: a soft-deleted user keeps its name"
        );
        // Inserting an id that exists is refused, not an overwrite.
        let mut clash = d.clone();
        clash.username = "other".into();
        clash.email = "other@example.com".into();
        assert!(store.insert_user(clash).await.is_err(), "{backend}");
        assert_eq!(
            store.get_user(d.id).await.expect("get").map(|u| u.username),
            Some("d".to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_swaps_of_one_family_have_one_winner() {
    for (backend, make) in backends() {
        let fresh = make();
        let root = families::implicit_root("fam", 1, 100);
        let mut tasks = Vec::new();
        for i in 0..32 {
            let store = Arc::clone(&fresh.store);
            tasks.push(tokio::spawn(async move {
                let next = Family {
                    current: format!("child{i}"),
                    parent: Some("fam".into()),
                    rotated_at: 1,
                    ..families::implicit_root("fam", 1, 100)
                };
                store
                    .swap_family("fam", None, &next)
                    .await
                    .map(|ok| (ok, next))
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (ok, next) = t.await.expect("task").expect("swap");
            if ok {
                winners.push(next);
            }
        }
        assert_eq!(winners.len(), 1, "{backend}: exactly one swap wins");
        let stored = fresh.store.get_family("fam").await.expect("get");
        assert_eq!(
            stored.as_ref(),
            winners.first(),
            "{backend}: the winner is stored"
        );
        // A swap that expects the stale root fails; one that expects the winner succeeds.
        let winner = &winners[0];
        assert!(!fresh
            .store
            .swap_family("fam", Some(&root), winner)
            .await
            .expect("stale"));
        let mut revoked = winner.clone();
        revoked.revoked = true;
        assert!(fresh
            .store
            .swap_family("fam", Some(winner), &revoked)
            .await
            .expect("cas"));
    }
}

#[tokio::test]
async fn reusing_a_rotated_out_token_revokes_the_family() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let apply = |record: Option<Family>, jti: &'static str, now: u64| {
            let presented = Presented {
                family: "root",
                jti,
                user_id: 7,
            };
            families::rotate(
                record.as_ref(),
                &presented,
                now,
                10,
                format!("after-{jti}"),
                500,
            )
        };
        // root -> after-root: a normal rotation, stored by compare-and-swap.
        let Step::Rotate { record, issue } = apply(None, "root", 100) else {
            panic!("{backend}: the root rotates");
        };
        assert_eq!(issue, "after-root");
        assert!(store
            .swap_family("root", None, &record)
            .await
            .expect("swap"));
        // The root again, after the grace period: reuse.
        let stored = store.get_family("root").await.expect("get");
        let Step::Revoke { record: revoked } = apply(stored.clone(), "root", 200) else {
            panic!("{backend}: reuse after the grace period revokes");
        };
        assert!(store
            .swap_family("root", stored.as_ref(), &revoked)
            .await
            .expect("swap"));
        // Now even the current token is refused.
        let stored = store.get_family("root").await.expect("get");
        assert!(stored.as_ref().is_some_and(|f| f.revoked), "{backend}");
        assert_eq!(
            apply(stored, "after-root", 201),
            Step::Blacklisted,
            "{backend}"
        );
    }
}

/// Deterministic pseudo-random numbers (no dependency; the same sequence every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn counters_equal_a_full_count_and_offset_pages_agree_with_keyset_pages() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        for i in 0..60 {
            create(store, &format!("user{i:02}")).await;
        }
        // An imported user leaves a gap in the ids.
        let mut gap = store.get_user(1).await.expect("get").expect("user 1");
        gap.id = 90;
        gap.username = "gap".into();
        gap.email = "gap@example.com".into();
        store.insert_user(gap).await.expect("insert");
        let mut rng = Lcg(42);
        for _ in 0..40 {
            let id = rng.next(60) + 1;
            let active = rng.next(2) == 0;
            store
                .update_user(id, &|u| u.is_active = active, &|_, _| Default::default())
                .await
                .expect("toggle");
        }
        let everyone = store
            .users_after(&ListFilter::default(), 0, 10_000)
            .await
            .expect("all");
        assert_eq!(everyone.len(), 61, "{backend}");
        let ids: Vec<u64> = everyone.iter().map(|u| u.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{backend}: id order");
        for state in [StateFilter::All, StateFilter::Active, StateFilter::Inactive] {
            let counted = everyone
                .iter()
                .filter(|u| match state {
                    StateFilter::All => true,
                    StateFilter::Active => u.is_active,
                    StateFilter::Inactive => !u.is_active,
                })
                .count();
            assert_eq!(
                store.count_users(&state).await.expect("count"),
                counted,
                "{backend}: counter {state:?}"
            );
        }
        let filters = [
            ListFilter::default(),
            ListFilter {
                state: StateFilter::Active,
                search: None,
            },
            ListFilter {
                state: StateFilter::Inactive,
                search: None,
            },
            ListFilter {
                state: StateFilter::All,
                search: Some("USER1".into()),
            },
        ];
        for filter in &filters {
            let expected: Vec<u64> = everyone
                .iter()
                .filter(|u| filter.matches(u))
                .map(|u| u.id)
                .collect();
            for size in [1, 7, 25, 100] {
                let mut by_offset = Vec::new();
                let mut offset = 0;
                loop {
                    let (count, page) = store
                        .list_users(filter, offset, size)
                        .await
                        .expect("offset page");
                    assert_eq!(count, expected.len(), "{backend} {filter:?}: count");
                    if page.is_empty() {
                        break;
                    }
                    offset += page.len();
                    by_offset.extend(page.iter().map(|u| u.id));
                }
                let mut by_id = Vec::new();
                let mut after = 0;
                loop {
                    let page = store
                        .users_after(filter, after, size)
                        .await
                        .expect("keyset page");
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    by_id.extend(page.iter().map(|u| u.id));
                }
                assert_eq!(
                    by_offset, expected,
                    "{backend} {filter:?} size {size}: offset"
                );
                assert_eq!(by_id, expected, "{backend} {filter:?} size {size}: keyset");
            }
        }
    }
}

#[tokio::test]
async fn updates_move_the_indexes_atomically_and_refuse_taken_names() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let a = create(store, "erin").await;
        create(store, "frank").await;
        assert_eq!(
            store
                .update_user(a.id, &|u| u.username = "FRANK".into(), &|_, _| {
                    Default::default()
                })
                .await,
            Err(StoreError::UsernameTaken),
            "{backend}"
        );
        assert_eq!(
            store
                .update_user(a.id, &|u| u.email = "Frank@example.com".into(), &|_, _| {
                    Default::default()
                })
                .await,
            Err(StoreError::EmailTaken),
            "{backend}"
        );
        // A refused update changed nothing.
        let still = store.get_user(a.id).await.expect("get").expect("erin");
        assert_eq!(
            (still.username.as_str(), still.email.as_str()),
            ("erin", "erin@example.com")
        );
        let renamed = store
            .update_user(
                a.id,
                &|u| {
                    u.username = "Erin2".into();
                    u.email = "erin2@example.com".into();
                },
                &|_, _| Default::default(),
            )
            .await
            .expect("rename");
        assert_eq!(renamed.username, "Erin2");
        assert!(
            store
                .find_by_username("erin")
                .await
                .expect("find")
                .is_none(),
            "{backend}"
        );
        assert_eq!(
            store
                .find_by_username("ERIN2")
                .await
                .expect("find")
                .map(|u| u.id),
            Some(a.id)
        );
        assert_eq!(
            store.email_owner("erin@example.com").await.expect("owner"),
            None
        );
        // The old name is free again.
        create(store, "erin").await;
        assert_eq!(
            store
                .update_user(9999, &|_| {}, &|_, _| Default::default())
                .await,
            Err(StoreError::NotFound),
            "{backend}"
        );
        store.ping().await.expect("a working store answers ping");
    }
}

fn mail(kind: MailKind, user_id: u64, to: &str, at: u64) -> OutboxMail {
    OutboxMail {
        kind,
        user_id,
        to: to.into(),
        new_email: None,
        api_key: None,
        account: None,
        created_at: at,
    }
}

#[tokio::test]
async fn mails_are_written_with_the_change_that_causes_them_or_not_at_all() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = store
            .create_user(new_user("ann"), &|u| {
                vec![mail(MailKind::VerifyEmail, u.id, &u.email, 10)].into()
            })
            .await
            .expect("create with mail");
        create(store, "bob").await;
        assert_eq!(store.outbox_depth().await.expect("depth"), 1, "{backend}");
        // A change that fails (the address is taken) records no mail either.
        let failed = store
            .update_user(ann.id, &|u| u.email = "BOB@example.com".into(), &|_, _| {
                vec![mail(MailKind::EmailChanged, 1, "x@example.com", 10)].into()
            })
            .await;
        assert_eq!(failed, Err(StoreError::EmailTaken), "{backend}");
        // The same for a registration that loses on its name.
        let lost = store
            .create_user(new_user("ANN"), &|u| {
                vec![mail(MailKind::VerifyEmail, u.id, &u.email, 10)].into()
            })
            .await;
        assert_eq!(lost.err(), Some(StoreError::UsernameTaken), "{backend}");
        assert_eq!(store.outbox_depth().await.expect("depth"), 1, "{backend}");
        // The mails see the user before and after the change.
        let updated = store
            .update_user(
                ann.id,
                &|u| u.email = "ann2@example.com".into(),
                &|before, after| {
                    let mut m = mail(MailKind::EmailChanged, after.id, &before.email, 11);
                    m.new_email = Some(after.email.clone());
                    vec![m].into()
                },
            )
            .await
            .expect("update with mail");
        assert_eq!(updated.email, "ann2@example.com");
        store
            .record(mail(MailKind::PasswordReset, ann.id, "ann2@example.com", 12).into())
            .await
            .expect("enqueue");
        assert_eq!(store.outbox_depth().await.expect("depth"), 3, "{backend}");
        let claimed = store.claim_mails(100, 30, 10).await.expect("claim");
        let kinds: Vec<_> = claimed.iter().map(|e| e.mail.kind).collect();
        assert_eq!(
            kinds,
            [
                MailKind::VerifyEmail,
                MailKind::EmailChanged,
                MailKind::PasswordReset
            ],
            "{backend}: oldest first"
        );
        assert_eq!(
            claimed[1].mail.to, "ann@example.com",
            "{backend}: old address"
        );
        assert_eq!(
            claimed[1].mail.new_email.as_deref(),
            Some("ann2@example.com"),
            "{backend}"
        );
        assert!(claimed
            .iter()
            .all(|e| e.attempts == 0 && e.lease_until == 130));
        assert!(
            claimed.windows(2).all(|w| w[0].id < w[1].id),
            "{backend}: ids increase"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_mail_is_held_by_one_claimer_until_acked_or_released() {
    for (backend, make) in backends() {
        let fresh = make();
        for i in 0..20 {
            fresh
                .store
                .record(mail(MailKind::PasswordReset, i, "a@example.com", 0).into())
                .await
                .expect("enqueue");
        }
        // Claimers racing (as replicas would): every mail goes to exactly one of them.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&fresh.store);
            tasks.push(tokio::spawn(async move {
                store.claim_mails(1000, 60, 5).await.expect("claim")
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.expect("task").into_iter().map(|e| e.id));
        }
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            (total, ids.len()),
            (20, 20),
            "{backend}: each mail claimed once"
        );
        let store = fresh.store.as_ref();
        // Held: nobody gets them while the lease runs; after it, they come back.
        assert!(store
            .claim_mails(1059, 60, 50)
            .await
            .expect("claim")
            .is_empty());
        let again = store.claim_mails(1061, 60, 50).await.expect("claim");
        assert_eq!(
            again.len(),
            20,
            "{backend}: an expired lease frees the mail"
        );
        let (first, second) = (again[0].id, again[1].id);
        store.ack_mail(first).await.expect("ack");
        store
            .ack_mail(first)
            .await
            .expect("a second ack is no error");
        store.retry_mail(second, 3, 5000).await.expect("retry");
        assert_eq!(store.outbox_depth().await.expect("depth"), 19, "{backend}");
        // A released mail waits for its time, then comes with its attempts, lease free.
        let early = store.claim_mails(4999, 60, 50).await.expect("claim");
        assert_eq!(early.len(), 18, "{backend}: the other leases ran out");
        assert!(
            early.iter().all(|e| e.id != second && e.id != first),
            "{backend}: the retried mail is not due yet, the acked one gone"
        );
        let due = store.claim_mails(5000, 60, 50).await.expect("claim");
        let retried = due
            .iter()
            .find(|e| e.id == second)
            .expect("the retried mail");
        assert_eq!(
            (retried.attempts, retried.not_before),
            (3, 5000),
            "{backend}"
        );
        assert!(
            due.iter().all(|e| e.id != first),
            "{backend}: acked is gone"
        );
    }
}

#[tokio::test]
async fn mails_not_yet_due_are_not_claimed() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        store
            .record(mail(MailKind::PasswordChanged, 1, "a@example.com", 500).into())
            .await
            .expect("enqueue");
        assert!(
            store
                .claim_mails(499, 30, 10)
                .await
                .expect("claim")
                .is_empty(),
            "{backend}"
        );
        assert_eq!(
            store.claim_mails(500, 30, 10).await.expect("claim").len(),
            1,
            "{backend}"
        );
    }
}

/// One operation of the differential property test, on small pools of names so collisions,
/// case variants and Unicode case folding come up often.
#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize),
    Import(u64, usize, usize),
    Rename(u64, usize),
    ChangeEmail(u64, usize),
    SetActive(u64, bool),
    Bump(u64),
    Find(usize),
    Owner(usize),
    Count(u8),
    List(u8, Option<usize>, usize, usize),
    After(u8, Option<usize>, u64, usize),
    Swap(usize, bool),
    /// Session `n` of user `u` created at `t` (remember-me when the flag is set).
    SessionIn(u64, u64, u64, bool),
    EndSession(u64),
    Touch(u64, u64),
    ListSessions(u64),
    Sweep(u64, u64),
    ListFamilies(u64),
}

const NAMES: &[&str] = &[
    "ann",
    "Ann",
    "ÄRGER",
    "ärger",
    "straße",
    "STRASSE",
    "Σίσυφος",
    "σίσυφοσ",
    "bob_1",
    "bob%1",
];
const EMAILS: &[&str] = &[
    "a@x.org", "A@X.org", "ä@x.org", "Ä@X.ORG", "b@x.org", "ǅ@x.org", "ǆ@x.org",
];
const SEARCHES: &[&str] = &["an", "ÄR", "_", "%", "x.org", "σ", "1"];

fn state(n: u8) -> StateFilter {
    match n % 3 {
        0 => StateFilter::All,
        1 => StateFilter::Active,
        _ => StateFilter::Inactive,
    }
}

fn filter(s: u8, search: Option<usize>) -> ListFilter {
    ListFilter {
        state: state(s),
        search: search.map(|i| SEARCHES[i % SEARCHES.len()].to_string()),
    }
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let n = 0..NAMES.len();
    let e = 0..EMAILS.len();
    prop_oneof![
        1 => (n.clone(), e.clone()).prop_map(|(n, e)| Op::Create(n, e)),
        1 => (5u64..40, n.clone(), e.clone()).prop_map(|(id, n, e)| Op::Import(id, n, e)),
        1 => (1u64..12, n.clone()).prop_map(|(id, n)| Op::Rename(id, n)),
        1 => (1u64..12, e.clone()).prop_map(|(id, e)| Op::ChangeEmail(id, e)),
        1 => (1u64..12, any::<bool>()).prop_map(|(id, a)| Op::SetActive(id, a)),
        1 => (1u64..12).prop_map(Op::Bump),
        1 => n.clone().prop_map(Op::Find),
        1 => e.clone().prop_map(Op::Owner),
        1 => any::<u8>().prop_map(Op::Count),
        1 => (
            any::<u8>(),
            proptest::option::of(0usize..7),
            0usize..6,
            0usize..5
        )
            .prop_map(|(s, q, o, l)| Op::List(s, q, o, l)),
        1 => (
            any::<u8>(),
            proptest::option::of(0usize..7),
            0u64..12,
            0usize..5
        )
            .prop_map(|(s, q, a, l)| Op::After(s, q, a, l)),
        1 => (0usize..3, any::<bool>()).prop_map(|(f, r)| Op::Swap(f, r)),
        // Weighted up, so a user often has several sessions when they are listed.
        4 => (0u64..6, 1u64..3, 0u64..4, any::<bool>())
            .prop_map(|(n, u, t, r)| Op::SessionIn(n, u, t, r)),
        1 => (0u64..6).prop_map(Op::EndSession),
        1 => (0u64..6, 0u64..8).prop_map(|(n, t)| Op::Touch(n, t)),
        2 => (1u64..3).prop_map(Op::ListSessions),
        1 => (0u64..12, 0u64..6).prop_map(|(now, idle)| Op::Sweep(now, idle)),
        2 => (1u64..3).prop_map(Op::ListFamilies),
    ]
}

/// What an operation answered, in a form both backends must agree on.
async fn apply(store: &dyn UserStore, op: &Op) -> String {
    match op {
        Op::Create(n, e) => {
            let mut u = new_user(NAMES[*n]);
            u.email = EMAILS[*e].into();
            format!("{:?}", store.create_user(u, &|_| Default::default()).await)
        }
        Op::Import(id, n, e) => {
            let mut u = User {
                id: *id,
                username: format!("imp{}", NAMES[*n]),
                email: format!("imp{}", EMAILS[*e]),
                first_name: String::new(),
                last_name: String::new(),
                password: "x".into(),
                is_active: id % 2 == 0,
                is_staff: false,
                date_joined: 7,
                last_login: None,
                deleted_at: None,
                token_version: 0,
                groups: vec!["g".into()],
                email_verified: id % 3 == 0,
                ended: Vec::new(),
                is_service: false,
            };
            u.last_login = Some(9);
            format!("{:?}", store.insert_user(u).await)
        }
        Op::Rename(id, n) => format!(
            "{:?}",
            store
                .update_user(*id, &|u| u.username = NAMES[*n].into(), &|_, _| {
                    Default::default()
                })
                .await
        ),
        Op::ChangeEmail(id, e) => format!(
            "{:?}",
            store
                .update_user(*id, &|u| u.email = EMAILS[*e].into(), &|_, _| {
                    Default::default()
                })
                .await
        ),
        Op::SetActive(id, a) => {
            format!(
                "{:?}",
                store
                    .update_user(*id, &|u| u.is_active = *a, &|_, _| Default::default())
                    .await
            )
        }
        Op::Bump(id) => format!(
            "{:?}",
            store
                .update_user(*id, &|u| u.token_version += 1, &|_, _| Default::default())
                .await
        ),
        Op::Find(n) => format!("{:?}", store.find_by_username(NAMES[*n]).await),
        Op::Owner(e) => format!("{:?}", store.email_owner(EMAILS[*e]).await),
        Op::Count(s) => format!("{:?}", store.count_users(&state(*s)).await),
        Op::List(s, q, o, l) => format!("{:?}", store.list_users(&filter(*s, *q), *o, *l).await),
        Op::After(s, q, a, l) => {
            format!("{:?}", store.users_after(&filter(*s, *q), *a, *l).await)
        }
        Op::Swap(f, revoke) => {
            let name = format!("fam{f}");
            let old = store.get_family(&name).await.expect("get family");
            let mut new = old.clone().unwrap_or(Family {
                user_id: 1,
                current: "c0".into(),
                parent: None,
                rotated_at: 1,
                revoked: false,
                expires_at: 99,
                created: 5,
                client_ip: "192.0.2.7".into(),
                user_agent: "agent".into(),
            });
            new.current = format!("{}x", new.current);
            new.parent = Some(name.clone());
            new.revoked = *revoke;
            let swapped = store.swap_family(&name, old.as_ref(), &new).await;
            let stale = store.swap_family(&name, old.as_ref(), &new).await;
            format!("{swapped:?} {stale:?} {:?}", store.get_family(&name).await)
        }
        Op::SessionIn(n, u, t, remember) => {
            // Small times, so equal `created` (the tie order) and the sweep's limits come up.
            let s = Session {
                remember: *remember,
                expires_at: t + 6,
                ..session(*n, *u, *t)
            };
            let effects = Effects {
                sessions: vec![s],
                // Every other one also names a family of the user, with a device.
                families: (n % 2 == 0)
                    .then(|| {
                        let f = Family {
                            created: *t,
                            client_ip: format!("ip{n}"),
                            ..families::implicit_root("x", *u, 99)
                        };
                        (format!("fam{n}"), f)
                    })
                    .into_iter()
                    .collect(),
                ..Effects::none()
            };
            format!("{:?}", store.record(effects).await)
        }
        Op::EndSession(n) => format!(
            "{:?}",
            store
                .record(Effects {
                    end_sessions: vec![session(*n, 0, 0).id_hash],
                    ..Effects::none()
                })
                .await
        ),
        Op::Touch(n, t) => {
            let hash = session(*n, 0, 0).id_hash;
            let touched = store.touch_session(&hash, *t).await;
            format!("{touched:?} {:?}", store.get_session(&hash).await)
        }
        Op::ListSessions(u) => format!("{:?}", store.list_sessions(*u).await),
        Op::Sweep(now, idle) => format!("{:?}", store.delete_expired_sessions(*now, *idle).await),
        Op::ListFamilies(u) => format!("{:?}", store.list_families(*u).await),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..Default::default()
    })]

    /// The same random operations on sled and on PostgreSQL answer the same, step by step.
    #[test]
    fn sled_and_postgres_answer_every_operation_alike(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (a, b) = (sled(), pg());
        runtime.block_on(async {
            for (i, op) in ops.iter().enumerate() {
                let left = apply(a.store.as_ref(), op).await;
                let right = apply(b.store.as_ref(), op).await;
                assert_eq!(left, right, "step {i}: {op:?}");
            }
        });
    }
}

#[tokio::test]
async fn outbox_entries_reads_every_entry_in_order_without_claiming_it() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        for (i, to) in ["a@example.com", "b@example.com", "c@example.com"]
            .iter()
            .enumerate()
        {
            store
                .record(mail(MailKind::PasswordReset, i as u64 + 1, to, 100).into())
                .await
                .expect("enqueue");
        }
        // One held by a claimer, one waiting for a retry, one due: all three are read.
        let held = store.claim_mails(100, 60, 1).await.expect("claim");
        assert_eq!(held.len(), 1, "{backend}");
        let all = store.outbox_entries(0, 10).await.expect("entries");
        let tos: Vec<&str> = all.iter().map(|e| e.mail.to.as_str()).collect();
        assert_eq!(
            tos,
            ["a@example.com", "b@example.com", "c@example.com"],
            "{backend}"
        );
        assert_eq!(all[0].lease_until, 160, "{backend}: the lease is visible");
        store.retry_mail(all[1].id, 2, 900).await.expect("retry");
        // Pages by id.
        let first = store.outbox_entries(0, 1).await.expect("page");
        assert_eq!(first.len(), 1, "{backend}");
        let rest = store.outbox_entries(first[0].id, 10).await.expect("page");
        assert_eq!(rest.len(), 2, "{backend}");
        assert_eq!(rest[0].mail.to, "b@example.com", "{backend}");
        assert_eq!(
            (rest[0].attempts, rest[0].not_before),
            (2, 900),
            "{backend}: the retry state is read"
        );
        assert!(
            store
                .outbox_entries(rest[1].id, 10)
                .await
                .expect("page")
                .is_empty(),
            "{backend}: nothing after the last"
        );
        // Reading claimed nothing: the due entry is still there for a sender.
        let due = store.claim_mails(100, 60, 10).await.expect("claim");
        assert_eq!(due.len(), 1, "{backend}");
        assert_eq!(due[0].mail.to, "c@example.com", "{backend}");
        assert_eq!(store.outbox_depth().await.expect("depth"), 3, "{backend}");
    }
}

/// A session of `user_id` created at `created`, idle-limited, with a made-up id hash `n`.
fn session(n: u64, user_id: u64, created: u64) -> Session {
    Session {
        id_hash: format!("{n:064x}"),
        user_id,
        created,
        last_seen: created,
        expires_at: created + 12 * 3600,
        client_ip: "192.0.2.1".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64)".into(),
        remember: false,
        method: METHOD_PASSWORD.into(),
        token_version: 0,
    }
}

/// The id hashes of a user's sessions, as listed.
async fn listed(store: &dyn UserStore, user_id: u64) -> Vec<String> {
    store
        .list_sessions(user_id)
        .await
        .expect("list sessions")
        .into_iter()
        .map(|s| s.id_hash)
        .collect()
}

fn sessions(list: Vec<Session>) -> Effects {
    Effects {
        sessions: list,
        ..Effects::none()
    }
}

#[tokio::test]
async fn sessions_are_written_with_a_user_write_and_read_by_their_hash() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        // With a registration: made before the id exists, they take it (`Effects::about`).
        let ann = store
            .create_user(new_user("ann"), &|_| sessions(vec![session(1, 0, 100)]))
            .await
            .expect("create with a session");
        let first = store
            .get_session(&session(1, 0, 0).id_hash)
            .await
            .expect("get");
        assert_eq!(
            first,
            Some(session(1, ann.id, 100)),
            "{backend}: stored whole, with the new user's id"
        );
        // With a sign-in (a user change) and on its own.
        let bob = create(store, "bob").await;
        store
            .update_user(ann.id, &|u| u.last_login = Some(200), &|_, after| {
                sessions(vec![Session {
                    remember: true,
                    method: METHOD_PASSWORD_OTP.into(),
                    token_version: 3,
                    ..session(2, after.id, 200)
                }])
            })
            .await
            .expect("sign-in");
        store
            .record(sessions(vec![
                session(3, ann.id, 150),
                session(4, bob.id, 300),
            ]))
            .await
            .expect("record");
        let second = store
            .get_session(&session(2, 0, 0).id_hash)
            .await
            .expect("get")
            .expect("the sign-in's session");
        assert!(second.remember, "{backend}");
        assert_eq!(
            (second.method.as_str(), second.token_version),
            (METHOD_PASSWORD_OTP, 3),
            "{backend}"
        );
        assert_eq!(
            store.get_session(&"f".repeat(64)).await.expect("get"),
            None,
            "{backend}: an unknown hash is no session"
        );
        // Listed by user, newest first, only that user's.
        assert_eq!(
            listed(store, ann.id).await,
            [2, 3, 1].map(|n| session(n, 0, 0).id_hash),
            "{backend}"
        );
        assert_eq!(
            listed(store, bob.id).await,
            [session(4, 0, 0).id_hash],
            "{backend}"
        );
        assert!(listed(store, 999).await.is_empty(), "{backend}");
        // Touch: last_seen moves forward only; a gone session is no error.
        let hash = session(1, 0, 0).id_hash;
        store.touch_session(&hash, 500).await.expect("touch");
        store.touch_session(&hash, 400).await.expect("late touch");
        let touched = store.get_session(&hash).await.expect("get").expect("there");
        assert_eq!(
            (touched.last_seen, touched.created),
            (500, 100),
            "{backend}"
        );
        store
            .touch_session(&"e".repeat(64), 500)
            .await
            .expect("touching a gone session is no error");
        assert_eq!(
            store.get_session(&"e".repeat(64)).await.expect("get"),
            None,
            "{backend}: touch creates nothing"
        );
    }
}

#[tokio::test]
async fn sessions_end_one_or_all_but_the_current_with_the_user_write() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        let bob = create(store, "bob").await;
        store
            .record(sessions(
                (1..=4)
                    .map(|n| session(n, ann.id, n * 10))
                    .chain([session(9, bob.id, 5)])
                    .collect(),
            ))
            .await
            .expect("record");
        // "Sign out this device": the session goes, its end is kept in the user record.
        let one = session(2, 0, 0).id_hash;
        let after = store
            .update_user(
                ann.id,
                &|u| {
                    u.ended.push(Ended {
                        id: one.clone(),
                        until: 1_000,
                    })
                },
                &|_, _| Effects {
                    end_sessions: vec![one.clone()],
                    ..Effects::none()
                },
            )
            .await
            .expect("end one");
        assert_eq!(after.ended.len(), 1, "{backend}");
        assert_eq!(
            store.get_session(&one).await.expect("get"),
            None,
            "{backend}"
        );
        assert_eq!(
            listed(store, ann.id).await,
            [4, 3, 1].map(|n| session(n, 0, 0).id_hash),
            "{backend}: the index follows"
        );
        // All but the current one (3); an unknown hash among them is no error.
        let current = session(3, 0, 0).id_hash;
        let mut others: Vec<String> = listed(store, ann.id)
            .await
            .into_iter()
            .filter(|h| *h != current)
            .collect();
        others.push("d".repeat(64));
        store
            .record(Effects {
                end_sessions: others,
                ..Effects::none()
            })
            .await
            .expect("revoke others");
        assert_eq!(listed(store, ann.id).await, [current], "{backend}");
        assert_eq!(
            listed(store, bob.id).await,
            [session(9, 0, 0).id_hash],
            "{backend}: another user's session stays"
        );
    }
}

#[tokio::test]
async fn expired_sessions_are_deleted_idle_absolute_and_remember_me_alike() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        let idle = 1_800;
        let now = 100_000;
        let fresh_one = Session {
            last_seen: now - 60,
            ..session(1, ann.id, now - 3_600)
        };
        let idle_out = Session {
            last_seen: now - idle,
            ..session(2, ann.id, now - 3_600)
        };
        let past_limit = Session {
            last_seen: now - 10,
            expires_at: now,
            ..session(3, ann.id, now - 43_200)
        };
        let remembered = Session {
            remember: true,
            last_seen: now - 86_400,
            expires_at: now + 86_400,
            ..session(4, ann.id, now - 90_000)
        };
        let remembered_out = Session {
            remember: true,
            last_seen: now - 10,
            expires_at: now - 1,
            ..session(5, ann.id, now - 90_000)
        };
        let all = vec![
            fresh_one.clone(),
            idle_out,
            past_limit,
            remembered.clone(),
            remembered_out,
        ];
        let live: Vec<&Session> = all.iter().filter(|s| s.live_at(now, idle)).collect();
        assert_eq!(
            live,
            [&fresh_one, &remembered],
            "the scenario's own premise"
        );
        store.record(sessions(all)).await.expect("record");
        assert_eq!(
            store
                .delete_expired_sessions(now, idle)
                .await
                .expect("sweep"),
            3,
            "{backend}"
        );
        assert_eq!(
            listed(store, ann.id).await,
            [fresh_one.id_hash.clone(), remembered.id_hash.clone()],
            "{backend}: the live ones stay, the index follows"
        );
        assert_eq!(
            store
                .delete_expired_sessions(now, idle)
                .await
                .expect("sweep"),
            0,
            "{backend}: nothing more to delete"
        );
        assert_eq!(
            store.get_session(&remembered.id_hash).await.expect("get"),
            Some(remembered),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_refused_write_creates_no_session_ends_none_and_writes_no_family() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        create(store, "bob").await;
        store
            .record(sessions(vec![session(1, ann.id, 10)]))
            .await
            .expect("record");
        let effects = |user_id: u64| Effects {
            sessions: vec![session(2, user_id, 20)],
            end_sessions: vec![session(1, 0, 0).id_hash],
            families: vec![("fam".into(), families::implicit_root("fam", user_id, 1_000))],
            ..Effects::none()
        };
        let refused = store
            .update_user(ann.id, &|u| u.username = "BOB".into(), &|_, after| {
                effects(after.id)
            })
            .await;
        assert_eq!(refused, Err(StoreError::UsernameTaken), "{backend}");
        let lost = store.create_user(new_user("Ann"), &|u| effects(u.id)).await;
        assert_eq!(lost.err(), Some(StoreError::UsernameTaken), "{backend}");
        assert_eq!(
            listed(store, ann.id).await,
            [session(1, 0, 0).id_hash],
            "{backend}: nothing created, nothing ended"
        );
        assert_eq!(
            store
                .get_session(&session(2, 0, 0).id_hash)
                .await
                .expect("get"),
            None,
            "{backend}"
        );
        assert_eq!(
            store.get_family("fam").await.expect("get"),
            None,
            "{backend}"
        );
        assert!(
            store.list_families(ann.id).await.expect("list").is_empty(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn ended_sessions_and_families_round_trip_in_the_user_record() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        assert!(ann.ended.is_empty(), "{backend}: a new user ended nothing");
        let ended = vec![
            Ended {
                id: "a".repeat(64),
                until: 1_000,
            },
            Ended {
                id: "family-jti".into(),
                until: 2_000,
            },
        ];
        let updated = store
            .update_user(ann.id, &|u| u.ended = ended.clone(), &|_, _| {
                Effects::none()
            })
            .await
            .expect("end");
        assert_eq!(updated.ended, ended, "{backend}");
        let read = store.get_user(ann.id).await.expect("get").expect("ann");
        assert_eq!(read.ended, ended, "{backend}: read back");
        let found = store.find_by_username("ANN").await.expect("find");
        assert_eq!(found.map(|u| u.ended), Some(ended.clone()), "{backend}");
        // Pruned when they would have expired anyway.
        let pruned = store
            .update_user(ann.id, &|u| u.ended.retain(|e| e.until > 1_500), &|_, _| {
                Effects::none()
            })
            .await
            .expect("prune");
        assert_eq!(pruned.ended, ended[1..], "{backend}");
        // An imported user keeps what it carries.
        let mut imported = read.clone();
        imported.id = 500;
        imported.username = "imported".into();
        imported.email = "imported@example.com".into();
        store.insert_user(imported).await.expect("insert");
        assert_eq!(
            store.get_user(500).await.expect("get").map(|u| u.ended),
            Some(ended),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn families_are_listed_by_user_newest_first_with_their_device() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        let bob = create(store, "bob").await;
        let device = |family: &str, user_id: u64, created: u64| Family {
            created,
            client_ip: format!("192.0.2.{created}"),
            user_agent: format!("curl/{created}"),
            ..families::implicit_root(family, user_id, 10_000)
        };
        // Through a compare-and-swap (login, rotation) and as a write's effect.
        assert!(store
            .swap_family("old", None, &families::implicit_root("old", ann.id, 10_000))
            .await
            .expect("swap"));
        assert!(store
            .swap_family("laptop", None, &device("laptop", ann.id, 20))
            .await
            .expect("swap"));
        store
            .update_user(ann.id, &|u| u.last_login = Some(30), &|_, after| Effects {
                families: vec![("phone".into(), device("phone", after.id, 30))],
                ..Effects::none()
            })
            .await
            .expect("login with a family");
        store
            .record(Effects {
                families: vec![("bobs".into(), device("bobs", bob.id, 40))],
                ..Effects::none()
            })
            .await
            .expect("record");
        let listed = store.list_families(ann.id).await.expect("list");
        let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["phone", "laptop", "old"],
            "{backend}: newest first, only ann's"
        );
        assert_eq!(listed[0].1, device("phone", ann.id, 30), "{backend}");
        assert_eq!(
            (listed[2].1.created, listed[2].1.client_ip.as_str()),
            (0, ""),
            "{backend}: a family without a device"
        );
        // A rotation keeps the device and the listing; the swap compares it too.
        let laptop = device("laptop", ann.id, 20);
        let rotated = Family {
            current: "laptop-2".into(),
            parent: Some("laptop".into()),
            rotated_at: 50,
            ..laptop.clone()
        };
        let stale = Family {
            user_agent: "other".into(),
            ..laptop.clone()
        };
        assert!(
            !store
                .swap_family("laptop", Some(&stale), &rotated)
                .await
                .expect("swap"),
            "{backend}: a record that differs in its device is not the current one"
        );
        assert!(store
            .swap_family("laptop", Some(&laptop), &rotated)
            .await
            .expect("swap"));
        let listed = store.list_families(ann.id).await.expect("list");
        assert_eq!(listed.len(), 3, "{backend}");
        assert_eq!(listed[1], ("laptop".to_string(), rotated), "{backend}");
        assert_eq!(
            store.list_families(bob.id).await.expect("list"),
            [("bobs".to_string(), device("bobs", bob.id, 40))],
            "{backend}"
        );
    }
}

fn event(action: Action, actor: Option<u64>, target: Option<u64>, time: u64) -> Event {
    let mut details = serde_json::Map::new();
    details.insert("n".into(), serde_json::json!(time));
    // A detail taken from a request may hold anything, a NUL too.
    details.insert("attempted".into(), serde_json::json!("a\u{0}b \u{e9}"));
    Event {
        id: 0,
        time,
        action,
        actor_id: actor,
        actor_username: actor.map_or(String::new(), |a| format!("user{a}")),
        target_id: target,
        ip: Some("203.0.113.7".into()),
        user_agent: actor.map(|_| "curl/8".to_string()),
        request_id: Some(format!("req-{time}")),
        details,
    }
}

/// What the store's tap is told, in the order it is told.
fn tapped(store: &dyn UserStore) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    store.tap_events(Arc::new(move |events: &[Event]| {
        into.lock().expect("tap").extend_from_slice(events)
    }));
    seen
}

fn told(seen: &Mutex<Vec<Event>>) -> Vec<Event> {
    seen.lock().expect("tap").clone()
}

/// Every event, oldest first, through `events_after` pages of `size`.
async fn all_events(store: &dyn UserStore, size: usize) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, size).await.expect("events_after");
        assert!(page.len() <= size, "a page holds at most its size");
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page);
    }
    all
}

/// The events `filter` selects, newest first, through `list_events` pages of `size`.
async fn listed_events(store: &dyn UserStore, filter: &EventFilter, size: usize) -> Vec<Event> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_events(filter, before, size)
            .await
            .expect("list_events");
        assert!(page.len() <= size, "a page holds at most its size");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        all.extend(page);
    }
    all
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id).collect()
}

fn increasing(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn events_are_written_with_the_change_that_causes_them_or_not_at_all() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let seen = tapped(store);
        let ann = store
            .create_user(new_user("ann"), &|_| {
                event(Action::UserRegistered, None, None, 10).into()
            })
            .await
            .expect("create with event");
        create(store, "bob").await;
        // Refused writes (a taken name) write no event and tell none.
        let refused = store
            .update_user(ann.id, &|u| u.username = "BOB".into(), &|_, after| {
                event(Action::AdminUserChanged, Some(after.id), Some(after.id), 11).into()
            })
            .await;
        assert_eq!(refused, Err(StoreError::UsernameTaken), "{backend}");
        let lost = store
            .create_user(new_user("ANN"), &|_| {
                event(Action::UserRegistered, None, None, 11).into()
            })
            .await;
        assert_eq!(lost.err(), Some(StoreError::UsernameTaken), "{backend}");
        assert_eq!(told(&seen).len(), 1, "{backend}: only the registration");
        // A change that changes nothing still records its event (a second sign-in).
        let same = store
            .update_user(ann.id, &|_| {}, &|_, after| {
                event(Action::LoginSucceeded, Some(after.id), Some(after.id), 12).into()
            })
            .await
            .expect("unchanged user");
        assert_eq!(same, ann, "{backend}");
        // A change with two events: they keep their order.
        store
            .update_user(
                ann.id,
                &|u| u.email = "ann2@example.com".into(),
                &|before, after| {
                    Effects::from(event(
                        Action::EmailChanged,
                        Some(before.id),
                        Some(after.id),
                        13,
                    ))
                    .with(event(
                        Action::SessionRevoked,
                        Some(after.id),
                        Some(after.id),
                        13,
                    ))
                },
            )
            .await
            .expect("update with events");
        // Events alone, from nobody signed in.
        store
            .record(event(Action::LoginFailed, None, Some(ann.id), 14).into())
            .await
            .expect("record an event");
        store.record(Effects::none()).await.expect("record nothing");

        let stored = all_events(store, 100).await;
        let actions: Vec<Action> = stored.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                Action::UserRegistered,
                Action::LoginSucceeded,
                Action::EmailChanged,
                Action::SessionRevoked,
                Action::LoginFailed
            ],
            "{backend}: the committed events, in order"
        );
        assert!(increasing(&ids(&stored)), "{backend}: ids increase");
        assert!(stored.iter().all(|e| e.id > 0), "{backend}: ids assigned");
        assert_eq!(
            stored[0].target_id,
            Some(ann.id),
            "{backend}: a registration's event is about the new user"
        );
        assert_eq!(
            told(&seen),
            stored,
            "{backend}: the tap saw exactly the stored events, with their ids"
        );
        let mut expected = event(Action::LoginFailed, None, Some(ann.id), 14);
        expected.id = stored[4].id;
        assert_eq!(stored[4], expected, "{backend}: every field round trips");
        let newest_first: Vec<Event> = stored.iter().rev().cloned().collect();
        assert_eq!(
            store
                .list_events(&EventFilter::default(), None, 100)
                .await
                .expect("list"),
            newest_first,
            "{backend}"
        );
        assert!(
            store
                .list_events(&EventFilter::default(), None, 0)
                .await
                .expect("list")
                .is_empty(),
            "{backend}: a page of none"
        );
    }
}

#[tokio::test]
async fn listed_events_agree_with_a_filtered_full_scan_in_keyset_pages() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let mut rng = Lcg(7);
        let mut time = 1_000;
        for _ in 0..30 {
            // One to three events per write, by and about a few users, at times that mostly
            // increase.
            let mut effects = Effects::none();
            for _ in 0..=rng.next(3) {
                time += rng.next(5);
                let actor = (rng.next(4) > 0).then(|| rng.next(4) + 1);
                let target = (rng.next(4) > 0).then(|| rng.next(4) + 1);
                let action = [Action::LoginSucceeded, Action::LoginFailed, Action::Logout]
                    [rng.next(3) as usize];
                effects = effects.with(event(action, actor, target, time));
            }
            store.record(effects).await.expect("record");
        }
        let everything = all_events(store, 1_000).await;
        assert!(everything.len() >= 30, "{backend}");
        for size in [1, 4, 1_000] {
            assert_eq!(
                all_events(store, size).await,
                everything,
                "{backend} {size}"
            );
        }
        let (first, last) = (everything[0].time, time);
        let mut filters = vec![EventFilter::default()];
        for user in 1..=5 {
            filters.push(EventFilter {
                actor: Some(user),
                ..EventFilter::default()
            });
            filters.push(EventFilter {
                target: Some(user),
                ..EventFilter::default()
            });
        }
        for action in [Action::LoginFailed, Action::Logout, Action::UserDeleted] {
            filters.push(EventFilter {
                action: Some(action),
                ..EventFilter::default()
            });
        }
        let middle = first + (last - first) / 2;
        filters.push(EventFilter {
            since: Some(middle),
            ..EventFilter::default()
        });
        filters.push(EventFilter {
            until: Some(middle),
            ..EventFilter::default()
        });
        filters.push(EventFilter {
            actor: Some(2),
            target: Some(3),
            action: Some(Action::LoginSucceeded),
            since: Some(first + 10),
            until: Some(last - 10),
        });
        filters.push(EventFilter {
            actor: Some(u64::MAX),
            until: Some(u64::MAX),
            ..EventFilter::default()
        });
        for filter in &filters {
            let expected: Vec<Event> = everything
                .iter()
                .rev()
                .filter(|e| filter.matches(e))
                .cloned()
                .collect();
            for size in [1, 3, 500] {
                assert_eq!(
                    listed_events(store, filter, size).await,
                    expected,
                    "{backend} {filter:?} pages of {size}"
                );
            }
        }
    }
}

#[tokio::test]
async fn inserted_events_keep_their_ids_and_later_ones_go_above() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let seen = tapped(store);
        let copied: Vec<Event> = [(3, 10), (5, 11), (1_000, 12)]
            .into_iter()
            .map(|(id, time)| Event {
                id,
                ..event(Action::PasswordChanged, Some(1), Some(1), time)
            })
            .collect();
        store
            .insert_events(copied.clone())
            .await
            .expect("insert events");
        store.insert_events(Vec::new()).await.expect("insert none");
        assert!(
            told(&seen).is_empty(),
            "{backend}: copies are told to nobody"
        );
        assert_eq!(all_events(store, 2).await, copied, "{backend}: ids kept");
        // An id that is there is refused, not overwritten.
        let clash = Event {
            id: 5,
            ..event(Action::Logout, Some(2), None, 13)
        };
        assert!(store.insert_events(vec![clash]).await.is_err(), "{backend}");
        assert_eq!(all_events(store, 100).await, copied, "{backend}: unchanged");
        store
            .record(event(Action::Logout, Some(1), None, 20).into())
            .await
            .expect("record");
        let later = told(&seen);
        assert_eq!(later.len(), 1, "{backend}");
        assert!(
            later[0].id > 1_000,
            "{backend}: id {} after 1000",
            later[0].id
        );
        assert_eq!(all_events(store, 100).await.len(), 4, "{backend}");
    }
}

#[tokio::test]
async fn deleting_events_before_a_time_removes_exactly_the_older_ones() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        // Ids follow time, but two writers racing can commit a little out of step.
        let times = [100, 101, 103, 102, 104, 105, 104, 106, 110, 109];
        for t in times {
            store
                .record(event(Action::LoginSucceeded, Some(1), Some(1), t).into())
                .await
                .expect("record");
        }
        assert_eq!(
            store.delete_events_before(100).await.expect("delete"),
            0,
            "{backend}"
        );
        let cut = 105;
        let older = times.iter().filter(|&&t| t < cut).count();
        assert_eq!(
            store.delete_events_before(cut).await.expect("delete"),
            older,
            "{backend}"
        );
        let kept = all_events(store, 100).await;
        let kept_times: Vec<u64> = kept.iter().map(|e| e.time).collect();
        assert_eq!(kept_times, [105, 106, 110, 109], "{backend}");
        // The filters' indexes went with them.
        let by_actor = EventFilter {
            actor: Some(1),
            ..EventFilter::default()
        };
        let listed = listed_events(store, &by_actor, 2).await;
        assert_eq!(listed.len(), kept.len(), "{backend}");
        assert_eq!(
            store.delete_events_before(u64::MAX).await.expect("delete"),
            kept.len(),
            "{backend}"
        );
        assert!(all_events(store, 100).await.is_empty(), "{backend}");
    }
}

/// Two replicas (two handles on one database) writing events at once: every id once, one
/// order that both list alike, and each replica's tap told of its own writes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_replicas_writing_events_at_once_share_one_sequence() {
    const EACH: usize = 40;
    let url = postgres::database();
    let open = || -> Arc<dyn UserStore> {
        Arc::new(PgStore::open(&url, postgres::options(true)).expect("open postgres"))
    };
    let replicas = [open(), open()];
    let mut users = Vec::new();
    for n in 0..EACH / 2 {
        users.push(create(replicas[0].as_ref(), &format!("user{n}")).await.id);
    }
    let seen: Vec<_> = replicas.iter().map(|r| tapped(r.as_ref())).collect();
    let mut tasks = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        for i in 0..EACH {
            let store = Arc::clone(replica);
            let time = (r * EACH + i) as u64;
            let user = users[(r * EACH + i) / 4];
            tasks.push(tokio::spawn(async move {
                let e = event(Action::LoginSucceeded, Some(user), Some(r as u64), time);
                if i % 4 == 0 {
                    // Some ride on a user write.
                    store
                        .update_user(user, &|u| u.token_version += 1, &|_, _| e.clone().into())
                        .await
                        .map(|_| ())
                } else {
                    store.record(e.into()).await
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task").expect("write");
    }
    let mut told_ids = Vec::new();
    for (r, seen) in seen.iter().enumerate() {
        let events = told(seen);
        assert_eq!(events.len(), EACH, "replica {r}'s tap");
        assert!(
            events.iter().all(|e| e.target_id == Some(r as u64)),
            "replica {r} is told of its own writes only"
        );
        told_ids.extend(ids(&events));
    }
    told_ids.sort_unstable();
    let stored = all_events(replicas[0].as_ref(), 7).await;
    assert_eq!(ids(&stored), told_ids, "every told event stored, each once");
    assert!(increasing(&told_ids), "ids unique");
    for replica in &replicas {
        let newest_first = listed_events(replica.as_ref(), &EventFilter::default(), 9).await;
        assert!(
            newest_first.iter().rev().eq(stored.iter()),
            "both replicas list one order"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Second factors (SPEC §17): one record per user, changed only by compare-and-swap with its
// effects, and removed by the user write that turns it off.

fn mfa_record(secret: &str, last_step: u64) -> Mfa {
    Mfa {
        secret: secret.into(),
        enabled: true,
        since: 10,
        last_step,
        replay_reported: 0,
        recovery: vec!["h1".into(), "h2".into()],
        failures: vec![7],
        locked_until: 0,
        pending: vec![PendingStep {
            id_hash: "p".into(),
            expires_at: 99,
            remember: true,
        }],
    }
}

/// A swap's effects: one mail and one event about `user_id`.
fn mfa_effects(user_id: u64, at: u64) -> Effects {
    Effects::from(mail(MailKind::MfaEnabled, user_id, "x@example.com", at)).with(event(
        Action::MfaEnabled,
        Some(user_id),
        Some(user_id),
        at,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_factors_change_by_compare_and_swap_with_their_effects_or_not_at_all() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        let bob = create(store, "bob").await;
        let counts = || async {
            (
                store.outbox_depth().await.expect("depth"),
                all_events(store, 100).await.len(),
            )
        };
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), None, "{backend}");
        assert_eq!(counts().await, (0, 0), "{backend}");

        // From nothing: a record, with its effects.
        let r1 = mfa_record("s1", 5);
        assert!(
            store
                .swap_mfa(ann.id, None, Some(&r1), mfa_effects(ann.id, 20))
                .await
                .expect("create"),
            "{backend}"
        );
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), Some(r1.clone()));
        assert_eq!(
            counts().await,
            (1, 1),
            "{backend}: the swap's mail and event"
        );
        assert_eq!(store.get_mfa(bob.id).await.expect("get"), None, "{backend}");

        // Stale expectations: nothing written, no effect recorded.
        let r2 = mfa_record("s1", 6);
        for stale in [
            None,
            Some(mfa_record("s1", 4)),
            Some(mfa_record("other", 5)),
        ] {
            assert!(
                !store
                    .swap_mfa(ann.id, stale.as_ref(), Some(&r2), mfa_effects(ann.id, 21))
                    .await
                    .expect("stale swap"),
                "{backend}: expected {stale:?}"
            );
            assert!(
                !store
                    .swap_mfa(ann.id, stale.as_ref(), None, mfa_effects(ann.id, 21))
                    .await
                    .expect("stale delete"),
                "{backend}: expected {stale:?}"
            );
        }
        assert!(
            !store
                .swap_mfa(bob.id, Some(&r1), Some(&r2), mfa_effects(bob.id, 21))
                .await
                .expect("bob has none"),
            "{backend}"
        );
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), Some(r1.clone()));
        assert_eq!(store.get_mfa(bob.id).await.expect("get"), None, "{backend}");
        assert_eq!(
            counts().await,
            (1, 1),
            "{backend}: refused swaps record nothing"
        );

        // From the record: the next one.
        assert!(
            store
                .swap_mfa(ann.id, Some(&r1), Some(&r2), mfa_effects(ann.id, 22))
                .await
                .expect("swap"),
            "{backend}"
        );
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), Some(r2.clone()));
        assert_eq!(counts().await, (2, 2), "{backend}");

        // Racing swaps from one record (the same code sent twice at once): one wins.
        let shared = Arc::clone(&fresh.store);
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let (store, from, id) = (Arc::clone(&shared), r2.clone(), ann.id);
            tasks.push(tokio::spawn(async move {
                let next = mfa_record(&format!("race{i}"), 7);
                store
                    .swap_mfa(id, Some(&from), Some(&next), mfa_effects(id, 30 + i))
                    .await
                    .map(|won| (won, next))
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (won, next) = t.await.expect("task").expect("swap");
            if won {
                winners.push(next);
            }
        }
        assert_eq!(winners.len(), 1, "{backend}: exactly one racing swap wins");
        let r3 = winners.remove(0);
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), Some(r3.clone()));
        assert_eq!(
            counts().await,
            (3, 3),
            "{backend}: only the winner's effects"
        );

        // Deleting by compare-and-swap, then creating again.
        assert!(store
            .swap_mfa(ann.id, Some(&r3), None, Effects::none())
            .await
            .expect("delete"));
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), None, "{backend}");
        assert!(store
            .swap_mfa(ann.id, None, Some(&r1), Effects::none())
            .await
            .expect("create again"));
        assert!(store
            .swap_mfa(bob.id, None, Some(&r2), Effects::none())
            .await
            .expect("bob's"));

        // `Effects.mfa_removed` on a user write deletes the record with it; a refused write
        // (a taken name) deletes nothing.
        let refused = store
            .update_user(ann.id, &|u| u.username = "BOB".into(), &|_, after| {
                Effects {
                    mfa_removed: vec![after.id],
                    ..Effects::none()
                }
            })
            .await;
        assert_eq!(refused, Err(StoreError::UsernameTaken), "{backend}");
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), Some(r1.clone()));
        let updated = store
            .update_user(ann.id, &|u| u.token_version += 1, &|_, after| Effects {
                mfa_removed: vec![after.id],
                ..mfa_effects(after.id, 40)
            })
            .await
            .expect("update");
        assert_eq!(updated.token_version, ann.token_version + 1, "{backend}");
        assert_eq!(store.get_mfa(ann.id).await.expect("get"), None, "{backend}");
        assert_eq!(
            store.get_mfa(bob.id).await.expect("get"),
            Some(r2.clone()),
            "{backend}: only the named user's record goes"
        );
        assert_eq!(counts().await, (4, 4), "{backend}");
        // A removed record is expected as nothing again.
        assert!(!store
            .swap_mfa(ann.id, Some(&r1), Some(&r2), Effects::none())
            .await
            .expect("stale after removal"));
        assert!(store
            .swap_mfa(ann.id, None, Some(&r2), Effects::none())
            .await
            .expect("new after removal"));
    }
}

// The console's users list (SPEC §18): every filter and sort against a plain filtered scan.

/// User `i` of the generated list: every filter and sort key varies, with ties in the dates
/// and names that differ only in case and accents.
pub(crate) fn listed_user(i: u64) -> User {
    let mut groups = Vec::new();
    if i % 3 == 0 {
        groups.push("ops".to_string());
    }
    if i % 5 == 0 {
        groups.push("ops2".to_string());
    }
    User {
        id: i,
        username: format!("{}{i:03}", ["Ann", "bob", "ÉVE", "dan_%"][i as usize % 4]),
        email: format!("m{i}@{}.example", ["North", "south"][i as usize % 2]),
        first_name: ["Zoë", "", "Mia"][i as usize % 3].into(),
        last_name: format!("Öst{}", i % 7),
        password: "x".into(),
        is_active: i % 11 != 0,
        is_staff: i % 13 == 0,
        date_joined: 1_000 + i % 17,
        last_login: (i % 4 != 0).then_some(2_000 + i % 9),
        deleted_at: None,
        token_version: 0,
        groups,
        email_verified: i % 6 != 1,
        ended: Vec::new(),
        is_service: false,
    }
}

/// Every page of `query`, `size` at a time, following the cursors.
pub(crate) async fn all_pages(store: &dyn UserStore, query: &UserQuery, size: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after: Option<UserCursor> = None;
    for _ in 0..10_000 {
        let page = store
            .query_users(query, after.as_ref(), size)
            .await
            .expect("page");
        assert!(page.users.len() <= size);
        seen.extend(page.users.iter().map(|u| u.id));
        match page.next {
            Some(next) => {
                assert_eq!(page.users.len(), size, "a short page is the last");
                // The cursor survives the URL.
                after = UserCursor::decode(&next.encode(), query.sort);
                assert_eq!(after.as_ref(), Some(&next));
            }
            None => return seen,
        }
    }
    panic!("pages never ended");
}

fn queries() -> Vec<UserQuery> {
    let base = UserQuery::default();
    let mut filters = vec![
        base.clone(),
        UserQuery {
            state: StateFilter::Active,
            ..base.clone()
        },
        UserQuery {
            state: StateFilter::Inactive,
            ..base.clone()
        },
        UserQuery {
            staff: Some(true),
            ..base.clone()
        },
        UserQuery {
            staff: Some(false),
            ..base.clone()
        },
        UserQuery {
            group: Some("ops".into()),
            ..base.clone()
        },
        UserQuery {
            group: Some("nobody".into()),
            ..base.clone()
        },
        UserQuery {
            mfa: Some(true),
            ..base.clone()
        },
        UserQuery {
            mfa: Some(false),
            state: StateFilter::Active,
            ..base.clone()
        },
        UserQuery {
            verified: Some(false),
            ..base.clone()
        },
        UserQuery {
            verified: Some(true),
            group: Some("ops2".into()),
            ..base.clone()
        },
    ];
    // Under five letters the trigrams find the candidates on PostgreSQL, from five its
    // five-letter pieces (migration 12); neither may match across two keys.
    for search in [
        "ann",
        "éve",
        "SOUTH",
        "zoë",
        "öst3",
        "_%",
        "\n",
        "m1",
        "ÉVE00",
        "dan_%01",
        "south.EXAMPLE",
        "zoë\nöst",
        "001\nm1@",
        "m12@n",
    ] {
        filters.push(UserQuery {
            search: Some(search.into()),
            ..base.clone()
        });
    }
    filters.push(UserQuery {
        search: Some("BOB".into()),
        state: StateFilter::Active,
        mfa: Some(true),
        ..base.clone()
    });
    let mut all = Vec::new();
    for (i, f) in filters.into_iter().enumerate() {
        for (j, sort) in UserSort::ALL.into_iter().enumerate() {
            // Every filter in every order would be slow on PostgreSQL; each filter gets two
            // orders, every order and direction many filters.
            if (i + j) % 2 == 0 {
                for desc in [false, true] {
                    all.push(UserQuery {
                        sort,
                        desc,
                        ..f.clone()
                    });
                }
            }
        }
    }
    all
}

fn pending_mfa() -> Mfa {
    Mfa {
        enabled: false,
        ..mfa_record("s", 0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_list_agrees_with_a_filtered_scan_in_every_order_and_keyset_pages() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let users: Vec<User> = (1..=300).map(listed_user).collect();
        for r in store.insert_users(users).await.expect("insert") {
            r.expect("inserted");
        }
        // Second factors: on for every 4th, pending (not on) for every 10th.
        let mut on = std::collections::HashSet::new();
        for id in 1..=300u64 {
            let record = match (id % 4, id % 10) {
                (0, _) => mfa_record("s", 0),
                (_, 0) => pending_mfa(),
                _ => continue,
            };
            if record.enabled {
                on.insert(id);
            }
            assert!(store
                .swap_mfa(id, None, Some(&record), Effects::none())
                .await
                .expect("swap"));
        }
        // Changes after the insert move the indexes: a rename, a group left, staff lost,
        // a login, a deactivation.
        store
            .update_user(
                13,
                &|u| {
                    u.is_staff = false;
                    u.groups.clear();
                    u.username = "aaa-renamed".into();
                    u.last_login = Some(1);
                    u.first_name = "QUINN".into();
                },
                &|_, _| Effects::none(),
            )
            .await
            .expect("update");
        store
            .update_user(12, &|u| u.is_active = false, &|_, _| Effects::none())
            .await
            .expect("deactivate");
        let mut all = Vec::new();
        for id in 1..=300 {
            all.push(store.get_user(id).await.expect("get").expect("user"));
        }
        for query in queries() {
            let mut want: Vec<&User> = all
                .iter()
                .filter(|u| query.matches(u, on.contains(&u.id)))
                .collect();
            want.sort_by(|a, b| query.order(a, b));
            let want: Vec<u64> = want.iter().map(|u| u.id).collect();
            for size in [1, 7, 500] {
                if size == 1 && want.len() > 40 {
                    continue;
                }
                assert_eq!(
                    all_pages(store, &query, size).await,
                    want,
                    "{backend}: {query:?}, pages of {size}"
                );
            }
            assert_eq!(
                store.count_query(&query).await.expect("count"),
                UserCount::Exact(want.len()),
                "{backend}: {query:?}"
            );
        }
        // A page of none, and a cursor past the end.
        let none = store
            .query_users(&UserQuery::default(), None, 0)
            .await
            .expect("empty page");
        assert!(none.users.is_empty(), "{backend}");
        let past = UserCursor {
            key: SortKey::None,
            id: u64::MAX,
        };
        let page = store
            .query_users(&UserQuery::default(), Some(&past), 5)
            .await
            .expect("past the end");
        assert_eq!(page, UserPage::default(), "{backend}");
        // The export's batches visit the whole filtered list once, in order.
        let query = UserQuery {
            state: StateFilter::Active,
            sort: UserSort::Username,
            desc: true,
            ..UserQuery::default()
        };
        let mut batches = UserBatches::new(store, query.clone(), 64);
        let mut exported = Vec::new();
        while let Some(batch) = batches.next_batch().await.expect("batch") {
            exported.extend(batch.into_iter().map(|u| u.id));
        }
        assert_eq!(exported, all_pages(store, &query, 300).await, "{backend}");
        assert_eq!(exported.len(), 300 - 28, "{backend}: 27 + user 12 inactive");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_second_factor_filter_follows_enable_disable_and_reset() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        create(store, "bob").await;
        let on = UserQuery {
            mfa: Some(true),
            ..UserQuery::default()
        };
        let off = UserQuery {
            mfa: Some(false),
            ..UserQuery::default()
        };
        let ids = |q: UserQuery| async move { all_pages(store, &q, 10).await };
        assert_eq!(
            (ids(on.clone()).await, ids(off.clone()).await),
            (vec![], vec![1, 2])
        );
        // Enrolment pending: not on.
        let pending = pending_mfa();
        assert!(store
            .swap_mfa(ann.id, None, Some(&pending), Effects::none())
            .await
            .expect("pending"));
        assert_eq!(ids(on.clone()).await, Vec::<u64>::new(), "{backend}");
        // Confirmed: on.
        assert_eq!(
            store.factors_on(&[1]).await.expect("factors"),
            [false],
            "{backend}: a pending factor is not on"
        );
        let enabled = mfa_record("s", 0);
        assert!(store
            .swap_mfa(ann.id, Some(&pending), Some(&enabled), Effects::none())
            .await
            .expect("enable"));
        assert_eq!(ids(on.clone()).await, vec![1], "{backend}");
        assert_eq!(ids(off.clone()).await, vec![2], "{backend}");
        assert_eq!(
            store.count_query(&on).await.expect("count"),
            UserCount::Exact(1)
        );
        // The console's page reads them all at once, in the order asked (an unknown id: off).
        assert_eq!(
            store.factors_on(&[2, 1, 99]).await.expect("factors"),
            [false, true, false],
            "{backend}"
        );
        assert!(store.factors_on(&[]).await.expect("none").is_empty());
        // A lost compare-and-swap changes nothing.
        assert!(!store
            .swap_mfa(ann.id, Some(&pending), None, Effects::none())
            .await
            .expect("stale"));
        assert_eq!(ids(on.clone()).await, vec![1], "{backend}");
        // Turned off by the user: off.
        assert!(store
            .swap_mfa(ann.id, Some(&enabled), None, Effects::none())
            .await
            .expect("disable"));
        assert_eq!(ids(on.clone()).await, Vec::<u64>::new(), "{backend}");
        // On again, then reset by an admin's user write (`Effects::mfa_removed`): off.
        assert!(store
            .swap_mfa(ann.id, None, Some(&enabled), Effects::none())
            .await
            .expect("enable again"));
        assert_eq!(ids(on.clone()).await, vec![1], "{backend}");
        let reset = Effects {
            mfa_removed: vec![ann.id],
            ..Effects::none()
        };
        store
            .update_user(ann.id, &|u| u.token_version += 1, &|_, _| reset.clone())
            .await
            .expect("reset");
        assert_eq!(ids(on.clone()).await, Vec::<u64>::new(), "{backend}");
        assert_eq!(ids(off).await, vec![1, 2], "{backend}");
    }
}

/// Every query the counters answer (each state, with at most one filter), on 3 groups.
fn counted_queries() -> Vec<UserQuery> {
    let mut filters = vec![UserQuery::default()];
    for on in [true, false] {
        filters.push(UserQuery {
            staff: Some(on),
            ..UserQuery::default()
        });
        filters.push(UserQuery {
            mfa: Some(on),
            ..UserQuery::default()
        });
        filters.push(UserQuery {
            verified: Some(on),
            ..UserQuery::default()
        });
    }
    for g in ["ops", "ops2", "new"] {
        filters.push(UserQuery {
            group: Some(g.into()),
            ..UserQuery::default()
        });
    }
    let mut all = Vec::new();
    for f in filters {
        for state in [StateFilter::All, StateFilter::Active, StateFilter::Inactive] {
            all.push(UserQuery { state, ..f.clone() });
        }
    }
    all
}

/// Asserts each counted query's count equals the users a scan of every user finds.
async fn counts_agree_with_a_scan(store: &dyn UserStore, on: &[u64], backend: &str, step: &str) {
    let mut users = Vec::new();
    let mut id = 1;
    while let Some(u) = store.get_user(id).await.expect("get") {
        users.push(u);
        id += 1;
    }
    for q in counted_queries() {
        assert!(q.count_plan().is_some(), "{q:?}");
        let want = users
            .iter()
            .filter(|u| q.matches(u, on.contains(&u.id)))
            .count();
        assert_eq!(
            store.count_query(&q).await.expect("count"),
            UserCount::Exact(want),
            "{backend} after {step}: {q:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_counters_stay_exact_through_every_kind_of_write() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let mut on: Vec<u64> = Vec::new();
        // Import: users with every flag, some deactivated.
        let imported: Vec<User> = (1..=40).map(listed_user).collect();
        for r in store.insert_users(imported).await.expect("import") {
            r.expect("imported");
        }
        counts_agree_with_a_scan(store, &on, backend, "import").await;
        // Create.
        let ann = create(store, "counted-ann").await;
        counts_agree_with_a_scan(store, &on, backend, "create").await;
        // Second factors: enabled (an active and a deactivated user), pending (not on).
        for id in [ann.id, 3, 11] {
            assert!(store
                .swap_mfa(id, None, Some(&mfa_record("s", 0)), Effects::none())
                .await
                .expect("enable"));
            on.push(id);
        }
        assert!(store
            .swap_mfa(4, None, Some(&pending_mfa()), Effects::none())
            .await
            .expect("pending"));
        counts_agree_with_a_scan(store, &on, backend, "mfa enable").await;
        // A user with a factor on deactivated (deleted), then restored.
        store
            .update_user(3, &|u| u.is_active = false, &|_, _| Effects::none())
            .await
            .expect("deactivate");
        counts_agree_with_a_scan(store, &on, backend, "deactivate").await;
        store
            .update_user(11, &|u| u.is_active = true, &|_, _| Effects::none())
            .await
            .expect("restore");
        counts_agree_with_a_scan(store, &on, backend, "restore").await;
        // Group changes, staff and verification.
        store
            .update_user(
                6,
                &|u| {
                    u.groups = vec!["new".into(), "ops2".into()];
                    u.is_staff = !u.is_staff;
                    u.email_verified = !u.email_verified;
                },
                &|_, _| Effects::none(),
            )
            .await
            .expect("groups");
        store
            .update_user(ann.id, &|u| u.groups.push("new".into()), &|_, _| {
                Effects::none()
            })
            .await
            .expect("join");
        // A write that moves nothing counted (a login).
        store
            .update_user(5, &|u| u.last_login = Some(9), &|_, _| Effects::none())
            .await
            .expect("login");
        counts_agree_with_a_scan(store, &on, backend, "update").await;
        // Second factor disabled by its user, and reset with an admin's user write.
        assert!(store
            .swap_mfa(11, Some(&mfa_record("s", 0)), None, Effects::none())
            .await
            .expect("disable"));
        on.retain(|id| *id != 11);
        let reset = Effects {
            mfa_removed: vec![3],
            ..Effects::none()
        };
        store
            .update_user(3, &|u| u.token_version += 1, &|_, _| reset.clone())
            .await
            .expect("reset");
        on.retain(|id| *id != 3);
        // Deleted (deactivated) with its factor reset in the same write.
        let reset = Effects {
            mfa_removed: vec![ann.id],
            ..Effects::none()
        };
        store
            .update_user(ann.id, &|u| u.is_active = false, &|_, _| reset.clone())
            .await
            .expect("delete");
        on.retain(|id| *id != ann.id);
        counts_agree_with_a_scan(store, &on, backend, "mfa disable and reset").await;
    }
}

/// Ten thousand users and more in a store take a while to write: one test per backend, so
/// the two run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_counts_are_exact_up_to_the_cap_then_at_least_on_sled() {
    list_counts_are_exact_up_to_the_cap_then_at_least("sled", sled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_counts_are_exact_up_to_the_cap_then_at_least_on_postgres() {
    list_counts_are_exact_up_to_the_cap_then_at_least("postgres", pg).await;
}

async fn list_counts_are_exact_up_to_the_cap_then_at_least(backend: &str, make: Maker) {
    {
        let fresh = make();
        let store = fresh.store.as_ref();
        let users: Vec<User> = (1..=COUNT_CAP as u64 + 1)
            .map(|i| User {
                email_verified: i != 1,
                groups: vec!["everyone".into()],
                ..listed_user(i)
            })
            .collect();
        for chunk in users.chunks(2_000) {
            for r in store.insert_users(chunk.to_vec()).await.expect("insert") {
                r.expect("inserted");
            }
        }
        let count = |q: UserQuery| async move { store.count_query(&q).await.expect("count") };
        let verified = UserQuery {
            verified: Some(true),
            ..UserQuery::default()
        };
        assert_eq!(
            count(verified).await,
            UserCount::Exact(COUNT_CAP),
            "{backend}"
        );
        // A search over more than the budget: an estimate, not a count of every match.
        let searched = count(UserQuery {
            search: Some("m".into()),
            ..UserQuery::default()
        })
        .await;
        assert!(
            matches!(searched, UserCount::About(n) if n > COUNT_BUDGET),
            "{backend}: {searched:?}"
        );
        // Two filters at once, with few matches: counted exactly.
        assert_eq!(
            count(UserQuery {
                verified: Some(false),
                group: Some("everyone".into()),
                ..UserQuery::default()
            })
            .await,
            UserCount::Exact(1),
            "{backend}"
        );
        // Only the state: the counters answer, exactly, at any size.
        assert_eq!(
            count(UserQuery::default()).await,
            UserCount::Exact(COUNT_CAP + 1),
            "{backend}"
        );
        let groups = store.group_counts(10).await.expect("groups");
        assert_eq!(
            groups,
            [GroupCount {
                name: "everyone".into(),
                members: UserCount::AtLeast(COUNT_CAP)
            }],
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_counts_list_every_name_by_bytes_and_follow_changes() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        assert_eq!(store.group_counts(10).await.expect("none"), [], "{backend}");
        let held: [&[&str]; 6] = [
            &["a", "ab"],
            &["a"],
            &["ab", "Billing"],
            &["billing", "équipe"],
            &["a"],
            &[],
        ];
        let users: Vec<User> = held
            .iter()
            .enumerate()
            .map(|(i, groups)| User {
                groups: groups.iter().map(|g| g.to_string()).collect(),
                // A deactivated member still counts.
                is_active: i != 4,
                ..listed_user(i as u64 + 1)
            })
            .collect();
        for r in store.insert_users(users).await.expect("insert") {
            r.expect("inserted");
        }
        let counts = |limit: usize| async move {
            store
                .group_counts(limit)
                .await
                .expect("groups")
                .into_iter()
                .map(|g| (g.name, g.members))
                .collect::<Vec<_>>()
        };
        let n = |name: &str, count: usize| (name.to_string(), UserCount::Exact(count));
        // By bytes: a name before the longer names it starts ("a" before "ab").
        assert_eq!(
            counts(10).await,
            [
                n("Billing", 1),
                n("a", 3),
                n("ab", 2),
                n("billing", 1),
                n("équipe", 1)
            ],
            "{backend}"
        );
        // A limit: that many, still sorted.
        let some = counts(2).await;
        assert_eq!(some.len(), 2, "{backend}");
        assert!(some.windows(2).all(|w| w[0].0 < w[1].0), "{backend}");
        // Changes move the counts; a group nobody holds any more is gone.
        store
            .update_user(1, &|u| u.groups = vec!["ab".into()], &|_, _| {
                Effects::none()
            })
            .await
            .expect("leave a");
        store
            .update_user(4, &|u| u.groups.clear(), &|_, _| Effects::none())
            .await
            .expect("leave all");
        assert_eq!(
            counts(10).await,
            [n("Billing", 1), n("a", 2), n("ab", 2)],
            "{backend}"
        );
    }
}

fn api_key(id: &str, user_id: u64, created: u64) -> ApiKey {
    ApiKey {
        id: id.into(),
        user_id,
        name: format!("key {id}"),
        sha256: format!("{id:0>64}"),
        prefix: "gk_abcde".into(),
        created,
        expires_at: created + 1000,
        groups: vec!["ops".into()],
        routes: vec!["/svc/".into()],
        staff: false,
        last_used: None,
        revoked: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_keys_are_written_with_their_events_found_by_hash_listed_revoked_and_touched() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = create(store, "ann").await;
        let bob = create(store, "bob").await;

        // Created with its event and notice, in one write.
        let a1 = api_key("a1", ann.id, 10);
        store
            .record(
                Effects {
                    api_keys: vec![a1.clone()],
                    mails: vec![mail(MailKind::PasswordChanged, ann.id, &ann.email, 10)],
                    ..Effects::none()
                }
                .with(event(Action::ApikeyCreated, Some(ann.id), Some(ann.id), 10)),
            )
            .await
            .expect("create");
        assert_eq!(store.outbox_depth().await.expect("depth"), 1, "{backend}");
        assert_eq!(all_events(store, 10).await.len(), 1, "{backend}");
        assert_eq!(
            store.get_api_key("a1").await.expect("get"),
            Some(a1.clone()),
            "{backend}"
        );
        assert_eq!(
            store.find_api_key(&a1.sha256).await.expect("find"),
            Some(a1.clone()),
            "{backend}"
        );
        assert_eq!(
            store.find_api_key(&"f".repeat(64)).await.expect("find"),
            None
        );
        assert_eq!(store.get_api_key("nope").await.expect("get"), None);

        // Listed by owner, newest first; equal times in id order.
        let a2 = api_key("a2", ann.id, 20);
        let a0 = api_key("a0", ann.id, 20);
        let b1 = api_key("b1", bob.id, 30);
        store
            .record(Effects {
                api_keys: vec![a2.clone(), a0.clone(), b1.clone()],
                ..Effects::none()
            })
            .await
            .expect("more");
        let ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_api_keys(ann.id).await.expect("list")),
            ["a0", "a2", "a1"],
            "{backend}"
        );
        assert_eq!(
            ids(store.list_api_keys(bob.id).await.expect("list")),
            ["b1"]
        );
        assert!(store.list_api_keys(999).await.expect("list").is_empty());

        // Revoked with its event; a second revocation keeps the first time.
        store
            .record(Effects {
                api_keys_revoked: vec![("a1".into(), 50)],
                ..Effects::from(event(Action::ApikeyRevoked, Some(ann.id), Some(ann.id), 50))
            })
            .await
            .expect("revoke");
        store
            .record(Effects {
                api_keys_revoked: vec![("a1".into(), 60), ("unknown".into(), 60)],
                ..Effects::none()
            })
            .await
            .expect("revoke again");
        let revoked = store.get_api_key("a1").await.expect("get").expect("kept");
        assert_eq!(revoked.revoked, Some(50), "{backend}");
        assert!(!revoked.live_at(11), "{backend}");
        assert_eq!(all_events(store, 10).await.len(), 2, "{backend}");
        assert_eq!(
            store
                .find_api_key(&a1.sha256)
                .await
                .expect("find")
                .and_then(|k| k.revoked),
            Some(50),
            "{backend}: the hash finds the revoked record"
        );

        // last_used moves forward only, in one batch; unknown ids are no error.
        store
            .touch_api_keys(&[("a2".into(), 100), ("b1".into(), 90), ("zz".into(), 1)])
            .await
            .expect("touch");
        store
            .touch_api_keys(&[("a2".into(), 80)])
            .await
            .expect("touch back");
        let used = |id: &'static str| async move {
            store
                .get_api_key(id)
                .await
                .expect("get")
                .and_then(|k| k.last_used)
        };
        assert_eq!(used("a2").await, Some(100), "{backend}");
        assert_eq!(used("b1").await, Some(90), "{backend}");
        assert_eq!(used("a0").await, None, "{backend}");
        store.touch_api_keys(&[]).await.expect("nothing");

        // Read out in id order, in pages (`store copy`), and written back over themselves.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = store.api_keys_after(&after, 2).await.expect("page");
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            seen.extend(page);
        }
        assert_eq!(ids(seen.clone()), ["a0", "a1", "a2", "b1"], "{backend}");
        store
            .record(Effects {
                api_keys: seen.clone(),
                ..Effects::none()
            })
            .await
            .expect("write over");
        assert_eq!(store.get_api_key("a1").await.expect("get"), Some(revoked));
        assert_eq!(store.list_api_keys(ann.id).await.expect("list").len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_accounts_round_trip() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let svc = store
            .create_user(
                NewUser {
                    is_service: true,
                    ..new_user("ci-bot")
                },
                &|_| Effects::none(),
            )
            .await
            .expect("create");
        assert!(svc.is_service, "{backend}");
        let read = store.get_user(svc.id).await.expect("get").expect("there");
        assert!(read.is_service, "{backend}");
        let person = create(store, "ann").await;
        assert!(!person.is_service, "{backend}");
        let updated = store
            .update_user(svc.id, &|u| u.first_name = "CI".into(), &|_, _| {
                Effects::none()
            })
            .await
            .expect("update");
        assert!(updated.is_service, "{backend}: kept by updates");
    }
}

/// Shared rate limits (SPEC §20): slices of one bucket, on the store's clock. Racing
/// replicas together never get more than the bucket holds plus what refilled meanwhile; a
/// spent bucket refills at its rate. sled shares nothing (one process: shared is local).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_rate_limit_slices_never_grant_more_than_the_bucket() {
    const INTERVAL_US: u64 = 100_000; // 10 a second
    const CAPACITY: u64 = 12;
    for (backend, make) in backends() {
        let fresh = make();
        let store = &fresh.store;
        let first = store
            .reserve_rate("/r/|u:1", INTERVAL_US, CAPACITY, 5)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        let Some(first) = first else {
            assert_eq!(backend, "sled", "only sled decides locally");
            continue;
        };
        assert_eq!(
            first.granted, 5,
            "{backend}: a fresh bucket grants the slice"
        );
        assert!(first.tat_us > first.now_us);
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                store
                    .reserve_rate("/r/|u:1", INTERVAL_US, CAPACITY, 3)
                    .await
                    .map(|g| g.map_or(0, |g| g.granted))
            }));
        }
        let mut total = first.granted;
        for t in tasks {
            total += t.await.expect("task").expect("reserve");
        }
        let refilled = started.elapsed().as_micros() as u64 / INTERVAL_US + 1;
        assert!(
            total <= CAPACITY + refilled,
            "{backend}: {total} granted from a bucket of {CAPACITY} (+{refilled} refilled)"
        );
        assert!(
            total >= CAPACITY,
            "{backend}: the bucket was not all granted: {total}"
        );
        // Spent: nothing more now; another caller's bucket is its own.
        let now = store
            .reserve_rate("/r/|u:1", INTERVAL_US, CAPACITY, 3)
            .await
            .expect("reserve")
            .expect("shared");
        assert!(now.granted <= 1, "{backend}: {now:?}");
        let other = store
            .reserve_rate("/r/|u:2", INTERVAL_US, CAPACITY, 20)
            .await
            .expect("reserve")
            .expect("shared");
        assert_eq!(other.granted, CAPACITY, "{backend}: capped at the bucket");
        // 0.45 s later: about four more.
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        let later = store
            .reserve_rate("/r/|u:1", INTERVAL_US, CAPACITY, 20)
            .await
            .expect("reserve")
            .expect("shared");
        assert!(
            (3..=6).contains(&later.granted),
            "{backend}: {later:?} after 0.45 s at 10 a second"
        );
    }
}

/// A user write that resets the user's second factor (`Effects::mfa_removed`, here with a
/// deactivation, so the counters move too) racing the user's own factor change: both end
/// without an error every time (no deadlock for the database to break), and the counters
/// stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_factor_change_racing_a_reset_of_it_always_completes() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.clone();
        for name in ["ann", "bob"] {
            create(store.as_ref(), name).await;
        }
        let r1 = mfa_record("s", 0);
        for round in 0..40 {
            let id = 1 + round % 2;
            assert!(
                store
                    .swap_mfa(id, None, Some(&r1), Effects::none())
                    .await
                    .unwrap_or_else(|e| panic!("{backend} enable: {e}")),
                "{backend}: round {round} starts with no factor"
            );
            let (a, b) = (store.clone(), store.clone());
            let active = round % 4 < 2;
            let reset = tokio::spawn(async move {
                let removed = Effects {
                    mfa_removed: vec![id],
                    ..Effects::none()
                };
                a.update_user(id, &move |u| u.is_active = !active, &|_, _| removed.clone())
                    .await
            });
            // The user turns it off (a change the counters see, so PostgreSQL's trigger
            // reads the user) while the reset deletes it.
            let from = r1.clone();
            let change =
                tokio::spawn(
                    async move { b.swap_mfa(id, Some(&from), None, Effects::none()).await },
                );
            let reset = reset.await.expect("reset task");
            let change = change.await.expect("change task");
            assert!(reset.is_ok(), "{backend} round {round}: reset {reset:?}");
            assert!(change.is_ok(), "{backend} round {round}: change {change:?}");
            // Whichever went first, the factor is gone.
            assert_eq!(
                store.get_mfa(id).await.expect("get"),
                None,
                "{backend} round {round}"
            );
        }
        counts_agree_with_a_scan(store.as_ref(), &[], backend, "the races").await;
    }
}

/// Two confirmations of the same pending factor racing (two replicas, one code): exactly one
/// wins, neither fails (PostgreSQL's `mfa` trigger writes the user's `mfa_on`: both holding
/// the user shared would deadlock), and the list's filter and counter follow, in every sort.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_confirmations_of_a_factor_leave_one_on_in_every_sort() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.clone();
        for name in ["ann", "bob", "cid"] {
            create(store.as_ref(), name).await;
        }
        let (pending, enabled) = (pending_mfa(), mfa_record("s", 0));
        for round in 0..20u64 {
            let id = 1 + round % 3;
            assert!(
                store
                    .swap_mfa(id, None, Some(&pending), Effects::none())
                    .await
                    .unwrap_or_else(|e| panic!("{backend} pending: {e}")),
                "{backend} round {round}: starts with no factor"
            );
            let confirm = || {
                let (s, from, to) = (store.clone(), pending.clone(), enabled.clone());
                tokio::spawn(async move {
                    s.swap_mfa(id, Some(&from), Some(&to), Effects::none())
                        .await
                })
            };
            let (a, b) = (confirm(), confirm());
            let (a, b) = (a.await.expect("task"), b.await.expect("task"));
            let won = [&a, &b].iter().filter(|r| matches!(r, Ok(true))).count();
            assert!(
                a.is_ok() && b.is_ok(),
                "{backend} round {round}: {a:?} {b:?}"
            );
            assert_eq!(won, 1, "{backend} round {round}: {a:?} {b:?}");
            let on = UserQuery {
                mfa: Some(true),
                ..UserQuery::default()
            };
            for (sort, desc) in [
                (UserSort::Id, false),
                (UserSort::Username, true),
                (UserSort::DateJoined, false),
                (UserSort::LastLogin, true),
            ] {
                let q = UserQuery {
                    sort,
                    desc,
                    ..on.clone()
                };
                assert_eq!(
                    all_pages(store.as_ref(), &q, 2).await,
                    vec![id],
                    "{backend} round {round}: {sort:?}"
                );
            }
            assert_eq!(
                store.count_query(&on).await.expect("count"),
                UserCount::Exact(1),
                "{backend} round {round}"
            );
            assert!(store
                .swap_mfa(id, Some(&enabled), None, Effects::none())
                .await
                .expect("off"));
        }
        counts_agree_with_a_scan(store.as_ref(), &[], backend, "the confirmations").await;
    }
}

/// A search finds a user by the name and address it has now, not by those it had (sled's
/// index keeps stale postings and checks each candidate's record).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_follows_a_rename_and_an_address_change() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        for name in ["alice", "bob", "carol"] {
            create(store, name).await;
        }
        let search = |s: &str| UserQuery {
            search: Some(s.into()),
            ..UserQuery::default()
        };
        let found = |s: &'static str| async move {
            let q = search(s);
            (
                all_pages(store, &q, 2).await,
                store.count_query(&q).await.expect("count"),
            )
        };
        store
            .update_user(
                2,
                &|u| {
                    u.username = "zebedee".into();
                    u.email = "zeb@elsewhere.org".into();
                },
                &|_, _| Effects::none(),
            )
            .await
            .expect("rename");
        for (s, want) in [
            ("bob", vec![]),
            ("bob@example", vec![]),
            ("zebedee", vec![2]),
            ("elsewhere", vec![2]),
            ("ebe", vec![2]),
            ("example.com", vec![1, 3]),
        ] {
            let n = want.len();
            assert_eq!(
                found(s).await,
                (want, UserCount::Exact(n)),
                "{backend}: {s}"
            );
        }
        // And back: found by the old name again, not by the one it dropped.
        store
            .update_user(2, &|u| u.username = "bob".into(), &|_, _| Effects::none())
            .await
            .expect("rename back");
        assert_eq!(
            found("bob").await,
            (vec![2], UserCount::Exact(1)),
            "{backend}"
        );
        assert_eq!(
            found("zebedee").await,
            (vec![], UserCount::Exact(0)),
            "{backend}"
        );
    }
}
