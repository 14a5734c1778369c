//! A real SMTP server on loopback for the mail tests: `tests/support/smtp_sink.py` (aiosmtpd,
//! from the test virtualenv of `tests/support/make_venv.sh`) on a free port, writing each
//! message it accepts to a directory as JSON. Stopping it and starting it again on the same
//! port is a mail server that was down for a while. Below it, the helpers of the mail
//! scenarios (tests/it/mail.rs, tests/it/mail_replicas.rs): a gatehouse sending to a sink, the
//! link in a mail, the reset requests.

use super::paths::{PASSWORD_RESET, PASSWORD_RESET_CONFIRM};
use super::{Builder, Gatehouse, Resp};
use gatehouse::config::{Config, LogLevel, MailBackend};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `None`: plain SMTP; `starttls` or `implicit`: TLS with a test CA (`ca_file`).
    tls: Option<&'static str>,
}

impl SmtpSink {
    /// Starts the sink on a free port; panics with how to get aiosmtpd if it cannot run.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(None)
    }

    /// A sink that requires STARTTLS (`"starttls"`) or speaks TLS at once (`"implicit"`),
    /// with a certificate for 127.0.0.1 from a test CA (`ca_file`).
    pub fn start_tls(mode: &'static str) -> SmtpSink {
        SmtpSink::start_with(Some(mode))
    }

    fn start_with(tls: Option<&'static str>) -> SmtpSink {
        let mut sink = SmtpSink {
            port: super::free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            tls,
        };
        sink.resume();
        sink
    }

    /// The URL for `GATEHOUSE_EMAIL_SMTP_URL`: `smtp://...?tls=none`, `smtp://` (STARTTLS) or
    /// `smtps://`.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("smtp://127.0.0.1:{}?tls=none", self.port),
            Some("implicit") => format!("smtps://127.0.0.1:{}", self.port),
            Some(_) => format!("smtp://127.0.0.1:{}", self.port),
        }
    }

    /// The test CA's certificate (TLS sinks): what a client must trust (`SSL_CERT_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The server goes away (the port refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server comes (back) on its port, keeping the messages it has.
    pub fn resume(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(super::django::python())
            .arg(&script)
            .arg(self.port.to_string())
            .arg(self.mail_dir())
            .args(self.tls)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start (it needs aiosmtpd in the test virtualenv: \
             tests/support/django-requirements.txt, installed by `bash tests/support/make_venv.sh`)"
        );
        self.child = Some(child);
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read a message");
                serde_json::from_str(&text).expect("a message is JSON")
            })
            .collect()
    }

    /// The messages to `to`.
    pub fn to(&self, to: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|t| t == to))
            })
            .collect()
    }

    /// Waits (up to `within`) until `to` has received `n` messages; returns them.
    #[track_caller]
    pub fn wait_for(&self, to: &str, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{to} received {} of {n} mails within {within:?}: {got:?}\nall: {:?}",
                got.len(),
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// gatehouse sending through `sink`, with `edit` applied to its config.
pub fn with_smtp(sink: &SmtpSink, edit: impl FnOnce(&mut Config)) -> Builder {
    sending_to(Gatehouse::new(), sink).with_config(edit)
}

/// `b` sending through `sink` (the SMTP backend, `accounts@gatehouse.test`, debug logs).
pub fn sending_to(b: Builder, sink: &SmtpSink) -> Builder {
    b.with_config(|c| {
        c.email.backend = MailBackend::Smtp;
        c.email.from = "accounts@gatehouse.test".into();
        c.log.level = LogLevel::Debug;
    })
    .env("GATEHOUSE_EMAIL_SMTP_URL", &sink.url())
}

/// `(uid, token)` from the link in a mail body (the default links end in /{uid}/{token}/).
pub fn link_parts(mail: &Value, prefix: &str) -> (String, String) {
    let body = mail["body"].as_str().expect("a body");
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {body}"));
    let link = body[start + prefix.len()..]
        .split_whitespace()
        .next()
        .expect("the link");
    let (uid, token) = link.split_once('/').expect("uid/token");
    (uid.to_string(), token.trim_end_matches('/').to_string())
}

/// How long a scenario waits for a duplicate mail that must not come. A sender looks at its
/// outbox every second (`POLL` in src/mail/sender.rs) and at once when woken: a copy sent twice
/// would be on its way within a round and a half.
pub const QUIET: Duration = Duration::from_millis(1500);

/// The pages the links lead to while `email.*_url` are the built-in examples (SPEC §15).
pub const RESET_LINK: &str = "/accounts/password/reset/confirm/";
pub const VERIFY_LINK: &str = "/accounts/email/verify/";

pub fn subjects(mails: &[Value]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The value of one sample of the metrics page (0 when absent).
pub fn metric(g: &Gatehouse, name: &str, labels: &str) -> f64 {
    let text = g.ops().get("/metrics", None).text;
    let want = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn reset(g: &Gatehouse, email: &str) -> Resp {
    g.post(PASSWORD_RESET, json!({ "email": email }), None)
}

pub fn confirm(g: &Gatehouse, uid: &str, token: &str, password: &str) -> Resp {
    g.post(
        PASSWORD_RESET_CONFIRM,
        json!({"uid": uid, "token": token, "new_password": password}),
        None,
    )
}
