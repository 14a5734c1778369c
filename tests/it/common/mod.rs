//! The one test harness: the real `gatehouse` binary on loopback ports with its own sled
//! directory, configured from a typed `Config`, beside real upstream servers (`upstream.rs`);
//! every answer its clients (`client.rs`, `raw.rs`) read is checked for framing
//! (`framing.rs`).
//!
//! ```ignore
//! let up = Upstream::start();
//! let g = Gatehouse::new()
//!     .with_config(|c| c.routes = vec![public_route("/", &[up.addr])])
//!     .start();
//! g.get("/a", None).expect_status(200);
//! ```
// Each test file uses a part of the harness.
#![allow(dead_code, unused_imports)]

pub mod attacks;
pub mod axe;
pub mod bodies;
pub mod browser;
pub mod certs;
pub mod client;
pub mod django;
pub mod framing;
pub mod jwt;
pub mod nginx;
pub mod origin;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod raw;
pub mod smtp;
pub mod tls_client;
pub mod totp;
pub mod upstream;

pub use bodies::*;
pub use client::{id_of, Http, Resp};
pub use jwt::*;
pub use process::*;
pub use raw::Raw;

use framing::Listener;
use gatehouse::config::{AuthMode, Config, RouteConfig};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A route to `upstreams` as a config file with only `prefix` and `upstreams` gives it
/// (`auth = "required"`, the default timeouts); tweak the fields it returns.
pub fn route(prefix: &str, upstreams: &[SocketAddr]) -> RouteConfig {
    let mut table = toml::Table::new();
    table.insert("prefix".into(), prefix.into());
    let list = upstreams.iter().map(|a| a.to_string().into()).collect();
    table.insert("upstreams".into(), toml::Value::Array(list));
    toml::Value::Table(table)
        .try_into()
        .expect("a route with the file's defaults")
}

/// A route anyone may call, with or without a token.
pub fn public_route(prefix: &str, upstreams: &[SocketAddr]) -> RouteConfig {
    RouteConfig {
        auth: AuthMode::Public,
        ..route(prefix, upstreams)
    }
}

type FileEdit = Box<dyn FnOnce(&mut toml::Table)>;

/// What a scenario asks of its gatehouse, before it runs.
pub struct Builder {
    dir: tempfile::TempDir,
    config: Config,
    file_edits: Vec<FileEdit>,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    superusers: Vec<(String, String, String)>,
}

impl Builder {
    fn new() -> Builder {
        let dir = tempfile::tempdir().expect("tempdir");
        let [port, metrics_port] = free_ports();
        let in_dir = |name: &str| dir.path().join(name).display().to_string();
        let mut config = Config::default();
        let s = &mut config.server;
        s.listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        s.metrics_listen = SocketAddr::from(([127, 0, 0, 1], metrics_port));
        s.data_dir = dir.path().join("data");
        s.pid_file = in_dir("gatehouse.pid");
        s.upgrade_sock = in_dir("upgrade.sock");
        s.threads = 2;
        s.grace_period_seconds = 1;
        s.graceful_shutdown_timeout_seconds = 5;
        // Scenarios register and fail logins from one address far more than a person would;
        // the throttling scenarios set their own limits.
        let t = &mut config.throttle;
        t.registrations_per_address = 100_000;
        t.login_failures_per_address = 100_000;
        t.login_failures_per_username = 100_000;
        t.login_failures_per_username_address = 100_000;
        // Cheap hashing; the scenarios about hashing cost put `PasswordConfig::default()` back.
        config.passwords.argon2_memory_kib = 1024;
        config.passwords.argon2_iterations = 1;
        Builder {
            dir,
            config,
            file_edits: Vec::new(),
            env: Vec::new(),
            env_removed: Vec::new(),
            superusers: Vec::new(),
        }
    }

    /// Changes the config the server will read (the harness's settings are already in it).
    pub fn with_config(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self
    }

    /// An environment variable for the server and every CLI run (secrets, env overrides).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// An environment variable of the test process the server and the CLI runs must not
    /// inherit (the test binary's environment is shared by every test: never change it).
    pub fn without_env(mut self, k: &str) -> Self {
        self.env_removed.push(k.into());
        self
    }

    /// Serve from the PostgreSQL database at `url` (`postgres::database()` makes one);
    /// replicas of one database share it.
    pub fn postgres(self, url: &str) -> Self {
        self.with_config(|c| c.store.backend = gatehouse::config::StoreBackend::Postgres)
            .env(gatehouse::config::env::STORE_URL_VAR, url)
    }

    /// Adds the TLS listener (`server.tls_listen` on a free port) with this certificate.
    pub fn tls(self, cert: &certs::Pair) -> Self {
        let used = [
            self.config.server.listen.map(|a| a.port()),
            Some(self.config.server.metrics_listen.port()),
        ];
        let port = loop {
            let p = free_port();
            if !used.contains(&Some(p)) {
                break p;
            }
        };
        let (cert, key) = (cert.cert_str(), cert.key_str());
        self.with_config(move |c| {
            c.server.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
            c.server.tls_cert = cert;
            c.server.tls_key = key;
        })
    }

    /// Reuse an existing data directory (restart scenarios).
    pub fn data_dir(self, dir: &Path) -> Self {
        self.with_config(|c| c.server.data_dir = dir.to_path_buf())
    }

    /// Creates a staff user with `createsuperuser --noinput` before the server starts.
    pub fn superuser(mut self, username: &str, email: &str, password: &str) -> Self {
        self.superusers
            .push((username.into(), email.into(), password.into()));
        self
    }

    /// Edits the file as TOML after the config is written into it: only for scenarios about
    /// the file itself (unknown keys), which no `Config` can express.
    pub fn edit_file(mut self, edit: impl FnOnce(&mut toml::Table) + 'static) -> Self {
        self.file_edits.push(Box::new(edit));
        self
    }

    /// Writes the config file and creates the superusers; the server does not run yet.
    pub fn build(self) -> Gatehouse {
        let text = if self.file_edits.is_empty() {
            toml::to_string(&self.config).expect("the config serializes")
        } else {
            let mut file = toml::Table::try_from(&self.config).expect("the config serializes");
            for edit in self.file_edits {
                edit(&mut file);
            }
            toml::to_string(&file).expect("the edited file serializes")
        };
        let config_path = self.dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, text).expect("write config");
        let plain = self.config.server.listen;
        // A TLS-only server: the plain clients point at a port nothing listens on.
        let public = format!(
            "http://{}",
            plain.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        let ops = format!("http://{}", self.config.server.metrics_listen);
        let g = Gatehouse {
            http: Http::new(public.clone(), Listener::Public, true),
            fresh: Http::new(public, Listener::Public, false),
            ops: Http::new(ops, Listener::Ops, false),
            port: plain.map_or(0, |a| a.port()),
            tls_port: self.config.server.tls_listen.map(|a| a.port()),
            metrics_port: self.config.server.metrics_listen.port(),
            data_dir: self.config.server.data_dir.clone(),
            log_path: self.dir.path().join("gatehouse.log"),
            config: self.config,
            config_path,
            env: self.env,
            env_removed: self.env_removed,
            child: None,
            dir: self.dir,
        };
        for (u, e, p) in &self.superusers {
            let args = [
                "createsuperuser",
                "--noinput",
                "--username",
                u,
                "--email",
                e,
            ];
            g.cli(&args, &[("GATEHOUSE_SUPERUSER_PASSWORD", p)])
                .assert_ok("createsuperuser");
        }
        g
    }

    /// Writes the config and starts serving; returns once the public listener accepts.
    pub fn start(self) -> Gatehouse {
        let mut g = self.build();
        g.spawn();
        g
    }
}

/// A running (or stopped) gatehouse; derefs to the client of its public listener.
pub struct Gatehouse {
    /// The config as written to `config_path`.
    pub config: Config,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    /// The plain listener's port (0: none).
    pub port: u16,
    /// The TLS listener's port, when it has one.
    pub tls_port: Option<u16>,
    pub metrics_port: u16,
    pub log_path: PathBuf,
    http: Http,
    fresh: Http,
    ops: Http,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Gatehouse {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Gatehouse {
    /// The harness's entry point, as crates.io's `TestApp::init()`: a builder.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Builder {
        Builder::new()
    }

    /// The public listener's client, to move into threads.
    pub fn http(&self) -> Http {
        self.http.clone()
    }

    /// A client that opens a new connection for every request (no keep-alive pool).
    pub fn fresh(&self) -> Http {
        self.fresh.clone()
    }

    /// The metrics listener's client (/metrics, /healthz, /readyz).
    pub fn ops(&self) -> Http {
        self.ops.clone()
    }

    /// The directory holding the config file, the log, the pid file and the upgrade socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with this instance's config and environment, and nothing inherited.
    pub fn command(&self) -> Command {
        let mut cmd = clean_command();
        cmd.env("GATEHOUSE_CONFIG", &self.config_path);
        for k in &self.env_removed {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI subcommand against this instance's config (given 60 s).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> CliRun {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd, Duration::from_secs(60))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn gatehouse");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self
            .config
            .server
            .listen
            .or(self.config.server.tls_listen)
            .expect("a listener");
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("gatehouse exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not listen within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; returns the whole log.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for_text(|| self.log(), needle)
    }

    /// SIGKILL, no goodbye: for durability tests.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_ref()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        self.wait_exit()
    }

    /// Waits (up to 30 s, then SIGKILL) for the process to exit by itself, as after the
    /// SIGQUIT of an upgrade; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops (SIGKILL) and starts again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A new connection to the public listener.
    pub fn connect(&self) -> TcpStream {
        raw::connect(self.port)
    }

    /// One raw request on a new connection, its answer read by its framing and checked.
    #[track_caller]
    pub fn raw(&self, request: &str) -> Raw {
        self.raw_on(&mut self.connect(), request)
    }

    /// One raw request on an open connection (status 0: the connection was gone).
    #[track_caller]
    pub fn raw_on(&self, s: &mut TcpStream, request: &str) -> Raw {
        raw::exchange_on(s, Listener::Public, request)
    }

    /// The secret the server signs with: the environment's, the configured file's, or the
    /// one generated in the data directory.
    pub fn secret(&self) -> String {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == "GATEHOUSE_JWT_SECRET") {
            return v.clone();
        }
        let file = match self.config.jwt.secret_file.as_str() {
            "" => self.data_dir.join("jwt_secret"),
            path => PathBuf::from(path),
        };
        std::fs::read_to_string(file)
            .expect("the signing secret")
            .trim()
            .to_string()
    }

    /// `token`'s claims with `changes` (null removes a claim), signed with the real secret:
    /// a well-formed token that differs in exactly what the scenario changed.
    pub fn forge(&self, token: &str, changes: Value) -> String {
        sign_hs256(
            &hs256_header(),
            &tweak(token, changes),
            self.secret().as_bytes(),
        )
    }

    /// `token` as the server sees it `seconds` after it was issued, without waiting for them:
    /// the same claims with `iat` and `exp` both `seconds` earlier, signed with the real secret.
    pub fn aged(&self, token: &str, seconds: u64) -> String {
        let c = claims(token);
        let earlier = |claim: &str| {
            let t = c[claim]
                .as_u64()
                .unwrap_or_else(|| panic!("{claim} of {c}"));
            t.checked_sub(seconds).expect("a time after the epoch")
        };
        self.forge(token, json!({"iat": earlier("iat"), "exp": earlier("exp")}))
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it gives a value; panics naming `what` after 10 s.
#[track_caller]
/// `n` calls released at once by a barrier, call `i` running `call(i)`; the answers in order.
pub fn race<T: Send>(n: usize, call: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, call) = (&barrier, &call);
                s.spawn(move || {
                    barrier.wait();
                    call(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting after 10 s: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until `done` holds or 10 s pass, and returns the last read either way: for waits
/// whose caller asserts on the result with a better message than a timeout.
pub fn poll<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = read();
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sleeps until the wall clock reads unix second `t` (`now()`) or later: for server state kept
/// in whole seconds (a family's rotation, a last login) that a scenario needs in the past. It
/// waits as long as the clock takes to get there, no fixed second more.
pub fn wait_until_second(t: u64) {
    let target = std::time::UNIX_EPOCH + Duration::from_secs(t);
    while let Ok(left) = target.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(left + Duration::from_millis(1));
    }
}

/// Polls `text` (a log) until it contains `needle`; returns it.
#[track_caller]
pub fn wait_for_text(text: impl Fn() -> String, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = text();
        if t.contains(needle) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in the log after 10 s:\n{t}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one future to completion (the store trait is async; tests read stopped stores).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}
