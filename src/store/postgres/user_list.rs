//! The console's users list on PostgreSQL: a `UserQuery` as one keyset SELECT (the sort's
//! index from migration 6, row comparison on (sort key, id)), and its count from the
//! counters of migration 10 when they answer it, else counted while the planner expects few
//! matches and estimated by the planner past that, so no count ever reads a million rows.
//! A search of five letters or more asks the index of migration 12 for its two rarest
//! five-letter pieces, rarest by the planner's statistics (`PieceShares`, read every ten
//! minutes).

use super::{decode_user, pg_error, pool_error, to_i64, PgStore, USER_COLUMNS};
use crate::store::{
    capped_count, name_key, CountPlan, Counted, GroupCount, SortKey, StateFilter, StoreError,
    UserCount, UserCursor, UserPage, UserQuery, UserSort, UserStore, COUNT_BUDGET,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;

/// A query parameter that can travel to the store's runtime.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// The expression of migration 11's `users_search_trgm` index, as the index has it (the
/// planner matches the text): username, address and names keys, one per line.
pub(super) const SEARCH_TEXT: &str = "(username_key || E'\\n' || email_key || E'\\n' || names_key)";

/// A `LIKE` pattern for `key` (a search already folded by `name_key`) anywhere in a folded
/// key; LIKE's wildcards in the search are literal.
pub(super) fn contains_pattern(key: &str) -> String {
    let mut pattern = String::from("%");
    for c in key.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The expression of migration 12's `users_search_grams` index, as the index has it: the
/// five-letter pieces of each key.
pub(super) const GRAMS_TEXT: &str =
    "(gatehouse_grams(username_key) || gatehouse_grams(email_key) || gatehouse_grams(names_key))";

/// The letters in a piece of `GRAMS_TEXT` (migration 12's `gatehouse_grams`).
const GRAM: usize = 5;

/// How many pieces of a search go to the index: its rarest. The index reads each asked
/// piece's list; a common piece's list is long (`user0` holds every generated user), and
/// two rare pieces already leave a handful of candidates for the `LIKE` to decide.
const PIECES_ASKED: usize = 2;

/// The share of users holding each of the commonest pieces, as the planner's statistics of
/// migration 12's index list them (`pg_stats.most_common_elems`); a piece not listed is
/// rarer than any listed one. Empty before the first `ANALYZE`: then the first pieces in
/// byte order are asked, which is still right, only slower.
pub(super) type PieceShares = HashMap<String, f32>;

/// How long `PieceShares` are used before they are read again (autovacuum's `ANALYZE` moves
/// them slowly).
const PIECE_SHARES_FOR: Duration = Duration::from_secs(600);

/// The statistics `PieceShares` are read from (one row, or none before an `ANALYZE`).
const PIECE_SHARES_SQL: &str = "SELECT most_common_elems::text::text[], most_common_elem_freqs \
     FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'users_search_grams'";

/// `PieceShares` as read, with when.
pub(super) type SharesCache = std::sync::Mutex<Option<(Instant, Arc<PieceShares>)>>;

/// The distinct five-letter pieces of `key` (a search folded by `name_key`) as migration
/// 12's `gatehouse_grams` cuts a key (characters, not bytes); `None` when it is shorter than
/// a piece.
pub(super) fn search_grams(key: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < GRAM {
        return None;
    }
    let mut grams: Vec<String> = chars.windows(GRAM).map(|w| w.iter().collect()).collect();
    grams.sort_unstable();
    grams.dedup();
    Some(grams)
}

/// The `PIECES_ASKED` rarest of `pieces` by `shares` (an unlisted piece is the rarest).
pub(super) fn rarest_pieces(mut pieces: Vec<String>, shares: &PieceShares) -> Vec<String> {
    let share = |p: &String| shares.get(p).copied().unwrap_or(0.0);
    pieces.sort_by(|a, b| share(a).total_cmp(&share(b)));
    pieces.truncate(PIECES_ASKED);
    pieces
}

/// The condition of a search for `key` (folded by `name_key`) in `keys`, with its
/// parameters numbered from `first`. An index finds the candidates: the rarest five-letter
/// pieces of the keys (`GRAMS_TEXT`, `rarest_pieces`) for a search that long, else their
/// trigrams (`SEARCH_TEXT`); `keys` one by one decide, so a search never matches across two
/// of them.
pub(super) fn search_sql(
    key: &str,
    first: usize,
    keys: &[&str],
    shares: &PieceShares,
) -> (String, Vec<Param>) {
    let each: Vec<String> = keys.iter().map(|k| format!("{k} LIKE ${first}")).collect();
    let each = each.join(" OR ");
    let mut params: Vec<Param> = vec![Box::new(contains_pattern(key))];
    let sql = match search_grams(key) {
        Some(grams) => {
            params.push(Box::new(rarest_pieces(grams, shares)));
            format!("{GRAMS_TEXT} @> ${}::text[] AND ({each})", first + 1)
        }
        None => format!("{SEARCH_TEXT} LIKE ${first} AND ({each})"),
    };
    (sql, params)
}

/// The conditions of `q`'s filters (ANDed), their parameters numbered after `params`.
pub(super) fn where_sql(q: &UserQuery, params: &mut Vec<Param>, shares: &PieceShares) -> String {
    let mut conds: Vec<String> = Vec::new();
    match q.state {
        StateFilter::All => {}
        StateFilter::Active => conds.push("is_active".into()),
        StateFilter::Inactive => conds.push("NOT is_active".into()),
    }
    // Booleans are written into the text, not bound: the partial indexes' predicates match.
    let flag = |on: bool, cond: &str| {
        if on {
            cond.to_string()
        } else {
            format!("NOT {cond}")
        }
    };
    if let Some(staff) = q.staff {
        conds.push(flag(staff, "is_staff"));
    }
    if let Some(verified) = q.verified {
        conds.push(flag(verified, "email_verified"));
    }
    if let Some(mfa) = q.mfa {
        // Kept by the `mfa` trigger (migration 11); its partial indexes serve every sort.
        conds.push(flag(mfa, "mfa_on"));
    }
    if let Some(group) = &q.group {
        params.push(Box::new(group.clone()));
        conds.push(format!("groups @> ARRAY[${}::text]", params.len()));
    }
    if let Some(s) = q.search_key() {
        // UserQuery::matches: the folded search inside a folded key.
        let (cond, search_params) = search_sql(
            &name_key(&s),
            params.len() + 1,
            &["username_key", "email_key", "names_key"],
            shares,
        );
        params.extend(search_params);
        conds.push(cond);
    }
    if conds.is_empty() {
        "true".into()
    } else {
        conds.join(" AND ")
    }
}

/// The SELECT of a page: up to `limit` rows after `after` in `q`'s order.
pub(super) fn page_sql(
    q: &UserQuery,
    after: Option<&UserCursor>,
    limit: i64,
    shares: &PieceShares,
) -> Result<(String, Vec<Param>), StoreError> {
    let mut params: Vec<Param> = Vec::new();
    let mut cond = where_sql(q, &mut params, shares);
    let key = match q.sort {
        UserSort::Id => None,
        UserSort::Username => Some("username_key COLLATE \"C\""),
        UserSort::DateJoined => Some("date_joined"),
        UserSort::LastLogin => Some("coalesce(last_login, 0)"),
    };
    let (cmp, dir) = if q.desc { ("<", " DESC") } else { (">", "") };
    if let Some(c) = after {
        // Ids in the database stop at i64::MAX: a larger cursor is past every row.
        let id = i64::try_from(c.id).unwrap_or(i64::MAX);
        params.push(Box::new(id));
        let id_param = params.len();
        match (key, &c.key) {
            (None, _) => cond.push_str(&format!(" AND id {cmp} ${id_param}")),
            (Some(key), SortKey::Text(t)) => {
                params.push(Box::new(t.clone()));
                cond.push_str(&format!(
                    " AND ({key}, id) {cmp} (${}::text COLLATE \"C\", ${id_param})",
                    params.len()
                ));
            }
            (Some(key), SortKey::Number(n)) => {
                params.push(Box::new(to_i64(*n, "cursor")?));
                cond.push_str(&format!(
                    " AND ({key}, id) {cmp} (${}::bigint, ${id_param})",
                    params.len()
                ));
            }
            // A cursor of another sort: from the start.
            (Some(_), SortKey::None) => {}
        }
    }
    let order = match key {
        None => format!("id{dir}"),
        Some(key) => format!("{key}{dir}, id{dir}"),
    };
    params.push(Box::new(limit));
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {cond} ORDER BY {order} LIMIT ${}",
        params.len()
    );
    Ok((sql, params))
}

/// The `user_list_counts` keys (migration 10) of `kind` for the states `state` selects.
pub(super) fn counter_keys(state: &StateFilter, kind: &Counted) -> Vec<String> {
    let k = match kind {
        Counted::Staff => "s".to_string(),
        Counted::Mfa => "m".to_string(),
        Counted::Unverified => "u".to_string(),
        Counted::Group(g) => format!("g{g}"),
    };
    match state {
        StateFilter::Active => vec![format!("a{k}")],
        StateFilter::Inactive => vec![format!("i{k}")],
        StateFilter::All => vec![format!("a{k}"), format!("i{k}")],
    }
}

/// The planner's row estimate from the first line of a text `EXPLAIN` (its top node's
/// `rows=`).
pub(super) fn planned_rows(plan_first_line: &str) -> Option<u64> {
    let at = plan_first_line.find(" rows=")? + " rows=".len();
    let digits: String = plan_first_line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Past this many rows expected by the planner a count is its estimate, not counted (a
/// count of that many would cost more than the page).
const ESTIMATE_PAST: u64 = 10 * COUNT_BUDGET as u64;

/// The sum of the `user_list_counts` keys `$1` (every shard).
const SUM_COUNTERS: &str =
    "SELECT coalesce(sum(n), 0)::bigint FROM user_list_counts WHERE key = ANY($1)";

impl PgStore {
    /// The `PieceShares` a search for `key` (folded) needs: none under five letters, else
    /// those read within `PIECE_SHARES_FOR`, else read now.
    pub(super) async fn piece_shares(
        &self,
        key: Option<&str>,
    ) -> Result<Arc<PieceShares>, StoreError> {
        if key.and_then(search_grams).is_none() {
            return Ok(Arc::default());
        }
        let cache = &self.piece_shares;
        if let Some((at, shares)) = &*cache.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < PIECE_SHARES_FOR {
                return Ok(Arc::clone(shares));
            }
        }
        let rows = self
            .run("piece_shares", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                client.query(PIECE_SHARES_SQL, &[]).await.map_err(pg_error)
            })
            .await?;
        let mut shares = PieceShares::new();
        for row in &rows {
            let pieces: Option<Vec<String>> = row.try_get(0).map_err(pg_error)?;
            let freqs: Option<Vec<f32>> = row.try_get(1).map_err(pg_error)?;
            // The frequencies end with three more (least, most, nulls): zip stops at the
            // pieces.
            shares.extend(
                pieces
                    .into_iter()
                    .flatten()
                    .zip(freqs.into_iter().flatten()),
            );
        }
        let shares = Arc::new(shares);
        *cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Arc::clone(&shares)));
        Ok(shares)
    }

    /// The sum of the counters `keys`.
    async fn counters(&self, keys: Vec<String>) -> Result<usize, StoreError> {
        let n = self
            .run("count_query", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let row = client
                    .query_one(SUM_COUNTERS, &[&keys])
                    .await
                    .map_err(pg_error)?;
                Ok(row.get::<_, i64>(0))
            })
            .await?;
        usize::try_from(n).map_err(|_| StoreError::Io(format!("list counter {n}")))
    }

    /// `UserStore::count_query`: the counters when they answer (`UserQuery::count_plan`);
    /// else the planner's estimate when it expects more than `ESTIMATE_PAST` rows, else the
    /// matches counted up to `COUNT_BUDGET` (exact when at most that many, else `About` the
    /// larger of the estimate and the count).
    pub(super) async fn count_of(&self, q: &UserQuery) -> Result<UserCount, StoreError> {
        if let Some(plan) = q.count_plan() {
            let n = match &plan {
                CountPlan::Total => self.count_users(&q.state).await?,
                CountPlan::Counter(kind) => self.counters(counter_keys(&q.state, kind)).await?,
                CountPlan::TotalMinus(kind) => self
                    .count_users(&q.state)
                    .await?
                    .saturating_sub(self.counters(counter_keys(&q.state, kind)).await?),
            };
            return Ok(UserCount::Exact(n));
        }
        let shares = self.piece_shares(q.search_key().as_deref()).await?;
        let mut params = Vec::new();
        let cond = where_sql(q, &mut params, &shares);
        let explain = format!("EXPLAIN SELECT 1 FROM users WHERE {cond}");
        params.push(Box::new(COUNT_BUDGET as i64 + 1));
        let count = format!(
            "SELECT count(*) FROM (SELECT 1 FROM users WHERE {cond} LIMIT ${}) capped",
            params.len()
        );
        let (planned, counted) = self
            .run("count_query", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let args: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let plan = client
                    .query(&explain, &args[..args.len() - 1])
                    .await
                    .map_err(pg_error)?;
                let first: Option<String> = match plan.first() {
                    Some(row) => Some(row.try_get(0).map_err(pg_error)?),
                    None => None,
                };
                let planned = first.as_deref().and_then(planned_rows).ok_or_else(|| {
                    StoreError::Io("EXPLAIN of the users count gave no row estimate".into())
                })?;
                if planned > ESTIMATE_PAST {
                    return Ok((planned, None));
                }
                let row = client.query_one(&count, &args).await.map_err(pg_error)?;
                Ok((planned, Some(row.get::<_, i64>(0))))
            })
            .await?;
        let planned = usize::try_from(planned).unwrap_or(usize::MAX);
        Ok(match counted {
            None => crate::store::estimate(planned, 1, 1),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| StoreError::Io(format!("count {n}")))?;
                if n <= COUNT_BUDGET {
                    UserCount::Exact(n)
                } else {
                    crate::store::estimate(planned.max(n), 1, 1)
                }
            }
        })
    }

    /// `UserStore::query_users`.
    pub(super) async fn users_page(
        &self,
        q: &UserQuery,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<UserPage, StoreError> {
        let fetch = to_i64(limit.saturating_add(1) as u64, "limit")?;
        let shares = self.piece_shares(q.search_key().as_deref()).await?;
        let q2 = q.clone();
        let after = after.cloned();
        let rows = self
            .run("query_users", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let (sql, params) = page_sql(&q2, after.as_ref(), fetch, &shares)?;
                let args: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let rows = client.query(&sql, &args).await.map_err(pg_error)?;
                rows.iter()
                    .map(|r| decode_user(r).map(|(u, _)| u))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(q.page(rows, limit))
    }

    /// `UserStore::group_counts`: every user's `groups` unnested and counted by name (a
    /// read of the column; the GIN index answers membership, not the list of names).
    pub(super) async fn group_counts_of(
        &self,
        limit: usize,
    ) -> Result<Vec<GroupCount>, StoreError> {
        let limit = to_i64(limit as u64, "limit")?;
        let rows = self
            .run("group_counts", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let rows = client
                    .query(
                        "SELECT g, count(*) FROM users, unnest(groups) AS g \
                         GROUP BY g ORDER BY g COLLATE \"C\" LIMIT $1",
                        &[&limit],
                    )
                    .await
                    .map_err(pg_error)?;
                rows.iter()
                    .map(|r| {
                        let name: String = r.try_get(0).map_err(pg_error)?;
                        let n: i64 = r.try_get(1).map_err(pg_error)?;
                        Ok((name, n))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        rows.into_iter()
            .map(|(name, n)| {
                let n = usize::try_from(n).map_err(|_| StoreError::Io(format!("count {n}")))?;
                Ok(GroupCount {
                    name,
                    members: capped_count(n),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_and_a_descending_date_cursor_make_one_keyset_select() {
        let q = UserQuery {
            search: Some("A_b".into()),
            state: StateFilter::Active,
            staff: Some(false),
            group: Some("ops".into()),
            mfa: Some(true),
            verified: Some(true),
            sort: UserSort::LastLogin,
            desc: true,
        };
        let after = UserCursor {
            key: SortKey::Number(5),
            id: 9,
        };
        let (sql, params) = page_sql(&q, Some(&after), 51, &PieceShares::new()).expect("sql");
        assert!(sql.contains(
            "WHERE is_active AND NOT is_staff AND email_verified AND mfa_on AND \
             groups @> ARRAY[$1::text] AND \
             (username_key || E'\\n' || email_key || E'\\n' || names_key) LIKE $2 AND \
             (username_key LIKE $2 OR email_key LIKE $2 OR names_key LIKE $2) AND \
             (coalesce(last_login, 0), id) < ($4::bigint, $3)"
        ));
        assert!(sql.ends_with("ORDER BY coalesce(last_login, 0) DESC, id DESC LIMIT $5"));
        assert_eq!(params.len(), 5);
    }

    #[test]
    fn a_search_of_five_letters_or_more_is_cut_into_pieces_as_the_index_cuts_keys() {
        assert_eq!(search_grams("zoë"), None);
        assert_eq!(search_grams("abcd"), None);
        assert_eq!(
            search_grams("user00001").expect("pieces"),
            ["00001", "er000", "r0000", "ser00", "user0"]
        );
        // Characters, not bytes; a repeated piece once.
        assert_eq!(
            search_grams("zoë\nöst").expect("pieces"),
            ["oë\nös", "zoë\nö", "ë\nöst"]
        );
        assert_eq!(search_grams("aaaaaaa").expect("pieces"), ["aaaaa"]);
        // A long search: every piece once.
        let long: String = (0..200u32)
            .map(|i| char::from_u32(0x4e00 + i).expect("a letter"))
            .collect();
        assert_eq!(search_grams(&long).map(|g| g.len()), Some(196));
        let q = UserQuery {
            search: Some("User00001".into()),
            ..UserQuery::default()
        };
        let shares: PieceShares = [("user0", 1.0), ("ser00", 0.1), ("er000", 0.01)]
            .into_iter()
            .map(|(p, f)| (p.to_string(), f))
            .collect();
        let (sql, params) = page_sql(&q, None, 51, &shares).expect("sql");
        assert_eq!(format!("{:?}", params[1]), r#"["00001", "r0000"]"#);
        assert!(sql.contains(
            "WHERE (gatehouse_grams(username_key) || gatehouse_grams(email_key) || \
             gatehouse_grams(names_key)) @> $2::text[] AND (username_key LIKE $1 OR \
             email_key LIKE $1 OR names_key LIKE $1) ORDER BY id LIMIT $3"
        ));
        assert_eq!(params.len(), 3);
    }

    #[test]
    fn the_index_is_asked_for_the_two_rarest_pieces() {
        let pieces = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let shares: PieceShares = [("aaaaa", 0.5), ("bbbbb", 0.001), ("ccccc", 0.2)]
            .into_iter()
            .map(|(p, f)| (p.to_string(), f))
            .collect();
        // Listed pieces by their share; an unlisted one is rarer than any.
        assert_eq!(
            rarest_pieces(pieces(&["aaaaa", "bbbbb", "ccccc"]), &shares),
            ["bbbbb", "ccccc"]
        );
        assert_eq!(
            rarest_pieces(pieces(&["aaaaa", "zzzzz", "ccccc"]), &shares),
            ["zzzzz", "ccccc"]
        );
        assert_eq!(rarest_pieces(pieces(&["aaaaa"]), &shares), ["aaaaa"]);
        // No statistics yet: the first two, still a right question.
        assert_eq!(
            rarest_pieces(pieces(&["aaaaa", "bbbbb", "ccccc"]), &PieceShares::new()),
            ["aaaaa", "bbbbb"]
        );
    }

    #[test]
    fn a_second_factor_is_a_flag_of_the_user_in_every_sort() {
        for sort in [UserSort::Id, UserSort::LastLogin] {
            let q = UserQuery {
                mfa: Some(true),
                staff: Some(false),
                sort,
                desc: true,
                ..UserQuery::default()
            };
            let (sql, _) = page_sql(&q, None, 51, &PieceShares::new()).expect("sql");
            assert!(sql.contains("FROM users WHERE NOT is_staff AND mfa_on ORDER BY"));
            let off = UserQuery {
                mfa: Some(false),
                ..q
            };
            let (sql, _) = page_sql(&off, None, 51, &PieceShares::new()).expect("sql");
            assert!(sql.contains("AND NOT mfa_on ORDER BY"));
        }
    }

    #[test]
    fn counters_are_keyed_by_state_and_estimates_read_from_the_plan() {
        assert_eq!(
            counter_keys(&StateFilter::All, &Counted::Group("ops".into())),
            ["agops", "igops"]
        );
        assert_eq!(
            counter_keys(&StateFilter::Inactive, &Counted::Unverified),
            ["iu"]
        );
        assert_eq!(
            planned_rows("Bitmap Heap Scan on users  (cost=12.01..340.5 rows=2003 width=4)"),
            Some(2003)
        );
        assert_eq!(
            planned_rows("Result  (cost=0.00..0.01 rows=1 width=4)"),
            Some(1)
        );
        assert_eq!(planned_rows("garbage"), None);
    }

    #[test]
    fn names_sort_by_bytes_and_ids_alone_need_no_key() {
        let q = UserQuery {
            sort: UserSort::Username,
            ..UserQuery::default()
        };
        let after = UserCursor {
            key: SortKey::Text("bob".into()),
            id: 2,
        };
        let (sql, _) = page_sql(&q, Some(&after), 3, &PieceShares::new()).expect("sql");
        assert!(sql.contains(
            "WHERE true AND (username_key COLLATE \"C\", id) > ($2::text COLLATE \"C\", $1)"
        ));
        let (sql, _) =
            page_sql(&UserQuery::default(), Some(&after), 3, &PieceShares::new()).expect("sql");
        assert!(sql.contains("WHERE true AND id > $1 ORDER BY id LIMIT $2"));
    }
}
