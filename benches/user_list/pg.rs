//! The users-list bench's PostgreSQL: a throwaway cluster (initdb in a temp dir, as the
//! `postgres` user when root, a free loopback port, fsync off: the bench only reads what it
//! loaded), a database per size, and the plans of the bench's queries (`auto_explain`).
//! With `USER_LIST_PG_DIR=<dir>` the cluster lives in `<dir>` and stays: a later run starts
//! it again and reuses each size's database once its load completed (migrated on open, as
//! the store does), so the 1M load (~40 min here) is paid once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming a kept cluster's directory.
pub const KEEP_DIR: &str = "USER_LIST_PG_DIR";
/// The comment a kept database carries once its load completed.
const LOADED: &str = "gatehouse bench: loaded";

/// Where the cluster lives: a temp dir gone with the bench, or a kept one.
enum Dir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Kept(p) => p,
        }
    }
}

pub struct Cluster {
    pub port: u16,
    dir: Dir,
    bin: PathBuf,
    child: Child,
}

/// The newest installed PostgreSQL's programs.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (/usr/lib/postgresql: {e})"))?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "PostgreSQL is not installed: apt-get install postgresql".to_string())
}

/// The postgres user's uid and gid when we are root (initdb refuses to run as root).
fn server_ids() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: a valid C string; the result is read at once, before another getpwnam.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("running as root without a `postgres` user to run PostgreSQL as".into());
    }
    // SAFETY: checked non-null above.
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = ids {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After setuid (which clears it): the server goes with the bench.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
}

/// A new cluster's data dir.
fn initdb(bin: &Path, data: &Path, ids: Option<(u32, u32)>) -> Result<(), String> {
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        .args(["--locale=C.UTF-8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_server_user(&mut initdb, ids);
    let out = initdb.output().map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Cluster {
    /// initdb in a temp dir (or `USER_LIST_PG_DIR`, unless it holds a cluster already), then
    /// the postmaster on a free port; returns once it answers.
    /// `plans`: with `auto_explain` loaded (off until `log_plans`).
    pub fn start(plans: bool) -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let ids = server_ids()?;
        let dir = match std::env::var_os(KEEP_DIR) {
            Some(kept) => {
                let kept = PathBuf::from(kept);
                std::fs::create_dir_all(&kept)
                    .map_err(|e| format!("{KEEP_DIR} {}: {e}", kept.display()))?;
                Dir::Kept(kept)
            }
            None => Dir::Temp(
                tempfile::Builder::new()
                    .prefix("gatehouse-bench-pg-")
                    .tempdir()
                    .map_err(|e| e.to_string())?,
            ),
        };
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        if !data.join("PG_VERSION").exists() {
            initdb(&bin, &data, ids)?;
        }
        Self::serve(bin, dir, &data, ids, plans)
    }

    fn serve(
        bin: PathBuf,
        dir: Dir,
        data: &Path,
        ids: Option<(u32, u32)>,
        plans: bool,
    ) -> Result<Cluster, String> {
        let port = free_port()?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            // The bench reads what it loaded: durability only slows the load.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_wal_size=4GB"])
            // A cache that holds the data, as a server sized for it would have (the table and
            // indexes at 1M are ~1 GB; PostgreSQL's guidance is a quarter of the RAM, here
            // 6 GB): with 256 MB, pages at 1M read their rows' heap pages from the OS cache
            // and 1k does not, which measures the cache's size, not the list's plans.
            // `USER_LIST_PG_SHARED_BUFFERS` sets another.
            .args([
                "-c".to_string(),
                format!(
                    "shared_buffers={}",
                    std::env::var("USER_LIST_PG_SHARED_BUFFERS").unwrap_or_else(|_| "2GB".into())
                ),
            ])
            .args(if plans {
                &["-c", "shared_preload_libraries=auto_explain"][..]
            } else {
                &[]
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        as_server_user(&mut cmd, ids);
        let child = cmd.spawn().map_err(|e| format!("postgres: {e}"))?;
        let cluster = Cluster {
            port,
            dir,
            bin,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.psql("postgres", "SELECT 1").is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "PostgreSQL did not start: {}",
                    std::fs::read_to_string(cluster.log()).map_err(|e| e.to_string())?
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through psql on `db`: its output, or its error text.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-X", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The database `name`, migrated by the store's own `migrate`: its URL, and whether it
    /// holds a completed load (a kept cluster's database marked `loaded` before). A kept
    /// database whose load did not complete is dropped and made again.
    pub fn database(&self, name: &str) -> Result<(String, bool), String> {
        let comment = self.psql(
            "postgres",
            &format!(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') \
                 FROM pg_database WHERE datname = '{name}'"
            ),
        )?;
        let reuse = matches!(self.dir, Dir::Kept(_)) && comment == LOADED;
        if !reuse {
            self.psql("postgres", &format!("DROP DATABASE IF EXISTS {name}"))?;
            self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        }
        let url = self.url(name);
        let store = gatehouse::store::PgStore::open(&url, options(false))
            .map_err(|e| format!("{url}: {e}"))?;
        store.migrate().map_err(|e| format!("migrate: {e}"))?;
        Ok((url, reuse))
    }

    /// Marks `name`'s load complete: a kept cluster's next run reuses it.
    pub fn loaded(&self, name: &str) -> Result<(), String> {
        self.psql(
            "postgres",
            &format!("COMMENT ON DATABASE {name} IS '{LOADED}'"),
        )
        .map(drop)
    }

    /// Fresh statistics after the bulk load, as autovacuum would gather them shortly.
    pub fn analyze(&self, db: &str) -> Result<(), String> {
        self.psql(db, "VACUUM ANALYZE").map(drop)
    }

    /// From now on every statement logs its executed plan (`auto_explain`, with actual rows
    /// and buffers; the cluster started with `plans`); `false` turns it off again.
    pub fn log_plans(&self, on: bool) -> Result<(), String> {
        let sql: &[&str] = if on {
            &[
                "ALTER SYSTEM SET auto_explain.log_min_duration = 0",
                "ALTER SYSTEM SET auto_explain.log_analyze = on",
                "ALTER SYSTEM SET auto_explain.log_buffers = on",
            ]
        } else {
            &["ALTER SYSTEM RESET ALL"]
        };
        for s in sql {
            self.psql("postgres", s)?;
        }
        self.psql("postgres", "SELECT pg_reload_conf()").map(drop)
    }

    /// Writes `text` into the server log (a marker between the plans of two cases).
    pub fn mark(&self, text: &str) -> Result<(), String> {
        let quoted = text.replace('\'', "''");
        self.psql(
            "postgres",
            &format!("DO $$ BEGIN RAISE LOG 'bench case: %', '{quoted}'; END $$"),
        )
        .map(drop)
    }
}

const MARK_LOG: &str = "LOG:  bench case: ";

/// The plans the log holds after each `mark`ed case: (case, plan text).
pub fn plans_by_case(log: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        // The log line of the marker (its statement may be logged too, and holds the words).
        if let Some(i) = line.find(MARK_LOG) {
            out.push((line[i + MARK_LOG.len()..].to_string(), String::new()));
        } else if let Some((_, plan)) = out.last_mut() {
            if line.contains("inline_code_block") || line.contains("RAISE LOG") {
                continue;
            }
            plan.push_str(line);
            plan.push('\n');
        }
    }
    Ok(out)
}

pub fn options(check_schema: bool) -> gatehouse::store::PgOptions {
    gatehouse::store::PgOptions {
        pool_size: 8,
        freshness: Duration::from_millis(500),
        check_schema,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started (immediate shutdown).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}
