//! The console's users list on sled: the `user_index` tree's keys (sort orders and the
//! selective filters), kept in the user transactions, and the plan that answers a
//! `UserQuery` from them with work bounded by the page, not by the number of users.
//!
//! `user_index` keys (values empty but `k`'s; ids u64 big-endian, last, so each run is in id
//! order):
//! - `j` date_joined id, `l` last_login-or-0 id: the date sorts;
//! - `k` id -> date_joined last_login-or-0 folded-username: a user's sort keys by a point
//!   read, so a search's few candidates are sorted without their records (`few_rows`), and
//!   a second factor's write knows where its user sorts;
//! - `s` id: staff; `m` id: second factor enabled (written by `swap_mfa`); `v` id: email
//!   not verified; `d` id: deactivated (so a second factor's write knows the user's state);
//! - `g` group-name 0xFF id: members of a group (0xFF never occurs in UTF-8, so a name is
//!   never a prefix of another's run);
//! - `o` sort set value id: each of those sets (`s`, `m`, `v`, `d`, `g` name 0xFF) in each
//!   other order (`j` date_joined, `l` last_login-or-0, `n` folded-username 0x00), so a
//!   filtered page in another order walks about a page of its set (`ordered_walk`), however
//!   large the set and the store; moved with the user's sort keys in the same transactions
//!   (a login moves one `o l` key per set the user is in);
//! - `t`, `h`, `x`: the search index (`search_index`), posting lists per distinct trigram
//!   (three chars, UTF-8) of each searched text (`name_key` of username and email,
//!   `names_key`); a search of three chars or more intersects its trigrams' postings
//!   (`Leapfrog`) and checks each candidate.
//!
//! And the counters (value: u64 big-endian), `c` state kind [name], state `a` or `i`, kind
//! `s` staff, `m` second factor on, `u` unverified, `g` group name: exact, moved in the same
//! transactions as the keys above, so a page with one filter is counted by a lookup
//! (`UserQuery::count_plan`).
//!
//! The username sort walks the `usernames` tree (folded name -> id); the id sort, `users`.

use super::search_index::{self, trigrams_of, Gathered, Postings};
use super::{
    bump, decode_id, decode_user, id_key, io, SledStore, USER_COUNTS_BUILT, USER_INDEX_BUILT,
    USER_INDEX_TREE, USER_SEARCH_BLOCKS, USER_SET_ORDER,
};
use crate::store::{
    capped_count, estimate, name_key, names_key, CountPlan, Counted, GroupCount, SortKey,
    StateFilter, StoreError, User, UserCount, UserCursor, UserQuery, UserSort, COUNT_BUDGET,
    COUNT_CAP,
};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::IVec;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;

const JOINED: u8 = b'j';
const LOGIN: u8 = b'l';
const STAFF: u8 = b's';
const MFA_ON: u8 = b'm';
const GROUP: u8 = b'g';
const INACTIVE: u8 = b'd';
const UNVERIFIED: u8 = b'v';
const COUNTER: u8 = b'c';
const SORT_KEYS: u8 = b'k';
const SET_ORDER: u8 = b'o';
/// The sort tag of the username order in `o` keys (the dates use `j` and `l`).
const BY_NAME: u8 = b'n';

/// A search's candidates no more than this are read whole (their `k` values) and sorted in
/// memory under a sort other than id; more are walked in the list's order (a selective
/// set's `o` run when the query has one). A selective set no larger than this is walked
/// rather than a search's postings. (Small in unit tests, so that a few users take every
/// path.)
const SMALL_SET: usize = if cfg!(test) { 8 } else { 2_000 };

/// The postings a search walks: its rarest trigram's, and of the others at most this many
/// of the rarest that at most a quarter of the users hold. A trigram most users hold (`use`
/// in every generated name) barely narrows the candidates and costs a seek per candidate
/// and its blocks, while the record check decides anyway.
const SEARCH_RUNS: usize = 3;

/// A count of a search past the budget is estimated from this many candidates checked
/// against their records, every twentieth of the budget's candidates (the rest are walked
/// in the index only): at 1M users a record read, decoded and matched, costs ~2.3 µs where
/// a candidate's index step costs ~0.17 (the bench's profile). Spread over the budget, 50
/// judge clustered matches better than the first 200 did (the sampling error, ~±40 % at a
/// tenth matching, is small beside what scaling by the pool assumes; the page says
/// "About").
const COUNT_SAMPLE: usize = 50;

/// Users per chunk of the one-time index build.
const REINDEX_CHUNK: usize = 10_000;

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

/// The trigrams a search looks up: `None` when it is shorter than three chars (no trigram
/// narrows it).
fn search_trigrams(search: &str) -> Option<Vec<Vec<u8>>> {
    let mut tris = BTreeSet::new();
    trigrams_of(search, &mut tris);
    (!tris.is_empty()).then(|| tris.into_iter().collect())
}

/// The trigrams `user` is found by: those of its folded username, email and names.
pub(super) fn user_trigrams(user: &User) -> BTreeSet<Vec<u8>> {
    let mut tris = BTreeSet::new();
    trigrams_of(&name_key(&user.username), &mut tris);
    trigrams_of(&name_key(&user.email), &mut tris);
    trigrams_of(&names_key(user), &mut tris);
    tris
}

/// Where a user sorts in the orders other than id: the value of its `k` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SortValues {
    joined: u64,
    login: u64,
    name: String,
}

impl SortValues {
    fn of(user: &User) -> SortValues {
        SortValues {
            joined: user.date_joined,
            login: user.last_login.unwrap_or(0),
            name: name_key(&user.username),
        }
    }

    fn encode(&self) -> Vec<u8> {
        [
            &self.joined.to_be_bytes()[..],
            &self.login.to_be_bytes(),
            self.name.as_bytes(),
        ]
        .concat()
    }

    fn decode(bytes: &[u8]) -> Result<SortValues, StoreError> {
        let corrupt = || StoreError::Io("corrupt sort keys entry".into());
        let number = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(decode_id)
                .ok_or_else(corrupt)
        };
        Ok(SortValues {
            joined: number(0)?,
            login: number(8)?,
            name: bytes
                .get(16..)
                .and_then(|t| std::str::from_utf8(t).ok())
                .ok_or_else(corrupt)?
                .to_string(),
        })
    }

    fn key(&self, sort: UserSort) -> SortKey {
        match sort {
            UserSort::Id => SortKey::None,
            UserSort::DateJoined => SortKey::Number(self.joined),
            UserSort::LastLogin => SortKey::Number(self.login),
            UserSort::Username => SortKey::Text(self.name.clone()),
        }
    }
}

/// The `o` tag of `sort` (`None`: the id order, which the sets' own runs are in).
fn order_tag(sort: UserSort) -> Option<u8> {
    match sort {
        UserSort::Id => None,
        UserSort::DateJoined => Some(JOINED),
        UserSort::LastLogin => Some(LOGIN),
        UserSort::Username => Some(BY_NAME),
    }
}

/// The bytes a sort key takes in an `o` key: a date big-endian, a name then 0x00 (so a name
/// sorts before the longer names it begins, as `SortKey::Text` does; a folded name holds
/// no NUL).
fn order_value(key: &SortKey) -> Vec<u8> {
    match key {
        SortKey::None => Vec::new(),
        SortKey::Number(n) => n.to_be_bytes().to_vec(),
        SortKey::Text(t) => [t.as_bytes(), &[0]].concat(),
    }
}

/// The run of set `set` (its tag, or `g` name 0xFF) in the order `tag` within `o` keys.
fn order_prefix(tag: u8, set: &[u8]) -> Vec<u8> {
    [&[SET_ORDER, tag][..], set].concat()
}

/// The `o` keys placing user `id` (sorting at `values`) in set `set`, one per order.
fn set_order_keys(set: &[u8], values: &SortValues, id: u64) -> Vec<Vec<u8>> {
    [
        UserSort::DateJoined,
        UserSort::LastLogin,
        UserSort::Username,
    ]
    .into_iter()
    .filter_map(|sort| {
        let tag = order_tag(sort)?;
        Some(
            [
                order_prefix(tag, set),
                order_value(&values.key(sort)),
                id_key(id).to_vec(),
            ]
            .concat(),
        )
    })
    .collect()
}

/// A `user_index` key and its value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// Every `user_index` entry (key, value) of `user` but its postings (`user_trigrams`) and
/// its second factor's mark (which its record owns); with the `o` keys of the second
/// factor's set when `mfa_on`. The first is its `j` key.
pub(super) fn index_entries(user: &User, mfa_on: bool) -> Vec<Entry> {
    let id = id_key(user.id);
    let values = SortValues::of(user);
    let mut keys = vec![
        tagged(JOINED, &[&user.date_joined.to_be_bytes(), &id]),
        tagged(LOGIN, &[&user.last_login.unwrap_or(0).to_be_bytes(), &id]),
    ];
    // The sets the user is in, by their tag (a group's: `g` name 0xFF).
    let mut sets = Vec::new();
    if user.is_staff {
        sets.push(vec![STAFF]);
    }
    if !user.is_active {
        sets.push(vec![INACTIVE]);
    }
    if !user.email_verified {
        sets.push(vec![UNVERIFIED]);
    }
    for g in &user.groups {
        sets.push(group_prefix(g));
    }
    sets.sort();
    sets.dedup();
    for set in &sets {
        keys.push([set.as_slice(), &id].concat());
    }
    if mfa_on {
        sets.push(vec![MFA_ON]);
    }
    for set in &sets {
        keys.extend(set_order_keys(set, &values, user.id));
    }
    let mut entries: Vec<Entry> = keys.into_iter().map(|k| (k, Vec::new())).collect();
    entries.push((tagged(SORT_KEYS, &[&id]), values.encode()));
    entries
}

fn state_byte(is_active: bool) -> u8 {
    if is_active {
        b'a'
    } else {
        b'i'
    }
}

/// The counter of `kind` for users in state `is_active`.
fn counter_key(is_active: bool, kind: &Counted) -> Vec<u8> {
    let st = state_byte(is_active);
    match kind {
        Counted::Staff => vec![COUNTER, st, b's'],
        Counted::Mfa => vec![COUNTER, st, b'm'],
        Counted::Unverified => vec![COUNTER, st, b'u'],
        Counted::Group(g) => tagged(COUNTER, &[&[st, b'g'], g.as_bytes()]),
    }
}

/// The counters `user` (whose second factor is on when `mfa_on`) adds one to.
fn counter_keys(user: &User, mfa_on: bool) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    let active = user.is_active;
    if user.is_staff {
        keys.insert(counter_key(active, &Counted::Staff));
    }
    if mfa_on {
        keys.insert(counter_key(active, &Counted::Mfa));
    }
    if !user.email_verified {
        keys.insert(counter_key(active, &Counted::Unverified));
    }
    for g in &user.groups {
        keys.insert(counter_key(active, &Counted::Group(g.clone())));
    }
    keys
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;

/// Indexes and counts a new user inside its insert's transaction; its postings too unless
/// the caller wrote them already (`Gathered`, the bulk insert).
pub(super) fn insert_index_tx(index: &TransactionalTree, user: &User, postings: bool) -> TxResult {
    let mfa_on = index.get(mfa_key(user.id))?.is_some();
    for (key, value) in index_entries(user, mfa_on) {
        index.insert(key, value)?;
    }
    if postings {
        for t in user_trigrams(user) {
            search_index::append_tx(index, &t, &[user.id])?;
        }
    }
    for key in counter_keys(user, mfa_on) {
        bump(index, &key, 1)?;
    }
    Ok(())
}

/// Moves `old`'s index entries and counts to `new`'s inside a user write's transaction.
pub(super) fn move_index_tx(index: &TransactionalTree, old: &User, new: &User) -> TxResult {
    let mfa_on = index.get(mfa_key(new.id))?.is_some();
    let (before, after) = (index_entries(old, mfa_on), index_entries(new, mfa_on));
    let (b, a): (HashSet<&Entry>, HashSet<&Entry>) =
        (before.iter().collect(), after.iter().collect());
    // Removals first: an entry whose value changes is removed, then written anew.
    for (k, _) in before.iter().filter(|e| !a.contains(e)) {
        index.remove(k.as_slice())?;
    }
    for (k, v) in after.iter().filter(|e| !b.contains(e)) {
        index.insert(k.as_slice(), v.as_slice())?;
    }
    let (before, after) = (user_trigrams(old), user_trigrams(new));
    for t in before.difference(&after) {
        search_index::forget_tx(index, t, new.id)?;
    }
    for t in after.difference(&before) {
        search_index::append_tx(index, t, &[new.id])?;
    }
    let (before, after) = (counter_keys(old, mfa_on), counter_keys(new, mfa_on));
    for k in before.difference(&after) {
        bump(index, k, -1)?;
    }
    for k in after.difference(&before) {
        bump(index, k, 1)?;
    }
    Ok(())
}

/// Marks user `id`'s second factor on or off inside a transaction, with its place in the
/// set's orders (from its `k` entry; a user not indexed yet gets them with its entries), and
/// moves the count of its state's users with one.
pub(super) fn set_mfa_tx(index: &TransactionalTree, id: u64, on: bool) -> TxResult {
    let key = mfa_key(id);
    let was = index.get(&key)?.is_some();
    if was == on {
        return Ok(());
    }
    let orders = match index.get(tagged(SORT_KEYS, &[&id_key(id)]))? {
        Some(v) => set_order_keys(
            &[MFA_ON],
            &SortValues::decode(&v).map_err(ConflictableTransactionError::Abort)?,
            id,
        ),
        None => Vec::new(),
    };
    if on {
        index.insert(key, &[])?;
        for k in orders {
            index.insert(k, &[])?;
        }
    } else {
        index.remove(key)?;
        for k in orders {
            index.remove(k)?;
        }
    }
    let active = index.get(tagged(INACTIVE, &[&id_key(id)]))?.is_none();
    bump(
        index,
        &counter_key(active, &Counted::Mfa),
        if on { 1 } else { -1 },
    )?;
    Ok(())
}

/// The last 8 bytes of an index key: the id.
fn trailing_id(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| decode_id(&key[at..]))
        .ok_or_else(|| StoreError::Io("corrupt users list index".into()))
}

/// A set of users one index holds, each run in id order: the tree, the run's prefix, its
/// tag in the `o` keys that hold it in the other orders, and how many it holds (from the
/// counters).
struct Set<'a> {
    tree: &'a sled::Tree,
    prefix: Vec<u8>,
    order: Vec<u8>,
    size: usize,
}

impl Set<'_> {
    /// `q` without the filter this set stands for: what its members are still checked
    /// against (its runs are moved in the same transactions as the records).
    fn rest(&self, q: &UserQuery) -> UserQuery {
        let mut rest = q.clone();
        match self.order.first() {
            Some(&STAFF) => rest.staff = None,
            Some(&MFA_ON) => rest.mfa = None,
            Some(&UNVERIFIED) => rest.verified = None,
            Some(&INACTIVE) => rest.state = StateFilter::All,
            Some(&GROUP) => rest.group = None,
            _ => {}
        }
        rest
    }
}

/// Where a walk in id order finds its candidates, each a superset of the answer.
enum Source<'a> {
    /// A selective set.
    Set(Set<'a>),
    /// The users holding the search's rarest trigrams (`search_trigrams`, `SEARCH_RUNS`),
    /// rarest first, and the postings of the rarest (a bound on them).
    Search { trigrams: Vec<Vec<u8>>, pool: usize },
}

/// The ids present in every one of the `runs` (postings), in id order (descending when
/// `desc`): each is sought at the id the others are at, so the work follows the rarest
/// run, not the longest.
struct Leapfrog<'a> {
    runs: Vec<Postings<'a>>,
    /// The id to look from (inclusive); `None` once done.
    next: Option<u64>,
    desc: bool,
}

impl Iterator for Leapfrog<'_> {
    type Item = Result<(u64, Option<IVec>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut target = self.next?;
        let runs = self.runs.len();
        let (mut agree, mut i) = (0, 0);
        loop {
            match self.runs[i].seek(target) {
                Err(e) => {
                    self.next = None;
                    return Some(Err(e));
                }
                Ok(None) => {
                    self.next = None;
                    return None;
                }
                Ok(Some(id)) => {
                    if id == target {
                        agree += 1;
                    } else {
                        (target, agree) = (id, 1);
                    }
                    if agree >= runs {
                        self.next = if self.desc {
                            id.checked_sub(1)
                        } else {
                            id.checked_add(1)
                        };
                        return Some(Ok((id, None)));
                    }
                    i = (i + 1) % runs;
                }
            }
        }
    }
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
    /// Builds the `user_index` (keys and counters) of a store written before it existed or
    /// before its counters and search keys did (one pass over the users and second factors,
    /// once), or after an older gatehouse added users without it (the newest user has no
    /// entry).
    pub(super) fn ensure_user_index(&mut self) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for mark in [
            USER_INDEX_BUILT,
            USER_COUNTS_BUILT,
            USER_SEARCH_BLOCKS,
            USER_SET_ORDER,
        ] {
            if self.meta.get(mark).map_err(io)?.is_none() {
                missing.push(String::from_utf8_lossy(mark).into_owned());
            }
        }
        let newest_indexed = match self.users.last().map_err(io)? {
            Some((_, bytes)) => {
                let user = decode_user(&bytes)?;
                let (key, _) = index_entries(&user, false).swap_remove(0);
                self.user_index.contains_key(key).map_err(io)?
            }
            None => true,
        };
        if missing.is_empty() && newest_indexed {
            return Ok(());
        }
        let total = self.count(&StateFilter::All)?;
        let started = std::time::Instant::now();
        let why = if missing.is_empty() {
            "its newest user has no entries".to_string()
        } else {
            format!("no {} mark", missing.join(", "))
        };
        log::info!("building the users list index of {total} users (once, before serving: {why})");
        // Dropped whole (sled frees its pages) rather than cleared a key at a time.
        self.db.drop_tree(USER_INDEX_TREE).map_err(io)?;
        self.user_index = self.db.open_tree(USER_INDEX_TREE).map_err(io)?;
        let mut on = HashSet::new();
        for item in self.mfa.iter() {
            let (key, bytes) = item.map_err(io)?;
            let id = decode_id(&key).ok_or_else(|| StoreError::Io("corrupt mfa key".into()))?;
            let record: crate::store::Mfa = serde_json::from_slice(&bytes).map_err(io)?;
            if record.enabled {
                self.user_index.insert(mfa_key(id), &[]).map_err(io)?;
                on.insert(id);
            }
        }
        let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        // In chunks: the keys in one batch, the postings gathered in memory and written as
        // whole blocks (memory bounded by the chunk).
        let (mut batch, mut postings, mut done) = (sled::Batch::default(), Gathered::default(), 0);
        let flush = |batch: &mut sled::Batch, postings: &mut Gathered| {
            self.user_index
                .apply_batch(std::mem::take(batch))
                .map_err(io)?;
            std::mem::take(postings).write(&self.user_index)
        };
        for item in self.users.iter() {
            let (_, bytes) = item.map_err(io)?;
            let user = decode_user(&bytes)?;
            for (key, value) in index_entries(&user, on.contains(&user.id)) {
                batch.insert(key, value);
            }
            postings.add(&user_trigrams(&user), user.id);
            for key in counter_keys(&user, on.contains(&user.id)) {
                *counts.entry(key).or_default() += 1;
            }
            done += 1;
            if done % REINDEX_CHUNK == 0 {
                flush(&mut batch, &mut postings)?;
                if done % (REINDEX_CHUNK * 10) == 0 {
                    log::info!(
                        "users list index: {done} of {total} users ({} s)",
                        started.elapsed().as_secs()
                    );
                }
            }
        }
        flush(&mut batch, &mut postings)?;
        for (key, n) in counts {
            self.user_index.insert(key, &id_key(n)).map_err(io)?;
        }
        self.meta.insert(USER_INDEX_BUILT, &[1]).map_err(io)?;
        self.meta.insert(USER_COUNTS_BUILT, &[1]).map_err(io)?;
        self.meta.insert(USER_SEARCH_BLOCKS, &[1]).map_err(io)?;
        self.meta.insert(USER_SET_ORDER, &[1]).map_err(io)?;
        self.db.flush().map_err(io)?;
        log::info!(
            "users list index built: {done} users in {} s",
            started.elapsed().as_secs()
        );
        Ok(())
    }

    /// Rebuilds the whole `user_index` now, as opening a store written before it does
    /// (`ensure_user_index`): the benches time it.
    pub fn rebuild_user_index(&mut self) -> Result<(), StoreError> {
        self.meta.remove(USER_INDEX_BUILT).map_err(io)?;
        self.ensure_user_index()
    }

    /// The live size of the users, their search postings (`t` blocks, `h` heads, `x`
    /// strays) and the rest of `user_index`: (part, keys, bytes of keys and values), for the
    /// benches (a full scan of both trees).
    pub fn user_index_sizes(&self) -> Result<Vec<(&'static str, usize, usize)>, StoreError> {
        let mut sizes = vec![
            ("users", 0, 0),
            ("search postings", 0, 0),
            ("other index keys", 0, 0),
        ];
        for (tree, split) in [(&self.users, false), (&self.user_index, true)] {
            for item in tree.iter() {
                let (k, v) = item.map_err(io)?;
                let part = match (split, k.first()) {
                    (false, _) => 0,
                    (true, Some(b't' | b'h' | b'x')) => 1,
                    (true, _) => 2,
                };
                sizes[part].1 += 1;
                sizes[part].2 += k.len() + v.len();
            }
        }
        Ok(sizes)
    }

    /// A counter of `user_index`.
    fn counter(&self, is_active: bool, kind: &Counted) -> Result<usize, StoreError> {
        let n = self
            .user_index
            .get(counter_key(is_active, kind))
            .map_err(io)?
            .and_then(|v| decode_id(&v))
            .unwrap_or(0);
        usize::try_from(n).map_err(|_| StoreError::Io(format!("list counter {n} overflows")))
    }

    /// A counter summed over the states `state` selects.
    fn counted(&self, state: &StateFilter, kind: &Counted) -> Result<usize, StoreError> {
        Ok(match state {
            StateFilter::Active => self.counter(true, kind)?,
            StateFilter::Inactive => self.counter(false, kind)?,
            StateFilter::All => self.counter(true, kind)? + self.counter(false, kind)?,
        })
    }

    /// The count `plan` (from `UserQuery::count_plan`) reads from the counters.
    fn count_by_plan(&self, state: &StateFilter, plan: &CountPlan) -> Result<usize, StoreError> {
        let total = || self.count(state);
        Ok(match plan {
            CountPlan::Total => total()?,
            CountPlan::Counter(kind) => self.counted(state, kind)?,
            CountPlan::TotalMinus(kind) => total()?.saturating_sub(self.counted(state, kind)?),
        })
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

    /// The index sets the query narrows to (each a subset of the answer's superset), with
    /// their sizes.
    fn selective_sets(&self, q: &UserQuery) -> Result<Vec<Set<'_>>, StoreError> {
        let mut sets = Vec::new();
        let index_set = |prefix: Vec<u8>, kind: &Counted| -> Result<Set<'_>, StoreError> {
            Ok(Set {
                tree: &self.user_index,
                order: prefix.clone(),
                prefix,
                size: self.counted(&StateFilter::All, kind)?,
            })
        };
        if q.state == StateFilter::Inactive {
            sets.push(Set {
                tree: &self.inactive,
                prefix: Vec::new(),
                order: vec![INACTIVE],
                size: self.count(&StateFilter::Inactive)?,
            });
        }
        if q.staff == Some(true) {
            sets.push(index_set(vec![STAFF], &Counted::Staff)?);
        }
        if q.mfa == Some(true) {
            sets.push(index_set(vec![MFA_ON], &Counted::Mfa)?);
        }
        if q.verified == Some(false) {
            sets.push(index_set(vec![UNVERIFIED], &Counted::Unverified)?);
        }
        if let Some(g) = &q.group {
            sets.push(index_set(group_prefix(g), &Counted::Group(g.clone()))?);
        }
        Ok(sets)
    }

    /// Where a walk in id order takes its candidates: a selective set of at most
    /// `SMALL_SET`, else the search's trigrams, else the smallest set; `None`: every user.
    fn source(&self, q: &UserQuery) -> Result<Option<Source<'_>>, StoreError> {
        let smallest = self
            .selective_sets(q)?
            .into_iter()
            .min_by_key(|set| set.size);
        let search = match q.search_key().and_then(|s| search_trigrams(&s)) {
            Some(trigrams) => {
                let mut counted = Vec::with_capacity(trigrams.len());
                for t in trigrams {
                    counted.push((search_index::postings(&self.user_index, &t)?, t));
                }
                counted.sort_unstable();
                let pool = counted.first().map_or(0, |(n, _)| *n);
                let pool = usize::try_from(pool).unwrap_or(usize::MAX);
                let quarter = self.count(&StateFilter::All)? as u64 / 4;
                let trigrams = counted
                    .into_iter()
                    .enumerate()
                    .filter(|(i, (n, _))| *i == 0 || *n <= quarter)
                    .take(SEARCH_RUNS)
                    .map(|(_, (_, t))| t)
                    .collect();
                Some(Source::Search { trigrams, pool })
            }
            None => None,
        };
        Ok(match (smallest, search) {
            (Some(set), Some(Source::Search { pool, .. }))
                if set.size <= SMALL_SET || set.size < pool =>
            {
                Some(Source::Set(set))
            }
            (Some(set), None) if set.size <= SMALL_SET => Some(Source::Set(set)),
            (_, Some(search)) => Some(search),
            (set, None) => set.map(Source::Set),
        })
    }

    /// The candidates of a search (its trigrams' postings) when they are at most
    /// `SMALL_SET`, else `None`.
    fn few_ids(&self, trigrams: &[Vec<u8>]) -> Result<Option<Vec<u64>>, StoreError> {
        let walk = self.search_walk(trigrams, &UserQuery::default(), None);
        let ids = walk
            .take(SMALL_SET + 1)
            .map(|c| c.map(|(id, _)| id))
            .collect::<Result<Vec<u64>, _>>()?;
        Ok((ids.len() <= SMALL_SET).then_some(ids))
    }

    /// The members of `set` after `after` in `q`'s order (not the id's): its `o` run.
    fn ordered_walk<'a>(
        &'a self,
        q: &UserQuery,
        after: Option<&UserCursor>,
        set: &Set<'_>,
        tag: u8,
    ) -> Candidates<'a> {
        let prefix = order_prefix(tag, &set.order);
        let from = after.map(|c| [prefix.as_slice(), &order_value(&c.key), &id_key(c.id)].concat());
        ids_of(run_after(&self.user_index, &prefix, from, q.desc))
    }

    /// The candidates of a search's trigram postings after `after`, in `q`'s id order.
    fn search_walk<'a>(
        &'a self,
        trigrams: &[Vec<u8>],
        q: &UserQuery,
        after: Option<&UserCursor>,
    ) -> Candidates<'a> {
        let desc = q.desc;
        let runs: Result<Vec<Postings<'a>>, StoreError> = trigrams
            .iter()
            .map(|t| Postings::new(&self.user_index, t.clone(), desc))
            .collect();
        let runs = match runs {
            Ok(runs) => runs,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let next = match (after, desc) {
            (None, false) => Some(0),
            (None, true) => Some(u64::MAX),
            (Some(c), false) => c.id.checked_add(1),
            (Some(c), true) => c.id.checked_sub(1),
        };
        Box::new(Leapfrog { runs, next, desc })
    }

    /// What the index says of `id` for the filters it serves, before the record is read:
    /// `None` when it is out, else whether its second factor is on when the query filters
    /// on it (`false` when it does not: not looked up, a read per candidate saved, and
    /// `UserQuery::matches` reads it only for that filter).
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
        if let Some(verified) = q.verified {
            if has(tagged(UNVERIFIED, &[&key]))? == verified {
                return Ok(None);
            }
        }
        let Some(wanted) = q.mfa else {
            return Ok(Some(false));
        };
        let mfa_on = has(mfa_key(id))?;
        Ok((mfa_on == wanted).then_some(mfa_on))
    }

    /// Candidates in the list's order after `after`: by id from `users` (or from `source`,
    /// which is in id order too), by username from `usernames`, by a date from its
    /// `user_index` run.
    fn walk<'a>(
        &'a self,
        q: &UserQuery,
        after: Option<&UserCursor>,
        source: Option<Source<'a>>,
    ) -> Candidates<'a> {
        let desc = q.desc;
        match q.sort {
            UserSort::Id => match source {
                Some(Source::Set(set)) => {
                    let from = after.map(|c| {
                        let mut k = set.prefix.clone();
                        k.extend_from_slice(&id_key(c.id));
                        k
                    });
                    ids_of(run_after(set.tree, &set.prefix, from, desc))
                }
                Some(Source::Search { trigrams, .. }) => self.search_walk(&trigrams, q, after),
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
        let source = self.source(q)?;
        // The sources are in id order: the id sort walks one, and so reads about a page.
        // Another sort walks the smallest set's run in that order (`o` keys; about a page
        // too), or sorts a search's few candidates in memory, or walks its own order
        // checking each user.
        // The candidates of a set's run are checked without the set's own filter
        // (`Set::rest`: a lookup per candidate saved).
        let (candidates, rest) = match (order_tag(q.sort), source) {
            (None, Some(Source::Set(set))) => {
                let rest = set.rest(q);
                (self.walk(q, after, Some(Source::Set(set))), rest)
            }
            (None, source) => (self.walk(q, after, source), q.clone()),
            (Some(tag), Some(Source::Set(set))) => {
                (self.ordered_walk(q, after, &set, tag), set.rest(q))
            }
            (Some(tag), Some(Source::Search { trigrams, .. })) => {
                if let Some(ids) = self.few_ids(&trigrams)? {
                    return self.few_rows(q, ids, after, limit);
                }
                let smallest = self
                    .selective_sets(q)?
                    .into_iter()
                    .min_by_key(|set| set.size);
                match smallest {
                    Some(set) => (self.ordered_walk(q, after, &set, tag), set.rest(q)),
                    None => (self.walk(q, after, None), q.clone()),
                }
            }
            (Some(_), None) => (self.walk(q, after, None), q.clone()),
        };
        for candidate in candidates {
            let (id, bytes) = candidate?;
            if let Some(user) = self.matching(&rest, id, bytes)? {
                rows.push(user);
                if rows.len() >= limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// Up to `limit` users of the list after `after` among the users `ids` (at most
    /// `SMALL_SET`): read whole and sorted in memory.
    fn few_rows(
        &self,
        q: &UserQuery,
        ids: Vec<u64>,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        // Sorted by the values of the `k` entries (a point read each, where a record costs a
        // decode and, at 1M users, most often a page from disk), then one page read whole.
        let mut keyed = Vec::with_capacity(ids.len());
        for id in ids {
            if self.index_check(q, id)?.is_none() {
                continue;
            }
            let Some(key) = self.sort_key_of(q.sort, id)? else {
                continue;
            };
            if after.is_none_or(|c| q.key_is_after(c, &key, id)) {
                keyed.push((key, id));
            }
        }
        keyed.sort_unstable();
        if q.desc {
            keyed.reverse();
        }
        let mut rows = Vec::new();
        for (_, id) in keyed {
            if let Some(user) = self.matching(q, id, None)? {
                rows.push(user);
                if rows.len() >= limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// User `id`'s key in the `sort` order from its `k` entry (`None`: no such user).
    fn sort_key_of(&self, sort: UserSort, id: u64) -> Result<Option<SortKey>, StoreError> {
        match self
            .user_index
            .get(tagged(SORT_KEYS, &[&id_key(id)]))
            .map_err(io)?
        {
            Some(v) => Ok(Some(SortValues::decode(&v)?.key(sort))),
            None => Ok(None),
        }
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

    /// `UserStore::count_query`: the counters when they answer (`UserQuery::count_plan`),
    /// else the candidates examined in id order: all of them when they are at most
    /// `COUNT_BUDGET` (exact), else that many and an estimate (`estimate`) scaled by the
    /// size of the pool they come from: the selective set, the rarest trigram's postings,
    /// or every user (a search's from `COUNT_SAMPLE` candidates spread over the budget's);
    /// never by how far through the ids the walk got (matches cluster by id when names
    /// encode the sign-up order).
    pub(super) fn count_matching(&self, q: &UserQuery) -> Result<UserCount, StoreError> {
        if let Some(plan) = q.count_plan() {
            return Ok(UserCount::Exact(self.count_by_plan(&q.state, &plan)?));
        }
        let by_id = UserQuery {
            sort: UserSort::Id,
            desc: false,
            ..q.clone()
        };
        let source = self.source(&by_id)?;
        let population = match &source {
            Some(Source::Set(set)) => set.size,
            Some(Source::Search { pool, .. }) => *pool,
            None => self.count(&StateFilter::All)?,
        };
        // A set's members are checked without the set's own filter (`Set::rest`).
        let rest = match &source {
            Some(Source::Set(set)) => set.rest(&by_id),
            _ => by_id.clone(),
        };
        // The index decides every filter; the search too when it is one trigram (the
        // candidates hold it) but for a stale posting: then the walk reads no record.
        // Otherwise every `COUNT_BUDGET / COUNT_SAMPLE`th candidate is checked whole (the
        // estimate's sample, spread over the budget: the first ones alone misjudge matches
        // clustered by id) and the rest by the index only. A count that turns out exact
        // (the walk ended within the budget) checks the records of the hits it has not
        // checked yet.
        let search = by_id.search_key().is_some();
        let decided = matches!(&source, Some(Source::Search { trigrams, .. }) if trigrams.len() == 1)
            && by_id.search_key().is_some_and(|s| s.chars().count() == 3);
        let needs_record = search && !decided;
        let every = if needs_record {
            (COUNT_BUDGET / COUNT_SAMPLE).max(1)
        } else {
            1
        };
        let (mut examined, mut sampled, mut sample_hits, mut unchecked) =
            (0usize, 0usize, 0usize, Vec::new());
        for candidate in self.walk(&by_id, None, source) {
            let (id, bytes) = candidate?;
            if examined >= COUNT_BUDGET {
                return Ok(estimate(sample_hits, sampled, population));
            }
            let in_sample = examined % every == 0;
            examined += 1;
            if needs_record && in_sample {
                sampled += 1;
                if self.matching(&rest, id, bytes)?.is_some() {
                    sample_hits += 1;
                }
                continue;
            }
            if !needs_record {
                sampled += 1;
            }
            if self.index_check(&rest, id)?.is_some() {
                if !needs_record {
                    sample_hits += 1;
                }
                if search {
                    unchecked.push(id);
                }
            }
        }
        let mut matched = if decided { 0 } else { sample_hits };
        for id in unchecked {
            if self.matching(&rest, id, None)?.is_some() {
                matched += 1;
            }
        }
        Ok(UserCount::Exact(matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_user, Effects, Mfa, UserStore};

    /// Every plan (a set's run in id order or in another order, a search's few candidates
    /// sorted in memory, a walk in order) against a filtered scan, for every sort, both
    /// directions and pages of several sizes.
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
            // Searches the trigram index answers: one run, and several intersected.
            UserQuery {
                search: Some("0@X".into()),
                ..UserQuery::default()
            },
            UserQuery {
                search: Some("n4".into()),
                state: StateFilter::Active,
                ..UserQuery::default()
            },
            UserQuery {
                search: Some("1@x.org".into()),
                ..UserQuery::default()
            },
            UserQuery {
                search: Some("big".into()),
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
                    assert_lists(&store, &users, &on, &q).await;
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
        for (key, _) in index_entries(&test_user(2, "b", "b@x.org"), false) {
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
    fn index_entries_follow_the_record() {
        let mut u = test_user(7, "a", "a@example.com");
        u.date_joined = 3;
        u.groups = vec!["ops".into(), "ops2".into()];
        u.is_staff = true;
        let entries = index_entries(&u, false);
        let keys: Vec<&Vec<u8>> = entries.iter().map(|(k, _)| k).collect();
        // j, l; three sets (ops, ops2, staff) in id order and in three other orders; k.
        assert_eq!(entries.len(), 2 + 3 + 3 * 3 + 1);
        assert_eq!(*keys[0], tagged(JOINED, &[&id_key(3), &id_key(7)]));
        let (k, v) = &entries[entries.len() - 1];
        assert_eq!(*k, tagged(SORT_KEYS, &[&id_key(7)]));
        assert_eq!(*v, [&id_key(3)[..], &id_key(0), b"a"].concat());
        let values = SortValues::decode(v).expect("decode");
        assert_eq!(values, SortValues::of(&u));
        assert_eq!(values.key(UserSort::Username), SortKey::Text("a".into()));
        let ops = [group_prefix("ops"), id_key(7).to_vec()].concat();
        let ops2 = [group_prefix("ops2"), id_key(7).to_vec()].concat();
        assert!(keys.contains(&&ops) && keys.contains(&&ops2));
        assert!(keys.contains(&&tagged(STAFF, &[&id_key(7)])));
        assert!(
            !ops2.starts_with(&group_prefix("ops")),
            "ops2 is not in ops' run"
        );
        let by_name = [
            order_prefix(BY_NAME, &group_prefix("ops")),
            b"a\0".to_vec(),
            id_key(7).to_vec(),
        ]
        .concat();
        assert!(keys.contains(&&by_name));
        for key in &keys[..keys.len() - 1] {
            assert_eq!(trailing_id(key).ok(), Some(7));
        }
        // The second factor's set, in the three orders.
        let with_mfa = index_entries(&u, true);
        assert_eq!(with_mfa.len(), entries.len() + 3);
        assert!(with_mfa
            .iter()
            .any(|(k, _)| k.starts_with(&order_prefix(LOGIN, &[MFA_ON]))));
        // A name sorts before the longer names it begins, as `SortKey::Text` does.
        let (ab, abc) = (
            order_value(&SortKey::Text("ab".into())),
            order_value(&SortKey::Text("abc".into())),
        );
        assert!([ab, id_key(u64::MAX).to_vec()].concat() < abc);
        // The trigrams of "a", "a@example.com" and "\n": distinct.
        let tris = user_trigrams(&u);
        assert_eq!(tris.len(), "a@example.com".len() - 2);
        assert!(tris.contains(b"@ex".as_slice()));
        assert!(search_trigrams("ab").is_none());
        assert_eq!(search_trigrams("abab").map(|p| p.len()), Some(2));
    }

    /// Every page of `q` on `store`, concatenated, against the users filtered and sorted in
    /// memory (`on`: whose second factor is on), with the count.
    async fn assert_lists(
        store: &SledStore,
        users: &[User],
        on: &dyn Fn(u64) -> bool,
        q: &UserQuery,
    ) {
        let mut want: Vec<&User> = users.iter().filter(|u| q.matches(u, on(u.id))).collect();
        want.sort_by(|a, b| q.order(a, b));
        let want: Vec<u64> = want.iter().map(|u| u.id).collect();
        for size in [1, 3, 4, 100] {
            let (mut got, mut after) = (Vec::new(), None);
            loop {
                let page = store
                    .query_users(q, after.as_ref(), size)
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
            store.count_query(q).await.expect("count"),
            UserCount::Exact(want.len()),
            "{q:?}"
        );
    }

    /// `assert_lists` for each of `filters` in every order.
    async fn check_all(
        store: &SledStore,
        users: &[User],
        on: &BTreeSet<u64>,
        filters: &[UserQuery],
    ) {
        for f in filters {
            for sort in UserSort::ALL {
                for desc in [false, true] {
                    let q = UserQuery {
                        sort,
                        desc,
                        ..f.clone()
                    };
                    assert_lists(store, users, &|id| on.contains(&id), &q).await;
                }
            }
        }
    }

    /// A set's runs in the other orders (`o` keys) move with the writes that move a sort
    /// key or a membership: a login, a rename, a deactivation, a group change, a second
    /// factor turned on and off; and survive a rebuild.
    #[tokio::test]
    async fn a_set_in_another_order_follows_its_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let mut users: Vec<User> = (1..=30u64)
            .map(|i| {
                let mut u = test_user(i, &format!("u{:02}", (i * 7) % 31), &format!("{i}@x.org"));
                u.date_joined = (i * 11) % 13;
                u.last_login = (i % 4 != 0).then_some((i * 5) % 17);
                u.is_staff = i % 6 == 0;
                if i % 3 == 0 {
                    u.groups.push("g".into());
                }
                u
            })
            .collect();
        for r in store.insert_users(users.clone()).await.expect("insert") {
            r.expect("inserted");
        }
        let mut on: BTreeSet<u64> = BTreeSet::new();
        let mfa = Mfa {
            enabled: true,
            ..Mfa::default()
        };
        for id in (2..=30).step_by(2) {
            assert!(store
                .swap_mfa(id, None, Some(&mfa), Effects::none())
                .await
                .expect("swap"));
            on.insert(id);
        }
        let filters = [
            UserQuery {
                mfa: Some(true),
                ..UserQuery::default()
            },
            UserQuery {
                group: Some("g".into()),
                ..UserQuery::default()
            },
            UserQuery {
                state: StateFilter::Inactive,
                ..UserQuery::default()
            },
            UserQuery {
                staff: Some(true),
                mfa: Some(true),
                ..UserQuery::default()
            },
        ];
        check_all(&store, &users, &on, &filters).await;
        type Change = Box<dyn Fn(&mut User) + Send + Sync>;
        let changes: Vec<(u64, Change)> = vec![
            (2, Box::new(|u: &mut User| u.last_login = Some(1_000))),
            (4, Box::new(|u: &mut User| u.username = "aaa".into())),
            (8, Box::new(|u: &mut User| u.last_login = None)),
            (6, Box::new(|u: &mut User| u.is_active = false)),
            (9, Box::new(|u: &mut User| u.groups.clear())),
            (10, Box::new(|u: &mut User| u.groups.push("g".into()))),
            (12, Box::new(|u: &mut User| u.date_joined = 99)),
        ];
        for (id, change) in &changes {
            let new = store
                .update_user(*id, &|u: &mut User| change(u), &|_, _| Effects::none())
                .await
                .expect("update");
            users[(*id - 1) as usize] = new;
            check_all(&store, &users, &on, &filters).await;
        }
        // A second factor off (its user's runs leave the set) and on again.
        for (id, enable) in [(12, false), (3, true)] {
            let (expected, new) = if enable {
                (None, Some(&mfa))
            } else {
                (Some(&mfa), None)
            };
            assert!(store
                .swap_mfa(id, expected, new, Effects::none())
                .await
                .expect("swap"));
            if enable {
                on.insert(id);
            } else {
                on.remove(&id);
            }
            check_all(&store, &users, &on, &filters).await;
        }
        let before: Vec<(IVec, IVec)> = store
            .user_index
            .iter()
            .collect::<Result<_, _>>()
            .expect("scan");
        store.rebuild_user_index().expect("rebuild");
        let after: Vec<(IVec, IVec)> = store
            .user_index
            .iter()
            .collect::<Result<_, _>>()
            .expect("scan");
        // The same `o` and `k` entries as the writes left (postings aside: a rebuild drops
        // the stale ones).
        let ordered = |all: &[(IVec, IVec)]| -> Vec<(IVec, IVec)> {
            all.iter()
                .filter(|(k, _)| matches!(k.first(), Some(b'o' | b'k')))
                .cloned()
                .collect()
        };
        assert_eq!(ordered(&before), ordered(&after));
        check_all(&store, &users, &on, &filters).await;
    }

    /// Matches clustered by id (generated names encode it) and a far last id: the estimate
    /// is scaled by the rarest trigram's postings, not by how far through the ids the
    /// examined candidates reached (which said ~50,000 here), from a sample spread over the
    /// budget's candidates (~110 here; the first 200 candidates alone said ~490).
    #[tokio::test]
    async fn a_clustered_search_is_estimated_from_its_postings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let mut users: Vec<User> = (1..=2_500u64)
            .map(|i| {
                test_user(
                    i,
                    &format!("user{i:07}"),
                    &format!("user{i:07}@example.com"),
                )
            })
            .collect();
        users.push(test_user(1_000_000, "last", "last@example.com"));
        for r in store.insert_users(users).await.expect("insert") {
            r.expect("inserted");
        }
        let q = UserQuery {
            search: Some("user00001".into()),
            ..UserQuery::default()
        };
        // Ids 100-199 match; "001" is in ~1,100 users (1, 10-19, 100-199, 1000-1999...).
        let page = store.query_users(&q, None, 200).await.expect("page");
        assert_eq!(page.users.len(), 100);
        match store.count_query(&q).await.expect("count") {
            UserCount::About(n) => assert!((100..=300).contains(&n), "About({n})"),
            other => panic!("{other:?}: more candidates than the budget"),
        }
        // The walk takes the rarest trigram and the others a quarter of the users at most
        // hold: not `use`, `ser`, `er0`, `r00` nor `000`, which every user here holds.
        match store.source(&q).expect("source") {
            Some(Source::Search { trigrams, pool }) => {
                assert_eq!(trigrams, [b"001".to_vec()]);
                assert!(pool < 2_000, "{pool}");
            }
            _ => panic!("not a search walk"),
        }
    }

    /// A renamed user is found by its new name only (its old trigrams stay in their blocks
    /// and its record turns them away), and counts stay exact.
    #[tokio::test]
    async fn a_rename_moves_the_search() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let users: Vec<User> = (1..=20u64)
            .map(|i| test_user(i, &format!("name{i}"), &format!("{i}@x.org")))
            .collect();
        for r in store.insert_users(users).await.expect("insert") {
            r.expect("inserted");
        }
        let search = |s: &str| UserQuery {
            search: Some(s.into()),
            ..UserQuery::default()
        };
        let ids =
            |page: crate::store::UserPage| page.users.iter().map(|u| u.id).collect::<Vec<_>>();
        for round in 0..2 {
            let (from, to) = if round == 0 {
                ("name3", "quux")
            } else {
                ("quux", "name3")
            };
            store
                .update_user(3, &move |u: &mut User| u.username = to.into(), &|_, _| {
                    Effects::none()
                })
                .await
                .expect("rename");
            for (s, want) in [(from, vec![]), (to, vec![3u64])] {
                for sort in UserSort::ALL {
                    let q = UserQuery { sort, ..search(s) };
                    assert_eq!(
                        ids(store.query_users(&q, None, 10).await.expect("page")),
                        want,
                        "{s}"
                    );
                }
                assert_eq!(
                    store.count_query(&search(s)).await.expect("count"),
                    UserCount::Exact(want.len())
                );
            }
            // A three-char search (counted from the index) stays exact too.
            let three = if round == 0 { "uux" } else { "me3" };
            assert_eq!(
                store.count_query(&search(three)).await.expect("count"),
                UserCount::Exact(1)
            );
        }
    }
}
