// The users search on PostgreSQL once the planner has statistics: a search of five letters or
// more asks migration 12's index for its two rarest five-letter pieces, rarest by `pg_stats`
// (read by the store after an `ANALYZE`). Whatever pieces it asks, the users found are those a
// plain filter of every user finds, in the console's list and in the admin API's.
use crate::common;

use common::postgres;
use gatehouse::store::{
    ListFilter, PgStore, StateFilter, User, UserCount, UserCursor, UserQuery, UserStore,
};

fn user(i: u64) -> User {
    User {
        id: i,
        username: format!("user{i:07}"),
        email: format!("user{i:07}@example.com"),
        first_name: ["Zoë", "", "Mia"][i as usize % 3].into(),
        last_name: format!("Family{}", i % 97),
        password: "x".into(),
        is_active: i % 11 != 0,
        is_staff: false,
        date_joined: 1_000 + i,
        last_login: None,
        deleted_at: None,
        token_version: 0,
        groups: Vec::new(),
        email_verified: true,
        ended: Vec::new(),
        is_service: false,
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
        "zoë\nfamily1",
        "family96",
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
        let mut got = Vec::new();
        let mut after: Option<UserCursor> = None;
        loop {
            let page = store
                .query_users(&q, after.as_ref(), 500)
                .await
                .expect("page");
            got.extend(page.users.iter().map(|u| u.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
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
