//! The console's users list at scale (SPEC §18, issue 25): the store's `query_users` and
//! `count_query` pages, and with `--pages` the console's `/admin/users/` pages themselves
//! through the real server, on sled or PostgreSQL, at each size given, with the ratios
//! largest / smallest (the target: 1M within 1.2x of 1k).
//!
//! ```sh
//! cargo bench --no-default-features --bench user_list -- 1000 1000000          # sled, store
//! cargo bench --no-default-features --bench user_list -- --pg --plans 1000 1000000
//! cargo bench --no-default-features --bench user_list -- --pages 1000 1000000  # + pages
//! cargo bench --no-default-features --bench user_list -- --reindex 1000000      # + rebuild
//! ```
//!
//! Users come from the scale run's generator (`benches/scale/users.rs`: `user0000001`...,
//! the staff user `admin` last), varied by id so that every filter and sort has something to
//! do (`vary`): 1 % deleted, 10 % in `ops`, 0.1 % in `auditors`, 1 in 5,000 staff, 1 in 7
//! unverified, 1 in 500 with a second factor on, join dates and last logins scattered (a third
//! never logged in), first names from a short list. Every filter selects at least a page of
//! users at every size (`Strides`): where its share would give fewer than 60 (at 1k: deleted,
//! staff, second factor, `auditors`), every 13th, 17th, 11th and 19th user instead, so the
//! pages compared at 1k and 1M show the same 50 rows and the ratio measures the size, not the
//! rows rendered. Loaded with `insert_users` in batches of
//! 10,000 into a fresh store in a temp dir (64 MiB page cache, the default), second factors
//! with `swap_mfa`. With `--pg`: a throwaway cluster (`user_list/pg.rs`), one database per
//! size migrated by the store, the same users written by SQL (`load_sql`: the store's insert
//! is one transaction per user, too slow for 1M here) and checked through the store, then
//! `VACUUM ANALYZE`. `USER_LIST_PG_DIR=<dir>` keeps the cluster there and reuses each size's
//! loaded database in later runs (`user_list/pg.rs`).
//! On sled, after the load: its wall and CPU time (this process, sled's threads included),
//! the store's size on disk and the live bytes of the users, the search postings and the
//! other list index keys; with `--reindex`, the time of `rebuild_user_index` (what opening a
//! store written before the index costs once).
//! `USER_LIST_SLED_DIR=<dir>` (sled): each size's store lives in `<dir>/<size>` and is
//! loaded only when it is not there yet (a `loaded` file marks a finished load), else
//! reused as it is, so a 1M load (~9 min) is paid once; the second factors and the pages'
//! staff user come from the first run. A store loaded before a change of the list index's
//! layout is re-indexed when opened (logged, timed here as its "opened" line).
//! `USER_LIST_ONLY=<text>` times only the store cases whose name holds it (to profile one;
//! the ratio table then mislabels its rows).
//! Each store case is called until 1 s or 2,000 calls have passed (after 3 warm-up calls);
//! the median and p90 are printed in microseconds.
//!
//! `--plans` (PostgreSQL): each case's executed plan (`auto_explain`, actual rows and buffers)
//! at each size, written to a file; a case whose plan reads the users table sequentially is
//! named. `--pages`: after the store cases of every size, `gatehouse serve` on each size's
//! data (all running at once) with a staff user signed in by cookie (`[console] require_mfa
//! = false`), and GET `/admin/users/?...` for the cases of `user_list/pages.rs`, sequential,
//! each page first checked to show what its filter selects. Each page is timed on the sizes
//! in turn, `PAGE_ROUNDS` rounds of 0.2 s each (the order of the sizes alternating), so that
//! a drift of the machine's speed during the run falls on every size alike (timed one size
//! after the other, the same page moved by 20-40 % between runs on this VM).

#[path = "user_list/pages.rs"]
mod pages;
#[path = "user_list/pg.rs"]
mod pg;
#[path = "scale/users.rs"]
mod scale_users;

use gatehouse::store::{
    Effects, Mfa, PgStore, SledStore, StateFilter, User, UserCursor, UserQuery, UserSort, UserStore,
};
use std::time::{Duration, Instant};

const PAGE: usize = 50;
/// A PHC string of an argon2id hash's length: records decode at their real size.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
const FIRST: [&str; 5] = ["Zoë", "Liam", "Ana", "Mateo", "Yuki"];

/// Fewer matches than this at a size and a filter's share is replaced by a small stride.
const FLOOR: u64 = 60;

/// Every how many users one is deleted, staff, has a second factor, is in `auditors`: the
/// shares of the header, or at a size where a share gives fewer than `FLOOR` users, a small
/// prime of its own (so no two sets coincide), giving at least a page of matches.
#[derive(Clone, Copy)]
struct Strides {
    deleted: u64,
    staff: u64,
    mfa: u64,
    auditors: u64,
}

impl Strides {
    fn of(n: u64) -> Strides {
        let stride = |share: u64, small: u64| if n / share >= FLOOR { share } else { small };
        Strides {
            deleted: stride(100, 13),
            staff: stride(5000, 17),
            mfa: stride(500, 11),
            auditors: stride(1000, 19),
        }
    }
}

/// Deterministic variety on top of the scale user (see the header).
fn vary(mut u: User, total: u64, now: u64) -> User {
    let id = u.id;
    if id == total {
        return u;
    }
    let every = Strides::of(total - 1);
    u.is_active = id % every.deleted != 0;
    u.deleted_at = (!u.is_active).then_some(now);
    if id % 10 == 0 {
        u.groups.push("ops".into());
    }
    if id % every.auditors == 0 {
        u.groups.insert(0, "auditors".into());
    }
    u.is_staff = id % every.staff == 0;
    u.email_verified = id % 7 != 0;
    u.date_joined = now - (id.wrapping_mul(7919) % total) * 30;
    u.last_login = (id % 3 != 0).then(|| now - id.wrapping_mul(104_729) % (86_400 * 30));
    u.first_name = FIRST[(id % 5) as usize].into();
    u.last_name = format!("Family{}", id % 97);
    u
}

/// Users 1..=n and the staff user `admin` (n + 1) through `insert_users` (sled), then the
/// second factors.
fn load(store: &dyn UserStore, n: u64) -> Result<(), String> {
    let total = n + 1;
    let now = 1_800_000_000;
    let rt = runtime()?;
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
    load_mfa(store, n, now)
}

/// Users 1..=n and `admin` (n + 1) written by one `INSERT ... SELECT` per 100,000 ids: the
/// columns `vary` gives each id, computed by PostgreSQL (the store's one transaction per user
/// loads ~1,000 users/s here, 17 min for 1M). The store's triggers (counters) run as for
/// any insert; the id sequence is moved past the last id as the store's insert does. Checked
/// afterwards: sampled users read back through the store equal `vary`'s, and their search
/// key equals `names_key`.
fn load_sql(cluster: &pg::Cluster, db: &str, store: &dyn UserStore, n: u64) -> Result<(), String> {
    let total = n + 1;
    let now: u64 = 1_800_000_000;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let list = |f: &dyn Fn(&str) -> String| {
        FIRST
            .iter()
            .map(|s| quote(&f(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let firsts = list(&|s| s.to_string());
    let first_keys = list(&|s| gatehouse::store::name_key(s));
    let hash = quote(HASH);
    let Strides {
        deleted,
        staff,
        mfa: _,
        auditors,
    } = Strides::of(n);
    let mut start = 1;
    while start <= n {
        let end = (start + 100_000 - 1).min(n);
        let sql = format!(
            "INSERT INTO users (id, username, username_key, email, email_key, first_name, \
             last_name, password, is_active, is_staff, date_joined, last_login, deleted_at, \
             token_version, groups, email_verified, ended, names_key) \
             SELECT id, u, u, u || '@example.com', u || '@example.com', \
               (ARRAY[{firsts}])[id % 5 + 1], 'Family' || id % 97, {hash}, \
               id % {deleted} <> 0, id % {staff} = 0, {now} - (id * 7919 % {total}) * 30, \
               CASE WHEN id % 3 <> 0 THEN {now} - id * 104729 % (86400 * 30) END, \
               CASE WHEN id % {deleted} = 0 THEN {now} END, 0, \
               CASE WHEN id % {auditors} = 0 AND id % 10 = 0 THEN ARRAY['auditors', 'ops'] \
                 WHEN id % {auditors} = 0 THEN ARRAY['auditors'] \
                 WHEN id % 10 = 0 THEN ARRAY['ops'] ELSE ARRAY[]::text[] END, \
               id % 7 <> 0, '[]', \
               (ARRAY[{first_keys}])[id % 5 + 1] || E'\\n' || 'family' || id % 97 \
             FROM (SELECT id, 'user' || lpad(id::text, 7, '0') AS u \
                   FROM generate_series({start}::bigint, {end}) id) g"
        );
        cluster.psql(db, &sql)?;
        start = end + 1;
    }
    // The staff user `admin` through the store, as the generator makes it.
    let rt = runtime()?;
    let admin = scale_users::scale_user(total, total, HASH, now);
    for r in rt
        .block_on(store.insert_users(vec![admin]))
        .map_err(|e| e.to_string())?
    {
        r.map_err(|e| e.to_string())?;
    }
    load_mfa(store, n, now)?;
    for id in [
        1,
        5,
        7,
        10,
        11,
        13,
        17,
        19,
        100,
        500,
        1000,
        5000,
        n / 2,
        n - 1,
        n,
    ] {
        if id == 0 || id > n {
            continue;
        }
        let want = vary(scale_users::scale_user(id, total, HASH, now), total, now);
        let got = rt
            .block_on(store.get_user(id))
            .map_err(|e| e.to_string())?
            .ok_or(format!("user {id} is missing"))?;
        if got != want {
            return Err(format!("user {id} loaded as {got:?}, generated {want:?}"));
        }
        let key = cluster.psql(db, &format!("SELECT names_key FROM users WHERE id = {id}"))?;
        if key != gatehouse::store::names_key(&want) {
            return Err(format!("user {id}'s names_key is {key:?}"));
        }
    }
    Ok(())
}

/// A second factor on for every 500th user (`Strides`).
fn load_mfa(store: &dyn UserStore, n: u64, now: u64) -> Result<(), String> {
    let mfa = Mfa {
        secret: "sealed".into(),
        enabled: true,
        since: now,
        ..Mfa::default()
    };
    let rt = runtime()?;
    let every = Strides::of(n).mfa;
    for id in (every..=n).step_by(every as usize) {
        rt.block_on(store.swap_mfa(id, None, Some(&mfa), Effects::none()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
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
                "count unverified (counter)",
                UserQuery {
                    verified: Some(false),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count group ops (counter)",
                UserQuery {
                    group: Some("ops".into()),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count mfa on (counter)",
                UserQuery {
                    mfa: Some(true),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count search \"zoë\" (20 %)",
                UserQuery {
                    search: Some("zoë".into()),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count search \"user00001\" (100 users)",
                UserQuery {
                    search: Some("user00001".into()),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count search \"admin\" (one user)",
                UserQuery {
                    search: Some("admin".into()),
                    ..q()
                },
            )
        },
        Case {
            count: true,
            ..page(
                "count group ops and unverified (two filters)",
                UserQuery {
                    group: Some("ops".into()),
                    verified: Some(false),
                    ..q()
                },
            )
        },
    ]
}

/// Calls `call` (3 warm-up calls, then until `min` or 2,000 calls have passed, at least 5):
/// the median and p90 in microseconds, and what the last call returned.
fn measure(
    min: Duration,
    mut call: impl FnMut() -> Result<String, String>,
) -> Result<(f64, f64, String), String> {
    for _ in 0..3 {
        call()?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut last = String::new();
    while samples.len() < 2_000 && (started.elapsed() < min || samples.len() < 5) {
        let t = Instant::now();
        last = call()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok((at(0.5), at(0.9), last))
}

/// One call of `case` on the store: what it returned, in short.
fn call_case(
    store: &dyn UserStore,
    n: u64,
    case: &Case,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let after = case.deep.then_some(UserCursor {
        key: gatehouse::store::SortKey::None,
        id: n / 2,
    });
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
}

/// (median, p90) in µs of every store case on `store`, printed as they come.
fn time_store(store: &dyn UserStore, n: u64, label: &str) -> Result<Vec<(f64, f64)>, String> {
    let rt = runtime()?;
    let mut rows = Vec::new();
    // `USER_LIST_ONLY=<text>`: only the store cases whose name holds it (a profile of one).
    let only = std::env::var("USER_LIST_ONLY").ok();
    for case in cases() {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let (median, p90, last) =
            measure(Duration::from_secs(1), || call_case(store, n, &case, &rt))?;
        eprintln!(
            "  {label} {n:>8} {:<40} {median:>10.1} {p90:>10.1} µs  ({last})",
            case.name
        );
        rows.push((median, p90));
    }
    Ok(rows)
}

/// (median, p90) in µs of every page case, through a server on the loaded store.
fn time_pages(servers: &[(u64, &pages::Server)], label: &str) -> Result<Vec<Rows>, String> {
    let clients = servers
        .iter()
        .map(|(_, s)| s.staff_client())
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = vec![Vec::new(); servers.len()];
    for case in pages::cases() {
        let path = pages::page_path(&case);
        let mut bytes = Vec::new();
        for client in &clients {
            bytes.push(client.check(&case)?);
            for _ in 0..3 {
                client.get(&path)?;
            }
        }
        let mut samples = vec![Vec::new(); servers.len()];
        for round in 0..PAGE_ROUNDS {
            for k in 0..clients.len() {
                // Sizes in turn, the first one alternating from round to round.
                let i = if round % 2 == 0 {
                    k
                } else {
                    clients.len() - 1 - k
                };
                let started = Instant::now();
                while started.elapsed() < Duration::from_millis(200) {
                    let t = Instant::now();
                    let (status, _) = clients[i].get(&path)?;
                    if status != 200 {
                        return Err(format!("GET {path} answered {status}"));
                    }
                    samples[i].push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        for (i, mut taken) in samples.into_iter().enumerate() {
            taken.sort_by(f64::total_cmp);
            let at = |q: f64| taken[((taken.len() - 1) as f64 * q) as usize];
            let (median, p90) = (at(0.5), at(0.9));
            eprintln!(
                "  {label} page {:>8} {:<40} {median:>10.1} {p90:>10.1} µs  ({} bytes, {} calls)",
                servers[i].0,
                case.name,
                bytes[i],
                taken.len()
            );
            rows[i].push((median, p90));
        }
    }
    Ok(rows)
}

/// Each case once with `auto_explain` on: the plans, in a file; the cases whose plan reads
/// the users table sequentially, by name.
fn plans(cluster: &pg::Cluster, url: &str, n: u64) -> Result<Vec<String>, String> {
    cluster.log_plans(true)?;
    let result = (|| {
        // A pool of its own: its statements are the cases' alone.
        let store = PgStore::open(url, pg::options(false)).map_err(|e| e.to_string())?;
        let rt = runtime()?;
        for case in cases() {
            cluster.mark(case.name)?;
            call_case(&store, n, &case, &rt)?;
        }
        cluster.mark("end")
    })();
    cluster.log_plans(false)?;
    result?;
    let all = pg::plans_by_case(&cluster.log())?;
    let ours = &all[all.len().saturating_sub(cases().len() + 1)..];
    let file = std::env::temp_dir().join(format!("user_list-plans-{n}.txt"));
    let mut text = String::new();
    let mut sequential = Vec::new();
    for (name, plan) in ours.iter().filter(|(name, _)| name != "end") {
        text.push_str(&format!("== {name}\n{plan}\n"));
        if plan.contains("Seq Scan on users") {
            sequential.push(name.clone());
        }
    }
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    eprintln!("  plans at {n}: {}", file.display());
    Ok(sequential)
}

struct Args {
    postgres: bool,
    pages: bool,
    plans: bool,
    reindex: bool,
    sizes: Vec<u64>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        postgres: false,
        pages: false,
        plans: false,
        reindex: false,
        sizes: Vec::new(),
    };
    // `cargo bench` appends `--bench` to a harness-less bench's arguments.
    for arg in std::env::args().skip(1).filter(|a| a != "--bench") {
        match arg.as_str() {
            "--pg" => a.postgres = true,
            "--pages" => a.pages = true,
            "--plans" => a.plans = true,
            "--reindex" => a.reindex = true,
            size => a.sizes.push(size.replace('_', "").parse().map_err(|e| {
                format!("{size}: {e} (usage: [--pg] [--plans] [--pages] [--reindex] SIZES...)")
            })?),
        }
    }
    if a.sizes.is_empty() {
        a.sizes = vec![1_000, 100_000];
    }
    if a.plans && !a.postgres {
        return Err("--plans needs --pg".into());
    }
    if a.reindex && a.postgres {
        return Err("--reindex is sled's".into());
    }
    Ok(a)
}

/// This process's CPU time so far (user + system, every thread: sled's too), in seconds;
/// 0 where /proc is not there. Beside the wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The bytes of the files under `dir`, in MiB.
fn disk_mib(dir: &std::path::Path) -> Result<f64, String> {
    let mut bytes = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            let meta = entry.metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    Ok(bytes as f64 / (1024.0 * 1024.0))
}

/// Rounds of each page per size (`--pages`), 0.2 s each, sizes alternating.
const PAGE_ROUNDS: usize = 10;

/// A size's server for the page cases, with what must outlive it (the temp dir of its data).
type Served = (pages::Server, tempfile::TempDir);
/// Median and p90 of each case, in microseconds, in the order of the cases.
type Rows = Vec<(f64, f64)>;

/// The rows of one size: the store cases; and with `--pages` its server, started on the same
/// data, for `time_pages`.
fn one_size(
    a: &Args,
    cluster: Option<&pg::Cluster>,
    n: u64,
) -> Result<(Rows, Option<Served>), String> {
    let label = if a.postgres { "postgres" } else { "sled" };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rows;
    let t = Instant::now();
    match cluster {
        None => {
            // A kept store (`USER_LIST_SLED_DIR`) or one in the temp dir.
            let kept = std::env::var_os("USER_LIST_SLED_DIR")
                .map(|d| std::path::PathBuf::from(d).join(n.to_string()));
            let data = kept.clone().unwrap_or_else(|| dir.path().to_path_buf());
            let reuse = kept.is_some() && data.join("loaded").exists();
            if kept.is_some() && !reuse && data.exists() {
                // A load that did not finish: started again.
                std::fs::remove_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            }
            let cpu = cpu_seconds();
            let mut store =
                SledStore::open(&data.join("db"), 64 << 20).map_err(|e| e.to_string())?;
            if reuse {
                eprintln!(
                    "{n} users reused from {}, opened in {:.1} s (CPU {:.1} s)",
                    data.display(),
                    t.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu
                );
            } else {
                load(&store, n)?;
                eprintln!(
                    "{n} users loaded in {:.1} s (CPU {:.1} s)",
                    t.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu
                );
            }
            eprintln!("  store on disk: {:.1} MiB", disk_mib(&data)?);
            for (part, keys, bytes) in store.user_index_sizes().map_err(|e| e.to_string())? {
                eprintln!(
                    "  live {part}: {keys} keys, {:.1} MiB",
                    bytes as f64 / (1024.0 * 1024.0)
                );
            }
            if a.reindex {
                let (t, cpu) = (Instant::now(), cpu_seconds());
                store.rebuild_user_index().map_err(|e| e.to_string())?;
                eprintln!(
                    "  users list index rebuilt in {:.1} s (CPU {:.1} s); store on disk: {:.1} MiB",
                    t.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu,
                    disk_mib(dir.path())?
                );
            }
            rows = time_store(&store, n, label)?;
            // The server takes the store's lock: closed (and flushed) first.
            drop(store);
            if kept.is_some() && !reuse {
                std::fs::write(data.join("loaded"), b"")
                    .map_err(|e| format!("{}: {e}", data.display()))?;
            }
            if a.pages {
                let server = pages::Server::start_on(&data, None, reuse)?;
                return Ok((rows, Some((server, dir))));
            }
        }
        Some(cluster) => {
            let db = format!("users_{n}");
            let (url, loaded) = cluster.database(&db)?;
            let store = PgStore::open(&url, pg::options(false)).map_err(|e| e.to_string())?;
            if !loaded {
                load_sql(cluster, &db, &store, n)?;
            }
            cluster.analyze(&db)?;
            cluster.loaded(&db)?;
            let how = if loaded { "reused (kept)" } else { "loaded" };
            eprintln!("{n} users {how} in {:.1} s", t.elapsed().as_secs_f64());
            rows = time_store(&store, n, label)?;
            if a.plans {
                let sequential = plans(cluster, &url, n)?;
                eprintln!("  sequential scans of users at {n}: {sequential:?}");
            }
            if a.pages {
                let server = pages::Server::start(dir.path(), Some(&url))?;
                return Ok((rows, Some((server, dir))));
            }
        }
    }
    Ok((rows, None))
}

fn run() -> Result<(), String> {
    let a = args()?;
    let cluster = if a.postgres {
        Some(pg::Cluster::start(a.plans)?)
    } else {
        None
    };
    let mut results = Vec::new();
    let mut servers = Vec::new();
    for &n in &a.sizes {
        let (rows, served) = one_size(&a, cluster.as_ref(), n)?;
        results.push(rows);
        servers.extend(served.map(|(server, dir)| (n, server, dir)));
    }
    if a.pages {
        let label = if a.postgres { "postgres" } else { "sled" };
        let sized: Vec<_> = servers.iter().map(|(n, s, _)| (*n, s)).collect();
        for (rows, page_rows) in results.iter_mut().zip(time_pages(&sized, label)?) {
            rows.extend(page_rows);
        }
    }
    let (first, last) = (&results[0], &results[results.len() - 1]);
    let (small, large) = (a.sizes[0], a.sizes[a.sizes.len() - 1]);
    println!(
        "| {} | {small} users median (p90) µs | {large} users median (p90) µs | ratio |",
        if a.postgres { "postgres" } else { "sled" }
    );
    println!("|---|---:|---:|---:|");
    let names = cases()
        .iter()
        .map(|c| c.name.to_string())
        .chain(
            pages::cases()
                .iter()
                .map(|c| format!("page: {}", pages::page_path(c))),
        )
        .collect::<Vec<_>>();
    for (i, name) in names.iter().enumerate().take(first.len()) {
        println!(
            "| {name} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} |",
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
