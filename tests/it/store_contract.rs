// The store contract: what every `UserStore` backend guarantees, run against each backend in
// `backends()`. A new backend joins by adding one constructor there; the scenarios do not
// change. They drive the trait only (no backend-specific calls), from many tasks at once.

use crate::common;

use common::postgres;
use gatehouse::auth::families::{self, Presented, Step};
use gatehouse::store::{
    Family, ListFilter, MailKind, NewUser, OutboxMail, PgStore, SledStore, StateFilter, StoreError,
    User, UserStore,
};
use std::sync::Arc;

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
    }
}

async fn create(store: &dyn UserStore, name: &str) -> User {
    store
        .create_user(new_user(name))
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
                store.create_user(user).await
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
                store.create_user(user).await
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
            .update_user(a.id, &|u| u.is_active = false)
            .await
            .expect("deactivate");
        let d = create(store, "d").await;
        assert!(d.id > c.id, "{backend}: no id reused");
        assert_eq!(
            store.create_user(new_user("A")).await,
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
                .update_user(id, &|u| u.is_active = active)
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
                .update_user(a.id, &|u| u.username = "FRANK".into())
                .await,
            Err(StoreError::UsernameTaken),
            "{backend}"
        );
        assert_eq!(
            store
                .update_user(a.id, &|u| u.email = "Frank@example.com".into())
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
            .update_user(a.id, &|u| {
                u.username = "Erin2".into();
                u.email = "erin2@example.com".into();
            })
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
            store.update_user(9999, &|_| {}).await,
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
        created_at: at,
    }
}

#[tokio::test]
async fn mails_are_written_with_the_change_that_causes_them_or_not_at_all() {
    for (backend, make) in backends() {
        let fresh = make();
        let store = fresh.store.as_ref();
        let ann = store
            .create_user_with_mail(new_user("ann"), &|u| {
                vec![mail(MailKind::VerifyEmail, u.id, &u.email, 10)]
            })
            .await
            .expect("create with mail");
        create(store, "bob").await;
        assert_eq!(store.outbox_depth().await.expect("depth"), 1, "{backend}");
        // A change that fails (the address is taken) records no mail either.
        let failed = store
            .update_user_with_mail(ann.id, &|u| u.email = "BOB@example.com".into(), &|_, _| {
                vec![mail(MailKind::EmailChanged, 1, "x@example.com", 10)]
            })
            .await;
        assert_eq!(failed, Err(StoreError::EmailTaken), "{backend}");
        // The same for a registration that loses on its name.
        let lost = store
            .create_user_with_mail(new_user("ANN"), &|u| {
                vec![mail(MailKind::VerifyEmail, u.id, &u.email, 10)]
            })
            .await;
        assert_eq!(lost.err(), Some(StoreError::UsernameTaken), "{backend}");
        assert_eq!(store.outbox_depth().await.expect("depth"), 1, "{backend}");
        // The mails see the user before and after the change.
        let updated = store
            .update_user_with_mail(
                ann.id,
                &|u| u.email = "ann2@example.com".into(),
                &|before, after| {
                    let mut m = mail(MailKind::EmailChanged, after.id, &before.email, 11);
                    m.new_email = Some(after.email.clone());
                    vec![m]
                },
            )
            .await
            .expect("update with mail");
        assert_eq!(updated.email, "ann2@example.com");
        store
            .enqueue_mail(mail(
                MailKind::PasswordReset,
                ann.id,
                "ann2@example.com",
                12,
            ))
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
                .enqueue_mail(mail(MailKind::PasswordReset, i, "a@example.com", 0))
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
            .enqueue_mail(mail(MailKind::PasswordChanged, 1, "a@example.com", 500))
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
        (n.clone(), e.clone()).prop_map(|(n, e)| Op::Create(n, e)),
        (5u64..40, n.clone(), e.clone()).prop_map(|(id, n, e)| Op::Import(id, n, e)),
        (1u64..12, n.clone()).prop_map(|(id, n)| Op::Rename(id, n)),
        (1u64..12, e.clone()).prop_map(|(id, e)| Op::ChangeEmail(id, e)),
        (1u64..12, any::<bool>()).prop_map(|(id, a)| Op::SetActive(id, a)),
        (1u64..12).prop_map(Op::Bump),
        n.clone().prop_map(Op::Find),
        e.clone().prop_map(Op::Owner),
        any::<u8>().prop_map(Op::Count),
        (
            any::<u8>(),
            proptest::option::of(0usize..7),
            0usize..6,
            0usize..5
        )
            .prop_map(|(s, q, o, l)| Op::List(s, q, o, l)),
        (
            any::<u8>(),
            proptest::option::of(0usize..7),
            0u64..12,
            0usize..5
        )
            .prop_map(|(s, q, a, l)| Op::After(s, q, a, l)),
        (0usize..3, any::<bool>()).prop_map(|(f, r)| Op::Swap(f, r)),
    ]
}

/// What an operation answered, in a form both backends must agree on.
async fn apply(store: &dyn UserStore, op: &Op) -> String {
    match op {
        Op::Create(n, e) => {
            let mut u = new_user(NAMES[*n]);
            u.email = EMAILS[*e].into();
            format!("{:?}", store.create_user(u).await)
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
            };
            u.last_login = Some(9);
            format!("{:?}", store.insert_user(u).await)
        }
        Op::Rename(id, n) => format!(
            "{:?}",
            store
                .update_user(*id, &|u| u.username = NAMES[*n].into())
                .await
        ),
        Op::ChangeEmail(id, e) => format!(
            "{:?}",
            store
                .update_user(*id, &|u| u.email = EMAILS[*e].into())
                .await
        ),
        Op::SetActive(id, a) => {
            format!("{:?}", store.update_user(*id, &|u| u.is_active = *a).await)
        }
        Op::Bump(id) => format!(
            "{:?}",
            store.update_user(*id, &|u| u.token_version += 1).await
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
            });
            new.current = format!("{}x", new.current);
            new.parent = Some(name.clone());
            new.revoked = *revoke;
            let swapped = store.swap_family(&name, old.as_ref(), &new).await;
            let stale = store.swap_family(&name, old.as_ref(), &new).await;
            format!("{swapped:?} {stale:?} {:?}", store.get_family(&name).await)
        }
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
                .enqueue_mail(mail(MailKind::PasswordReset, i as u64 + 1, to, 100))
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
