//! The users-list bench's page mode: the real `gatehouse serve` on the loaded store, a staff
//! user's browser session (cookie), and GET `/admin/users/?...` timed for the list, a search
//! and each filter, each page first checked to show the users its filter selects.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The staff user the bench signs in as (created by `gatehouse createsuperuser`).
const STAFF: &str = "benchstaff";
const STAFF_PASSWORD: &str = "Bench-Staff-Pass-2026!";
/// The console's users page.
const USERS: &str = "/admin/users/";

/// One timed page: its query string, a username its page must show (any of them: the first
/// page at 1k and at 1M differ), and one it must not (the filter is applied). The data is
/// `user_list.rs`'s `vary`: user 1 is active, verified, in no group, without a second factor.
pub struct PageCase {
    pub name: &'static str,
    pub query: &'static str,
    pub shows: &'static [&'static str],
    pub hides: Option<&'static str>,
}

/// The cases, in the parameters of the console's users page (`src/console/users.rs`,
/// `parse_list`: `q`, `state`, `staff`, `group`, `mfa`, `verified`, `sort`, `order`).
pub fn cases() -> Vec<PageCase> {
    let case = |name, query, shows, hides| PageCase {
        name,
        query,
        shows,
        hides,
    };
    const FIRST: Option<&str> = Some("user0000001@");
    vec![
        case("list", "", &["user0000001@"][..], None),
        case("list, username", "sort=username", &["admin@"], None),
        case(
            "list, date joined desc",
            "sort=date_joined&order=desc",
            &[],
            None,
        ),
        case(
            "filter deleted (1 %)",
            "state=deleted",
            &["user0000100@", "user0000013@"],
            FIRST,
        ),
        case(
            "filter staff (0.02 %)",
            "staff=yes",
            &["user0005000@", "user0000017@"],
            FIRST,
        ),
        case(
            "filter group ops (10 %)",
            "group=ops",
            &["user0000010@"],
            FIRST,
        ),
        case(
            "filter mfa on (0.2 %)",
            "mfa=on",
            &["user0000500@", "user0000011@"],
            FIRST,
        ),
        case(
            "filter mfa on, last login desc",
            "mfa=on&sort=last_login&order=desc",
            &[],
            FIRST,
        ),
        case(
            "filter unverified (14 %)",
            "verified=no",
            &["user0000007@"],
            FIRST,
        ),
        case(
            "search \"user00001\" (prefix, many)",
            "q=user00001",
            &["user0000100@"],
            FIRST,
        ),
        case(
            "search \"zoë\" (first name, 20 %)",
            "q=zo%C3%AB",
            &["user0000005@"],
            FIRST,
        ),
        case("search \"admin\" (one user)", "q=admin", &["admin@"], FIRST),
    ]
}

/// `gatehouse serve` on a data dir (sled) or a database (PostgreSQL), stopped when dropped.
pub struct Server {
    child: Child,
    base: String,
    _work: tempfile::TempDir,
}

fn config(work: &Path, data_dir: &Path, backend: &str, port: u16, metrics: u16) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{metrics}"
data_dir = "{data}"
threads = 1
pid_file = "{work}/gatehouse.pid"
upgrade_sock = "{work}/upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[store]
backend = "{backend}"
[web]
enabled = true
cookie_secure = false
[console]
require_mfa = false
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/svc/"
upstreams = ["127.0.0.1:9"]
"#,
        data = data_dir.display(),
        work = work.display(),
    )
}

impl Server {
    /// Creates the staff user and starts serving `data_dir` (sled: its store in `db/`,
    /// closed by the caller) or `store_url` (PostgreSQL); returns once it is ready.
    pub fn start(data_dir: &Path, store_url: Option<&str>) -> Result<Server, String> {
        Server::start_on(data_dir, store_url, false)
    }

    /// `start`, on a store whose staff user an earlier run created when `staff_exists`
    /// (`USER_LIST_SLED_DIR`): its `createsuperuser` then fails and is not needed.
    pub fn start_on(
        data_dir: &Path,
        store_url: Option<&str>,
        staff_exists: bool,
    ) -> Result<Server, String> {
        let bin = env!("CARGO_BIN_EXE_gatehouse");
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (port, metrics) = (super::pg::free_port()?, super::pg::free_port()?);
        let backend = if store_url.is_some() {
            "postgres"
        } else {
            "sled"
        };
        let conf = work.path().join("gatehouse.toml");
        std::fs::write(&conf, config(work.path(), data_dir, backend, port, metrics))
            .map_err(|e| e.to_string())?;
        let command = |args: &[&str]| {
            let mut c = Command::new(bin);
            c.args(args).arg("-c").arg(&conf);
            if let Some(url) = store_url {
                c.env("GATEHOUSE_STORE_URL", url);
            }
            c
        };
        let out = command(&["createsuperuser", "--noinput"])
            .args(["--username", STAFF, "--email", "benchstaff@example.com"])
            .env("GATEHOUSE_SUPERUSER_PASSWORD", STAFF_PASSWORD)
            .output()
            .map_err(|e| format!("{bin} createsuperuser: {e}"))?;
        // A kept store (`USER_LIST_SLED_DIR`, `USER_LIST_PG_DIR`) holds the staff user of a
        // run before, with the same password.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !staff_exists && !stderr.contains("already exists") {
            return Err(format!("createsuperuser: {}", stderr.trim()));
        }
        let log =
            std::fs::File::create(work.path().join("gatehouse.log")).map_err(|e| e.to_string())?;
        let child = command(&["serve"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{bin} serve: {e}"))?;
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _work: work,
        };
        let ready = format!("http://127.0.0.1:{metrics}/readyz");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = reqwest::blocking::get(&ready).map(|r| r.status().as_u16());
            if matches!(answer, Ok(200)) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("gatehouse did not get ready: {}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._work.path().join("gatehouse.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Signs the staff user in (`POST /api/auth/session/`, as a single-page app would): a
    /// client that sends the session's cookies, checked against the console's home.
    pub fn staff_client(&self) -> Result<Client, String> {
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let r = http
            .post(format!("{}/api/auth/session/", self.base))
            .json(&serde_json::json!({"username": STAFF, "password": STAFF_PASSWORD}))
            .send()
            .map_err(|e| format!("sign-in: {e}"))?;
        if r.status().as_u16() != 200 {
            return Err(format!("sign-in answered {}", r.status()));
        }
        let cookie = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect::<Vec<_>>()
            .join("; ");
        let client = Client {
            http,
            base: self.base.clone(),
            cookie,
        };
        let (status, _) = client.get("/admin/")?;
        if status != 200 {
            return Err(format!(
                "the console's home answers the staff session {status}"
            ));
        }
        Ok(client)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-in staff browser, without the browser.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    cookie: String,
}

impl Client {
    /// GET `path`: status and body (read whole: the time to the last byte).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .map_err(|e| format!("GET {path}: {e}"))?;
        let mut body = String::new();
        r.read_to_string(&mut body)
            .map_err(|e| format!("GET {path}: {e}"))?;
        Ok((r.status().as_u16(), body))
    }

    /// The page of `case`, checked: 200, showing what its filter selects and not user 1.
    pub fn check(&self, case: &PageCase) -> Result<usize, String> {
        let path = page_path(case);
        let (status, body) = self.get(&path)?;
        if status != 200 {
            return Err(format!(
                "GET {path} answered {status}: is the users page merged?"
            ));
        }
        if !case.shows.is_empty() && !case.shows.iter().any(|s| body.contains(s)) {
            return Err(format!(
                "GET {path} shows none of {:?}: are the page's parameter names right?",
                case.shows
            ));
        }
        if let Some(hidden) = case.hides {
            if body.contains(hidden) {
                return Err(format!(
                    "GET {path} shows {hidden:?}, which its filter excludes: are the page's \
                     parameter names right?"
                ));
            }
        }
        Ok(body.len())
    }
}

pub fn page_path(case: &PageCase) -> String {
    if case.query.is_empty() {
        USERS.to_string()
    } else {
        format!("{USERS}?{}", case.query)
    }
}
