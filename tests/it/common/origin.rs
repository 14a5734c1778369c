//! A throwaway web origin for the browser scenarios: fixed HTML pages on a loopback port of
//! its own (so another origin than gatehouse's, e.g. a page whose form posts to gatehouse on
//! load, for CSRF), and a log of every request it got.
//!
//! ```ignore
//! let evil = Origin::serve(vec![("/", auto_submit(&g.url("/accounts/logout/"), &[]))]);
//! browser.goto(&evil.url("/"));
//! ```
//! The port differs from gatehouse's, so the origin does, but `127.0.0.1` is the same *site*
//! (SameSite=Lax cookies still go along); `url_on("localhost", ..)` is another site.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The most a request's head or body may take.
const MAX_REQUEST: usize = 1 << 20;

/// A page: answered to every method on its path (the query is not part of it).
#[derive(Debug, Clone)]
pub struct Page {
    pub path: &'static str,
    pub html: String,
    /// Headers added to the answer (`Set-Cookie`, ...).
    pub headers: Vec<(String, String)>,
}

impl Page {
    pub fn new(path: &'static str, html: impl Into<String>) -> Page {
        Page {
            path,
            html: html.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Page {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as the origin read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header lines in order, names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        path_of(&self.target)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's form fields, decoded, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A running origin; stops when dropped.
pub struct Origin {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Serves each `(path, html)`; any other path is a 404.
    pub fn serve(pages: Vec<(&'static str, String)>) -> Origin {
        Origin::serve_pages(pages.into_iter().map(|(p, h)| Page::new(p, h)).collect())
    }

    /// Serves pages with headers of their own.
    pub fn serve_pages(pages: Vec<Page>) -> Origin {
        let listener = super::listener();
        let port = listener.local_addr().expect("the origin's address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(pages);
        let thread = {
            let (log, stopping) = (log.clone(), stopping.clone());
            std::thread::spawn(move || accept(listener, &pages, &log, &stopping))
        };
        Origin {
            port,
            log,
            stopping,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        self.url_on("127.0.0.1", path)
    }

    /// The same page under another name of loopback (`localhost`: another site for cookies).
    pub fn url_on(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    /// What a browser sends as `Origin` from these pages.
    pub fn origin(&self) -> String {
        self.url("")
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests to `path` (the query aside).
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        let mut all = self.requests();
        all.retain(|r| r.path() == path);
        all
    }

    /// Waits (10 s) for a `method` request to `path`; returns the first.
    #[track_caller]
    pub fn wait_for_request(&self, method: &str, path: &str) -> Request {
        super::eventually(&format!("{method} {path} at the origin"), || {
            self.requests_to(path)
                .into_iter()
                .find(|r| r.method == method)
        })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A page whose form posts `fields` to `action` as soon as it loads: what a hostile site does.
pub fn auto_submit(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            let (k, v) = (escape(k), escape(v));
            format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">")
        })
        .collect();
    format!(
        "<!doctype html><html><head><title>auto-submit</title></head><body>\
         <form method=\"post\" action=\"{}\">{inputs}<button type=\"submit\">go</button></form>\
         <script>document.forms[0].submit();</script></body></html>",
        escape(action)
    )
}

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

fn accept(
    listener: TcpListener,
    pages: &Arc<Vec<Page>>,
    log: &Arc<Mutex<Vec<Request>>>,
    stopping: &AtomicBool,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (pages, log) = (pages.clone(), log.clone());
        // A browser may open a connection it never uses (preconnect): each gets a thread that
        // gives up after the read timeout, and the accept loop never waits on one.
        std::thread::spawn(move || {
            if let Some(request) = read_request(&stream) {
                let answer = answer(&pages, &request);
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request);
                let _ = (&stream).write_all(&answer);
            }
        });
    }
}

/// One request off the connection (`None`: closed, timed out or malformed before its end).
fn read_request(mut stream: &TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&chunk[..n]);
        if data.len() > MAX_REQUEST {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let (method, target) = (start.next()?.to_string(), start.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = match headers.iter().find(|(k, _)| k == "content-length") {
        Some((_, v)) => v.parse::<usize>().ok().filter(|&n| n <= MAX_REQUEST)?,
        None => 0,
    };
    let mut body = data.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Request {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The page at the request's path, or a 404; the connection closes after it.
fn answer(pages: &[Page], request: &Request) -> Vec<u8> {
    let page = pages.iter().find(|p| p.path == request.path());
    let (status, html, headers) = match page {
        Some(p) => ("200 OK", p.html.as_str(), p.headers.as_slice()),
        None => (
            "404 Not Found",
            "<!doctype html><title>not found</title>",
            &[][..],
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        html.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if request.method != "HEAD" {
        bytes.extend_from_slice(html.as_bytes());
    }
    bytes
}
