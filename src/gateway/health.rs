//! Upstream health: a TCP connect per upstream every `HEALTH_CHECK_EVERY`, and one short log
//! line when an upstream goes down (with why) and one when it is back (after how long).
//! Pingora's own report of the same change prints its whole peer options; it is silenced in
//! favour of these lines (`cli::init_logging`).

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pingora's module whose health-change warnings gatehouse replaces with its own lines.
pub const REPLACED_LOG_MODULE: &str = "pingora_load_balancing";

#[derive(Default)]
struct Upstream {
    /// Why the last check failed.
    last_error: Option<String>,
    /// When it was taken out of the rotation.
    down_since: Option<(Instant, String)>,
}

pub struct UpstreamCheck {
    route: String,
    tcp: Box<TcpHealthCheck>,
    upstreams: Mutex<HashMap<String, Upstream>>,
}

impl UpstreamCheck {
    pub fn new(route: &str) -> UpstreamCheck {
        let mut tcp = TcpHealthCheck::new();
        tcp.consecutive_failure = 1;
        tcp.consecutive_success = 1;
        UpstreamCheck {
            route: route.to_string(),
            tcp,
            upstreams: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, addr: &str, f: impl FnOnce(&mut Upstream) -> T) -> Option<T> {
        let mut map = self.upstreams.lock().ok()?;
        Some(f(map.entry(addr.to_string()).or_default()))
    }
}

/// `12 s`, `3 min`, `2 h`: how long an upstream was down, for a person reading the log.
fn spoken(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[async_trait]
impl HealthCheck for UpstreamCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let result = self.tcp.check(target).await;
        let error = result
            .as_ref()
            .err()
            .map(|e| e.etype().as_str().to_string());
        self.with(&target.addr.to_string(), |u| u.last_error = error);
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let addr = target.addr.to_string();
        let route = &self.route;
        if healthy {
            if let Some(Some((since, at))) = self.with(&addr, |u| u.down_since.take()) {
                log::info!(
                    "upstream {addr} of route {route} is back after {} (down since {at})",
                    spoken(since.elapsed())
                );
            }
            return;
        }
        let at = crate::access_log::now_rfc3339();
        let why = self
            .with(&addr, |u| {
                u.down_since = Some((Instant::now(), at));
                u.last_error.clone()
            })
            .flatten()
            .unwrap_or_else(|| "no answer".to_string());
        log::warn!("upstream {addr} of route {route} is down ({why}): its requests get 502 until it is back");
    }

    fn backend_summary(&self, target: &Backend) -> String {
        target.addr.to_string()
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.tcp.health_threshold(success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(spoken(Duration::from_secs(12)), "12 s");
        assert_eq!(spoken(Duration::from_secs(300)), "5 min");
        assert_eq!(spoken(Duration::from_secs(4 * 3600)), "4 h");
    }
}
