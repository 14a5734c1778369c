//! The one test harness: starts the real `gatehouse` binary on loopback ports with its own sled
//! directory, plus real upstream HTTP servers, and gives tests a small HTTP client.
#![allow(dead_code)]

pub mod django;
pub mod upstream;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The example password from the seed README, valid under Django's validators.
pub const PASSWORD: &str = "TestPass123";

/// A port nobody listens on right now (each listener gets its own: two `:0` listeners would
/// share one socket in Pingora).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

pub struct Builder {
    extra_toml: String,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    superusers: Vec<(String, String, String)>,
}

impl Builder {
    /// Appends TOML to the generated config (sections like `[jwt]` or `[[routes]]`).
    pub fn toml(mut self, extra: &str) -> Self {
        self.extra_toml.push_str(extra);
        self.extra_toml.push('\n');
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Reuse an existing data directory (restart scenarios).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }
    /// Creates a staff user with `createsuperuser --noinput` before the server starts.
    pub fn superuser(mut self, username: &str, email: &str, password: &str) -> Self {
        self.superusers
            .push((username.into(), email.into(), password.into()));
        self
    }

    pub fn start(self) -> Gatehouse {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("data"));
        let port = free_port();
        let metrics_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let config_path = tmp.path().join("gatehouse.toml");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
             data_dir = \"{}\"\nthreads = 2\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n\
             grace_period_seconds = 1\ngraceful_shutdown_timeout_seconds = 5\n{}",
            data_dir.display(),
            tmp.path().join("gatehouse.pid").display(),
            tmp.path().join("upgrade.sock").display(),
            self.extra_toml
        );
        std::fs::write(&config_path, config).expect("write config");
        let mut g = Gatehouse {
            child: None,
            port,
            metrics_port,
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            data_dir,
            config_path,
            env: self.env,
            log_path: tmp.path().join("gatehouse.log"),
            _tmp: tmp,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        for (u, e, p) in &self.superusers {
            let out = g.cli(
                &[
                    "createsuperuser",
                    "--noinput",
                    "--username",
                    u,
                    "--email",
                    e,
                ],
                &[("GATEHOUSE_SUPERUSER_PASSWORD", p)],
            );
            assert!(
                out.status.success(),
                "createsuperuser failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        g.spawn();
        g
    }
}

pub struct Gatehouse {
    child: Option<Child>,
    pub port: u16,
    pub metrics_port: u16,
    pub base: String,
    pub metrics_base: String,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
    client: Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// Asserts status and the whole JSON body at once, printing both on failure.
    #[track_caller]
    pub fn expect(&self, status: u16, body: Value) -> &Self {
        assert_eq!(
            (self.status, &self.json),
            (status, &body),
            "unexpected response: {} {}",
            self.status,
            self.text
        );
        self
    }
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        self
    }
}

impl Gatehouse {
    pub fn builder() -> Builder {
        Builder {
            extra_toml: String::new(),
            // Scenarios register and fail logins from one address far more than a person
            // would; the throttling tests set their own limits (a later env() wins).
            env: [
                ("GATEHOUSE_THROTTLE_REGISTRATIONS_PER_ADDRESS", "100000"),
                ("GATEHOUSE_THROTTLE_LOGIN_FAILURES_PER_ADDRESS", "100000"),
                ("GATEHOUSE_THROTTLE_LOGIN_FAILURES_PER_USERNAME", "100000"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            data_dir: None,
            superusers: Vec::new(),
        }
    }

    pub fn start() -> Gatehouse {
        Gatehouse::builder().start()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env_remove("GATEHOUSE_JWT_SECRET")
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_CONFIG", &self.config_path);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI subcommand against this instance's config (e.g. `createsuperuser`).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command();
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run gatehouse cli")
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
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
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

    /// SIGKILL, no goodbye: for durability tests.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        self.client.request(m, self.url(path))
    }

    pub fn send(&self, rb: RequestBuilder) -> Resp {
        let r = rb.send().expect("request reaches gatehouse");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// `method path` with an optional JSON body and optional bearer token.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Resp {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, None, token)
    }

    pub fn post(&self, path: &str, body: Value, token: Option<&str>) -> Resp {
        self.call("POST", path, Some(body), token)
    }

    /// Registers `username` with `<username>@example.com` and `PASSWORD`; asserts 201.
    pub fn register(&self, username: &str) -> Value {
        let r = self.post(
            "/api/auth/register/",
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            None,
        );
        r.expect_status(201);
        r.json
    }

    /// Logs in; returns (access, refresh).
    pub fn login(&self, username: &str, password: &str) -> (String, String) {
        let r = self.post(
            "/api/token/",
            json!({"username": username, "password": password}),
            None,
        );
        r.expect_status(200);
        (
            r.json["access"].as_str().expect("access").to_string(),
            r.json["refresh"].as_str().expect("refresh").to_string(),
        )
    }

    /// Registers and logs in; returns the access token.
    pub fn user_token(&self, username: &str) -> String {
        self.register(username);
        self.login(username, PASSWORD).0
    }

    /// Writes raw bytes on a fresh connection and returns everything read until the server
    /// closes it or 5 s pass: for requests an HTTP client refuses to send.
    pub fn raw(&self, request: &[u8]) -> String {
        raw_exchange(self.port, request)
    }

    /// The secret the server signs with (generated in the data directory unless set).
    pub fn secret(&self) -> String {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == "GATEHOUSE_JWT_SECRET") {
            return v.clone();
        }
        std::fs::read_to_string(self.data_dir.join("jwt_secret"))
            .expect("generated secret")
            .trim()
            .to_string()
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Signs arbitrary header and claims JSON with HS256 and `secret`: for forged-token tests.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::Mac;
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// True when the token's HS256 signature was made with `key` (checked on the bytes as sent).
pub fn signed_with(token: &str, key: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// A `[[routes]]` table for the generated config.
pub fn route_toml(prefix: &str, upstreams: &[&str], extra: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstreams = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// Resident memory of a process in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decodes the claims of a JWT without checking it.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("claims part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims json")
}

/// simplejwt's body for a bad access token on an authenticated view or route.
pub fn bad_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]
    })
}

/// simplejwt's body for a bad token on the refresh / verify / logout views.
pub fn bad_refresh(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

/// Default body for a user created by `register`.
pub fn profile_of(id: u64, username: &str) -> Value {
    json!({"id": id, "username": username, "email": format!("{username}@example.com"), "first_name": "", "last_name": ""})
}

/// Runs one future to completion (the store trait is async; tests read stopped stores).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}
