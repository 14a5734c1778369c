//! The training run of gatehouse's profile-guided build (`deploy/pgo-build.sh`, which
//! `make release` and the Dockerfile run): an upstream and a load generator on loopback, so the
//! build needs nothing outside the repository and the crates (no wrk, no nginx).
//!
//! `pgo-train <gatehouse binary> [seconds per workload]` starts the upstream, runs the
//! (instrumented) gatehouse on a temporary config, sends it the traffic the shipped build
//! should be fast at (the proxy path with each credential, forward-auth, the user API, the
//! refusals, a few logins), checks every answer's status, and stops it with SIGINT so the
//! profile is written. Exits non-zero, saying why, when any answer is not the expected one:
//! a profile of error paths would optimise the wrong code.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "pgo-trainer";
const PASSWORD: &str = "Train-Pass-2026!";
/// Connections per workload: enough to keep one gatehouse worker busy.
const CONNECTIONS: usize = 8;
const UPSTREAM_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nContent-Type: text/plain\r\n\r\nhello from upstream\n";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(binary) = args.next() else {
        eprintln!("usage: pgo-train <gatehouse binary> [seconds per workload]");
        return ExitCode::from(2);
    };
    let seconds = match args.next().map(|s| s.parse::<u64>()) {
        None => 5,
        Some(Ok(s)) if s > 0 => s,
        Some(_) => {
            eprintln!("pgo-train: seconds must be a positive whole number");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgo-train: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(train(Path::new(&binary), Duration::from_secs(seconds))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgo-train: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The gatehouse under training; stopped with SIGINT (its profile is written at exit) when
/// dropped, whatever happened.
struct Gatehouse {
    child: Child,
    dir: PathBuf,
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid, which it still is until we wait on it.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            eprintln!("pgo-train: gatehouse did not stop on SIGINT: killed (no profile)");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn train(binary: &Path, each: Duration) -> Result<(), String> {
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let up = upstream
        .local_addr()
        .map_err(|e| format!("upstream: {e}"))?;
    tokio::spawn(serve_upstream(upstream));
    let (listen, metrics) = (free_port()?, free_port()?);
    let dir = std::env::temp_dir().join(format!("pgo-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("gatehouse.toml");
    std::fs::write(&config, config_text(&dir, listen, metrics, up))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let child = Command::new(binary)
        .args(["serve", "-c"])
        .arg(&config)
        .env(
            "GATEHOUSE_JWT_SECRET",
            "pgo-training-secret-of-at-least-32-bytes",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let _gatehouse = Gatehouse { child, dir };
    let gh: SocketAddr = ([127, 0, 0, 1], listen).into();
    let ready: SocketAddr = ([127, 0, 0, 1], metrics).into();
    wait_ready(ready).await?;

    let json = |body: String| (body, "Content-Type: application/json\r\n".to_string());
    let (body, h) = json(format!(
        r#"{{"username":"{USER}","email":"trainer@example.com","password":"{PASSWORD}"}}"#
    ));
    once(gh, "POST", "/api/auth/register/", &h, &body, 201).await?;
    let login = format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#);
    let (_, answer) = once(gh, "POST", "/api/token/", &h, &login, 200).await?;
    let access = field(&answer, "access").ok_or("no access token in the login's answer")?;
    let bearer = format!("Authorization: Bearer {access}\r\n");
    let (body, h) = json(format!(
        r#"{{"name":"pgo","expires_at":"{}","password":"{PASSWORD}"}}"#,
        iso_date_in_days(30)
    ));
    let (_, answer) = once(gh, "POST", "/api/auth/keys/", &(h + &bearer), &body, 201).await?;
    let key = field(&answer, "key").ok_or("no key in the key's answer")?;
    let (head, _) = once(
        gh,
        "POST",
        "/api/auth/session/",
        &json(String::new()).1,
        &login,
        200,
    )
    .await?;
    let cookie = session_cookie(&head).ok_or("no session cookie in the sign-in's answer")?;

    let get = |path: &str, headers: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pgo-train\r\n{headers}\r\n")
    };
    let workloads = [
        ("public route", get("/pub/x", ""), 200),
        ("required route, bearer token", get("/x", &bearer), 200),
        (
            "required route, API key",
            get("/x", &format!("X-API-Key: {key}\r\n")),
            200,
        ),
        (
            "required route, session cookie",
            get("/x", &format!("Cookie: {cookie}\r\n")),
            200,
        ),
        ("profile", get("/api/auth/profile/", &bearer), 200),
        (
            "forward-auth",
            get(
                "/_gatehouse/auth",
                &format!("{bearer}X-Original-Method: GET\r\nX-Original-URI: /x\r\n"),
            ),
            200,
        ),
        ("no credentials", get("/x", ""), 401),
        (
            "a forged token",
            get(
                "/x",
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA\r\n",
            ),
            401,
        ),
    ];
    for (name, request, status) in workloads {
        let sent = load(gh, request.into_bytes(), status, each).await?;
        println!(
            "  {name}: {sent} requests, {:.0}/s",
            sent as f64 / each.as_secs_f64()
        );
    }
    for _ in 0..10 {
        once(
            gh,
            "POST",
            "/api/token/",
            &json(String::new()).1,
            &login,
            200,
        )
        .await?;
    }
    println!("  logins: 10");
    Ok(())
}

fn config_text(dir: &Path, listen: u16, metrics: u16, up: SocketAddr) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{listen}"
metrics_listen = "127.0.0.1:{metrics}"
data_dir = "{data}"
pid_file = "{dir}/gatehouse.pid"
upgrade_sock = "{dir}/upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[jwt]
access_lifetime_seconds = 3600
[throttle]
enabled = false
[log]
level = "warn"
[web]
enabled = true
cookie_secure = false
[forward_auth]
enabled = true
[[routes]]
prefix = "/pub/"
upstreams = ["{up}"]
auth = "public"
[[routes]]
prefix = "/"
upstreams = ["{up}"]
auth = "required"
"#,
        data = dir.join("data").display(),
        dir = dir.display(),
    )
}

/// A port nothing listens on now (the OS's pick, released for gatehouse to take).
fn free_port() -> Result<u16, String> {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

async fn wait_ready(metrics: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let request = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect(metrics).await {
            let mut conn = Conn::new(stream);
            if let Ok((200, _, _)) = conn.send(&request).await {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("gatehouse was not ready within 60 s (its stderr is above)".into())
}

/// Answers every request on every connection with the same 200, keeping connections open.
async fn serve_upstream(listener: TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut have = 0;
            loop {
                match stream.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                // Requests without bodies: each header block ends with a blank line.
                while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                    if stream.write_all(UPSTREAM_ANSWER).await.is_err() {
                        return;
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
                if have == buf.len() {
                    return;
                }
            }
        });
    }
}

/// Sends `request` over `CONNECTIONS` kept-alive connections for `time`; every answer must
/// have `status`. Returns how many were sent.
async fn load(
    addr: SocketAddr,
    request: Vec<u8>,
    status: u16,
    time: Duration,
) -> Result<u64, String> {
    let request = Arc::new(request);
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (request, sent) = (Arc::clone(&request), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            while Instant::now() < deadline {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => {
                        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                        conn.insert(Conn::new(stream))
                    }
                };
                let (got, head, body) = c.send(&request).await.map_err(|e| e.to_string())?;
                if closes(&head) {
                    conn = None;
                }
                if got != status {
                    let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    return Err(format!("answered {got} instead of {status}: {body}"));
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(sent.load(Ordering::Relaxed))
}

/// One request on a connection of its own; returns the head and the body.
async fn once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
    status: u16,
) -> Result<(String, String), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut conn = Conn::new(stream);
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (got, head, answer) = conn
        .send(request.as_bytes())
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if got != status {
        return Err(format!(
            "{method} {path} answered {got} instead of {status}: {answer}"
        ));
    }
    Ok((head, answer))
}

/// An HTTP/1.1 client connection that reads answers framed by `Content-Length`.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Writes `request`, reads one answer: its status, head and body.
    async fn send(&mut self, request: &[u8]) -> io::Result<(u16, String, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("no status line"))?;
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| bad("bad Content-Length"))
            })
            .transpose()?
            .unwrap_or(0);
        let total = head_end + 4 + length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        Ok((status, head, body))
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed mid-answer"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The answer ends its connection (`Connection: close`).
fn closes(head: &str) -> bool {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(n, v)| {
            n.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
        })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A string field of a flat JSON answer (`"name":"value"`); the values read here (tokens,
/// keys) hold no escapes.
fn field(json: &str, name: &str) -> Option<String> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_string())
}

/// `name=value` of the session cookie an answer sets.
fn session_cookie(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim())
        .find(|v| v.split('=').next().is_some_and(|n| n.contains("session")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// An ISO 8601 UTC time `days` from now (a key's `expires_at`).
fn iso_date_in_days(days: u64) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + days * 86_400;
    let (z, rest) = ((secs / 86_400) as i64 + 719_468, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
