// The users search on PostgreSQL once the planner has statistics: a search of five letters or
// more asks migration 12's index for its two rarest five-letter pieces, rarest by `pg_stats`
// (read by the store after an `ANALYZE`). Whatever pieces it asks, the users found are those a
// plain filter of every user finds, in the console's list and in the admin API's.
use crate::common;

use crate::store_contract::{all_pages, listed_user};
use common::postgres;
use gatehouse::store::{ListFilter, PgStore, StateFilter, User, UserCount, UserQuery, UserStore};

/// The store contract's listed user `i` (names, states, groups varied) named as the scale
/// bench names its users.
fn user(i: u64) -> User {
    User {
        username: format!("user{i:07}"),
        email: format!("user{i:07}@example.com"),
        ..listed_user(i)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_search_asks_for_its_rarest_pieces_and_finds_what_a_scan_finds() {
    let (url, db) = postgres::empty_database();
    let migrator = PgStore::open(&url, postgres::options(false)).expect("connect");
    migrator.migrate().expect("migrate");
    let store = PgStore::open(&url, postgres::options(true)).expect("open");
    let users: Vec<User> = (1..=3_000).map(user).collect();
    for chunk in users.chunks(1_000) {
        for r in store.insert_users(chunk.to_vec()).await.expect("insert") {
            r.expect("inserted");
        }
    }
    let cluster = postgres::cluster();
    cluster.psql(&db, "ANALYZE users").expect("analyze");
    // The statistics the store reads: the commonest pieces (`user0` is in every user).
    let listed = cluster
        .psql(
            &db,
            "SELECT 'user0' = ANY(most_common_elems::text::text[]) FROM pg_stats \
             WHERE tablename = 'users_search_grams'",
        )
        .expect("pg_stats");
    assert_eq!(
        listed.trim(),
        "t",
        "no statistics of the search index: {listed}"
    );

    for search in [
        "user00001",
        "USER0002",
        "ser0000",
        "0001@exa",
        "user0002999@example.com",
        "zoë\nöst1",
        "mia\nöst6",
        "0001\nzoë",
        "nobody here",
    ] {
        let q = UserQuery {
            search: Some(search.into()),
            ..UserQuery::default()
        };
        let want: Vec<u64> = users
            .iter()
            .filter(|u| q.matches(u, false))
            .map(|u| u.id)
            .collect();
        let got = all_pages(&store, &q, 500).await;
        // Every search but the last two finds someone, or the test would prove little.
        let finds = !matches!(search, "0001\nzoë" | "nobody here");
        assert_eq!(!want.is_empty(), finds, "{search:?}: {want:?}");
        assert_eq!(got, want, "{search:?}");
        let count = store.count_query(&q).await.expect("count");
        if want.len() <= gatehouse::store::COUNT_BUDGET {
            assert_eq!(count, UserCount::Exact(want.len()), "{search:?}");
        }
        // The admin API's list: the username and the address only.
        let filter = ListFilter {
            state: StateFilter::All,
            search: Some(search.into()),
        };
        let (total, listed) = store.list_users(&filter, 0, 5_000).await.expect("list");
        let want: Vec<u64> = users
            .iter()
            .filter(|u| filter.matches(u))
            .map(|u| u.id)
            .collect();
        assert_eq!(total, want.len(), "{search:?}");
        assert_eq!(
            listed.iter().map(|u| u.id).collect::<Vec<_>>(),
            want,
            "{search:?}"
        );
    }
}
