//! The console's users list on sled: the `user_index` tree's keys (sort orders and the
//! selective filters), kept in the user transactions, and the plan that answers a
//! `UserQuery` from them with work bounded by the page, not by the number of users.
//!
//! `user_index` keys (values empty; ids u64 big-endian, last, so each run is in id order):
//! - `j` date_joined id, `l` last_login-or-0 id: the date sorts;
//! - `s` id: staff; `m` id: second factor enabled (written by `swap_mfa`);
//! - `g` group-name 0xFF id: members of a group (0xFF never occurs in UTF-8, so a name is
//!   never a prefix of another's run).
//!
//! The username sort walks the `usernames` tree (folded name -> id); the id sort, `users`.

use super::{decode_id, decode_user, id_key, io, SledStore, USER_INDEX_BUILT};
use crate::store::{
    capped_count, GroupCount, StateFilter, StoreError, User, UserCount, UserCursor, UserQuery,
    UserSort, COUNT_CAP,
};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::IVec;
use std::ops::Bound;

const JOINED: u8 = b'j';
const LOGIN: u8 = b'l';
const STAFF: u8 = b's';
const MFA_ON: u8 = b'm';
const GROUP: u8 = b'g';

/// A selective set no larger than this is read whole and sorted in memory; a larger one is
/// walked in the list's order. Chosen so the read costs about what a page walk does. (Small
/// in unit tests, so that a few users take both paths.)
const SMALL_SET: usize = if cfg!(test) { 8 } else { 2_000 };

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![tag];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The key marking user `id`'s second factor as on.
pub(super) fn mfa_key(id: u64) -> Vec<u8> {
    tagged(MFA_ON, &[&id_key(id)])
}

fn group_prefix(group: &str) -> Vec<u8> {
    tagged(GROUP, &[group.as_bytes(), &[0xFF]])
}

/// Every `user_index` key of `user` (all but the second factor's, which its record owns).
pub(super) fn index_keys(user: &User) -> Vec<Vec<u8>> {
    let id = id_key(user.id);
    let mut keys = vec![
        tagged(JOINED, &[&user.date_joined.to_be_bytes(), &id]),
        tagged(LOGIN, &[&user.last_login.unwrap_or(0).to_be_bytes(), &id]),
    ];
    if user.is_staff {
        keys.push(tagged(STAFF, &[&id]));
    }
    for g in &user.groups {
        let mut k = group_prefix(g);
        k.extend_from_slice(&id);
        keys.push(k);
    }
    keys
}

/// Moves `old`'s index entries to `new`'s inside a user write's transaction.
pub(super) fn move_index_tx(
    index: &TransactionalTree,
    old: &User,
    new: &User,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let (before, after) = (index_keys(old), index_keys(new));
    for k in before.iter().filter(|k| !after.contains(k)) {
        index.remove(k.as_slice())?;
    }
    for k in after.iter().filter(|k| !before.contains(k)) {
        index.insert(k.as_slice(), &[])?;
    }
    Ok(())
}

/// The last 8 bytes of an index key: the id.
fn trailing_id(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| decode_id(&key[at..]))
        .ok_or_else(|| StoreError::Io("corrupt users list index".into()))
}

/// A set of users one index holds, each run in id order: the tree and the run's prefix.
struct Set<'a> {
    tree: &'a sled::Tree,
    prefix: Vec<u8>,
}

/// Candidate users in the list's order: the id and, when the walk read it, the record.
type Candidates<'a> = Box<dyn Iterator<Item = Result<(u64, Option<IVec>), StoreError>> + 'a>;

fn ids_of<'a>(items: impl Iterator<Item = sled::Result<(IVec, IVec)>> + 'a) -> Candidates<'a> {
    Box::new(items.map(|item| Ok((trailing_id(&item.map_err(io)?.0)?, None))))
}

/// The range of a run of `prefix ++ suffix` keys after `from` (a whole key), in `desc` or
/// ascending order.
fn run_after<'a>(
    tree: &'a sled::Tree,
    prefix: &[u8],
    from: Option<Vec<u8>>,
    desc: bool,
) -> impl DoubleEndedIterator<Item = sled::Result<(IVec, IVec)>> + 'a {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xFF; 17]);
    let range: (Bound<Vec<u8>>, Bound<Vec<u8>>) = match (from, desc) {
        (None, _) => (Bound::Included(prefix.to_vec()), Bound::Included(end)),
        (Some(k), false) => (Bound::Excluded(k), Bound::Included(end)),
        (Some(k), true) => (Bound::Included(prefix.to_vec()), Bound::Excluded(k)),
    };
    let items = tree.range::<Vec<u8>, _>(range);
    let boxed: Box<dyn DoubleEndedIterator<Item = _>> = if desc {
        Box::new(items.rev())
    } else {
        Box::new(items)
    };
    boxed
}

impl SledStore {
    /// Builds the `user_index` of a store written before it existed (one pass over the
    /// users and second factors, once), or after an older gatehouse added users without it
    /// (the newest user has no entry).
    pub(super) fn ensure_user_index(&self) -> Result<(), StoreError> {
        let built = self.meta.get(USER_INDEX_BUILT).map_err(io)?.is_some();
        let newest_indexed = match self.users.last().map_err(io)? {
            Some((_, bytes)) => {
                let user = decode_user(&bytes)?;
                let key = index_keys(&user).swap_remove(0);
                self.user_index.contains_key(key).map_err(io)?
            }
            None => true,
        };
        if built && newest_indexed {
            return Ok(());
        }
        self.user_index.clear().map_err(io)?;
        for item in self.users.iter() {
            let (_, bytes) = item.map_err(io)?;
            for key in index_keys(&decode_user(&bytes)?) {
                self.user_index.insert(key, &[]).map_err(io)?;
            }
        }
        for item in self.mfa.iter() {
            let (key, bytes) = item.map_err(io)?;
            let id = decode_id(&key).ok_or_else(|| StoreError::Io("corrupt mfa key".into()))?;
            let record: crate::store::Mfa = serde_json::from_slice(&bytes).map_err(io)?;
            if record.enabled {
                self.user_index.insert(mfa_key(id), &[]).map_err(io)?;
            }
        }
        self.meta.insert(USER_INDEX_BUILT, &[1]).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// `UserStore::group_counts`: the `g` runs of `user_index`, one seek per group, each run
    /// counted up to the cap.
    pub(super) fn group_counts_of(&self, limit: usize) -> Result<Vec<GroupCount>, StoreError> {
        let mut out = Vec::new();
        let mut from = vec![GROUP];
        while out.len() < limit {
            let range = (Bound::Included(from.clone()), Bound::Unbounded::<Vec<u8>>);
            let Some(item) = self.user_index.range(range).next() else {
                break;
            };
            let (key, _) = item.map_err(io)?;
            if key.first() != Some(&GROUP) {
                break;
            }
            // `g` name 0xFF id: the name is what lies between the tag and the last 9 bytes.
            let name = key
                .len()
                .checked_sub(9)
                .filter(|end| *end >= 1 && key[*end] == 0xFF)
                .and_then(|end| std::str::from_utf8(&key[1..end]).ok())
                .ok_or_else(|| StoreError::Io("corrupt group index".into()))?
                .to_string();
            let prefix = group_prefix(&name);
            let members = self
                .user_index
                .scan_prefix(&prefix)
                .take(COUNT_CAP + 1)
                .count();
            // Past every key of this run: the prefix, then more 0xFF than an id holds.
            from = prefix;
            from.extend_from_slice(&[0xFF; 9]);
            out.push(GroupCount {
                name,
                members: capped_count(members),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The index sets the query narrows to (each a subset of the answer's superset).
    fn selective_sets(&self, q: &UserQuery) -> Vec<Set<'_>> {
        let mut sets = Vec::new();
        if q.state == StateFilter::Inactive {
            sets.push(Set {
                tree: &self.inactive,
                prefix: Vec::new(),
            });
        }
        if q.staff == Some(true) {
            sets.push(Set {
                tree: &self.user_index,
                prefix: vec![STAFF],
            });
        }
        if q.mfa == Some(true) {
            sets.push(Set {
                tree: &self.user_index,
                prefix: vec![MFA_ON],
            });
        }
        if let Some(g) = &q.group {
            sets.push(Set {
                tree: &self.user_index,
                prefix: group_prefix(g),
            });
        }
        sets
    }

    /// The smallest selective set and whether it has at most `SMALL_SET` members (each set
    /// is counted only that far).
    fn smallest<'a>(&self, sets: Vec<Set<'a>>) -> Result<Option<(Set<'a>, bool)>, StoreError> {
        let mut best: Option<(Set<'a>, usize)> = None;
        for set in sets {
            let n = set
                .tree
                .scan_prefix(&set.prefix)
                .take(SMALL_SET + 1)
                .count();
            if best.as_ref().is_none_or(|(_, m)| n < *m) {
                best = Some((set, n));
            }
        }
        Ok(best.map(|(set, n)| (set, n <= SMALL_SET)))
    }

    /// What the index says of `id` for the filters it serves, before the record is read:
    /// `None` when it is out, else whether its second factor is on.
    fn index_check(&self, q: &UserQuery, id: u64) -> Result<Option<bool>, StoreError> {
        let key = id_key(id);
        let has = |k: Vec<u8>| self.user_index.contains_key(k).map_err(io);
        match q.state {
            StateFilter::All => {}
            StateFilter::Active | StateFilter::Inactive => {
                let inactive = self.inactive.contains_key(key).map_err(io)?;
                if inactive != (q.state == StateFilter::Inactive) {
                    return Ok(None);
                }
            }
        }
        if let Some(staff) = q.staff {
            if has(tagged(STAFF, &[&key]))? != staff {
                return Ok(None);
            }
        }
        if let Some(g) = &q.group {
            let mut k = group_prefix(g);
            k.extend_from_slice(&key);
            if !has(k)? {
                return Ok(None);
            }
        }
        let mfa_on = has(mfa_key(id))?;
        if q.mfa.is_some_and(|m| m != mfa_on) {
            return Ok(None);
        }
        Ok(Some(mfa_on))
    }

    /// Candidates in the list's order after `after`: by id from `users` (or from `driver`, a
    /// selective set, which is in id order too), by username from `usernames`, by a date from
    /// its `user_index` run.
    fn walk<'a>(
        &'a self,
        q: &UserQuery,
        after: Option<&UserCursor>,
        driver: Option<Set<'a>>,
    ) -> Candidates<'a> {
        let desc = q.desc;
        match q.sort {
            UserSort::Id => match driver {
                Some(set) => {
                    let from = after.map(|c| {
                        let mut k = set.prefix.clone();
                        k.extend_from_slice(&id_key(c.id));
                        k
                    });
                    ids_of(run_after(set.tree, &set.prefix, from, desc))
                }
                None => {
                    let from = after.map(|c| id_key(c.id).to_vec());
                    Box::new(run_after(&self.users, &[], from, desc).map(|item| {
                        let (k, v) = item.map_err(io)?;
                        Ok((trailing_id(&k)?, Some(v)))
                    }))
                }
            },
            UserSort::Username => {
                let from = after.map(|c| match &c.key {
                    crate::store::SortKey::Text(t) => t.as_bytes().to_vec(),
                    _ => Vec::new(),
                });
                Box::new(run_after(&self.usernames, &[], from, desc).map(|item| {
                    let (_, v) = item.map_err(io)?;
                    let id = decode_id(&v)
                        .ok_or_else(|| StoreError::Io("corrupt username index".into()))?;
                    Ok((id, None))
                }))
            }
            UserSort::DateJoined | UserSort::LastLogin => {
                let tag = if q.sort == UserSort::DateJoined {
                    JOINED
                } else {
                    LOGIN
                };
                let from = after.map(|c| {
                    let n = match c.key {
                        crate::store::SortKey::Number(n) => n,
                        _ => 0,
                    };
                    tagged(tag, &[&n.to_be_bytes(), &id_key(c.id)])
                });
                ids_of(run_after(&self.user_index, &[tag], from, desc))
            }
        }
    }

    /// Up to `limit` users of the list after `after`, in order.
    pub(super) fn query_rows(
        &self,
        q: &UserQuery,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut rows = Vec::new();
        if limit == 0 {
            return Ok(rows);
        }
        let smallest = self.smallest(self.selective_sets(q))?;
        // A selective set is in id order: the id sort walks it, and so reads about a page.
        // Another sort reads a few users whole and sorts them in memory, or walks its own
        // order checking the sets (when none of them is small).
        let driver = match smallest {
            Some((set, true)) if q.sort != UserSort::Id => Err(set),
            other => Ok(other.map(|(set, _)| set)),
        };
        let driver = match driver {
            Ok(driver) => driver,
            Err(set) => return self.small_set_rows(q, &set, after, limit),
        };
        for candidate in self.walk(q, after, driver) {
            let (id, bytes) = candidate?;
            if let Some(user) = self.matching(q, id, bytes)? {
                rows.push(user);
                if rows.len() >= limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// Up to `limit` users of the list after `after` from a set of at most `SMALL_SET`: read
    /// whole and sorted in memory.
    fn small_set_rows(
        &self,
        q: &UserQuery,
        set: &Set<'_>,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut rows = Vec::new();
        for item in set.tree.scan_prefix(&set.prefix) {
            let id = trailing_id(&item.map_err(io)?.0)?;
            if let Some(user) = self.matching(q, id, None)? {
                if after.is_none_or(|c| q.is_after(c, &user)) {
                    rows.push(user);
                }
            }
        }
        rows.sort_by(|a, b| q.order(a, b));
        rows.truncate(limit);
        Ok(rows)
    }

    /// User `id` if the query lists it (the index first, then the record decides).
    fn matching(
        &self,
        q: &UserQuery,
        id: u64,
        bytes: Option<IVec>,
    ) -> Result<Option<User>, StoreError> {
        let Some(mfa_on) = self.index_check(q, id)? else {
            return Ok(None);
        };
        let bytes = match bytes {
            Some(b) => b,
            // An index entry whose user is gone (no hard delete exists) is skipped.
            None => match self.users.get(id_key(id)).map_err(io)? {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        let user = decode_user(&bytes)?;
        Ok(q.matches(&user, mfa_on).then_some(user))
    }

    /// `UserStore::count_query`: the counters when only the state is asked, else the
    /// matching users counted (in id order, from the smallest selective set) up to the cap.
    pub(super) fn count_matching(&self, q: &UserQuery) -> Result<UserCount, StoreError> {
        if q.is_state_only() {
            return Ok(UserCount::Exact(self.count(&q.state)?));
        }
        let by_id = UserQuery {
            sort: UserSort::Id,
            desc: false,
            ..q.clone()
        };
        let driver = self.smallest(self.selective_sets(&by_id))?.map(|(s, _)| s);
        let mut n = 0;
        for candidate in self.walk(&by_id, None, driver) {
            let (id, bytes) = candidate?;
            if self.matching(&by_id, id, bytes)?.is_some() {
                n += 1;
                if n > COUNT_CAP {
                    return Ok(UserCount::AtLeast(COUNT_CAP));
                }
            }
        }
        Ok(UserCount::Exact(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_user, Effects, Mfa, UserStore};

    /// Both plans (a small set sorted in memory, a walk in order) against a filtered scan,
    /// for every sort, both directions and pages of several sizes.
    #[tokio::test]
    async fn both_plans_agree_with_a_filtered_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let users: Vec<User> = (1..=90u64)
            .map(|i| {
                let mut u = test_user(i, &format!("n{}", (i * 37) % 101), &format!("{i}@x.org"));
                u.is_staff = i % 4 == 0;
                u.is_active = i % 9 != 0;
                u.date_joined = i % 5;
                u.last_login = (i % 3 != 0).then_some(i % 7);
                if i % 2 == 0 {
                    u.groups.push("big".into());
                }
                if i % 30 == 0 {
                    u.groups.push("tiny".into());
                }
                u
            })
            .collect();
        for r in store.insert_users(users.clone()).await.expect("insert") {
            r.expect("inserted");
        }
        let on = |id: u64| id % 5 == 0;
        for id in (1..=90).filter(|id| on(*id)) {
            let mfa = Mfa {
                enabled: true,
                ..Mfa::default()
            };
            assert!(store
                .swap_mfa(id, None, Some(&mfa), Effects::none())
                .await
                .expect("swap"));
        }
        let filters = [
            UserQuery::default(),
            UserQuery {
                staff: Some(true),
                state: StateFilter::Active,
                ..UserQuery::default()
            },
            UserQuery {
                group: Some("big".into()),
                mfa: Some(true),
                ..UserQuery::default()
            },
            UserQuery {
                group: Some("tiny".into()),
                ..UserQuery::default()
            },
            UserQuery {
                state: StateFilter::Inactive,
                staff: Some(false),
                ..UserQuery::default()
            },
            UserQuery {
                mfa: Some(true),
                search: Some("N1".into()),
                ..UserQuery::default()
            },
        ];
        for f in filters {
            for sort in UserSort::ALL {
                for desc in [false, true] {
                    let q = UserQuery {
                        sort,
                        desc,
                        ..f.clone()
                    };
                    let mut want: Vec<&User> =
                        users.iter().filter(|u| q.matches(u, on(u.id))).collect();
                    want.sort_by(|a, b| q.order(a, b));
                    let want: Vec<u64> = want.iter().map(|u| u.id).collect();
                    for size in [1, 4, 100] {
                        let mut got = Vec::new();
                        let mut after = None;
                        loop {
                            let page = store
                                .query_users(&q, after.as_ref(), size)
                                .await
                                .expect("page");
                            got.extend(page.users.iter().map(|u| u.id));
                            match page.next {
                                Some(c) => after = Some(c),
                                None => break,
                            }
                        }
                        assert_eq!(got, want, "{q:?} pages of {size}");
                    }
                    assert_eq!(
                        store.count_query(&q).await.expect("count"),
                        UserCount::Exact(want.len())
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_store_without_the_list_index_gets_it_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staff = UserQuery {
            staff: Some(true),
            mfa: Some(true),
            ..UserQuery::default()
        };
        {
            let store = SledStore::open(dir.path(), 1 << 20).expect("open");
            let mut u = test_user(1, "a", "a@x.org");
            u.is_staff = true;
            store.insert_user(u).await.expect("insert");
            let mfa = Mfa {
                enabled: true,
                ..Mfa::default()
            };
            assert!(store
                .swap_mfa(1, None, Some(&mfa), Effects::none())
                .await
                .expect("swap"));
            // As a store written before the index existed.
            store.user_index.clear().expect("clear");
            store.meta.remove(USER_INDEX_BUILT).expect("unmark");
            store.db.flush().expect("flush");
        }
        let store = crate::store::sled_store::reopen(dir.path());
        let page = store.query_users(&staff, None, 10).await.expect("page");
        assert_eq!(page.users.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
        // A user added by an older gatehouse (no entries): rebuilt on the next open.
        store
            .insert_user(test_user(2, "b", "b@x.org"))
            .await
            .expect("insert");
        for key in index_keys(&test_user(2, "b", "b@x.org")) {
            store.user_index.remove(key).expect("unindex");
        }
        store.db.flush().expect("flush");
        drop(store);
        let store = crate::store::sled_store::reopen(dir.path());
        let sorted = UserQuery {
            sort: UserSort::DateJoined,
            ..UserQuery::default()
        };
        let page = store.query_users(&sorted, None, 10).await.expect("page");
        assert_eq!(page.users.len(), 2);
    }

    #[test]
    fn index_keys_follow_the_record() {
        let mut u = test_user(7, "a", "a@example.com");
        u.date_joined = 3;
        u.groups = vec!["ops".into(), "ops2".into()];
        u.is_staff = true;
        let keys = index_keys(&u);
        assert_eq!(keys.len(), 5);
        assert_eq!(trailing_id(&keys[4]).ok(), Some(7));
        assert!(keys[3].starts_with(&group_prefix("ops")));
        assert!(
            !keys[4].starts_with(&group_prefix("ops")),
            "ops2 is not in ops' run"
        );
    }
}
