//! The admin console's users list as the store answers it (SPEC §18): a `UserQuery` (search,
//! filters, sort), keyset cursors over (sort key, id), pages, capped counts, and the plain
//! decisions every backend must agree with (`matches`, `sort_key`, `is_after`).

use super::{name_key, StateFilter, User};
use std::cmp::Ordering;

/// Counts stop here: past it the console shows "more than 10,000" (no full count per page).
pub const COUNT_CAP: usize = 10_000;

/// The order of the list; ties (equal dates) are broken by id, in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    #[default]
    Id,
    /// By `name_key(username)` (folded, compared by bytes).
    Username,
    DateJoined,
    /// Never logged in counts as 0: first ascending, last descending.
    LastLogin,
}

impl UserSort {
    pub const ALL: [UserSort; 4] = [
        UserSort::Id,
        UserSort::Username,
        UserSort::DateJoined,
        UserSort::LastLogin,
    ];

    /// The console's names for the sort keys (`sort=`).
    pub fn parse(s: &str) -> Option<UserSort> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::Id => "id",
            UserSort::Username => "username",
            UserSort::DateJoined => "date_joined",
            UserSort::LastLogin => "last_login",
        }
    }
}

/// What the users list shows: every filter that is `None` lets everyone through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Case-insensitive (`name_key`) substring of the username, the email, or the first and
    /// last names (`names_key`). Empty means no search.
    pub search: Option<String>,
    pub state: StateFilter,
    pub staff: Option<bool>,
    /// Member of this group (exact name).
    pub group: Option<String>,
    /// An enabled second factor (a pending enrolment is not on).
    pub mfa: Option<bool>,
    pub verified: Option<bool>,
    pub sort: UserSort,
    pub desc: bool,
}

/// The value a user sorts by (ids break ties).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    /// Sorting by id: nothing beside the id.
    None,
    Number(u64),
    Text(String),
}

/// Where a page ends: the last row's sort key and id. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    pub key: SortKey,
    pub id: u64,
}

impl UserCursor {
    /// A URL-safe form (`after=`): `id`, `id.n<number>` or `id.t<hex of the text>`.
    pub fn encode(&self) -> String {
        match &self.key {
            SortKey::None => self.id.to_string(),
            SortKey::Number(n) => format!("{}.n{n}", self.id),
            SortKey::Text(t) => {
                let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
                format!("{}.t{hex}", self.id)
            }
        }
    }

    /// The cursor `encode` made for `sort`; `None` for anything else (a malformed or
    /// foreign `after=` starts from the first page rather than failing).
    pub fn decode(s: &str, sort: UserSort) -> Option<UserCursor> {
        let (id, key) = match s.split_once('.') {
            Some((id, key)) => (id, Some(key)),
            None => (s, None),
        };
        let id: u64 = id.parse().ok()?;
        let key = match (sort, key) {
            (UserSort::Id, None) => SortKey::None,
            (UserSort::DateJoined | UserSort::LastLogin, Some(k)) => {
                SortKey::Number(k.strip_prefix('n')?.parse().ok()?)
            }
            (UserSort::Username, Some(k)) => {
                let hex = k.strip_prefix('t')?;
                if hex.len() % 2 != 0 || !hex.is_ascii() {
                    return None;
                }
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                SortKey::Text(String::from_utf8(bytes).ok()?)
            }
            _ => return None,
        };
        Some(UserCursor { key, id })
    }
}

/// One page of the list, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<UserCursor>,
}

/// How many users a query matches: exact when the store's counters know it or counting it was
/// cheap, otherwise an estimate (SPEC §18: no full count per page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCount {
    Exact(usize),
    /// More than this many (the cap): not counted further.
    AtLeast(usize),
    /// An estimate (the store counted part of the matches, or asked its planner): about
    /// this many.
    About(usize),
}

/// A filter both stores keep exact counters of, per state, with every user write (SPEC §18):
/// a page filtered by one of them (and the state) is counted by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    Staff,
    /// A second factor on.
    Mfa,
    /// Email not verified.
    Unverified,
    Group(String),
}

/// How the counters answer a query's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountPlan {
    /// The users in the query's state (no other filter).
    Total,
    /// The counter itself.
    Counter(Counted),
    /// The users in the state less the counter (`staff=no`, `mfa=off`, `verified=yes`).
    TotalMinus(Counted),
}

/// At most this many candidates are examined to count a query the counters cannot answer
/// (a search, or two filters at once): past it, the count is an estimate from the part
/// examined. About what counting a 1,000-user store costs, so a page at 1M costs what it
/// does at 1k.
pub const COUNT_BUDGET: usize = 1_000;

/// The estimate when `matched` of `examined` candidates matched and the candidates number
/// about `candidates` in all: `About`, rounded to two significant digits, never below what
/// was seen to match.
pub fn estimate(matched: usize, examined: usize, candidates: usize) -> UserCount {
    if examined == 0 {
        return UserCount::About(matched);
    }
    let scaled = (matched as u128 * candidates as u128 / examined as u128) as usize;
    UserCount::About(round2(scaled.max(matched)))
}

/// `n` rounded to two significant digits (an estimate claims no more).
fn round2(n: usize) -> usize {
    let mut unit = 1usize;
    while n / unit >= 100 {
        unit = unit.saturating_mul(10);
    }
    (n + unit / 2) / unit * unit
}

/// A group (a name users hold, SPEC §12) and how many users hold it, deactivated ones
/// included: exact up to `COUNT_CAP`, `AtLeast(COUNT_CAP)` past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub name: String,
    pub members: UserCount,
}

/// A count read up to `COUNT_CAP` + 1 as the lists show it.
pub fn capped_count(n: usize) -> UserCount {
    if n > COUNT_CAP {
        UserCount::AtLeast(COUNT_CAP)
    } else {
        UserCount::Exact(n)
    }
}

/// The folded first and last names as one text the search looks in (PostgreSQL stores it as
/// the `names_key` column, so both backends fold alike).
pub fn names_key(user: &User) -> String {
    format!(
        "{}\n{}",
        name_key(&user.first_name),
        name_key(&user.last_name)
    )
}

impl UserQuery {
    /// The folded search, or `None` when there is nothing to search for.
    pub fn search_key(&self) -> Option<String> {
        self.search
            .as_deref()
            .map(name_key)
            .filter(|s| !s.is_empty())
    }

    /// Whether `user` (whose second factor is on when `mfa_on`) is in the list.
    pub fn matches(&self, user: &User, mfa_on: bool) -> bool {
        let state_ok = match self.state {
            StateFilter::All => true,
            StateFilter::Active => user.is_active,
            StateFilter::Inactive => !user.is_active,
        };
        state_ok
            && self.staff.is_none_or(|s| s == user.is_staff)
            && self.mfa.is_none_or(|m| m == mfa_on)
            && self.verified.is_none_or(|v| v == user.email_verified)
            && self
                .group
                .as_ref()
                .is_none_or(|g| user.groups.iter().any(|have| have == g))
            && self.search_key().is_none_or(|s| {
                name_key(&user.username).contains(&s)
                    || name_key(&user.email).contains(&s)
                    || names_key(user).contains(&s)
            })
    }

    /// Whether only the state is asked for (the store's counters know those counts).
    pub fn is_state_only(&self) -> bool {
        self.search_key().is_none()
            && self.staff.is_none()
            && self.group.is_none()
            && self.mfa.is_none()
            && self.verified.is_none()
    }

    /// How the counters answer this query's count, or `None` when they cannot (a search,
    /// or more than one filter beside the state).
    pub fn count_plan(&self) -> Option<CountPlan> {
        if self.search_key().is_some() {
            return None;
        }
        let mut asked = Vec::new();
        if let Some(staff) = self.staff {
            asked.push((Counted::Staff, staff));
        }
        if let Some(mfa) = self.mfa {
            asked.push((Counted::Mfa, mfa));
        }
        if let Some(verified) = self.verified {
            asked.push((Counted::Unverified, !verified));
        }
        if let Some(group) = &self.group {
            asked.push((Counted::Group(group.clone()), true));
        }
        match asked.len() {
            0 => Some(CountPlan::Total),
            1 => asked.pop().map(|(c, on)| {
                if on {
                    CountPlan::Counter(c)
                } else {
                    CountPlan::TotalMinus(c)
                }
            }),
            _ => None,
        }
    }

    /// The value `user` sorts by under this query's sort.
    pub fn sort_key(&self, user: &User) -> SortKey {
        match self.sort {
            UserSort::Id => SortKey::None,
            UserSort::Username => SortKey::Text(name_key(&user.username)),
            UserSort::DateJoined => SortKey::Number(user.date_joined),
            UserSort::LastLogin => SortKey::Number(user.last_login.unwrap_or(0)),
        }
    }

    /// The cursor that ends a page at `user`.
    pub fn cursor(&self, user: &User) -> UserCursor {
        UserCursor {
            key: self.sort_key(user),
            id: user.id,
        }
    }

    /// The list's order between two users.
    pub fn order(&self, a: &User, b: &User) -> Ordering {
        let o = (self.sort_key(a), a.id).cmp(&(self.sort_key(b), b.id));
        if self.desc {
            o.reverse()
        } else {
            o
        }
    }

    /// Whether `user` comes after `cursor` in the list's order.
    pub fn is_after(&self, cursor: &UserCursor, user: &User) -> bool {
        self.key_is_after(cursor, &self.sort_key(user), user.id)
    }

    /// Whether the user `id` whose sort key is `key` comes after `cursor` in the list's
    /// order.
    pub fn key_is_after(&self, cursor: &UserCursor, key: &SortKey, id: u64) -> bool {
        let here = (key, id);
        let there = (&cursor.key, cursor.id);
        if self.desc {
            here < there
        } else {
            here > there
        }
    }

    /// A page from `rows` (in the list's order, all after the cursor, at most `limit + 1`
    /// of them): the first `limit`, and a cursor when there was one more.
    pub fn page(&self, mut rows: Vec<User>, limit: usize) -> UserPage {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(last) if more => Some(self.cursor(last)),
            _ => None,
        };
        UserPage { users: rows, next }
    }
}

/// The whole filtered list in order, a batch at a time (the streamed CSV export): each batch
/// is one keyset page, so memory stays one batch whatever the list's length.
pub struct UserBatches<'a> {
    store: &'a dyn super::UserStore,
    query: UserQuery,
    after: Option<UserCursor>,
    batch: usize,
    done: bool,
}

impl<'a> UserBatches<'a> {
    pub fn new(store: &'a dyn super::UserStore, query: UserQuery, batch: usize) -> Self {
        UserBatches {
            store,
            query,
            after: None,
            batch: batch.max(1),
            done: false,
        }
    }

    /// The next batch, `None` once the list is done.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<User>>, super::StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .query_users(&self.query, self.after.as_ref(), self.batch)
            .await?;
        self.after = page.next;
        self.done = self.after.is_none();
        if page.users.is_empty() {
            return Ok(None);
        }
        Ok(Some(page.users))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_user;
    use super::*;

    fn user(id: u64, name: &str) -> User {
        test_user(id, name, &format!("{name}@example.com"))
    }

    #[test]
    fn search_folds_case_and_looks_in_names_too() {
        let mut u = user(1, "Alice");
        u.first_name = "Zoë".into();
        u.last_name = "ÅSTRÖM".into();
        let q = |s: &str| UserQuery {
            search: Some(s.into()),
            ..UserQuery::default()
        };
        for hit in ["ALI", "example.COM", "zoË", "åström", ""] {
            assert!(q(hit).matches(&u, false), "{hit}");
        }
        assert!(!q("bob").matches(&u, false));
        assert!(q("").is_state_only());
    }

    #[test]
    fn every_filter_narrows() {
        let mut u = user(1, "a");
        u.is_staff = true;
        u.groups = vec!["ops".into()];
        u.email_verified = false;
        let base = UserQuery::default();
        assert!(base.matches(&u, true));
        let cases = [
            UserQuery {
                state: StateFilter::Inactive,
                ..base.clone()
            },
            UserQuery {
                staff: Some(false),
                ..base.clone()
            },
            UserQuery {
                group: Some("Ops".into()),
                ..base.clone()
            },
            UserQuery {
                mfa: Some(false),
                ..base.clone()
            },
            UserQuery {
                verified: Some(true),
                ..base.clone()
            },
        ];
        for q in cases {
            assert!(!q.matches(&u, true), "{q:?}");
            assert!(!q.is_state_only() || q.state != StateFilter::All);
        }
    }

    #[test]
    fn order_and_cursor_agree_in_both_directions() {
        let mut users: Vec<User> = (1..=6).map(|i| user(i, &format!("u{}", 7 - i))).collect();
        for (i, u) in users.iter_mut().enumerate() {
            u.date_joined = (i as u64) / 2;
            u.last_login = (i % 3 != 0).then_some(i as u64);
        }
        for sort in UserSort::ALL {
            for desc in [false, true] {
                let q = UserQuery {
                    sort,
                    desc,
                    ..UserQuery::default()
                };
                let mut sorted = users.clone();
                sorted.sort_by(|a, b| q.order(a, b));
                for (i, u) in sorted.iter().enumerate() {
                    let c = q.cursor(u);
                    assert_eq!(UserCursor::decode(&c.encode(), sort), Some(c.clone()));
                    let after: Vec<u64> = sorted
                        .iter()
                        .filter(|v| q.is_after(&c, v))
                        .map(|v| v.id)
                        .collect();
                    let want: Vec<u64> = sorted[i + 1..].iter().map(|v| v.id).collect();
                    assert_eq!(after, want, "{sort:?} desc={desc}");
                }
            }
        }
    }

    #[test]
    fn malformed_cursors_are_none() {
        for (s, sort) in [
            ("x", UserSort::Id),
            ("1.n5", UserSort::Id),
            ("1", UserSort::Username),
            ("1.tzz", UserSort::Username),
            ("1.t6", UserSort::Username),
            ("1.tff", UserSort::Username),
            ("1.t61", UserSort::DateJoined),
            ("-1.n2", UserSort::LastLogin),
            ("1.té", UserSort::Username),
        ] {
            assert_eq!(UserCursor::decode(s, sort), None, "{s}");
        }
        assert_eq!(UserSort::parse("email"), None);
        assert_eq!(
            UserSort::parse("last_login").map(|s| s.as_str()),
            Some("last_login")
        );
    }

    #[test]
    fn counters_answer_the_state_and_one_filter_and_nothing_more() {
        let q = UserQuery::default;
        assert_eq!(q().count_plan(), Some(CountPlan::Total));
        let staff_off = UserQuery {
            staff: Some(false),
            state: StateFilter::Active,
            ..q()
        };
        assert_eq!(
            staff_off.count_plan(),
            Some(CountPlan::TotalMinus(Counted::Staff))
        );
        let unverified = UserQuery {
            verified: Some(false),
            ..q()
        };
        assert_eq!(
            unverified.count_plan(),
            Some(CountPlan::Counter(Counted::Unverified))
        );
        let group = UserQuery {
            group: Some("ops".into()),
            ..q()
        };
        assert_eq!(
            group.count_plan(),
            Some(CountPlan::Counter(Counted::Group("ops".into())))
        );
        let two = UserQuery {
            mfa: Some(true),
            ..group.clone()
        };
        assert_eq!(two.count_plan(), None);
        let searched = UserQuery {
            search: Some("a".into()),
            ..q()
        };
        assert_eq!(searched.count_plan(), None);
    }

    #[test]
    fn estimates_scale_the_part_examined_and_round_to_two_digits() {
        assert_eq!(estimate(200, 1000, 1_000_000), UserCount::About(200_000));
        assert_eq!(estimate(1, 3, 1_000_000), UserCount::About(330_000));
        assert_eq!(estimate(57, 1000, 1000), UserCount::About(57));
        // Never below what was seen.
        assert_eq!(estimate(120, 1000, 10), UserCount::About(120));
        assert_eq!(estimate(0, 0, 5), UserCount::About(0));
        assert_eq!(round2(12_345), 12_000);
        assert_eq!(round2(995), 1_000);
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_follow() {
        let q = UserQuery::default();
        let rows: Vec<User> = (1..=3).map(|i| user(i, &format!("u{i}"))).collect();
        let page = q.page(rows.clone(), 2);
        assert_eq!(page.users.len(), 2);
        assert_eq!(page.next.map(|c| c.id), Some(2));
        assert_eq!(q.page(rows, 3).next, None);
    }
}
