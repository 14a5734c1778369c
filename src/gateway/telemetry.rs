//! What a finished request leaves behind: one access-log line and its metrics, both from the
//! same `Outcome`, so the log and the counters never disagree.

use crate::access_log;
use crate::config::LogConfig;
use crate::config::LogFormat;
use crate::metrics;
use std::time::Instant;

/// Which side of gatehouse answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user API, answered locally.
    Api,
    /// A proxied route (forwarded, or refused before forwarding).
    Proxy,
    /// An ingress asking whether to let a request through.
    ForwardAuth,
    /// A page under `[web] prefix`.
    Pages,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Proxy => "proxy",
            Kind::ForwardAuth => "forward_auth",
            Kind::Pages => "pages",
        }
    }
}

/// One answered request, as the log and the metrics see it.
pub struct Outcome<'a> {
    pub kind: Kind,
    /// The API endpoint or the route prefix (bounded: both come from code or config).
    pub label: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub request_id: &'a str,
    pub user_id: Option<u64>,
    /// 0: nothing was answered.
    pub status: u16,
    pub upstream: Option<&'a str>,
    pub upstream_status: u16,
    pub started: Instant,
    pub bytes: usize,
}

pub fn record(outcome: &Outcome<'_>, log: &LogConfig) {
    let elapsed = outcome.started.elapsed().as_secs_f64();
    if log.access_log {
        access_log::Entry {
            time: access_log::now_rfc3339(),
            request_id: outcome.request_id,
            method: outcome.method,
            path: outcome.path,
            kind: outcome.kind.as_str(),
            route: outcome.label,
            user_id: outcome.user_id,
            status: outcome.status,
            upstream: outcome.upstream,
            latency_ms: elapsed * 1000.0,
            bytes: outcome.bytes,
        }
        .write(log.format == LogFormat::Json);
    }
    let kind = outcome.kind.as_str();
    metrics::HTTP_REQUESTS
        .with_label_values(&[
            kind,
            outcome.label,
            outcome.method,
            status_text(outcome.status, &mut [0; 3]),
        ])
        .inc();
    if let Some(upstream) = outcome.upstream {
        metrics::UPSTREAM_REQUESTS
            .with_label_values(&[
                outcome.label,
                upstream,
                status_text(outcome.upstream_status, &mut [0; 3]),
            ])
            .inc();
    }
    metrics::HTTP_DURATION
        .with_label_values(&[
            kind,
            outcome.label,
            outcome.method,
            status_class(outcome.status),
        ])
        .observe(elapsed);
}

/// Time from choosing an upstream to its response header, into the route's histogram.
pub fn upstream_answered(histogram: &prometheus::Histogram, since: Instant) {
    histogram.observe(since.elapsed().as_secs_f64());
}

/// `200` -> "2xx": the status-class label without formatting.
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "0xx",
    }
}

/// The status label, written into `buf` instead of a new String ("0": nothing answered).
fn status_text(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..1000).contains(&status) {
        return "0";
    }
    *buf = [100, 10, 1].map(|unit| b'0' + (status / unit % 10) as u8);
    std::str::from_utf8(buf).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_without_allocating() {
        for (status, text, class) in [
            (100u16, "100", "1xx"),
            (200, "200", "2xx"),
            (308, "308", "3xx"),
            (401, "401", "4xx"),
            (503, "503", "5xx"),
            (0, "0", "0xx"),
        ] {
            assert_eq!(status_text(status, &mut [0; 3]), text);
            assert_eq!(status_class(status), class);
        }
    }
}
