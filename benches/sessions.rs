//! Issue 22's numbers: what a browser session costs beside a bearer token, measured on the
//! release binary in one run, interleaved, as CPU time of gatehouse per request.
//!
//! ```sh
//! cargo bench --bench sessions                       # CPU per request and per login, ~3 min
//! CALLGRIND=1 cargo bench --bench sessions           # instructions per request (valgrind)
//! ```
//!
//! Two comparisons, each a pair of identical requests that differ only in the credential:
//! - **proxied**: `GET /x` on an `auth = "required"` route, with `Authorization: Bearer <access
//!   token>` against `Cookie: __Host-gatehouse_session=<id>` (the session made by the sign-in
//!   form below; both caches warm: each credential was used before the first measurement).
//!   Target: cookie ≤ 1.05× bearer.
//! - **sign-in**: `POST /api/token/` (JSON) against `POST /accounts/login/` as a browser sends
//!   it: the `csrftoken` cookie from the sign-in page, its `csrfmiddlewaretoken` in the form,
//!   `Origin` the page's own. Both answer with a new credential (200 with a token pair; 302
//!   with a session cookie). Target: form ≤ 1.1× token.
//!
//! Setup (all on 127.0.0.1, free ports, a temp dir removed at the end): an upstream answering
//! `200 "hello from upstream\n"` served by this process, and `gatehouse serve` (the binary
//! cargo built beside this bench, i.e. the `release` profile, or `GATEHOUSE_BIN`) with
//! `threads = 1`, argon2 defaults (m=19456 KiB, t=2, p=1), `hash_threads` = the CPUs,
//! access log off, `[web]` defaults. With `PIN=1` (the default on ≥ 2 CPUs) gatehouse's
//! threads run on CPU 1, its argon2 threads on both, and this process (load generator and
//! upstream, one thread) on CPU 0, as `benches/load/run.sh` places wrk and its peers.
//!
//! CPU per request: gatehouse's user + system time (`/proc/PID/stat`, every thread) over a
//! run, divided by the requests answered in it. The load is closed-loop (`CONNS` keep-alive
//! connections, each sending its next request when the answer is in, like wrk). `ROUNDS`
//! rounds; within a round the two sides of a pair run back to back, the order alternating
//! between rounds, and the ratio is taken per round: the median of those ratios is the
//! result (a busy neighbour moves both sides of a round, not the ratio).
//!
//! `CALLGRIND=1`: gatehouse runs under `valgrind --tool=callgrind`; for each side the counters
//! are zeroed after a warm-up, exactly `REQUESTS` requests (or `LOGINS` sign-ins) are sent,
//! the counters dumped, and the dump's total divided by the count (user space only, as in
//! `benches/callgrind/run.sh`). Repeatable on a busy machine, unlike time.
//!
//! Knobs (environment): `ROUNDS=5 DURATION=5 CONNS=32 LOGINS=60 (10 under callgrind)`,
//! `LOGIN_CONNS=2 PIN=1`,
//! `REQUESTS=5000 WARMUP=2000` (callgrind), `ARGON2_KIB` (default: gatehouse's 19456),
//! `GATEHOUSE_BIN`, `KEEP=1` (keep the temp dir: config, gatehouse's output, dumps).
//! Results: `benches/README.md`, "Issue 22: sessions".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USERNAME: &str = "benchuser";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "Bench-Pass-2026!";
const SESSION_COOKIE: &str = "__Host-gatehouse_session";
const CSRF_COOKIE: &str = "csrftoken";
const CSRF_FIELD: &str = "csrfmiddlewaretoken";
const UPSTREAM_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nContent-Type: text/plain\r\n\r\nhello from upstream\n";
/// The proxied path: any path outside the pages and the API lands on the required route.
const PROXIED_PATH: &str = "/x";
/// Bound on one response head, so a broken answer ends the run instead of growing a buffer.
const MAX_HEAD: usize = 64 * 1024;

type Res<T> = Result<T, String>;

// --- knobs ------------------------------------------------------------------------------------

struct Knobs {
    rounds: usize,
    duration: Duration,
    conns: usize,
    logins: i64,
    login_conns: usize,
    pin: bool,
    callgrind: bool,
    requests: i64,
    warmup: i64,
    argon2_kib: Option<u32>,
    keep: bool,
    gatehouse: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Res<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn knobs() -> Res<Knobs> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let callgrind = env_num("CALLGRIND", 0u8)? == 1;
    Ok(Knobs {
        rounds: env_num("ROUNDS", 5)?,
        duration: Duration::from_secs_f64(env_num("DURATION", 5.0)?),
        conns: env_num("CONNS", 32)?,
        // A full argon2 hash under valgrind takes seconds.
        logins: env_num("LOGINS", if callgrind { 10 } else { 60 })?,
        login_conns: env_num("LOGIN_CONNS", 2)?,
        pin: env_num("PIN", 1u8)? == 1 && cpus >= 2,
        callgrind,
        requests: env_num("REQUESTS", 5000)?,
        warmup: env_num("WARMUP", 2000)?,
        argon2_kib: std::env::var("ARGON2_KIB")
            .ok()
            .map(|v| v.parse().map_err(|_| format!("ARGON2_KIB={v:?}")))
            .transpose()?,
        keep: env_num("KEEP", 0u8)? == 1,
        gatehouse: std::env::var_os("GATEHOUSE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))),
    })
}

// --- plain functions (parsing and arithmetic) -------------------------------------------------

/// One HTTP/1.1 response head as the load generator needs it.
#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    len: usize,
    body: Framing,
    close: bool,
}

#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The head at the start of `buf`, or None while it is incomplete.
fn parse_head(buf: &[u8]) -> Res<Option<Head>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("a response head over 64 KiB".into())
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "a response head not in UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
    let mut body = Framing::Length(0);
    let mut close = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = Framing::Length(
                value
                    .parse()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            body = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(Head {
        status,
        len: end + 4,
        body,
        close,
    }))
}

/// The length of the whole response (head and body) at the start of `buf` once complete.
fn response_len(head: &Head, buf: &[u8]) -> Option<usize> {
    match head.body {
        Framing::Length(n) => (buf.len() >= head.len + n).then_some(head.len + n),
        // Enough for the small bodies seen here: the last chunk ends the body (no trailers).
        Framing::Chunked => find(&buf[head.len..], b"0\r\n\r\n").map(|i| head.len + i + 5),
    }
}

/// The headers named `name` of a head (case-insensitive), values trimmed.
fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The value of cookie `name` among a head's Set-Cookie lines.
fn set_cookie(head: &str, name: &str) -> Option<String> {
    header_values(head, "set-cookie")
        .into_iter()
        .find_map(|line| {
            let pair = line.split(';').next()?;
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
}

/// The value of the hidden CSRF field of a page's form.
fn form_token(page: &str) -> Option<String> {
    let marker = format!("name=\"{CSRF_FIELD}\" value=\"");
    let rest = page.split(marker.as_str()).nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

/// User + system clock ticks of a process (every thread, living or ended) from its
/// `/proc/PID/stat` line: fields 14 and 15, counted after the parenthesised command name.
fn stat_ticks(stat: &str) -> Res<u64> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("no ')' in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Res<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("field {n} of /proc/PID/stat"))
    };
    Ok(field(14)? + field(15)?)
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// p-th percentile (0..=100) of latencies in microseconds, by rank.
fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1])
}

fn urlencode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The parsers above on fixed inputs. A harness-less bench runs no `#[test]`, so this runs at
/// the start of every run: a figure is only printed by a bench whose parsing is right.
fn self_check() -> Res<()> {
    let ok = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("self-check: {what}"))
        }
    };
    let resp = b"HTTP/1.1 302 Found\r\nSet-Cookie: csrftoken=abc; Path=/\r\nset-cookie: __Host-gatehouse_session=s1d; Secure; HttpOnly\r\ncontent-length: 3\r\n\r\nxyzHTTP/1.1";
    let head = parse_head(resp)?.ok_or("self-check: no head")?;
    ok(
        head == Head {
            status: 302,
            len: 136,
            body: Framing::Length(3),
            close: false,
        },
        "head",
    )?;
    ok(response_len(&head, resp) == Some(139), "length framing")?;
    ok(
        response_len(&head, &resp[..137]).is_none(),
        "an incomplete body",
    )?;
    ok(
        parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")?.is_none(),
        "an incomplete head",
    )?;
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let head = parse_head(chunked)?.ok_or("self-check: no chunked head")?;
    ok(
        head.body == Framing::Chunked && head.close,
        "chunked, close",
    )?;
    ok(
        response_len(&head, chunked) == Some(chunked.len()),
        "chunked framing",
    )?;
    ok(
        parse_head(b"nonsense\r\n\r\n").is_err(),
        "a bad status line",
    )?;
    let text = std::str::from_utf8(&resp[..136]).map_err(|e| e.to_string())?;
    ok(
        set_cookie(text, CSRF_COOKIE).as_deref() == Some("abc"),
        "Set-Cookie csrftoken",
    )?;
    ok(
        set_cookie(text, SESSION_COOKIE).as_deref() == Some("s1d"),
        "Set-Cookie session",
    )?;
    ok(set_cookie(text, "other").is_none(), "an absent cookie")?;
    let page = r#"<input type="hidden" name="csrfmiddlewaretoken" value="T0k3n">"#;
    ok(
        form_token(page).as_deref() == Some("T0k3n"),
        "the form token",
    )?;
    let stat = "123 (gate house) S 1 2 3 4 5 6 7 8 9 10 250 17 0 0 20";
    ok(stat_ticks(stat)? == 267, "utime + stime")?;
    ok(
        median(&[3.0, 1.0, 2.0]) == 2.0 && median(&[4.0, 1.0, 2.0, 3.0]) == 2.5,
        "median",
    )?;
    ok(
        percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99.0) == 10.0,
        "p99",
    )?;
    ok(
        percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50.0) == 5.0,
        "p50",
    )?;
    ok(
        urlencode(&[("password", "a b!&")]) == "password=a+b%21%26",
        "form encoding",
    )
}

// --- raw HTTP/1.1 over tokio ------------------------------------------------------------------

/// A request ready to send, byte for byte the same every time.
#[derive(Clone)]
struct Request {
    label: &'static str,
    bytes: Arc<[u8]>,
    expect: u16,
}

fn request(
    label: &'static str,
    method: &str,
    path: &str,
    addr: SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
    expect: u16,
) -> Request {
    let mut s =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: gatehouse-bench\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    Request {
        label,
        bytes: Arc::from(s.into_bytes()),
        expect,
    }
}

/// One connection's reader: the next complete response, left in `buf` from offset 0.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Res<(Head, usize)> {
    loop {
        if let Some(head) = parse_head(buf)? {
            if let Some(n) = response_len(&head, buf) {
                return Ok((head, n));
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the connection closed before a whole response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One request on a new connection: the head as text and the body.
async fn exchange(addr: SocketAddr, req: &Request) -> Res<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(&req.bytes)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let (head, n) = read_response(&mut stream, &mut buf).await?;
    let head_text = String::from_utf8_lossy(&buf[..head.len]).into_owned();
    let body = String::from_utf8_lossy(&buf[head.len..n]).into_owned();
    Ok((head.status, head_text, body))
}

#[derive(Default)]
struct Load {
    answered: u64,
    unexpected: BTreeMap<u16, u64>,
    latencies_us: Vec<u32>,
}

impl Load {
    fn merge(&mut self, other: Load) {
        self.answered += other.answered;
        for (k, v) in other.unexpected {
            *self.unexpected.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

#[derive(Clone)]
enum Budget {
    Until(Instant),
    /// Requests left to send, shared by the connections.
    Count(Arc<AtomicI64>),
}

impl Budget {
    fn take(&self) -> bool {
        match self {
            Budget::Until(t) => Instant::now() < *t,
            Budget::Count(left) => left.fetch_sub(1, Ordering::Relaxed) > 0,
        }
    }
}

/// One closed-loop connection: send, wait for the whole answer, repeat while the budget lasts.
async fn connection(addr: SocketAddr, req: Request, budget: Budget) -> Res<Load> {
    let mut load = Load::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    while budget.take() {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                stream.insert(s)
            }
        };
        let started = Instant::now();
        s.write_all(&req.bytes)
            .await
            .map_err(|e| format!("{}: write: {e}", req.label))?;
        let (head, n) = read_response(s, &mut buf)
            .await
            .map_err(|e| format!("{}: {e}", req.label))?;
        load.latencies_us
            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        load.answered += 1;
        if head.status != req.expect {
            *load.unexpected.entry(head.status).or_default() += 1;
        }
        buf.drain(..n);
        if head.close {
            stream = None;
            buf.clear();
        }
    }
    Ok(load)
}

async fn run_load(addr: SocketAddr, req: &Request, conns: usize, budget: Budget) -> Res<Load> {
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(connection(addr, req.clone(), budget.clone())))
        .collect();
    let mut total = Load::default();
    for t in tasks {
        total.merge(t.await.map_err(|e| format!("a load task: {e}"))??);
    }
    total.latencies_us.sort_unstable();
    if !total.unexpected.is_empty() {
        return Err(format!(
            "{}: answers other than {}: {:?}",
            req.label, req.expect, total.unexpected
        ));
    }
    Ok(total)
}

/// The upstream: every request answered `200 "hello from upstream\n"`, keep-alive.
async fn upstream(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = [0u8; 16 * 1024];
            loop {
                // Requests reaching the upstream here are GETs without a body.
                while let Some(end) = find(&buf, b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    if s.write_all(UPSTREAM_RESPONSE).await.is_err() {
                        return;
                    }
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

// --- processes --------------------------------------------------------------------------------

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn pin(tid: i32, cpus: &[usize]) -> Res<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity get a valid
    // pointer to it and its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity({tid}, {cpus:?}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// gatehouse's threads on CPU 1, its argon2 pool on both (they are not the proxy's one worker).
fn pin_gatehouse(pid: u32) -> Res<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("gatehouse-hash") {
            pin(tid, &[0, 1])?;
        } else {
            pin(tid, &[1])?;
        }
    }
    Ok(())
}

fn cpu_ticks(pid: u32) -> Res<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    stat_ticks(&stat)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

struct Gatehouse {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    dir: PathBuf,
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        // SIGINT first (a clean shutdown, callgrind writes its last dump), then kill.
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16, metrics: u16, upstream: SocketAddr, k: &Knobs) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let argon = k
        .argon2_kib
        .map_or(String::new(), |kib| format!("argon2_memory_kib = {kib}\n"));
    let d = dir.display();
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{metrics}"
data_dir = "{d}/data"
threads = 1
pid_file = "{d}/gatehouse.pid"
upgrade_sock = "{d}/upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[jwt]
access_lifetime_seconds = 3600
[passwords]
# "one per CPU" would see only the CPU the proxy is pinned to.
hash_threads = {cpus}
hash_queue = 256
{argon}[log]
access_log = false
level = "warn"
[web]
enabled = true
[[routes]]
prefix = "/"
upstreams = ["{upstream}"]
auth = "required"
"#
    )
}

fn start_gatehouse(k: &Knobs, upstream: SocketAddr) -> Res<Gatehouse> {
    let dir = std::env::temp_dir().join(format!("gatehouse-sessions-bench.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (port, metrics) = (free_port()?, free_port()?);
    let conf = dir.join("gatehouse.toml");
    std::fs::write(&conf, config(&dir, port, metrics, upstream, k))
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    let out = std::fs::File::create(dir.join("gatehouse.out")).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(dir.join("gatehouse.err")).map_err(|e| e.to_string())?;
    let mut cmd = if k.callgrind {
        let mut c = Command::new("valgrind");
        c.arg("--tool=callgrind")
            .arg("--vgdb=yes")
            .arg(format!("--callgrind-out-file={}/cg.%p", dir.display()))
            .arg(&k.gatehouse);
        c
    } else {
        Command::new(&k.gatehouse)
    };
    cmd.arg("serve")
        .arg("-c")
        .arg(&conf)
        .env_remove("GATEHOUSE_CONFIG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", k.gatehouse.display()))?;
    Ok(Gatehouse {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        metrics: SocketAddr::from(([127, 0, 0, 1], metrics)),
        dir,
    })
}

async fn wait_ready(g: &mut Gatehouse, tries: u32) -> Res<()> {
    let ready = request("readyz", "GET", "/readyz", g.metrics, &[], "", 200);
    for _ in 0..tries {
        if let Ok(Some(status)) = g.child.try_wait() {
            return Err(format!(
                "gatehouse exited ({status}); see {}/gatehouse.err",
                g.dir.display()
            ));
        }
        if let Ok((200, _, _)) = exchange(g.metrics, &ready).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "gatehouse not ready; see {}/gatehouse.err",
        g.dir.display()
    ))
}

// --- the scenario -----------------------------------------------------------------------------

/// The four requests measured, built from one user's credentials.
struct Requests {
    bearer: Request,
    cookie: Request,
    token_login: Request,
    form_login: Request,
}

async fn prepare(addr: SocketAddr) -> Res<Requests> {
    let json = [("Content-Type", "application/json")];
    let register = request(
        "register",
        "POST",
        "/api/auth/register/",
        addr,
        &json,
        &serde_json::json!({"username": USERNAME, "email": EMAIL, "password": PASSWORD})
            .to_string(),
        201,
    );
    let (status, _, body) = exchange(addr, &register).await?;
    if status != register.expect {
        return Err(format!("register: {status} {body}"));
    }
    let login_body = serde_json::json!({"username": USERNAME, "password": PASSWORD}).to_string();
    let token_login = request(
        "POST /api/token/",
        "POST",
        "/api/token/",
        addr,
        &json,
        &login_body,
        200,
    );
    let (status, _, body) = exchange(addr, &token_login).await?;
    let access = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["access"].as_str().map(str::to_string))
        .ok_or_else(|| format!("POST /api/token/: {status} {body}"))?;

    // As a browser: the page (its CSRF cookie and the form's token), then the form.
    let page = request("login page", "GET", "/accounts/login/", addr, &[], "", 200);
    let (status, head, body) = exchange(addr, &page).await?;
    let csrf = set_cookie(&head, CSRF_COOKIE)
        .ok_or_else(|| format!("GET /accounts/login/: {status}, no {CSRF_COOKIE} cookie"))?;
    let token = form_token(&body).ok_or("GET /accounts/login/: no CSRF field in the form")?;
    let origin = format!("http://{addr}");
    let cookie = format!("{CSRF_COOKIE}={csrf}");
    let form_login = request(
        "POST /accounts/login/",
        "POST",
        "/accounts/login/",
        addr,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
            ("Origin", &origin),
        ],
        &urlencode(&[
            (CSRF_FIELD, &token),
            ("username", USERNAME),
            ("password", PASSWORD),
        ]),
        302,
    );
    let (status, head, body) = exchange(addr, &form_login).await?;
    let session = set_cookie(&head, SESSION_COOKIE)
        .ok_or_else(|| format!("POST /accounts/login/: {status}, no session cookie: {body}"))?;

    let bearer_auth = format!("Bearer {access}");
    let session_cookie = format!("{SESSION_COOKIE}={session}");
    let r = Requests {
        bearer: request(
            "required route, bearer token",
            "GET",
            PROXIED_PATH,
            addr,
            &[("Authorization", &bearer_auth)],
            "",
            200,
        ),
        cookie: request(
            "required route, session cookie",
            "GET",
            PROXIED_PATH,
            addr,
            &[("Cookie", &session_cookie)],
            "",
            200,
        ),
        token_login,
        form_login,
    };
    // Both credentials work, nothing else does (and the caches are warm from here on).
    let none = request("no credential", "GET", PROXIED_PATH, addr, &[], "", 401);
    for req in [&r.bearer, &r.cookie, &none] {
        let (status, _, body) = exchange(addr, req).await?;
        if status != req.expect {
            return Err(format!(
                "{}: {status}, not {}: {body}",
                req.label, req.expect
            ));
        }
    }
    Ok(r)
}

/// One timed run: (CPU µs per answer, answers per second, p99 ms).
async fn timed(g: &Gatehouse, req: &Request, conns: usize, budget: Budget) -> Res<(f64, f64, f64)> {
    let pid = g.child.id();
    let before = cpu_ticks(pid)?;
    let own_before = cpu_ticks(std::process::id())?;
    let started = Instant::now();
    let load = run_load(g.addr, req, conns, budget).await?;
    let seconds = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid)? - before;
    // Who was busy: gatehouse's share of a CPU, and this process's (load and upstream).
    let hz = ticks_per_second();
    let busy = ticks as f64 / hz / seconds;
    let own_busy = (cpu_ticks(std::process::id())? - own_before) as f64 / hz / seconds;
    let n = load.answered as f64;
    // No tick in the whole run says nothing (ticks are 10 ms): no figure rather than 0.
    let cpu_us = if ticks == 0 {
        f64::NAN
    } else {
        ticks as f64 * 1e6 / ticks_per_second() / n
    };
    let p99 = percentile(&load.latencies_us, 99.0) / 1e3;
    println!(
        "  {:<34} {:>9.0} /s  p99 {:>8.2} ms  CPU {:>9.1} µs each  ({} answers; CPU busy: gatehouse {:.0} %, load + upstream {:.0} %)",
        req.label,
        n / seconds,
        p99,
        cpu_us,
        load.answered,
        busy * 100.0,
        own_busy * 100.0
    );
    Ok((cpu_us, n / seconds, p99))
}

struct Pair {
    name: &'static str,
    target: f64,
    base: Vec<(f64, f64, f64)>,
    other: Vec<(f64, f64, f64)>,
}

impl Pair {
    fn new(name: &'static str, target: f64) -> Pair {
        Pair {
            name,
            target,
            base: Vec::new(),
            other: Vec::new(),
        }
    }
    fn report(&self, base_label: &str, other_label: &str, unit: &str) {
        let col = |v: &[(f64, f64, f64)], i: usize| -> Vec<f64> {
            v.iter()
                .map(|t| match i {
                    0 => t.0,
                    1 => t.1,
                    _ => t.2,
                })
                .collect()
        };
        let ratios: Vec<f64> = self
            .base
            .iter()
            .zip(&self.other)
            .map(|(b, o)| o.0 / b.0)
            .collect();
        let r = median(&ratios);
        println!("\n{} (median of {} rounds)", self.name, ratios.len());
        for (label, v) in [(base_label, &self.base), (other_label, &self.other)] {
            println!(
                "  {label:<34} {:>9.1} µs CPU per {unit}  {:>9.0} /s  p99 {:>8.2} ms",
                median(&col(v, 0)),
                median(&col(v, 1)),
                median(&col(v, 2)),
            );
        }
        let per_round: Vec<String> = ratios.iter().map(|x| format!("{x:.3}")).collect();
        println!(
            "  ratio {:.3} (per round: {}), target ≤ {:.2}: {}",
            r,
            per_round.join(" "),
            self.target,
            if !r.is_finite() {
                "no figure (too few clock ticks: raise DURATION or LOGINS)"
            } else if r <= self.target {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

async fn cpu_time(k: &Knobs, g: &Gatehouse, r: &Requests) -> Res<()> {
    let mut proxied = Pair::new("proxied GET, auth = \"required\" (CPU per request)", 1.05);
    let mut logins = Pair::new("sign-in (CPU per sign-in, argon2 included)", 1.10);
    println!(
        "\n{} rounds; proxied: {} connections × {:.0} s; sign-in: {} each on {} connections",
        k.rounds,
        k.conns,
        k.duration.as_secs_f64(),
        k.logins,
        k.login_conns
    );
    // A warm-up of each, so the first round is not the one that fills caches and pools.
    run_load(
        g.addr,
        &r.bearer,
        k.conns,
        Budget::Until(Instant::now() + Duration::from_secs(1)),
    )
    .await?;
    run_load(
        g.addr,
        &r.cookie,
        k.conns,
        Budget::Until(Instant::now() + Duration::from_secs(1)),
    )
    .await?;
    for round in 0..k.rounds {
        println!("round {}", round + 1);
        let flip = round % 2 == 1;
        let until = || Budget::Until(Instant::now() + k.duration);
        let count = || Budget::Count(Arc::new(AtomicI64::new(k.logins)));
        for side in [flip, !flip] {
            if side {
                proxied
                    .other
                    .push(timed(g, &r.cookie, k.conns, until()).await?);
            } else {
                proxied
                    .base
                    .push(timed(g, &r.bearer, k.conns, until()).await?);
            }
        }
        for side in [flip, !flip] {
            if side {
                logins
                    .other
                    .push(timed(g, &r.form_login, k.login_conns, count()).await?);
            } else {
                logins
                    .base
                    .push(timed(g, &r.token_login, k.login_conns, count()).await?);
            }
        }
    }
    proxied.report("bearer token", "session cookie", "request");
    logins.report(
        "POST /api/token/",
        "POST /accounts/login/ (form)",
        "sign-in",
    );
    Ok(())
}

/// The newest callgrind dump's total instructions, after asking for a dump.
async fn dump_total(g: &Gatehouse) -> Res<u64> {
    let pid = g.child.id();
    let dumps = |dir: &Path| -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("cg."))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = dumps(&g.dir);
    control(&["-d", &pid.to_string()])?;
    for _ in 0..600 {
        if dumps(&g.dir) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let newest = std::fs::read_dir(&g.dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cg."))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .ok_or("no callgrind dump")?;
    let text = std::fs::read_to_string(newest.path()).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no summary line in {}", newest.path().display()))
}

fn control(args: &[&str]) -> Res<()> {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {args:?}: {}", out.status))
    }
}

async fn instructions(k: &Knobs, g: &Gatehouse, r: &Requests) -> Res<()> {
    let pid = g.child.id().to_string();
    let mut rows = Vec::new();
    for (req, warmup, n, conns) in [
        (&r.bearer, k.warmup, k.requests, 4),
        (&r.cookie, k.warmup, k.requests, 4),
        (&r.token_login, 2, k.logins, 1),
        (&r.form_login, 2, k.logins, 1),
    ] {
        run_load(
            g.addr,
            req,
            conns,
            Budget::Count(Arc::new(AtomicI64::new(warmup))),
        )
        .await?;
        control(&["-z", &pid])?;
        let load = run_load(
            g.addr,
            req,
            conns,
            Budget::Count(Arc::new(AtomicI64::new(n))),
        )
        .await?;
        let ir = dump_total(g).await?;
        let each = ir as f64 / load.answered as f64;
        println!(
            "  {:<34} {ir} Ir / {} = {each:.0} Ir each",
            req.label, load.answered
        );
        rows.push(each);
    }
    println!(
        "\ninstructions: cookie / bearer = {:.3} (target ≤ 1.05); form / token sign-in = {:.3} (target ≤ 1.10)",
        rows[1] / rows[0],
        rows[3] / rows[2]
    );
    Ok(())
}

async fn run(k: Knobs) -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let up = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(upstream(listener));
    let mut g = start_gatehouse(&k, up)?;
    println!(
        "gatehouse {} (pid {}) on {}, upstream {up}, work dir {}",
        k.gatehouse.display(),
        g.child.id(),
        g.addr,
        g.dir.display()
    );
    let result = async {
        wait_ready(&mut g, if k.callgrind { 1200 } else { 100 }).await?;
        if k.pin && !k.callgrind {
            pin_gatehouse(g.child.id())?;
        }
        let r = prepare(g.addr).await?;
        if k.callgrind {
            instructions(&k, &g, &r).await
        } else {
            cpu_time(&k, &g, &r).await
        }
    }
    .await;
    let dir = g.dir.clone();
    drop(g);
    if k.keep || result.is_err() {
        println!("work dir kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs, {model}; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn main() -> ExitCode {
    let result = self_check().and_then(|()| knobs()).and_then(|k| {
        println!("{}", machine());
        if k.pin && !k.callgrind {
            // Before the runtime starts: its thread inherits CPU 0.
            pin(0, &[0])?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(run(k))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessions bench: {e}");
            ExitCode::FAILURE
        }
    }
}
