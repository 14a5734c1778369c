//! The audit log's outlets (SPEC §16): every event the store commits is counted and written as
//! one JSON line to `[audit] sink`; events older than `retention_days` are swept; and events
//! that change nothing (a failed sign-in, a refused CSRF check) are bounded per address, so a
//! flood cannot fill the disk. The events themselves ride in the writes (`store::Effects`).

use crate::config::{AuditConfig, AUDIT_SINK_NONE, AUDIT_SINK_STDOUT};
use crate::metrics::{AUDIT_EVENTS, AUDIT_UNWRITTEN};
use crate::store::{Event, UserStore};
use std::io::{LineWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where event lines go.
pub enum Sink {
    /// Standard output, through the access log's buffer (lines never interleave).
    Stdout,
    /// A file, appended to, one write per line.
    File(Mutex<LineWriter<std::fs::File>>),
    None,
}

impl Sink {
    /// The configured sink; a file is opened (created owner-only) now, so a bad path fails
    /// the start, not the first event.
    pub fn open(config: &AuditConfig) -> Result<Sink, String> {
        match config.sink.as_str() {
            AUDIT_SINK_STDOUT => Ok(Sink::Stdout),
            AUDIT_SINK_NONE => Ok(Sink::None),
            path => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let file = options
                    .open(path)
                    .map_err(|e| format!("audit.sink {path}: {e}"))?;
                Ok(Sink::File(Mutex::new(LineWriter::new(file))))
            }
        }
    }

    /// Writes one line per event.
    pub fn write(&self, events: &[Event]) {
        if matches!(self, Sink::None) {
            return;
        }
        for event in events {
            let line = event.to_json().to_string();
            match self {
                Sink::Stdout => crate::access_log::write_line(&line),
                Sink::File(file) => {
                    let written = file
                        .lock()
                        .map_err(|_| "a writer panicked".to_string())
                        .and_then(|mut f| writeln!(f, "{line}").map_err(|e| e.to_string()));
                    if let Err(e) = written {
                        log::warn!("audit sink: event {} not written: {e}", event.id);
                    }
                }
                Sink::None => {}
            }
        }
    }
}

/// Counts and writes every event `store` commits from now on, and sweeps old events in the
/// background. The server and the commands that change users call it once, at start.
pub fn start(store: &Arc<dyn UserStore>, config: &AuditConfig) -> Result<(), String> {
    let sink = Sink::open(config)?;
    // Every action's series from 0 (the actions are the store's; metrics names no store type).
    for action in crate::store::Action::ALL {
        AUDIT_EVENTS.with_label_values(&[action.as_str()]);
    }
    if matches!(sink, Sink::Stdout) {
        crate::access_log::start_flusher()?;
    }
    store.tap_events(Arc::new(move |events: &[Event]| {
        for event in events {
            AUDIT_EVENTS
                .with_label_values(&[event.action.as_str()])
                .inc();
        }
        sink.write(events);
    }));
    Ok(())
}

/// How often old events are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Deletes events older than `retention_days` every hour, on the housekeeping thread. Any
/// replica may run it: deleting what is old is idempotent.
pub fn start_retention(store: Arc<dyn UserStore>, retention_days: u64) -> Result<(), String> {
    let keep_ms = retention_days.saturating_mul(86_400_000);
    crate::housekeeping::every("audit retention", SWEEP_EVERY, move || {
        let store = Arc::clone(&store);
        async move {
            let cutoff = crate::clock::now_ms().saturating_sub(keep_ms);
            match store.delete_events_before(cutoff).await {
                Ok(0) => {}
                Ok(n) => log::info!("audit: {n} events past retention deleted"),
                Err(e) => log::warn!("audit: cannot delete old events: {e}"),
            }
        }
    })
}

/// The bound on events that change nothing: at most `per_minute` per action and client
/// address (per process); the rest are counted in `gatehouse_audit_events_unwritten_total`.
pub struct Unaccompanied {
    limiter: crate::auth::throttle::Limiter,
    per_minute: u32,
}

/// Addresses remembered at most by the bound (memory).
const UNACCOMPANIED_KEYS: u64 = 100_000;

impl Unaccompanied {
    pub fn new(config: &AuditConfig) -> Unaccompanied {
        Unaccompanied {
            limiter: crate::auth::throttle::Limiter::new(UNACCOMPANIED_KEYS, 60),
            per_minute: config.unaccompanied_per_minute,
        }
    }

    /// Whether `event` may be written now (and counts it if so).
    pub fn admit(&self, event: &Event, now: u64) -> bool {
        let key = format!(
            "{}:{}",
            event.action.as_str(),
            event.ip.as_deref().unwrap_or("-")
        );
        if self.limiter.check(&key, self.per_minute, now).is_err() {
            AUDIT_UNWRITTEN
                .with_label_values(&[event.action.as_str()])
                .inc();
            return false;
        }
        self.limiter.hit(&key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Actor;
    use crate::store::Action;

    #[test]
    fn the_bound_admits_per_minute_per_address_and_action() {
        let config = AuditConfig {
            unaccompanied_per_minute: 3,
            ..AuditConfig::default()
        };
        let bound = Unaccompanied::new(&config);
        let from = |ip: [u8; 4], action| {
            Actor::anonymous(Some(std::net::IpAddr::from(ip))).event(action, None)
        };
        let flood = from([10, 0, 0, 1], Action::LoginFailed);
        let admitted = (0..10).filter(|_| bound.admit(&flood, 1_000)).count();
        assert_eq!(admitted, 3);
        assert!(bound.admit(&from([10, 0, 0, 2], Action::LoginFailed), 1_000));
        assert!(bound.admit(&from([10, 0, 0, 1], Action::CsrfRefused), 1_000));
        assert!(bound.admit(&flood, 1_060), "a new minute");
    }

    #[test]
    fn a_file_sink_gets_one_json_line_per_event_with_every_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig {
            sink: path.display().to_string(),
            ..AuditConfig::default()
        };
        let sink = Sink::open(&config).expect("open");
        let mut event = Actor::system()
            .event(Action::UserRegistered, Some(4))
            .detail("username", "ann");
        event.id = 9;
        sink.write(&[event.clone(), event]);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "user.registered");
        assert_eq!(lines[0]["target_id"], 4);
        assert_eq!(lines[0]["details"]["username"], "ann");
        let keys: Vec<&str> = lines[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "time",
                "action",
                "actor_id",
                "actor_username",
                "target_id",
                "ip",
                "user_agent",
                "request_id",
                "details"
            ]
        );
    }

    #[test]
    fn a_sink_path_that_cannot_be_opened_fails_the_start() {
        let config = AuditConfig {
            sink: "/nonexistent-dir/audit.jsonl".into(),
            ..AuditConfig::default()
        };
        let err = Sink::open(&config).err().expect("an error");
        assert!(
            err.starts_with("audit.sink /nonexistent-dir/audit.jsonl"),
            "{err}"
        );
    }
}
