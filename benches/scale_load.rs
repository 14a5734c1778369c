//! The scale run's bulk loader (bench only): N users in a fresh gatehouse data directory, the
//! way `gatehouse serve` would find them after N registrations.
//!
//! ```sh
//! cargo bench --bench scale_load -- DATA_DIR N [TOKENS_FILE TOKENS]
//! ```
//!
//! - The store is opened with `gatehouse::app::open_store`, so it lands in `DATA_DIR/db` with
//!   the configured page cache, exactly where and how the server opens it. The config is the
//!   server's: the file named by `GATEHOUSE_CONFIG` if set (its `data_dir` replaced by
//!   `DATA_DIR`), else the defaults, with the usual `GATEHOUSE_<SECTION>_<KEY>` overrides.
//! - Users `user0000001`..`userNNNNNNN` (ids 1..=N, email `user0000001@example.com`), then one
//!   staff user `admin` (id N+1, `admin@example.com`). Every one has the SAME argon2id PHC hash
//!   of one password (`SCALE_PASSWORD`, default `Scale-Pass-2026!`), computed once by the
//!   library's own hasher (`Passwords::hash_blocking`) with the configured parameters, so a
//!   login costs what a real one does.
//! - Written with `UserStore::insert_users` in batches of 10,000 (one transaction per user,
//!   one flush per batch). Ids are dense and start at 1, and each insert moves the id counter
//!   and the active-user counter as a registration does, so the store is left exactly as N+1
//!   registrations would leave it (the admin list's id-range paging relies on that; checked
//!   at the end).
//! - With `TOKENS_FILE TOKENS`: also writes TOKENS access tokens, one per line, for users
//!   drawn uniformly from 1..=N, signed with the data directory's key through
//!   `App::issue_pair` (for measuring the profile endpoint across the whole store rather
//!   than one cached user). The server must then use the same secret: the generated
//!   `DATA_DIR/jwt_secret`, or the same `GATEHOUSE_JWT_SECRET`.
//!
//! Prints users/s. The scale run (`benches/scale/run.sh`) uses it; results in
//! `benches/README.md`.

#[path = "scale/users.rs"]
mod scale_users;

use gatehouse::app::App;
use gatehouse::config::Config;
use gatehouse::store::{StateFilter, User, UserStore};
use rand::Rng;
use scale_users::scale_user;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const BATCH: u64 = 10_000;
const DEFAULT_PASSWORD: &str = "Scale-Pass-2026!";
const USAGE: &str = "usage: scale_load DATA_DIR N [TOKENS_FILE TOKENS]";

struct Args {
    data_dir: PathBuf,
    users: u64,
    tokens: Option<(PathBuf, u64)>,
}

fn parse_args() -> Result<Args, String> {
    // `cargo bench` appends `--bench` to a harness-less bench's arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number = |s: &str, what: &str| {
        s.replace('_', "")
            .parse::<u64>()
            .map_err(|e| format!("{what} {s:?}: {e}\n{USAGE}"))
    };
    match args.as_slice() {
        [dir, n] => Ok(Args {
            data_dir: PathBuf::from(dir),
            users: number(n, "N")?,
            tokens: None,
        }),
        [dir, n, file, t] => Ok(Args {
            data_dir: PathBuf::from(dir),
            users: number(n, "N")?,
            tokens: Some((PathBuf::from(file), number(t, "TOKENS")?)),
        }),
        _ => Err(USAGE.to_string()),
    }
}

/// The server's config: `GATEHOUSE_CONFIG`'s file if set, else the defaults; environment
/// overrides applied and validated by the library, as `gatehouse serve` does.
fn config(data_dir: PathBuf) -> Result<Config, String> {
    let mut config = match std::env::var_os("GATEHOUSE_CONFIG") {
        Some(_) => Config::load(None),
        None => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            Config::from_toml_and_env("", "(defaults)", &env)
        }
    }
    .map_err(|e| e.to_string())?;
    config.server.data_dir = data_dir;
    Ok(config)
}

fn run(args: Args) -> Result<(), String> {
    let config = config(args.data_dir.clone())?;
    let app = App::open(config)?;
    let store: &dyn UserStore = app.store.as_ref();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let existing = runtime
        .block_on(store.count_users(&StateFilter::All))
        .map_err(|e| e.to_string())?;
    if existing != 0 {
        return Err(format!(
            "{} already holds {existing} users: give a fresh data directory",
            args.data_dir.display()
        ));
    }
    let password = std::env::var("SCALE_PASSWORD").unwrap_or_else(|_| DEFAULT_PASSWORD.into());
    let started = Instant::now();
    let hash = app
        .passwords
        .hash_blocking(&password)
        .map_err(|e| e.to_string())?;
    if !hash.starts_with("$argon2id$") {
        return Err(format!("the password hasher returned {hash:?}"));
    }
    eprintln!(
        "one argon2id hash ({}) in {:.1} ms",
        hash.split('$').nth(3).unwrap_or("?"),
        started.elapsed().as_secs_f64() * 1e3
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let total = args.users + 1;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut next = 1;
    while next <= total {
        let end = (next + BATCH).min(total + 1);
        let batch: Vec<User> = (next..end)
            .map(|id| scale_user(id, total, &hash, now))
            .collect();
        let results = runtime
            .block_on(store.insert_users(batch))
            .map_err(|e| format!("insert_users at id {next}: {e}"))?;
        for (offset, result) in results.into_iter().enumerate() {
            result.map_err(|e| format!("user id {}: {e}", next + offset as u64))?;
        }
        next = end;
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            let done = next - 1;
            eprintln!(
                "  {done} users, {:.0} users/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    // Left as registrations leave it: dense ids 1..=total, counters matching.
    let count = runtime
        .block_on(store.count_users(&StateFilter::All))
        .map_err(|e| e.to_string())?;
    let active = runtime
        .block_on(store.count_users(&StateFilter::Active))
        .map_err(|e| e.to_string())?;
    if count as u64 != total || active as u64 != total {
        return Err(format!(
            "after loading: {count} users ({active} active), expected {total}"
        ));
    }
    let admin = runtime
        .block_on(store.find_by_username("admin"))
        .map_err(|e| e.to_string())?
        .filter(|u| u.id == total && u.is_staff)
        .ok_or("the staff user is missing after loading")?;
    println!(
        "loaded {total} users ({} + staff user {:?}, id {}) in {seconds:.1} s: {:.0} users/s",
        args.users,
        admin.username,
        admin.id,
        total as f64 / seconds
    );

    if let Some((file, n)) = args.tokens {
        if args.users == 0 {
            return Err("no users to issue tokens for".into());
        }
        let started = Instant::now();
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&file)
                .map_err(|e| format!("cannot create {}: {e}", file.display()))?,
        );
        let mut rng = rand::thread_rng();
        for _ in 0..n {
            let id = rng.gen_range(1..=args.users);
            let u = runtime
                .block_on(store.get_user(id))
                .map_err(|e| e.to_string())?
                .ok_or(format!("user {id} is missing"))?;
            let (access, _refresh) = app.issue_pair(&u).map_err(|e| e.to_string())?;
            writeln!(out, "{access}").map_err(|e| format!("{}: {e}", file.display()))?;
        }
        out.flush()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        println!(
            "{n} access tokens of random users in {} ({:.1} s)",
            file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scale_load: {message}");
            ExitCode::FAILURE
        }
    }
}
