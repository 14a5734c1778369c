//! A throwaway PostgreSQL cluster for the tests: initdb in a temp dir (as the `postgres` user
//! when running as root), a free loopback port, fsync off, its socket in the temp dir; one for
//! the test binary (`cluster()`), started on first use and stopped when the binary exits. Each
//! test takes a fresh database of its own (`database()`), migrated by the real `gatehouse
//! migrate` path. A test that changes the server itself (stops it, turns TLS on) takes a
//! cluster of its own instead (`Cluster::private()`), so that the tests running beside it on
//! the shared one never see the change. Without PostgreSQL installed, the tests fail saying how
//! to get it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    /// The postmaster, to stop it (tests that take the database away and give it back).
    child: Mutex<Option<Child>>,
    /// uid/gid the server runs as (the postgres user when we are root).
    ids: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory of the newest installed PostgreSQL's programs.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((v, bin)) if v >= 15 => bin,
        Some((v, _)) => panic!("PostgreSQL {v} found, 15 or later needed: apt-get install postgresql"),
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
        ),
    }
}

/// The postgres user's uid and gid when we are root (initdb refuses to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: a valid C string; the result is read at once, before another getpwnam.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, but there is no `postgres` user to run PostgreSQL as: apt-get install postgresql"
    );
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some((uid, gid))
}

fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>, die_with_parent: bool) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = ids {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if die_with_parent {
                // After setuid (which clears it): the server goes when the test binary does.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            }
            Ok(())
        });
    }
}

/// Where clusters keep their files: a tmpfs (/dev/shm) when it has room, else the temp dir.
/// Every CREATE DATABASE copies the template's ~1000 files, and removing a cluster that served
/// a whole test binary (a hundred databases) took 30 s and more on a disk at exit; in memory
/// it takes well under a second. With fsync off either way, nothing else changes.
fn files_dir() -> PathBuf {
    const ROOM: u64 = 4 << 30;
    let shm = Path::new("/dev/shm");
    let path = std::ffi::CString::new("/dev/shm").expect("no NUL");
    // SAFETY: a zeroed statvfs is a valid out-parameter; the path is a C string.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut st) == 0)
            .then(|| st.f_bavail as u64 * st.f_frsize as u64)
    };
    if free.is_some_and(|f| f >= ROOM) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

extern "C" fn stop_at_exit() {
    if let Some(c) = CLUSTER.get() {
        if let Ok(mut child) = c.child.lock() {
            if let Some(child) = child.as_mut() {
                // SAFETY: signalling a child we started.
                unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

/// The cluster of this test binary, shared by its tests, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::init();
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_at_exit) };
        cluster
    })
}

impl Cluster {
    /// A cluster for one test alone (stopped and removed when dropped): for a test that stops
    /// the server or changes its settings, which the tests sharing `cluster()` must not see.
    pub fn private() -> Cluster {
        Cluster::init()
    }

    /// initdb in a new temp dir, then the postmaster on a free port.
    fn init() -> Cluster {
        let bin = bin_dir();
        let ids = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir_in(files_dir())
            .expect("tempdir")
            .keep();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster dir");
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D", data.to_str().expect("utf-8 path")])
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C.UTF-8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_server_user(&mut initdb, ids, false);
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::process::free_port();
        let cluster = Cluster {
            port,
            dir,
            bin,
            child: Mutex::new(None),
            ids,
        };
        cluster.start();
        cluster
    }

    /// Starts the postmaster (again) on the same port and data, and waits until it answers.
    pub fn start(&self) {
        let data = self.dir.join("data");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        if let Some((uid, gid)) = self.ids {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(uid), Some(gid));
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.args(["-D", data.to_str().expect("utf-8 path")])
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.dir.display()),
            ])
            // fsync off loses data only to an OS crash; commits still reach the WAL, so a
            // stopped and restarted server keeps every acknowledged write.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        as_server_user(&mut cmd, self.ids, true);
        // PDEATHSIG follows the thread that forked: fork from one that lives as long as the
        // test binary.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        });
        let child = rx.recv().expect("spawner thread").expect("start postgres");
        *self.child.lock().expect("lock") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.psql("postgres", "SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the postmaster at once (`pg_ctl stop -m immediate` as a signal).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
        }
    }

    /// Runs SQL through psql on `db`; its output or its error text.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-d",
                db,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Turns TLS on with `cert` (server certificate and key, PEM) and makes every TCP
    /// connection to database `db` require it (`hostnossl ... reject` in pg_hba.conf); the
    /// other databases are as before. Returns once a new connection to `db` is encrypted.
    pub fn require_tls(&self, cert: &super::certs::Pair, db: &str) {
        let (crt, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        std::fs::copy(&cert.cert, &crt).expect("copy the server certificate");
        std::fs::copy(&cert.key, &key).expect("copy the server key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if let Some((uid, gid)) = self.ids {
            for f in [&crt, &key] {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).expect("chown");
            }
        }
        let hba = self.dir.join("data").join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(
            &hba,
            format!("hostnossl {db} all 127.0.0.1/32 reject\nhostssl {db} all 127.0.0.1/32 trust\n{old}"),
        )
        .expect("write pg_hba.conf");
        for sql in [
            "ALTER SYSTEM SET ssl = on".to_string(),
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            self.psql("postgres", &sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        // psql's default sslmode (prefer) takes TLS once the server offers it.
        let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        while self.psql(db, encrypted).as_deref() != Ok("t") {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not turn TLS on: {:?}\n{}",
                self.psql(db, encrypted),
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Cluster {
    /// A new empty database (no schema) on this cluster: its URL and name.
    pub fn empty_database(&self) -> (String, String) {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        (self.url(&name), name)
    }

    /// A new database with the schema applied on this cluster: its URL.
    pub fn database(&self) -> String {
        let (url, _) = self.empty_database();
        let store = gatehouse::store::PgStore::open(&url, options(false)).expect("connect");
        store.migrate().expect("migrate");
        url
    }
}

impl Drop for Cluster {
    /// A private cluster goes with its test (the shared one, a static, is stopped at exit).
    fn drop(&mut self) {
        // Not `stop()`: no panic here, which would abort a test that is already failing.
        let child = self.child.get_mut().map(Option::take);
        if let Ok(Some(mut child)) = child {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new empty database (no schema) on the test binary's cluster: its URL and name.
pub fn empty_database() -> (String, String) {
    cluster().empty_database()
}

/// A new database with the schema applied on the test binary's cluster: its URL.
pub fn database() -> String {
    cluster().database()
}

pub fn options(check_schema: bool) -> gatehouse::store::PgOptions {
    gatehouse::store::PgOptions {
        pool_size: 8,
        freshness: Duration::from_millis(500),
        check_schema,
    }
}

/// Two replicas (A, B) on one fresh migrated database, each `make` of a builder already on
/// it; A creates the staff user `root` (password `PASSWORD`) before it starts.
pub fn replicas(
    make: impl Fn(super::Builder) -> super::Builder,
) -> (super::Gatehouse, super::Gatehouse) {
    let url = database();
    let a = make(super::Gatehouse::new().postgres(&url))
        .superuser("root", "root@example.com", super::PASSWORD)
        .start();
    let b = make(super::Gatehouse::new().postgres(&url)).start();
    (a, b)
}

/// Where the cluster's files are (tests that read its log).
pub fn dir() -> &'static Path {
    &cluster().dir
}
