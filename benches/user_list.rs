//! The console's users list at scale (SPEC §18, issue 25): the store's `query_users` and
//! `count_query` pages on sled, at each size given, with the ratios largest / smallest.
//!
//! ```sh
//! cargo bench --no-default-features --bench user_list -- 1000 1000000   # ~6 min at 1M
//! ```
//!
//! Users come from the scale run's generator (`benches/scale/users.rs`: `user0000001`...,
//! the staff user `admin` last), varied by id so that every filter and sort has something to
//! do (`vary`): 1 % deleted, 10 % in `ops`, 0.1 % in `auditors`, 1 in 5,000 staff, 1 in 7
//! unverified, 1 in 500 with a second factor on, join dates and last logins scattered (a third
//! never logged in), first names from a short list. Loaded with `insert_users` in batches of
//! 10,000 into a fresh store in a temp dir (64 MiB page cache, the default), second factors
//! with `swap_mfa`. Each case is called until 1 s or 2,000 calls have passed (after 3 warm-up
//! calls); the median and p90 are printed in microseconds.

#[path = "scale/users.rs"]
mod scale_users;

use gatehouse::store::{
    Effects, Mfa, SledStore, StateFilter, User, UserCursor, UserQuery, UserSort, UserStore,
};
use std::time::{Duration, Instant};

const PAGE: usize = 50;
/// A PHC string of an argon2id hash's length: records decode at their real size.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
const FIRST: [&str; 5] = ["Zoë", "Liam", "Ana", "Mateo", "Yuki"];

/// Deterministic variety on top of the scale user (see the header).
fn vary(mut u: User, total: u64, now: u64) -> User {
    let id = u.id;
    if id == total {
        return u;
    }
    u.is_active = id % 100 != 0;
    u.deleted_at = (!u.is_active).then_some(now);
    if id % 10 == 0 {
        u.groups.push("ops".into());
    }
    if id % 1000 == 0 {
        u.groups.insert(0, "auditors".into());
    }
    u.is_staff = id % 5000 == 0;
    u.email_verified = id % 7 != 0;
    u.date_joined = now - (id.wrapping_mul(7919) % total) * 30;
    u.last_login = (id % 3 != 0).then(|| now - id.wrapping_mul(104_729) % (86_400 * 30));
    u.first_name = FIRST[(id % 5) as usize].into();
    u.last_name = format!("Family{}", id % 97);
    u
}

fn load(store: &SledStore, n: u64, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let total = n + 1;
    let now = 1_800_000_000;
    let mut next = 1;
    while next <= total {
        let end = (next + 10_000).min(total + 1);
        let batch: Vec<User> = (next..end)
            .map(|id| vary(scale_users::scale_user(id, total, HASH, now), total, now))
            .collect();
        for r in rt
            .block_on(store.insert_users(batch))
            .map_err(|e| e.to_string())?
        {
            r.map_err(|e| e.to_string())?;
        }
        next = end;
    }
    let mfa = Mfa {
        secret: "sealed".into(),
        enabled: true,
        since: now,
        ..Mfa::default()
    };
    for id in (500..=n).step_by(500) {
        rt.block_on(store.swap_mfa(id, None, Some(&mfa), Effects::none()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A named call of the store, timed.
struct Case {
    name: &'static str,
    query: UserQuery,
    /// Start from the middle of the list (a cursor at id n/2, id order only).
    deep: bool,
    /// Time `count_query` instead of a page.
    count: bool,
}

fn cases() -> Vec<Case> {
    let q = UserQuery::default;
    let page = |name, query| Case {
        name,
        query,
        deep: false,
        count: false,
    };
    let sorted = |sort, desc| UserQuery { sort, desc, ..q() };
    vec![
        page("list id", q()),
        Case {
            deep: true,
            ..page("list id, middle page", q())
        },
        page("list id desc", sorted(UserSort::Id, true)),
        page("list username", sorted(UserSort::Username, false)),
        page("list date_joined desc", sorted(UserSort::DateJoined, true)),
        page("list last_login desc", sorted(UserSort::LastLogin, true)),
        page(
            "filter active",
            UserQuery {
                state: StateFilter::Active,
                ..q()
            },
        ),
        page(
            "filter deleted (1 %)",
            UserQuery {
                state: StateFilter::Inactive,
                ..q()
            },
        ),
        page(
            "filter staff (0.02 %)",
            UserQuery {
                staff: Some(true),
                ..q()
            },
        ),
        page(
            "filter group ops (10 %)",
            UserQuery {
                group: Some("ops".into()),
                ..q()
            },
        ),
        page(
            "filter group ops, date_joined desc",
            UserQuery {
                group: Some("ops".into()),
                sort: UserSort::DateJoined,
                desc: true,
                ..q()
            },
        ),
        page(
            "filter auditors (0.1 %), username",
            UserQuery {
                group: Some("auditors".into()),
                sort: UserSort::Username,
                ..q()
            },
        ),
        page(
            "filter mfa on (0.2 %)",
            UserQuery {
                mfa: Some(true),
                ..q()
            },
        ),
        page(
            "filter mfa on, last_login desc",
            UserQuery {
                mfa: Some(true),
                sort: UserSort::LastLogin,
                desc: true,
                ..q()
            },
        ),
        page(
            "filter unverified (14 %)",
            UserQuery {
                verified: Some(false),
                ..q()
            },
        ),
        page(
            "search \"user00001\" (prefix, many)",
            UserQuery {
                search: Some("user00001".into()),
                ..q()
            },
        ),
        page(
            "search \"zoë\" (first name, 20 %)",
            UserQuery {
                search: Some("zoë".into()),
                ..q()
            },
        ),
        page(
            "search \"admin\" (one user: full scan)",
            UserQuery {
                search: Some("admin".into()),
                ..q()
            },
        ),
        Case {
            count: true,
            ..page(
                "count active (counter)",
                UserQuery {
                    state: StateFilter::Active,
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count staff",
                UserQuery {
                    staff: Some(true),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count unverified (capped)",
                UserQuery {
                    verified: Some(false),
                    ..q()
                },
            )
        },
    ]
}

/// Median and p90 of one case, in microseconds, and what the last call returned.
fn time(
    store: &SledStore,
    n: u64,
    case: &Case,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, f64, String), String> {
    let after = case.deep.then_some(UserCursor {
        key: gatehouse::store::SortKey::None,
        id: n / 2,
    });
    let call = || -> Result<String, String> {
        if case.count {
            let c = rt
                .block_on(store.count_query(&case.query))
                .map_err(|e| e.to_string())?;
            return Ok(format!("{c:?}"));
        }
        let page = rt
            .block_on(store.query_users(&case.query, after.as_ref(), PAGE))
            .map_err(|e| e.to_string())?;
        Ok(format!("{} rows", page.users.len()))
    };
    for _ in 0..3 {
        call()?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut last = String::new();
    while samples.len() < 2_000 && (started.elapsed() < Duration::from_secs(1) || samples.len() < 5)
    {
        let t = Instant::now();
        last = call()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok((at(0.5), at(0.9), last))
}

fn run() -> Result<(), String> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.replace('_', "").parse().map_err(|e| format!("{a}: {e}")))
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1_000, 100_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = SledStore::open(&dir.path().join("db"), 64 << 20).map_err(|e| e.to_string())?;
        let t = Instant::now();
        load(&store, n, &rt)?;
        eprintln!("{n} users loaded in {:.1} s", t.elapsed().as_secs_f64());
        let mut rows = Vec::new();
        for case in cases() {
            let (median, p90, last) = time(&store, n, &case, &rt)?;
            eprintln!(
                "  {n:>8} {:<40} {median:>10.1} {p90:>10.1} µs  ({last})",
                case.name
            );
            rows.push((median, p90));
        }
        results.push(rows);
    }
    let (first, last) = (&results[0], &results[results.len() - 1]);
    println!(
        "| case | {} users median (p90) µs | {} users median (p90) µs | ratio |",
        sizes[0],
        sizes[sizes.len() - 1]
    );
    println!("|---|---:|---:|---:|");
    for (i, case) in cases().iter().enumerate() {
        println!(
            "| {} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} |",
            case.name,
            first[i].0,
            first[i].1,
            last[i].0,
            last[i].1,
            last[i].0 / first[i].0
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("user_list: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
