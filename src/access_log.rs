//! The access log: one line per request on stdout, JSON or text. It names the request, never
//! its credentials: no Authorization header, token, cookie or body is ever written. Its
//! buffer is stdout's for every line gatehouse writes there (the audit sink's too).
//!
//! Lines are buffered (like nginx's `access_log ... buffer= flush=`): a `write` syscall per
//! request cost ~7 µs of CPU on the proxy path. A background thread flushes every
//! `FLUSH_INTERVAL`, so a line reaches stdout at most that late.

use serde::Serialize;
use std::io::{BufWriter, Stdout, Write};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// How long a line may wait in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Flushed earlier when this much is waiting.
const BUFFER_BYTES: usize = 64 * 1024;

static OUT: LazyLock<Mutex<BufWriter<Stdout>>> =
    LazyLock::new(|| Mutex::new(BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout())));

/// Writes whatever is buffered to stdout.
pub fn flush() {
    if let Ok(mut out) = OUT.lock() {
        let _ = out.flush();
    }
}

/// Appends `line` and a newline to the buffer.
pub fn write_line(line: &str) {
    if let Ok(mut out) = OUT.lock() {
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
    }
}

static FLUSHER: std::sync::Once = std::sync::Once::new();

/// Starts the thread that flushes the buffer every `FLUSH_INTERVAL` (once, however often it
/// is asked).
pub fn start_flusher() -> Result<(), String> {
    let mut started = Ok(());
    FLUSHER.call_once(|| started = spawn_flusher());
    started
}

fn spawn_flusher() -> Result<(), String> {
    std::thread::Builder::new()
        .name("gatehouse-access-log".into())
        .spawn(|| loop {
            std::thread::sleep(FLUSH_INTERVAL);
            flush();
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the access-log thread: {e}"))
}

#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path only: query strings may carry secrets.
    pub path: &'a str,
    pub kind: &'a str,
    pub route: &'a str,
    pub user_id: Option<u64>,
    pub status: u16,
    pub upstream: Option<&'a str>,
    pub latency_ms: f64,
    pub bytes: usize,
}

impl Entry<'_> {
    pub fn render(&self, json: bool) -> Result<String, serde_json::Error> {
        if json {
            serde_json::to_string(self)
        } else {
            Ok(format!(
                "{} {} {} {} {} route={} user={} upstream={} {:.1}ms {}B",
                self.time,
                self.request_id,
                self.method,
                self.path,
                self.status,
                self.route,
                self.user_id.map_or("-".to_string(), |u| u.to_string()),
                self.upstream.unwrap_or("-"),
                self.latency_ms,
                self.bytes
            ))
        }
    }

    /// Appends the line to the buffer (a full buffer goes to stdout at once).
    pub fn write(&self, json: bool) {
        let mut line = match self.render(json) {
            Ok(line) => line,
            Err(e) => {
                log::warn!(
                    "access log: cannot render the line of {}: {e}",
                    self.request_id
                );
                return;
            }
        };
        line.push('\n');
        if let Ok(mut out) = OUT.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }
}

/// The current time for a log line; `-` for a clock RFC 3339 cannot write (past year 9999).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_fields() {
        let e = Entry {
            time: "t".into(),
            request_id: "r",
            method: "GET",
            path: "/x",
            kind: "proxy",
            route: "/",
            user_id: Some(7),
            status: 200,
            upstream: Some("127.0.0.1:9000"),
            latency_ms: 1.5,
            bytes: 10,
        };
        let v: serde_json::Value =
            serde_json::from_str(&e.render(true).expect("renders")).expect("json");
        assert_eq!(v["user_id"], 7);
        assert_eq!(v["upstream"], "127.0.0.1:9000");
        assert!(e.render(false).expect("renders").contains("GET /x 200"));
    }
}
