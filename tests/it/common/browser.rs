//! A real browser for the scenarios about pages: Debian's `chromium`, headless, driven through
//! `chromedriver` over W3C WebDriver (a small synchronous client on reqwest and serde_json).
//! Each `Browser` has its own chromedriver, port and profile, and leaves no process behind.
//! Starting Chromium costs about two CPU-seconds, so a browser a test is done with goes back to
//! a small pool, wiped (cookies, cache, extra windows, window size), and the next `start` takes
//! it; a test that failed, or one that asks (`start_fresh`, `quit`), never shares its browser.
//!
//! ```ignore
//! let b = Browser::start();
//! b.goto(&g.url("/accounts/login/"));
//! b.fill("#id_username", "alice");
//! b.fill("#id_password", PASSWORD);
//! b.submit_form("form");
//! b.wait_for(|b| b.url().ends_with("/accounts/"), "the account page");
//! ```

use base64::Engine;
use reqwest::blocking::Client;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// What a machine without the browser is told.
pub const MISSING: &str = "Chromium and its WebDriver are needed: apt-get install -y chromium \
                           chromium-driver (as .ci/run does)";
/// A chromedriver to use instead of the one on PATH (a bogus path shows the message above).
pub const DRIVER_VAR: &str = "GATEHOUSE_TEST_CHROMEDRIVER";
/// A Chromium binary to use instead of Debian's.
pub const CHROMIUM_VAR: &str = "GATEHOUSE_TEST_CHROMIUM";
/// How long `wait_for` polls. Generous: eight test threads share two cores with the servers.
pub const WAIT: Duration = Duration::from_secs(10);
/// The window every browser starts with (the screenshot's size).
pub const WINDOW: (u32, u32) = (1280, 900);

/// The W3C name of the key that holds an element's reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// chromedriver's own limits for one page load and one script; our HTTP timeout is above them,
/// so the driver's error (naming what hung) arrives rather than ours.
const PAGE_LOAD: Duration = Duration::from_secs(60);
const SCRIPT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(90);
/// From spawning chromedriver to it answering `/status`, and to the session being made.
const STARTUP: Duration = Duration::from_secs(60);
/// How long `Drop` gives the session and the processes to end before killing them.
const SHUTDOWN: Duration = Duration::from_secs(20);
/// The page's visible text.
const TEXT_SCRIPT: &str = "return document.body ? document.body.innerText : '';";
/// How much of the page a timeout's panic shows.
const EXCERPT_CHARS: usize = 1500;
/// How many wiped browsers wait for the next test (each is a Chromium of ~150 MB).
const POOL_MAX: usize = 4;

/// Browsers tests are done with, wiped, waiting to be reused.
static POOL: Mutex<Vec<Browser>> = Mutex::new(Vec::new());

/// Closes the pooled browsers when the test binary exits (statics are never dropped).
extern "C" fn close_pool_at_exit() {
    let idle = std::mem::take(&mut *POOL.lock().unwrap_or_else(PoisonError::into_inner));
    for mut b in idle {
        b.reusable = false;
        drop(b);
    }
}

/// chromedriver runs under this shell, made a subreaper before it starts: Chromium's helpers
/// (zygotes, crash handlers) outlive their parents, and would otherwise go to PID 1, still
/// running or as zombies until it gets round to reaping them. bash reaps every child that
/// ends; after the driver is gone it waits for the helpers and ends those still there after
/// 10 s, so a dropped `Browser` has no process left. SIGTERM (from `Drop`, or as the
/// parent-death signal when the test binary dies) stops the driver.
const REAPER: &str = r#"
"$0" "$@" </dev/null &
driver=$!
trap 'kill -KILL $driver 2>/dev/null' TERM
wait $driver
children() { kids=; read -r kids < /proc/$$/task/$$/children || true; }
for _ in $(seq 500); do children; [ -z "$kids" ] && exit 0; sleep 0.02; done
kill -KILL $kids 2>/dev/null
for _ in $(seq 500); do children; [ -z "$kids" ] && exit 0; sleep 0.02; done
"#;

/// A cookie as the browser keeps it (WebDriver's cookie object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserCookie {
    pub name: String,
    pub value: String,
    pub path: String,
    /// The host for a host-only cookie, `.example.com` for a `Domain` one; "" when adding one
    /// for the current page's host.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, as the browser reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// Unix seconds; `None`: a session cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

impl BrowserCookie {
    /// A session cookie for the current page's host, `Path=/`, no other attribute.
    pub fn new(name: &str, value: &str) -> BrowserCookie {
        BrowserCookie {
            name: name.into(),
            value: value.into(),
            path: "/".into(),
            domain: String::new(),
            secure: false,
            http_only: false,
            same_site: None,
            expiry: None,
        }
    }
}

/// A WebDriver command that failed, as the driver said it.
#[derive(Debug)]
struct Failure {
    /// The W3C error code ("no such element"), or what went wrong on the way.
    error: String,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // chromedriver often repeats the code as the message.
        if self.message.is_empty() || self.message == self.error {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}: {}", self.error, self.message)
        }
    }
}

/// The programs a browser needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

/// Where the programs are: the variables' paths when set (a set path that is no program
/// counts as missing), else PATH, else Debian's places. Chromium's real binary comes before
/// Debian's `/usr/bin/chromium` wrapper, whose desktop settings a test browser does not want.
pub fn locate(
    driver_var: Option<&OsStr>,
    chromium_var: Option<&OsStr>,
    path_var: Option<&OsStr>,
    is_program: impl Fn(&Path) -> bool,
) -> Option<Programs> {
    // `var`, else the first program among `first`, the `names` on PATH, `last`.
    let find = |var: Option<&OsStr>, first: &[&str], names: &[&str], last: &[&str]| {
        if let Some(p) = var {
            return Some(PathBuf::from(p)).filter(|p| is_program(p));
        }
        let on_path = path_var
            .into_iter()
            .flat_map(std::env::split_paths)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)));
        let fixed = |places: &[&str]| places.iter().map(PathBuf::from).collect::<Vec<_>>();
        fixed(first)
            .into_iter()
            .chain(on_path)
            .chain(fixed(last))
            .find(|p| is_program(p))
    };
    Some(Programs {
        chromedriver: find(
            driver_var,
            &[],
            &["chromedriver"],
            &["/usr/bin/chromedriver"],
        )?,
        chromium: find(
            chromium_var,
            &["/usr/lib/chromium/chromium"],
            &["chromium", "chromium-browser"],
            &["/usr/bin/chromium"],
        )?,
    })
}

fn is_program(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first `max` characters of `text`, with a mark when there was more.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{} [...]", &text[..end]),
        None => text.to_string(),
    }
}

/// The width and height a PNG's header gives (`None`: not a PNG).
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(MAGIC) || bytes.get(12..16) != Some(b"IHDR") {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

/// Chromium's command line: headless, no sandbox (tests run as root), its own profile.
fn capabilities(chromium: &Path, profile: &Path) -> Value {
    let (w, h) = WINDOW;
    json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "timeouts": {
            "implicit": 0,
            "pageLoad": PAGE_LOAD.as_millis() as u64,
            "script": SCRIPT.as_millis() as u64,
        },
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={w},{h}"),
                format!("--user-data-dir={}", profile.display()),
                "--no-first-run",
                "--no-default-browser-check",
                // No background work a test does not look at (the flags Puppeteer starts
                // Chromium with): no component updates, sync, extensions or field trials.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-client-side-phishing-detection",
                "--disable-domain-reliability",
                "--disable-breakpad",
                "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AcceptCHFrame,InterestFeedContentSuggestions,CalculateNativeWinOcclusion",
                "--metrics-recording-only",
                "--mute-audio",
                "--password-store=basic",
                "--use-mock-keychain",
            ],
            // No "save this password?" or breach checks in the middle of a sign-in.
            "prefs": {
                "credentials_enable_service": false,
                "profile.password_manager_enabled": false,
                "profile.password_manager_leak_detection": false,
            },
        },
    }}})
}

/// Spawns from one thread that lives as long as the test binary: the parent-death signal
/// follows the thread that forked, and a browser may outlive the test thread that started it.
fn spawn_long_lived(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((cmd, reply));
    if sent.is_err() {
        return Err(std::io::Error::other("the spawner thread is gone"));
    }
    answer
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone")))
}

/// One headless Chromium with its own chromedriver and profile.
pub struct Browser {
    http: Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    session: String,
    /// The reaper shell chromedriver runs under; `None` once handed to the pool.
    driver: Option<Child>,
    dir: Option<tempfile::TempDir>,
    /// Whether `Drop` may give it to the pool (not for `start_fresh` or `quit`).
    reusable: bool,
}

impl Browser {
    /// A wiped browser from the pool, or a new one (`start_fresh`).
    #[track_caller]
    pub fn start() -> Browser {
        let pooled = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        pooled.unwrap_or_else(|| {
            let mut b = Browser::start_fresh();
            b.reusable = true;
            b
        })
    }

    /// Starts chromedriver on a free loopback port and a new Chromium session, used by this
    /// test alone; panics with `MISSING` when either program is not installed.
    #[track_caller]
    pub fn start_fresh() -> Browser {
        let env = |k: &str| std::env::var_os(k);
        let programs = locate(
            env(DRIVER_VAR).as_deref(),
            env(CHROMIUM_VAR).as_deref(),
            env("PATH").as_deref(),
            is_program,
        );
        match programs {
            Some(p) => Browser::start_with(&p),
            None => panic!("{MISSING}"),
        }
    }

    /// `start` with these programs.
    #[track_caller]
    pub fn start_with(programs: &Programs) -> Browser {
        let dir = tempfile::tempdir().expect("a temporary directory for the browser");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let http = Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy()
            .build()
            .expect("an HTTP client");
        // A port handed out by the harness can still be taken by someone else before
        // chromedriver binds it: then it exits at once, and another port is tried.
        let mut attempts = 0;
        let (driver, base) = loop {
            attempts += 1;
            let port = super::free_port();
            let mut driver = spawn_driver(&programs.chromedriver, port, &log);
            let base = format!("http://127.0.0.1:{port}");
            let why = match wait_ready(&http, &base, &mut driver) {
                Ready::Yes => break (driver, base),
                Ready::Exited(_) if attempts < 3 => continue,
                Ready::Exited(status) => format!("it exited ({status})"),
                Ready::TimedOut => {
                    stop(&mut driver);
                    format!("no ready /status within {STARTUP:?}")
                }
            };
            panic!(
                "chromedriver on port {port} did not start: {why}\n{}",
                read_log(&log)
            );
        };
        let mut b = Browser {
            http,
            session: String::new(),
            driver: Some(driver),
            dir: Some(dir),
            reusable: false,
        };
        let caps = capabilities(&programs.chromium, &profile);
        let made = b.send(Method::POST, &format!("{base}/session"), Some(&caps));
        match made.map(|v| v["sessionId"].as_str().map(str::to_string)) {
            Ok(Some(id)) => b.session = format!("{base}/session/{id}"),
            Ok(None) => panic!("chromedriver made a session without an id"),
            Err(f) => panic!("Chromium did not start: {f}\n{}", read_log(&log)),
        }
        b
    }

    /// The browser's profile directory (every Chromium process names it on its command line).
    pub fn profile(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.path().join("profile"),
            None => PathBuf::new(),
        }
    }

    /// Closes the browser now, never giving it to the pool.
    pub fn quit(mut self) {
        self.reusable = false;
    }

    /// Makes the browser as a new one looks to the next test: one window of the first size on
    /// a blank page, no cookies, nothing cached. `false` if any step failed.
    pub fn wipe(&self) -> bool {
        let _ = self.call(Method::POST, "/alert/dismiss", json!({}));
        let Ok(Value::Array(handles)) = self.call(Method::GET, "/window/handles", Value::Null)
        else {
            return false;
        };
        let Some(first) = handles.first().cloned() else {
            return false;
        };
        for extra in &handles[1..] {
            let switched = self.call(Method::POST, "/window", json!({ "handle": extra }));
            if switched.is_err() || self.call(Method::DELETE, "/window", Value::Null).is_err() {
                return false;
            }
        }
        let (width, height) = WINDOW;
        let cdp = |cmd: &str| {
            let body = json!({ "cmd": cmd, "params": {} });
            self.call(Method::POST, "/goog/cdp/execute", body).is_ok()
        };
        self.call(Method::POST, "/window", json!({ "handle": first }))
            .is_ok()
            && self
                .call(Method::POST, "/url", json!({ "url": "about:blank" }))
                .is_ok()
            && cdp("Network.clearBrowserCookies")
            && cdp("Network.clearBrowserCache")
            && self
                .call(
                    Method::POST,
                    "/window/rect",
                    json!({ "width": width, "height": height }),
                )
                .is_ok()
    }

    /// Every process of this browser: chromedriver, Chromium and its helpers.
    pub fn pids(&self) -> Vec<u32> {
        let mut found = Vec::new();
        let mut next: Vec<u32> = self.driver.iter().map(Child::id).collect();
        while let Some(pid) = next.pop() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                // A task that ended meanwhile has no children to list.
                if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                    next.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
            found.push(pid);
        }
        found
    }

    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", json!({ "url": url }));
    }

    /// The address bar.
    #[track_caller]
    pub fn url(&self) -> String {
        string(self.cmd(Method::GET, "/url", Value::Null), "url")
    }

    #[track_caller]
    pub fn title(&self) -> String {
        string(self.cmd(Method::GET, "/title", Value::Null), "title")
    }

    /// The current DOM, serialized.
    #[track_caller]
    pub fn source(&self) -> String {
        string(self.cmd(Method::GET, "/source", Value::Null), "source")
    }

    /// The page's visible text.
    #[track_caller]
    pub fn text(&self) -> String {
        string(self.execute(TEXT_SCRIPT, json!([])), "body text")
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns what it returns.
    #[track_caller]
    pub fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.cmd(Method::POST, "/execute/sync", body)
    }

    /// The one element `css` matches first; panics naming the selector and the page when none.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css) {
            Some(e) => e,
            None => panic!("no element matches {css:?} on {}", self.describe()),
        }
    }

    #[track_caller]
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.find_from("", css)
    }

    #[track_caller]
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.find_all_from("", css)
    }

    /// Clears the field `css` matches and types `text` into it.
    #[track_caller]
    pub fn fill(&self, css: &str, text: &str) {
        let field = self.find(css);
        field.clear();
        field.send_keys(text);
    }

    /// Clicks the submit button of the form `css` matches (as a person would, so the button's
    /// own name and value are sent and the browser's form validation runs).
    #[track_caller]
    pub fn submit_form(&self, css: &str) {
        let form = self.find(css);
        let button = "button[type=submit], input[type=submit], button:not([type])";
        match form.try_find(button) {
            Some(b) => b.click(),
            None => panic!(
                "the form {css:?} has no submit button on {}",
                self.describe()
            ),
        }
    }

    #[track_caller]
    pub fn cookies(&self) -> Vec<BrowserCookie> {
        let v = self.cmd(Method::GET, "/cookie", Value::Null);
        match serde_json::from_value(v.clone()) {
            Ok(list) => list,
            Err(e) => panic!("WebDriver GET /cookie gave no cookie list ({e}): {v}"),
        }
    }

    /// The cookie called `name` that the current page sees.
    #[track_caller]
    pub fn cookie(&self, name: &str) -> Option<BrowserCookie> {
        let path = format!("/cookie/{}", percent(name));
        match self.call(Method::GET, &path, Value::Null) {
            Ok(v) => Some(
                serde_json::from_value(v.clone())
                    .unwrap_or_else(|e| panic!("WebDriver GET {path} gave no cookie ({e}): {v}")),
            ),
            Err(f) if f.error == "no such cookie" => None,
            Err(f) => self.fail("GET", &path, f),
        }
    }

    /// Adds a cookie for the current page's site (WebDriver wants a page of it loaded first).
    #[track_caller]
    pub fn add_cookie(&self, cookie: &BrowserCookie) {
        self.cmd(Method::POST, "/cookie", json!({ "cookie": cookie }));
    }

    /// Deletes every cookie the current page sees.
    #[track_caller]
    pub fn delete_cookies(&self) {
        self.cmd(Method::DELETE, "/cookie", Value::Null);
    }

    /// Writes the viewport as a PNG file.
    #[track_caller]
    pub fn screenshot(&self, path: &Path) {
        let v = self.cmd(Method::GET, "/screenshot", Value::Null);
        let png = match base64::engine::general_purpose::STANDARD.decode(string(v, "screenshot")) {
            Ok(png) => png,
            Err(e) => panic!("WebDriver GET /screenshot: not base64 ({e})"),
        };
        if let Err(e) = std::fs::write(path, png) {
            panic!("write {}: {e}", path.display());
        }
    }

    #[track_caller]
    pub fn set_window_size(&self, width: u32, height: u32) {
        let rect = json!({ "width": width, "height": height });
        self.cmd(Method::POST, "/window/rect", rect);
    }

    /// The window's outer size, as `set_window_size` sets it.
    #[track_caller]
    pub fn window_size(&self) -> (u64, u64) {
        let rect = self.cmd(Method::GET, "/window/rect", Value::Null);
        match (rect["width"].as_u64(), rect["height"].as_u64()) {
            (Some(w), Some(h)) => (w, h),
            _ => panic!("WebDriver GET /window/rect gave no size: {rect}"),
        }
    }

    /// How many windows (tabs) the browser has open.
    #[track_caller]
    pub fn windows(&self) -> usize {
        match self.cmd(Method::GET, "/window/handles", Value::Null) {
            Value::Array(handles) => handles.len(),
            other => panic!("WebDriver GET /window/handles gave no list: {other}"),
        }
    }

    #[track_caller]
    pub fn back(&self) {
        self.cmd(Method::POST, "/back", json!({}));
    }

    #[track_caller]
    pub fn refresh(&self) {
        self.cmd(Method::POST, "/refresh", json!({}));
    }

    /// Polls `done` until it holds; after `WAIT` panics naming `what`, with the URL and the
    /// page's text.
    #[track_caller]
    pub fn wait_for(&self, done: impl FnMut(&Browser) -> bool, what: &str) {
        self.wait_up_to(WAIT, done, what);
    }

    /// `wait_for` with another limit.
    #[track_caller]
    pub fn wait_up_to(&self, limit: Duration, mut done: impl FnMut(&Browser) -> bool, what: &str) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            if Instant::now() > deadline {
                panic!(
                    "still waiting after {limit:?} for {what}: {}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where the browser is and what it shows, for failure messages.
    fn describe(&self) -> String {
        let script = json!({ "script": TEXT_SCRIPT, "args": [] });
        let text = match self.call(Method::POST, "/execute/sync", script) {
            Ok(Value::String(t)) => excerpt(&t, EXCERPT_CHARS),
            Ok(other) => other.to_string(),
            Err(f) => format!("(the page's text: {f})"),
        };
        let url = match self.call(Method::GET, "/url", Value::Null) {
            Ok(Value::String(u)) => u,
            Ok(other) => other.to_string(),
            Err(f) => format!("(the URL: {f})"),
        };
        format!("{url}\n--- the page says ---\n{text}\n---")
    }

    #[track_caller]
    fn find_from(&self, element: &str, css: &str) -> Option<Element<'_>> {
        let path = format!("{element}/element");
        let query = json!({ "using": "css selector", "value": css });
        match self.call(Method::POST, &path, query) {
            Ok(v) => Some(self.element(&v, css)),
            Err(f) if f.error == "no such element" => None,
            Err(f) => self.fail("POST", &format!("{path} {css:?}"), f),
        }
    }

    #[track_caller]
    fn find_all_from(&self, element: &str, css: &str) -> Vec<Element<'_>> {
        let path = format!("{element}/elements");
        let query = json!({ "using": "css selector", "value": css });
        match self.cmd(Method::POST, &path, query) {
            Value::Array(found) => found.iter().map(|v| self.element(v, css)).collect(),
            other => panic!("WebDriver POST {path} {css:?} gave no list: {other}"),
        }
    }

    #[track_caller]
    fn element(&self, reference: &Value, css: &str) -> Element<'_> {
        match reference[ELEMENT_KEY].as_str() {
            Some(id) => Element {
                browser: self,
                path: format!("/element/{id}"),
                css: css.to_string(),
            },
            None => panic!("WebDriver gave no element reference for {css:?}: {reference}"),
        }
    }

    /// One command of this session; panics naming it when the driver refuses.
    #[track_caller]
    fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        let m = method.to_string();
        match self.call(method, path, body) {
            Ok(v) => v,
            Err(f) => self.fail(&m, path, f),
        }
    }

    #[track_caller]
    fn fail(&self, method: &str, path: &str, f: Failure) -> ! {
        panic!("WebDriver {method} {path} failed: {f}")
    }

    fn call(&self, method: Method, path: &str, body: Value) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.session);
        let body = (method != Method::GET && method != Method::DELETE).then_some(&body);
        self.send(method, &url, body)
    }

    fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(b);
        }
        let transport = |e: reqwest::Error| Failure {
            error: "no answer from chromedriver".into(),
            message: e.to_string(),
        };
        let answer = request.send().map_err(transport)?;
        let ok = answer.status().is_success();
        let status = answer.status();
        let json: Value = answer.json().map_err(transport)?;
        let value = json["value"].clone();
        if ok {
            return Ok(value);
        }
        let text = |k: &str| value[k].as_str().map(str::to_string);
        Err(Failure {
            error: text("error").unwrap_or_else(|| format!("HTTP {status}")),
            // chromedriver's second line is only its version ("(Session info: ...)").
            message: text("message")
                .map(|m| m.lines().next().unwrap_or("").to_string())
                .unwrap_or_else(|| value.to_string()),
        })
    }
}

impl Drop for Browser {
    /// Gives a reusable browser of a test that passed to the pool, wiped; otherwise ends the
    /// session (chromedriver closes Chromium and waits for it), stops chromedriver, and waits
    /// for the reaper, which exits once every helper process is reaped.
    fn drop(&mut self) {
        if self.reusable && !std::thread::panicking() && self.wipe() {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOL_MAX {
                static AT_EXIT: std::sync::Once = std::sync::Once::new();
                // SAFETY: registers a plain function with no arguments to run at exit.
                AT_EXIT.call_once(|| unsafe {
                    libc::atexit(close_pool_at_exit);
                });
                pool.push(Browser {
                    http: self.http.clone(),
                    session: std::mem::take(&mut self.session),
                    driver: self.driver.take(),
                    dir: self.dir.take(),
                    reusable: true,
                });
                return;
            }
        }
        if !self.session.is_empty() {
            let _ = self.http.delete(&self.session).timeout(SHUTDOWN).send();
        }
        if let Some(driver) = &mut self.driver {
            stop(driver);
        }
    }
}

/// An element of the page; valid while the page that holds it is.
pub struct Element<'b> {
    browser: &'b Browser,
    /// `/element/<id>`
    path: String,
    css: String,
}

impl Element<'_> {
    #[track_caller]
    pub fn click(&self) {
        self.cmd(Method::POST, "/click", json!({}));
    }

    /// Types `text` (WebDriver's key codes, e.g. `\u{E007}` for Enter, work too).
    #[track_caller]
    pub fn send_keys(&self, text: &str) {
        self.cmd(Method::POST, "/value", json!({ "text": text }));
    }

    #[track_caller]
    pub fn clear(&self) {
        self.cmd(Method::POST, "/clear", json!({}));
    }

    /// The rendered text.
    #[track_caller]
    pub fn text(&self) -> String {
        string(self.cmd(Method::GET, "/text", Value::Null), "text")
    }

    /// The attribute as written in the HTML (`None`: absent).
    #[track_caller]
    pub fn attr(&self, name: &str) -> Option<String> {
        let v = self.cmd(
            Method::GET,
            &format!("/attribute/{}", percent(name)),
            Value::Null,
        );
        v.as_str().map(str::to_string)
    }

    /// The DOM property (`value` after typing, `checked`, ...).
    #[track_caller]
    pub fn prop(&self, name: &str) -> Value {
        self.cmd(
            Method::GET,
            &format!("/property/{}", percent(name)),
            Value::Null,
        )
    }

    #[track_caller]
    pub fn is_selected(&self) -> bool {
        match self.cmd(Method::GET, "/selected", Value::Null) {
            Value::Bool(b) => b,
            other => panic!("WebDriver GET /selected of {:?}: {other}", self.css),
        }
    }

    /// The first element inside this one that `css` matches.
    #[track_caller]
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.browser.find_from(&self.path, css)
    }

    #[track_caller]
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.browser.find_all_from(&self.path, css)
    }

    #[track_caller]
    fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        let m = method.to_string();
        match self
            .browser
            .call(method, &format!("{}{path}", self.path), body)
        {
            Ok(v) => v,
            Err(f) => self
                .browser
                .fail(&m, &format!("{path} of {:?}", self.css), f),
        }
    }
}

fn string(v: Value, what: &str) -> String {
    match v {
        Value::String(s) => s,
        other => panic!("WebDriver gave no {what}: {other}"),
    }
}

/// `name` as one path segment.
fn percent(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn spawn_driver(chromedriver: &Path, port: u16, log: &Path) -> Child {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()))
    };
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(REAPER)
        .arg(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(open())
        .stderr(open())
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    spawn_long_lived(cmd).unwrap_or_else(|e| panic!("spawn bash for chromedriver: {e}"))
}

/// How chromedriver's start went.
enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// Waits for chromedriver's `/status` to say ready, for it to exit, or for `STARTUP` to pass.
fn wait_ready(http: &Client, base: &str, driver: &mut Child) -> Ready {
    let deadline = Instant::now() + STARTUP;
    loop {
        let status = http
            .get(format!("{base}/status"))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.json::<Value>());
        if status.is_ok_and(|s| s["value"]["ready"] == json!(true)) {
            return Ready::Yes;
        }
        if let Ok(Some(status)) = driver.try_wait() {
            return Ready::Exited(status);
        }
        if Instant::now() > deadline {
            return Ready::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops chromedriver and waits for its reaper, which exits once every helper is reaped.
fn stop(driver: &mut Child) {
    let pid = driver.id() as i32;
    // SAFETY: signalling our own child, not reaped yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + SHUTDOWN;
    while matches!(driver.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            // SAFETY: the reaper leads its own process group, and is still alive.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = driver.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => format!("--- chromedriver's log ---\n{}", excerpt(&text, 4000)),
        Err(e) => format!("(no chromedriver log: {e})"),
    }
}
